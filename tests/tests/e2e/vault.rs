//! End-to-end: the credential vault (`settings` and `worker-credentials`) through the local
//! API over HTTP, on both adapters, with a fake Bot API on loopback for `getMe`.

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    config::{Env, MapEnv, Platform},
    ids::UserId,
    runtime::{Function, Startup},
    seal::{KeyWrapper, Sealer, local::LocalKeys},
    store::{
        Credentials,
        credentials::{SEALED_BOT_TOKEN, SEALED_SESSION, WorkerAuth, WriteOutcome},
    },
    time::UnixTime,
    vault::WorkerToken,
};
use tglink_tests::{
    app::{TestApp, spawn_app_with},
    fake_telegram::FakeTelegram,
    fixtures::{Backend, CountingKeys},
    http_client::ApiResponse,
    logs,
};

const CREDS: &str = "/api/worker/credentials";
const BOT_TOKEN: &str = "/api/settings/bot-token";
const SESSION: &str = "/api/telegram/session";
const STATUS: &str = "/api/telegram/status";
const REPORT: &str = "/api/telegram/session/report";
const TOKENS: &str = "/api/worker/tokens";

const API_HASH: &str = "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b";
const BACKEND: &str = "https://backend.example";

/// The secret part of a worker token (`tgw_<base64url(user id)>.<secret>`).
fn secret_of(worker: &str) -> &str {
    let (_, secret) = worker
        .rsplit_once('.')
        .expect("a worker token has a secret part");
    assert_eq!(secret.len(), 43, "{worker}");
    secret
}

/// `worker` with its user-id part naming `user` (the secret kept).
fn retargeted(worker: &str, user: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user);
    format!("tgw_{encoded}.{}", secret_of(worker))
}

/// A well-formed bot token whose secret part is unique to `tag`.
fn bot_token(id: u64, tag: &str) -> String {
    format!("{id}:AAE{tag:_<40}")
}

struct Vault {
    app: TestApp,
    fake: FakeTelegram,
}

async fn spawn(backend: Backend, extra: MapEnv) -> Vault {
    let fake = FakeTelegram::start().await;
    let vars = MapEnv::new()
        .with("TELEGRAM_API_BASE", fake.base_url())
        .with("TELEGRAM_API_ID", "12345678")
        .with("TELEGRAM_API_HASH", API_HASH)
        .with("BACKEND_URL", BACKEND)
        .merge(extra);
    let app = spawn_app_with(backend, vars).await;
    Vault { app, fake }
}

impl Vault {
    async fn put(&self, path: &str, jwt: &str, body: Value) -> ApiResponse {
        self.app
            .api
            .call(Method::PUT, path, Some(jwt), Some(&body))
            .await
    }

    async fn post(&self, path: &str, bearer: &str, body: Value) -> ApiResponse {
        self.app.api.post(path, Some(bearer), Some(&body)).await
    }

    async fn delete(&self, path: &str, jwt: &str) -> ApiResponse {
        self.app
            .api
            .call(Method::DELETE, path, Some(jwt), None)
            .await
    }

    async fn get(&self, path: &str, bearer: &str) -> ApiResponse {
        self.app.api.get(path, Some(bearer)).await
    }

    async fn creds_if_none_match(&self, bearer: &str, etag: &str) -> ApiResponse {
        let builder = self
            .app
            .api
            .request(Method::GET, CREDS)
            .bearer_auth(bearer)
            .header("if-none-match", etag);
        self.app.api.send(builder).await
    }

