//! The Lambda events of `tests/events/` (API Gateway HTTP API v2, one per route, as
//! `cargo lambda invoke --data-file` sends them), the development configuration beside them
//! (`tests/events/dev.env`), and the scenario that replays them: every route of every function,
//! in an order in which each one succeeds (a connect link, then its `/start`; a worker token,
//! then a fetch with it; …).
//!
//! The scenario runs through an [`Invoker`]: in-process (`tests/tests/deploy/iam.rs`) or through
//! `cargo lambda watch` / `cargo lambda invoke` (`tests/tests/deploy/cargo_lambda.rs`). Every
//! AWS call each function makes on the way is recorded (see [`crate::aws_recorder`]) and
//! attributed to it, so the tests can hold the template's IAM policies against what the
//! functions really do.
//!
//! The fixture files are usable as they are (a human runs them against `make watch`); values
//! that only exist at run time are placeholders the scenario replaces (the `*_PLACEHOLDER`
//! constants), and the callback's signature is made afresh. The Mini App events carry initData
//! signed with `dev.env`'s bot token (valid there for ten years, until June 2035); since initData is used up by
//! a sign-in or a link, the scenario signs fresh initData for those ([`fresh_init_data`]).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
};

use async_trait::async_trait;
use serde_json::Value;
use tglink_shared::{
    config::{MapEnv, Platform},
    runtime::{Function, Startup},
    telegram::initdata::signing,
    time::UnixTime,
    token::OneTimeToken,
};

use crate::aws_recorder::{AuthzRequest, AwsRecorder};

/// In `webhook/post-telegram-webhook.json`: the `/start` token (from connect-link).
pub const CONNECT_TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_token_FROM_connect-link_000000";
/// In `registration/post-auth-registration-callback.json`: the token from setup-2fa.
pub const REGISTRATION_TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_token_FROM_setup-2fa_000000000";
/// In `registration/post-auth-2fa-verify.json`: the current TOTP code of [`DEV_TOTP_SEED`].
pub const TOTP_CODE_PLACEHOLDER: &str = "REPLACE_WITH_CODE";
/// The TOTP seed of `registration/post-auth-registration-callback.json`.
pub const DEV_TOTP_SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// In `registration/get-auth-registration-registration_id.json`.
pub const REGISTRATION_ID_PLACEHOLDER: &str = "0123456789abcdef0123456789abcdef";
/// In `settings/delete-worker-tokens-id.json`.
pub const WORKER_TOKEN_ID_PLACEHOLDER: &str = "wt_REPLACE_WITH_ID0";
/// In `link/post-telegram-link.json`: the access token from `oauth`'s token exchange.
pub const ACCESS_TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_access_token_FROM_oauth_token";
/// The Telegram user of the events' initData and of the admin events' path.
pub const DEV_TELEGRAM_USER: i64 = 42;
/// The `user` field of the events' initData (and of [`fresh_init_data`]).
pub const DEV_TELEGRAM_USER_JSON: &str = r#"{"id":42,"first_name":"Ann","username":"ann"}"#;
/// The bot token of `settings/put-settings-bot-token.json` (a fake Bot API must know it).
pub const DEV_BOT_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
/// The user of the events' JWTs (`sub`).
pub const DEV_USER: &str = "dev-user";
/// A JWT for `dev.env` with `roles: ["tglink:admin"]` (user `dev-admin`, valid until 2100), for the
/// events of admin routes; printed in `docs/deploy.md`.
pub const DEV_ADMIN_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYtYWRtaW4iLCJpc3MiOiJ0Z2xpbmstZGV2IiwiYXVkIjoidGdsaW5rLWRldiIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzUwMDAwMDAwLCJyb2xlcyI6WyJ0Z2xpbms6YWRtaW4iXX0.CeVu0Y_hMs7AeqJ1touvdTTrEhixWk9WgoBOpCROyY0";

/// Variables of `dev.env` that configure the embedded store and key; a cloud-like run replaces
/// them with DynamoDB and KMS.
pub const EMBEDDED_VARS: &[&str] = &[
    "TGLINK_STORE",
    "TGLINK_SQLITE_PATH",
    "TGLINK_SEALER",
    "TGLINK_LOCAL_KEY_PATH",
];

pub fn events_dir() -> PathBuf {
    crate::workspace_root().join("tests/events")
}

pub fn event_path(function: &str, slug: &str) -> PathBuf {
    events_dir().join(function).join(format!("{slug}.json"))
}

pub fn load_event(function: &str, slug: &str) -> Value {
    let path = event_path(function, slug);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `tests/events/dev.env`, in file order.
pub fn dev_env() -> Vec<(String, String)> {
    let path = events_dir().join("dev.env");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("dev.env: not KEY=VALUE: {l}"));
            // A value in single quotes (JSON, for `cargo lambda watch`'s dotenv) is unquoted.
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

pub fn dev_var(name: &str) -> String {
    dev_env()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("dev.env has no {name}"))
}

