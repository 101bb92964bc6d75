//! The state the benchmarks run against, and the invocations each function is measured with.
//!
//! A [`World`] is one DynamoDB table and KMS key on moto, seeded through the real local API
//! (in-process, on the same table and key): a linked Telegram user, stored credentials (bot
//! token checked against a fake Bot API, MTProto session), a worker token. A function's
//! bootstrap gets the Lambda environment of that world ([`World::lambda_env`]) and events for
//! a request it really serves ([`World::events`]); a function this file does not know yet is
//! measured with a request for an unknown path (a 404 from its router), so a new crate under
//! `functions/` is covered without edits.

use std::sync::atomic::{AtomicI64, Ordering};

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    config::{Env, MapEnv, SECRET_VARS},
    telegram::initdata::signing::sign_hmac,
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app_with},
    fake_telegram::FakeTelegram,
    fake_telegram_oidc::FakeTelegramOidc,
    fixtures::{Backend, emulator},
    http_client::Api,
};

/// The public client of the OpenID provider the `authorize` events come from.
const OIDC_CLIENT: &str = "bench-web";
const OIDC_REDIRECT: &str = "https://bench.example/callback";

/// The app user every request acts for.
pub const USER: &str = "bench-user";
const LINKED_TELEGRAM_ID: i64 = 7_700_000_001;

/// Every configuration variable a function may read (docs/design.md, "Configuration"), except the
/// local-only ones; the bootstrap gets those the world's local API has.
const CONFIG_VARS: &[&str] = &[
    "TGLINK_TABLE",
    "TGLINK_KMS_KEY_ID",
    "APP_NAME",
    "APP_JWT_SECRET",
    "APP_JWT_PUBLIC_KEY",
    "APP_JWT_ISSUER",
    "APP_JWT_AUDIENCE",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BOT_USERNAME",
    "TELEGRAM_BOT_ID",
    "TELEGRAM_ENV",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_API_BASE",
    "TELEGRAM_API_ID",
    "TELEGRAM_API_HASH",
    "TELEGRAM_FEATURE_ENABLED",
    "TELEGRAM_MINIAPP_ENABLED",
    "REGISTRATION_CALLBACK_SECRET",
    "BACKEND_URL",
    "TGLINK_ISSUER",
    "TGLINK_TOKEN_AUDIENCE",
    "TGLINK_ACCESS_TOKEN_TTL_SEC",
    "APP_JWT_NOTIFY_ROLE",
    "NOTIFY_CHAT_RATE",
    "NOTIFY_CHAT_BURST",
    "NOTIFY_GLOBAL_RATE",
];

pub struct World {
    pub app: TestApp,
    pub fake: FakeTelegram,
    /// Telegram's OpenID provider for the world's bot (`authorize` is measured against it).
    pub oidc: FakeTelegramOidc,
    pub jwt: String,
    pub worker_token: String,
    pub registration_id: String,
    counter: AtomicI64,
}

/// What a function is measured with.
pub struct Invocations {
    /// The request, in words (for the report).
    pub request: String,
    /// The status a correct answer has.
    pub expect: u16,
    pub events: Vec<Value>,
}

