//! End-to-end: the Login Widget token exchange (`POST /oauth/token`,
//! `subject_token_type=urn:tglink:params:oauth:token-type:telegram-login-widget`) through the
//! local API over HTTP, on both adapters: a valid payload signs in (`amr` `telegram_widget`),
//! every attack of issue 15 is refused with its stable code (hash wrong or missing, expired,
//! from the future, a field duplicated, a field added, a bot, a blocked user, a replay, an
//! initData posing as widget data), the session's access token links the host user and later
//! sign-ins and refreshes carry `app_user_id`; no payload or hash in any log line. Flags: each
//! sign-in method is switched off on its own.

use http::Method;
use serde_json::json;
use tglink_shared::{
    config::{Env, MapEnv, Platform},
    oauth::AccessTokenClaims,
    runtime::Startup,
    telegram::{initdata::signing::sign_hmac, login_widget::signing::sign_widget},
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
};

const TOKEN: &str = "/oauth/token";
const LINK: &str = "/api/telegram/link";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const WIDGET: &str = "urn:tglink:params:oauth:token-type:telegram-login-widget";
const INIT_DATA: &str = "urn:tglink:params:oauth:token-type:telegram-init-data";

fn bot_token(app: &TestApp) -> String {
    app.env.var("TELEGRAM_BOT_TOKEN").unwrap()
}

fn now() -> u64 {
    UnixTime::now().secs()
}

/// The widget's redirect query string for `telegram`, dated `auth_date`, with `extra` fields
/// signed too.
fn widget_at(app: &TestApp, telegram: i64, auth_date: u64, extra: &[(&str, &str)]) -> String {
    let (id, date, username) = (
        telegram.to_string(),
        auth_date.to_string(),
        format!("user{telegram}"),
    );
    let mut fields = vec![
        ("id", id.as_str()),
        ("first_name", "Ann"),
        ("username", username.as_str()),
        ("photo_url", "https://t.me/i/userpic/320/ann.jpg"),
        ("auth_date", date.as_str()),
    ];
    fields.extend_from_slice(extra);
    sign_widget(&fields, &bot_token(app))
}

fn widget(app: &TestApp, telegram: i64) -> String {
    widget_at(app, telegram, now() - 5, &[])
}

