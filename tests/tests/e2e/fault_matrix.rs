//! The fault matrix: every endpoint that writes × every AWS call position of its request ×
//! every fault kind (`tglink_tests::faults`), in two modes — `once` (the call's first attempt
//! meets the fault; the SDK's retry sees the service again) and `exhaust` (the call and the
//! next ones, as many as the SDK's attempts, meet it) — on DynamoDB + KMS (moto).
//!
//! Each case starts from fresh users. The request, sent with the fault in place, must answer
//! the success or a documented 503 (never a 500, never a 4xx the fault-free run does not give);
//! then, while it answers 503, the same request is sent again without the fault, as its real
//! client would (Telegram redelivers the update, the host retries, the provider re-sends its
//! callback), and must end in the success (or, on a retry, the documented answer saying the
//! work is done). The state is then checked through the API (the row's `check`) and in the
//! raw table (links one-to-one both ways, registrations in one state, no claim left
//! `IN_PROGRESS`). A Bot API sub-matrix (5xx, hang, reset after sending) covers the one write
//! that calls Telegram.
//!
//! Rows are a table: a new write endpoint is a new [`Row`] (its setup, request, successes and
//! check). The matrix prints its size and violations; README's Tests section quotes them.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    aws::MAX_ATTEMPTS,
    config::{Env, JwtConfig, JwtKey, MapEnv},
    telegram::{initdata::signing::sign_hmac, login_widget::signing::sign_widget},
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app_faulty},
    fake_telegram::{BotApiFault, FakeTelegram},
    faults::{AwsFault, AwsFaults, Match, Rule},
    fixtures::Backend,
    http_client::ApiResponse,
    moto::moto,
};

/// Every write endpoint of today. A new one is a variant here and an arm in each method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    ConnectLink,
    WebhookStart,
    WebhookDisconnect,
    BotToken,
    SessionPut,
    SessionDelete,
    SessionReport,
    WorkerTokenCreate,
    WorkerTokenRevoke,
    WorkerTokensRevokeAll,
    TokenExchange,
    WidgetExchange,
    TokenRefresh,
    LinkPost,
    LinkDelete,
    AdminRevoke,
    AdminBlock,
    AdminUnblock,
    RegistrationSetup,
    RegistrationCallback,
}

const ROWS: [Row; 20] = [
    Row::ConnectLink,
    Row::WebhookStart,
    Row::WebhookDisconnect,
    Row::BotToken,
    Row::SessionPut,
    Row::SessionDelete,
    Row::SessionReport,
    Row::WorkerTokenCreate,
    Row::WorkerTokenRevoke,
    Row::WorkerTokensRevokeAll,
    Row::TokenExchange,
    Row::WidgetExchange,
    Row::TokenRefresh,
    Row::LinkPost,
    Row::LinkDelete,
    Row::AdminRevoke,
    Row::AdminBlock,
    Row::AdminUnblock,
    Row::RegistrationSetup,
    Row::RegistrationCallback,
];

/// One case's fresh actors and what its setup made.
#[derive(Debug, Clone)]
struct Case {
    jwt: String,
    telegram: i64,
    /// Setup results the request or the check need (a token, an id, a body).
    ctx: Value,
}

/// A `503`, `502` or `409 update_in_progress`: try again.
fn transient(resp: &ApiResponse) -> bool {
    resp.status == 503 || resp.status == 502 || resp.json["code"] == "update_in_progress"
}

struct Rig {
    /// Faults at random on every call (the soak): set-up and checks retry transient answers.
    soak: bool,
    app: TestApp,
    faults: AwsFaults,
    fake: FakeTelegram,
    table: String,
    next: AtomicI64,
}

impl Rig {
    async fn start(tag: i64, soak: bool) -> Self {
        let fake = FakeTelegram::start().await;
        let extra = MapEnv::new()
            .with("TELEGRAM_API_BASE", fake.base_url())
            .with("TELEGRAM_API_ID", "12345678")
            .with("TELEGRAM_API_HASH", "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b")
            .with("BACKEND_URL", "https://backend.example");
        // The production SDK configuration (timeouts, retries) as it is.
        let (app, faults) = spawn_app_faulty(Backend::DynamoDb, extra, |sdk| sdk).await;
        let table = app.vars.var("TGLINK_TABLE").expect("a DynamoDB table");
        Self {
            soak,
            app,
            faults,
            fake,
            table,
            next: AtomicI64::new(tag * 100_000),
        }
    }

