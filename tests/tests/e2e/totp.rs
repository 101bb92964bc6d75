//! End-to-end: `POST /api/auth/2fa/verify` checks TOTP codes against the sealed seed of the
//! user's completed registration (issue 18), on both adapters: RFC 6238 Appendix B through the
//! real handler with a test clock; one acceptance per code, also for 16 concurrent submissions;
//! the service role; lockout across two real local API processes sharing the store, reset by a
//! success and by the end of the window; the seed in no response of any route and in no log.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DEFAULT_SERVICE_ROLE, DevClaims, JwtVerifier, sign_hs256},
    config::{Env, JwtConfig, MapEnv},
    time::{Clock, UnixTime},
};
use tglink_tests::{
    app::spawn_app,
    fixtures::Backend,
    functions::FUNCTIONS,
    http_client::{Api, ApiResponse},
    logs,
    process::LocalApiProcess,
};

const SETUP: &str = "/api/auth/setup-2fa";
const CALLBACK: &str = "/api/auth/registration/callback";
const VERIFY: &str = "/api/auth/2fa/verify";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// The 6-digit code of `seed` at Unix time `t`.
fn code_at(seed: &str, t: u64) -> String {
    registration::totp::parse_seed(seed)
        .unwrap()
        .generate(t)
        .to_string()
}

/// A JWT of `user` with `roles`, signed with the app's HS256 secret.
fn jwt_with_roles(env: &dyn Env, user: &str, roles: &[&str]) -> String {
    let config = JwtConfig::from_env(env).unwrap();
    let mut claims = DevClaims::new(user, &config, 3600);
    claims.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    sign_hs256(&env.var("APP_JWT_SECRET").unwrap(), &claims)
}

