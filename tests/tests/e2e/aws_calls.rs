//! AWS calls per request: every endpoint driven over HTTP through the local API on DynamoDB +
//! KMS (moto), with every request the app sends to AWS counted by the SDK configuration it was
//! built with (`tglink_tests::aws_calls`). The design's budgets are asserted here (a count, not
//! a time): connect-link 1; webhook `/start` ≤ 2 and no outbound Telegram call; verify 1;
//! worker-credentials 1 DynamoDB + ≤ 1 KMS, and 0 KMS on 304; 2FA verify ≤ 2 DynamoDB + 1 KMS;
//! the signing key 1 DynamoDB + 1 KMS once per cold start and 0 per token; JWKS, discovery and a warm userinfo 0
//! when warm; the oauth token exchange and refresh 1 DynamoDB + 0 KMS on a warm function; a
//! delivered notify ≤ 4 DynamoDB + 0 KMS + exactly 1 Telegram call, 0 Telegram calls when refused;
//! the OpenID provider: authorize 1, Telegram's callback 2, `authorization_code` 2 DynamoDB + 0 KMS. The
//! other endpoints' costs are
//! recorded for the benchmark report (`TGLINK_BENCH_OUT`), pinned so a change is noticed.
//!
//! Only the DynamoDB/KMS adapters make AWS calls, so these tests run on that backend alone.

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{config::Env, config::MapEnv, time::UnixTime};
use tglink_tests::{
    app::{TestApp, spawn_app_counting},
    aws_calls::{AwsCalls, CallsReport, CallsRow, Tally},
    fake_telegram::FakeTelegram,
    fixtures::Backend,
    http_client::ApiResponse,
};

const CONNECT: &str = "/api/telegram/connect-link";
const WEBHOOK: &str = "/api/telegram/webhook";
const VERIFY: &str = "/api/telegram/miniapp/verify";
const BOT_TOKEN: &str = "/api/settings/bot-token";
const SESSION: &str = "/api/telegram/session";
const STATUS: &str = "/api/telegram/status";
const REPORT: &str = "/api/telegram/session/report";
const TOKENS: &str = "/api/worker/tokens";
const CREDS: &str = "/api/worker/credentials";
const SETUP_2FA: &str = "/api/auth/setup-2fa";
const CALLBACK: &str = "/api/auth/registration/callback";
const VERIFY_2FA: &str = "/api/auth/2fa/verify";

/// A request with a budget: what it cost and whether that meets the budget.
struct Budgeted {
    tally: Tally,
    telegram: usize,
    met: bool,
}

struct Counted {
    app: TestApp,
    calls: AwsCalls,
    fake: FakeTelegram,
    report: std::sync::Mutex<CallsReport>,
    /// Telegram calls already attributed to a row.
    telegram_seen: std::sync::Mutex<usize>,
}

async fn counted() -> Counted {
    let fake = FakeTelegram::start().await;
    let extra = MapEnv::new()
        .with("TELEGRAM_API_BASE", fake.base_url())
        .with("TELEGRAM_API_ID", "12345678")
        .with("TELEGRAM_API_HASH", "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b")
        .with("BACKEND_URL", "https://backend.example");
    let (app, calls) = spawn_app_counting(Backend::DynamoDb, extra).await;
    // Building the functions makes no AWS call (no SSM prefix is set); start from zero anyway.
    calls.take();
    Counted {
        app,
        calls,
        fake,
        report: Default::default(),
        telegram_seen: Default::default(),
    }
}

impl Counted {
    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> ApiResponse {
        self.app.api.call(method, path, bearer, body.as_ref()).await
    }

    /// The calls of the last request(s), recorded as one report row.
    fn record(
        &self,
        function: &str,
        endpoint: &str,
        case: &str,
        resp: &ApiResponse,
    ) -> (Tally, usize) {
        self.row(function, endpoint, case, resp)
    }

    /// Like `record`, for a request with a budget: `within` says whether the calls (and the
    /// number of outbound Telegram calls) meet it; the row carries both for the report.
    fn record_budget(
        &self,
        function: &str,
        endpoint: &str,
        case: &str,
        resp: &ApiResponse,
        budget: &str,
        within: impl Fn(&Tally, usize) -> bool,
    ) -> Budgeted {
        let tally = self.calls.take();
        let telegram = self.telegram_since_last();
        let met = within(&tally, telegram);
        self.report.lock().unwrap().push(
            CallsRow::new(function, endpoint, case, resp.status, &tally)
                .telegram(telegram)
                .budget(budget, met),
        );
        Budgeted {
            tally,
            telegram,
            met,
        }
    }

    fn row(
        &self,
        function: &str,
        endpoint: &str,
        case: &str,
        resp: &ApiResponse,
    ) -> (Tally, usize) {
        let tally = self.calls.take();
        let telegram = self.telegram_since_last();
        self.report.lock().unwrap().push(CallsRow::new(
            function,
            endpoint,
            case,
            resp.status,
            &tally,
        ));
        (tally, telegram)
    }

    /// Forgets the calls of the last request(s): set-up, not measured.
    fn skip(&self) {
        self.calls.take();
        self.telegram_since_last();
    }