/// The service secrets of `dev.env` (for SSM in a cloud-like run).
pub fn dev_secrets() -> Vec<(String, String)> {
    dev_env()
        .into_iter()
        .filter(|(k, _)| tglink_shared::config::SECRET_VARS.contains(&k.as_str()))
        .collect()
}

/// The plain configuration of `dev.env`: neither secrets nor the embedded store and key.
pub fn dev_config() -> MapEnv {
    let mut env = MapEnv::new();
    for (k, v) in dev_env() {
        if !tglink_shared::config::SECRET_VARS.contains(&k.as_str())
            && !EMBEDDED_VARS.contains(&k.as_str())
        {
            env.set(&k, v);
        }
    }
    env
}

/// Replaces `from` by `to` in every string of `event` (body, path, path parameters, headers).
pub fn replace_all(event: &mut Value, from: &str, to: &str) {
    match event {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_all(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_all(v, from, to)),
        _ => {}
    }
}

/// Sets a request header (API Gateway sends them in lower case).
pub fn set_header(event: &mut Value, name: &str, value: &str) {
    event["headers"][name.to_ascii_lowercase()] = Value::String(value.to_owned());
}

/// Signs the callback event's body afresh with `secret` at the current time.
pub fn sign_callback(event: &mut Value, secret: &str) {
    let body = event["body"].as_str().expect("callback body").to_owned();
    let header = registration::signature::sign(secret.as_bytes(), UnixTime::now(), body.as_bytes());
    set_header(event, registration::signature::HEADER, &header);
}

/// initData of [`DEV_TELEGRAM_USER`] signed now with `dev.env`'s `TELEGRAM_BOT_TOKEN`, as
/// Telegram would sign it, with a random `query_id`: never seen before, so it can be used up
/// (a sign-in, a link) however often the scenario runs. The events' own initData can be used
/// up once per replay window only.
pub fn fresh_init_data() -> String {
    let query_id = format!("AAfresh{}", &OneTimeToken::mint().expose()[..16]);
    let auth_date = UnixTime::now().secs().to_string();
    signing::sign_hmac(
        &[
            ("query_id", query_id.as_str()),
            ("user", DEV_TELEGRAM_USER_JSON),
            ("auth_date", auth_date.as_str()),
        ],
        &dev_var("TELEGRAM_BOT_TOKEN"),
    )
}

/// Login Widget data of [`DEV_TELEGRAM_USER`] (the query string of the widget's `data-auth-url`
/// redirect) signed now with `dev.env`'s `TELEGRAM_BOT_TOKEN`, as Telegram would sign it, with
/// a random `photo_url`: never seen before, so it can be used up however often the scenario runs.
pub fn fresh_widget_data() -> String {
    let photo = format!(
        "https://t.me/i/userpic/320/{}.jpg",
        &OneTimeToken::mint().expose()[..16]
    );
    let auth_date = UnixTime::now().secs().to_string();
    tglink_shared::telegram::login_widget::signing::sign_widget(
        &[
            ("id", &DEV_TELEGRAM_USER.to_string()),
            ("first_name", "Ann"),
            ("username", "ann"),
            ("photo_url", &photo),
            ("auth_date", &auth_date),
        ],
        &dev_var("TELEGRAM_BOT_TOKEN"),
    )
}

/// Makes an event's body `{"init_data": <init_data>}`.
pub fn set_init_data(event: &mut Value, init_data: &str) {
    event["body"] = Value::String(serde_json::json!({ "init_data": init_data }).to_string());
}

/// A function's answer to an event.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn expect(self, status: u16, what: &str) -> Self {
        assert_eq!(self.status, status, "{what}: body {}", self.body);
        self
    }

    /// The API Gateway proxy response a Lambda returns (`statusCode`, `headers`, `body`).
    pub fn from_proxy_response(response: &Value) -> Self {
        let status = response["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no statusCode in {response}"));
        let headers = response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response["body"].as_str().unwrap_or_default();
        let body = if response["isBase64Encoded"] == true {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("base64 body");
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            body.to_owned()
        };
        Self {
            status: status as u16,
            headers,
            body,
        }
    }
}

/// Delivers an event to a function, as Lambda would.
#[async_trait]
pub trait Invoker: Send {
    async fn invoke(&mut self, function: &str, event: &Value) -> Outcome;

    /// Makes `function`'s next invocation a cold start, where the invoker can (in-process: the
    /// function is built again; a process it does not control keeps running).
    async fn cold_start(&mut self, _function: &str) {}
}