    fn n(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn case(&self) -> Case {
        let n = self.n();
        let user = format!("fm-user-{n}");
        Case {
            jwt: self.app.jwt(&user),
            telegram: 900_000_000 + n,
            ctx: Value::Null,
        }
    }

    fn secret(&self, var: &str) -> String {
        self.app.env.var(var).unwrap_or_else(|| panic!("{var}"))
    }

    fn admin_jwt(&self) -> String {
        let config = JwtConfig::from_env(self.app.env.as_ref()).unwrap();
        let JwtKey::Secret(secret) = &config.key else {
            panic!("the local API signs HS256")
        };
        let mut claims = DevClaims::new("fm-admin", &config, 3600);
        claims.roles = vec![tglink_shared::auth::DEFAULT_ADMIN_ROLE.into()];
        sign_hs256(secret, &claims)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> ApiResponse {
        self.app.api.call(method, path, bearer, body.as_ref()).await
    }

    /// [`Rig::call`] for set-up and checks: in the soak (faults at random on every call), sent
    /// again while it meets a transient failure.
    async fn call_until_answered(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> ApiResponse {
        let mut resp = self.call(method.clone(), path, bearer, body.clone()).await;
        for _ in 0..20 {
            if !self.soak || !transient(&resp) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            resp = self.call(method.clone(), path, bearer, body.clone()).await;
        }
        resp
    }

    /// A fresh update with `text`, delivered again (as a new update) while it meets a
    /// transient failure in the soak.
    async fn deliver_until_answered(&self, from: i64, text: &str) -> ApiResponse {
        let mut resp = self.deliver(self.n(), from, text).await;
        for _ in 0..20 {
            if !self.soak || !transient(&resp) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            resp = self.deliver(self.n(), from, text).await;
        }
        resp
    }

    async fn deliver(&self, update_id: i64, from: i64, text: &str) -> ApiResponse {
        let body = json!({
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "from": {"id": from, "is_bot": false, "first_name": "F", "username": format!("u{from}")},
                "chat": {"id": from, "type": "private"},
                "text": text,
            }
        });
        let builder = self
            .app
            .api
            .request(Method::POST, "/api/telegram/webhook")
            .header(
                "X-Telegram-Bot-Api-Secret-Token",
                self.secret("TELEGRAM_WEBHOOK_SECRET"),
            )
            .json(&body);
        self.app.api.send(builder).await
    }

    /// `POST /oauth/token` with the form `pairs`.
    async fn oauth_token(&self, pairs: &[(&str, &str)]) -> ApiResponse {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                form.append_pair(name, value);
            }
            form.finish()
        };
        let api = &self.app.api;
        api.send(
            api.request(Method::POST, "/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    fn init_data(&self, telegram: i64) -> String {
        let user = json!({"id": telegram, "first_name": "F", "username": format!("u{telegram}")})
            .to_string();
        sign_hmac(
            &[
                ("query_id", &format!("AAQ{}", self.n())),
                ("user", &user),
                ("auth_date", &UnixTime::now().secs().to_string()),
            ],
            &self.secret("TELEGRAM_BOT_TOKEN"),
        )
    }

    async fn link(&self, case: &Case) {
        let resp = self
            .call_until_answered(
                Method::POST,
                "/api/telegram/link",
                Some(&case.jwt),
                Some(json!({"init_data": self.init_data(case.telegram)})),
            )
            .await;
        assert_eq!(resp.status, 201, "setup link: {}", resp.text);
    }

    async fn linked_to(&self, case: &Case) -> Result<Option<i64>, String> {
        let resp = self
            .call_until_answered(Method::GET, "/api/telegram/link", Some(&case.jwt), None)
            .await;
        match resp.status {
            200 => Ok(resp.json["telegram_user_id"].as_i64()),
            404 => Ok(None),
            _ => Err(format!("GET link: {} {}", resp.status, resp.text)),
        }
    }

    async fn status(&self, case: &Case) -> Result<Value, String> {
        let resp = self
            .call_until_answered(Method::GET, "/api/telegram/status", Some(&case.jwt), None)
            .await;
        (resp.status == 200)
            .then_some(resp.json.clone())
            .ok_or_else(|| format!("GET status: {} {}", resp.status, resp.text))
    }

    async fn put_session(&self, case: &Case) {
        let resp = self.call_until_answered(
            Method::PUT,
            "/api/telegram/session",
            Some(&case.jwt),
            Some(json!({"session": format!("1BVts-fm-{}", case.telegram), "telegram_user_id": case.telegram, "channel_id": -1001234567890i64})),
        ).await;
        assert_eq!(resp.status, 200, "setup session: {}", resp.text);
    }

    async fn create_worker_token(&self, case: &Case) -> Value {
        let resp = self
            .call_until_answered(
                Method::POST,
                "/api/worker/tokens",
                Some(&case.jwt),
                Some(json!({"name": "fm"})),
            )
            .await;
        assert_eq!(resp.status, 201, "setup worker token: {}", resp.text);
        resp.json
    }

    async fn worker_tokens(&self, case: &Case) -> Result<Vec<Value>, String> {
        let resp = self
            .call_until_answered(Method::GET, "/api/worker/tokens", Some(&case.jwt), None)
            .await;
        if resp.status != 200 {
            return Err(format!("GET tokens: {} {}", resp.status, resp.text));
        }
        Ok(resp.json["tokens"].as_array().cloned().unwrap_or_default())
    }

    async fn setup_2fa(&self, case: &Case, retrying: bool) -> ApiResponse {
        let path = "/api/auth/setup-2fa";
        let body = json!({"service_name": "Faults", "callback_url": "https://app.example/done"});
        if retrying {
            self.call_until_answered(Method::POST, path, Some(&case.jwt), Some(body))
                .await
        } else {
            self.call(Method::POST, path, Some(&case.jwt), Some(body))
                .await
        }
    }

    async fn registration(&self, case: &Case, id: &str) -> Result<Value, String> {
        let resp = self
            .call_until_answered(
                Method::GET,
                &format!("/api/auth/registration/{id}"),
                Some(&case.jwt),
                None,
            )
            .await;
        (resp.status == 200)
            .then_some(resp.json.clone())
            .ok_or_else(|| format!("GET registration: {} {}", resp.status, resp.text))
    }

    /// The raw table's invariants: links one-to-one both ways with no half-link, registrations
    /// in exactly one known state, no claim `IN_PROGRESS` (every request has finished).
    async fn raw_invariants(&self) -> Result<(), String> {
        let client = aws_sdk_dynamodb::Client::new(&moto().sdk().await);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| format!("scan: {e}"))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let s = |item: &HashMap<String, AttributeValue>, k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok().cloned())
                .or_else(|| item.get(k).and_then(|v| v.as_n().ok().cloned()))
                .unwrap_or_default()
        };
        let mut by_telegram = HashMap::new();
        let mut by_user = HashMap::new();
        let now = UnixTime::now().secs();
        for item in &items {
            let (pk, sk) = (s(item, "pk"), s(item, "sk"));
            match sk.as_str() {
                "LINK" if pk.starts_with("TGUSER#") => {
                    by_telegram.insert(s(item, "telegram_user_id"), s(item, "user_id"));
                }
                "TGLINK" if pk.starts_with("USER#") => {
                    by_user.insert(s(item, "user_id"), s(item, "telegram_user_id"));
                }
                "REGISTRATION" if pk.starts_with("REGISTRATIONID#") => {
                    let status = s(item, "status");
                    if !["pending", "completed", "rejected", "expired"].contains(&status.as_str()) {
                        return Err(format!("registration {pk} in state {status:?}"));
                    }
                }
                // An IN_PROGRESS claim is a lease: its holder completes or releases it, or it
                // lapses at `in_progress_until` and the next delivery takes it over (a case
                // whose every write after the claim failed — `Exhaust` on `complete` — answers
                // 2xx with the effect done, and its claim lapses so; whether it converged is
                // the case's own check). Stuck is a lease longer than the in-progress window,
                // or one without a deadline: no delivery could ever take it over.
                "CLAIM" if s(item, "status") == "IN_PROGRESS" => {
                    let until: u64 = s(item, "in_progress_until").parse().unwrap_or(0);
                    if until == 0 || until > now + webhook::CLAIM_IN_PROGRESS_SECS {
                        return Err(format!("claim {pk} stuck IN_PROGRESS until {until}"));
                    }
                }
                _ => {}
            }
        }
        for (telegram, user) in &by_telegram {
            if by_user.get(user) != Some(telegram) {
                return Err(format!("half link: TGUSER#{telegram} -> {user}"));
            }
        }
        for (user, telegram) in &by_user {
            if by_telegram.get(telegram) != Some(user) {
                return Err(format!("half link: USER#{user} -> {telegram}"));
            }
        }
        Ok(())
    }
}