impl World {
    /// A fresh table and key on moto, seeded over HTTP.
    pub async fn new() -> Self {
        let fake = FakeTelegram::start().await;
        let extra = MapEnv::new()
            .with("TELEGRAM_API_BASE", fake.base_url())
            .with("TELEGRAM_API_ID", "12345678")
            .with("TELEGRAM_API_HASH", "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b")
            .with("BACKEND_URL", "https://backend.example");
        let app = spawn_app_with(Backend::DynamoDb, extra).await;
        let jwt = app.jwt(USER);
        // The deployment's own bot, which notify sends with.
        fake.add_bot(
            &app.env.var("TELEGRAM_BOT_TOKEN").expect("a dev bot token"),
            "tglink_dev_bot",
        );
        let seeded = seed(&app.api, &fake, &jwt).await;
        let bot_id = app
            .env
            .var("TELEGRAM_BOT_TOKEN")
            .and_then(|t| t.split(':').next().map(str::to_owned))
            .or_else(|| app.env.var("TELEGRAM_BOT_ID"))
            .expect("a bot");
        let oidc = FakeTelegramOidc::start_with(&bot_id, "bench-telegram-oidc-client-secret");
        let world = Self {
            oidc,
            jwt,
            worker_token: seeded.worker_token,
            registration_id: String::new(),
            app,
            fake,
            counter: AtomicI64::new(0),
        };
        // A linked Telegram user (for the link function's GET).
        let token = world.connect_token(USER).await;
        let resp = world
            .deliver(&start_update(1, LINKED_TELEGRAM_ID, &token))
            .await;
        assert_eq!(resp.status, 200, "seed link: {}", resp.text);
        let registration_id = world.registration().await;
        Self {
            registration_id,
            ..world
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.app.env.var(name)
    }

    /// The environment of a Lambda running in this world: the AWS variables a Lambda sandbox
    /// has (pointing at moto), the Lambda runtime's own variables, and the configuration.
    /// With `ssm_prefix`, the secrets are left out and read from SSM at cold start instead.
    pub fn lambda_env(&self, function: &str, ssm_prefix: Option<&str>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = emulator()
            .env()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (k, v) in [
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_SESSION_TOKEN", "bench-session-token"),
            ("AWS_LAMBDA_FUNCTION_NAME", function),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]bench"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("_HANDLER", "bootstrap"),
            ("TZ", ":UTC"),
        ] {
            env.push((k.to_owned(), v.to_owned()));
        }
        for name in CONFIG_VARS {
            if ssm_prefix.is_some() && SECRET_VARS.contains(name) {
                continue;
            }
            if let Some(value) = self.var(name).or_else(|| self.app.vars.var(name)) {
                env.push(((*name).to_owned(), value));
            }
        }
        env.push(("TELEGRAM_OIDC_ISSUER".to_owned(), self.oidc.issuer.clone()));
        if ssm_prefix.is_none() {
            env.extend(self.oidc_secrets());
        }
        if let Some(prefix) = ssm_prefix {
            env.push(("TGLINK_SSM_PREFIX".to_owned(), prefix.to_owned()));
        }
        env
    }

    /// The OpenID provider's secrets (not the local API's: only the Lambdas get them): the
    /// fake's client secret and one registered client, [`OIDC_CLIENT`].
    fn oidc_secrets(&self) -> Vec<(String, String)> {
        let clients = json!([{"client_id": OIDC_CLIENT, "redirect_uris": [OIDC_REDIRECT]}]);
        vec![
            (
                "TELEGRAM_OIDC_CLIENT_SECRET".to_owned(),
                self.oidc.client_secret.clone(),
            ),
            ("TGLINK_OIDC_CLIENTS".to_owned(), clients.to_string()),
        ]
    }

    /// Stores this world's secrets as SecureString parameters under `prefix` on moto.
    pub async fn put_secrets_in_ssm(&self, prefix: &str) {
        let ssm = aws_sdk_ssm::Client::new(&emulator().sdk().await);
        let oidc = self.oidc_secrets();
        for name in SECRET_VARS {
            let own = oidc.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            if let Some(value) = own.or_else(|| self.var(name)) {
                ssm.put_parameter()
                    .name(format!("{prefix}{name}"))
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .overwrite(true)
                    .send()
                    .await
                    .expect("put a parameter on moto");
            }
        }
    }

    fn unique(&self) -> i64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    async fn connect_token(&self, user: &str) -> String {
        let resp = self
            .app
            .api
            .post(
                "/api/telegram/connect-link",
                Some(&self.app.jwt(user)),
                None,
            )
            .await;
        assert_eq!(resp.status, 201, "seed connect token: {}", resp.text);
        resp.json["token"].as_str().expect("token").to_owned()
    }

    async fn deliver(&self, update: &Value) -> tglink_tests::http_client::ApiResponse {
        let secret = self
            .var("TELEGRAM_WEBHOOK_SECRET")
            .expect("a webhook secret");
        let builder = self
            .app
            .api
            .request(Method::POST, "/api/telegram/webhook")
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .json(update);
        self.app.api.send(builder).await
    }