/// Creates a registration for the JWT's user and completes it with `seed` (signed at `now`);
/// returns the callback's response and the registration id.
async fn enroll(api: &Api, jwt: &str, secret: &str, seed: &str) -> (ApiResponse, String) {
    let created = api
        .post(SETUP, Some(jwt), Some(&json!({"service_name": "Legitate"})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["registration_id"].as_str().unwrap().to_owned();
    let body = serde_json::to_vec(&json!({
        "token": created.json["token"],
        "status": "completed",
        "totp_seed": seed,
    }))
    .unwrap();
    let signature = registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
    let request = api
        .request(Method::POST, CALLBACK)
        .header("content-type", "application/json")
        .header("X-Tglink-Signature", signature)
        .body(body);
    (api.send(request).await, id)
}

async fn verify(api: &Api, jwt: &str, body: Value) -> ApiResponse {
    api.post(VERIFY, Some(jwt), Some(&body)).await
}

// -------------------------------------------------------------------------------------------

/// One valid code: of 16 concurrent submissions exactly one is `valid`, the others and every
/// later one `401 totp_replayed`; a wrong code `401 totp_invalid`; the service role names the
/// user; rejected registrations and unenrolled users never verify; a seed that is not a TOTP
/// key is refused at the callback; the seed is in no route's response and in no log.
async fn codes_verify_once(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = app.env.var("REGISTRATION_CALLBACK_SECRET").unwrap();
    let jwt = app.jwt("totp-user");
    let (done, id) = enroll(&app.api, &jwt, &secret, SEED).await;
    assert_eq!(done.status, 200, "{}", done.text);

    let now = UnixTime::now().secs();
    let code = code_at(SEED, now);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, jwt, code) = (app.api.clone(), jwt.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            verify(&api, &jwt, json!({"code": code})).await
        }));
    }
    let mut valid = Vec::new();
    for task in tasks {
        let resp = task.await.unwrap();
        assert!(!resp.text.contains(SEED));
        if resp.status == 200 {
            valid.push(resp);
        } else {
            resp.assert_problem(401, "totp_replayed");
        }
    }
    assert_eq!(valid.len(), 1, "exactly one submission is valid");
    let accepted = &valid[0];
    assert_eq!(accepted.json["valid"], true);
    assert_eq!(accepted.json["registration_id"], id.as_str());
    let step = accepted.json["step"].as_u64().unwrap();
    assert!((now / 30 - 1..=now / 30 + 1).contains(&step), "{step}");
    verify(&app.api, &jwt, json!({"code": code}))
        .await
        .assert_problem(401, "totp_replayed");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    verify(&app.api, &jwt, json!({"code": wrong}))
        .await
        .assert_problem(401, "totp_invalid");

    // A host backend with the service role names the user (the next step's code).
    let service = jwt_with_roles(app.env.as_ref(), "host-backend", &[DEFAULT_SERVICE_ROLE]);
    let next = code_at(SEED, (step + 1) * 30);
    let resp = verify(
        &app.api,
        &service,
        json!({"code": next, "user_id": "totp-user", "registration_id": id}),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["step"], step + 1);
    verify(&app.api, &service, json!({"code": next}))
        .await
        .assert_problem(400, "user_id_required");
    verify(
        &app.api,
        &jwt,
        json!({"code": next, "user_id": "someone-else"}),
    )
    .await
    .assert_problem(403, "forbidden");
    let admin = jwt_with_roles(app.env.as_ref(), "totp-admin", &["tglink:admin"]);
    verify(
        &app.api,
        &admin,
        json!({"code": next, "user_id": "totp-user"}),
    )
    .await
    .assert_problem(403, "forbidden");

    // Nothing to verify against: no registration, a rejected one, another user's.
    let stranger = app.jwt("totp-stranger");
    verify(&app.api, &stranger, json!({"code": code}))
        .await
        .assert_problem(404, "totp_not_enrolled");
    let created = app
        .api
        .post(SETUP, Some(&stranger), Some(&json!({"service_name": "S"})))
        .await;
    let rejected_id = created.json["registration_id"].as_str().unwrap().to_owned();
    let body =
        serde_json::to_vec(&json!({"token": created.json["token"], "status": "rejected"})).unwrap();
    let signature = registration::signature::sign(secret.as_bytes(), UnixTime::now(), &body);
    let request = app
        .api
        .request(Method::POST, CALLBACK)
        .header("content-type", "application/json")
        .header("X-Tglink-Signature", signature)
        .body(body);
    assert_eq!(app.api.send(request).await.status, 200);
    for named in [rejected_id.as_str(), id.as_str(), "not-an-id"] {
        verify(
            &app.api,
            &stranger,
            json!({"code": code, "registration_id": named}),
        )
        .await
        .assert_problem(404, "totp_not_enrolled");
    }

    // A seed that is no TOTP key (here 80 bits, under RFC 4226's 128) is refused at the callback.
    let short = "JBSWY3DPEHPK3PXP";
    let (refused, _) = enroll(&app.api, &stranger, &secret, short).await;
    refused.assert_problem(400, "totp_seed_invalid");
    assert!(!refused.text.contains(short));

    // The seed leaves through no route: every route of every function, as the seed's owner.
    for function in FUNCTIONS {
        for route in function.routes {
            let path = route
                .pattern
                .replace("{registration_id}", &id)
                .replace(['{', '}'], "");
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let body = (method != Method::GET).then(|| json!({"code": code}));
            let resp = app.api.call(method, &path, Some(&jwt), body.as_ref()).await;
            assert!(
                !resp.text.contains(SEED) && !resp.text.contains(short),
                "{} {} returns the seed",
                route.method,
                route.pattern
            );
        }
    }
    log.assert_free_of(&[SEED, short, &jwt, &service, &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_verify_once_sqlite() {
    codes_verify_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_verify_once_dynamodb() {
    codes_verify_once(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

fn request(
    path: &str,
    jwt: Option<&str>,
    body: &Value,
    signature: Option<String>,
) -> lambda_http::Request {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    if let Some(jwt) = jwt {
        req = req.header("authorization", format!("Bearer {jwt}"));
    }
    if let Some(signature) = signature {
        req = req.header("X-Tglink-Signature", signature);
    }
    req.body(lambda_http::Body::Text(body.to_string())).unwrap()
}

async fn answer(resp: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let lambda_http::Body::Text(text) = resp.body() else {
        panic!("expected a JSON body")
    };
    (status, serde_json::from_str(text).unwrap())
}

/// RFC 6238 Appendix B (SHA-1 seed "12345678901234567890", 8 digits, 30 s) through the
/// registration function's handler, the clock set to each listed time: a registration is
/// created and completed with the seed as an `otpauth://` URI at that time, and the listed
/// code verifies at its step, once.
async fn rfc_6238_appendix_b(backend: Backend) {
    const JWT_SECRET: &str = "an-rfc-6238-jwt-secret-of-32-bytes!";
    const CALLBACK_SECRET: &str = "an-rfc-6238-callback-secret-of-32-bytes";
    const URI: &str = "otpauth://totp/RFC6238:appendix-b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&algorithm=SHA1&period=30";
    const VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let env = MapEnv::new()
        .with("APP_JWT_SECRET", JWT_SECRET)
        .with("APP_JWT_ISSUER", "rfc")
        .with("APP_JWT_AUDIENCE", "rfc");
    let config = JwtConfig::from_env(&env).unwrap();
    let at = Arc::new(AtomicU64::new(0));
    let clock_at = at.clone();
    let function = registration::Registration {
        auth: JwtVerifier::new(&config).unwrap(),
        registrations: fx.store.registrations(),
        sealer: sealer.sealer.clone(),
        secret: registration::signature::CallbackSecret::new(CALLBACK_SECRET).unwrap(),
        ttl_secs: registration::DEFAULT_TTL_SECS,
        lockout: registration::totp_lockout(&env).unwrap(),
        clock: Clock::new(move || UnixTime(clock_at.load(SeqCst))),
    };
    let jwt = sign_hs256(JWT_SECRET, &DevClaims::new("rfc-user", &config, 3600));
    for &(time, code) in VECTORS {
        at.store(time, SeqCst);
        let (status, created) = answer(
            registration::handle(
                &function,
                request(SETUP, Some(&jwt), &json!({"service_name": "RFC"}), None),
            )
            .await,
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let body = json!({"token": created["token"], "status": "completed", "totp_seed": URI});
        let signature = registration::signature::sign(
            CALLBACK_SECRET.as_bytes(),
            UnixTime(time),
            body.to_string().as_bytes(),
        );
        let (status, done) = answer(
            registration::handle(&function, request(CALLBACK, None, &body, Some(signature))).await,
        )
        .await;
        assert_eq!(status, 200, "{done}");
        let submit = || {
            registration::handle(
                &function,
                request(VERIFY, Some(&jwt), &json!({"code": code}), None),
            )
        };
        let (status, verified) = answer(submit().await).await;
        assert_eq!(status, 200, "at {time}: {verified}");
        assert_eq!(
            verified,
            json!({"valid": true, "registration_id": created["registration_id"], "step": time / 30}),
            "at {time}"
        );
        let (status, again) = answer(submit().await).await;
        assert_eq!(
            (status, &again["code"]),
            (401, &json!("totp_replayed")),
            "at {time}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_6238_appendix_b_sqlite() {
    rfc_6238_appendix_b(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_6238_appendix_b_dynamodb() {
    rfc_6238_appendix_b(Backend::DynamoDb).await;
}

// -------------------------------------------------------------------------------------------

/// `TOTP_MAX_FAILURES=3`, `TOTP_LOCKOUT_SEC=3`, two real local API processes on one store:
/// three wrong codes spread over both lock the user on both (`429 totp_locked`, `Retry-After`),
/// even for a valid code; after the window a valid code is accepted; a success resets the count.
fn lockout_across_two_processes(backend: Backend) {
    const JWT_SECRET: &str = "a-lockout-test-jwt-secret-of-32-bytes";
    const CALLBACK_SECRET: &str = "a-lockout-test-callback-secret-of-32-bytes";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let env = rt
        .block_on(backend.app_env(dir.path()))
        .with("APP_JWT_SECRET", JWT_SECRET)
        .with("APP_JWT_ISSUER", "lockout")
        .with("APP_JWT_AUDIENCE", "lockout")
        .with("REGISTRATION_CALLBACK_SECRET", CALLBACK_SECRET)
        .with("TOTP_MAX_FAILURES", "3")
        .with("TOTP_LOCKOUT_SEC", "3");
    let jwt = jwt_with_roles(&env, "lockout-user", &[]);
    let first = LocalApiProcess::start(&env);
    let second = LocalApiProcess::start(&env);
    let (a, b) = (
        Api::new(first.base_url.clone()),
        Api::new(second.base_url.clone()),
    );
    let (done, _) = rt.block_on(enroll(&a, &jwt, CALLBACK_SECRET, SEED));
    assert_eq!(done.status, 200, "{}", done.text);
    let valid = || code_at(SEED, UnixTime::now().secs());
    let wrong = || {
        let code = valid();
        if code == "000000" { "000001" } else { "000000" }.to_owned()
    };
    let submit = |api: &Api, code: String| rt.block_on(verify(api, &jwt, json!({"code": code})));

    for api in [&a, &b, &a] {
        submit(api, wrong()).assert_problem(401, "totp_invalid");
    }
    for api in [&b, &a] {
        let locked = submit(api, valid());
        locked.assert_problem(429, "totp_locked");
        let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3).contains(&retry), "{retry}");
    }
    // The window ends: a valid code is accepted again (polling, not a fixed sleep).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let accepted = loop {
        let resp = submit(&b, valid());
        if resp.status != 429 {
            break resp;
        }
        assert!(std::time::Instant::now() < deadline, "still locked");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let step = accepted.json["step"].as_u64().unwrap();

    // Two failures, a success (the next step's code), two failures: never locked, because the
    // success reset the count (without the reset the fourth failure would be refused as locked).
    for api in [&a, &b] {
        submit(api, wrong()).assert_problem(401, "totp_invalid");
    }
    let next = submit(&a, code_at(SEED, (step + 1) * 30));
    assert_eq!(next.status, 200, "{}", next.text);
    for api in [&b, &a] {
        submit(api, wrong()).assert_problem(401, "totp_invalid");
    }
    let mut output = first.stop();
    output.push_str(&second.stop());
    assert!(output.contains("totp code accepted"), "{output}");
    assert!(!output.contains(SEED), "the seed appears in the output");
}

#[test]
fn lockout_across_two_processes_sqlite() {
    lockout_across_two_processes(Backend::Sqlite);
}

#[test]
fn lockout_across_two_processes_dynamodb() {
    lockout_across_two_processes(Backend::DynamoDb);
}