    /// Saves a bot token the fake knows (as `@username`) and a session; returns the JWT.
    async fn configure(&self, user: &str, token: &str, username: &str, session: &str) -> String {
        let jwt = self.app.jwt(user);
        self.fake.add_bot(token, username);
        let resp = self.put(BOT_TOKEN, &jwt, json!({"bot_token": token})).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let resp = self
            .put(
                SESSION,
                &jwt,
                json!({"session": session, "telegram_user_id": 4242, "channel_id": -1001234567890i64}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        jwt
    }

    async fn worker_token(&self, jwt: &str, name: &str) -> (String, String) {
        let resp = self.post(TOKENS, jwt, json!({"name": name})).await;
        assert_eq!(resp.status, 201, "{}", resp.text);
        (
            resp.json["id"].as_str().unwrap().to_owned(),
            resp.json["worker_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn credentials(&self) -> Arc<dyn Credentials> {
        self.app.store().await.credentials()
    }
}

/// The `worker-credentials` function built in-process from the app's configuration, with its
/// key provider (the real KMS or local adapter the app uses) wrapped in a call counter.
async fn counting_worker_credentials(
    app: &TestApp,
) -> (worker_credentials::WorkerCredentials, Arc<CountingKeys>) {
    let startup = Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let mut function = worker_credentials::WorkerCredentials::build(&startup)
        .await
        .unwrap();
    let keys = counting_keys(app).await;
    function.sealer = Sealer::new(keys.clone());
    (function, keys)
}

async fn counting_keys(app: &TestApp) -> Arc<CountingKeys> {
    match app.backend {
        Backend::DynamoDb => CountingKeys::kms(&app.env.var("TGLINK_KMS_KEY_ID").unwrap()).await,
        Backend::Sqlite => {
            let local: Arc<dyn KeyWrapper> = Arc::new(
                LocalKeys::open_or_create(app.env.var("TGLINK_LOCAL_KEY_PATH").unwrap()).unwrap(),
            );
            CountingKeys::new(local)
        }
    }
}

fn lambda_get(path: &str, bearer: &str, if_none_match: Option<&str>) -> lambda_http::Request {
    let mut b = http::Request::builder()
        .method("GET")
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(tag) = if_none_match {
        b = b.header("if-none-match", tag);
    }
    b.body(lambda_http::Body::Empty).unwrap()
}

fn lambda_json(
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> lambda_http::Request {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json");
    match body {
        Some(v) => b.body(lambda_http::Body::Text(v.to_string())).unwrap(),
        None => b.body(lambda_http::Body::Empty).unwrap(),
    }
}

fn body_json(resp: &lambda_http::Response<lambda_http::Body>) -> Value {
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------

/// Save bot token → save session → worker fetch with a worker token (exact seed fields) →
/// 304 without any KMS call → rotate the bot token (new ETag, new token) → revoke → 401.
async fn full_flow(backend: Backend) {
    let log = logs::capture();
    let v = spawn(backend, MapEnv::new()).await;
    let jwt = v.app.jwt("alice");
    let token_a = bot_token(111111111, "alice-first");
    let token_b = bot_token(111111111, "alice-rotated");
    let session = "1AgAOMTQ5LjE1NC4xNjcuNTEBu-alice-mtproto-session-string";
    let phone = "+1 555 0100";
    let invite = "https://t.me/+AbCdEfGhIjKlMnOp";
    v.fake.add_bot(&token_a, "alice_upload_bot");
    v.fake.add_bot(&token_b, "alice_rotated_bot");

    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["user_auth"], false);
    assert_eq!(status.json["reauth_required"], false);
    v.get(CREDS, &jwt)
        .await
        .assert_problem(400, "telegram_not_configured");

    // 1. Bot token: proven by getMe, which names the bot.
    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": token_a})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json,
        json!({"success": true, "bot_username": "alice_upload_bot", "message": "Bot token saved successfully"})
    );
    assert_eq!(v.fake.count("getMe"), 1);
    assert_eq!(v.fake.calls()[0].token, token_a);
    let resp = v.get(CREDS, &jwt).await;
    resp.assert_problem(400, "telegram_not_configured");
    assert!(resp.text.contains("session"), "{}", resp.text);

    // 2. Session.
    let resp = v
        .put(
            SESSION,
            &jwt,
            json!({"session": session, "telegram_user_id": 777000111, "channel_id": "-1001234567890",
                   "channel_invite": invite, "phone": phone}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["user_auth"], true);
    assert_eq!(resp.json["telegram_user_id"], 777000111);
    assert!(
        resp.json.get("user_id").is_none(),
        "user_id means the app user"
    );
    assert_eq!(resp.json["bot_username"], "alice_upload_bot");
    let saved_at = resp.json["saved_at"].as_u64().unwrap();
    assert_eq!(
        resp.json["expires_at"].as_u64().unwrap(),
        saved_at + 604_800
    );
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], true);
    assert_eq!(status.json["saved_at"], saved_at);

    // 3. A worker token, shown once.
    let (token_id, worker) = v.worker_token(&jwt, "render worker").await;
    // `tgw_<base64url(user id)>.<43-character secret>`; the text parses back to its user.
    assert!(worker.starts_with("tgw_"), "{worker}");
    secret_of(&worker);
    let parsed = WorkerToken::parse(&worker).expect("the minted shape");
    assert_eq!(parsed.user_id().as_str(), "alice");
    assert!(worker.starts_with("tgw_YWxpY2U."), "{worker}");

    // 4. The worker fetches its credentials.
    let resp = v.get(CREDS, &worker).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let etag = resp.header("etag").expect("an ETag").to_owned();
    assert_eq!(
        resp.json,
        json!({
            "bot_token": token_a,
            "channel_id": "-1001234567890",
            "telegram_session": session,
            "telegram_api_id": "12345678",
            "telegram_api_hash": API_HASH,
            "user_id": "alice",
            "backend_url": BACKEND,
        })
    );
    // The app JWT works too, with the same ETag.
    let by_jwt = v.get(CREDS, &jwt).await;
    assert_eq!(by_jwt.status, 200);
    assert_eq!(by_jwt.header("etag"), Some(etag.as_str()));

    // 5. Not modified: 304, no body, same ETag.
    let resp = v.creds_if_none_match(&worker, &etag).await;
    assert_eq!(resp.status, 304, "{}", resp.text);
    assert_eq!(resp.text, "");
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    assert_eq!(resp.header("cache-control"), Some("no-store"));

    // … and the 304 makes no KMS call, counted on the real adapter in-process; the 200 makes
    // exactly one.
    let (function, keys) = counting_worker_credentials(&v.app).await;
    let resp = function
        .handle(lambda_get(CREDS, &worker, Some(&etag)))
        .await;
    assert_eq!(resp.status(), 304);
    assert_eq!(keys.calls(), 0, "a 304 must not call KMS");
    let resp = function.handle(lambda_get(CREDS, &worker, None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(&resp)["bot_token"], token_a.as_str());
    assert_eq!(keys.calls(), 1, "reading all secrets costs one KMS call");
    let resp = function
        .handle(lambda_get(CREDS, &worker, Some(&etag)))
        .await;
    assert_eq!(resp.status(), 304);
    assert_eq!(keys.calls(), 1, "a 304 must not call KMS");

    // 6. Rotate the bot token: new ETag, the new token, the session kept.
    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": token_b})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["bot_username"], "alice_rotated_bot");
    let resp = v.creds_if_none_match(&worker, &etag).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let new_etag = resp.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(resp.json["bot_token"], token_b.as_str());
    assert_eq!(resp.json["telegram_session"], session);
    assert_eq!(v.creds_if_none_match(&worker, &new_etag).await.status, 304);

    // 7. Listing shows no secret; revoking stops the worker at once.
    let list = v.get(TOKENS, &jwt).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let tokens = list.json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["id"], token_id.as_str());
    assert_eq!(tokens[0]["name"], "render worker");
    assert_eq!(tokens[0]["revoked_at"], Value::Null);
    assert!(!list.text.contains(&worker) && !list.text.contains(secret_of(&worker)));
    let resp = v.delete(&format!("{TOKENS}/{token_id}"), &jwt).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    v.get(CREDS, &worker)
        .await
        .assert_problem(401, "worker_token_invalid");
    v.creds_if_none_match(&worker, &new_etag)
        .await
        .assert_problem(401, "worker_token_invalid");
    let list = v.get(TOKENS, &jwt).await;
    assert!(list.json["tokens"][0]["revoked_at"].is_u64());
    // Revoking again is harmless; an unknown id is 404.
    assert_eq!(
        v.delete(&format!("{TOKENS}/{token_id}"), &jwt).await.status,
        204
    );
    v.delete(&format!("{TOKENS}/wt_AAAAAAAAAAAAAAAA"), &jwt)
        .await
        .assert_problem(404, "worker_token_not_found");
    v.delete(&format!("{TOKENS}/nonsense"), &jwt)
        .await
        .assert_problem(404, "worker_token_not_found");
    // The user's own JWT still works.
    assert_eq!(v.get(CREDS, &jwt).await.status, 200);

    // 8. No secret in any log line.
    log.assert_free_of(&[
        &token_a,
        &token_b,
        &token_a[10..],
        &token_b[10..],
        session,
        phone,
        invite,
        &worker,
        secret_of(&worker),
        API_HASH,
        &jwt,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_sqlite() {
    full_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_dynamodb() {
    full_flow(Backend::DynamoDb).await;
}

/// KMS calls of settings: a first secret costs one GenerateDataKey; a change that keeps other
/// secrets one Decrypt + one GenerateDataKey; clearing the session none.
async fn settings_kms_calls(backend: Backend) {
    let v = spawn(backend, MapEnv::new()).await;
    let jwt = v.app.jwt("kms-user");
    let token = bot_token(222222222, "kms-user");
    v.fake.add_bot(&token, "kms_user_bot");
    let startup = Startup::new(v.app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let mut settings = settings::Settings::build(&startup).await.unwrap();
    let keys = counting_keys(&v.app).await;
    settings.sealer = Sealer::new(keys.clone());
    let gen_unwrap = |k: &CountingKeys| {
        use std::sync::atomic::Ordering::SeqCst;
        (k.generated.load(SeqCst), k.unwrapped.load(SeqCst))
    };

    let resp = settings
        .handle(lambda_json(
            "PUT",
            BOT_TOKEN,
            &jwt,
            Some(json!({"bot_token": token})),
        ))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gen_unwrap(&keys), (1, 0));
    let resp = settings
        .handle(lambda_json(
            "PUT",
            SESSION,
            &jwt,
            Some(json!({"session": "s-kms", "telegram_user_id": 1, "channel_id": -5})),
        ))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gen_unwrap(&keys), (2, 1));
    let resp = settings
        .handle(lambda_json("DELETE", SESSION, &jwt, None))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(gen_unwrap(&keys), (2, 1), "clearing needs no KMS call");
    let resp = settings
        .handle(lambda_json("GET", STATUS, &jwt, None))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(&resp)["bot_configured"], true);
    assert_eq!(gen_unwrap(&keys), (2, 1), "status needs no KMS call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_kms_calls_sqlite() {
    settings_kms_calls(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_kms_calls_dynamodb() {
    settings_kms_calls(Backend::DynamoDb).await;
}

/// User A's JWT never reads user B's credentials, whatever the request carries.
async fn users_are_isolated(backend: Backend) {
    let v = spawn(backend, MapEnv::new()).await;
    let alice_token = bot_token(333333333, "alice-iso");
    let bob_token = bot_token(444444444, "bob-iso");
    let alice = v
        .configure("alice", &alice_token, "alice_iso_bot", "alice-session")
        .await;
    let bob = v
        .configure("bob", &bob_token, "bob_iso_bot", "bob-session")
        .await;
    let (bob_token_id, bob_worker) = v.worker_token(&bob, "bob's worker").await;
    let (_, alice_worker) = v.worker_token(&alice, "alice's worker").await;

    let attempts = [
        v.app
            .api
            .request(Method::GET, &format!("{CREDS}?user_id=bob"))
            .bearer_auth(&alice),
        v.app
            .api
            .request(Method::GET, CREDS)
            .bearer_auth(&alice)
            .header("x-user-id", "bob")
            .header("x-worker-token", &bob_worker),
        v.app
            .api
            .request(Method::GET, CREDS)
            .bearer_auth(&alice)
            .json(&json!({"user_id": "bob", "userId": "bob"})),
        v.app
            .api
            .request(
                Method::GET,
                &format!("{CREDS}?userId=bob&authToken={bob_worker}"),
            )
            .bearer_auth(&alice_worker),
    ];
    for attempt in attempts {
        let resp = v.app.api.send(attempt).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.json["user_id"], "alice");
        assert_eq!(resp.json["bot_token"], alice_token.as_str());
        assert_eq!(resp.json["telegram_session"], "alice-session");
        assert!(!resp.text.contains(&bob_token) && !resp.text.contains("bob-session"));
    }
    // Bob's worker token reads Bob's.
    let resp = v.get(CREDS, &bob_worker).await;
    assert_eq!(resp.json["user_id"], "bob");
    assert_eq!(resp.json["bot_token"], bob_token.as_str());
    // A user with nothing configured gets nothing, even naming Alice.
    let carol = v.app.jwt("carol");
    v.app
        .api
        .send(
            v.app
                .api
                .request(Method::GET, &format!("{CREDS}?user_id=alice"))
                .bearer_auth(&carol),
        )
        .await
        .assert_problem(400, "telegram_not_configured");
    // Alice cannot see, revoke or use Bob's token; the status is her own.
    let list = v.get(TOKENS, &alice).await;
    assert!(!list.text.contains(&bob_token_id));
    v.delete(&format!("{TOKENS}/{bob_token_id}"), &alice)
        .await
        .assert_problem(404, "worker_token_not_found");
    assert_eq!(v.get(CREDS, &bob_worker).await.status, 200);
    let status = v.get(STATUS, &alice).await;
    assert_eq!(status.json["bot_username"], "alice_iso_bot");
    // A worker token cannot change settings or mint worker tokens.
    v.put(BOT_TOKEN, &alice_worker, json!({"bot_token": bob_token}))
        .await
        .assert_problem(401, "token_invalid");
    v.post(TOKENS, &alice_worker, json!({"name": "more"}))
        .await
        .assert_problem(401, "token_invalid");
    // No or bad credentials.
    v.app
        .api
        .get(CREDS, None)
        .await
        .assert_problem(401, "auth_required");
    v.get(CREDS, "not-a-token")
        .await
        .assert_problem(401, "token_invalid");
    v.get(CREDS, "tgw_forged")
        .await
        .assert_problem(401, "worker_token_invalid");
    v.get(
        CREDS,
        &format!("tgw_{}", &bob_worker[4..].to_ascii_uppercase()),
    )
    .await
    .assert_problem(401, "worker_token_invalid");
    // The token names its user, but naming another one makes it another (unknown) token:
    // Alice's secret under Bob's name, and Bob's under Alice's, read nothing.
    for forged in [
        retargeted(&alice_worker, "bob"),
        retargeted(&bob_worker, "alice"),
    ] {
        let resp = v.get(CREDS, &forged).await;
        resp.assert_problem(401, "worker_token_invalid");
        assert!(!resp.text.contains("bob-session") && !resp.text.contains("alice-session"));
        v.post(REPORT, &forged, json!({"error": "AUTH_KEY_UNREGISTERED"}))
            .await
            .assert_problem(401, "worker_token_invalid");
    }
    // A well-formed token nobody minted.
    let unknown = WorkerToken::mint(&UserId::parse("bob").unwrap());
    v.get(CREDS, unknown.expose())
        .await
        .assert_problem(401, "worker_token_invalid");
    assert_eq!(v.get(CREDS, &bob_worker).await.status, 200);
    // A token made before anything is configured: "not configured", not "invalid"; once the
    // user configures the vault, the same token reads it.
    let dora = v.app.jwt("dora");
    let (_, dora_worker) = v.worker_token(&dora, "early worker").await;
    v.get(CREDS, &dora_worker)
        .await
        .assert_problem(400, "telegram_not_configured");
    assert_eq!(v.get(STATUS, &dora).await.json["bot_configured"], false);
    let dora_token = bot_token(555555555, "dora-iso");
    let dora_again = v
        .configure("dora", &dora_token, "dora_iso_bot", "dora-session")
        .await;
    let resp = v.get(CREDS, &dora_worker).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["user_id"], "dora");
    assert_eq!(resp.json["telegram_session"], "dora-session");
    assert_eq!(
        v.get(CREDS, &dora_again).await.json["bot_token"],
        dora_token.as_str()
    );
    v.get(CREDS, &v.app.jwt("bob")[1..])
        .await
        .assert_problem(401, "token_invalid");
    let resp = v
        .app
        .api
        .call(Method::POST, CREDS, Some(&alice), None)
        .await;
    resp.assert_problem(405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("GET"));
    // A path with several methods names them all.
    let resp = v
        .app
        .api
        .call(Method::PATCH, SESSION, Some(&alice), None)
        .await;
    resp.assert_problem(405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("PUT, DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_isolated_sqlite() {
    users_are_isolated(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_isolated_dynamodb() {
    users_are_isolated(Backend::DynamoDb).await;
}

async fn write_back(port: &dyn Credentials, record: &tglink_shared::store::CredentialsRecord) {
    assert!(matches!(
        port.write(record).await.unwrap(),
        WriteOutcome::Written { .. }
    ));
}

/// A sealed blob copied from A's record into B's does not decrypt; neither does a flipped byte.
async fn copied_or_tampered_blobs_do_not_decrypt(backend: Backend) {
    let v = spawn(backend, MapEnv::new()).await;
    let alice_token = bot_token(555555555, "alice-copy");
    let alice = v
        .configure(
            "alice",
            &alice_token,
            "alice_copy_bot",
            "alice-secret-session",
        )
        .await;
    let bob = v
        .configure(
            "bob",
            &bot_token(666666666, "bob-copy"),
            "bob_copy_bot",
            "bob-session",
        )
        .await;
    let port = v.credentials().await;
    let (a, b) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    let alice_record = port.get(&a).await.unwrap().unwrap();

    // Alice's session blob into Bob's record.
    let mut bob_record = port.get(&b).await.unwrap().unwrap();
    bob_record.sealed.as_mut().unwrap().attributes.insert(
        SEALED_SESSION.into(),
        alice_record.sealed.as_ref().unwrap().attributes[SEALED_SESSION].clone(),
    );
    write_back(port.as_ref(), &bob_record).await;
    let resp = v.get(CREDS, &bob).await;
    resp.assert_problem(500, "internal_error");
    assert!(!resp.text.contains("alice-secret-session"));
    // Alice's whole sealed set (data key included) into Bob's record.
    let mut bob_record = port.get(&b).await.unwrap().unwrap();
    bob_record.sealed = alice_record.sealed.clone();
    write_back(port.as_ref(), &bob_record).await;
    let resp = v.get(CREDS, &bob).await;
    resp.assert_problem(500, "internal_error");
    assert!(!resp.text.contains("alice-secret-session") && !resp.text.contains(&alice_token));

    // A flipped byte in Alice's sealed bot token.
    let mut tampered = alice_record.clone();
    let blob = tampered
        .sealed
        .as_mut()
        .unwrap()
        .attributes
        .get_mut(SEALED_BOT_TOKEN)
        .unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0x80;
    write_back(port.as_ref(), &tampered).await;
    v.get(CREDS, &alice)
        .await
        .assert_problem(500, "internal_error");
    // Undoing the flip restores access: the failure was the integrity check.
    let mut restored = port.get(&a).await.unwrap().unwrap();
    restored.sealed = alice_record.sealed.clone();
    write_back(port.as_ref(), &restored).await;
    let resp = v.get(CREDS, &alice).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["bot_token"], alice_token.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_or_tampered_blobs_do_not_decrypt_sqlite() {
    copied_or_tampered_blobs_do_not_decrypt(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_or_tampered_blobs_do_not_decrypt_dynamodb() {
    copied_or_tampered_blobs_do_not_decrypt(Backend::DynamoDb).await;
}

/// Idle expiry (worker reads count as activity) and the AUTH_KEY_UNREGISTERED report.
async fn idle_expiry_and_reports(backend: Backend) {
    let log = logs::capture();
    let idle = 1_000;
    let v = spawn(
        backend,
        MapEnv::new().with("TELEGRAM_SESSION_MAX_IDLE_SEC", idle.to_string()),
    )
    .await;
    let jwt = v
        .configure(
            "idler",
            &bot_token(777777777, "idler"),
            "idler_bot",
            "idler-session",
        )
        .await;
    let (_, worker) = v.worker_token(&jwt, "w").await;
    let port = v.credentials().await;
    let user = UserId::parse("idler").unwrap();
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], true);
    let saved_at = status.json["saved_at"].as_u64().unwrap();
    assert_eq!(status.json["expires_at"], saved_at + idle);

    // Move the save 900 s into the past: still live, 100 s left.
    let now = UnixTime::now().secs();
    let mut r = port.get(&user).await.unwrap().unwrap();
    r.session_saved_at = Some(UnixTime(now - 900));
    write_back(port.as_ref(), &r).await;
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], true);
    assert!(status.json["expires_at"].as_u64().unwrap() <= UnixTime::now().secs() + 100);
    // A worker read is activity: the expiry moves a full idle period ahead.
    let before = UnixTime::now().secs();
    assert_eq!(v.get(CREDS, &worker).await.status, 200);
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], true);
    assert!(status.json["last_active_at"].as_u64().unwrap() >= before);
    assert!(status.json["expires_at"].as_u64().unwrap() >= before + idle);

    // Saved 2000 s ago, last used 1100 s ago: idle-expired.
    let now = UnixTime::now().secs();
    let mut r = port.get(&user).await.unwrap().unwrap();
    r.session_saved_at = Some(UnixTime(now - 2_000));
    write_back(port.as_ref(), &r).await;
    port.read_for_worker(&user, UnixTime(now - 1_100), idle, WorkerAuth::App)
        .await
        .unwrap();
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], false, "{}", status.text);
    assert_eq!(status.json["reauth_required"], true);
    assert_eq!(status.json["reauth_reason"], "idle_expired");
    // Workers get nothing, and their reads do not revive the session.
    let resp = v.get(CREDS, &worker).await;
    resp.assert_problem(400, "telegram_not_configured");
    assert!(resp.text.contains("idle"), "{}", resp.text);
    assert_eq!(v.get(STATUS, &jwt).await.json["user_auth"], false);

    // Re-authentication (a new session) makes it usable again.
    let resp = v
        .put(
            SESSION,
            &jwt,
            json!({"session": "idler-session-2", "telegram_user_id": 4242, "channel_id": -100}),
        )
        .await;
    assert_eq!(resp.json["user_auth"], true);
    let creds = v.get(CREDS, &worker).await;
    assert_eq!(creds.json["telegram_session"], "idler-session-2");
    let etag = creds.header("etag").unwrap().to_owned();

    // A worker reports AUTH_KEY_UNREGISTERED: cleared, re-authentication required.
    v.post(REPORT, &worker, json!({"error": "SOMETHING_ELSE"}))
        .await
        .assert_problem(400, "report_error_unsupported");
    let resp = v
        .post(
            REPORT,
            &worker,
            json!({"error": "AUTH_KEY_UNREGISTERED", "etag": etag}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["user_auth"], false);
    assert_eq!(resp.json["reauth_required"], true);
    assert_eq!(resp.json["reauth_reason"], "AUTH_KEY_UNREGISTERED");
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], false);
    assert_eq!(status.json["reauth_required"], true);
    assert_eq!(status.json["reauth_reason"], "AUTH_KEY_UNREGISTERED");
    assert_eq!(status.json["telegram_user_id"], Value::Null);
    assert_eq!(status.json["bot_configured"], true);
    let resp = v.creds_if_none_match(&worker, &etag).await;
    resp.assert_problem(400, "telegram_not_configured");
    assert!(
        resp.text.contains("log in to Telegram again"),
        "{}",
        resp.text
    );
    assert!(
        log.contents()
            .contains("cleared, re-authentication required"),
        "the report is logged"
    );
    let record = port.get(&user).await.unwrap().unwrap();
    assert!(!record.has_sealed(SEALED_SESSION) && record.has_sealed(SEALED_BOT_TOKEN));

    // A late report about the old session does not clear a new one.
    let resp = v
        .put(
            SESSION,
            &jwt,
            json!({"session": "idler-session-3", "telegram_user_id": 4242, "channel_id": -100}),
        )
        .await;
    assert_eq!(resp.json["user_auth"], true);
    assert_eq!(resp.json["reauth_required"], false);
    v.post(
        REPORT,
        &worker,
        json!({"error": "AUTH_KEY_UNREGISTERED", "etag": etag}),
    )
    .await
    .assert_problem(409, "session_report_stale");
    assert_eq!(v.get(STATUS, &jwt).await.json["user_auth"], true);
    // DELETE clears it too.
    assert_eq!(v.delete(SESSION, &jwt).await.status, 204);
    let status = v.get(STATUS, &jwt).await;
    assert_eq!(status.json["user_auth"], false);
    assert_eq!(status.json["reauth_required"], false);
    v.get(CREDS, &worker)
        .await
        .assert_problem(400, "telegram_not_configured");
    log.assert_free_of(&["idler-session", secret_of(&worker)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_and_reports_sqlite() {
    idle_expiry_and_reports(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_and_reports_dynamodb() {
    idle_expiry_and_reports(Backend::DynamoDb).await;
}

/// Telegram rejecting or unreachable: 400 / 502 and nothing stored; errors echo no secret.
async fn telegram_failures_store_nothing(backend: Backend) {
    let log = logs::capture();
    let mut v = spawn(backend, MapEnv::new()).await;
    let jwt = v.app.jwt("tg-fail");
    let user = UserId::parse("tg-fail").unwrap();
    let port = v.credentials().await;
    let unknown = bot_token(888888888, "unknown-to-telegram");

    for malformed in [
        "nope",
        "123:short",
        "12345678:has spaces in it and more than 30",
    ] {
        let resp = v
            .put(BOT_TOKEN, &jwt, json!({"bot_token": malformed}))
            .await;
        resp.assert_problem(400, "bot_token_invalid");
        assert!(!resp.text.contains(malformed));
    }
    assert_eq!(
        v.fake.count("getMe"),
        0,
        "malformed tokens never reach Telegram"
    );
    v.put(BOT_TOKEN, &jwt, json!({"token": unknown}))
        .await
        .assert_problem(400, "body_invalid");

    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": unknown})).await;
    resp.assert_problem(400, "bot_token_invalid");
    assert!(!resp.text.contains(&unknown[10..]));
    assert_eq!(v.fake.count("getMe"), 1);
    v.fake.down(502);
    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": unknown})).await;
    resp.assert_problem(502, "telegram_unreachable");
    assert!(!resp.text.contains(&unknown[10..]));
    assert_eq!(port.get(&user).await.unwrap(), None, "nothing stored");

    // With a stored token, failed replacements change nothing.
    v.fake.up();
    let good = bot_token(999999999, "tg-fail-good");
    v.fake.add_bot(&good, "good_bot");
    assert_eq!(
        v.put(BOT_TOKEN, &jwt, json!({"bot_token": good}))
            .await
            .status,
        200
    );
    let before = port.get(&user).await.unwrap().unwrap();
    v.fake.remove_bot(&good);
    v.put(BOT_TOKEN, &jwt, json!({"bot_token": good}))
        .await
        .assert_problem(400, "bot_token_invalid");
    v.fake.down(503);
    v.put(BOT_TOKEN, &jwt, json!({"bot_token": unknown}))
        .await
        .assert_problem(502, "telegram_unreachable");
    v.fake.stop().await;
    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": unknown})).await;
    resp.assert_problem(502, "telegram_unreachable");
    assert!(!resp.text.contains(&unknown[10..]));
    assert_eq!(port.get(&user).await.unwrap(), Some(before));
    log.assert_free_of(&[&unknown[10..], &good[10..], "unknown-to-telegram"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_failures_store_nothing_sqlite() {
    telegram_failures_store_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_failures_store_nothing_dynamodb() {
    telegram_failures_store_nothing(Backend::DynamoDb).await;
}

/// KMS unreachable: 503 and nothing written, for new records and for existing ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_unavailable_is_503_and_nothing_is_written() {
    // A working app on SQLite + local key, fully configured.
    let v = spawn(Backend::Sqlite, MapEnv::new()).await;
    let token = bot_token(121212121, "kms-down");
    let jwt = v
        .configure("kms-down", &token, "kms_down_bot", "kms-down-session")
        .await;
    let (_, worker) = v.worker_token(&jwt, "w").await;
    let db = v.app.env.var("TGLINK_SQLITE_PATH").unwrap();
    let port = v.credentials().await;
    let user = UserId::parse("kms-down").unwrap();
    let before = port.get(&user).await.unwrap().unwrap();

    // The same data, served with a KMS sealer that cannot be reached.
    let broken = spawn(
        Backend::Sqlite,
        tglink_tests::fixtures::unreachable_aws()
            .with("TGLINK_SQLITE_PATH", db)
            .with("TGLINK_SEALER", "kms")
            .with("TGLINK_KMS_KEY_ID", "alias/tglink-unreachable"),
    )
    .await;
    broken.fake.add_bot(&token, "kms_down_bot");
    let other = bot_token(131313131, "kms-down-new");
    broken.fake.add_bot(&other, "kms_new_bot");
    let resp = broken.get(CREDS, &worker).await;
    resp.assert_problem(503, "service_unavailable");
    assert_eq!(resp.header("retry-after"), Some("2"));
    broken
        .put(BOT_TOKEN, &jwt, json!({"bot_token": other}))
        .await
        .assert_problem(503, "service_unavailable");
    broken
        .put(
            SESSION,
            &jwt,
            json!({"session": "new-session", "telegram_user_id": 1, "channel_id": -1}),
        )
        .await
        .assert_problem(503, "service_unavailable");
    // Unchanged, apart from the worker's activity the failed read recorded.
    let mut after = port.get(&user).await.unwrap().unwrap();
    assert!(after.last_used_at.is_some());
    after.last_used_at = before.last_used_at;
    assert_eq!(after, before);
    // A new user's first secret needs a data key: 503, no record.
    let newcomer = broken.app.jwt("newcomer");
    broken
        .put(BOT_TOKEN, &newcomer, json!({"bot_token": other}))
        .await
        .assert_problem(503, "service_unavailable");
    assert_eq!(
        port.get(&UserId::parse("newcomer").unwrap()).await.unwrap(),
        None
    );
    // What needs no key still works.
    assert_eq!(broken.get(STATUS, &jwt).await.json["user_auth"], true);
    // The working app still serves the unchanged record.
    let resp = v.get(CREDS, &worker).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["bot_token"], token.as_str());
}

/// The store unreachable: 503 everywhere, never a panic or a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_is_503() {
    let v = spawn(
        Backend::Sqlite,
        tglink_tests::fixtures::unreachable_aws()
            .with("TGLINK_STORE", "dynamodb")
            .with("TGLINK_TABLE", "tglink-unreachable"),
    )
    .await;
    let jwt = v.app.jwt("store-down");
    let token = bot_token(141414141, "store-down");
    v.fake.add_bot(&token, "store_down_bot");
    let calls = [
        v.put(BOT_TOKEN, &jwt, json!({"bot_token": token})).await,
        v.put(
            SESSION,
            &jwt,
            json!({"session": "s", "telegram_user_id": 1, "channel_id": -1}),
        )
        .await,
        v.delete(SESSION, &jwt).await,
        v.get(STATUS, &jwt).await,
        v.post(TOKENS, &jwt, json!({"name": "w"})).await,
        v.get(TOKENS, &jwt).await,
        v.delete(&format!("{TOKENS}/wt_AAAAAAAAAAAAAAAA"), &jwt)
            .await,
        v.get(CREDS, &jwt).await,
        v.get(
            CREDS,
            WorkerToken::mint(&UserId::parse("down").unwrap()).expose(),
        )
        .await,
        v.post(REPORT, &jwt, json!({"error": "AUTH_KEY_UNREGISTERED"}))
            .await,
    ];
    for resp in calls {
        resp.assert_problem(503, "service_unavailable");
        assert_eq!(resp.header("retry-after"), Some("2"));
    }
}

// ---------------------------------------------------------------------------------------------
// Limits (issue 13, item 4), permanent AWS failures (item 7), the report's log (item 8).

/// At most `WORKER_TOKENS_MAX` active worker tokens: one more is `409 worker_token_limit`
/// (a revoked one frees its place); "revoke all" and clearing the session with
/// `?revoke_workers=true` revoke every active one.
async fn worker_token_limit_and_revoke_all(backend: Backend) {
    let v = spawn(backend, MapEnv::new().with("WORKER_TOKENS_MAX", "3")).await;
    let jwt = v
        .configure(
            "piler",
            &bot_token(151515151, "piler"),
            "piler_bot",
            "piler-session",
        )
        .await;
    let mut workers = Vec::new();
    for i in 0..3 {
        workers.push(v.worker_token(&jwt, &format!("w{i}")).await);
    }
    v.post(TOKENS, &jwt, json!({"name": "one too many"}))
        .await
        .assert_problem(409, "worker_token_limit");
    // Revoking one frees its place.
    let resp = v.delete(&format!("{TOKENS}/{}", workers[0].0), &jwt).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    workers.remove(0);
    workers.push(v.worker_token(&jwt, "w3").await);
    v.post(TOKENS, &jwt, json!({"name": "still too many"}))
        .await
        .assert_problem(409, "worker_token_limit");
    // Another user has places of their own.
    let other = v.app.jwt("other-piler");
    v.worker_token(&other, "theirs").await;

    // Revoke all: the three active ones, none of the other user's.
    let resp = v.delete(TOKENS, &jwt).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json, json!({"revoked": 3}));
    for (_, worker) in &workers {
        v.get(CREDS, worker)
            .await
            .assert_problem(401, "worker_token_invalid");
    }
    let listed = v.get(TOKENS, &jwt).await;
    let tokens = listed.json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 4, "{}", listed.text);
    assert!(tokens.iter().all(|t| t["revoked_at"].is_u64()));
    assert_eq!(v.delete(TOKENS, &jwt).await.json, json!({"revoked": 0}));
    let theirs = v.get(TOKENS, &other).await;
    assert!(theirs.json["tokens"][0]["revoked_at"].is_null());

    // Clearing the session keeps the workers unless asked to revoke them.
    let (_, kept) = v.worker_token(&jwt, "kept").await;
    let resp = v.delete(SESSION, &jwt).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    v.get(CREDS, &kept)
        .await
        .assert_problem(400, "telegram_not_configured");
    let resp = v
        .delete(&format!("{SESSION}?revoke_workers=maybe"), &jwt)
        .await;
    resp.assert_problem(400, "query_invalid");
    let resp = v
        .delete(&format!("{SESSION}?revoke_workers=true"), &jwt)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    v.get(CREDS, &kept)
        .await
        .assert_problem(401, "worker_token_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_token_limit_and_revoke_all_sqlite() {
    worker_token_limit_and_revoke_all(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_token_limit_and_revoke_all_dynamodb() {
    worker_token_limit_and_revoke_all(Backend::DynamoDb).await;
}

/// A worker-token port whose check is stale: it still says "active" for a token revoked since
/// (the race between a report's token check and its write).
struct StaleTokens(Arc<dyn tglink_shared::store::WorkerTokens>);

#[async_trait::async_trait]
impl tglink_shared::store::WorkerTokens for StaleTokens {
    async fn insert(
        &self,
        record: &tglink_shared::store::WorkerTokenRecord,
        max: usize,
    ) -> Result<tglink_shared::store::worker_tokens::InsertOutcome, tglink_shared::store::StoreError>
    {
        self.0.insert(record, max).await
    }

    async fn is_active(
        &self,
        _user: &UserId,
        _hash: &tglink_shared::token::TokenHash,
    ) -> Result<bool, tglink_shared::store::StoreError> {
        Ok(true)
    }

    async fn list(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Vec<tglink_shared::store::WorkerTokenRecord>, tglink_shared::store::StoreError>
    {
        self.0.list(user, now).await
    }

    async fn revoke(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<tglink_shared::store::worker_tokens::RevokeOutcome, tglink_shared::store::StoreError>
    {
        self.0.revoke(user, id, now).await
    }

    async fn revoke_all(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<usize, tglink_shared::store::StoreError> {
        self.0.revoke_all(user, now).await
    }
}

/// A report whose worker token was revoked after its check: the write's own condition refuses
/// it (401), and the session stays.
async fn report_with_a_token_revoked_meanwhile_changes_nothing(backend: Backend) {
    let v = spawn(backend, MapEnv::new()).await;
    let jwt = v
        .configure(
            "reporter",
            &bot_token(161616161, "reporter"),
            "reporter_bot",
            "reporter-session",
        )
        .await;
    let (id, worker) = v.worker_token(&jwt, "w").await;
    let resp = v.delete(&format!("{TOKENS}/{id}"), &jwt).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    let port = v.credentials().await;
    let user = UserId::parse("reporter").unwrap();
    let before = port.get(&user).await.unwrap().unwrap();

    let startup = Startup::new(v.app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let mut function = settings::Settings::build(&startup).await.unwrap();
    function.worker_tokens = Arc::new(StaleTokens(function.worker_tokens.clone()));
    let resp = settings::handle(
        &function,
        lambda_json(
            "POST",
            REPORT,
            &worker,
            Some(json!({"error": "AUTH_KEY_UNREGISTERED"})),
        ),
    )
    .await;
    assert_eq!(resp.status(), 401, "{}", body_json(&resp));
    assert_eq!(body_json(&resp)["code"], "worker_token_invalid");
    assert_eq!(port.get(&user).await.unwrap().unwrap(), before);
    assert_eq!(v.get(STATUS, &jwt).await.json["user_auth"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_with_a_token_revoked_meanwhile_changes_nothing_sqlite() {
    report_with_a_token_revoked_meanwhile_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_with_a_token_revoked_meanwhile_changes_nothing_dynamodb() {
    report_with_a_token_revoked_meanwhile_changes_nothing(Backend::DynamoDb).await;
}

/// A report when no session is stored (no record at all, or one without a session) clears
/// nothing and says so: no "cleared" warning.
async fn report_without_a_session_is_not_logged_as_cleared(backend: Backend) {
    let log = logs::capture();
    let v = spawn(backend, MapEnv::new()).await;
    let tag = format!("{backend:?}").to_ascii_lowercase();
    let lines_of = |user: &str| -> Vec<String> {
        log.contents()
            .lines()
            .filter(|l| l.contains(&format!("\"user_id\":\"{user}\"")) && l.contains("reported"))
            .map(str::to_owned)
            .collect()
    };
    // No record at all.
    let jwt = v.app.jwt(&format!("no-record-reporter-{tag}"));
    let resp = v
        .post(REPORT, &jwt, json!({"error": "AUTH_KEY_UNREGISTERED"}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let lines = lines_of(&format!("no-record-reporter-{tag}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("no session was stored") && !lines[0].contains("cleared"),
        "{lines:?}"
    );
    // A record with a bot token but no session.
    let jwt = v.app.jwt(&format!("bot-only-reporter-{tag}"));
    let token = bot_token(171717171, "bot-only");
    v.fake.add_bot(&token, "bot_only_bot");
    let resp = v.put(BOT_TOKEN, &jwt, json!({"bot_token": token})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let resp = v
        .post(REPORT, &jwt, json!({"error": "AUTH_KEY_UNREGISTERED"}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let lines = lines_of(&format!("bot-only-reporter-{tag}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains("cleared"), "{lines:?}");
    // With a session: cleared, and said so.
    let jwt = v
        .configure(
            &format!("live-reporter-{tag}"),
            &bot_token(181818181, &format!("live-reporter-{tag}")),
            "live_reporter_bot",
            "live-reporter-session",
        )
        .await;
    let resp = v
        .post(REPORT, &jwt, json!({"error": "AUTH_KEY_UNREGISTERED"}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let lines = lines_of(&format!("live-reporter-{tag}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("cleared"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_without_a_session_is_not_logged_as_cleared_sqlite() {
    report_without_a_session_is_not_logged_as_cleared(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_without_a_session_is_not_logged_as_cleared_dynamodb() {
    report_without_a_session_is_not_logged_as_cleared(Backend::DynamoDb).await;
}

/// A KMS key that refuses for good (moto does not enforce `DisableKey` on `GenerateDataKey`
/// or `Decrypt`, so the key is one that does not exist: `NotFoundException`) is not "try
/// again later": `500
/// internal_error` with a request id (no `Retry-After`), the cause logged with that id,
/// nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_key_refusing_is_500_and_nothing_is_written() {
    let log = logs::capture();
    let v = spawn(Backend::DynamoDb, MapEnv::new()).await;
    let jwt = v
        .configure(
            "kms-refused",
            &bot_token(191919191, "kms-refused"),
            "kms_refused_bot",
            "kms-refused-session",
        )
        .await;
    let port = v.credentials().await;
    let user = UserId::parse("kms-refused").unwrap();
    let before = port.get(&user).await.unwrap().unwrap();
    // The same table, with a key id KMS does not know.
    let broken = spawn(
        Backend::DynamoDb,
        MapEnv::new()
            .with("TGLINK_TABLE", v.app.env.var("TGLINK_TABLE").unwrap())
            .with("TGLINK_KMS_KEY_ID", "0b7c5a3e-1f2d-4e5f-8a9b-0c1d2e3f4a5b"),
    )
    .await;
    // (Each app signs its own JWTs.)
    let _ = jwt;
    let jwt = broken.app.jwt("kms-refused");
    let newcomer = broken.app.jwt("kms-refused-newcomer");
    // The user's record is opened first (Decrypt), the newcomer's sealed at once
    // (GenerateDataKey): both refused, NotFoundException.
    for jwt in [&jwt, &newcomer] {
        let resp = broken
            .put(
                SESSION,
                jwt,
                json!({"session": "kms-refused-session-2", "telegram_user_id": 4242, "channel_id": -1}),
            )
            .await;
        resp.assert_problem(500, "internal_error");
        assert_eq!(resp.header("retry-after"), None);
        let request_id = resp.json["request_id"].as_str().expect("a request id");
        assert!(!request_id.is_empty());
        let logged = log.contents();
        let line = logged
            .lines()
            .find(|l| l.contains(request_id))
            .expect("the request id is logged");
        assert!(
            line.contains("internal_error") && line.contains("NotFoundException"),
            "{line}"
        );
        assert!(!line.contains("kms-refused-session"), "{line}");
    }
    assert_eq!(port.get(&user).await.unwrap().unwrap(), before);
    assert_eq!(
        port.get(&UserId::parse("kms-refused-newcomer").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Every MTProto error that means the session is gone (Pyrogram's 401 list, not only
/// `AUTH_KEY_UNREGISTERED`) is accepted by a report, clears the session and is shown by name as
/// `reauth_reason`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fatal_session_error_is_reported_by_name() {
    let v = spawn(Backend::Sqlite, MapEnv::new()).await;
    for (i, error) in [
        "AUTH_KEY_UNREGISTERED",
        "AUTH_KEY_INVALID",
        "AUTH_KEY_DUPLICATED",
        "SESSION_REVOKED",
        "SESSION_EXPIRED",
        "USER_DEACTIVATED",
        "USER_DEACTIVATED_BAN",
    ]
    .into_iter()
    .enumerate()
    {
        assert!(settings::FATAL_SESSION_ERRORS.contains(&error), "{error}");
        let user = format!("dead-session-{i}");
        let jwt = v
            .configure(
                &user,
                &bot_token(191919190 + i as u64, &user),
                &format!("dead_session_{i}_bot"),
                &format!("{user}-session"),
            )
            .await;
        let resp = v.post(REPORT, &jwt, json!({"error": error})).await;
        assert_eq!(resp.status, 200, "{error}: {}", resp.text);
        assert_eq!(resp.json["user_auth"], false, "{error}");
        assert_eq!(resp.json["reauth_reason"], error);
        let status = v.get(STATUS, &jwt).await;
        assert_eq!(status.json["reauth_required"], true, "{error}");
        assert_eq!(status.json["reauth_reason"], error);
    }
    assert_eq!(settings::FATAL_SESSION_ERRORS.len(), 7);
}