    async fn registration(&self) -> String {
        let resp = self
            .app
            .api
            .post(
                "/api/auth/setup-2fa",
                Some(&self.jwt),
                Some(&registration_body()),
            )
            .await;
        assert_eq!(resp.status, 201, "seed registration: {}", resp.text);
        resp.json["registration_id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// `count` invocations of `function` (the first one cold). Stateful requests (a `/start`
    /// consumes its token) get fresh state per event, made before the process starts.
    pub async fn events(&self, function: &str, count: usize) -> Invocations {
        let bearer = |token: &str| vec![("authorization", format!("Bearer {token}"))];
        let json_headers = |token: Option<&str>| {
            let mut h = vec![("content-type", "application/json".to_owned())];
            if let Some(t) = token {
                h.push(("authorization", format!("Bearer {t}")));
            }
            h
        };
        let repeat = |request: &str, expect: u16, event: Value| Invocations {
            request: request.to_owned(),
            expect,
            events: vec![event; count],
        };
        match function {
            "connect-link" => repeat(
                "POST /api/telegram/connect-link (app JWT): a token is stored",
                201,
                apigw_event(
                    "POST",
                    "/api/telegram/connect-link",
                    &bearer(&self.jwt),
                    None,
                ),
            ),
            "webhook" => {
                let secret = self.var("TELEGRAM_WEBHOOK_SECRET").expect("webhook secret");
                let mut events = Vec::with_capacity(count);
                for _ in 0..count {
                    let n = self.unique();
                    let token = self.connect_token(&format!("bench-wh-{n}")).await;
                    let update = start_update(1_000 + n, 7_800_000_000 + n, &token);
                    events.push(apigw_event(
                        "POST",
                        "/api/telegram/webhook",
                        &[
                            ("content-type", "application/json".to_owned()),
                            ("x-telegram-bot-api-secret-token", secret.clone()),
                        ],
                        Some(update.to_string()),
                    ));
                }
                Invocations {
                    request: "POST /api/telegram/webhook, /start <fresh token>: consume + link"
                        .into(),
                    expect: 200,
                    events,
                }
            }
            "settings" => repeat(
                "GET /api/telegram/status (app JWT)",
                200,
                apigw_event("GET", "/api/telegram/status", &bearer(&self.jwt), None),
            ),
            "worker-credentials" => repeat(
                "GET /api/worker/credentials (worker token): read + KMS Decrypt",
                200,
                apigw_event(
                    "GET",
                    "/api/worker/credentials",
                    &bearer(&self.worker_token),
                    None,
                ),
            ),
            "registration" => repeat(
                "GET /api/auth/registration/{id} (app JWT)",
                200,
                apigw_event(
                    "GET",
                    &format!("/api/auth/registration/{}", self.registration_id),
                    &bearer(&self.jwt),
                    None,
                ),
            ),
            "initdata-verify" if self.var("TELEGRAM_BOT_TOKEN").is_some() => {
                let body = json!({"init_data": self.init_data()}).to_string();
                repeat(
                    "POST /api/telegram/miniapp/verify (valid initData)",
                    200,
                    apigw_event(
                        "POST",
                        "/api/telegram/miniapp/verify",
                        &json_headers(None),
                        Some(body),
                    ),
                )
            }
            "authorize" => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (k, v) in [
                    ("response_type", "code"),
                    ("client_id", OIDC_CLIENT),
                    ("redirect_uri", OIDC_REDIRECT),
                    ("scope", "openid profile"),
                    ("state", "bench-state"),
                    ("nonce", "bench-nonce"),
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    ),
                    ("code_challenge_method", "S256"),
                ] {
                    query.append_pair(k, v);
                }
                let mut event = apigw_event("GET", "/oauth/authorize", &[], None);
                event["rawQueryString"] = Value::String(query.finish());
                repeat(
                    "GET /oauth/authorize (a registered client): the request stored, 302 to Telegram (discovery fetched once per cold start)",
                    302,
                    event,
                )
            }
            "link" => repeat(
                "GET /api/telegram/link (app JWT, linked user)",
                200,
                apigw_event("GET", "/api/telegram/link", &bearer(&self.jwt), None),
            ),
            "notify" => {
                let body = json!({"user_id": USER, "text": "Bench notice"}).to_string();
                let headers = [
                    ("authorization", format!("Bearer {}", self.notify_jwt())),
                    ("content-type", "application/json".to_owned()),
                    ("idempotency-key", "bench-notify-1".to_owned()),
                ];
                repeat(
                    "POST /api/telegram/notify (notify JWT, linked user, one key: the send, then its replay)",
                    200,
                    apigw_event("POST", "/api/telegram/notify", &headers, Some(body)),
                )
            }
            _ => repeat(
                "GET /bench/unrouted: no route, the router's 404 (no request known for this function)",
                404,
                apigw_event("GET", "/bench/unrouted", &[], None),
            ),
        }
    }

