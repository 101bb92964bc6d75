//! End-to-end: registration tokens for a 2FA provider's callback, over HTTP through the local
//! API, on both adapters (SQLite + local key; DynamoDB + KMS on moto), and across a restart of
//! the real process.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{Env, JwtConfig, MapEnv},
    store::registrations::{RegistrationId, RegistrationStatus},
    time::UnixTime,
    token::OneTimeToken,
};
use tglink_tests::{
    app::{TestApp, spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
    process::LocalApiProcess,
};

const SETUP: &str = "/api/auth/setup-2fa";
const CALLBACK: &str = "/api/auth/registration/callback";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn status_path(id: &str) -> String {
    format!("/api/auth/registration/{id}")
}

fn callback_secret(app: &TestApp) -> String {
    app.env
        .var("REGISTRATION_CALLBACK_SECRET")
        .expect("the local API has a dev callback secret")
}

/// Sends `body` to the callback with `header` as `X-Tglink-Signature` (none when `None`).
async fn deliver_raw(api: &Api, header: Option<&str>, body: Vec<u8>) -> ApiResponse {
    let mut request = api
        .request(Method::POST, CALLBACK)
        .header("content-type", "application/json")
        .body(body);
    if let Some(header) = header {
        request = request.header("X-Tglink-Signature", header);
    }
    api.send(request).await
}

/// Sends `body` signed now with `secret`, as a provider would.
async fn deliver(api: &Api, secret: &str, body: &Value) -> ApiResponse {
    let bytes = serde_json::to_vec(body).unwrap();
    let header = registration::signature::sign(secret.as_bytes(), UnixTime::now(), &bytes);
    deliver_raw(api, Some(&header), bytes).await
}

struct Created {
    id: String,
    token: String,
    expires_at: u64,
}

async fn setup(api: &Api, jwt: &str, body: Value) -> Created {
    let resp = api.post(SETUP, Some(jwt), Some(&body)).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    Created {
        id: resp.json["registration_id"].as_str().unwrap().to_owned(),
        token: resp.json["token"].as_str().unwrap().to_owned(),
        expires_at: resp.json["expires_at"].as_u64().unwrap(),
    }
}

fn completed(token: &str) -> Value {
    json!({"token": token, "status": "completed", "seed_id": "seed-1", "totp_seed": SEED})
}

fn rejected(token: &str) -> Value {
    json!({"token": token, "status": "rejected"})
}

fn assert_no_secrets(resp: &ApiResponse, token: &str) {
    assert!(!resp.text.contains(token), "a response carries the token");
    assert!(
        !resp.text.contains(SEED),
        "a response carries the TOTP seed"
    );
}

// -------------------------------------------------------------------------------------------

async fn completes_once(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = callback_secret(&app);
    let jwt = app.jwt("user-1");

    let before = UnixTime::now().secs();
    let resp = app
        .api
        .post(
            SETUP,
            Some(&jwt),
            Some(&json!({
                "service_name": "Legitate",
                "callback_url": "https://app.example/2fa/done",
                "email": "user-1@example.com",
            })),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.json["status"], "pending");
    let id = resp.json["registration_id"].as_str().unwrap().to_owned();
    let token = resp.json["token"].as_str().unwrap().to_owned();
    assert!(RegistrationId::parse(&id).is_some(), "{id}");
    assert!(OneTimeToken::parse(&token).is_ok());
    assert_ne!(id, token);
    let expires_at = resp.json["expires_at"].as_u64().unwrap();
    assert!((before + 86_400..=UnixTime::now().secs() + 86_400).contains(&expires_at));

    let status = app.api.get(&status_path(&id), Some(&jwt)).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["status"], "pending");
    assert_eq!(status.json["registration_id"], id.as_str());
    assert_eq!(status.json["service_name"], "Legitate");
    assert_eq!(status.json["email"], "user-1@example.com");
    assert_eq!(status.json["callback_url"], "https://app.example/2fa/done");
    assert_eq!(status.json["expires_at"], expires_at);
    assert!(status.json["completed_at"].is_null());
    assert!(status.json.get("token").is_none());

    let done = deliver(&app.api, &secret, &completed(&token)).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json["status"], "completed");
    assert_eq!(done.json["registration_id"], id.as_str());
    let completed_at = done.json["completed_at"].as_u64().unwrap();
    assert!(completed_at >= before);
    assert_no_secrets(&done, &token);

    let status = app.api.get(&status_path(&id), Some(&jwt)).await;
    assert_eq!(status.json["status"], "completed");
    assert_eq!(status.json["completed_at"], completed_at);
    assert_eq!(status.json["seed_id"], "seed-1");
    assert_no_secrets(&status, &token);

    // The same callback re-sent (its answer lost) gets the same answer and changes nothing.
    let resp = deliver(&app.api, &secret, &completed(&token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json, done.json);
    assert_no_secrets(&resp, &token);
    // Another callback (the other status, or another seed) is a conflict and changes nothing.
    let mut other_seed = completed(&token);
    other_seed["seed_id"] = json!("seed-2");
    for again in [rejected(&token), other_seed] {
        let resp = deliver(&app.api, &secret, &again).await;
        resp.assert_problem(409, "registration_finished");
        assert_no_secrets(&resp, &token);
    }
    let status = app.api.get(&status_path(&id), Some(&jwt)).await;
    assert_eq!(status.json["status"], "completed");
    assert_eq!(status.json["completed_at"], completed_at);

    if backend == Backend::Sqlite {
        let path = app.env.var("TGLINK_SQLITE_PATH").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let raw = String::from_utf8_lossy(&bytes);
        let hash = OneTimeToken::parse(&token).unwrap().hash();
        assert!(raw.contains(hash.as_str()), "the token's hash is stored");
        assert!(!raw.contains(&token), "the raw token must not be stored");
        assert!(!raw.contains(SEED), "the TOTP seed must be stored sealed");
    }
    log.assert_free_of(&[&token, SEED, &jwt, &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_once_sqlite() {
    completes_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_once_dynamodb() {
    completes_once(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

async fn late_callback_is_gone_and_expires(backend: Backend) {
    let app = spawn_app_with(
        backend,
        MapEnv::new().with("REGISTRATION_TOKEN_TTL_SEC", "1"),
    )
    .await;
    let secret = callback_secret(&app);
    let jwt = app.jwt("user-1");
    let created = setup(&app.api, &jwt, json!({"service_name": "Legitate"})).await;
    // Wait (for the condition, not for a fixed time) until the token has expired.
    while UnixTime::now().secs() < created.expires_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = app.api.get(&status_path(&created.id), Some(&jwt)).await;
    assert_eq!(status.json["status"], "expired", "reads as expired at once");

    let resp = deliver(&app.api, &secret, &completed(&created.token)).await;
    resp.assert_problem(410, "registration_expired");
    assert_no_secrets(&resp, &created.token);

    // The record itself now says `expired`, and stays so.
    let record = app
        .store()
        .await
        .registrations()
        .get(
            &RegistrationId::parse(&created.id).unwrap(),
            UnixTime::now(),
        )
        .await
        .unwrap()
        .expect("kept as an audit trail");
    assert_eq!(record.status, RegistrationStatus::Expired);
    assert_eq!(record.completed_at, None);
    deliver(&app.api, &secret, &rejected(&created.token))
        .await
        .assert_problem(410, "registration_expired");
    let status = app.api.get(&status_path(&created.id), Some(&jwt)).await;
    assert_eq!(status.json["status"], "expired");
    assert!(status.json["completed_at"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_callback_is_gone_and_expires_sqlite() {
    late_callback_is_gone_and_expires(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_callback_is_gone_and_expires_dynamodb() {
    late_callback_is_gone_and_expires(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

async fn bad_signatures_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = callback_secret(&app);
    let jwt = app.jwt("user-1");
    let created = setup(&app.api, &jwt, json!({"service_name": "Legitate"})).await;
    let body = serde_json::to_vec(&completed(&created.token)).unwrap();
    let now = UnixTime::now();

    deliver_raw(&app.api, None, body.clone())
        .await
        .assert_problem(401, "signature_missing");

    let wrong_secret =
        registration::signature::sign(b"not-the-callback-secret-but-long-enough", now, &body);
    deliver_raw(&app.api, Some(&wrong_secret), body.clone())
        .await
        .assert_problem(401, "signature_invalid");

    for stale_at in [
        UnixTime(now.secs() - 301),
        UnixTime(now.secs() - 3600),
        now.plus_secs(400),
    ] {
        let stale = registration::signature::sign(secret.as_bytes(), stale_at, &body);
        deliver_raw(&app.api, Some(&stale), body.clone())
            .await
            .assert_problem(401, "signature_stale");
    }

    // Signed, then altered: `completed` → `rejected`, and a seed swapped.
    let signed = registration::signature::sign(secret.as_bytes(), now, &body);
    for altered in [
        serde_json::to_vec(&rejected(&created.token)).unwrap(),
        String::from_utf8(body.clone())
            .unwrap()
            .replace(SEED, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .into_bytes(),
        [body.as_slice(), b" "].concat(),
    ] {
        deliver_raw(&app.api, Some(&signed), altered)
            .await
            .assert_problem(401, "signature_invalid");
    }

    for malformed in ["", "t=abc,v1=00", "v1=deadbeef", "sha256=abcdef"] {
        deliver_raw(&app.api, Some(malformed), body.clone())
            .await
            .assert_problem(401, "signature_invalid");
    }

    // Nothing above changed the registration; the genuine callback still completes it.
    let status = app.api.get(&status_path(&created.id), Some(&jwt)).await;
    assert_eq!(status.json["status"], "pending");
    let ok = deliver_raw(&app.api, Some(&signed), body).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_401_sqlite() {
    bad_signatures_are_401(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_401_dynamodb() {
    bad_signatures_are_401(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

async fn concurrent_callbacks_one_wins(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = callback_secret(&app);
    let jwt = app.jwt("user-1");
    for round in 0..8 {
        let created = setup(&app.api, &jwt, json!({"service_name": "Legitate"})).await;
        let (complete, reject) = (completed(&created.token), rejected(&created.token));
        let (a, b) = tokio::join!(
            deliver(&app.api, &secret, &complete),
            deliver(&app.api, &secret, &reject),
        );
        let (winner, loser) = match (a.status, b.status) {
            (200, 409) => (a, b),
            (409, 200) => (b, a),
            other => panic!("round {round}: expected one 200 and one 409, got {other:?}"),
        };
        loser.assert_problem(409, "registration_finished");
        let status = app.api.get(&status_path(&created.id), Some(&jwt)).await;
        assert_eq!(
            status.json["status"], winner.json["status"],
            "round {round}: the record shows the winner"
        );
        assert_eq!(status.json["completed_at"], winner.json["completed_at"]);
        let seed_id = if winner.json["status"] == "completed" {
            json!("seed-1")
        } else {
            Value::Null
        };
        assert_eq!(status.json["seed_id"], seed_id, "round {round}");
        log.assert_free_of(&[&created.token, SEED]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callbacks_one_wins_sqlite() {
    concurrent_callbacks_one_wins(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callbacks_one_wins_dynamodb() {
    concurrent_callbacks_one_wins(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

async fn only_the_owner_reads(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.jwt("user-1");
    let created = setup(&app.api, &owner, json!({"service_name": "Legitate"})).await;
    let path = status_path(&created.id);

    let resp = app.api.get(&path, Some(&app.jwt("user-2"))).await;
    resp.assert_problem(404, "registration_not_found");
    assert!(!resp.text.contains("Legitate"));
    app.api
        .get(&path, None)
        .await
        .assert_problem(401, "auth_required");
    app.api
        .get(
            &status_path(RegistrationId::generate().as_str()),
            Some(&owner),
        )
        .await
        .assert_problem(404, "registration_not_found");
    // The token is not an id: it does not open the status either.
    app.api
        .get(&status_path(&created.token), Some(&owner))
        .await
        .assert_problem(404, "registration_not_found");
    let resp = app.api.get(&path, Some(&owner)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_reads_sqlite() {
    only_the_owner_reads(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_reads_dynamodb() {
    only_the_owner_reads(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_validated() {
    let app = spawn_app(Backend::Sqlite).await;
    let secret = callback_secret(&app);
    let jwt = app.jwt("user-1");

    app.api
        .post(SETUP, None, Some(&json!({"service_name": "S"})))
        .await
        .assert_problem(401, "auth_required");
    app.api
        .post(SETUP, Some(&jwt), None)
        .await
        .assert_problem(400, "body_missing");
    app.api
        .post(SETUP, Some(&jwt), Some(&json!({})))
        .await
        .assert_problem(400, "body_invalid");
    for (body, code) in [
        (json!({"service_name": ""}), "service_name_invalid"),
        (
            json!({"service_name": "x".repeat(101)}),
            "service_name_invalid",
        ),
        (
            json!({"service_name": "S", "callback_url": "http://app.example/cb"}),
            "callback_url_invalid",
        ),
        (
            json!({"service_name": "S", "callback_url": "not a url"}),
            "callback_url_invalid",
        ),
        (
            json!({"service_name": "S", "email": "nope"}),
            "email_invalid",
        ),
    ] {
        app.api
            .post(SETUP, Some(&jwt), Some(&body))
            .await
            .assert_problem(400, code);
    }
    setup(
        &app.api,
        &jwt,
        json!({"service_name": "x".repeat(100), "callback_url": "http://localhost:3000/cb"}),
    )
    .await;

    // The email may come from the JWT's `email` claim.
    let config = JwtConfig::from_env(app.env.as_ref()).unwrap();
    let mut claims = DevClaims::new("user-9", &config, 300);
    claims.email = Some("claim@example.com".into());
    let with_email = sign_hs256(&app.env.var("APP_JWT_SECRET").unwrap(), &claims);
    let created = setup(&app.api, &with_email, json!({"service_name": "S"})).await;
    let status = app
        .api
        .get(&status_path(&created.id), Some(&with_email))
        .await;
    assert_eq!(status.json["email"], "claim@example.com");

    // Callback bodies (correctly signed).
    for (body, status, code) in [
        (
            json!({"token": "short", "status": "completed"}),
            400,
            "token_malformed",
        ),
        (
            json!({"token": created.token, "status": "done"}),
            400,
            "body_invalid",
        ),
        (
            json!({"token": created.token, "status": "rejected", "totp_seed": SEED}),
            400,
            "seed_not_allowed",
        ),
        (
            json!({"token": created.token, "status": "completed", "totp_seed": ""}),
            400,
            "totp_seed_invalid",
        ),
        (
            json!({"token": created.token, "status": "completed", "seed_id": "a\u{0}b"}),
            400,
            "seed_id_invalid",
        ),
        (
            json!({"token": OneTimeToken::mint().expose(), "status": "completed"}),
            404,
            "registration_not_found",
        ),
    ] {
        let resp = deliver(&app.api, &secret, &body).await;
        resp.assert_problem(status, code);
        assert!(!resp.text.contains(SEED));
    }
    let status = app
        .api
        .get(&status_path(&created.id), Some(&with_email))
        .await;
    assert_eq!(
        status.json["status"], "pending",
        "no refused callback changed it"
    );

    app.api
        .get(SETUP, Some(&jwt))
        .await
        .assert_problem(405, "method_not_allowed");
    app.api
        .get(CALLBACK, Some(&jwt))
        .await
        .assert_problem(404, "registration_not_found");
    app.api
        .call(Method::POST, &status_path(&created.id), Some(&jwt), None)
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503() {
    let app = spawn_app_with(
        Backend::Sqlite,
        tglink_tests::fixtures::unreachable_dynamodb(),
    )
    .await;
    let jwt = app.jwt("user-1");
    let resp = app
        .api
        .post(SETUP, Some(&jwt), Some(&json!({"service_name": "S"})))
        .await;
    resp.assert_problem(503, "service_unavailable");
    assert_eq!(resp.header("retry-after"), Some("2"));
    let token = OneTimeToken::mint();
    deliver(&app.api, &callback_secret(&app), &rejected(token.expose()))
        .await
        .assert_problem(503, "service_unavailable");
    app.api
        .get(
            &status_path(RegistrationId::generate().as_str()),
            Some(&jwt),
        )
        .await
        .assert_problem(503, "service_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_restart_keeps_registrations_on_both_adapters() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let jwt = app.jwt("user-r");
        let created = setup(&app.api, &jwt, json!({"service_name": "Legitate"})).await;
        let app = app.restart().await;
        let resp = deliver(&app.api, &callback_secret(&app), &completed(&created.token)).await;
        assert_eq!(resp.status, 200, "{backend:?}: {}", resp.text);
        let status = app.api.get(&status_path(&created.id), Some(&jwt)).await;
        assert_eq!(status.json["status"], "completed", "{backend:?}");
    }
}

/// The seed's failure: the provider calls back after the process restarted. Here the process is
/// the real `local-api` binary, stopped with SIGTERM and started again on the same data dir.
#[test]
fn restart_of_the_process_keeps_registrations() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("tglink.db");
    let env = MapEnv::new()
        .with("TGLINK_SQLITE_PATH", db.display().to_string())
        .with(
            "TGLINK_LOCAL_KEY_PATH",
            dir.path().join("master.key").display().to_string(),
        );
    let rt = tokio::runtime::Runtime::new().unwrap();

    let first = LocalApiProcess::start(&env);
    let jwt = first
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("export TGLINK_JWT="))
        .expect("the banner prints a dev JWT")
        .to_owned();
    let api = Api::new(first.base_url.clone());
    let created = rt.block_on(setup(&api, &jwt, json!({"service_name": "Legitate"})));
    let mut output = first.stop();

    // The provider signs with the callback secret the local API generated into its data dir.
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dev-secrets.json")).unwrap())
            .unwrap();
    let secret = secrets["REGISTRATION_CALLBACK_SECRET"]
        .as_str()
        .unwrap()
        .to_owned();

    let second = LocalApiProcess::start(&env);
    let api = Api::new(second.base_url.clone());
    let resp = rt.block_on(deliver(&api, &secret, &completed(&created.token)));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["status"], "completed");
    let status = rt.block_on(api.get(&status_path(&created.id), Some(&jwt)));
    assert_eq!(status.json["status"], "completed");
    assert!(status.json["completed_at"].is_u64());
    let again = rt.block_on(deliver(&api, &secret, &rejected(&created.token)));
    again.assert_problem(409, "registration_finished");
    output.push_str(&second.stop());

    assert!(output.contains("registration finished"), "{output}");
    for secret_text in [created.token.as_str(), SEED, secret.as_str()] {
        assert!(
            !output.contains(secret_text),
            "a secret appears in the output"
        );
    }
}