/// Every function built in-process, once, on first use (its cold start), from its own
/// `Startup` with `Platform::Lambda` and its own secrets — as its `main.rs` builds it in
/// Lambda — and handed the event as `lambda_http` parses it.
pub struct InProcess {
    env: MapEnv,
    built: HashMap<String, Arc<dyn Function>>,
}

impl InProcess {
    pub fn new(env: MapEnv) -> Self {
        Self {
            env,
            built: HashMap::new(),
        }
    }
}

#[async_trait]
impl Invoker for InProcess {
    async fn cold_start(&mut self, function: &str) {
        self.built.remove(function);
    }

    async fn invoke(&mut self, function: &str, event: &Value) -> Outcome {
        if !self.built.contains_key(function) {
            let secrets = (crate::functions::function(function).secrets)();
            let startup =
                Startup::with_secrets(Arc::new(self.env.clone()), Platform::Lambda, secrets)
                    .await
                    .unwrap_or_else(|e| panic!("{function}: cold start: {e}"));
            let built = crate::functions::build(function, &startup)
                .await
                .unwrap_or_else(|e| panic!("{function}: build: {e}"));
            self.built.insert(function.to_owned(), built);
        }
        let request = lambda_http::request::from_str(&event.to_string())
            .unwrap_or_else(|e| panic!("{function}: not an API Gateway event: {e}"));
        let response = self.built[function].handle(request).await;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = match response.into_body() {
            lambda_http::Body::Text(text) => text,
            lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        Outcome {
            status,
            headers,
            body,
        }
    }
}

/// One invocation of a session.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub slug: String,
    /// The event's route (`METHOD /path/{param}`).
    pub method: String,
    pub route: String,
    pub outcome: Outcome,
}

/// A run of the scenario: invokes functions one at a time and attributes the AWS calls recorded
/// during each invocation (its cold start included) to the function invoked.
pub struct Session<'a> {
    invoker: &'a mut dyn Invoker,
    recorder: &'a AwsRecorder,
    /// The IAM authorization requests each function made.
    pub observed: BTreeMap<String, Vec<AuthzRequest>>,
    /// `(function, event slug)` of every invocation.
    pub invoked: BTreeSet<(String, String)>,
    pub invocations: Vec<Invocation>,
}

impl<'a> Session<'a> {
    pub fn new(invoker: &'a mut dyn Invoker, recorder: &'a AwsRecorder) -> Self {
        Self {
            invoker,
            recorder,
            observed: BTreeMap::new(),
            invoked: BTreeSet::new(),
            invocations: Vec::new(),
        }
    }

    /// Every response as JSON lines for `tests/openapi_responses.py`.
    pub fn responses_jsonl(&self) -> String {
        self.invocations
            .iter()
            .map(|i| {
                serde_json::json!({
                    "method": i.method,
                    "route": i.route,
                    "status": i.outcome.status,
                    "headers": i.outcome.headers,
                    "body": i.outcome.body,
                })
                .to_string()
                    + "\n"
            })
            .collect()
    }

    /// Invokes `function` with its event `slug`, changed by `edit`.
    /// `function`'s next invocation is a cold start (see [`Invoker::cold_start`]).
    pub async fn cold_start(&mut self, function: &str) {
        self.invoker.cold_start(function).await;
    }