    /// A host backend's JWT with the notify role.
    fn notify_jwt(&self) -> String {
        use tglink_shared::{
            auth::{DevClaims, sign_hs256},
            config::{JwtConfig, JwtKey},
        };
        let config = JwtConfig::from_env(self.app.env.as_ref()).expect("JWT configuration");
        let JwtKey::Secret(secret) = &config.key else {
            panic!("the bench world signs HS256")
        };
        let mut claims = DevClaims::new("bench-backend", &config, 3600);
        claims.roles = vec!["tglink:notify".into()];
        sign_hs256(secret, &claims)
    }

    /// initData of a (non-bot) Telegram user, signed with the world's bot token, fresh now.
    pub fn init_data(&self) -> String {
        let token = self.var("TELEGRAM_BOT_TOKEN").expect("a bot token");
        let user = json!({"id": 7_900_000_001i64, "first_name": "Bench", "username": "bench_user", "language_code": "en"})
            .to_string();
        sign_hmac(
            &[
                ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
                ("user", &user),
                ("auth_date", &UnixTime::now().secs().to_string()),
            ],
            &token,
        )
    }
}

pub struct Seeded {
    pub worker_token: String,
}

/// Stores credentials for [`USER`] (bot token known to `fake`, MTProto session) and creates a
/// worker token, through the HTTP API at `api`.
pub async fn seed(api: &Api, fake: &FakeTelegram, jwt: &str) -> Seeded {
    let bot_token = format!("{}:AAE{:_<40}", 7_100_000_009u64, "bench");
    fake.add_bot(&bot_token, "bench_bot");
    let resp = api
        .call(
            Method::PUT,
            "/api/settings/bot-token",
            Some(jwt),
            Some(&json!({"bot_token": bot_token})),
        )
        .await;
    assert_eq!(resp.status, 200, "seed bot token: {}", resp.text);
    let resp = api
        .call(
            Method::PUT,
            "/api/telegram/session",
            Some(jwt),
            Some(&json!({"session": format!("1BVtsOKABu{}", "x".repeat(340)), "telegram_user_id": 4242, "channel_id": -1001234567890i64})),
        )
        .await;
    assert_eq!(resp.status, 200, "seed session: {}", resp.text);
    let resp = api
        .post(
            "/api/worker/tokens",
            Some(jwt),
            Some(&json!({"name": "bench"})),
        )
        .await;
    assert_eq!(resp.status, 201, "seed worker token: {}", resp.text);
    Seeded {
        worker_token: resp.json["worker_token"]
            .as_str()
            .expect("worker token")
            .to_owned(),
    }
}

fn registration_body() -> Value {
    json!({"service_name": "Bench", "callback_url": "https://app.example/2fa/done", "email": "bench@example.com"})
}

fn start_update(update_id: i64, from: i64, token: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1000,
            "date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": "Bench", "username": format!("u{from}")},
            "chat": {"id": from, "type": "private"},
            "text": format!("/start {token}"),
            "entities": [{"offset": 0, "length": 6, "type": "bot_command"}]
        }
    })
}

/// An API Gateway HTTP API (payload 2.0) event, as Lambda receives it.
pub fn apigw_event(
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> Value {
    let mut h = serde_json::Map::new();
    h.insert("host".into(), "api.example.com".into());
    h.insert("user-agent".into(), "tglink-bench".into());
    for (k, v) in headers {
        h.insert((*k).to_owned(), Value::String(v.clone()));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "tglink-bench"
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1_704_067_200_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The functions of the workspace: every directory under `functions/` with a `Cargo.toml`
/// (crate name = binary name = Lambda name), sorted.
pub fn functions() -> Vec<String> {
    let dir = tglink_tests::workspace_root().join("functions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}
