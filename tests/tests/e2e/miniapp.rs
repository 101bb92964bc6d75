//! End-to-end: Mini App verification, sign-in (the token exchange of `POST /oauth/token`),
//! linking (by access token or initData) and the admin controls, through the local API over
//! HTTP, on both adapters.

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{Env, JwtConfig, JwtKey, MapEnv},
    ids::{TelegramUserId, UserId},
    store::{Link, LinkSource, Store},
    telegram::{
        initdata::{Validator, signing::sign_hmac},
        login_widget::signing::sign_widget,
    },
    time::{Clock, UnixTime},
    token::OneTimeToken,
};
use tglink_tests::{
    app::{TestApp, spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
};

const VERIFY: &str = "/api/telegram/miniapp/verify";
const TOKEN: &str = "/oauth/token";
const LINK: &str = "/api/telegram/link";

fn tg(id: i64) -> TelegramUserId {
    TelegramUserId::new(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn admin_path(telegram: &str, action: &str) -> String {
    format!("/api/admin/telegram/links/{telegram}/{action}")
}

fn bot_token(app: &TestApp) -> String {
    app.env
        .var("TELEGRAM_BOT_TOKEN")
        .expect("the local API has a dev bot token")
}

/// A JWT whose `roles` claim holds the admin role (`tglink:admin`).
fn admin_jwt(app: &TestApp, user: &str) -> String {
    let config = JwtConfig::from_env(app.env.as_ref()).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new(user, &config, 3600);
    claims.roles = vec![tglink_shared::auth::DEFAULT_ADMIN_ROLE.into()];
    sign_hs256(secret, &claims)
}

/// The user JSON of a Mini App launch, as Telegram sends it.
fn user_json(telegram: i64) -> String {
    json!({
        "id": telegram,
        "first_name": "Ann Lee",
        "last_name": "Smith",
        "username": format!("user{telegram}"),
        "language_code": "en",
        "allows_write_to_pm": true,
        "photo_url": "https://t.me/i/userpic/320/x.svg"
    })
    .to_string()
}

/// Fresh initData of Telegram user `telegram`, signed with `token` (each `query_id` is another
/// launch, hence another replay key).
fn init_data_with(token: &str, telegram: i64, query_id: &str, auth_date: u64) -> String {
    sign_hmac(
        &[
            ("query_id", query_id),
            ("user", &user_json(telegram)),
            ("auth_date", &auth_date.to_string()),
            ("chat_instance", "-8134722200314281151"),
            ("chat_type", "private"),
        ],
        token,
    )
}

fn init_data(app: &TestApp, telegram: i64, query_id: &str) -> String {
    init_data_with(
        &bot_token(app),
        telegram,
        query_id,
        UnixTime::now().secs() - 5,
    )
}

/// The `hash` value of signed initData.
fn hash_of(init_data: &str) -> String {
    init_data
        .split('&')
        .find_map(|f| f.strip_prefix("hash="))
        .unwrap()
        .to_owned()
}

async fn post(api: &Api, path: &str, jwt: Option<&str>, body: Value) -> ApiResponse {
    api.post(path, jwt, Some(&body)).await
}

/// A sign-in: the token exchange of `init_data` (`POST /oauth/token`).
async fn session(api: &Api, init_data: &str) -> ApiResponse {
    exchange(
        api,
        "urn:tglink:params:oauth:token-type:telegram-init-data",
        init_data,
    )
    .await
}

/// The token exchange of `subject_token` of `token_type` (`POST /oauth/token`).
async fn exchange(api: &Api, token_type: &str, subject_token: &str) -> ApiResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("subject_token_type", token_type)
        .append_pair("subject_token", subject_token)
        .finish();
    api.send(
        api.request(Method::POST, TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

/// The access token of a sign-in with `init_data`.
async fn session_token(api: &Api, init_data: &str) -> String {
    let resp = session(api, init_data).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.json["access_token"].as_str().unwrap().to_owned()
}

/// A token exchange refused for its initData: RFC 6749 `invalid_request`, the description
/// starting with the code `verify` gives.
fn assert_exchange_refused(resp: &ApiResponse, code: &str) {
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(resp.json["error"], "invalid_request", "{}", resp.text);
    assert!(
        resp.json["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with(code)),
        "{code}: {}",
        resp.text
    );
}

async fn link_with(api: &Api, jwt: &str, body: Value) -> ApiResponse {
    post(api, LINK, Some(jwt), body).await
}

/// Both items of the link agree (or both are absent).
async fn stored_link(store: &Store, telegram: i64) -> Option<Link> {
    let by_telegram = store.links().get_by_telegram(tg(telegram)).await.unwrap();
    if let Some(l) = &by_telegram {
        assert_eq!(
            store
                .links()
                .get_by_user(&l.user_id)
                .await
                .unwrap()
                .as_ref(),
            Some(l),
            "both items of a link agree"
        );
    }
    by_telegram
}

/// Every response body seen, to check that no secret is ever echoed.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn add(&mut self, resp: &ApiResponse) {
        self.0.push(resp.text.clone());
    }

    fn assert_free_of(&self, secrets: &[&str]) {
        for text in &self.0 {
            for secret in secrets {
                assert!(!text.contains(secret), "a response echoes a secret: {text}");
            }
        }
    }
}

async fn verify_session_link_read_unlink(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let api = &app.api;
    let store = app.store().await;
    let token = bot_token(&app);
    let jwt1 = app.jwt("user-1");
    let mut seen = Seen::default();
    let mut sessions = Vec::new();

    // verify: the typed data, no hash or signature, no raw string; and it uses nothing up.
    let data1 = init_data(&app, 4001, "AAQ1");
    for _ in 0..2 {
        let resp = post(api, VERIFY, None, json!({"init_data": data1})).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert_eq!(resp.json["telegram_user_id"], 4001);
        let data = &resp.json["init_data"];
        assert_eq!(data["user"]["id"], 4001);
        assert_eq!(data["user"]["username"], "user4001");
        assert_eq!(data["user"]["first_name"], "Ann Lee");
        assert_eq!(data["query_id"], "AAQ1");
        assert_eq!(data["chat_type"], "private");
        assert!(data["auth_date"].is_u64());
        assert!(data.get("hash").is_none() && data.get("signature").is_none());
        seen.add(&resp);
    }

    // sign-in (token exchange): once per initData.
    let resp = session(api, &data1).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let s1 = resp.json["access_token"].as_str().unwrap().to_owned();
    sessions.push(resp.json["refresh_token"].as_str().unwrap().to_owned());
    sessions.push(s1.clone());
    for _ in 0..2 {
        let resp = session(api, &data1).await;
        assert_exchange_refused(&resp, "initdata_replayed");
        seen.add(&resp);
    }
    let resp = link_with(api, &jwt1, json!({"init_data": data1})).await;
    resp.assert_problem(401, "initdata_replayed");
    seen.add(&resp);

    // link with the session: 201, then 200 for the same pair.
    let resp = link_with(api, &jwt1, json!({"access_token": s1})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.json["telegram_user_id"], 4001);
    assert_eq!(resp.json["user_id"], "user-1");
    assert_eq!(resp.json["username"], "user4001");
    assert_eq!(resp.json["source"], "miniapp");
    let linked = resp.json.clone();
    seen.add(&resp);
    let resp = link_with(api, &jwt1, json!({"access_token": s1})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json, linked);
    seen.add(&resp);
    let resp = api.get(LINK, Some(&jwt1)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json, linked);
    seen.add(&resp);
    let stored = stored_link(&store, 4001).await.expect("linked");
    assert_eq!(stored.user_id, uid("user-1"));
    assert_eq!(stored.source, LinkSource::MiniApp);
    assert_eq!(
        stored.linked_at.secs(),
        linked["linked_at"].as_u64().unwrap()
    );

    // A new sign-in of this Telegram user works while linked.
    let resp = session(api, &init_data(&app, 4001, "AAQ2")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    sessions.push(resp.json["access_token"].as_str().unwrap().to_owned());

    // Another app user cannot take this Telegram user, nor can user-1 take another one. (The
    // session itself is user-1's now: another user presenting it is refused as invalid.)
    let jwt2 = app.jwt("user-2");
    let resp = link_with(api, &jwt2, json!({"access_token": s1})).await;
    resp.assert_problem(401, "session_invalid");
    let resp = link_with(
        api,
        &jwt2,
        json!({"init_data": init_data(&app, 4001, "AAQ3")}),
    )
    .await;
    resp.assert_problem(409, "link_conflict");
    let data5 = init_data(&app, 4002, "AAQ5");
    let resp = link_with(api, &jwt1, json!({"init_data": data5})).await;
    resp.assert_problem(409, "link_conflict");
    seen.add(&resp);
    // The refusal is logged by its stable code, not as Rust `Debug` text.
    let refused: Vec<String> = log
        .contents()
        .lines()
        .filter(|l| l.contains("link refused") && l.contains("\"user_id\":\"user-1\""))
        .map(str::to_owned)
        .collect();
    assert!(
        refused
            .iter()
            .any(|l| l.contains("\"outcome\":\"link_conflict\"")),
        "{refused:?}"
    );
    assert!(
        refused.iter().all(|l| !l.contains("Conflict(")),
        "{refused:?}"
    );
    assert_eq!(stored_link(&store, 4002).await, None);
    assert_eq!(
        store.links().get_by_user(&uid("user-2")).await.unwrap(),
        None
    );

    // DELETE removes both items; then nothing to read or delete.
    let resp = api.call(Method::DELETE, LINK, Some(&jwt1), None).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    assert_eq!(stored_link(&store, 4001).await, None);
    assert_eq!(
        store.links().get_by_user(&uid("user-1")).await.unwrap(),
        None
    );
    api.get(LINK, Some(&jwt1))
        .await
        .assert_problem(404, "link_not_found");
    api.call(Method::DELETE, LINK, Some(&jwt1), None)
        .await
        .assert_problem(404, "link_not_found");

    // The refused initData was not used up: now that user-1 is free, it links.
    let resp = link_with(api, &jwt1, json!({"init_data": data5})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.json["telegram_user_id"], 4002);
    seen.add(&resp);
    // The same initData again, by the same app user (a retry after a lost answer): this pair
    // is linked already, 200; by anyone else it is a replay.
    let resp = link_with(api, &jwt1, json!({"init_data": data5})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["telegram_user_id"], 4002);
    link_with(api, &jwt2, json!({"init_data": data5}))
        .await
        .assert_problem(401, "initdata_replayed");
    // Fresh initData for the same pair: 200.
    let resp = link_with(
        api,
        &jwt1,
        json!({"init_data": init_data(&app, 4002, "AAQ6")}),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        stored_link(&store, 4002).await.unwrap().user_id,
        uid("user-1")
    );

    // Malformed requests.
    for body in [
        json!({"access_token": s1, "init_data": data5}),
        json!({}),
        json!({"access_token": s1, "user_id": "user-9"}),
        json!({"access_token": 5}),
    ] {
        let resp = link_with(api, &jwt2, body).await;
        resp.assert_problem(400, "body_invalid");
        seen.add(&resp);
    }
    let unknown = OneTimeToken::mint();
    for bad in ["short", unknown.expose(), "a.b.c"] {
        link_with(api, &jwt2, json!({"access_token": bad}))
            .await
            .assert_problem(401, "access_token_invalid");
    }
    post(api, LINK, None, json!({"access_token": s1}))
        .await
        .assert_problem(401, "auth_required");
    api.get(LINK, None)
        .await
        .assert_problem(401, "auth_required");
    api.call(Method::PUT, LINK, Some(&jwt1), None)
        .await
        .assert_problem(405, "method_not_allowed");
    api.get(VERIFY, None)
        .await
        .assert_problem(405, "method_not_allowed");

    let datas = [data1.clone(), data5.clone()];
    let hashes = [hash_of(&data1), hash_of(&data5)];
    let mut secrets: Vec<&str> = vec![&token];
    secrets.extend(datas.iter().map(String::as_str));
    secrets.extend(hashes.iter().map(String::as_str));
    seen.assert_free_of(&secrets);
    secrets.extend(sessions.iter().map(String::as_str));
    log.assert_free_of(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_session_link_read_unlink_sqlite() {
    verify_session_link_read_unlink(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_session_link_read_unlink_dynamodb() {
    verify_session_link_read_unlink(Backend::DynamoDb).await;
}

/// The seed kept replay protection in process memory. Here a second local API, built
/// independently on the same store, refuses initData the first one accepted, even re-encoded.
async fn replay_is_refused_by_another_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = local_api::start(app.env.clone(), "127.0.0.1:0")
        .await
        .expect("a second local API on the same store");
    let b = Api::new(other.base_url());
    let data = init_data(&app, 4101, "AAR1");
    session_token(&app.api, &data).await;

    assert_exchange_refused(&session(&b, &data).await, "initdata_replayed");
    link_with(&b, &app.jwt("user-r"), json!({"init_data": data}))
        .await
        .assert_problem(401, "initdata_replayed");
    // The same content in another encoding (fields reversed, `+` written `%20`) still
    // verifies, and is still the same initData.
    let reencoded = data
        .split('&')
        .rev()
        .collect::<Vec<_>>()
        .join("&")
        .replace('+', "%20");
    assert_ne!(reencoded, data);
    let resp = post(&b, VERIFY, None, json!({"init_data": reencoded})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_exchange_refused(&session(&b, &reencoded).await, "initdata_replayed");

    // The claim is in the shared store, seen by an independent client.
    let now = UnixTime::now();
    let key = Validator::from_env(app.env.as_ref())
        .unwrap()
        .validate(&data, now)
        .unwrap()
        .replay_key();
    assert!(
        app.store()
            .await
            .signins()
            .standing(tg(4101), &key, now)
            .await
            .unwrap()
            .used
    );

    // Sign-ins are shared too: one made on the second instance links on the first.
    let s = session_token(&b, &init_data(&app, 4101, "AAR2")).await;
    let resp = link_with(&app.api, &app.jwt("user-r"), json!({"access_token": s})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_refused_by_another_instance_sqlite() {
    replay_is_refused_by_another_instance(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_refused_by_another_instance_dynamodb() {
    replay_is_refused_by_another_instance(Backend::DynamoDb).await;
}

/// 32 app users race to link one Telegram user; `proofs[i]` is the body user i sends.
async fn one_winner_of_32(app: &TestApp, telegram: i64, proofs: Vec<Value>) {
    let racer = |i: usize| format!("racer-{telegram}-{i}");
    let mut tasks = Vec::new();
    for (i, proof) in proofs.into_iter().enumerate() {
        let api = app.api.clone();
        let jwt = app.jwt(&racer(i));
        tasks.push(tokio::spawn(async move {
            (i, link_with(&api, &jwt, proof).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, resp) = task.await.unwrap();
        if resp.status == 201 {
            assert_eq!(resp.json["telegram_user_id"], telegram);
            assert_eq!(resp.json["user_id"], racer(i));
            winners.push(i);
        } else {
            resp.assert_problem(409, "link_conflict");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 32 links wins");
    let store = app.store().await;
    let link = stored_link(&store, telegram).await.expect("linked");
    assert_eq!(link.user_id, uid(&racer(winners[0])));
    for i in 0..32 {
        assert_eq!(
            store
                .links()
                .get_by_user(&uid(&racer(i)))
                .await
                .unwrap()
                .is_some(),
            i == winners[0],
            "no half-written link"
        );
    }
}

async fn thirty_two_concurrent_links_one_winner(backend: Backend) {
    // Each with its own fresh initData. (32 sign-ins of one user: above the default cap.)
    let app = spawn_app_with(backend, MapEnv::new().with("TGLINK_SESSIONS_MAX", "40")).await;
    let proofs = (0..32)
        .map(|i| json!({"init_data": init_data(&app, 4201, &format!("AAC{i}"))}))
        .collect();
    one_winner_of_32(&app, 4201, proofs).await;

    // Each with its own session of the same Telegram user.
    let mut proofs = Vec::new();
    for i in 0..32 {
        let s = session_token(&app.api, &init_data(&app, 4202, &format!("AAS{i}"))).await;
        proofs.push(json!({"access_token": s}));
    }
    one_winner_of_32(&app, 4202, proofs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_links_one_winner_sqlite() {
    thirty_two_concurrent_links_one_winner(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_links_one_winner_dynamodb() {
    thirty_two_concurrent_links_one_winner(Backend::DynamoDb).await;
}

async fn refusals_are_401_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = &app.api;
    let jwt = app.jwt("user-x");
    let token = bot_token(&app);
    let now = UnixTime::now().secs();
    let user = user_json(4301);
    let tampered = init_data(&app, 4301, "AAT1").replace("4301", "4302");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "initdata_malformed"),
        ("garbage".into(), "initdata_malformed"),
        ("user=x&auth_date=1".into(), "initdata_malformed"),
        (
            format!("a=1&&hash={}", "0".repeat(64)),
            "initdata_malformed",
        ),
        (
            init_data_with("1234:another-bot", 4301, "AAT2", now),
            "initdata_signature_invalid",
        ),
        (tampered, "initdata_signature_invalid"),
        (
            init_data_with(&token, 4301, "AAT3", now - 86_401),
            "initdata_expired",
        ),
        (
            init_data_with(&token, 4301, "AAT4", now + 3_600),
            "initdata_expired",
        ),
        (
            sign_hmac(
                &[
                    ("user", r#"{"id":4303,"first_name":"Bot","is_bot":true}"#),
                    ("auth_date", &now.to_string()),
                ],
                &token,
            ),
            "bot_user_rejected",
        ),
        (
            sign_hmac(
                &[("query_id", "AAT5"), ("auth_date", &now.to_string())],
                &token,
            ),
            "initdata_malformed",
        ),
        (
            sign_hmac(
                &[("user", "{not json"), ("auth_date", &now.to_string())],
                &token,
            ),
            "initdata_malformed",
        ),
    ];
    for (data, code) in &cases {
        let resp = post(api, VERIFY, None, json!({"init_data": data})).await;
        resp.assert_problem(401, code);
        assert!(resp.header("www-authenticate").is_none());
        if data.len() > 8 {
            assert!(!resp.text.contains(data.as_str()));
        }
        if !data.is_empty() {
            let resp = session(api, data).await;
            assert_exchange_refused(&resp, code);
            if data.len() > 8 {
                assert!(!resp.text.contains(data.as_str()));
            }
        }
        let resp = link_with(api, &jwt, json!({"init_data": data})).await;
        resp.assert_problem(401, code);
    }
    // The user JSON of a good launch never comes back in an error either.
    let resp = session(api, &format!("user={user}")).await;
    assert_exchange_refused(&resp, "initdata_malformed");
    assert!(!resp.text.contains("Ann Lee"));

    // Bodies that are not `{"init_data": "<string>"}`: 4xx, never 5xx.
    let raw = |path: &str, body: &'static str| {
        api.request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    };
    for path in [VERIFY] {
        api.send(raw(path, ""))
            .await
            .assert_problem(400, "body_missing");
        for body in [
            "{}",
            r#"{"init_data": 5}"#,
            "[]",
            "{",
            r#"{"init_data": null}"#,
        ] {
            api.send(raw(path, body))
                .await
                .assert_problem(400, "body_invalid");
        }
    }
    let big = "x".repeat(70_000);
    post(api, VERIFY, None, json!({"init_data": big}))
        .await
        .assert_problem(413, "payload_too_large");
    // Nothing was linked or used up by any of this.
    let store = app.store().await;
    assert_eq!(stored_link(&store, 4301).await, None);
    let fresh = init_data(&app, 4301, "AAT9");
    session_token(api, &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_401_problems_sqlite() {
    refusals_are_401_problems(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_401_problems_dynamodb() {
    refusals_are_401_problems(Backend::DynamoDb).await;
}

async fn admin_revoke_block_unblock(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let api = &app.api;
    let store = app.store().await;
    let admin = admin_jwt(&app, "admin-1");
    let jwt1 = app.jwt("user-1");
    let s1 = session_token(api, &init_data(&app, 4401, "AAB1")).await;
    assert_eq!(
        link_with(api, &jwt1, json!({"access_token": s1}))
            .await
            .status,
        201
    );

    // Only admins; ids must be positive integers.
    for action in ["revoke", "block", "unblock"] {
        let path = admin_path("4401", action);
        post(api, &path, Some(&jwt1), json!({}))
            .await
            .assert_problem(403, "forbidden");
        api.post(&path, None, None)
            .await
            .assert_problem(401, "auth_required");
        for bad in ["abc", "0", "-4", "1.5"] {
            api.post(&admin_path(bad, action), Some(&admin), None)
                .await
                .assert_problem(400, "telegram_user_id_invalid");
        }
        api.get(&path, Some(&admin))
            .await
            .assert_problem(405, "method_not_allowed");
    }
    assert!(stored_link(&store, 4401).await.is_some());

    // revoke: the link goes (both items); once.
    let resp = api
        .post(&admin_path("4401", "revoke"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["revoked"]["user_id"], "user-1");
    assert_eq!(resp.json["revoked"]["telegram_user_id"], 4401);
    assert_eq!(stored_link(&store, 4401).await, None);
    assert_eq!(
        store.links().get_by_user(&uid("user-1")).await.unwrap(),
        None
    );
    api.post(&admin_path("4401", "revoke"), Some(&admin), None)
        .await
        .assert_problem(404, "link_not_found");

    // The revoke ended the session (issue 13): a fresh one links again, then blocked: the
    // link goes with the block.
    link_with(api, &jwt1, json!({"access_token": s1}))
        .await
        .assert_problem(401, "session_invalid");
    let s1 = session_token(api, &init_data(&app, 4401, "AAB0")).await;
    assert_eq!(
        link_with(api, &jwt1, json!({"access_token": s1}))
            .await
            .status,
        201
    );
    let resp = api
        .post(&admin_path("4401", "block"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["blocked"], true);
    assert_eq!(resp.json["already_blocked"], false);
    assert_eq!(resp.json["blocked_by"], "admin-1");
    assert_eq!(resp.json["revoked"]["user_id"], "user-1");
    let blocked_at = resp.json["blocked_at"].clone();
    assert_eq!(stored_link(&store, 4401).await, None);
    assert_eq!(
        store.links().get_by_user(&uid("user-1")).await.unwrap(),
        None
    );
    assert!(store.blocks().get_block(tg(4401)).await.unwrap().is_some());

    // A blocked user gets nothing: no verify, no session, no link by session or initData.
    let refused = init_data(&app, 4401, "AAB2");
    post(api, VERIFY, None, json!({"init_data": refused}))
        .await
        .assert_problem(401, "telegram_user_blocked");
    assert_exchange_refused(&session(api, &refused).await, "telegram_user_blocked");
    link_with(api, &jwt1, json!({"access_token": s1}))
        .await
        .assert_problem(401, "telegram_user_blocked");
    link_with(api, &app.jwt("user-3"), json!({"init_data": refused}))
        .await
        .assert_problem(401, "telegram_user_blocked");
    // Nor through the bot: `/start` is answered with a refusal and the token is kept.
    let webhook_secret = app.env.var("TELEGRAM_WEBHOOK_SECRET").unwrap();
    let connect = api
        .post("/api/telegram/connect-link", Some(&app.jwt("user-9")), None)
        .await;
    let connect_token = connect.json["token"].as_str().unwrap().to_owned();
    let start = |update_id: i64| {
        json!({"update_id": update_id, "message": {"message_id": 1, "date": 0,
            "chat": {"id": 4401, "type": "private"},
            "from": {"id": 4401, "is_bot": false, "first_name": "A"},
            "text": format!("/start {connect_token}")}})
    };
    let deliver = |update: Value| {
        api.send(
            api.request(Method::POST, "/api/telegram/webhook")
                .header("X-Telegram-Bot-Api-Secret-Token", &webhook_secret)
                .json(&update),
        )
    };
    let resp = deliver(start(1)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json["text"],
        "⛔ This Telegram account has been blocked from connecting to tglink. Contact support if you think this is a mistake."
    );
    assert_eq!(stored_link(&store, 4401).await, None);

    // Blocking again keeps the first block.
    let resp = api
        .post(
            &admin_path("4401", "block"),
            Some(&admin_jwt(&app, "admin-2")),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["already_blocked"], true);
    assert_eq!(resp.json["blocked_at"], blocked_at);
    assert_eq!(resp.json["blocked_by"], "admin-1");
    assert_eq!(resp.json["revoked"], Value::Null);

    // unblock: once; then everything refused before works, nothing was used up.
    let resp = api
        .post(&admin_path("4401", "unblock"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json,
        json!({"telegram_user_id": 4401, "blocked": false})
    );
    api.post(&admin_path("4401", "unblock"), Some(&admin), None)
        .await
        .assert_problem(404, "block_not_found");
    assert_eq!(store.blocks().get_block(tg(4401)).await.unwrap(), None);
    let resp = deliver(start(2)).await;
    assert!(
        resp.json["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("✅ Successfully connected")),
        "{}",
        resp.text
    );
    let link = stored_link(&store, 4401).await.expect("linked by the bot");
    assert_eq!(
        (link.user_id, link.source),
        (uid("user-9"), LinkSource::Bot)
    );
    let resp = post(api, VERIFY, None, json!({"init_data": refused})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    link_with(api, &jwt1, json!({"init_data": refused}))
        .await
        .assert_problem(409, "link_conflict");
    // The bot's link is revoked like any other.
    let resp = api
        .post(&admin_path("4401", "revoke"), Some(&admin), None)
        .await;
    assert_eq!(resp.json["revoked"]["source"], "bot");
    let resp = link_with(api, &jwt1, json!({"init_data": refused})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);

    log.assert_free_of(&[&s1, &refused, &connect_token, &webhook_secret, &admin]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revoke_block_unblock_sqlite() {
    admin_revoke_block_unblock(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revoke_block_unblock_dynamodb() {
    admin_revoke_block_unblock(Backend::DynamoDb).await;
}

async fn feature_flags(backend: Backend) {
    // Everything off: every route of both functions is 404.
    let app = spawn_app_with(
        backend,
        MapEnv::new().with("TELEGRAM_FEATURE_ENABLED", "false"),
    )
    .await;
    let api = &app.api;
    let jwt = app.jwt("user-f");
    let admin = admin_jwt(&app, "admin-f");
    let data = init_data(&app, 4501, "AAF1");
    for path in [VERIFY, TOKEN] {
        post(api, path, None, json!({"init_data": data}))
            .await
            .assert_problem(404, "not_found");
        api.get(path, None).await.assert_problem(404, "not_found");
    }
    link_with(api, &jwt, json!({"init_data": data}))
        .await
        .assert_problem(404, "not_found");
    api.get(LINK, Some(&jwt))
        .await
        .assert_problem(404, "not_found");
    api.call(Method::DELETE, LINK, Some(&jwt), None)
        .await
        .assert_problem(404, "not_found");
    for action in ["revoke", "block", "unblock"] {
        api.post(&admin_path("4501", action), Some(&admin), None)
            .await
            .assert_problem(404, "not_found");
    }
    app.stop().await;

    // Mini App off: no verify, session or linking by Mini App proof; links stay readable and
    // removable, and the admin controls stay.
    let app = spawn_app_with(
        backend,
        MapEnv::new().with("TELEGRAM_MINIAPP_ENABLED", "off"),
    )
    .await;
    let api = &app.api;
    let jwt = app.jwt("user-f");
    let admin = admin_jwt(&app, "admin-f");
    let data = init_data(&app, 4501, "AAF2");
    post(api, VERIFY, None, json!({"init_data": data}))
        .await
        .assert_problem(404, "not_found");
    // `/oauth/token` stays for the other sign-in methods (the Login Widget is on with the bot
    // token); the initData exchange is refused (`e2e widget` switches each method off).
    let resp = session(api, &data).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert!(
        resp.text.contains("sign_in_method_disabled"),
        "{}",
        resp.text
    );
    // Linking by initData is refused; an access token is verified (and a widget session's
    // links: the Login Widget signs in while the Mini App is off).
    link_with(api, &jwt, json!({"init_data": data}))
        .await
        .assert_problem(400, "sign_in_method_disabled");
    link_with(
        api,
        &jwt,
        json!({"access_token": OneTimeToken::mint().expose()}),
    )
    .await
    .assert_problem(401, "access_token_invalid");
    let widget = sign_widget(
        &[
            ("id", "4502"),
            ("first_name", "W"),
            ("auth_date", &(UnixTime::now().secs() - 5).to_string()),
        ],
        &app.env.var("TELEGRAM_BOT_TOKEN").unwrap(),
    );
    let tokens = exchange(
        api,
        "urn:tglink:params:oauth:token-type:telegram-login-widget",
        &widget,
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let linked = link_with(
        api,
        &app.jwt("user-w"),
        json!({"access_token": tokens.json["access_token"]}),
    )
    .await;
    assert_eq!(linked.status, 201, "{}", linked.text);
    assert_eq!(linked.json["telegram_user_id"], 4502);
    let store = app.store().await;
    store
        .links()
        .link(&Link {
            telegram_user_id: tg(4501),
            user_id: uid("user-f"),
            chat_id: Some(4501),
            username: None,
            source: LinkSource::Bot,
            linked_at: UnixTime::now(),
            unreachable: None,
        })
        .await
        .unwrap();
    let resp = api.get(LINK, Some(&jwt)).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["source"], "bot");
    assert_eq!(resp.json["chat_id"], 4501);
    let resp = api
        .post(&admin_path("4501", "block"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    api.get(LINK, Some(&jwt))
        .await
        .assert_problem(404, "link_not_found");
    api.call(Method::DELETE, LINK, Some(&jwt), None)
        .await
        .assert_problem(404, "link_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_flags_sqlite() {
    feature_flags(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_flags_dynamodb() {
    feature_flags(Backend::DynamoDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("TGLINK_STORE", "dynamodb")
            .with("TGLINK_TABLE", "tglink-unreachable")
            .with("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .with("AWS_REGION", "us-east-1")
            .with("AWS_ACCESS_KEY_ID", "testing")
            .with("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    .await;
    let api = &app.api;
    let jwt = app.jwt("user-u");
    let data = init_data(&app, 4601, "AAU1");
    let resp = session(api, &data).await;
    assert_eq!(resp.status, 503, "{}", resp.text);
    assert_eq!(resp.json["error"], "temporarily_unavailable");
    assert_eq!(resp.header("retry-after"), Some("2"));
    for resp in [
        post(api, VERIFY, None, json!({"init_data": data})).await,
        link_with(api, &jwt, json!({"init_data": data})).await,
        api.get(LINK, Some(&jwt)).await,
        api.call(Method::DELETE, LINK, Some(&jwt), None).await,
        api.post(
            &admin_path("4601", "block"),
            Some(&admin_jwt(&app, "a")),
            None,
        )
        .await,
    ] {
        resp.assert_problem(503, "service_unavailable");
        assert_eq!(resp.header("retry-after"), Some("2"));
    }
}

/// A data directory made before the Mini App functions existed has no `TELEGRAM_BOT_TOKEN`
/// in its dev secrets: one is added, the stored secrets are kept, and it stays the same.
#[test]
fn old_dev_secrets_get_a_bot_token() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("dev-secrets.json");
    let old = json!({
        "APP_JWT_SECRET": OneTimeToken::mint().expose(),
        "TELEGRAM_WEBHOOK_SECRET": "kept-webhook-secret",
        "REGISTRATION_CALLBACK_SECRET": OneTimeToken::mint().expose(),
    });
    std::fs::write(&path, old.to_string()).unwrap();
    let process = MapEnv::new().with(
        "TGLINK_SQLITE_PATH",
        dir.path().join("tglink.db").display().to_string(),
    );
    let env = local_api::local_env(Arc::new(process.clone())).unwrap();
    let token = env
        .var("TELEGRAM_BOT_TOKEN")
        .expect("a generated bot token");
    Validator::from_env(env.as_ref()).expect("a well-formed bot token");
    assert_eq!(
        env.var("APP_JWT_SECRET").as_deref(),
        old["APP_JWT_SECRET"].as_str()
    );
    assert_eq!(
        env.var("TELEGRAM_WEBHOOK_SECRET").as_deref(),
        Some("kept-webhook-secret")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = local_api::local_env(Arc::new(process)).unwrap();
    assert_eq!(again.var("TELEGRAM_BOT_TOKEN"), Some(token));
    let stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored.as_object().unwrap().len(), 4);
}

/// The design's budget: verify costs one DynamoDB call (one read of the sign-in record); a
/// link by initData one transaction (claim on the sign-in record, both link items, the block
/// check); an unlink two (the link read, then both deletes and the sign-in record's update in
/// one transaction). The token exchange and refresh are counted in `aws_calls.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_calls_per_request() {
    use tglink_shared::{
        auth::JwtVerifier, store::dynamodb::DynamoStore, telegram::miniapp::MiniAppConfig,
    };

    const TOKEN: &str = "7000000009:budget-bot-token";
    const SECRET: &str = "a-budget-test-jwt-secret-of-32-bytes!!";
    let moto = tglink_tests::fixtures::emulator();
    let table = moto.new_table().await;
    let calls = tglink_tests::aws_calls::AwsCalls::default();
    let sdk = calls.sdk_config(&moto.sdk().await);
    let counted = Store::DynamoDb(Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.table(),
    )));
    let env = MapEnv::new()
        .with("TELEGRAM_BOT_TOKEN", TOKEN)
        .with("APP_JWT_SECRET", SECRET)
        .with("APP_JWT_ISSUER", "budget")
        .with("APP_JWT_AUDIENCE", "budget");
    let miniapp = MiniAppConfig::from_env(&env).unwrap();
    let verify = initdata_verify::InitDataVerify {
        config: Some(miniapp.clone()),
        signins: counted.signins(),
        clock: Clock::system(),
    };
    let jwt_config = JwtConfig::from_env(&env).unwrap();
    let link = link::LinkFunction {
        enabled: true,
        miniapp: Some(miniapp),
        auth: JwtVerifier::new(&jwt_config).unwrap(),
        links: counted.links(),
        signins: counted.signins(),
        verifier: test_verifier(&counted),
        blocks: counted.blocks(),
        clock: Clock::system(),
    };
    let jwt = sign_hs256(SECRET, &DevClaims::new("user-b", &jwt_config, 600));
    let request = |path: &str, body: Value| {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {jwt}"))
            .body(lambda_http::Body::Text(body.to_string()))
            .unwrap()
    };
    let now = UnixTime::now().secs();
    let data = |q: &str| init_data_with(TOKEN, 4701, q, now);

    let resp =
        initdata_verify::handle(&verify, request(VERIFY, json!({"init_data": data("q1")}))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(calls.take().operations("DynamoDB"), ["GetItem"]);
    let resp = link::handle(&link, request(LINK, json!({"init_data": data("q1")}))).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(calls.take().operations("DynamoDB"), ["TransactWriteItems"]);
    let mut unlink = request(LINK, json!({}));
    *unlink.method_mut() = http::Method::DELETE;
    let resp = link::handle(&link, unlink).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        calls.take().operations("DynamoDB"),
        ["GetItem", "TransactWriteItems"]
    );
    let resp = link::handle(&link, request(LINK, json!({"init_data": data("q2")}))).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(calls.take().operations("DynamoDB"), ["TransactWriteItems"]);
    // Refused before the store: costs nothing.
    let resp = initdata_verify::handle(&verify, request(VERIFY, json!({"init_data": "x"}))).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(calls.take().operations("DynamoDB"), Vec::<&str>::new());
}

/// Issue 13, item 1, on the sign-in sessions of issue 14: an access token is not a reusable
/// link ticket. Its session links at most once (one app user), and every unlink (the user's
/// `DELETE`, an admin revoke, the bot's `/disconnect`) and every block ends all the sessions the
/// Telegram user had: a session made before a block never works after the unblock.
async fn a_session_dies_with_its_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = &app.api;
    let admin = admin_jwt(&app, "admin-1");
    let (jwt1, jwt2) = (app.jwt("user-1"), app.jwt("user-2"));

    // S → user-1 links → user-1 unlinks → user-2 cannot link with S (nor can user-1 again).
    let s = session_token(api, &init_data(&app, 4801, "AAS1")).await;
    let resp = link_with(api, &jwt1, json!({"access_token": s})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    // A retry by the same user while linked: 200 (idempotent); another user: refused.
    let resp = link_with(api, &jwt1, json!({"access_token": s})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    link_with(api, &jwt2, json!({"access_token": s}))
        .await
        .assert_problem(401, "session_invalid");
    let resp = api.call(Method::DELETE, LINK, Some(&jwt1), None).await;
    assert_eq!(resp.status, 204, "{}", resp.text);
    link_with(api, &jwt2, json!({"access_token": s}))
        .await
        .assert_problem(401, "session_invalid");
    link_with(api, &jwt1, json!({"access_token": s}))
        .await
        .assert_problem(401, "session_invalid");
    // A session the user had but never used dies with the link too.
    let unused = session_token(api, &init_data(&app, 4801, "AAS2")).await;
    let resp = link_with(
        api,
        &jwt1,
        json!({"init_data": init_data(&app, 4801, "AAS3")}),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    api.call(Method::DELETE, LINK, Some(&jwt1), None).await;
    link_with(api, &jwt2, json!({"access_token": unused}))
        .await
        .assert_problem(401, "session_invalid");
    // A fresh session works.
    let fresh = session_token(api, &init_data(&app, 4801, "AAS4")).await;
    let resp = link_with(api, &jwt2, json!({"access_token": fresh})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);

    // The same after an admin revoke.
    let resp = api
        .post(&admin_path("4801", "revoke"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    link_with(api, &jwt1, json!({"access_token": fresh}))
        .await
        .assert_problem(401, "session_invalid");
    link_with(api, &jwt2, json!({"access_token": fresh}))
        .await
        .assert_problem(401, "session_invalid");

    // Block → unblock: a session made before the block never works again, linked or not.
    let before = session_token(api, &init_data(&app, 4802, "AAS5")).await;
    let resp = api
        .post(&admin_path("4802", "block"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let resp = api
        .post(&admin_path("4802", "unblock"), Some(&admin), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    link_with(api, &jwt1, json!({"access_token": before}))
        .await
        .assert_problem(401, "session_invalid");
    let after = session_token(api, &init_data(&app, 4802, "AAS6")).await;
    let resp = link_with(api, &jwt1, json!({"access_token": after})).await;
    assert_eq!(resp.status, 201, "{}", resp.text);

    // The bot's /disconnect ends the sessions too.
    let webhook_secret = app.env.var("TELEGRAM_WEBHOOK_SECRET").unwrap();
    let disconnect = json!({"update_id": 48_021, "message": {"message_id": 1, "date": 0,
        "chat": {"id": 4802, "type": "private"},
        "from": {"id": 4802, "is_bot": false, "first_name": "A"},
        "text": "/disconnect"}});
    let resp = api
        .send(
            api.request(Method::POST, "/api/telegram/webhook")
                .header("X-Telegram-Bot-Api-Secret-Token", &webhook_secret)
                .json(&disconnect),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    api.get(LINK, Some(&jwt1))
        .await
        .assert_problem(404, "link_not_found");
    link_with(api, &jwt1, json!({"access_token": after}))
        .await
        .assert_problem(401, "session_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dies_with_its_link_sqlite() {
    a_session_dies_with_its_link(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dies_with_its_link_dynamodb() {
    a_session_dies_with_its_link(Backend::DynamoDb).await;
}

/// The functions of the Mini App on `store`, with `env` and a clock the test moves.
fn miniapp_functions(
    store: &Store,
    env: &MapEnv,
    clock: &Arc<std::sync::atomic::AtomicU64>,
) -> (initdata_verify::InitDataVerify, link::LinkFunction) {
    use tglink_shared::{auth::JwtVerifier, telegram::miniapp::MiniAppConfig};
    let at = clock.clone();
    let clock = Clock::new(move || UnixTime(at.load(std::sync::atomic::Ordering::SeqCst)));
    let miniapp = MiniAppConfig::from_env(env).unwrap();
    let verify = initdata_verify::InitDataVerify {
        config: Some(miniapp.clone()),
        signins: store.signins(),
        clock: clock.clone(),
    };
    let link = link::LinkFunction {
        enabled: true,
        miniapp: Some(miniapp),
        auth: JwtVerifier::new(&JwtConfig::from_env(env).unwrap()).unwrap(),
        links: store.links(),
        signins: store.signins(),
        verifier: test_verifier(store),
        blocks: store.blocks(),
        clock,
    };
    (verify, link)
}

/// An access-token verifier on `store`'s signing keys (for functions built in-process).
fn test_verifier(store: &Store) -> tglink_shared::oauth::AccessTokenVerifier {
    tglink_shared::oauth::AccessTokenVerifier::new(
        tglink_shared::oauth::TokenConfig {
            issuer: "http://127.0.0.1".into(),
            audience: "tglink-test".into(),
            access_token_ttl: std::time::Duration::from_secs(300),
        },
        store.signing_keys(),
    )
}

fn post_request(path: &str, jwt: Option<&str>, body: Value) -> lambda_http::Request {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    if let Some(jwt) = jwt {
        req = req.header("authorization", format!("Bearer {jwt}"));
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

/// Issue 13, item 2: the replay claim lives as long as the initData is accepted. Max age 100 s
/// and a replay window of 100 s: a link at T, then the same initData at T+100 (its last
/// accepted second) is a replay — for a link, and as `verify`'s `used` (the token exchange
/// shares the claims: `tests/e2e/oauth.rs`). initData
/// dated 60 s ahead (the allowed skew) is accepted until T+160, and so is its claim.
async fn replay_claim_covers_the_initdata_validity(backend: Backend) {
    const TOKEN: &str = "7000000011:replay-window-bot-token";
    const SECRET: &str = "a-replay-window-jwt-secret-of-32-bytes";
    let fx = backend.store().await;
    let env = MapEnv::new()
        .with("TELEGRAM_BOT_TOKEN", TOKEN)
        .with("TELEGRAM_INITDATA_MAX_AGE_SEC", "100")
        .with("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", "100000")
        .with("APP_JWT_SECRET", SECRET)
        .with("APP_JWT_ISSUER", "replay")
        .with("APP_JWT_AUDIENCE", "replay");
    let t = UnixTime::now().secs();
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(t));
    let (verify, link) = miniapp_functions(&fx.store, &env, &clock);
    let jwt = sign_hs256(
        SECRET,
        &DevClaims::new("user-w", &JwtConfig::from_env(&env).unwrap(), 100_000),
    );
    let set = |secs: u64| clock.store(secs, std::sync::atomic::Ordering::SeqCst);

    for (telegram, auth_date, last) in [(4901, t, t + 100), (4902, t + 60, t + 160)] {
        set(t);
        let data = init_data_with(TOKEN, telegram, "AAW1", auth_date);
        let body = json!({"init_data": data});
        let (status, json) = answer(
            initdata_verify::handle(&verify, post_request(VERIFY, None, body.clone())).await,
        )
        .await;
        assert_eq!((status, &json["used"]), (200, &json!(false)), "{json}");
        let (status, json) =
            answer(link::handle(&link, post_request(LINK, Some(&jwt), body.clone())).await).await;
        assert_eq!(status, 201, "{json}");
        let mut unlink = post_request(LINK, Some(&jwt), json!({}));
        *unlink.method_mut() = http::Method::DELETE;
        assert_eq!(link::handle(&link, unlink).await.status(), 204);
        for at in [t + 1, last] {
            set(at);
            let (status, json) = answer(
                initdata_verify::handle(&verify, post_request(VERIFY, None, body.clone())).await,
            )
            .await;
            assert_eq!(
                (status, &json["used"]),
                (200, &json!(true)),
                "at T+{}",
                at - t
            );
            let (status, json) =
                answer(link::handle(&link, post_request(LINK, Some(&jwt), body.clone())).await)
                    .await;
            assert_eq!(
                (status, &json["code"]),
                (401, &json!("initdata_replayed")),
                "at T+{}",
                at - t
            );
        }
        // One second later the initData itself is refused.
        set(last + 1);
        let (status, json) =
            answer(link::handle(&link, post_request(LINK, Some(&jwt), body)).await).await;
        assert_eq!((status, &json["code"]), (401, &json!("initdata_expired")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_claim_covers_the_initdata_validity_sqlite() {
    replay_claim_covers_the_initdata_validity(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_claim_covers_the_initdata_validity_dynamodb() {
    replay_claim_covers_the_initdata_validity(Backend::DynamoDb).await;
}

/// Real initData signed by Telegram (Ed25519, production key) for bot 7342037359, as published
/// in @tma.js/init-data-node's docs (the same vector as `shared`'s unit tests).
const TELEGRAM_SIGNED: &str = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date=1733584787&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6";

/// With `TELEGRAM_BOT_ID` and no `TELEGRAM_BOT_TOKEN`, the local API runs the Lambdas' third-party
/// mode (Ed25519 with Telegram's key, no bot token): it does not impose its generated dev bot
/// token (whose bot id would not match), and Telegram-signed initData verifies end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_verifies_telegram_signed_init_data_with_only_a_bot_id() {
    let ten_years = 315_360_000u64; // the vector is from December 2024
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("TELEGRAM_BOT_ID", "7342037359")
            .with("TELEGRAM_INITDATA_MAX_AGE_SEC", ten_years.to_string())
            .with(
                "TELEGRAM_INITDATA_REPLAY_WINDOW_MS",
                (ten_years * 1000).to_string(),
            ),
    )
    .await;
    assert_eq!(app.env.var("TELEGRAM_BOT_TOKEN"), None);
    let resp = post(
        &app.api,
        VERIFY,
        None,
        json!({"init_data": TELEGRAM_SIGNED}),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["telegram_user_id"], 279_058_397);
    assert_eq!(resp.json["init_data"]["user"]["username"], "vdkfrost");
    // Tampered: refused.
    let tampered = TELEGRAM_SIGNED.replace("private", "group");
    post(&app.api, VERIFY, None, json!({"init_data": tampered}))
        .await
        .assert_problem(401, "initdata_signature_invalid");
}