    pub async fn call(
        &mut self,
        function: &str,
        slug: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Outcome {
        let mut event = load_event(function, slug);
        edit(&mut event);
        let stray = self.recorder.take();
        assert!(stray.is_empty(), "AWS calls between invocations: {stray:?}");
        let outcome = self.invoker.invoke(function, &event).await;
        let requests = self
            .recorder
            .take()
            .into_iter()
            .flat_map(|call| call.requests);
        self.observed
            .entry(function.to_owned())
            .or_default()
            .extend(requests);
        self.invoked.insert((function.to_owned(), slug.to_owned()));
        let route_key = event["routeKey"].as_str().unwrap_or_default();
        let (method, route) = route_key.split_once(' ').unwrap_or_default();
        self.invocations.push(Invocation {
            function: function.to_owned(),
            slug: slug.to_owned(),
            method: method.to_owned(),
            route: route.to_owned(),
            outcome: outcome.clone(),
        });
        outcome
    }
}

fn text_of(outcome: &Outcome, pointer: &str) -> String {
    outcome
        .json()
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {}", outcome.body))
        .to_owned()
}

/// Every route of every function, each answered with success. Add the steps of a new function
/// here (CONTRIBUTING.md, "Adding a function"): the IAM tests require every action its policy
/// grants to be used somewhere in this scenario.
pub async fn run_scenario(s: &mut Session<'_>) {
    // The events as they are in tests/events/ (what `cargo lambda invoke --data-file` gets
    // without editing them): placeholders and a stale signature give documented refusals.
    let as_is = s
        .call("webhook", "post-telegram-webhook", |_| {})
        .await
        .expect(200, "webhook, the event as it is");
    assert!(as_is.body.contains("expired or invalid"), "{}", as_is.body);
    let stale = s
        .call("registration", "post-auth-registration-callback", |_| {})
        .await
        .expect(401, "registration callback, the event as it is");
    assert_eq!(stale.json()["code"], "signature_stale");
    let unknown = s
        .call(
            "registration",
            "get-auth-registration-registration_id",
            |_| {},
        )
        .await
        .expect(404, "registration status, the event as it is");
    assert_eq!(unknown.json()["code"], "registration_not_found");
    let unknown = s
        .call("settings", "delete-worker-tokens-id", |_| {})
        .await
        .expect(404, "worker token revocation, the event as it is");
    assert_eq!(unknown.json()["code"], "worker_token_not_found");
    let unauthenticated = s
        .call("connect-link", "post-telegram-connect-link", |e| {
            e["headers"]
                .as_object_mut()
                .expect("headers")
                .remove("authorization");
        })
        .await
        .expect(401, "connect-link without a JWT");
    assert_eq!(unauthenticated.json()["code"], "auth_required");

    // connect-link, then the bot's webhook: /start with that token links; /disconnect unlinks.
    let link = s
        .call("connect-link", "post-telegram-connect-link", |_| {})
        .await
        .expect(201, "connect-link");
    let token = text_of(&link, "/token");
    let start = s
        .call("webhook", "post-telegram-webhook", |e| {
            replace_all(e, CONNECT_TOKEN_PLACEHOLDER, &token);
            replace_all(e, "\"update_id\":100001", "\"update_id\":100002");
        })
        .await
        .expect(200, "webhook /start");
    assert!(
        start.body.contains("Successfully connected"),
        "webhook /start: {}",
        start.body
    );
    let disconnect = s
        .call("webhook", "post-telegram-webhook", |e| {
            replace_all(
                e,
                &format!("/start {CONNECT_TOKEN_PLACEHOLDER}"),
                "/disconnect",
            );
            replace_all(e, "\"update_id\":100001", "\"update_id\":100003");
        })
        .await
        .expect(200, "webhook /disconnect");
    assert!(
        disconnect.body.contains("Disconnected"),
        "webhook /disconnect: {}",
        disconnect.body
    );

    // settings: bot token (getMe on the fake Bot API), session, status, worker tokens.
    let saved = s
        .call("settings", "put-settings-bot-token", |_| {})
        .await
        .expect(200, "settings bot token");
    assert_eq!(saved.json()["success"], true);
    s.call("settings", "put-telegram-session", |_| {})
        .await
        .expect(200, "settings session");
    let status = s
        .call("settings", "get-telegram-status", |_| {})
        .await
        .expect(200, "settings status");
    assert_eq!(status.json()["user_auth"], true, "{}", status.body);
    let created = s
        .call("settings", "post-worker-tokens", |_| {})
        .await
        .expect(201, "settings worker token");
    let (worker_id, worker_token) = (text_of(&created, "/id"), text_of(&created, "/worker_token"));
    s.call("settings", "get-worker-tokens", |_| {})
        .await
        .expect(200, "settings worker token list");

    // worker-credentials: with the app JWT, then with the worker token.
    let credentials = s
        .call("worker-credentials", "get-worker-credentials", |_| {})
        .await
        .expect(200, "worker credentials (JWT)");
    assert_eq!(credentials.json()["bot_token"], DEV_BOT_TOKEN);
    s.call("worker-credentials", "get-worker-credentials", |e| {
        set_header(e, "authorization", &format!("Bearer {worker_token}"))
    })
    .await
    .expect(200, "worker credentials (worker token)");

    // The worker reports the session dead; the user clears it; the worker token is revoked.
    s.call("settings", "post-telegram-session-report", |_| {})
        .await
        .expect(200, "settings session report");
    s.call("settings", "delete-telegram-session", |_| {})
        .await
        .expect(204, "settings delete session");
    s.call("settings", "delete-worker-tokens-id", |e| {
        replace_all(e, WORKER_TOKEN_ID_PLACEHOLDER, &worker_id)
    })
    .await
    .expect(204, "settings revoke worker token");
    // A second worker token, then "revoke all": the one still active.
    s.call("settings", "post-worker-tokens", |_| {})
        .await
        .expect(201, "settings second worker token");
    let revoked = s
        .call("settings", "delete-worker-tokens", |_| {})
        .await
        .expect(200, "settings revoke all worker tokens");
    assert_eq!(revoked.json()["revoked"], 1, "{}", revoked.body);

    // registration: setup, the provider's signed callback with a TOTP seed, the status read,
    // a code verified against the seed.
    let setup = s
        .call("registration", "post-auth-setup-2fa", |_| {})
        .await
        .expect(201, "registration setup");
    let (id, reg_token) = (
        text_of(&setup, "/registration_id"),
        text_of(&setup, "/token"),
    );
    let secret = dev_var("REGISTRATION_CALLBACK_SECRET");
    s.call("registration", "post-auth-registration-callback", |e| {
        replace_all(e, REGISTRATION_TOKEN_PLACEHOLDER, &reg_token);
        sign_callback(e, &secret);
    })
    .await
    .expect(200, "registration callback");
    let read = s
        .call(
            "registration",
            "get-auth-registration-registration_id",
            |e| replace_all(e, REGISTRATION_ID_PLACEHOLDER, &id),
        )
        .await
        .expect(200, "registration status");
    assert_eq!(read.json()["status"], "completed", "{}", read.body);
    let code = registration::totp::parse_seed(DEV_TOTP_SEED)
        .expect("the dev seed parses")
        .generate(UnixTime::now().secs())
        .to_string();
    let verified = s
        .call("registration", "post-auth-2fa-verify", |e| {
            replace_all(e, TOTP_CODE_PLACEHOLDER, &code)
        })
        .await
        .expect(200, "2FA code verification");
    assert_eq!(
        verified.json()["registration_id"],
        id.as_str(),
        "{}",
        verified.body
    );

    token_service_scenario(s).await;
    miniapp_scenario(s).await;
    oauth_scenario(s).await;
    notify_scenario(s).await;
    authorize_scenario(s).await;
}

/// notify: a linked user gets a message (the claim and both buckets taken, the claim completed),
/// the same key again is the first answer, and a chat Telegram says blocked the bot is `410`
/// (claim released, both link items marked unreachable); then `my_chat_member` `member` makes
/// it reachable again (webhook).
async fn notify_scenario(s: &mut Session<'_>) {
    let link = s
        .call("connect-link", "post-telegram-connect-link", |_| {})
        .await
        .expect(201, "connect-link for notify");
    let token = text_of(&link, "/token");
    s.call("webhook", "post-telegram-webhook", |e| {
        replace_all(e, CONNECT_TOKEN_PLACEHOLDER, &token);
        replace_all(e, "\"update_id\":100001", "\"update_id\":100020");
    })
    .await
    .expect(200, "webhook /start for notify");
    let sent = s
        .call("notify", "post-telegram-notify", |_| {})
        .await
        .expect(200, "notify");
    let again = s
        .call("notify", "post-telegram-notify", |_| {})
        .await
        .expect(200, "notify again with the same key");
    assert_eq!(sent.json(), again.json());
    let gone = s
        .call("notify", "post-telegram-notify", |e| {
            replace_all(e, "Your export is ready.", "[fake:blocked]");
            set_header(e, "idempotency-key", "dev-notify-0002");
        })
        .await
        .expect(410, "notify to a chat that blocked the bot");
    assert_eq!(gone.json()["code"], "chat_unreachable");
    s.call("webhook", "post-telegram-webhook", |e| {
        let member = serde_json::json!({
            "update_id": 100021,
            "my_chat_member": {
                "chat": {"id": 4242, "type": "private"},
                "from": {"id": 4242, "is_bot": false, "first_name": "Dev"},
                "date": 1795176000,
                "old_chat_member": {"status": "kicked"},
                "new_chat_member": {"status": "member"}
            }
        });
        e["body"] = Value::String(member.to_string());
    })
    .await
    .expect(200, "webhook my_chat_member member");
}

/// The token service: the deployment's first token makes its first signing key on demand
/// (oauth: `Query`, the conditional put of the key and the pointer, `GenerateDataKey`); oidc and
/// signing-keys publish and rotate it; then oauth starts cold again and opens the current key
/// (`Query` + `kms:Decrypt`) for the tokens of the scenarios after this one.
async fn token_service_scenario(s: &mut Session<'_>) {
    let first_token = s
        .call("oauth", "post-oauth-token", |e| {
            exchange_form(e, &fresh_init_data())
        })
        .await
        .expect(
            200,
            "the deployment's first token (its signing key made on demand)",
        );
    let access_token = first_token.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    // oidc and signing-keys: the discovery document; two rotations (PutItem + UpdateItem each);
    // the JWKS then publishes the new keys first.
    let discovery = s
        .call("oidc", "get-.well-known-openid-configuration", |_| {})
        .await
        .expect(200, "discovery document");
    assert_eq!(
        discovery.json()["jwks_uri"],
        "http://127.0.0.1:8080/.well-known/jwks.json"
    );
    let first = s
        .call("signing-keys", "post-admin-signing-keys-rotate", |_| {})
        .await
        .expect(200, "first signing key");
    let second = s
        .call("signing-keys", "post-admin-signing-keys-rotate", |_| {})
        .await
        .expect(200, "signing key rotation");
    let published = second.json()["published"].clone();
    assert_eq!(published[0], second.json()["kid"], "{published}");
    assert!(
        published.as_array().unwrap().contains(&first.json()["kid"]),
        "{published}"
    );
    let jwks = s
        .call("oidc", "get-.well-known-jwks.json", |_| {})
        .await
        .expect(200, "JWKS");
    let kids: Vec<Value> = jwks.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids[0], second.json()["kid"]);
    assert!(kids.contains(&first.json()["kid"]), "{kids:?}");
    // oidc userinfo: the event as it is (no token) is refused; the first token (its key now
    // retired, still published) is answered on both methods.
    s.call("oidc", "get-oauth-userinfo", |_| {})
        .await
        .expect(401, "userinfo, the event as it is");
    for slug in ["get-oauth-userinfo", "post-oauth-userinfo"] {
        let info = s
            .call("oidc", slug, |e| {
                set_header(e, "authorization", &format!("Bearer {access_token}"))
            })
            .await
            .expect(200, "userinfo");
        assert!(info.json()["sub"].is_string(), "{}", info.json());
    }
    s.cold_start("oauth").await;
}