impl Row {
    /// Fault-free preparation; its calls are not positions of the matrix.
    async fn setup(self, rig: &Rig) -> Case {
        let mut case = rig.case();
        match self {
            Row::WebhookStart => {
                let resp = rig
                    .call_until_answered(
                        Method::POST,
                        "/api/telegram/connect-link",
                        Some(&case.jwt),
                        None,
                    )
                    .await;
                assert_eq!(resp.status, 201, "{}", resp.text);
                case.ctx = json!({"token": resp.json["token"], "update": rig.n()});
            }
            Row::WebhookDisconnect | Row::LinkDelete | Row::AdminRevoke | Row::AdminBlock => {
                rig.link(&case).await;
                case.ctx = json!({"update": rig.n()});
            }
            Row::AdminUnblock => {
                let path = format!("/api/admin/telegram/links/{}/block", case.telegram);
                let resp = rig
                    .call_until_answered(Method::POST, &path, Some(&rig.admin_jwt()), None)
                    .await;
                assert_eq!(resp.status, 200, "setup block: {}", resp.text);
            }
            Row::BotToken => {
                let token = format!("{}:AAE{:_<40}", 7_300_000_000 + rig.n(), "fm");
                rig.fake
                    .add_bot(&token, &format!("fm{}_bot", case.telegram));
                case.ctx = json!({"token": token});
            }
            Row::SessionDelete => rig.put_session(&case).await,
            Row::SessionReport => {
                rig.put_session(&case).await;
                case.ctx = rig.create_worker_token(&case).await;
            }
            Row::WorkerTokenRevoke | Row::WorkerTokensRevokeAll => {
                case.ctx = rig.create_worker_token(&case).await;
            }
            Row::TokenExchange | Row::LinkPost => {
                case.ctx = json!({"init_data": rig.init_data(case.telegram)});
            }
            Row::WidgetExchange => {
                let widget = sign_widget(
                    &[
                        ("id", &case.telegram.to_string()),
                        ("first_name", "F"),
                        ("auth_date", &UnixTime::now().secs().to_string()),
                    ],
                    &rig.secret("TELEGRAM_BOT_TOKEN"),
                );
                case.ctx = json!({"widget": widget});
            }
            Row::TokenRefresh => {
                let init_data = rig.init_data(case.telegram);
                let mut issued = None;
                for _ in 0..20 {
                    let resp = rig.oauth_token(&exchange_pairs(&init_data)).await;
                    if resp.status == 200 {
                        issued = Some(resp);
                        break;
                    }
                    // (the soak's random faults: a lost answer used the initData up)
                    if resp.status == 400 {
                        break;
                    }
                }
                let issued = issued.expect("setup: a token exchange");
                case.ctx = json!({"refresh_token": issued.json["refresh_token"]});
            }
            Row::RegistrationCallback => {
                let resp = rig.setup_2fa(&case, true).await;
                assert_eq!(resp.status, 201, "setup 2fa: {}", resp.text);
                case.ctx = resp.json;
            }
            Row::ConnectLink
            | Row::SessionPut
            | Row::WorkerTokenCreate
            | Row::RegistrationSetup => {}
        }
        case
    }

