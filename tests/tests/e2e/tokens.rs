//! End-to-end: the token service's JOSE side on both adapters — discovery and JWKS served by
//! the local API, access tokens verified by an independent JOSE library (PyJWT, from the pinned
//! `.venv`, `tests/py/verify_with_jwks.py`) with nothing but the issuer URL, key rotation
//! through the admin route and the scheduled invocation, and no key material in logs.
//!
//! The rotation test makes its tokens in-process by [`TokenSigner`] over the same store and
//! sealer the local API serves (to sign with a key before and after a rotation at will);
//! [`pyjwt_verifies_a_token_from_the_token_endpoint`] takes one from `POST /oauth/token`, as a
//! host app would (the script takes any producer's token).

use std::{net::TcpListener, sync::Arc};

use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{JwtConfig, JwtKey, MapEnv, Platform},
    oauth::{AccessTokenClaims, TokenConfig, keys},
    runtime::{Invocation, Startup},
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app_with},
    fixtures::Backend,
    logs,
};

const JWKS: &str = "/.well-known/jwks.json";
const DISCOVERY: &str = "/.well-known/openid-configuration";
const ROTATE: &str = "/api/admin/signing-keys/rotate";

/// The local API on a fixed free port, so its default issuer (`http://<LISTEN_ADDR>`) is its
/// own URL.
async fn spawn(backend: Backend) -> TestApp {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    spawn_app_with(
        backend,
        MapEnv::new().with("LISTEN_ADDR", format!("127.0.0.1:{port}")),
    )
    .await
}

async fn startup(app: &TestApp) -> Startup {
    Startup::new(app.env.clone(), Platform::Local)
        .await
        .expect("startup")
}

fn admin_jwt(app: &TestApp) -> String {
    let config = JwtConfig::from_env(app.env.as_ref()).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new("admin-1", &config, 3600);
    claims.roles = vec![tglink_shared::auth::DEFAULT_ADMIN_ROLE.into()];
    sign_hs256(secret, &claims)
}

fn claims(config: &TokenConfig, telegram: i64, iat: u64) -> AccessTokenClaims {
    let iat = iat as i64;
    AccessTokenClaims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: telegram.to_string(),
        client_id: "tglink-miniapp".into(),
        app_user_id: Some("app-user-7".into()),
        sid: format!("sid-{telegram}"),
        amr: vec!["telegram_miniapp".into()],
        auth_time: iat,
        iat,
        exp: iat + config.access_token_ttl.as_secs() as i64,
        jti: format!("jti-{telegram}-{iat}"),
        username: Some(format!("user{telegram}")),
        first_name: Some("Ann".into()),
        language_code: Some("en".into()),
        is_premium: None,
    }
}