/// Makes an event's body the form `pairs`.
pub fn set_form(event: &mut Value, pairs: &[(&str, &str)]) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    event["body"] = Value::String(form.finish());
}

/// Makes an event's body the token exchange of `init_data`.
pub fn exchange_form(event: &mut Value, init_data: &str) {
    set_form(
        event,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "subject_token_type",
                "urn:tglink:params:oauth:token-type:telegram-init-data",
            ),
            ("subject_token", init_data),
        ],
    )
}

/// Makes an event's body the Login Widget token exchange of `widget` (the widget's fields as
/// its redirect's query string).
pub fn widget_form(event: &mut Value, widget: &str) {
    set_form(
        event,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "subject_token_type",
                "urn:tglink:params:oauth:token-type:telegram-login-widget",
            ),
            ("subject_token", widget),
        ],
    )
}

/// oauth: revoke as it is (a placeholder token: `200`, RFC 7009), a token exchange of fresh
/// initData (its replay refused), a refresh, the rotated-away token's reuse (refused; the
/// session ends), and a logout by refresh token; a Login Widget exchange (its replay refused).
async fn oauth_scenario(s: &mut Session<'_>) {
    s.call("oauth", "post-oauth-revoke", |_| {})
        .await
        .expect(200, "oauth revoke, the event as it is");
    let exchange = |init_data: String| move |e: &mut Value| exchange_form(e, &init_data);
    let init_data = fresh_init_data();
    let issued = s
        .call("oauth", "post-oauth-token", exchange(init_data.clone()))
        .await
        .expect(200, "oauth token exchange");
    assert_eq!(issued.json()["token_type"], "Bearer", "{}", issued.body);
    let first = text_of(&issued, "/refresh_token");
    let replayed = s
        .call("oauth", "post-oauth-token", exchange(init_data))
        .await
        .expect(400, "oauth token exchange, the same initData again");
    assert_eq!(replayed.json()["error"], "invalid_request");
    let refresh = |token: String| {
        move |e: &mut Value| {
            set_form(
                e,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
        }
    };
    let rotated = s
        .call("oauth", "post-oauth-token", refresh(first.clone()))
        .await
        .expect(200, "oauth refresh");
    let second = text_of(&rotated, "/refresh_token");
    let reused = s
        .call("oauth", "post-oauth-token", refresh(first))
        .await
        .expect(400, "oauth refresh with a rotated-away token");
    assert_eq!(reused.json()["error"], "invalid_grant");
    s.call("oauth", "post-oauth-token", refresh(second))
        .await
        .expect(400, "oauth refresh of a session its reuse ended");
    let issued = s
        .call("oauth", "post-oauth-token", exchange(fresh_init_data()))
        .await
        .expect(200, "oauth token exchange again");
    let token = text_of(&issued, "/refresh_token");
    s.call("oauth", "post-oauth-revoke", |e| {
        set_form(e, &[("token", &token)])
    })
    .await
    .expect(200, "oauth revoke by refresh token");

    // The Login Widget exchange: a session (amr telegram_widget); the same data again refused.
    let widget = fresh_widget_data();
    let signed_in = s
        .call("oauth", "post-oauth-token", |e| widget_form(e, &widget))
        .await
        .expect(200, "oauth Login Widget exchange");
    assert_eq!(
        signed_in.json()["token_type"],
        "Bearer",
        "{}",
        signed_in.body
    );
    let replayed = s
        .call("oauth", "post-oauth-token", |e| widget_form(e, &widget))
        .await
        .expect(400, "oauth Login Widget exchange, the same data again");
    assert!(
        replayed.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("widget_replayed")),
        "{}",
        replayed.body
    );

    // A block (of a user with no link now) ends every session; the unblock revives none.
    let issued = s
        .call("oauth", "post-oauth-token", exchange(fresh_init_data()))
        .await
        .expect(200, "oauth token exchange before a block");
    let token = text_of(&issued, "/refresh_token");
    s.call(
        "link",
        "post-admin-telegram-links-telegram_user_id-block",
        |_| {},
    )
    .await
    .expect(200, "admin block of an unlinked user");
    s.call(
        "link",
        "post-admin-telegram-links-telegram_user_id-unblock",
        |_| {},
    )
    .await
    .expect(200, "admin unblock");
    s.call("oauth", "post-oauth-token", refresh(token))
        .await
        .expect(400, "oauth refresh of a session a block ended");
}

