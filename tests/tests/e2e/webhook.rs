//! End-to-end: the Telegram webhook through the local API over HTTP, on both adapters, and
//! across two local-api processes sharing one DynamoDB table.

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    config::{Env, MapEnv, Platform},
    ids::{TelegramUserId, UserId},
    runtime::Startup,
    store::{ConnectTokenRecord, Link, LinkSource, Store},
    time::{Clock, UnixTime},
    token::OneTimeToken,
};
use tglink_tests::{
    app::{TestApp, spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
    process::LocalApiProcess,
};

const CONNECT: &str = "/api/telegram/connect-link";
const WEBHOOK: &str = "/api/telegram/webhook";
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// The start of every connect confirmation (which then names the account).
const SUCCESS: &str = "✅ Successfully connected";

/// The confirmation for an app account named `account`.
fn success(account: &str) -> String {
    format!(
        "✅ Successfully connected to the tglink account {account}.\n\nNot your account? Send /disconnect to undo this."
    )
}
const FAILURE: &str = "❌ Connection link expired or invalid. Please generate a new one from the tglink settings page.\n\nLinks expire after 10 minutes.";

fn secret(app: &TestApp) -> String {
    app.env
        .var("TELEGRAM_WEBHOOK_SECRET")
        .expect("the local API has a webhook secret")
}

fn tg(id: i64) -> TelegramUserId {
    TelegramUserId::new(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A private-chat text message from Telegram user `from`, shaped like a real update (with
/// fields the webhook does not read).
fn message(update_id: i64, from: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1000,
            "date": 1_700_000_000,
            "from": {"id": from, "is_bot": false, "first_name": "Test", "username": format!("user{from}"), "language_code": "en"},
            "chat": {"id": from, "type": "private", "first_name": "Test", "username": format!("user{from}")},
            "text": text,
            "entities": [{"offset": 0, "length": 6, "type": "bot_command"}]
        }
    })
}

async fn deliver(api: &Api, secret: Option<&str>, body: &Value) -> ApiResponse {
    let mut builder = api.request(Method::POST, WEBHOOK).json(body);
    if let Some(secret) = secret {
        builder = builder.header(SECRET_HEADER, secret);
    }
    api.send(builder).await
}

async fn mint(api: &Api, jwt: &str) -> String {
    let resp = api.post(CONNECT, Some(jwt), None).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.json["token"].as_str().unwrap().to_owned()
}

/// The reply is `text`; [`SUCCESS`] stands for any connect confirmation.
#[track_caller]
fn assert_reply(resp: &ApiResponse, chat_id: i64, text: &str) {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let mut json = resp.json.clone();
    if text == SUCCESS
        && json["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(SUCCESS) && t.contains("/disconnect"))
    {
        json["text"] = json!(SUCCESS);
    }
    assert_eq!(
        json,
        json!({"method": "sendMessage", "chat_id": chat_id, "text": text}),
        "{}",
        resp.text
    );
}

#[track_caller]
fn assert_no_reply(resp: &ApiResponse) {
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.text.is_empty(), "expected no reply, got {}", resp.text);
}

async fn connects_exactly_once(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let jwt = app.jwt("user-1");
    let token = mint(&app.api, &jwt).await;
    let store = app.store().await;

    let start = message(1, 111, &format!("/start {token}"));
    let resp = deliver(&app.api, Some(&secret), &start).await;
    // A dev JWT without `name` or `email`: the confirmation names the app user id.
    assert_reply(&resp, 111, &success("user-1"));
    let link = store
        .links()
        .get_by_telegram(tg(111))
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(link.user_id, uid("user-1"));
    assert_eq!(link.chat_id, Some(111));
    assert_eq!(link.username.as_deref(), Some("user111"));
    assert_eq!(link.source, LinkSource::Bot);
    assert_eq!(
        store.links().get_by_user(&uid("user-1")).await.unwrap(),
        Some(link.clone())
    );

    // Telegram redelivers the same update: answered, no effect, no second reply.
    for _ in 0..5 {
        assert_no_reply(&deliver(&app.api, Some(&secret), &start).await);
    }
    assert_eq!(
        store.links().get_by_telegram(tg(111)).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        store.links().get_by_user(&uid("user-1")).await.unwrap(),
        Some(link.clone())
    );

    // A new update with the consumed token, from the same or another Telegram user.
    assert_reply(
        &deliver(
            &app.api,
            Some(&secret),
            &message(2, 111, &format!("/start {token}")),
        )
        .await,
        111,
        FAILURE,
    );
    assert_reply(
        &deliver(
            &app.api,
            Some(&secret),
            &message(3, 222, &format!("/start {token}")),
        )
        .await,
        222,
        FAILURE,
    );
    assert_eq!(store.links().get_by_telegram(tg(222)).await.unwrap(), None);

    // `/start@<bot> <token>` as written in groups and by some clients.
    let token2 = mint(&app.api, &app.jwt("user-2")).await;
    assert_reply(
        &deliver(
            &app.api,
            Some(&secret),
            &message(4, 333, &format!("/start@tglink_dev_bot {token2}")),
        )
        .await,
        333,
        SUCCESS,
    );
    assert_eq!(
        store
            .links()
            .get_by_user(&uid("user-2"))
            .await
            .unwrap()
            .map(|l| l.telegram_user_id),
        Some(tg(333))
    );

    // An expired token.
    let expired = OneTimeToken::mint();
    let now = UnixTime::now();
    store
        .connect_tokens()
        .insert(&ConnectTokenRecord {
            hash: expired.hash(),
            user_id: uid("user-3"),
            created_at: UnixTime(now.secs() - 700),
            expires_at: UnixTime(now.secs() - 100),
            attempt: tglink_shared::store::connect_tokens::new_attempt(),
            account: None,
        })
        .await
        .unwrap();
    assert_reply(
        &deliver(
            &app.api,
            Some(&secret),
            &message(5, 444, &format!("/start {}", expired.expose())),
        )
        .await,
        444,
        FAILURE,
    );
    // Unknown and malformed tokens.
    let unknown = OneTimeToken::mint();
    for (id, text) in [
        (6, format!("/start {}", unknown.expose())),
        (7, "/start not-a-token".to_owned()),
        (8, format!("/start {token2} extra")),
    ] {
        assert_reply(
            &deliver(&app.api, Some(&secret), &message(id, 444, &text)).await,
            444,
            FAILURE,
        );
    }
    assert_eq!(store.links().get_by_telegram(tg(444)).await.unwrap(), None);
    assert_eq!(
        store.links().get_by_user(&uid("user-3")).await.unwrap(),
        None
    );

    log.assert_free_of(&[&token, &token2, expired.expose(), unknown.expose(), &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_exactly_once_sqlite() {
    connects_exactly_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_exactly_once_dynamodb() {
    connects_exactly_once(Backend::DynamoDb).await;
}

async fn sixteen_concurrent_updates_one_link(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let token = mint(&app.api, &app.jwt("user-c")).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let api = app.api.clone();
        let secret = secret.clone();
        let update = message(100 + i, 5000 + i, &format!("/start {token}"));
        tasks.push(tokio::spawn(async move {
            (5000 + i, deliver(&api, Some(&secret), &update).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (from, resp) = task.await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text);
        match resp.json["text"].as_str() {
            Some(text) if text.starts_with(SUCCESS) => winners.push(from),
            Some(FAILURE) => {}
            _ => panic!("unexpected reply {}", resp.text),
        }
        assert_eq!(resp.json["chat_id"], from);
    }
    assert_eq!(winners.len(), 1, "exactly one success reply");
    let store = app.store().await;
    let link = store
        .links()
        .get_by_user(&uid("user-c"))
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(link.telegram_user_id, tg(winners[0]));
    for i in 0..16 {
        let found = store.links().get_by_telegram(tg(5000 + i)).await.unwrap();
        assert_eq!(found.is_some(), 5000 + i == winners[0]);
    }
    log.assert_free_of(&[&token, &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_updates_one_link_sqlite() {
    sixteen_concurrent_updates_one_link(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_updates_one_link_dynamodb() {
    sixteen_concurrent_updates_one_link(Backend::DynamoDb).await;
}

async fn status_and_disconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let api = &app.api;
    let store = app.store().await;
    let not_linked = "This Telegram account is not connected to tglink. Generate a connect link from the tglink settings page.";

    assert_reply(
        &deliver(api, Some(&secret), &message(1, 700, "/status")).await,
        700,
        not_linked,
    );
    let token = mint(api, &app.jwt("user-s")).await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(2, 700, &format!("/start {token}")),
        )
        .await,
        700,
        SUCCESS,
    );
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(3, 700, "/status@tglink_dev_bot"),
        )
        .await,
        700,
        "🔗 This Telegram account is connected to the tglink account user-s.",
    );

    let disconnect = message(4, 700, "/disconnect");
    assert_reply(
        &deliver(api, Some(&secret), &disconnect).await,
        700,
        "✅ Disconnected. This Telegram account is no longer connected to tglink.",
    );
    assert_eq!(store.links().get_by_telegram(tg(700)).await.unwrap(), None);
    assert_eq!(
        store.links().get_by_user(&uid("user-s")).await.unwrap(),
        None
    );

    // Linked again through the store, then the old /disconnect update is redelivered: it was
    // completed, so it must not remove the new link.
    store
        .links()
        .link(&Link {
            telegram_user_id: tg(700),
            user_id: uid("user-t"),
            chat_id: Some(700),
            username: None,
            source: LinkSource::MiniApp,
            linked_at: UnixTime::now(),
            unreachable: None,
        })
        .await
        .unwrap();
    assert_no_reply(&deliver(api, Some(&secret), &disconnect).await);
    assert!(
        store
            .links()
            .get_by_user(&uid("user-t"))
            .await
            .unwrap()
            .is_some()
    );

    // A new /disconnect does remove it; another one finds nothing.
    assert_reply(
        &deliver(api, Some(&secret), &message(5, 700, "/disconnect")).await,
        700,
        "✅ Disconnected. This Telegram account is no longer connected to tglink.",
    );
    assert_reply(
        &deliver(api, Some(&secret), &message(6, 700, "/disconnect")).await,
        700,
        not_linked,
    );
    assert_reply(
        &deliver(api, Some(&secret), &message(7, 700, "/status")).await,
        700,
        not_linked,
    );

    // `/start` alone explains what to do.
    assert_reply(
        &deliver(api, Some(&secret), &message(8, 700, "/start")).await,
        700,
        "👋 To connect this Telegram account, open the connect link from the tglink settings page.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_disconnect_sqlite() {
    status_and_disconnect(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_disconnect_dynamodb() {
    status_and_disconnect(Backend::DynamoDb).await;
}

async fn linked_elsewhere_is_refused_and_the_token_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let api = &app.api;
    let store = app.store().await;
    let token_a = mint(api, &app.jwt("user-a")).await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(1, 800, &format!("/start {token_a}")),
        )
        .await,
        800,
        SUCCESS,
    );
    // Telegram user 800 is linked to user-a; a link of user-b opened by 800 is refused.
    let token_b = mint(api, &app.jwt("user-b")).await;
    let start_b = message(2, 800, &format!("/start {token_b}"));
    assert_reply(
        &deliver(api, Some(&secret), &start_b).await,
        800,
        "⚠️ This Telegram account is already connected to another tglink account. Send /disconnect first, then open the link again.",
    );
    assert_eq!(
        store.links().get_by_user(&uid("user-b")).await.unwrap(),
        None
    );
    // Redelivered: still refused (nothing was claimed).
    assert_reply(
        &deliver(api, Some(&secret), &start_b).await,
        800,
        "⚠️ This Telegram account is already connected to another tglink account. Send /disconnect first, then open the link again.",
    );

    // After /disconnect, the same link (still unconsumed) works.
    deliver(api, Some(&secret), &message(3, 800, "/disconnect")).await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(4, 800, &format!("/start {token_b}")),
        )
        .await,
        800,
        SUCCESS,
    );

    // user-b is now linked to 800: a link of user-b opened by Telegram user 900 is refused.
    let token_b2 = mint(api, &app.jwt("user-b")).await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(5, 900, &format!("/start {token_b2}")),
        )
        .await,
        900,
        "⚠️ Your tglink account is already connected to another Telegram account. Disconnect it in the tglink settings page first, then open the link again.",
    );
    assert_eq!(store.links().get_by_telegram(tg(900)).await.unwrap(), None);
    assert_eq!(
        store
            .links()
            .get_by_user(&uid("user-b"))
            .await
            .unwrap()
            .map(|l| l.telegram_user_id),
        Some(tg(800))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_elsewhere_is_refused_and_the_token_kept_sqlite() {
    linked_elsewhere_is_refused_and_the_token_kept(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_elsewhere_is_refused_and_the_token_kept_dynamodb() {
    linked_elsewhere_is_refused_and_the_token_kept(Backend::DynamoDb).await;
}

async fn secret_and_body_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let api = &app.api;
    let token = mint(api, &app.jwt("user-x")).await;
    let start = message(1, 1000, &format!("/start {token}"));

    // Missing or wrong secret: 401 with no detail, and nothing consumed.
    let wrong_case = secret.to_ascii_uppercase();
    let longer = format!("{secret}x");
    for presented in [
        None,
        Some(""),
        Some("wrong"),
        Some(&secret[1..]),
        Some(longer.as_str()),
        Some(wrong_case.as_str()),
    ] {
        if presented == Some(secret.as_str()) {
            continue;
        }
        let resp = deliver(api, presented, &start).await;
        resp.assert_problem(401, "webhook_unauthorized");
        assert!(resp.json.get("detail").is_none(), "{}", resp.text);
        assert!(resp.header("www-authenticate").is_none());
    }
    // Other methods.
    let resp = api
        .send(
            api.request(Method::GET, WEBHOOK)
                .header(SECRET_HEADER, &secret),
        )
        .await;
    resp.assert_problem(405, "method_not_allowed");

    // Malformed bodies with the right secret: 4xx problems, never 5xx.
    let raw = |body: Vec<u8>, content_type: &'static str| {
        api.request(Method::POST, WEBHOOK)
            .header(SECRET_HEADER, &secret)
            .header("content-type", content_type)
            .body(body)
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (body, code) in [
        (Vec::new(), "body_missing"),
        (b"{".to_vec(), "body_invalid"),
        (b"not json".to_vec(), "body_invalid"),
        (b"[]".to_vec(), "body_invalid"),
        (b"null".to_vec(), "body_invalid"),
        (b"{}".to_vec(), "body_invalid"),
        (br#"{"update_id": "1"}"#.to_vec(), "body_invalid"),
        (br#"{"update_id": 1.5}"#.to_vec(), "body_invalid"),
        (br#"{"update_id": 1, "message": {"message_id": 1}}"#.to_vec(), "body_invalid"),
        (br#"{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "text": 5}}"#.to_vec(), "body_invalid"),
        (vec![0xff, 0xfe, b'{', 0x80], "body_invalid"),
        (deep.into_bytes(), "body_invalid"),
    ] {
        let resp = api.send(raw(body, "application/json")).await;
        resp.assert_problem(400, code);
    }
    let resp = api.send(raw(b"{}".to_vec(), "text/plain")).await;
    resp.assert_problem(415, "unsupported_media_type");
    let big = format!(r#"{{"update_id": 1, "pad": "{}"}}"#, "x".repeat(70_000));
    let resp = api.send(raw(big.into_bytes(), "application/json")).await;
    resp.assert_problem(413, "payload_too_large");

    // Updates the bot does not handle: 200, no reply, no effect.
    let ignored = [
        json!({"update_id": 10, "edited_message": {"message_id": 1, "date": 0, "chat": {"id": 1000, "type": "private"}, "text": format!("/start {token}")}}),
        json!({"update_id": 11, "callback_query": {"id": "q", "from": {"id": 1000, "is_bot": false, "first_name": "T"}, "data": "x"}}),
        json!({"update_id": 12, "my_chat_member": {"chat": {"id": 1000, "type": "private"}}, "future_field": [1, 2]}),
        json!({"update_id": 13, "message": {"message_id": 1, "date": 0, "chat": {"id": 1000, "type": "private"}, "from": {"id": 1000, "is_bot": false, "first_name": "T"}, "photo": [{"file_id": "f"}]}}),
        // From a bot.
        json!({"update_id": 15, "message": {"message_id": 1, "date": 0, "chat": {"id": 1001, "type": "private"}, "from": {"id": 1001, "is_bot": true, "first_name": "B"}, "text": format!("/start {token}")}}),
        // Addressed to another bot.
        message(16, 1000, &format!("/start@some_other_bot {token}")),
        message(17, 1000, "hello"),
        message(18, 1000, "/help"),
        // Sent on behalf of a chat (no `from`).
        json!({"update_id": 19, "message": {"message_id": 1, "date": 0, "chat": {"id": 1000, "type": "private"}, "text": format!("/start {token}")}}),
    ];
    for update in &ignored {
        assert_no_reply(&deliver(api, Some(&secret), update).await);
    }
    // The token survived all of the above.
    assert_reply(&deliver(api, Some(&secret), &start).await, 1000, SUCCESS);
}

/// The confirmation names the account that minted the token (its JWT's `name`, else its
/// masked `email`) and offers /disconnect; a token posted in a group, supergroup or channel is
/// burned: no reply there, and it no longer links anyone.
async fn the_confirmation_names_the_account_and_exposed_tokens_burn(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let secret = secret(&app);
    let api = &app.api;
    let sign = |user: &str, name: Option<&str>, email: Option<&str>| {
        let config = tglink_shared::config::JwtConfig::from_env(app.env.as_ref()).unwrap();
        let tglink_shared::config::JwtKey::Secret(key) = &config.key else {
            panic!("the local API signs HS256")
        };
        let mut claims = tglink_shared::auth::DevClaims::new(user, &config, 600);
        claims.name = name.map(str::to_owned);
        claims.email = email.map(str::to_owned);
        tglink_shared::auth::sign_hs256(key, &claims)
    };
    let named = mint(
        api,
        &sign(
            "user-n1",
            Some("Mallory\u{202E} Corp\n"),
            Some("m@evil.example"),
        ),
    )
    .await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(1, 6001, &format!("/start {named}")),
        )
        .await,
        6001,
        &success("Mallory Corp"),
    );
    let mailed = mint(api, &sign("user-n2", None, Some("ann.lee@example.com"))).await;
    assert_reply(
        &deliver(
            api,
            Some(&secret),
            &message(2, 6002, &format!("/start {mailed}")),
        )
        .await,
        6002,
        &success("a***@example.com"),
    );

    let store = app.store().await;
    let group = |update_id: i64, kind: &str, text: String| {
        json!({"update_id": update_id, "message": {"message_id": 1, "date": 0,
            "chat": {"id": -100123, "type": kind, "title": "g"},
            "from": {"id": 6003, "is_bot": false, "first_name": "T"}, "text": text}})
    };
    let in_group = mint(api, &sign("user-g1", None, None)).await;
    let in_supergroup = mint(api, &sign("user-g2", None, None)).await;
    let as_link = mint(api, &sign("user-g3", None, None)).await;
    let in_channel = mint(api, &sign("user-g4", None, None)).await;
    let exposed = [
        group(10, "group", format!("/start {in_group}")),
        group(
            11,
            "supergroup",
            format!("/start@tglink_dev_bot {in_supergroup}"),
        ),
        group(
            12,
            "group",
            format!("join me: https://t.me/tglink_dev_bot?start={as_link} !"),
        ),
        json!({"update_id": 13, "channel_post": {"message_id": 1, "date": 0,
            "chat": {"id": -100777, "type": "channel", "title": "c"},
            "text": format!("/start {in_channel}")}}),
    ];
    for update in &exposed {
        // No reply in the group, also when Telegram redelivers.
        assert_no_reply(&deliver(api, Some(&secret), update).await);
        assert_no_reply(&deliver(api, Some(&secret), update).await);
    }
    for (i, token) in [&in_group, &in_supergroup, &as_link, &in_channel]
        .into_iter()
        .enumerate()
    {
        let from = 6100 + i as i64;
        assert_reply(
            &deliver(
                api,
                Some(&secret),
                &message(20 + i as i64, from, &format!("/start {token}")),
            )
            .await,
            from,
            FAILURE,
        );
        assert_eq!(store.links().get_by_telegram(tg(from)).await.unwrap(), None);
    }
    log.assert_free_of(&[
        &named,
        &mailed,
        &in_group,
        &in_supergroup,
        &as_link,
        &in_channel,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_names_the_account_and_exposed_tokens_burn_sqlite() {
    the_confirmation_names_the_account_and_exposed_tokens_burn(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_names_the_account_and_exposed_tokens_burn_dynamodb() {
    the_confirmation_names_the_account_and_exposed_tokens_burn(Backend::DynamoDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_body_are_checked_sqlite() {
    secret_and_body_are_checked(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_body_are_checked_dynamodb() {
    secret_and_body_are_checked(Backend::DynamoDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_follow_app_name_and_link_lifetime() {
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("APP_NAME", "IDL Sentinel")
            .with("CONNECT_TOKEN_TTL_SEC", "300"),
    )
    .await;
    let resp = deliver(&app.api, Some(&secret(&app)), &message(1, 1, "/start nope")).await;
    assert_reply(
        &resp,
        1,
        "❌ Connection link expired or invalid. Please generate a new one from the IDL Sentinel settings page.\n\nLinks expire after 5 minutes.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503_and_telegram_retries() {
    let app = spawn_app_with(
        Backend::Sqlite,
        tglink_tests::fixtures::unreachable_dynamodb(),
    )
    .await;
    let secret = secret(&app);
    let token = OneTimeToken::mint();
    for text in [
        format!("/start {}", token.expose()),
        "/status".into(),
        "/disconnect".into(),
    ] {
        let resp = deliver(&app.api, Some(&secret), &message(1, 1, &text)).await;
        resp.assert_problem(503, "service_unavailable");
        assert_eq!(resp.header("retry-after"), Some("2"));
    }
}

/// The seed's failure: a link minted on one instance, `/start` served by another. Two
/// local-api processes share one DynamoDB table (on moto).
#[test]
fn a_link_minted_on_one_instance_is_consumed_on_another() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let env = rt.block_on(Backend::DynamoDb.app_env(dir.path()));
    let minting = LocalApiProcess::start(&env);
    let answering = LocalApiProcess::start(&env);
    assert_ne!(minting.base_url, answering.base_url);
    let jwt = minting
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("export TGLINK_JWT="))
        .expect("the banner prints a dev JWT")
        .to_owned();
    // Both processes generated nothing new: they share the dev secrets of the data directory.
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dev-secrets.json")).unwrap())
            .unwrap();
    let secret = secrets["TELEGRAM_WEBHOOK_SECRET"]
        .as_str()
        .unwrap()
        .to_owned();

    let a = Api::new(minting.base_url.clone());
    let b = Api::new(answering.base_url.clone());
    let token = rt.block_on(mint(&a, &jwt));
    let start = message(42, 4242, &format!("/start {token}"));
    assert_reply(
        &rt.block_on(deliver(&b, Some(&secret), &start)),
        4242,
        SUCCESS,
    );
    // Redelivered to the other instance: no effect, no reply.
    assert_no_reply(&rt.block_on(deliver(&a, Some(&secret), &start)));
    // Another update with the same token, on either instance: refused.
    for (api, id) in [(&a, 43), (&b, 44)] {
        assert_reply(
            &rt.block_on(deliver(
                api,
                Some(&secret),
                &message(id, 4242, &format!("/start {token}")),
            )),
            4242,
            FAILURE,
        );
    }

    let store: Store = rt.block_on(async {
        Startup::new(std::sync::Arc::new(env.clone()), Platform::Local)
            .await
            .unwrap()
            .store()
            .await
            .unwrap()
    });
    let link = rt
        .block_on(store.links().get_by_user(&uid("dev-user")))
        .unwrap()
        .expect("linked");
    assert_eq!(link.telegram_user_id, tg(4242));

    for output in [minting.stop(), answering.stop()] {
        assert!(output.contains("\"outcome\""), "the processes log outcomes");
        assert!(!output.contains(&token), "the token must not be logged");
        assert!(
            !output.contains(&secret),
            "the webhook secret must not be logged"
        );
    }
}

/// The design's budget: `/start` costs at most 2 DynamoDB calls and no outbound call (the
/// handler has no Telegram client at all: the reply is the HTTP response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_costs_two_dynamodb_calls() {
    use std::sync::Arc;

    use tglink_shared::store::dynamodb::DynamoStore;
    use webhook::config::{Texts, WebhookSecret};

    let moto = tglink_tests::fixtures::emulator();
    let table = moto.new_table().await;
    let calls = tglink_tests::aws_calls::AwsCalls::default();
    let sdk = calls.sdk_config(&moto.sdk().await);
    let counted = Store::DynamoDb(Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table.table(),
    )));
    let deps = webhook::Webhook {
        secret: WebhookSecret::parse("budget-secret").unwrap(),
        bot_username: "tglink_dev_bot".into(),
        texts: Texts::new("tglink", 600),
        flow: counted.connect_flow(),
        tokens: counted.connect_tokens(),
        links: counted.links(),
        claims: counted.claims(),
        forwarding: None,
        clock: Clock::system(),
    };
    let token = OneTimeToken::mint();
    let now = UnixTime::now();
    Store::DynamoDb(Arc::new(table))
        .connect_tokens()
        .insert(&ConnectTokenRecord {
            hash: token.hash(),
            user_id: uid("user-budget"),
            created_at: now,
            expires_at: now.plus_secs(600),
            attempt: tglink_shared::store::connect_tokens::new_attempt(),
            account: None,
        })
        .await
        .unwrap();
    let request = |update: &Value| {
        http::Request::builder()
            .method("POST")
            .uri(WEBHOOK)
            .header(SECRET_HEADER, "budget-secret")
            .header("content-type", "application/json")
            .body(lambda_http::Body::Text(update.to_string()))
            .unwrap()
    };
    let start = message(1, 31337, &format!("/start {}", token.expose()));

    let resp = webhook::handle(&deps, request(&start)).await;
    assert_eq!(resp.status(), 200);
    let lambda_http::Body::Text(body) = resp.body() else {
        panic!("a JSON reply")
    };
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"method": "sendMessage", "chat_id": 31337, "text": success("user-budget")})
    );
    assert_eq!(
        calls.take().operations("DynamoDB"),
        ["TransactGetItems", "TransactWriteItems"]
    );

    // A redelivery and a refused token each cost one read.
    let resp = webhook::handle(&deps, request(&start)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(calls.take().operations("DynamoDB"), ["TransactGetItems"]);
    let again = message(2, 31337, &format!("/start {}", token.expose()));
    webhook::handle(&deps, request(&again)).await;
    assert_eq!(calls.take().operations("DynamoDB"), ["TransactGetItems"]);
    // No secret, ignored updates and malformed tokens cost nothing.
    let mut unauthorized = request(&start);
    unauthorized.headers_mut().remove(SECRET_HEADER);
    assert_eq!(webhook::handle(&deps, unauthorized).await.status(), 401);
    webhook::handle(&deps, request(&message(3, 31337, "hello"))).await;
    webhook::handle(&deps, request(&message(4, 31337, "/start nope"))).await;
    assert_eq!(calls.take().operations("DynamoDB"), Vec::<&str>::new());
}

/// What the host's bot received: the secret header and the raw body of each update.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// A host's own bot on loopback: records each forwarded update (its raw body and the secret
/// header) and answers with what `mode` says.
#[derive(Clone, Default)]
struct HostBot {
    seen: Received,
    /// 0: a Bot API method call; 1: an empty 200; 2: a 500.
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

const HOST_REPLY: &str = r#"{"method":"sendMessage","chat_id":777,"text":"from the host's bot"}"#;
const FORWARD_SECRET: &str = "host-forward-secret-0123456789";

impl HostBot {
    async fn start(&self) -> tglink_tests::loopback::LoopbackServer {
        use axum::{body::Bytes, http::HeaderMap, response::IntoResponse};
        let bot = self.clone();
        let router = axum::Router::new().route(
            "/bot",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let bot = bot.clone();
                async move {
                    let secret = headers
                        .get("x-tglink-forward-secret")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    bot.seen.lock().unwrap().push((secret, body.to_vec()));
                    match bot.mode.load(std::sync::atomic::Ordering::SeqCst) {
                        0 => (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            HOST_REPLY,
                        )
                            .into_response(),
                        1 => axum::http::StatusCode::OK.into_response(),
                        _ => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        );
        tglink_tests::loopback::LoopbackServer::start(router, "the host's bot").await
    }

    fn set_mode(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Delivers `raw` exactly as given (formatting and field order included).
async fn deliver_raw(api: &Api, secret: &str, raw: &str) -> ApiResponse {
    let builder = api
        .request(Method::POST, WEBHOOK)
        .header(SECRET_HEADER, secret)
        .header("content-type", "application/json")
        .body(raw.to_owned());
    api.send(builder).await
}

/// Update forwarding (`TGLINK_FORWARD_URL`): what tglink does not handle reaches the host's bot
/// untouched with the secret, the host's method call is the webhook's answer, a redelivery of a
/// forwarded update is not forwarded again, a failing host makes Telegram redeliver (502) and
/// the redelivery is then forwarded once; tglink's own commands are not forwarded; nothing of
/// the secret or the messages is logged.
async fn unhandled_updates_are_forwarded_once(backend: Backend) {
    let log = logs::capture();
    let host = HostBot::default();
    let server = host.start().await;
    let app = spawn_app_with(
        backend,
        MapEnv::new()
            .with("TGLINK_FORWARD_URL", format!("{}/bot", server.url()))
            .with("TGLINK_FORWARD_SECRET", FORWARD_SECRET),
    )
    .await;
    let secret = secret(&app);
    let base = 9_500_000 + backend as i64 * 1000;
    // Odd formatting and field order: forwarded byte for byte.
    let raw = format!(
        r#"{{ "message": {{"text": "a question for the host bot", "chat": {{"type": "private", "id": 555}}, "from": {{"is_bot": false, "id": 555, "first_name": "P"}}, "message_id": 9, "date": 1}},   "update_id": {base} }}"#
    );
    let resp = deliver_raw(&app.api, &secret, &raw).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.text, HOST_REPLY,
        "the host's method call is the answer"
    );
    {
        let seen = host.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.as_deref(), Some(FORWARD_SECRET));
        assert_eq!(seen[0].1, raw.as_bytes(), "forwarded untouched");
    }
    // Redelivered (Telegram did not get the answer): not forwarded again.
    assert_no_reply(&deliver_raw(&app.api, &secret, &raw).await);
    assert_eq!(host.count(), 1);
    // Other kinds of update (a callback query, a group message) are forwarded too.
    let callback = json!({"update_id": base + 1, "callback_query": {"id": "q", "from": {"id": 555, "is_bot": false, "first_name": "P"}, "data": "x"}});
    host.set_mode(1);
    assert_no_reply(&deliver(&app.api, Some(&secret), &callback).await);
    assert_eq!(host.count(), 2);
    // tglink's own commands are not forwarded.
    let status = message(base + 2, 555, "/status");
    assert_reply(
        &deliver(&app.api, Some(&secret), &status).await,
        555,
        "This Telegram account is not connected to tglink. Generate a connect link from the tglink settings page.",
    );
    assert_eq!(host.count(), 2);

    // The host fails: 502 (Telegram redelivers), then the redelivery is forwarded once.
    host.set_mode(2);
    let update = message(base + 3, 555, "hello host");
    let resp = deliver(&app.api, Some(&secret), &update).await;
    resp.assert_problem(502, "forward_failed");
    assert_eq!(host.count(), 3);
    host.set_mode(0);
    let resp = deliver(&app.api, Some(&secret), &update).await;
    assert_eq!(resp.text, HOST_REPLY);
    assert_eq!(host.count(), 4);
    assert_no_reply(&deliver(&app.api, Some(&secret), &update).await);
    assert_eq!(host.count(), 4);

    let logged = log.contents();
    for secret_text in [FORWARD_SECRET, "a question for the host bot", "hello host"] {
        assert!(!logged.contains(secret_text), "{secret_text} logged");
    }
    assert!(
        logged.contains("\"outcome\":\"forwarded\""),
        "forwarding is logged"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhandled_updates_are_forwarded_once_sqlite() {
    unhandled_updates_are_forwarded_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhandled_updates_are_forwarded_once_dynamodb() {
    unhandled_updates_are_forwarded_once(Backend::DynamoDb).await;
}

/// A host that cannot be reached at all (a closed port): 502 and nothing recorded, so the
/// redelivery is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_is_a_502_and_the_update_stays_unclaimed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/bot", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("TGLINK_FORWARD_URL", url)
            .with("TGLINK_FORWARD_SECRET", FORWARD_SECRET),
    )
    .await;
    let secret = secret(&app);
    let update = message(9_600_001, 556, "anyone there?");
    for _ in 0..2 {
        // Released each time: the second attempt is not refused as in progress or duplicate.
        deliver(&app.api, Some(&secret), &update)
            .await
            .assert_problem(502, "forward_failed");
    }
}