fn kid_of(token: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What `tests/py/verify_with_jwks.py` says of `token`: `Ok(output JSON)` or `Err(stderr)`.
async fn pyjwt_verify(issuer: &str, audience: &str, token: &str) -> Result<Value, String> {
    let root = tglink_tests::workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv`",
        python.display()
    );
    let output = tokio::process::Command::new(python)
        .arg(root.join("tests/py/verify_with_jwks.py"))
        .args([issuer, audience, token])
        .output()
        .await
        .expect("python runs");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("JSON on stdout"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn now() -> u64 {
    UnixTime::now().secs()
}

async fn discovery_and_jwks_are_public_and_cacheable(backend: Backend) {
    let app = spawn(backend).await;
    let config = startup(&app).await.token_config().unwrap();
    assert_eq!(config.issuer, app.api.base);
    let doc = app.api.get(DISCOVERY, None).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert_eq!(doc.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(doc.json["issuer"], config.issuer.as_str());
    assert_eq!(
        doc.json["jwks_uri"],
        format!("{}/.well-known/jwks.json", config.issuer)
    );
    assert_eq!(
        doc.json["token_endpoint"],
        format!("{}/oauth/token", config.issuer)
    );
    assert_eq!(
        doc.json["revocation_endpoint"],
        format!("{}/oauth/revoke", config.issuer)
    );
    assert_eq!(
        doc.json["grant_types_supported"],
        json!([
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "refresh_token"
        ])
    );
    assert_eq!(
        doc.json["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        doc.json["authorization_endpoint"],
        format!("{}/oauth/authorize", config.issuer)
    );
    assert_eq!(
        doc.json["code_challenge_methods_supported"],
        json!(["S256"])
    );
    // No key before the first token.
    let jwks = app.api.get(JWKS, None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(jwks.json, json!({"keys": []}));
    // Wrong method.
    app.api
        .post(JWKS, None, None)
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_and_jwks_sqlite() {
    discovery_and_jwks_are_public_and_cacheable(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_and_jwks_dynamodb() {
    discovery_and_jwks_are_public_and_cacheable(Backend::DynamoDb).await;
}

/// PyJWT verifies a token from the issuer URL alone; after a rotation old tokens still verify
/// and new ones carry the new kid; a forged or foreign token is refused.
async fn pyjwt_verifies_tokens_across_a_rotation(backend: Backend) {
    let logs = logs::capture();
    let app = spawn(backend).await;
    let startup = startup(&app).await;
    let config = startup.token_config().unwrap();
    let t0 = now();

    let old = startup
        .token_signer()
        .await
        .unwrap()
        .sign(&claims(&config, 4242, t0))
        .await
        .unwrap();
    let old_kid = kid_of(&old);

    // A rotation a few minutes ago (backdated, so the new key is already past its
    // publication delay), through the same store and sealer the local API uses.
    let store = startup.store().await.unwrap();
    let new_kid = keys::rotate(
        store.signing_keys().as_ref(),
        &startup.sealer().await.unwrap(),
        UnixTime(t0 - 120),
    )
    .await
    .unwrap();
    assert_ne!(new_kid, old_kid);
    // A fresh instance (cold start) signs with the new key.
    let fresh = Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let new = fresh
        .token_signer()
        .await
        .unwrap()
        .sign(&claims(&config, 4243, t0))
        .await
        .unwrap();
    assert_eq!(kid_of(&new), new_kid);

    for (token, kid, sub) in [(&old, &old_kid, "4242"), (&new, &new_kid, "4243")] {
        let verified = pyjwt_verify(&config.issuer, &config.audience, token)
            .await
            .unwrap_or_else(|e| panic!("PyJWT refused a tglink token: {e}"));
        assert_eq!(verified["kid"], kid.as_str());
        assert_eq!(verified["claims"]["sub"], sub);
        assert_eq!(verified["claims"]["iss"], config.issuer.as_str());
        assert_eq!(verified["claims"]["app_user_id"], "app-user-7");
        assert_eq!(verified["claims"]["amr"], json!(["telegram_miniapp"]));
    }
    let jwks = app.api.get(JWKS, None).await;
    let kids: Vec<_> = jwks.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, [new_kid.clone(), old_kid.clone()]);
    for key in jwks.json["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none(), "no private member is published");
    }

    // Refusals: another audience, a tampered payload, a token of another deployment.
    assert!(
        pyjwt_verify(&config.issuer, "other-app", &new)
            .await
            .is_err()
    );
    let mut parts: Vec<&str> = new.split('.').collect();
    let forged_payload = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = "1".into();
        URL_SAFE_NO_PAD.encode(payload.to_string())
    };
    parts[1] = &forged_payload;
    assert!(
        pyjwt_verify(&config.issuer, &config.audience, &parts.join("."))
            .await
            .is_err()
    );

    // No token and no key material in the logs.
    let set = store.signing_keys().key_set().await.unwrap();
    let mut secrets = vec![old.clone(), new.clone()];
    for record in &set.keys {
        let pkcs8 = keys::open_private(&startup.sealer().await.unwrap(), record)
            .await
            .unwrap();
        use base64::{
            Engine,
            engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
        };
        secrets.push(STANDARD.encode(pkcs8.expose()));
        secrets.push(URL_SAFE_NO_PAD.encode(pkcs8.expose()));
        secrets.push(URL_SAFE_NO_PAD.encode(&pkcs8.expose()[pkcs8.expose().len() - 65..][1..33]));
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    logs.assert_free_of(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyjwt_verifies_tokens_across_a_rotation_sqlite() {
    pyjwt_verifies_tokens_across_a_rotation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyjwt_verifies_tokens_across_a_rotation_dynamodb() {
    pyjwt_verifies_tokens_across_a_rotation(Backend::DynamoDb).await;
}

/// The admin route rotates (admin role only) and the JWKS then serves the new key.
async fn the_admin_route_rotates(backend: Backend) {
    let logs = logs::capture();
    let app = spawn(backend).await;
    let startup = startup(&app).await;
    let config = startup.token_config().unwrap();
    let first = startup
        .token_signer()
        .await
        .unwrap()
        .sign(&claims(&config, 77, now()))
        .await
        .unwrap();

    app.api
        .post(ROTATE, None, None)
        .await
        .assert_problem(401, "auth_required");
    app.api
        .post(ROTATE, Some(&app.jwt("someone")), None)
        .await
        .assert_problem(403, "forbidden");
    let rotated = app.api.post(ROTATE, Some(&admin_jwt(&app)), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_kid = rotated.json["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, kid_of(&first));
    assert_eq!(
        rotated.json["published"],
        json!([new_kid.clone(), kid_of(&first)])
    );
    // A cold start of the discovery function serves both keys.
    let app = app.restart().await;
    let jwks = app.api.get(JWKS, None).await;
    assert_eq!(jwks.json["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks.json["keys"][0]["kid"], new_kid.as_str());
    logs.assert_free_of(&[&first]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_route_rotates_sqlite() {
    the_admin_route_rotates(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_route_rotates_dynamodb() {
    the_admin_route_rotates(Backend::DynamoDb).await;
}

/// The signing-keys function tells a scheduled invocation from an HTTP event: the schedule's
/// payload rotates, an HTTP event is routed (and needs its admin JWT), anything else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_and_http_invocations_are_told_apart() {
    let app = spawn(Backend::Sqlite).await;
    let function = Arc::new(
        <signing_keys::SigningKeysFunction as tglink_shared::runtime::Function>::build(
            &startup(&app).await,
        )
        .await
        .unwrap(),
    );
    let invoke = |payload: Value| {
        let function = function.clone();
        async move {
            tglink_shared::runtime::invoke(
                function,
                Default::default(),
                lambda_http::LambdaEvent::new(payload, lambda_http::Context::default()),
            )
            .await
        }
    };
    // The schedule's input.
    let first = invoke(json!({"tglink_scheduled": "rotate-signing-key"}))
        .await
        .unwrap();
    let second = invoke(json!({"tglink_scheduled": "rotate-signing-key"}))
        .await
        .unwrap();
    assert_ne!(first["kid"], second["kid"]);
    assert_eq!(second["published"][1], first["kid"]);
    // Unknown jobs and payloads fail the invocation.
    assert!(
        invoke(json!({"tglink_scheduled": "drop-tables"}))
            .await
            .is_err()
    );
    assert!(
        invoke(json!({"tglink_scheduled": "rotate-signing-key", "x": 1}))
            .await
            .is_err()
    );
    assert!(invoke(json!({"source": "aws.events"})).await.is_err());
    assert!(matches!(
        Invocation::classify(json!({"tglink_scheduled": 1})),
        Invocation::Unknown
    ));
    // The HTTP event of tests/events (API Gateway HTTP API 2.0) is routed as HTTP.
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            tglink_tests::workspace_root()
                .join("tests/events/signing-keys/post-admin-signing-keys-rotate.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        Invocation::classify(event.clone()),
        Invocation::Http(_)
    ));
    let answer = invoke(event).await.unwrap();
    // The event's JWT is signed with another secret than this app's: a 401, as an HTTP answer.
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let set = startup(&app)
        .await
        .store()
        .await
        .unwrap()
        .signing_keys()
        .key_set()
        .await
        .unwrap();
    assert_eq!(set.keys.len(), 2);
}

/// A token from `POST /oauth/token` (an initData exchange, as a Mini App does), verified by
/// PyJWT with nothing but the issuer URL (discovery → `jwks_uri` → the key); its claims are the
/// ones the initData proved. Then that token links the host user, and a Login Widget sign-in of
/// the same Telegram user carries `app_user_id` (issue 15 item 4), verified by PyJWT as well.
async fn pyjwt_verifies_a_token_from_the_token_endpoint(backend: Backend) {
    use tglink_shared::{config::Env, telegram::initdata::signing::sign_hmac};
    let app = spawn(backend).await;
    let config = startup(&app).await.token_config().unwrap();
    let bot_token = app.env.var("TELEGRAM_BOT_TOKEN").unwrap();
    let user =
        json!({"id": 5151, "first_name": "Ann", "username": "ann5151", "language_code": "en"})
            .to_string();
    let init_data = sign_hmac(
        &[
            ("query_id", "PYJWT1"),
            ("user", &user),
            ("auth_date", &now().to_string()),
        ],
        &bot_token,
    );
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair(
            "subject_token_type",
            "urn:tglink:params:oauth:token-type:telegram-init-data",
        )
        .append_pair("subject_token", &init_data)
        .finish();
    let api = &app.api;
    let resp = api
        .send(
            api.request(http::Method::POST, "/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let token = resp.json["access_token"].as_str().unwrap();
    let verified = pyjwt_verify(&config.issuer, &config.audience, token)
        .await
        .unwrap_or_else(|e| panic!("PyJWT refused a token of the token endpoint: {e}"));
    let claims = &verified["claims"];
    assert_eq!(claims["sub"], "5151");
    assert_eq!(claims["username"], "ann5151");
    assert_eq!(claims["language_code"], "en");
    assert_eq!(claims["amr"], json!(["telegram_miniapp"]));
    assert!(claims["sid"].is_string() && claims["jti"].is_string());
    assert!(claims.get("app_user_id").is_none(), "not linked: {claims}");

    // The Mini App's token links the host user; a later Login Widget sign-in of the same
    // Telegram user (issue 15) carries `app_user_id`, verified by PyJWT too.
    let resp = api
        .post(
            "/api/telegram/link",
            Some(&app.jwt("user-5151")),
            Some(&json!({"access_token": token})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let widget = tglink_shared::telegram::login_widget::signing::sign_widget(
        &[
            ("id", "5151"),
            ("first_name", "Ann"),
            ("username", "ann5151"),
            ("auth_date", &now().to_string()),
        ],
        &bot_token,
    );
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair(
            "subject_token_type",
            "urn:tglink:params:oauth:token-type:telegram-login-widget",
        )
        .append_pair("subject_token", &widget)
        .finish();
    let resp = api
        .send(
            api.request(http::Method::POST, "/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let token = resp.json["access_token"].as_str().unwrap();
    let verified = pyjwt_verify(&config.issuer, &config.audience, token)
        .await
        .unwrap_or_else(|e| panic!("PyJWT refused a Login Widget session's token: {e}"));
    let claims = &verified["claims"];
    assert_eq!(claims["sub"], "5151");
    assert_eq!(claims["amr"], json!(["telegram_widget"]));
    assert_eq!(claims["app_user_id"], "user-5151", "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_a_token_from_the_token_endpoint_sqlite() {
    pyjwt_verifies_a_token_from_the_token_endpoint(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_a_token_from_the_token_endpoint_dynamodb() {
    pyjwt_verifies_a_token_from_the_token_endpoint(Backend::DynamoDb).await;
}