/// In `authorize/get-oauth-callback-telegram.json`: the query Telegram sends back.
pub const CALLBACK_QUERY_PLACEHOLDER: &str =
    "code=REPLACE_WITH_code_FROM_telegram&state=REPLACE_WITH_state_FROM_authorize";
/// The PKCE verifier of `authorize/get-oauth-authorize.json`'s `code_challenge` (RFC 7636
/// appendix B).
pub const DEV_CODE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The client secret of `dev.env`'s registered client `tglink-dev-web`.
pub const DEV_CLIENT_SECRET: &str = "tglink-dev-web-secret-NOT-FOR-PRODUCTION";

/// Sets an event's query string (both `rawQueryString` and `queryStringParameters`).
pub fn set_query(event: &mut Value, query: &str) {
    event["rawQueryString"] = Value::String(query.to_owned());
    let params: serde_json::Map<String, Value> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    event["queryStringParameters"] = Value::Object(params);
}

/// authorize and oauth's `authorization_code` grant: the authorization request as it is
/// (`302` to Telegram, here the fake the environment's `TELEGRAM_OIDC_ISSUER` names, which
/// approves at once), Telegram's callback (`302` to the client with tglink's code), the code
/// redeemed (`200`: an ID token), and redeemed again (refused; the session it started ends).
async fn authorize_scenario(s: &mut Session<'_>) {
    let started = s
        .call("authorize", "get-oauth-authorize", |_| {})
        .await
        .expect(302, "authorize, the event as it is");
    let at_telegram = started.headers.get("location").cloned().expect("Location");
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    let back = browser
        .get(&at_telegram)
        .send()
        .await
        .expect("Telegram's authorization endpoint answers");
    assert_eq!(back.status().as_u16(), 302, "Telegram approves");
    let back = back
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned();
    let query = back
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    let at_client = s
        .call("authorize", "get-oauth-callback-telegram", |e| {
            set_query(e, &query)
        })
        .await
        .expect(302, "Telegram's callback");
    let location = at_client
        .headers
        .get("location")
        .cloned()
        .expect("Location");
    let code = location
        .split_once('?')
        .map(|(_, q)| q)
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()).into_owned())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .expect("a code for the client");
    let redeem = |code: String| {
        move |e: &mut Value| {
            set_form(
                e,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:3000/callback"),
                    ("code_verifier", DEV_CODE_VERIFIER),
                    ("client_id", "tglink-dev-web"),
                    ("client_secret", DEV_CLIENT_SECRET),
                ],
            )
        }
    };
    let issued = s
        .call("oauth", "post-oauth-token", redeem(code.clone()))
        .await
        .expect(200, "oauth authorization_code grant");
    assert!(issued.json()["id_token"].is_string(), "{}", issued.body);
    let replayed = s
        .call("oauth", "post-oauth-token", redeem(code))
        .await
        .expect(400, "oauth authorization_code grant, the code again");
    assert_eq!(replayed.json()["error"], "invalid_grant");
}

