//! End-to-end: tglink as an OpenID provider for host apps (issue 15 item 3), through the local
//! API over HTTP with the fake Telegram OpenID provider on loopback
//! (`tests/py/fake_telegram_oidc.py`), on both adapters.
//!
//! - Authlib (an independent OpenID Connect client, `tests/py/oidc_client.py`) runs the whole
//!   authorization-code + PKCE flow and validates tglink's ID token itself (JWKS from
//!   discovery); the flow starts on one local API process, Telegram's callback lands on
//!   another sharing the store, and the first restarts before the code is redeemed.
//! - The attacks: state replayed / unknown, code replayed (the first grant's refresh token is
//!   then refused), wrong `redirect_uri` (no redirect to it), missing / `plain` PKCE, wrong
//!   `code_verifier`, a bad id_token from Telegram, a blocked user, client authentication,
//!   Telegram down.
//! - No secret, code, state, verifier or token in the logs.

use std::net::TcpListener;

use aws_lc_rs::digest;
use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{JwtConfig, JwtKey, MapEnv, Platform},
    oauth::{AccessTokenClaims, pkce},
    runtime::Startup,
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app_with},
    fake_telegram_oidc::{Endpoint, FakeTelegramOidc, Misbehaviour, Outage},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
};

const WEB: &str = "host-web";
const WEB_SECRET: &str = "host-web-secret-0123456789abcdef";
const SPA: &str = "host-spa";
/// The host app's registered redirect URI (never contacted: the test is the browser).
const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

fn sha256_hex(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

fn clients() -> String {
    json!([
        {"client_id": WEB, "client_secret_sha256": sha256_hex(WEB_SECRET), "redirect_uris": [REDIRECT]},
        {"client_id": SPA, "redirect_uris": [REDIRECT], "scopes": ["openid"]},
    ])
    .to_string()
}

/// A token request's client credentials and `redirect_uri`, and the expected status and error.
type TokenCase<'a> = (Option<(&'a str, &'a str)>, &'a str, u16, &'a str);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct World {
    fake: FakeTelegramOidc,
    app: TestApp,
    /// A browser that does not follow redirects.
    browser: reqwest::Client,
}

