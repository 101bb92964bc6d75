//! End-to-end: the token endpoint and revocation (`POST /oauth/token`, `POST /oauth/revoke`)
//! through the local API over HTTP, on both adapters: the initData exchange, refresh rotation
//! with reuse detection (also across two processes and a restart), revocation, the end of every
//! session with unlink / admin revoke / block, and the bad-input table (RFC 6749 errors, never
//! a 500, no secret echoed or logged).

use std::sync::Arc;

use http::Method;
use serde_json::Value;
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{Env, JwtConfig, JwtKey, Platform},
    ids::TelegramUserId,
    oauth::AccessTokenClaims,
    runtime::Startup,
    store::{Link, LinkSource},
    telegram::initdata::signing::sign_hmac,
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
};

const TOKEN: &str = "/oauth/token";
const REVOKE: &str = "/oauth/revoke";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const INIT_DATA: &str = "urn:tglink:params:oauth:token-type:telegram-init-data";

fn init_data(app: &TestApp, telegram: i64, query_id: &str) -> String {
    let user = serde_json::json!({
        "id": telegram,
        "first_name": "Ann",
        "username": format!("user{telegram}"),
        "language_code": "en",
        "is_premium": true,
    })
    .to_string();
    sign_hmac(
        &[
            ("query_id", query_id),
            ("user", &user),
            ("auth_date", &(UnixTime::now().secs() - 5).to_string()),
        ],
        &app.env.var("TELEGRAM_BOT_TOKEN").unwrap(),
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn post_form(api: &Api, path: &str, body: String) -> ApiResponse {
    api.send(
        api.request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

async fn exchange(api: &Api, init_data: &str) -> ApiResponse {
    post_form(
        api,
        TOKEN,
        form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", init_data),
            ("subject_token_type", INIT_DATA),
        ]),
    )
    .await
}

async fn refresh(api: &Api, token: &str) -> ApiResponse {
    post_form(
        api,
        TOKEN,
        form(&[("grant_type", "refresh_token"), ("refresh_token", token)]),
    )
    .await
}

/// A token pair answer: `(access_token, refresh_token)`, after checking its shape and headers.
fn pair(resp: &ApiResponse) -> (String, String) {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("pragma"), Some("no-cache"));
    assert_eq!(resp.json["token_type"], "Bearer");
    assert!(resp.json["expires_in"].as_u64().unwrap() > 0);
    let refresh = resp.json["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh.len(), 43);
    (
        resp.json["access_token"].as_str().unwrap().to_owned(),
        refresh,
    )
}

fn assert_oauth_error(resp: &ApiResponse, status: u16, error: &str) {
    assert_eq!(resp.status, status, "{}", resp.text);
    assert_eq!(resp.json["error"], error, "{}", resp.text);
    assert!(resp.json["error_description"].is_string(), "{}", resp.text);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        resp.header("content-type")
    );
}

/// The claims of an access token, verified as the link function does.
async fn claims(app: &TestApp, token: &str) -> AccessTokenClaims {
    Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap()
        .access_token_verifier()
        .await
        .unwrap()
        .verify(token, UnixTime::now())
        .await
        .expect("a valid access token")
}

fn admin_jwt(app: &TestApp, user: &str) -> String {
    let config = JwtConfig::from_env(app.env.as_ref()).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new(user, &config, 3600);
    claims.roles = vec![tglink_shared::auth::DEFAULT_ADMIN_ROLE.into()];
    sign_hs256(secret, &claims)
}

async fn exchange_refresh_revoke(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let api = &app.api;
    let data = init_data(&app, 7701, "OA1");
    let resp = exchange(api, &data).await;
    let (access, r0) = pair(&resp);
    assert_eq!(
        resp.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let c = claims(&app, &access).await;
    assert_eq!(c.sub, "7701");
    assert_eq!(c.amr, vec!["telegram_miniapp".to_owned()]);
    assert_eq!(c.client_id, "tglink");
    assert_eq!(c.app_user_id, None);
    assert_eq!(c.username.as_deref(), Some("user7701"));
    assert_eq!(c.first_name.as_deref(), Some("Ann"));
    assert_eq!(c.language_code.as_deref(), Some("en"));
    assert_eq!(c.is_premium, Some(true));
    assert_eq!(c.exp - c.iat, resp.json["expires_in"].as_i64().unwrap());

    // The initData is used up.
    let replay = exchange(api, &data).await;
    assert_oauth_error(&replay, 400, "invalid_request");
    assert!(replay.text.contains("initdata_replayed"));

    // Refresh on a second process sharing the store (no instance state).
    let second = spawn_app_with(backend, app.vars.clone()).await;
    let (a1, r1) = pair(&refresh(&second.api, &r0).await);
    let c1 = claims(&app, &a1).await;
    assert_eq!((c1.sid.as_str(), c1.sub.as_str()), (c.sid.as_str(), "7701"));
    assert_ne!(c1.jti, c.jti);
    assert_ne!(r1, r0);
    second.stop().await;

    // A restart between issue and refresh loses nothing.
    let app = app.restart().await;
    let api = &app.api;
    let (_, r2) = pair(&refresh(api, &r1).await);

    // Reuse of a rotated token: refused, and the session is over (r2 too).
    assert_oauth_error(&refresh(api, &r1).await, 400, "invalid_grant");
    assert_oauth_error(&refresh(api, &r2).await, 400, "invalid_grant");

    // Revoke (logout) by refresh token; unknown tokens are 200 too (RFC 7009).
    let (access, r) = pair(&exchange(api, &init_data(&app, 7701, "OA2")).await);
    let resp = post_form(api, REVOKE, form(&[("token", &r)])).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r).await, 400, "invalid_grant");
    for unknown in [r.as_str(), "x", "a.b.c"] {
        let resp = post_form(api, REVOKE, form(&[("token", unknown)])).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    // Revoke by access token ends its session.
    let (a3, r3) = pair(&exchange(api, &init_data(&app, 7701, "OA3")).await);
    let resp = post_form(
        api,
        REVOKE,
        form(&[("token", &a3), ("token_type_hint", "access_token")]),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r3).await, 400, "invalid_grant");

    log.assert_free_of(&[&data, &r0, &r1, &r2, &r3, &access, &a1, &a3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchange_refresh_revoke_sqlite() {
    exchange_refresh_revoke(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchange_refresh_revoke_dynamodb() {
    exchange_refresh_revoke(Backend::DynamoDb).await;
}

async fn thirty_two_concurrent_refreshes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, r0) = pair(&exchange(&app.api, &init_data(&app, 7801, "C1")).await);
    let api = Arc::new(Api::new(app.api.base.clone()));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (api, r0) = (api.clone(), r0.clone());
            tokio::spawn(async move { refresh(&api, &r0).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let resp = task.await.unwrap();
        match resp.status {
            200 => ok += 1,
            _ => assert_oauth_error(&resp, 400, "invalid_grant"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_refreshes_sqlite() {
    thirty_two_concurrent_refreshes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_refreshes_dynamodb() {
    thirty_two_concurrent_refreshes(Backend::DynamoDb).await;
}

async fn unlink_revoke_block_end_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = &app.api;
    let store = app.store().await;
    let admin = admin_jwt(&app, "admin-1");
    let tg = TelegramUserId::new(7901).unwrap();
    let link = Link {
        telegram_user_id: tg,
        user_id: tglink_shared::ids::UserId::parse("user-79").unwrap(),
        chat_id: None,
        username: None,
        source: LinkSource::Bot,
        linked_at: UnixTime::now(),
        unreachable: None,
    };

    // Linking is seen by the next refresh.
    let (_, r) = pair(&exchange(api, &init_data(&app, 7901, "U1")).await);
    store.links().link(&link).await.unwrap();
    let (a, r) = pair(&refresh(api, &r).await);
    assert_eq!(
        claims(&app, &a).await.app_user_id.as_deref(),
        Some("user-79")
    );

    // The user's unlink ends it.
    let resp = api
        .call(
            Method::DELETE,
            "/api/telegram/link",
            Some(&app.jwt("user-79")),
            None,
        )
        .await;
    assert!(resp.status < 300, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r).await, 400, "invalid_grant");

    // Admin revoke ends it.
    store.links().link(&link).await.unwrap();
    let (_, r) = pair(&exchange(api, &init_data(&app, 7901, "U2")).await);
    let resp = api
        .post("/api/admin/telegram/links/7901/revoke", Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r).await, 400, "invalid_grant");

    // Block ends it (no link needed) and refuses new sign-ins; an unblock revives nothing.
    let (_, r) = pair(&exchange(api, &init_data(&app, 7901, "U3")).await);
    let resp = api
        .post("/api/admin/telegram/links/7901/block", Some(&admin), None)
        .await;
    assert!(resp.status < 300, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r).await, 400, "invalid_grant");
    let resp = exchange(api, &init_data(&app, 7901, "U4")).await;
    assert_oauth_error(&resp, 400, "invalid_request");
    assert!(resp.text.contains("telegram_user_blocked"));
    let resp = api
        .post("/api/admin/telegram/links/7901/unblock", Some(&admin), None)
        .await;
    assert!(resp.status < 300, "{}", resp.text);
    assert_oauth_error(&refresh(api, &r).await, 400, "invalid_grant");
    pair(&exchange(api, &init_data(&app, 7901, "U5")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlink_revoke_block_end_sessions_sqlite() {
    unlink_revoke_block_end_sessions(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlink_revoke_block_end_sessions_dynamodb() {
    unlink_revoke_block_end_sessions(Backend::DynamoDb).await;
}

/// Every malformed request gets its documented RFC 6749 error, never a 500, and no value of
/// the request is echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_documented_errors() {
    let log = logs::capture();
    let app = spawn_app(Backend::Sqlite).await;
    let api = &app.api;
    let data = init_data(&app, 7601, "B1");
    let secret = "s3cr3t-value-never-echoed";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "no grant_type",
            form(&[("refresh_token", secret)]),
            400,
            "invalid_request",
        ),
        (
            "unknown grant",
            form(&[("grant_type", "password"), ("password", secret)]),
            400,
            "unsupported_grant_type",
        ),
        (
            // Supported for registered clients (oidc_provider::): no client named.
            "authorization_code without a client",
            form(&[("grant_type", "authorization_code"), ("code", secret)]),
            400,
            "invalid_request",
        ),
        (
            "repeated grant_type",
            format!("grant_type=refresh_token&grant_type=refresh_token&refresh_token={secret}"),
            400,
            "invalid_request",
        ),
        (
            "repeated subject_token",
            format!(
                "{}&subject_token={secret}",
                form(&[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &data),
                    ("subject_token_type", INIT_DATA)
                ])
            ),
            400,
            "invalid_request",
        ),
        (
            "no subject_token",
            form(&[("grant_type", EXCHANGE), ("subject_token_type", INIT_DATA)]),
            400,
            "invalid_request",
        ),
        (
            "no subject_token_type",
            form(&[("grant_type", EXCHANGE), ("subject_token", secret)]),
            400,
            "invalid_request",
        ),
        (
            "wrong subject_token_type",
            form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", secret),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ]),
            400,
            "invalid_request",
        ),
        (
            "wrong requested_token_type",
            form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &data),
                ("subject_token_type", INIT_DATA),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
            ]),
            400,
            "invalid_request",
        ),
        (
            "actor_token",
            form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &data),
                ("subject_token_type", INIT_DATA),
                ("actor_token", secret),
            ]),
            400,
            "invalid_request",
        ),
        (
            "forged initData",
            form(&[
                ("grant_type", EXCHANGE),
                (
                    "subject_token",
                    &format!("user=%7B%22id%22%3A1%7D&auth_date=1&hash={secret}"),
                ),
                ("subject_token_type", INIT_DATA),
            ]),
            400,
            "invalid_request",
        ),
        (
            "garbage initData",
            form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", secret),
                ("subject_token_type", INIT_DATA),
            ]),
            400,
            "invalid_request",
        ),
        (
            "no refresh_token",
            form(&[("grant_type", "refresh_token")]),
            400,
            "invalid_request",
        ),
        (
            "malformed refresh_token",
            form(&[("grant_type", "refresh_token"), ("refresh_token", secret)]),
            400,
            "invalid_grant",
        ),
        (
            "unknown refresh_token",
            form(&[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    "AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
            ]),
            400,
            "invalid_grant",
        ),
        (
            "bad client_id",
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", secret),
                ("client_id", "a b"),
            ]),
            400,
            "invalid_request",
        ),
        (
            "client_secret",
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", secret),
                ("client_secret", secret),
            ]),
            401,
            "invalid_client",
        ),
        (
            "not a form",
            "{\"grant_type\":\"refresh_token\"}".to_owned(),
            400,
            "invalid_request",
        ),
    ];
    for (what, body, status, error) in &cases {
        let resp = post_form(api, TOKEN, body.clone()).await;
        assert_eq!(resp.status, *status, "{what}: {}", resp.text);
        assert_oauth_error(&resp, *status, error);
        assert!(!resp.text.contains(secret), "{what} echoes: {}", resp.text);
        assert!(!resp.text.contains(&data), "{what} echoes initData");
    }
    // JSON content type, no content type, Basic client authentication.
    let resp = api
        .send(
            api.request(Method::POST, TOKEN)
                .header("content-type", "application/json")
                .body(form(&[("grant_type", "refresh_token")])),
        )
        .await;
    assert_oauth_error(&resp, 400, "invalid_request");
    let resp = api
        .send(
            api.request(Method::POST, TOKEN)
                .body("grant_type=refresh_token"),
        )
        .await;
    assert_oauth_error(&resp, 400, "invalid_request");
    let resp = api
        .send(
            api.request(Method::POST, TOKEN)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", "Basic dGdsaW5rOnNlY3JldA==")
                .body(form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", secret),
                ])),
        )
        .await;
    assert_oauth_error(&resp, 401, "invalid_client");
    assert!(resp.header("www-authenticate").is_some());
    // Revoke: token required; a wrong method is the usual 405 problem.
    assert_oauth_error(
        &post_form(api, REVOKE, form(&[("token_type_hint", "refresh_token")])).await,
        400,
        "invalid_request",
    );
    let resp = api.get(TOKEN, None).await;
    assert_eq!(resp.status, 405, "{}", resp.text);
    // The initData was never used by any refusal above.
    pair(&exchange(api, &data).await);
    log.assert_free_of(&[secret, &data]);
    let _: Value = Value::Null;
}