fn code_of(outcome: &Outcome) -> String {
    text_of(outcome, "/code")
}

/// initdata-verify, oauth and link: the events as they are, then a sign-in from fresh initData,
/// a link by its access token and one by initData, unlink, and the admin's revoke, block and
/// unblock.
async fn miniapp_scenario(s: &mut Session<'_>) {
    // As they are: the events' initData (auth_date 2025) verifies under dev.env; nothing is
    // linked or blocked yet; the link event's session token is a placeholder.
    let verified = s
        .call("initdata-verify", "post-telegram-miniapp-verify", |_| {})
        .await
        .expect(200, "miniapp verify, the event as it is");
    assert_eq!(verified.json()["telegram_user_id"], DEV_TELEGRAM_USER);
    assert_eq!(verified.json()["init_data"]["user"]["username"], "ann");
    let none = s
        .call("link", "get-telegram-link", |_| {})
        .await
        .expect(404, "link read, the event as it is");
    assert_eq!(code_of(&none), "link_not_found");
    let placeholder = s
        .call("link", "post-telegram-link", |_| {})
        .await
        .expect(401, "link, the event as it is");
    assert_eq!(code_of(&placeholder), "access_token_invalid");
    let none = s
        .call("link", "delete-telegram-link", |_| {})
        .await
        .expect(404, "unlink, the event as it is");
    assert_eq!(code_of(&none), "link_not_found");
    let none = s
        .call(
            "link",
            "post-admin-telegram-links-telegram_user_id-revoke",
            |_| {},
        )
        .await
        .expect(404, "admin revoke, the event as it is");
    assert_eq!(code_of(&none), "link_not_found");
    let none = s
        .call(
            "link",
            "post-admin-telegram-links-telegram_user_id-unblock",
            |_| {},
        )
        .await
        .expect(404, "admin unblock, the event as it is");
    assert_eq!(code_of(&none), "block_not_found");

    // A sign-in (oauth token exchange) from fresh initData; the same initData again is a
    // replay, for a sign-in and for a link (one namespace).
    let init_data = fresh_init_data();
    let created = s
        .call("oauth", "post-oauth-token", |e| {
            exchange_form(e, &init_data)
        })
        .await
        .expect(200, "oauth token exchange for linking");
    let access_token = text_of(&created, "/access_token");
    let replayed = s
        .call("link", "post-telegram-link", |e| {
            set_init_data(e, &init_data)
        })
        .await
        .expect(401, "link by an initData that signed in");
    assert_eq!(code_of(&replayed), "initdata_replayed");

    // Link by the access token (its session records the app user), read it, unlink.
    let with_token = |e: &mut Value| replace_all(e, ACCESS_TOKEN_PLACEHOLDER, &access_token);
    let linked = s
        .call("link", "post-telegram-link", with_token)
        .await
        .expect(201, "link by access token");
    assert_eq!(linked.json()["telegram_user_id"], DEV_TELEGRAM_USER);
    assert_eq!(linked.json()["user_id"], DEV_USER);
    assert_eq!(linked.json()["source"], "miniapp");
    s.call("link", "get-telegram-link", |_| {})
        .await
        .expect(200, "link read");
    s.call("link", "delete-telegram-link", |_| {})
        .await
        .expect(204, "unlink");

    // Link by initData (claim and link in one transaction); the admin revokes it.
    let init_data = fresh_init_data();
    s.call("link", "post-telegram-link", |e| {
        set_init_data(e, &init_data)
    })
    .await
    .expect(201, "link by initData");
    let revoked = s
        .call(
            "link",
            "post-admin-telegram-links-telegram_user_id-revoke",
            |_| {},
        )
        .await
        .expect(200, "admin revoke");
    assert_eq!(revoked.json()["revoked"]["user_id"], DEV_USER);

    // The unlink ended the session (issue 13: a token is not a reusable link ticket). Linked
    // again by fresh initData, then blocked: the block removes the link; a blocked user's
    // initData is refused; unblocked.
    let with_token = |e: &mut Value| replace_all(e, ACCESS_TOKEN_PLACEHOLDER, &access_token);
    let ended = s
        .call("link", "post-telegram-link", with_token)
        .await
        .expect(
            401,
            "link by an access token whose session its unlink ended",
        );
    assert_eq!(code_of(&ended), "session_invalid");
    let again = fresh_init_data();
    s.call("link", "post-telegram-link", |e| set_init_data(e, &again))
        .await
        .expect(201, "link by initData again");
    let blocked = s
        .call(
            "link",
            "post-admin-telegram-links-telegram_user_id-block",
            |_| {},
        )
        .await
        .expect(200, "admin block");
    assert_eq!(blocked.json()["already_blocked"], false, "{}", blocked.body);
    assert_eq!(blocked.json()["revoked"]["user_id"], DEV_USER);
    let refused = s
        .call("initdata-verify", "post-telegram-miniapp-verify", |_| {})
        .await
        .expect(401, "miniapp verify of a blocked user");
    assert_eq!(code_of(&refused), "telegram_user_blocked");
    let unblocked = s
        .call(
            "link",
            "post-admin-telegram-links-telegram_user_id-unblock",
            |_| {},
        )
        .await
        .expect(200, "admin unblock");
    assert_eq!(unblocked.json()["blocked"], false);
}