    /// The request, exactly as its client sends it again.
    async fn request(self, rig: &Rig, case: &Case) -> ApiResponse {
        let jwt = Some(case.jwt.as_str());
        let update = case.ctx["update"].as_i64().unwrap_or(0);
        match self {
            Row::ConnectLink => {
                rig.call(Method::POST, "/api/telegram/connect-link", jwt, None)
                    .await
            }
            Row::WebhookStart => {
                let token = case.ctx["token"].as_str().unwrap();
                rig.deliver(update, case.telegram, &format!("/start {token}"))
                    .await
            }
            Row::WebhookDisconnect => rig.deliver(update, case.telegram, "/disconnect").await,
            Row::BotToken => {
                rig.call(
                    Method::PUT,
                    "/api/settings/bot-token",
                    jwt,
                    Some(json!({"bot_token": case.ctx["token"]})),
                )
                .await
            }
            Row::SessionPut => rig.call(
                Method::PUT,
                "/api/telegram/session",
                jwt,
                Some(json!({"session": format!("1BVts-fm-{}", case.telegram), "telegram_user_id": case.telegram, "channel_id": -1001234567890i64})),
            ).await,
            Row::SessionDelete => {
                rig.call(Method::DELETE, "/api/telegram/session", jwt, None)
                    .await
            }
            Row::SessionReport => {
                let worker = case.ctx["worker_token"].as_str().unwrap();
                rig.call(
                    Method::POST,
                    "/api/telegram/session/report",
                    Some(worker),
                    Some(json!({"error": "AUTH_KEY_UNREGISTERED"})),
                )
                .await
            }
            Row::WorkerTokenCreate => {
                rig.call(
                    Method::POST,
                    "/api/worker/tokens",
                    jwt,
                    Some(json!({"name": "fm"})),
                )
                .await
            }
            Row::WorkerTokenRevoke => {
                let id = case.ctx["id"].as_str().unwrap();
                rig.call(Method::DELETE, &format!("/api/worker/tokens/{id}"), jwt, None)
                    .await
            }
            Row::WorkerTokensRevokeAll => {
                rig.call(Method::DELETE, "/api/worker/tokens", jwt, None)
                    .await
            }
            Row::TokenExchange => {
                rig.oauth_token(&exchange_pairs(case.ctx["init_data"].as_str().unwrap()))
                    .await
            }
            Row::WidgetExchange => {
                let mut pairs = exchange_pairs(case.ctx["widget"].as_str().unwrap());
                pairs[1].1 = "urn:tglink:params:oauth:token-type:telegram-login-widget";
                rig.oauth_token(&pairs).await
            }
            Row::TokenRefresh => {
                let token = case.ctx["refresh_token"].as_str().unwrap();
                rig.oauth_token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
                    .await
            }
            Row::LinkPost => {
                rig.call(
                    Method::POST,
                    "/api/telegram/link",
                    jwt,
                    Some(json!({"init_data": case.ctx["init_data"]})),
                )
                .await
            }
            Row::LinkDelete => {
                rig.call(Method::DELETE, "/api/telegram/link", jwt, None)
                    .await
            }
            Row::AdminRevoke | Row::AdminBlock | Row::AdminUnblock => {
                let action = match self {
                    Row::AdminRevoke => "revoke",
                    Row::AdminBlock => "block",
                    _ => "unblock",
                };
                let path = format!("/api/admin/telegram/links/{}/{action}", case.telegram);
                rig.call(Method::POST, &path, Some(&rig.admin_jwt()), None)
                    .await
            }
            Row::RegistrationSetup => rig.setup_2fa(case, false).await,
            Row::RegistrationCallback => {
                let body = serde_json::to_vec(&json!({
                    "token": case.ctx["token"], "status": "completed",
                    "seed_id": "seed-fm", "totp_seed": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
                }))
                .unwrap();
                let secret = rig.secret("REGISTRATION_CALLBACK_SECRET");
                let signature =
                    registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
                let builder = rig
                    .app
                    .api
                    .request(Method::POST, "/api/auth/registration/callback")
                    .header("content-type", "application/json")
                    .header("X-Tglink-Signature", signature)
                    .body(body);
                rig.app.api.send(builder).await
            }
        }
    }