async fn world(backend: Backend) -> World {
    let fake = FakeTelegramOidc::start();
    let env = fake.env().merge(
        MapEnv::new()
            .with("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
            .with("TGLINK_OIDC_CLIENTS", clients()),
    );
    let app = spawn_app_with(backend, env).await;
    World {
        fake,
        app,
        browser: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl World {
    fn issuer(&self) -> &str {
        &self.app.api.base
    }

    /// GET `url` as a browser: `(status, Location, body)`.
    async fn visit(&self, url: &str) -> (u16, Option<String>, String) {
        let resp = self.browser.get(url).send().await.expect("GET");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, location, resp.text().await.unwrap_or_default())
    }

    /// `GET /oauth/authorize` with these parameters.
    async fn authorize(&self, params: &[(&str, &str)]) -> (u16, Option<String>, String) {
        self.visit(&url(&format!("{}/oauth/authorize", self.issuer()), params))
            .await
    }
}

fn url(base: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("{base}?{}", q.finish())
}

fn query(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// A well-formed authorization request of `client` (S256 PKCE from `verifier`).
fn request<'a>(client: &'a str, challenge: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "client-state-1"),
        ("nonce", "client-nonce-1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// The flow by hand up to tglink's redirect to the client: `(Location at the client, the
/// tglink callback URL Telegram sent the browser to)`.
async fn to_client(w: &World, params: &[(&str, &str)]) -> (String, String) {
    let (status, location, body) = w.authorize(params).await;
    assert_eq!(status, 302, "{body}");
    let at_telegram = location.expect("Location");
    assert!(at_telegram.starts_with(&w.fake.issuer), "{at_telegram}");
    let callback = w.fake.approve(&at_telegram).await;
    let (status, location, body) = w.visit(&callback.location).await;
    assert_eq!(status, 302, "{body}");
    (location.expect("Location"), callback.location)
}

/// The extra parameter names the attacks add.
fn name_static(name: &str) -> &'static str {
    ["prompt", "request"]
        .into_iter()
        .find(|n| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a parameter the tests add"))
}

/// `params` with `name` set to `value` (removed when `value` is empty; added when absent).
fn replaced<'a>(
    params: &[(&'a str, &'a str)],
    name: &str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut seen = false;
    for &(k, v) in params {
        if k == name {
            seen = true;
            if !value.is_empty() {
                out.push((k, value));
            }
        } else {
            out.push((k, v));
        }
    }
    if !seen && !value.is_empty() {
        out.push((name_static(name), value));
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn token(api: &Api, basic: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> ApiResponse {
    let mut builder = api
        .request(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some((id, secret)) = basic {
        builder = builder.basic_auth(id, Some(secret));
    }
    api.send(builder).await
}

async fn redeem(api: &Api, code: &str, verifier: &str) -> ApiResponse {
    token(
        api,
        Some((WEB, WEB_SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(api: &Api, refresh_token: &str) -> ApiResponse {
    token(
        api,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

fn assert_oauth_error(resp: &ApiResponse, status: u16, error: &str) {
    assert_eq!(resp.status, status, "{}", resp.text);
    assert_eq!(resp.json["error"], error, "{}", resp.text);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
}

async fn access_claims(app: &TestApp, token: &str) -> Option<AccessTokenClaims> {
    Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap()
        .access_token_verifier()
        .await
        .unwrap()
        .verify(token, UnixTime::now())
        .await
        .ok()
}

/// `tests/py/oidc_client.py` with `args`: `Ok(stdout JSON)` or `Err(stderr)`.
async fn authlib(args: &[&str]) -> Result<Value, String> {
    let root = tglink_tests::workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv`",
        python.display()
    );
    let output = tokio::process::Command::new(python)
        .arg(root.join("tests/py/oidc_client.py"))
        .args(args)
        .output()
        .await
        .expect("python runs");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("JSON on stdout"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

async fn authlib_runs_the_code_flow_across_processes_and_a_restart(backend: Backend) {
    let log = logs::capture();
    let w = world(backend).await;
    w.fake
        .set_user(json!({"id": 8801, "first_name": "Ann", "username": "ann8801"}))
        .await;
    let issuer = w.issuer().to_owned();

    // The host app (Authlib) builds its authorization URL from tglink's discovery document.
    let begun = authlib(&["begin", &issuer, WEB, REDIRECT, WEB_SECRET])
        .await
        .expect("authlib begin");
    let (state, nonce, verifier) = (
        begun["state"].as_str().unwrap().to_owned(),
        begun["nonce"].as_str().unwrap().to_owned(),
        begun["code_verifier"].as_str().unwrap().to_owned(),
    );
    let (status, location, body) = w.visit(begun["url"].as_str().unwrap()).await;
    assert_eq!(status, 302, "{body}");
    let at_telegram = location.unwrap();
    let upstream = query(&at_telegram);
    assert_eq!(upstream["code_challenge_method"], "S256");
    assert_eq!(
        upstream["redirect_uri"],
        format!("{issuer}/oauth/callback/telegram")
    );
    assert_ne!(upstream["state"], state, "tglink's own state upstream");
    assert_ne!(upstream["nonce"], nonce, "tglink's own nonce upstream");
    let callback = w.fake.approve(&at_telegram).await;

    // Telegram's callback lands on another process sharing the store (same issuer).
    let second = spawn_app_with(
        backend,
        w.app.vars.clone().merge(
            MapEnv::new()
                .with("LISTEN_ADDR", "127.0.0.1:0")
                .with("TGLINK_ISSUER", &issuer),
        ),
    )
    .await;
    let on_second = callback.location.replacen(&issuer, &second.api.base, 1);
    let (status, location, body) = w.visit(&on_second).await;
    assert_eq!(status, 302, "{body}");
    let at_client = location.unwrap();
    assert!(at_client.starts_with(REDIRECT), "{at_client}");
    let answer = query(&at_client);
    assert_eq!(answer["state"], state);
    assert_eq!(answer["iss"], issuer);
    let code = answer["code"].clone();
    second.stop().await;

    // The first process restarts before the code is redeemed.
    let World { fake, app, browser } = w;
    let app = app.restart().await;
    let w = World { fake, app, browser };

    let done = authlib(&[
        "finish", &issuer, WEB, REDIRECT, &state, &nonce, &verifier, &at_client, WEB_SECRET,
    ])
    .await
    .expect("authlib validates tglink's ID token");
    let claims = &done["claims"];
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], "8801");
    assert_eq!(claims["aud"], WEB);
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["amr"], json!(["telegram_oidc"]));
    assert_eq!(claims["preferred_username"], "ann8801");
    assert_eq!(done["header"]["alg"], "ES256");
    assert_eq!(done["header"]["typ"], "JWT");
    let tokens = &done["token"];
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let access_claims = access_claims(&w.app, &access)
        .await
        .expect("valid access token");
    assert_eq!(access_claims.sub, "8801");
    assert_eq!(access_claims.client_id, WEB);
    assert_eq!(access_claims.sid, claims["sid"].as_str().unwrap());

    // UserInfo (Authlib fetched it with the access token): the ID token's `sub` and profile.
    assert_eq!(
        done["userinfo"]["sub"], claims["sub"],
        "{}",
        done["userinfo"]
    );
    assert_eq!(done["userinfo"]["preferred_username"], "ann8801");
    assert_eq!(done["userinfo"]["given_name"], "Ann");
    let refused_tokens = userinfo_refusals(&w.app, &access, &id_token).await;

    // The session refreshes like any other.
    let refreshed = refresh(&w.app.api, &refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let next = refreshed.json["refresh_token"].as_str().unwrap().to_owned();

    // The code again: refused, and the session it started is ended.
    assert_oauth_error(
        &redeem(&w.app.api, &code, &verifier).await,
        400,
        "invalid_grant",
    );
    assert_oauth_error(&refresh(&w.app.api, &next).await, 400, "invalid_grant");

    log.assert_free_of(&[
        &code,
        &state,
        &nonce,
        &verifier,
        &callback.params["code"],
        &callback.params["state"],
        &upstream["nonce"],
        &access,
        &refresh_token,
        &next,
        &id_token,
        &refused_tokens[0],
        &refused_tokens[1],
        WEB_SECRET,
        &w.fake.client_secret,
    ]);
}

async fn userinfo(api: &Api, method: Method, bearer: Option<&str>) -> ApiResponse {
    let mut builder = api.request(method.clone(), "/oauth/userinfo");
    if method == Method::POST {
        builder = builder
            .header("content-type", "application/x-www-form-urlencoded")
            .body("");
    }
    if let Some(token) = bearer {
        builder = builder.bearer_auth(token);
    }
    api.send(builder).await
}

fn assert_invalid_token(resp: &ApiResponse, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text);
    assert_eq!(resp.json["code"], "access_token_invalid", "{what}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token""#),
        "{what}: {challenge}"
    );
}

/// `GET`/`POST /oauth/userinfo` (OIDC Core §5.3, RFC 6750): the access token as a header
/// answers on both methods; no token, garbage, an expired or HS256-forged token, an ID token
/// or a token in the form body are refused with RFC 6750 §3's challenges. Returns the expired
/// and the forged token (for the log check).
async fn userinfo_refusals(app: &TestApp, access: &str, id_token: &str) -> [String; 2] {
    for method in [Method::GET, Method::POST] {
        let ok = userinfo(&app.api, method.clone(), Some(access)).await;
        assert_eq!(ok.status, 200, "{method}: {}", ok.text);
        assert_eq!(ok.header("cache-control"), Some("no-store"));
        assert_eq!(ok.json["sub"], "8801");
        let none = userinfo(&app.api, method.clone(), None).await;
        assert_eq!(none.status, 401, "{}", none.text);
        assert_eq!(none.json["code"], "auth_required");
        assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    }
    // A token in the form body is not read (RFC 6750 §2.2 is not supported).
    let in_body = app
        .api
        .send(
            app.api
                .request(Method::POST, "/oauth/userinfo")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("access_token", access)])),
        )
        .await;
    assert_eq!(in_body.status, 401, "{}", in_body.text);
    assert_eq!(in_body.json["code"], "auth_required");
    assert_invalid_token(
        &userinfo(&app.api, Method::GET, Some("garbage")).await,
        "garbage",
    );
    assert_invalid_token(
        &userinfo(&app.api, Method::GET, Some(id_token)).await,
        "an ID token (typ JWT)",
    );

    // Expired: signed by tglink's own key, `exp` past the leeway.
    let startup = Startup::new(app.env.clone(), Platform::Local)
        .await
        .unwrap();
    let config = startup.token_config().unwrap();
    let signer = startup.token_signer().await.unwrap();
    let mut claims = access_claims(app, access)
        .await
        .expect("valid access token");
    let now = UnixTime::now().secs() as i64;
    claims.iat = now - 3600;
    claims.auth_time = now - 3600;
    claims.exp = now - 600;
    let expired = signer.sign(&claims).await.unwrap();
    assert_invalid_token(
        &userinfo(&app.api, Method::GET, Some(&expired)).await,
        "expired",
    );

    // HS256 with the published key's `x` as the secret, under its `kid`.
    let header = jsonwebtoken::decode_header(access).unwrap();
    let jwks = app.api.get("/.well-known/jwks.json", None).await;
    let x = jwks.json["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    forged_header.typ = Some("at+jwt".into());
    forged_header.kid = header.kid;
    let mut fresh = access_claims(app, access).await.unwrap();
    fresh.iss = config.issuer.clone();
    let forged = jsonwebtoken::encode(
        &forged_header,
        &fresh,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    assert_invalid_token(
        &userinfo(&app.api, Method::POST, Some(&forged)).await,
        "HS256 forged",
    );
    [expired, forged]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authlib_runs_the_code_flow_across_processes_and_a_restart_sqlite() {
    authlib_runs_the_code_flow_across_processes_and_a_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authlib_runs_the_code_flow_across_processes_and_a_restart_dynamodb() {
    authlib_runs_the_code_flow_across_processes_and_a_restart(Backend::DynamoDb).await;
}

/// A public client (PKCE only) through Authlib too.
async fn a_public_client_uses_pkce_alone(backend: Backend) {
    let w = world(backend).await;
    w.fake
        .set_user(json!({"id": 8802, "first_name": "Bo"}))
        .await;
    let issuer = w.issuer().to_owned();
    let begun = authlib(&["begin", &issuer, SPA, REDIRECT]).await.unwrap();
    let (status, location, _) = w.visit(begun["url"].as_str().unwrap()).await;
    // The SPA may ask for openid only: Authlib asks for "openid profile".
    assert_eq!(status, 302);
    let refused = query(&location.unwrap());
    assert_eq!(refused["error"], "invalid_scope");
    assert_eq!(refused["state"], begun["state"].as_str().unwrap());

    let verifier = pkce::new_code_verifier();
    let challenge = pkce::s256_challenge(&verifier);
    let (at_client, _) = to_client(&w, &request(SPA, &challenge, "openid")).await;
    let code = query(&at_client)["code"].clone();
    let with_secret = token(
        &w.app.api,
        Some((SPA, "anything")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(&with_secret, 401, "invalid_client");
    let ok = token(
        &w.app.api,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", SPA),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.json["id_token"].is_string());
    assert_eq!(ok.json["scope"], "openid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_public_client_uses_pkce_alone_sqlite() {
    a_public_client_uses_pkce_alone(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_public_client_uses_pkce_alone_dynamodb() {
    a_public_client_uses_pkce_alone(Backend::DynamoDb).await;
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

async fn attacks_are_refused(backend: Backend) {
    let log = logs::capture();
    let w = world(backend).await;
    w.fake
        .set_user(json!({"id": 8803, "first_name": "Cy"}))
        .await;
    let verifier = pkce::new_code_verifier();
    let challenge = pkce::s256_challenge(&verifier);
    let good = request(WEB, &challenge, "openid profile");
    let with = |name: &str, value: &'static str| replaced(&good, name, value);

    // Unknown client, unregistered redirect URIs: a problem page, never a redirect.
    for params in [
        with("client_id", "nobody"),
        with("redirect_uri", "http://evil.example/cb"),
        with("redirect_uri", "http://127.0.0.1:9/auth/callback/x"),
        with("redirect_uri", "http://127.0.0.1:9/auth/callback?x=1"),
        with("redirect_uri", ""),
    ] {
        let (status, location, body) = w.authorize(&params).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(location, None, "no redirect to an untrusted URI");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert!(
            ["unknown_client", "invalid_redirect_uri"].contains(&problem["code"].as_str().unwrap()),
            "{body}"
        );
    }

    // Missing or plain PKCE, no openid, wrong response type: an error redirect with the state.
    for (params, error) in [
        (with("code_challenge", ""), "invalid_request"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (with("code_challenge_method", ""), "invalid_request"),
        (with("scope", "profile"), "invalid_scope"),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("response_type", ""), "invalid_request"),
        (with("state", ""), "invalid_request"),
        (with("prompt", "none"), "login_required"),
        (
            with("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
    ] {
        let (status, location, body) = w.authorize(&params).await;
        assert_eq!(status, 302, "{body}");
        let location = location.unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        let q = query(&location);
        assert_eq!(q["error"], error, "{location}");
        if params.iter().any(|(k, _)| *k == "state") {
            assert_eq!(q["state"], "client-state-1");
        }
        assert_eq!(q["iss"], w.issuer());
    }

    // Without a nonce (optional in the code flow): the ID token has none.
    let (at_client, _) = to_client(&w, &with("nonce", "")).await;
    let resp = redeem(&w.app.api, &query(&at_client)["code"], &verifier).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let payload = resp.json["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert!(payload.get("nonce").is_none(), "{payload}");
    assert_eq!(payload["aud"], WEB);

    // State: a replayed callback, and an unknown one, are refused with a page.
    let (at_client, callback) = to_client(&w, &good).await;
    let (status, location, body) = w.visit(&callback).await;
    assert_eq!((status, location), (400, None), "{body}");
    assert!(body.contains("invalid_state"), "{body}");
    let forged = url(
        &format!("{}/oauth/callback/telegram", w.issuer()),
        &[("state", "forged-state"), ("code", "x")],
    );
    let (status, _, body) = w.visit(&forged).await;
    assert_eq!(status, 400, "{body}");

    // Token endpoint: wrong verifier, wrong redirect_uri, client authentication.
    let code = query(&at_client)["code"].clone();
    let wrong = pkce::new_code_verifier();
    assert_oauth_error(
        &redeem(&w.app.api, &code, &wrong).await,
        400,
        "invalid_grant",
    );
    // The code is spent by the failed attempt.
    assert_oauth_error(
        &redeem(&w.app.api, &code, &verifier).await,
        400,
        "invalid_grant",
    );
    let (at_client, _) = to_client(&w, &good).await;
    let code = query(&at_client)["code"].clone();
    let cases: [TokenCase; 3] = [
        (Some((WEB, "wrong-secret")), REDIRECT, 401, "invalid_client"),
        (None, REDIRECT, 400, "invalid_request"),
        (
            Some((WEB, WEB_SECRET)),
            "http://127.0.0.1:9/other",
            400,
            "invalid_grant",
        ),
    ];
    for (basic, redirect, status, error) in cases {
        let resp = token(
            &w.app.api,
            basic,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_oauth_error(&resp, status, error);
    }
    let missing_verifier = token(
        &w.app.api,
        Some((WEB, WEB_SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(&missing_verifier, 400, "invalid_request");

    // Telegram's ID token is bad: the client gets access_denied, no code.
    for how in [
        Misbehaviour::WrongAud,
        Misbehaviour::AlgNone,
        Misbehaviour::WrongNonce,
    ] {
        w.fake.misbehave_next(how).await;
        let (at_client, _) = to_client(&w, &good).await;
        let q = query(&at_client);
        assert_eq!(q["error"], "access_denied", "{at_client}");
        assert!(
            q["error_description"].contains(how.expected_code()),
            "{at_client}"
        );
        assert!(!q.contains_key("code"));
    }
    // The user declines at Telegram.
    w.fake.deny_next("access_denied").await;
    let (at_client, _) = to_client(&w, &good).await;
    assert_eq!(query(&at_client)["error"], "access_denied");
    // Telegram's token endpoint is down.
    w.fake.outage(Endpoint::Token, Outage::Down).await;
    let (at_client, _) = to_client(&w, &good).await;
    assert_eq!(query(&at_client)["error"], "temporarily_unavailable");
    w.fake.outage(Endpoint::Token, Outage::Ok).await;

    // A blocked Telegram user gets no session.
    let resp = w
        .app
        .api
        .post(
            "/api/admin/telegram/links/8803/block",
            Some(&admin_jwt(&w.app)),
            None,
        )
        .await;
    assert!(resp.status < 300, "{}", resp.text);
    let (at_client, _) = to_client(&w, &good).await;
    let code = query(&at_client)["code"].clone();
    let resp = redeem(&w.app.api, &code, &verifier).await;
    assert_oauth_error(&resp, 400, "invalid_grant");
    assert!(resp.text.contains("blocked"), "{}", resp.text);

    log.assert_free_of(&[&verifier, &code, WEB_SECRET, &w.fake.client_secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attacks_are_refused_sqlite() {
    attacks_are_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attacks_are_refused_dynamodb() {
    attacks_are_refused(Backend::DynamoDb).await;
}