    /// Outbound Telegram calls since the last row.
    fn telegram_since_last(&self) -> usize {
        let total = self.fake.calls().len();
        let mut seen = self.telegram_seen.lock().unwrap();
        let new = total - *seen;
        *seen = total;
        new
    }

    fn write(&self, name: &str) {
        self.report.lock().unwrap().write(name);
    }

    fn jwt(&self, user: &str) -> String {
        self.app.jwt(user)
    }
}

/// `POST /api/telegram/connect-link`: one DynamoDB call (the token's conditional put).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_link_costs_one_call() {
    let c = counted().await;
    let jwt = c.jwt("user-calls-1");
    let resp = c.send(Method::POST, CONNECT, Some(&jwt), None).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let cost = c.record_budget(
        "connect-link",
        "POST /api/telegram/connect-link",
        "mint a link",
        &resp,
        "1 AWS call",
        |t, _| t.total() == 1,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.names(), ["DynamoDB.PutItem"]);

    // Refused before the store: no call.
    let resp = c.send(Method::POST, CONNECT, None, None).await;
    resp.assert_problem(401, "auth_required");
    let (tally, _) = c.record(
        "connect-link",
        "POST /api/telegram/connect-link",
        "no JWT (401)",
        &resp,
    );
    assert_eq!(tally.total(), 0);
    c.write("connect-link");
}

fn update(update_id: i64, from: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1000,
            "date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": "Test", "username": format!("user{from}")},
            "chat": {"id": from, "type": "private"},
            "text": text,
        }
    })
}