/// JWTs presented to `POST /api/telegram/link` that are not valid tglink access tokens: each is
/// `401 access_token_invalid`, never a 500, and never echoed.
async fn bad_access_tokens_are_refused_by_link(backend: Backend) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let log = logs::capture();
    let app = spawn_app(backend).await;
    let api = &app.api;
    let (good, _) = pair(&exchange(api, &init_data(&app, 7501, "J1")).await);
    let valid = claims(&app, &good).await;
    let startup = Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let signer = startup.token_signer().await.unwrap();
    let now = UnixTime::now().secs() as i64;
    let signed = |edit: &dyn Fn(&mut AccessTokenClaims)| {
        let mut c = valid.clone();
        c.iat = now;
        c.exp = now + 300;
        edit(&mut c);
        let signer = signer.clone();
        async move { signer.sign(&c).await.unwrap() }
    };
    let expired = signed(&|c| {
        c.iat = now - 1_000;
        c.exp = now - 600;
    })
    .await;
    let other_issuer = signed(&|c| c.iss = "https://evil.example".into()).await;
    let other_audience = signed(&|c| c.aud = "someone-else".into()).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid).unwrap());
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD
            .encode(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string())
    );
    let key = startup
        .store()
        .await
        .unwrap()
        .signing_keys()
        .key_set()
        .await
        .unwrap()
        .keys
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    let public_jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": key.x, "y": key.y});
    let hs256_with_public_key = jsonwebtoken::encode(
        &hs,
        &valid,
        &EncodingKey::from_secret(public_jwk.to_string().as_bytes()),
    )
    .unwrap();
    let hs256_with_x =
        jsonwebtoken::encode(&hs, &valid, &EncodingKey::from_secret(key.x.as_bytes())).unwrap();
    let mut forged = good.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let mut unknown_kid = good.split('.').map(str::to_owned).collect::<Vec<_>>();
    unknown_kid[0] = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}).to_string());
    let unknown_kid = unknown_kid.join(".");
    let payload_swapped = {
        let mut c = valid.clone();
        c.sub = "1".into();
        let mut parts = good.split('.').map(str::to_owned).collect::<Vec<_>>();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        parts.join(".")
    };
    let jwt = app.jwt("user-75");
    let cases = [
        ("expired", expired.as_str()),
        ("other issuer", other_issuer.as_str()),
        ("other audience", other_audience.as_str()),
        ("alg none", none.as_str()),
        ("HS256 with the public JWK", hs256_with_public_key.as_str()),
        ("HS256 with x", hs256_with_x.as_str()),
        ("forged signature", forged.as_str()),
        ("unknown kid", unknown_kid.as_str()),
        ("payload swapped", payload_swapped.as_str()),
        ("garbage", "not-a-jwt"),
        ("empty parts", ".."),
    ];
    for (what, token) in cases {
        let resp = api
            .post(
                "/api/telegram/link",
                Some(&jwt),
                Some(&serde_json::json!({"access_token": token})),
            )
            .await;
        resp.assert_problem(401, "access_token_invalid");
        assert!(!resp.text.contains(token), "{what} echoed");
    }
    assert_eq!(
        app.store()
            .await
            .links()
            .get_by_telegram(TelegramUserId::new(7501).unwrap())
            .await
            .unwrap(),
        None
    );
    // The genuine token links (once).
    let resp = api
        .post(
            "/api/telegram/link",
            Some(&jwt),
            Some(&serde_json::json!({"access_token": good})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    log.assert_free_of(&[&good, &forged, &none, &hs256_with_public_key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_access_tokens_are_refused_by_link_sqlite() {
    bad_access_tokens_are_refused_by_link(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_access_tokens_are_refused_by_link_dynamodb() {
    bad_access_tokens_are_refused_by_link(Backend::DynamoDb).await;
}