    /// The statuses of success.
    fn success(self) -> &'static [u16] {
        match self {
            Row::ConnectLink | Row::WorkerTokenCreate | Row::RegistrationSetup => &[201],
            Row::LinkPost => &[201, 200],
            Row::SessionDelete | Row::WorkerTokenRevoke | Row::LinkDelete => &[204],
            _ => &[200],
        }
    }

    /// Documented answers that, on a retry after an answer that left the outcome open (a
    /// 503), say the work is done already.
    fn done_already(self) -> &'static [(u16, &'static str)] {
        match self {
            Row::LinkDelete | Row::AdminRevoke => &[(404, "link_not_found")],
            Row::AdminUnblock => &[(404, "block_not_found")],
            // Not fixed: a session created by a request whose every answer was lost cannot be
            // handed out again (its token is only ever shown once, and is not kept); the
            // retry is told the initData was used, and the Mini App is opened again. The
            // session left behind is held by no one.
            Row::TokenExchange => &[(400, "initdata_replayed")],
            // The same for the Login Widget: the payload was used, the user logs in again.
            Row::WidgetExchange => &[(400, "widget_replayed")],
            // Not fixed, by design (refresh token rotation, RFC 9700 §4.14.2): a refresh whose
            // every answer was lost rotated the token; the client's retry presents the
            // rotated-away one, which is reuse: the session ends and the user signs in again
            // (docs/api.md, "lost answers"). Nothing is half-written.
            Row::TokenRefresh => &[(400, "invalid_grant")],
            _ => &[],
        }
    }

    /// The state after the success, through the API.
    async fn check(self, rig: &Rig, case: &Case, last: &ApiResponse) -> Result<(), String> {
        let expect = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        match self {
            Row::ConnectLink => {
                let token = last.json["token"].as_str().ok_or("no token")?;
                let resp = rig
                    .deliver_until_answered(case.telegram, &format!("/start {token}"))
                    .await;
                expect(resp.status == 200, format!("/start: {}", resp.text))?;
                let linked = rig.linked_to(case).await?;
                expect(
                    linked == Some(case.telegram),
                    format!("the minted token did not link: {linked:?}"),
                )
            }
            Row::WebhookStart | Row::LinkPost => {
                let linked = rig.linked_to(case).await?;
                expect(
                    linked == Some(case.telegram),
                    format!("not linked: {linked:?}"),
                )
            }
            Row::WebhookDisconnect | Row::LinkDelete | Row::AdminRevoke | Row::AdminBlock => {
                let linked = rig.linked_to(case).await?;
                expect(linked.is_none(), format!("still linked: {linked:?}"))
            }
            Row::AdminUnblock => {
                let path = format!("/api/admin/telegram/links/{}/unblock", case.telegram);
                let resp = rig
                    .call_until_answered(Method::POST, &path, Some(&rig.admin_jwt()), None)
                    .await;
                expect(
                    resp.status == 404 && resp.json["code"] == "block_not_found",
                    format!("still blocked: {} {}", resp.status, resp.text),
                )
            }
            Row::BotToken => {
                let status = rig.status(case).await?;
                expect(
                    status["bot_configured"] == true,
                    format!("bot not configured: {status}"),
                )
            }
            Row::SessionPut => {
                let status = rig.status(case).await?;
                expect(status["user_auth"] == true, format!("no session: {status}"))
            }
            Row::SessionDelete => {
                let status = rig.status(case).await?;
                expect(
                    status["user_auth"] == false,
                    format!("session kept: {status}"),
                )
            }
            Row::SessionReport => {
                let status = rig.status(case).await?;
                expect(
                    status["reauth_required"] == true && status["user_auth"] == false,
                    format!("report not recorded: {status}"),
                )
            }
            Row::WorkerTokenCreate => {
                let id = last.json["id"].as_str().ok_or("no id")?;
                let tokens = rig.worker_tokens(case).await?;
                expect(
                    tokens
                        .iter()
                        .any(|t| t["id"] == id && t["revoked_at"].is_null()),
                    format!("token {id} not active: {tokens:?}"),
                )
            }
            Row::WorkerTokenRevoke | Row::WorkerTokensRevokeAll => {
                let tokens = rig.worker_tokens(case).await?;
                expect(
                    tokens.iter().all(|t| !t["revoked_at"].is_null()),
                    format!("token not revoked: {tokens:?}"),
                )
            }
            Row::TokenExchange | Row::WidgetExchange if last.status == 400 => Ok(()),
            // Reuse ended the session: its rotated token is refused too.
            Row::TokenRefresh if last.status == 400 => {
                let token = case.ctx["refresh_token"].as_str().unwrap();
                let again = rig
                    .oauth_token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
                    .await;
                expect(
                    again.status == 400,
                    format!(
                        "the ended session refreshes: {} {}",
                        again.status, again.text
                    ),
                )
            }
            // The new refresh token works (the rotation was written whole).
            Row::TokenRefresh => {
                let next = last.json["refresh_token"]
                    .as_str()
                    .ok_or("no refresh token")?;
                let mut resp = None;
                for _ in 0..20 {
                    let r = rig
                        .oauth_token(&[("grant_type", "refresh_token"), ("refresh_token", next)])
                        .await;
                    if r.status != 503 {
                        resp = Some(r);
                        break;
                    }
                }
                let resp = resp.ok_or("the new refresh token: only 503s")?;
                expect(
                    resp.status == 200,
                    format!(
                        "the rotated token does not refresh: {} {}",
                        resp.status, resp.text
                    ),
                )
            }
            Row::TokenExchange | Row::WidgetExchange => {
                let token = last.json["access_token"]
                    .as_str()
                    .ok_or("no access token")?;
                let resp = rig
                    .call_until_answered(
                        Method::POST,
                        "/api/telegram/link",
                        Some(&case.jwt),
                        Some(json!({"access_token": token})),
                    )
                    .await;
                expect(
                    resp.status == 201,
                    format!("the session does not link: {} {}", resp.status, resp.text),
                )
            }
            Row::RegistrationSetup => {
                let id = last.json["registration_id"].as_str().ok_or("no id")?;
                let reg = rig.registration(case, id).await?;
                expect(reg["status"] == "pending", format!("{reg}"))
            }
            Row::RegistrationCallback => {
                let id = case.ctx["registration_id"].as_str().unwrap();
                let reg = rig.registration(case, id).await?;
                expect(reg["status"] == "completed", format!("{reg}"))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Once,
    Exhaust,
}

/// Where a case stands.
enum Step {
    /// Finished: a violation, if any.
    Done(Option<String>),
    /// Told to come back after this long (a webhook update another attempt still holds):
    /// Telegram redelivers later; so does the matrix, at the end of the row.
    Later(Case, Duration),
}

/// Runs one case: `inject` before the request, then the client's retries without faults.
async fn run_case(rig: &Rig, row: Row, inject: impl Fn(&Rig)) -> Step {
    let case = row.setup(rig).await;
    rig.faults.clear();
    rig.faults.take();
    inject(rig);
    let resp = row.request(rig, &case).await;
    rig.faults.clear();
    rig.fake.up();
    converge(rig, row, case, resp, false).await
}

/// The form of an initData token exchange.
fn exchange_pairs(init_data: &str) -> [(&'static str, &str); 3] {
    [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        (
            "subject_token_type",
            "urn:tglink:params:oauth:token-type:telegram-init-data",
        ),
        ("subject_token", init_data),
    ]
}

/// A refusal's stable code: problem+json's `code`, or for an OAuth error (RFC 6749 JSON) the
/// tglink code its description starts with (`initdata_replayed: …`), else its `error`.
fn code_of(resp: &ApiResponse) -> &str {
    if let Some(code) = resp.json["code"].as_str() {
        return code;
    }
    let description = resp.json["error_description"].as_str().unwrap_or("");
    match description.split_once(':') {
        Some((lead, _)) if lead.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => lead,
        _ => resp.json["error"].as_str().unwrap_or(""),
    }
}

/// The client's retries from `resp` on, then the state check.
async fn converge(
    rig: &Rig,
    row: Row,
    case: Case,
    mut resp: ApiResponse,
    mut retried: bool,
) -> Step {
    for _ in 0..if rig.soak { 12 } else { 4 } {
        let status = resp.status;
        let code = code_of(&resp);
        if row.success().contains(&status) {
            break;
        }
        if retried && row.done_already().contains(&(status, code)) {
            break;
        }
        if status == 409 && code == "update_in_progress" {
            let secs = resp
                .header("retry-after")
                .and_then(|s| s.parse().ok())
                .unwrap_or(60);
            return Step::Later(case, Duration::from_secs(secs));
        }
        let transient = (status == 503
            && (code == "service_unavailable" || code == "temporarily_unavailable")
            && resp.header("retry-after").is_some())
            || (status == 502 && code == "telegram_unreachable" && row == Row::BotToken);
        if !transient {
            return Step::Done(Some(format!(
                "{}answered {status} {}",
                if retried { "a retry " } else { "" },
                resp.text
            )));
        }
        retried = true;
        resp = row.request(rig, &case).await;
    }
    let status = resp.status;
    let code = code_of(&resp);
    let converged = row.success().contains(&status)
        || (retried && row.done_already().contains(&(status, code)));
    if !converged {
        return Step::Done(Some(format!(
            "retries did not converge: {status} {}",
            resp.text
        )));
    }
    Step::Done(
        row.check(rig, &case, &resp)
            .await
            .err()
            .map(|e| format!("state: {e}")),
    )
}

#[derive(Debug, Default)]
struct RowResult {
    positions: usize,
    cases: usize,
    /// Cases told to come back later (and redelivered then).
    redelivered_later: usize,
    violations: Vec<String>,
}

async fn run_row(tag: i64, row: Row) -> RowResult {
    let rig = Rig::start(tag, false).await;
    // A fault-free run finds the request's AWS calls: the positions.
    let case = row.setup(&rig).await;
    rig.faults.take();
    let resp = row.request(&rig, &case).await;
    let calls = rig.faults.take();
    assert!(
        row.success().contains(&resp.status),
        "{row:?} fault-free: {} {}",
        resp.status,
        resp.text
    );
    if let Err(e) = row.check(&rig, &case, &resp).await {
        panic!("{row:?} fault-free state: {e}");
    }
    let mut later = Vec::new();
    let mut result = RowResult {
        positions: calls.len(),
        ..Default::default()
    };
    for (i, call) in calls.iter().enumerate() {
        let position = i + 1;
        for fault in AwsFault::all_for(&call.call.service) {
            for mode in [Mode::Once, Mode::Exhaust] {
                let rule = match mode {
                    Mode::Once => Rule::new(Match::Nth(position), fault).times(1),
                    Mode::Exhaust => {
                        Rule::new(Match::From(position), fault).times(MAX_ATTEMPTS as usize)
                    }
                };
                result.cases += 1;
                let name = format!("{row:?} #{position} {} {fault} {mode:?}", call.call);
                match run_case(&rig, row, |rig| rig.faults.set(vec![rule.clone()])).await {
                    Step::Done(None) => {}
                    Step::Done(Some(v)) => result.violations.push(format!("{name}: {v}")),
                    Step::Later(case, wait) => later.push((name, case, Instant::now() + wait)),
                }
            }
        }
    }
    if row == Row::BotToken {
        for fault in [
            BotApiFault::Status(502),
            BotApiFault::Status(500),
            BotApiFault::Hang,
            BotApiFault::ResetAfterSending,
        ] {
            result.cases += 1;
            let name = format!("{row:?} Bot API getMe {fault:?}");
            match run_case(&rig, row, |rig| rig.fake.fault(fault)).await {
                Step::Done(None) => {}
                Step::Done(Some(v)) => result.violations.push(format!("{name}: {v}")),
                Step::Later(case, wait) => later.push((name, case, Instant::now() + wait)),
            }
        }
    }
    // The redeliveries, once their Retry-After has passed (a second over, for the claim's
    // whole-second deadline).
    if let Some(last) = later.iter().map(|(_, _, at)| *at).max() {
        tokio::time::sleep_until((last + Duration::from_secs(2)).into()).await;
    }
    result.redelivered_later = later.len();
    for (name, case, _) in later {
        let resp = row.request(&rig, &case).await;
        match converge(&rig, row, case, resp, true).await {
            Step::Done(None) => {}
            Step::Done(Some(v)) => result.violations.push(format!("{name}: later: {v}")),
            Step::Later(..) => result
                .violations
                .push(format!("{name}: still in progress after its Retry-After")),
        }
    }
    // Every case used fresh users, so what a case left in the table is still there: the raw
    // invariants are checked once, over all of them.
    if let Err(e) = rig.raw_invariants().await {
        result.violations.push(format!("{row:?} raw table: {e}"));
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_endpoint_converges_under_every_fault() {
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    // A few rows at a time: moto serves one request at a time.
    let slots = Arc::new(tokio::sync::Semaphore::new(6));
    for (i, row) in ROWS.iter().enumerate() {
        let (row, slots) = (*row, slots.clone());
        handles.push((
            row,
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.expect("open semaphore");
                run_row(i as i64 + 1, row).await
            }),
        ));
    }
    let (mut positions, mut cases, mut violations) = (0, 0, Vec::new());
    for (row, handle) in handles {
        let result = handle.await.unwrap_or_else(|e| panic!("{row:?}: {e}"));
        eprintln!(
            "fault matrix: {row:?}: {} AWS call positions, {} cases ({} redelivered after \
             Retry-After), {} violations",
            result.positions,
            result.cases,
            result.redelivered_later,
            result.violations.len()
        );
        positions += result.positions;
        cases += result.cases;
        violations.extend(result.violations);
    }
    eprintln!(
        "fault matrix: {} endpoints × {positions} AWS call positions × their fault kinds × 2 modes \
         (+ Bot API faults) = {cases} cases, {} violations, in {:?}",
        ROWS.len(),
        violations.len(),
        started.elapsed()
    );
    for v in &violations {
        eprintln!("  {v}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
}

/// The randomized-fault soak: concurrent clients send every write endpoint's request (the
/// matrix's rows, at random) for a bounded time while every AWS call meets a fault at a small
/// rate (any kind but a hang, and a few hangs); every request must answer as in the matrix
/// and converge, and the raw table's invariants hold at the end. `TGLINK_FAULT_SOAK_SECS`
/// (default 30) and `TGLINK_FAULT_SOAK_SEED` (default: from the clock) are the knobs; the seed
/// is printed, so a failure can be replayed (the same seed gives the same fault sequence over
/// the same call order; concurrency may order calls differently).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_faults_soak() {
    use tglink_tests::faults::{AwsErrorKind, splitmix};

    let tglink_tests::faults::SoakKnobs { secs, seed } =
        tglink_tests::faults::SoakKnobs::from_env("fault soak", "TGLINK_FAULT_SOAK");
    let rig = Arc::new(Rig::start(99, true).await);
    let mut kinds = vec![AwsFault::LoseResponse; 4];
    kinds.extend(
        AwsErrorKind::DYNAMODB
            .iter()
            .chain(AwsErrorKind::KMS.iter())
            .map(|&e| AwsFault::Error(e)),
    );
    kinds.push(AwsFault::Hang);
    rig.faults.random(0.05, seed, kinds);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for client in 0..4u64 {
        let rig = rig.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let (mut cases, mut violations, mut later) = (0usize, Vec::new(), Vec::new());
            while Instant::now() < deadline {
                let row = ROWS[splitmix(&mut rng) as usize % ROWS.len()];
                let case = row.setup(&rig).await;
                let resp = row.request(&rig, &case).await;
                cases += 1;
                match converge(&rig, row, case, resp, false).await {
                    Step::Done(None) => {}
                    Step::Done(Some(v)) => violations.push(format!("{row:?}: {v}")),
                    Step::Later(case, wait) => later.push((row, case, Instant::now() + wait)),
                }
            }
            (cases, violations, later)
        }));
    }
    let (mut cases, mut violations, mut later) = (0, Vec::new(), Vec::new());
    for client in clients {
        let (c, v, l) = client.await.expect("a soak client");
        cases += c;
        violations.extend(v);
        later.extend(l);
    }
    rig.faults.clear();
    let injected = rig
        .faults
        .take()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    if let Some(last) = later.iter().map(|(_, _, at)| *at).max() {
        tokio::time::sleep_until((last + Duration::from_secs(2)).into()).await;
    }
    for (row, case, _) in later {
        let resp = row.request(&rig, &case).await;
        match converge(&rig, row, case, resp, true).await {
            Step::Done(None) => {}
            Step::Done(Some(v)) => violations.push(format!("{row:?}: later: {v}")),
            Step::Later(..) => violations.push(format!("{row:?}: still in progress")),
        }
    }
    if let Err(e) = rig.raw_invariants().await {
        violations.push(format!("raw table: {e}"));
    }
    eprintln!(
        "fault soak: {cases} requests by 4 clients in {secs} s, {injected} faults injected, {} violations (seed {seed})",
        violations.len()
    );
    for v in &violations {
        eprintln!("  {v}");
    }
    assert!(
        violations.is_empty(),
        "{} violations; replay with TGLINK_FAULT_SOAK_SEED={seed}",
        violations.len()
    );
}