/// `POST /api/telegram/webhook`: `/start <token>` costs at most two AWS calls and makes no call
/// to Telegram (the reply rides in the webhook response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_start_costs_two_calls_and_no_telegram_call() {
    let c = counted().await;
    let secret = c
        .app
        .env
        .var("TELEGRAM_WEBHOOK_SECRET")
        .expect("the local API has a webhook secret");
    let jwt = c.jwt("user-calls-2");
    let resp = c.send(Method::POST, CONNECT, Some(&jwt), None).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let token = resp.json["token"].as_str().unwrap().to_owned();
    c.skip();

    let deliver = |body: Value| {
        let builder = c
            .app
            .api
            .request(Method::POST, WEBHOOK)
            .header("X-Telegram-Bot-Api-Secret-Token", &secret)
            .json(&body);
        c.app.api.send(builder)
    };
    let resp = deliver(update(1, 5151, &format!("/start {token}"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["method"], "sendMessage", "{}", resp.text);
    let cost = c.record_budget(
        "webhook",
        "POST /api/telegram/webhook",
        "/start <token>",
        &resp,
        "≤ 2 AWS calls, 0 Telegram calls",
        |t, telegram| t.total() <= 2 && telegram == 0,
    );
    assert!(
        cost.met,
        "{:?}, {} Telegram calls",
        cost.tally.names(),
        cost.telegram
    );
    assert_eq!(
        cost.tally.names(),
        ["DynamoDB.TransactGetItems", "DynamoDB.TransactWriteItems"]
    );

    let resp = deliver(update(1, 5151, &format!("/start {token}"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record(
        "webhook",
        "POST /api/telegram/webhook",
        "redelivered /start",
        &resp,
    );
    assert_eq!(tally.names(), ["DynamoDB.TransactGetItems"]);

    let resp = deliver(update(2, 5151, "/status")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record("webhook", "POST /api/telegram/webhook", "/status", &resp);
    assert_eq!(tally.names(), ["DynamoDB.GetItem"]);

    let resp = deliver(update(3, 5151, "/disconnect")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, telegram) = c.record(
        "webhook",
        "POST /api/telegram/webhook",
        "/disconnect",
        &resp,
    );
    assert_eq!(tally.count("KMS"), 0);
    assert!(tally.total() >= 1, "{:?}", tally.names());
    assert_eq!(telegram, 0);
    c.write("webhook");
}

/// The settings endpoints, then `GET /api/worker/credentials`: one DynamoDB call and at most
/// one KMS call, and none on a 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_credentials_cost_one_read_and_at_most_one_kms_call() {
    let c = counted().await;
    let jwt = c.jwt("user-calls-3");
    let token = format!("{}:AAE{:_<40}", 7_100_000_001u64, "calls");
    c.fake.add_bot(&token, "calls_bot");

    let resp = c
        .send(
            Method::PUT,
            BOT_TOKEN,
            Some(&jwt),
            Some(json!({"bot_token": token})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.record(
        "settings",
        "PUT /api/settings/bot-token",
        "save (after getMe)",
        &resp,
    );
    let resp = c
        .send(
            Method::PUT,
            SESSION,
            Some(&jwt),
            Some(json!({"session": "1BVtsOKABu0-calls-session", "telegram_user_id": 4242, "channel_id": -1001234567890i64})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.record("settings", "PUT /api/telegram/session", "save", &resp);
    let resp = c.send(Method::GET, STATUS, Some(&jwt), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record("settings", "GET /api/telegram/status", "read", &resp);
    assert_eq!(tally.names(), ["DynamoDB.GetItem"]);
    let resp = c
        .send(
            Method::POST,
            TOKENS,
            Some(&jwt),
            Some(json!({"name": "uploader"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    c.record("settings", "POST /api/worker/tokens", "create", &resp);
    let worker = resp.json["worker_token"].as_str().unwrap().to_owned();
    let id = resp.json["id"].as_str().unwrap().to_owned();
    let resp = c.send(Method::GET, TOKENS, Some(&jwt), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.record("settings", "GET /api/worker/tokens", "list", &resp);

    // The budgeted endpoint, with the user's app JWT: one read (an UpdateItem that records
    // the activity and returns the record) and one KMS Decrypt; a 304 skips the Decrypt.
    let one_read = |kms: usize| {
        move |t: &Tally, _: usize| {
            t.count("DynamoDB") == 1
                && t.count("KMS") <= kms
                && t.total() == t.count("DynamoDB") + t.count("KMS")
        }
    };
    let resp = c.send(Method::GET, CREDS, Some(&jwt), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let etag = resp.header("etag").expect("an ETag").to_owned();
    let cost = c.record_budget(
        "worker-credentials",
        "GET /api/worker/credentials",
        "200, app JWT",
        &resp,
        "1 DynamoDB + ≤ 1 KMS",
        one_read(1),
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.names(), ["DynamoDB.UpdateItem", "KMS.Decrypt"]);

    let if_none_match = |bearer: &str| {
        c.app.api.send(
            c.app
                .api
                .request(Method::GET, CREDS)
                .bearer_auth(bearer)
                .header("if-none-match", &etag),
        )
    };
    let resp = if_none_match(&jwt).await;
    assert_eq!(resp.status, 304, "{}", resp.text);
    let cost = c.record_budget(
        "worker-credentials",
        "GET /api/worker/credentials",
        "304 (If-None-Match), app JWT",
        &resp,
        "1 DynamoDB + 0 KMS",
        one_read(0),
    );
    assert!(
        cost.met,
        "a 304 must not call KMS: {:?}",
        cost.tally.names()
    );

    // With a worker token: the same one call. The token names its user, and the credentials
    // read's condition also checks that its hash is among the user's active tokens.
    let resp = c.send(Method::GET, CREDS, Some(&worker), None).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "worker-credentials",
        "GET /api/worker/credentials",
        "200, worker token",
        &resp,
        "1 DynamoDB + ≤ 1 KMS",
        one_read(1),
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.names(), ["DynamoDB.UpdateItem", "KMS.Decrypt"]);
    let resp = if_none_match(&worker).await;
    assert_eq!(resp.status, 304, "{}", resp.text);
    let cost = c.record_budget(
        "worker-credentials",
        "GET /api/worker/credentials",
        "304 (If-None-Match), worker token",
        &resp,
        "1 DynamoDB + 0 KMS",
        one_read(0),
    );
    assert!(
        cost.met,
        "a 304 must not call KMS: {:?}",
        cost.tally.names()
    );
    assert_eq!(cost.tally.names(), ["DynamoDB.UpdateItem"]);

    // The rest of settings, for the record.
    let resp = c
        .send(
            Method::POST,
            REPORT,
            Some(&worker),
            Some(json!({"error": "AUTH_KEY_UNREGISTERED", "etag": etag})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    // The worker token checked (one read of its set), the record read, then cleared by one
    // write whose condition checks the token again.
    let (tally, _) = c.record(
        "settings",
        "POST /api/telegram/session/report",
        "session reported dead",
        &resp,
    );
    assert_eq!(
        tally.names(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.GetItem",
            "DynamoDB.UpdateItem"
        ]
    );
    let resp = c.send(Method::DELETE, SESSION, Some(&jwt), None).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    c.record("settings", "DELETE /api/telegram/session", "clear", &resp);
    let resp = c
        .send(Method::DELETE, &format!("{TOKENS}/{id}"), Some(&jwt), None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    c.record(
        "settings",
        "DELETE /api/worker/tokens/{id}",
        "revoke",
        &resp,
    );
    // Revoke all: the listing read, then one transaction (listing items + the set).
    let resp = c
        .send(
            Method::POST,
            TOKENS,
            Some(&jwt),
            Some(json!({"name": "w2"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    c.skip();
    let resp = c.send(Method::DELETE, TOKENS, Some(&jwt), None).await;
    assert_eq!(resp.json, json!({"revoked": 1}), "{}", resp.text);
    let (tally, _) = c.record("settings", "DELETE /api/worker/tokens", "revoke all", &resp);
    assert_eq!(
        tally.names(),
        ["DynamoDB.Query", "DynamoDB.TransactWriteItems"]
    );
    // Clearing the session (none stored) with the worker tokens: the record read, then as
    // revoke all.
    let resp = c
        .send(
            Method::POST,
            TOKENS,
            Some(&jwt),
            Some(json!({"name": "w3"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    c.skip();
    let resp = c
        .send(
            Method::DELETE,
            &format!("{SESSION}?revoke_workers=true"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    let (tally, _) = c.record(
        "settings",
        "DELETE /api/telegram/session",
        "clear, revoking worker tokens",
        &resp,
    );
    assert_eq!(
        tally.names(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.Query",
            "DynamoDB.TransactWriteItems"
        ]
    );

    // A revoked token: refused by the same one call, nothing decrypted.
    let resp = c.send(Method::GET, CREDS, Some(&worker), None).await;
    resp.assert_problem(401, "worker_token_invalid");
    let cost = c.record_budget(
        "worker-credentials",
        "GET /api/worker/credentials",
        "401, revoked worker token",
        &resp,
        "1 DynamoDB + 0 KMS",
        one_read(0),
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.names(), ["DynamoDB.UpdateItem"]);
    c.write("vault");
}

/// The registration endpoints, for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_calls() {
    let c = counted().await;
    let jwt = c.jwt("user-calls-4");
    let secret = c
        .app
        .env
        .var("REGISTRATION_CALLBACK_SECRET")
        .expect("the local API has a dev callback secret");
    let resp = c
        .send(
            Method::POST,
            SETUP_2FA,
            Some(&jwt),
            Some(json!({"service_name": "Calls", "callback_url": "https://app.example/done", "email": "calls@example.com"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    c.record("registration", "POST /api/auth/setup-2fa", "create", &resp);
    let id = resp.json["registration_id"].as_str().unwrap().to_owned();
    let token = resp.json["token"].as_str().unwrap().to_owned();

    let body = serde_json::to_vec(&json!({"token": token, "status": "completed", "seed_id": "seed-1", "totp_seed": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"})).unwrap();
    let signature = registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
    let builder = c
        .app
        .api
        .request(Method::POST, CALLBACK)
        .header("content-type", "application/json")
        .header("X-Tglink-Signature", signature)
        .body(body);
    let resp = c.app.api.send(builder).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.record(
        "registration",
        "POST /api/auth/registration/callback",
        "completed (seed sealed)",
        &resp,
    );
    let resp = c
        .send(
            Method::GET,
            &format!("/api/auth/registration/{id}"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record(
        "registration",
        "GET /api/auth/registration/{id}",
        "status",
        &resp,
    );
    assert_eq!(tally.count("KMS"), 0, "{:?}", tally.names());
    c.write("registration");
}

/// `POST /api/telegram/miniapp/verify`: one AWS call (the design's budget). Verify validates
/// initData and consumes no replay claim, so its one call is a read (the block check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_costs_one_call() {
    use tglink_shared::telegram::initdata::signing::sign_hmac;

    let c = counted().await;
    let bot_token = c
        .app
        .env
        .var("TELEGRAM_BOT_TOKEN")
        .expect("the local API has a dev bot token");
    let user = json!({"id": 4701, "first_name": "Ann", "username": "ann4701"}).to_string();
    let init_data = sign_hmac(
        &[
            ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
            ("user", &user),
            ("auth_date", &UnixTime::now().secs().to_string()),
        ],
        &bot_token,
    );
    let resp = c
        .send(
            Method::POST,
            VERIFY,
            None,
            Some(json!({"init_data": init_data})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "initdata-verify",
        "POST /api/telegram/miniapp/verify",
        "valid initData",
        &resp,
        "1 AWS call",
        |t, _| t.total() == 1,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.count("KMS"), 0, "{:?}", cost.tally.names());

    // Verify consumes nothing: the same initData again costs the same.
    let resp = c
        .send(
            Method::POST,
            VERIFY,
            None,
            Some(json!({"init_data": init_data})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record(
        "initdata-verify",
        "POST /api/telegram/miniapp/verify",
        "same initData again",
        &resp,
    );
    assert_eq!(tally.total(), 1, "{:?}", tally.names());

    // Refused before the store: no call.
    let resp = c
        .send(Method::POST, VERIFY, None, Some(json!({"init_data": "x"})))
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text);
    let (tally, _) = c.record(
        "initdata-verify",
        "POST /api/telegram/miniapp/verify",
        "malformed initData (401)",
        &resp,
    );
    assert_eq!(tally.total(), 0, "{:?}", tally.names());
    c.write("verify");
}

/// `POST /api/auth/2fa/verify`: at most 2 DynamoDB calls and 1 KMS call (the design's budget),
/// whatever the outcome: a right code (read, `Decrypt`, one transaction), a named registration
/// (one `TransactGetItems` instead of the read), a replay, a wrong code (read, `Decrypt`, one
/// `UpdateItem`), and a locked user (the read alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_verify_costs_at_most_2_dynamodb_and_1_kms() {
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let c = counted().await;
    let jwt = c.jwt("user-calls-totp");
    let secret = c.app.env.var("REGISTRATION_CALLBACK_SECRET").unwrap();
    let resp = c
        .send(
            Method::POST,
            SETUP_2FA,
            Some(&jwt),
            Some(json!({"service_name": "Calls"})),
        )
        .await;
    let id = resp.json["registration_id"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(
        &json!({"token": resp.json["token"], "status": "completed", "totp_seed": SEED}),
    )
    .unwrap();
    let signature = registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
    let builder = c
        .app
        .api
        .request(Method::POST, CALLBACK)
        .header("content-type", "application/json")
        .header("X-Tglink-Signature", signature)
        .body(body);
    let resp = c.app.api.send(builder).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.skip();

    let totp = registration::totp::parse_seed(SEED).unwrap();
    let now = UnixTime::now().secs();
    let code = totp.generate(now).to_string();
    let budget = |t: &Tally, _| t.count("DynamoDB") <= 2 && t.count("KMS") <= 1 && t.total() <= 3;
    let cases: [(&str, Value, u16, &[&str]); 4] = [
        (
            "right code",
            json!({"code": code}),
            200,
            &[
                "DynamoDB.GetItem",
                "KMS.Decrypt",
                "DynamoDB.TransactWriteItems",
            ],
        ),
        (
            "the same code again",
            json!({"code": code}),
            401,
            &[
                "DynamoDB.GetItem",
                "KMS.Decrypt",
                "DynamoDB.TransactWriteItems",
            ],
        ),
        (
            "right code, registration named",
            json!({"code": totp.generate(now + 30).to_string(), "registration_id": id}),
            200,
            &[
                "DynamoDB.TransactGetItems",
                "KMS.Decrypt",
                "DynamoDB.TransactWriteItems",
            ],
        ),
        (
            "wrong code",
            json!({"code": "12345"}),
            401,
            &["DynamoDB.GetItem", "KMS.Decrypt", "DynamoDB.UpdateItem"],
        ),
    ];
    for (case, body, status, calls) in cases {
        let resp = c
            .send(Method::POST, VERIFY_2FA, Some(&jwt), Some(body))
            .await;
        assert_eq!(resp.status, status, "{case}: {}", resp.text);
        let cost = c.record_budget(
            "registration",
            "POST /api/auth/2fa/verify",
            case,
            &resp,
            "≤ 2 DynamoDB + 1 KMS",
            budget,
        );
        assert!(cost.met, "{case}: {:?}", cost.tally.names());
        assert_eq!(cost.tally.names(), calls, "{case}");
    }
    // Four more wrong codes (five in all, the default TOTP_MAX_FAILURES): locked.
    for _ in 0..4 {
        let resp = c
            .send(
                Method::POST,
                VERIFY_2FA,
                Some(&jwt),
                Some(json!({"code": "12345"})),
            )
            .await;
        assert_eq!(resp.status, 401, "{}", resp.text);
    }
    c.skip();
    let resp = c
        .send(
            Method::POST,
            VERIFY_2FA,
            Some(&jwt),
            Some(json!({"code": code})),
        )
        .await;
    resp.assert_problem(429, "totp_locked");
    let cost = c.record_budget(
        "registration",
        "POST /api/auth/2fa/verify",
        "locked",
        &resp,
        "≤ 2 DynamoDB + 1 KMS",
        budget,
    );
    assert_eq!(cost.tally.names(), ["DynamoDB.GetItem"]);
    c.write("totp");
}

/// `POST /oauth/token` and `/oauth/revoke` (issue 14). The first token of a cold process loads
/// (here: creates) the signing key; after that, warm: an initData exchange is 1 DynamoDB call
/// (one `UpdateItem` of the sign-in record) and 0 KMS, so is a Login Widget exchange, a refresh
/// 1 DynamoDB and 0 KMS, a revoke by refresh token 1 DynamoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_exchange_and_refresh_cost_one_call_and_no_kms() {
    use tglink_shared::telegram::initdata::signing::sign_hmac;

    let c = counted().await;
    let bot_token = c.app.env.var("TELEGRAM_BOT_TOKEN").unwrap();
    let init_data = |query_id: &str| {
        let user = json!({"id": 4711, "first_name": "Ann", "username": "ann4711"}).to_string();
        sign_hmac(
            &[
                ("query_id", query_id),
                ("user", &user),
                ("auth_date", &UnixTime::now().secs().to_string()),
            ],
            &bot_token,
        )
    };
    let form = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let post = |path: &'static str, body: String| {
        let api = &c.app.api;
        api.send(
            api.request(Method::POST, path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
    };
    let exchange = |data: String| {
        form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "subject_token_type",
                "urn:tglink:params:oauth:token-type:telegram-init-data",
            ),
            ("subject_token", &data),
        ])
    };

    // Cold: the first token also creates and seals the deployment's first signing key.
    let resp = post("/oauth/token", exchange(init_data("OC1"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    c.record(
        "oauth",
        "POST /oauth/token",
        "initData exchange, cold (first signing key created)",
        &resp,
    );

    // Warm exchange: one UpdateItem, no KMS.
    let resp = post("/oauth/token", exchange(init_data("OC2"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let refresh = resp.json["refresh_token"].as_str().unwrap().to_owned();
    let cost = c.record_budget(
        "oauth",
        "POST /oauth/token",
        "initData exchange, warm",
        &resp,
        "1 DynamoDB + 0 KMS",
        |t, _| t.count("DynamoDB") == 1 && t.count("KMS") == 0 && t.total() == 1,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.operations("DynamoDB"), ["UpdateItem"]);

    // Warm Login Widget exchange (issue 15): the same one UpdateItem, no KMS.
    let widget = tglink_shared::telegram::login_widget::signing::sign_widget(
        &[
            ("id", "4712"),
            ("first_name", "Ann"),
            ("auth_date", &UnixTime::now().secs().to_string()),
        ],
        &bot_token,
    );
    let resp = post(
        "/oauth/token",
        form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "subject_token_type",
                "urn:tglink:params:oauth:token-type:telegram-login-widget",
            ),
            ("subject_token", &widget),
        ]),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "oauth",
        "POST /oauth/token",
        "Login Widget exchange, warm",
        &resp,
        "1 DynamoDB + 0 KMS",
        |t, _| t.count("DynamoDB") == 1 && t.count("KMS") == 0 && t.total() == 1,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.operations("DynamoDB"), ["UpdateItem"]);

    // Refresh: one UpdateItem, no KMS.
    let resp = post(
        "/oauth/token",
        form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let next = resp.json["refresh_token"].as_str().unwrap().to_owned();
    let cost = c.record_budget(
        "oauth",
        "POST /oauth/token",
        "refresh",
        &resp,
        "1 DynamoDB + 0 KMS",
        |t, _| t.count("DynamoDB") == 1 && t.count("KMS") == 0 && t.total() == 1,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(cost.tally.operations("DynamoDB"), ["UpdateItem"]);

    // Reuse of the rotated token: the refused rotation, then the session's end.
    let resp = post(
        "/oauth/token",
        form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let (tally, _) = c.record("oauth", "POST /oauth/token", "refresh token reuse", &resp);
    assert_eq!(tally.operations("DynamoDB"), ["UpdateItem", "UpdateItem"]);

    // Revoke by refresh token: one UpdateItem.
    let resp = post("/oauth/revoke", form(&[("token", &next)])).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let (tally, _) = c.record("oauth", "POST /oauth/revoke", "refresh token", &resp);
    assert_eq!(tally.operations("DynamoDB"), ["UpdateItem"]);
    assert_eq!(tally.count("KMS"), 0);

    // Malformed: refused before the store.
    let resp = post("/oauth/token", form(&[("grant_type", "password")])).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let (tally, _) = c.record(
        "oauth",
        "POST /oauth/token",
        "unsupported grant (400)",
        &resp,
    );
    assert_eq!(tally.total(), 0, "{:?}", tally.names());
    c.write("oauth");
}

/// The token service: the signing key's load costs 1 DynamoDB + 1 KMS `Decrypt` once per cold
/// start and nothing per token after; JWKS and discovery cost nothing per request on a warm
/// instance (the JWKS reads the key set once, no KMS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_loads_once_and_discovery_costs_nothing_warm() {
    use tglink_shared::{
        config::Platform,
        oauth::{AccessTokenClaims, TokenSigner},
        runtime::Startup,
    };

    let c = counted().await;
    let signer_at = |calls: &AwsCalls| {
        let env = c.app.env.clone();
        let calls = calls.clone();
        async move {
            let base = tglink_shared::aws::sdk_config(env.as_ref()).await.unwrap();
            let startup = Startup::with_sdk_config(env, Platform::Local, calls.sdk_config(&base))
                .await
                .unwrap();
            let config = startup.token_config().unwrap();
            (startup.token_signer().await.unwrap(), config)
        }
    };
    let sign = |signer: TokenSigner, config: tglink_shared::oauth::TokenConfig, n: i64| async move {
        let now = UnixTime::now().secs() as i64;
        let claims = AccessTokenClaims {
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            sub: "4702".into(),
            client_id: "tglink-miniapp".into(),
            app_user_id: None,
            sid: "sid".into(),
            amr: vec!["telegram_miniapp".into()],
            auth_time: now,
            iat: now,
            exp: now + 300,
            jti: format!("jti-{n}"),
            username: None,
            first_name: None,
            language_code: None,
            is_premium: None,
        };
        signer.sign(&claims).await.unwrap()
    };

    // The very first token of the deployment creates the key: 1 Query + 1 TransactWriteItems
    // + 1 GenerateDataKey, no Decrypt.
    let first_calls = AwsCalls::default();
    let (signer, config) = signer_at(&first_calls).await;
    sign(signer, config, 0).await;
    let tally = first_calls.take();
    assert_eq!(tally.count("DynamoDB"), 2, "{:?}", tally.names());
    assert_eq!(
        tally.operations("KMS"),
        ["GenerateDataKey"],
        "{:?}",
        tally.names()
    );

    // Another cold start: 1 DynamoDB + 1 KMS Decrypt on its first token, 0 on the next ones.
    let cold = AwsCalls::default();
    let (signer, config) = signer_at(&cold).await;
    sign(signer.clone(), config.clone(), 1).await;
    let tally = cold.take();
    assert_eq!(tally.count("DynamoDB"), 1, "{:?}", tally.names());
    assert_eq!(tally.operations("KMS"), ["Decrypt"], "{:?}", tally.names());
    for n in 2..12 {
        sign(signer.clone(), config.clone(), n).await;
    }
    let tally = cold.take();
    assert_eq!(tally.total(), 0, "{:?}", tally.names());

    // JWKS: the first request of the instance reads the key set (1 Query, no KMS); then 0.
    c.skip();
    let resp = c
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["keys"].as_array().unwrap().len(), 1);
    let (tally, _) = c.record(
        "oidc",
        "GET /.well-known/jwks.json",
        "first of the instance",
        &resp,
    );
    assert_eq!(tally.count("DynamoDB"), 1, "{:?}", tally.names());
    assert_eq!(tally.count("KMS"), 0, "{:?}", tally.names());
    let resp = c
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(resp.status, 200);
    let warm = c.record_budget(
        "oidc",
        "GET /.well-known/jwks.json",
        "warm",
        &resp,
        "0 AWS calls",
        |t, _| t.total() == 0,
    );
    assert!(warm.met, "{:?}", warm.tally.names());
    let resp = c
        .send(Method::GET, "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(resp.status, 200);
    let doc = c.record_budget(
        "oidc",
        "GET /.well-known/openid-configuration",
        "any",
        &resp,
        "0 AWS calls",
        |t, _| t.total() == 0,
    );
    assert!(doc.met, "{:?}", doc.tally.names());
    // UserInfo: the access token is verified against the same cached key set: 0 when warm.
    let token = sign(signer.clone(), config.clone(), 99).await;
    let resp = c
        .send(Method::GET, "/oauth/userinfo", Some(&token), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["sub"], "4702");
    let info = c.record_budget(
        "oidc",
        "GET /oauth/userinfo",
        "warm",
        &resp,
        "0 AWS calls",
        |t, _| t.total() == 0,
    );
    assert!(info.met, "{:?}", info.tally.names());
    c.write("oidc");
}

/// `POST /api/telegram/notify`: a delivered message costs ≤ 4 DynamoDB calls (the link, the
/// claim and both buckets read together, one transaction, the claim's completion), no KMS and
/// exactly one Telegram call; a replay, a rate-limited and an unreachable one no Telegram call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_costs_four_dynamodb_calls_and_one_telegram_call() {
    use tglink_shared::{
        auth::{DevClaims, sign_hs256},
        config::{JwtConfig, JwtKey},
        ids::{TelegramUserId, UserId},
        store::{Link, LinkSource},
    };
    const NOTIFY: &str = "/api/telegram/notify";
    let c = counted().await;
    c.fake.add_bot(
        &c.app.env.var("TELEGRAM_BOT_TOKEN").unwrap(),
        "tglink_dev_bot",
    );
    let config = JwtConfig::from_env(c.app.env.as_ref()).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new("host-backend", &config, 3600);
    claims.roles = vec!["tglink:notify".into()];
    let jwt = sign_hs256(secret, &claims);
    let store = c.app.store().await;
    for (tg, user) in [(6101, "user-n1"), (6102, "user-n2")] {
        store
            .links()
            .link(&Link {
                telegram_user_id: TelegramUserId::new(tg).unwrap(),
                user_id: UserId::parse(user).unwrap(),
                chat_id: Some(tg),
                username: None,
                source: LinkSource::Bot,
                linked_at: UnixTime::now(),
                unreachable: None,
            })
            .await
            .unwrap();
    }
    c.skip();
    let send = |key: &str, user: &str| {
        let builder = c
            .app
            .api
            .request(Method::POST, NOTIFY)
            .bearer_auth(&jwt)
            .header("Idempotency-Key", key)
            .json(&json!({"user_id": user, "text": "hello"}));
        c.app.api.send(builder)
    };
    let endpoint = "POST /api/telegram/notify";
    let resp = send("n-1", "user-n1").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "notify",
        endpoint,
        "delivered",
        &resp,
        "≤ 4 DynamoDB calls, 0 KMS, 1 Telegram call",
        |t, telegram| t.count("DynamoDB") <= 4 && t.count("KMS") == 0 && telegram == 1,
    );
    assert!(
        cost.met,
        "{:?}, {} Telegram calls",
        cost.tally.names(),
        cost.telegram
    );
    assert_eq!(
        cost.tally.names(),
        [
            "DynamoDB.GetItem",
            "DynamoDB.TransactGetItems",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.PutItem"
        ]
    );
    // A second chat while the bot's bucket is busy: the same cost.
    let resp = send("n-2", "user-n2").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "notify",
        endpoint,
        "delivered (bucket in use)",
        &resp,
        "≤ 4 DynamoDB calls, 0 KMS, 1 Telegram call",
        |t, telegram| t.count("DynamoDB") <= 4 && t.count("KMS") == 0 && telegram == 1,
    );
    assert!(
        cost.met,
        "{:?}, {} Telegram calls",
        cost.tally.names(),
        cost.telegram
    );

    // Refused: no Telegram call.
    let resp = send("n-1", "user-n1").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let cost = c.record_budget(
        "notify",
        endpoint,
        "replayed (same key)",
        &resp,
        "0 Telegram calls",
        |t, telegram| t.count("KMS") == 0 && telegram == 0,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    let mut refused = None;
    for i in 0..5 {
        let resp = send(&format!("n-burst-{i}"), "user-n1").await;
        if resp.status == 429 {
            refused = Some(resp);
            break;
        }
        c.skip();
    }
    let resp = refused.expect("the chat's bucket refuses a burst");
    resp.assert_problem(429, "rate_limited");
    let cost = c.record_budget(
        "notify",
        endpoint,
        "rate limited (429)",
        &resp,
        "0 Telegram calls",
        |_, telegram| telegram == 0,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    assert_eq!(
        cost.tally.names(),
        ["DynamoDB.GetItem", "DynamoDB.TransactGetItems"]
    );
    c.fake.refuse_chat(
        6102,
        Some(tglink_tests::fake_telegram::ChatRefusal::Blocked),
    );
    let resp = send("n-3", "user-n2").await;
    resp.assert_problem(410, "chat_unreachable");
    c.skip();
    let resp = send("n-4", "user-n2").await;
    resp.assert_problem(410, "chat_unreachable");
    let cost = c.record_budget(
        "notify",
        endpoint,
        "unreachable (410)",
        &resp,
        "0 Telegram calls",
        |t, telegram| t.total() == 1 && telegram == 0,
    );
    assert!(cost.met, "{:?}", cost.tally.names());
    c.write("notify");
}

/// tglink's OpenID provider: `GET /oauth/authorize` 1 DynamoDB (`PutItem` of the request),
/// Telegram's callback 2 (`UpdateItem` taking the request, `PutItem` of the code), the
/// `authorization_code` grant 2 DynamoDB + 0 KMS warm (`UpdateItem` of the code, `UpdateItem`
/// of the sign-in record). Telegram's own endpoints are no AWS calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_provider_authorize_callback_and_token_calls() {
    use aws_lc_rs::digest;
    use tglink_shared::oauth::pkce;
    use tglink_tests::fake_telegram_oidc::FakeTelegramOidc;

    let fake = FakeTelegramOidc::start();
    let secret = "aws-calls-client-secret";
    let redirect = "http://127.0.0.1:9/cb";
    let clients = json!([{
        "client_id": "web",
        "client_secret_sha256": hex::encode(digest::digest(&digest::SHA256, secret.as_bytes())),
        "redirect_uris": [redirect],
    }])
    .to_string();
    let (app, calls) = spawn_app_counting(
        Backend::DynamoDb,
        fake.env().with("TGLINK_OIDC_CLIENTS", clients),
    )
    .await;
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |resp: &reqwest::Response| {
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap()
            .to_owned()
    };
    let mut report = CallsReport::default();
    // Telegram sends the browser to the issuer's callback; here the issuer is the default
    // (`http://127.0.0.1:8080`), not this server's address.
    let issuer = app.env.var("TGLINK_ISSUER").unwrap();
    let flow = async |case: &str, report: &mut CallsReport, measure: bool| {
        let verifier = pkce::new_code_verifier();
        let challenge = pkce::s256_challenge(&verifier);
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ] {
            q.append_pair(k, v);
        }
        calls.take();
        let resp = browser
            .get(format!("{}/oauth/authorize?{}", app.api.base, q.finish()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        let at_telegram = location(&resp);
        let tally = calls.take();
        if measure {
            let met = tally.operations("DynamoDB") == ["PutItem"] && tally.total() == 1;
            report.push(
                CallsRow::new("authorize", "GET /oauth/authorize", case, 302, &tally)
                    .budget("1 DynamoDB", met),
            );
            assert!(met, "{:?}", tally.names());
        }
        let callback = fake.approve(&at_telegram).await;
        calls.take();
        let on_app = callback.location.replacen(&issuer, &app.api.base, 1);
        let resp = browser.get(&on_app).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        let at_client = location(&resp);
        let tally = calls.take();
        if measure {
            let met =
                tally.operations("DynamoDB") == ["UpdateItem", "PutItem"] && tally.total() == 2;
            report.push(
                CallsRow::new(
                    "authorize",
                    "GET /oauth/callback/telegram",
                    case,
                    302,
                    &tally,
                )
                .budget("2 DynamoDB", met),
            );
            assert!(met, "{:?}", tally.names());
        }
        let code = form_urlencoded::parse(at_client.split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1;
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
            ("client_id", "web"),
            ("client_secret", secret),
        ] {
            body.append_pair(k, v);
        }
        let resp = app
            .api
            .send(
                app.api
                    .request(Method::POST, "/oauth/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.finish()),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let tally = calls.take();
        if measure {
            let met = tally.operations("DynamoDB") == ["UpdateItem", "UpdateItem"]
                && tally.count("KMS") == 0
                && tally.total() == 2;
            report.push(
                CallsRow::new(
                    "oauth",
                    "POST /oauth/token",
                    &format!("authorization_code, {case}"),
                    200,
                    &tally,
                )
                .budget("2 DynamoDB + 0 KMS", met),
            );
            assert!(met, "{:?}", tally.names());
        }
    };
    // The first token of the deployment creates the signing key: not measured.
    flow("cold", &mut report, false).await;
    flow("warm", &mut report, true).await;
    report.write("authorize");
}