async fn exchange_as(api: &Api, subject: &str, subject_type: &str) -> ApiResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", EXCHANGE)
        .append_pair("subject_token", subject)
        .append_pair("subject_token_type", subject_type)
        .finish();
    api.send(
        api.request(Method::POST, TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

async fn exchange(api: &Api, subject: &str) -> ApiResponse {
    exchange_as(api, subject, WIDGET).await
}

async fn refresh(api: &Api, token: &str) -> ApiResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", token)
        .finish();
    api.send(
        api.request(Method::POST, TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// `(access_token, refresh_token)` of a `200`.
fn pair(resp: &ApiResponse) -> (String, String) {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.json["token_type"], "Bearer");
    (
        resp.json["access_token"].as_str().unwrap().to_owned(),
        resp.json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// A `400 invalid_request` whose description starts with `code`.
fn refused(resp: &ApiResponse, code: &str) {
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(resp.json["error"], "invalid_request", "{}", resp.text);
    let description = resp.json["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("{code}: ")),
        "expected {code}: {description}"
    );
}

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

async fn widget_sign_in_and_attacks(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let api = &app.api;
    let mut secrets: Vec<String> = Vec::new();

    // A valid payload signs in.
    let data = widget(&app, 8101);
    let resp = exchange(api, &data).await;
    let (access, r0) = pair(&resp);
    assert_eq!(
        resp.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let c = claims(&app, &access).await;
    assert_eq!(c.sub, "8101");
    assert_eq!(c.amr, vec!["telegram_widget".to_owned()]);
    assert_eq!(c.client_id, "tglink");
    assert_eq!(c.app_user_id, None);
    assert_eq!(c.username.as_deref(), Some("user8101"));
    assert_eq!(c.first_name.as_deref(), Some("Ann"));
    assert!(c.auth_time <= c.iat);

    // Used once: refused after, also re-encoded in another field order.
    refused(&exchange(api, &data).await, "widget_replayed");
    let reordered: Vec<&str> = data.split('&').rev().collect();
    refused(
        &exchange(api, &reordered.join("&")).await,
        "widget_replayed",
    );
    // The claim is in the store: a second process sharing it refuses the replay too.
    let second = spawn_app_with(backend, app.vars.clone()).await;
    refused(&exchange(&second.api, &data).await, "widget_replayed");
    second.stop().await;

    // Hash wrong (another bot's token; a flipped digit) or missing.
    let id = "8102".to_owned();
    let date = (now() - 5).to_string();
    let fields = [
        ("id", id.as_str()),
        ("first_name", "Ann"),
        ("auth_date", date.as_str()),
    ];
    let forged = sign_widget(&fields, "999999:AAH-another-bot");
    refused(&exchange(api, &forged).await, "widget_signature_invalid");
    let good = widget(&app, 8102);
    let (head, hash) = good.rsplit_once("hash=").unwrap();
    let flipped = format!(
        "{head}hash={}{}",
        if hash.starts_with('0') { '1' } else { '0' },
        &hash[1..]
    );
    refused(&exchange(api, &flipped).await, "widget_signature_invalid");
    let no_hash = head.trim_end_matches('&');
    refused(&exchange(api, no_hash).await, "widget_malformed");

    // Expired (a day and a second) and from the future (beyond the 60 s skew).
    let old = widget_at(&app, 8102, now() - 86_401, &[]);
    refused(&exchange(api, &old).await, "widget_expired");
    let future = widget_at(&app, 8102, now() + 3600, &[]);
    refused(&exchange(api, &future).await, "widget_expired");

    // A field duplicated (raw, or an encoded spelling of the key) or added after signing.
    for dup in [
        format!("{good}&id=8103"),
        format!("id=8103&{good}"),
        format!("{good}&%69d=8102"),
    ] {
        refused(&exchange(api, &dup).await, "widget_malformed");
    }
    refused(
        &exchange(api, &format!("{good}&last_name=Mallory")).await,
        "widget_signature_invalid",
    );
    // An unknown field Telegram signed is accepted.
    let signed_extra = widget_at(&app, 8104, now() - 5, &[("new_field", "v")]);
    pair(&exchange(api, &signed_extra).await);

    // A bot, and an initData (another key) posing as widget data.
    let bot = widget_at(&app, 8105, now() - 5, &[("is_bot", "true")]);
    refused(&exchange(api, &bot).await, "bot_user_rejected");
    let user = json!({"id": 8106, "first_name": "Ann"}).to_string();
    let init_data = sign_hmac(
        &[("user", &user), ("auth_date", &(now() - 5).to_string())],
        &bot_token(&app),
    );
    refused(&exchange(api, &init_data).await, "widget_signature_invalid");
    // The same widget payload is no initData either.
    let as_init = exchange_as(api, &good, INIT_DATA).await;
    assert_eq!(as_init.status, 400, "{}", as_init.text);

    // None of the refusals used `good`: it still signs in.
    let (_, r_good) = pair(&exchange(api, &good).await);

    // Blocked users are refused.
    let admin = admin_jwt(&app);
    let resp = api
        .post("/api/admin/telegram/links/8107/block", Some(&admin), None)
        .await;
    assert!(resp.status < 300, "{}", resp.text);
    refused(
        &exchange(api, &widget(&app, 8107)).await,
        "telegram_user_blocked",
    );

    // Linking with the widget session's access token; the refresh and the next sign-in carry
    // app_user_id.
    let jwt = app.jwt("user-81");
    let resp = api
        .post(LINK, Some(&jwt), Some(&json!({"access_token": access})))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.json["telegram_user_id"], 8101);
    assert_eq!(resp.json["user_id"], "user-81");
    let (a1, r1) = pair(&refresh(api, &r0).await);
    assert_eq!(
        claims(&app, &a1).await.app_user_id.as_deref(),
        Some("user-81")
    );
    let data2 = widget_at(&app, 8101, now() - 1, &[("last_name", "Lee")]);
    let (a2, r2) = pair(&exchange(api, &data2).await);
    let c2 = claims(&app, &a2).await;
    assert_eq!(c2.app_user_id.as_deref(), Some("user-81"));
    assert_eq!(c2.amr, vec!["telegram_widget".to_owned()]);

    for s in [
        &data,
        &good,
        &data2,
        &signed_extra,
        &access,
        &a1,
        &a2,
        &r0,
        &r1,
        &r2,
        &r_good,
    ] {
        secrets.push(s.clone());
    }
    for payload in [&data, &good, &data2] {
        let hash = payload.rsplit_once("hash=").unwrap().1;
        secrets.push(hash.to_owned());
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    log.assert_free_of(&secrets);
}

fn admin_jwt(app: &TestApp) -> String {
    use tglink_shared::{
        auth::{DevClaims, sign_hs256},
        config::{JwtConfig, JwtKey},
    };
    let config = JwtConfig::from_env(app.env.as_ref()).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new("admin-81", &config, 3600);
    claims.roles = vec![tglink_shared::auth::DEFAULT_ADMIN_ROLE.into()];
    sign_hs256(secret, &claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn widget_sign_in_and_attacks_sqlite() {
    widget_sign_in_and_attacks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn widget_sign_in_and_attacks_dynamodb() {
    widget_sign_in_and_attacks(Backend::DynamoDb).await;
}

/// Each method has its flag: the other one, refresh and revocation stay; with none on, `404`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_sign_in_method_is_switched_off_on_its_own() {
    // Widget off: its exchange is refused, initData signs in.
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new().with("TELEGRAM_LOGIN_WIDGET_ENABLED", "false"),
    )
    .await;
    refused(
        &exchange(&app.api, &widget(&app, 8201)).await,
        "sign_in_method_disabled",
    );
    let user = json!({"id": 8201, "first_name": "Ann"}).to_string();
    let init_data = sign_hmac(
        &[("user", &user), ("auth_date", &(now() - 5).to_string())],
        &bot_token(&app),
    );
    pair(&exchange_as(&app.api, &init_data, INIT_DATA).await);
    app.stop().await;

    // Mini App off: the widget signs in (and refreshes), the initData exchange is refused.
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new().with("TELEGRAM_MINIAPP_ENABLED", "false"),
    )
    .await;
    let (_, r) = pair(&exchange(&app.api, &widget(&app, 8202)).await);
    pair(&refresh(&app.api, &r).await);
    refused(
        &exchange_as(&app.api, &init_data, INIT_DATA).await,
        "sign_in_method_disabled",
    );
    app.stop().await;

    // Both off: no route.
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("TELEGRAM_MINIAPP_ENABLED", "false")
            .with("TELEGRAM_LOGIN_WIDGET_ENABLED", "false"),
    )
    .await;
    exchange(&app.api, &widget(&app, 8203))
        .await
        .assert_problem(404, "not_found");
    app.stop().await;
}
