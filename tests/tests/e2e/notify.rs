//! End-to-end: `POST /api/telegram/notify` through the local API against the fake Bot API, on
//! both adapters: idempotent sends (16 concurrent retries, a restart between), the token buckets
//! across two local-api processes sharing the store, Telegram's refusals (429, blocked, chat not
//! found, 5xx, a hang), reachability through the webhook (`my_chat_member`, `/start`), bad input,
//! logs free of the text, the bot token and the JWT; and a service's link lookup (issue 17).

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{Env, JwtConfig, JwtKey, MapEnv, Platform},
    ids::{TelegramUserId, UserId},
    runtime::Startup,
    store::{Link, LinkSource, Store},
    time::UnixTime,
};
use tglink_tests::{
    app::{TestApp, spawn_app_with},
    fake_telegram::{BotApiFault, ChatRefusal, FakeTelegram},
    fixtures::Backend,
    http_client::{Api, ApiResponse},
    logs,
    process::LocalApiProcess,
};

const NOTIFY: &str = "/api/telegram/notify";
const LINK: &str = "/api/telegram/link";
const WEBHOOK: &str = "/api/telegram/webhook";
const TEXT: &str = "Your export #42 is ready — a private notice";

/// A JWT of `sub` with `roles`, signed with the app's HS256 dev secret.
fn jwt_with(env: &dyn Env, sub: &str, roles: &[&str]) -> String {
    let config = JwtConfig::from_env(env).unwrap();
    let JwtKey::Secret(secret) = &config.key else {
        panic!("the local API signs HS256")
    };
    let mut claims = DevClaims::new(sub, &config, 3600);
    claims.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    sign_hs256(secret, &claims)
}

fn backend_jwt(env: &dyn Env) -> String {
    jwt_with(env, "host-backend", &["tglink:notify", "tglink:service"])
}

async fn start(backend: Backend, extra: MapEnv) -> (TestApp, FakeTelegram) {
    let fake = FakeTelegram::start().await;
    let app = spawn_app_with(backend, extra.with("TELEGRAM_API_BASE", fake.base_url())).await;
    fake.add_bot(
        &app.env.var("TELEGRAM_BOT_TOKEN").unwrap(),
        "tglink_dev_bot",
    );
    (app, fake)
}

async fn link(store: &Store, telegram: i64, user: &str, source: LinkSource) {
    let chat_id = (source == LinkSource::Bot).then_some(telegram);
    store
        .links()
        .link(&Link {
            telegram_user_id: TelegramUserId::new(telegram).unwrap(),
            user_id: UserId::parse(user).unwrap(),
            chat_id,
            username: None,
            source,
            linked_at: UnixTime::now(),
            unreachable: None,
        })
        .await
        .unwrap();
}

async fn notify(api: &Api, jwt: &str, key: Option<&str>, body: &Value) -> ApiResponse {
    let mut request = api
        .request(Method::POST, NOTIFY)
        .bearer_auth(jwt)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    api.send(request).await
}

fn to_user(user: &str) -> Value {
    json!({"user_id": user, "text": TEXT})
}

async fn webhook(app: &TestApp, update: Value) -> ApiResponse {
    let secret = app.env.var("TELEGRAM_WEBHOOK_SECRET").unwrap();
    let request = app
        .api
        .request(Method::POST, WEBHOOK)
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(&update);
    app.api.send(request).await
}

fn member_update(update_id: i64, telegram: i64, status: &str) -> Value {
    json!({"update_id": update_id, "my_chat_member": {
        "chat": {"id": telegram, "type": "private", "first_name": "A"},
        "from": {"id": telegram, "is_bot": false, "first_name": "A"},
        "date": 1,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "B"}},
        "new_chat_member": {"status": status, "user": {"id": 1, "is_bot": true, "first_name": "B"}}
    }})
}

fn start_update(update_id: i64, telegram: i64) -> Value {
    json!({"update_id": update_id, "message": {"message_id": 1, "date": 1,
        "chat": {"id": telegram, "type": "private"},
        "from": {"id": telegram, "is_bot": false, "first_name": "A"},
        "text": "/start"}})
}

fn retry_after(resp: &ApiResponse) -> u64 {
    resp.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {}", resp.text))
}

/// 16 concurrent requests with one key: exactly one `sendMessage`, and every answer is that
/// send's (or `409` while it was in flight); after a restart the key still answers it; the key
/// with another body is `422`. No text, bot token or JWT in the logs.
async fn one_key_sends_once(backend: Backend) {
    let log = logs::capture();
    let (app, fake) = start(backend, MapEnv::new()).await;
    let store = app.store().await;
    link(&store, 7001, "user-once", LinkSource::Bot).await;
    let jwt = backend_jwt(app.env.as_ref());
    let body = to_user("user-once");
    let api = Arc::new(app.api.clone());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (api, jwt, body) = (api.clone(), jwt.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            notify(&api, &jwt, Some("export-42"), &body).await
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        let resp = task.await.unwrap();
        match resp.status {
            200 => sent.push(resp.json),
            409 => {
                resp.assert_problem(409, "notify_in_progress");
                assert!(retry_after(&resp) >= 1);
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
    }
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|s| *s == sent[0]), "{sent:?}");
    assert_eq!(fake.count("sendMessage"), 1);
    assert_eq!(fake.sent()[0]["chat_id"], 7001);
    assert_eq!(fake.sent()[0]["text"], TEXT);
    assert_eq!(sent[0]["chat_id"], 7001);

    let app = app.restart().await;
    let again = notify(&app.api, &jwt, Some("export-42"), &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json, sent[0]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(fake.count("sendMessage"), 1);
    let other_text = json!({"user_id": "user-once", "text": "another text"});
    let reused = notify(&app.api, &jwt, Some("export-42"), &other_text).await;
    reused.assert_problem(422, "idempotency_key_reused");
    // Keys are the caller's: another backend's same key is another send.
    let other = jwt_with(app.env.as_ref(), "other-backend", &["tglink:notify"]);
    let theirs = notify(&app.api, &other, Some("export-42"), &body).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(fake.count("sendMessage"), 2);

    log.assert_free_of(&[
        TEXT,
        &jwt,
        &other,
        &app.env.var("TELEGRAM_BOT_TOKEN").unwrap(),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sends_once_sqlite() {
    one_key_sends_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sends_once_dynamodb() {
    one_key_sends_once(Backend::DynamoDb).await;
}

/// Two local-api processes on one store: a burst to one chat beyond its bucket is answered
/// `429` with `Retry-After` and never sent; then messages to fresh chats, faster than the bot's
/// rate, run into the bot's bucket the same way.
fn buckets_hold_across_processes(backend: Backend) {
    const CHATS: i64 = 40;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let fake = rt.block_on(FakeTelegram::start());
    let env = rt
        .block_on(backend.app_env(dir.path()))
        .with("TELEGRAM_API_BASE", fake.base_url())
        .with("NOTIFY_CHAT_BURST", "2")
        .with("NOTIFY_GLOBAL_RATE", "4");
    // The local environment as both processes will see it (they share its dev secrets).
    let local = local_api::local_env(Arc::new(env.clone())).unwrap();
    fake.add_bot(&local.var("TELEGRAM_BOT_TOKEN").unwrap(), "tglink_dev_bot");
    let jwt = backend_jwt(local.as_ref());
    let store: Store = rt.block_on(async {
        Startup::new(local.clone(), Platform::Local)
            .await
            .unwrap()
            .store()
            .await
            .unwrap()
    });
    for i in 0..CHATS {
        rt.block_on(link(
            &store,
            8000 + i,
            &format!("user-b{i}"),
            LinkSource::Bot,
        ));
    }
    let a = LocalApiProcess::start(&env);
    let b = LocalApiProcess::start(&env);
    let apis = [Api::new(a.base_url.clone()), Api::new(b.base_url.clone())];
    let started = std::time::Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..6 {
        let resp = rt.block_on(notify(
            &apis[i % 2],
            &jwt,
            Some(&format!("burst-{i}")),
            &to_user("user-b0"),
        ));
        match resp.status {
            200 => admitted += 1,
            429 => {
                resp.assert_problem(429, "rate_limited");
                assert!(retry_after(&resp) >= 1);
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
    }
    // The chat's burst is 2 (one more per second that passed).
    let slack = started.elapsed().as_secs() as usize + 1;
    assert!((2..=2 + slack).contains(&admitted), "{admitted} admitted");
    assert!(refused >= 1);
    assert_eq!(fake.count("sendMessage"), admitted);
    // Fresh chats, one after the other: only the bot's bucket (4/s) can refuse them, and it
    // must before the chats run out.
    let mut global_admitted = 0;
    let mut global_refused = false;
    for i in 1..CHATS as usize {
        let resp = rt.block_on(notify(
            &apis[i % 2],
            &jwt,
            Some(&format!("global-{i}")),
            &to_user(&format!("user-b{i}")),
        ));
        match resp.status {
            200 => global_admitted += 1,
            429 => {
                resp.assert_problem(429, "rate_limited");
                assert!(retry_after(&resp) >= 1);
                global_refused = true;
                break;
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
    }
    assert!(global_refused, "the bot's bucket refused nothing");
    assert_eq!(fake.count("sendMessage"), admitted + global_admitted);
    for output in [a.stop(), b.stop()] {
        assert!(!output.contains(TEXT), "the text must not be logged");
        assert!(!output.contains(&jwt), "the JWT must not be logged");
    }
}

#[test]
fn buckets_hold_across_processes_sqlite() {
    buckets_hold_across_processes(Backend::Sqlite);
}

#[test]
fn buckets_hold_across_processes_dynamodb() {
    buckets_hold_across_processes(Backend::DynamoDb);
}

/// Telegram's refusals: its `429` passed through with `retry_after`; a 5xx and a hang are `503`
/// with the key free again (a retry sends once); blocked is `410`, the link unreachable and
/// no further Telegram call; `my_chat_member` `member` (and `/start`) make it reachable again,
/// `kicked` unreachable; `chat not found` is `410` too.
async fn telegram_refusals(backend: Backend) {
    // Buckets out of the way: this is about Telegram's answers.
    let roomy = MapEnv::new()
        .with("NOTIFY_CHAT_RATE", "100")
        .with("NOTIFY_CHAT_BURST", "100");
    let (app, fake) = start(backend, roomy).await;
    let store = app.store().await;
    link(&store, 9001, "user-r", LinkSource::Bot).await;
    let jwt = backend_jwt(app.env.as_ref());
    let body = to_user("user-r");
    let lookup = format!("{LINK}?telegram_user_id=9001");

    fake.flood(Some(7));
    let flooded = notify(&app.api, &jwt, Some("k1"), &body).await;
    flooded.assert_problem(429, "telegram_rate_limited");
    assert_eq!(retry_after(&flooded), 7);
    fake.flood(None);
    let sent = notify(&app.api, &jwt, Some("k1"), &body).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(fake.count("sendMessage"), 2);

    for fault in [BotApiFault::Status(502), BotApiFault::Hang] {
        let key = format!("k-{fault:?}");
        fake.fault(fault);
        let failed = notify(&app.api, &jwt, Some(&key), &body).await;
        failed.assert_problem(503, "telegram_unavailable");
        assert!(retry_after(&failed) >= 1);
        fake.up();
        let before = fake.count("sendMessage");
        let retried = notify(&app.api, &jwt, Some(&key), &body).await;
        assert_eq!(retried.status, 200, "{fault:?}: {}", retried.text);
        assert_ne!(retried.header("idempotent-replayed"), Some("true"));
        let again = notify(&app.api, &jwt, Some(&key), &body).await;
        assert_eq!(again.json, retried.json);
        assert_eq!(
            fake.count("sendMessage"),
            before + 1,
            "{fault:?}: sent once"
        );
    }

    // Blocked: 410, the link unreachable, and no more Telegram calls for it.
    fake.refuse_chat(9001, Some(ChatRefusal::Blocked));
    notify(&app.api, &jwt, Some("k2"), &body)
        .await
        .assert_problem(410, "chat_unreachable");
    let shown = app.api.get(&lookup, Some(&jwt)).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["reachable"], false);
    assert_eq!(shown.json["unreachable_reason"], "bot_blocked");
    assert!(shown.json["unreachable_since"].as_u64().is_some());
    let calls = fake.count("sendMessage");
    notify(&app.api, &jwt, Some("k3"), &body)
        .await
        .assert_problem(410, "chat_unreachable");
    assert_eq!(
        fake.count("sendMessage"),
        calls,
        "no Telegram call when unreachable"
    );

    // The user unblocks the bot: my_chat_member member makes the chat reachable again.
    fake.refuse_chat(9001, None);
    assert_eq!(
        webhook(&app, member_update(500, 9001, "member"))
            .await
            .status,
        200
    );
    let shown = app.api.get(&lookup, Some(&jwt)).await;
    assert_eq!(shown.json["reachable"], true, "{}", shown.text);
    assert!(shown.json.get("unreachable_reason").is_none());
    let back = notify(&app.api, &jwt, Some("k3"), &body).await;
    assert_eq!(back.status, 200, "{}", back.text);

    // kicked (blocked in the app): unreachable without a send; a redelivery changes nothing
    // after /start made it reachable again.
    assert_eq!(
        webhook(&app, member_update(501, 9001, "kicked"))
            .await
            .status,
        200
    );
    notify(&app.api, &jwt, Some("k4"), &body)
        .await
        .assert_problem(410, "chat_unreachable");
    assert_eq!(webhook(&app, start_update(502, 9001)).await.status, 200);
    assert_eq!(
        webhook(&app, member_update(501, 9001, "kicked"))
            .await
            .status,
        200
    );
    let shown = app.api.get(&lookup, Some(&jwt)).await;
    assert_eq!(shown.json["reachable"], true, "{}", shown.text);

    // Chat not found (400): unreachable too.
    fake.refuse_chat(9001, Some(ChatRefusal::NotFound));
    notify(&app.api, &jwt, Some("k5"), &body)
        .await
        .assert_problem(410, "chat_unreachable");
    let shown = app.api.get(&lookup, Some(&jwt)).await;
    assert_eq!(shown.json["unreachable_reason"], "chat_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telegram_refusals_sqlite() {
    telegram_refusals(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telegram_refusals_dynamodb() {
    telegram_refusals(Backend::DynamoDb).await;
}

/// Bad input is refused with the documented codes, before anything is claimed or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused() {
    let (app, fake) = start(Backend::Sqlite, MapEnv::new()).await;
    link(&app.store().await, 9101, "user-bad", LinkSource::Bot).await;
    let jwt = backend_jwt(app.env.as_ref());
    let button = |url: &str| json!({"user_id": "user-bad", "text": "x", "buttons": [[{"text": "Open", "url": url}]]});
    for (body, code) in [
        (json!({"user_id": "user-bad"}), "text_invalid"),
        (json!({"user_id": "user-bad", "text": ""}), "text_invalid"),
        (
            json!({"user_id": "user-bad", "text": "x".repeat(4097)}),
            "text_invalid",
        ),
        (json!({"text": "x"}), "target_invalid"),
        (
            json!({"user_id": "user-bad", "telegram_user_id": 9101, "text": "x"}),
            "target_invalid",
        ),
        (
            json!({"user_id": "user-bad", "text": "x", "parse_mode": "Markdown"}),
            "parse_mode_invalid",
        ),
        (button("http://example.com"), "buttons_invalid"),
        (button("javascript:alert(1)"), "buttons_invalid"),
        (
            json!({"user_id": "user-bad", "text": "x", "colour": "red"}),
            "body_invalid",
        ),
    ] {
        notify(&app.api, &jwt, Some("bad"), &body)
            .await
            .assert_problem(400, code);
    }
    notify(&app.api, &jwt, None, &to_user("user-bad"))
        .await
        .assert_problem(400, "idempotency_key_invalid");
    notify(&app.api, &jwt, Some(&"k".repeat(256)), &to_user("user-bad"))
        .await
        .assert_problem(400, "idempotency_key_invalid");
    notify(
        &app.api,
        &app.jwt("user-bad"),
        Some("k"),
        &to_user("user-bad"),
    )
    .await
    .assert_problem(403, "forbidden");
    notify(&app.api, &jwt, Some("k"), &to_user("nobody"))
        .await
        .assert_problem(404, "link_not_found");
    let anonymous = app.api.post(NOTIFY, None, Some(&to_user("user-bad"))).await;
    anonymous.assert_problem(401, "auth_required");
    assert_eq!(fake.count("sendMessage"), 0);
    // The buttons and options reach Telegram as an inline keyboard.
    let ok = json!({"user_id": "user-bad", "text": "<b>x</b>", "parse_mode": "HTML",
        "protect_content": true, "buttons": [[{"text": "Open", "url": "https://example.com/a"}]]});
    assert_eq!(notify(&app.api, &jwt, Some("ok"), &ok).await.status, 200);
    let sent = &fake.sent()[0];
    assert_eq!(sent["parse_mode"], "HTML");
    assert_eq!(sent["protect_content"], true);
    assert_eq!(
        sent["reply_markup"],
        json!({"inline_keyboard": [[{"text": "Open", "url": "https://example.com/a"}]]})
    );
}

/// Issue 17: a service (`APP_JWT_SERVICE_ROLE`) looks up any user's link by app or Telegram
/// user; an ordinary JWT only its own; a Mini App link gets its `chat_id` once the user starts
/// the bot.
async fn a_service_looks_links_up(backend: Backend) {
    let (app, _fake) = start(backend, MapEnv::new()).await;
    link(&app.store().await, 9201, "user-mini", LinkSource::MiniApp).await;
    let service = jwt_with(app.env.as_ref(), "host-backend", &["tglink:service"]);
    let by_user = app
        .api
        .get(&format!("{LINK}?user_id=user-mini"), Some(&service))
        .await;
    assert_eq!(by_user.status, 200, "{}", by_user.text);
    assert_eq!(by_user.json["telegram_user_id"], 9201);
    assert_eq!(by_user.json["source"], "miniapp");
    assert_eq!(by_user.json["reachable"], true);
    assert!(by_user.json.get("chat_id").is_none(), "{}", by_user.text);
    let by_tg = app
        .api
        .get(&format!("{LINK}?telegram_user_id=9201"), Some(&service))
        .await;
    assert_eq!(by_tg.json, by_user.json);
    // An ordinary JWT: its own link only.
    let own = app.jwt("user-mini");
    assert_eq!(
        app.api
            .get(&format!("{LINK}?user_id=user-mini"), Some(&own))
            .await
            .json,
        by_user.json
    );
    let stranger = app.jwt("user-stranger");
    for query in ["?user_id=user-mini", "?telegram_user_id=9201"] {
        app.api
            .get(&format!("{LINK}{query}"), Some(&stranger))
            .await
            .assert_problem(403, "forbidden");
    }
    // A notify-only JWT is not a service.
    let notifier = jwt_with(app.env.as_ref(), "host-backend", &["tglink:notify"]);
    app.api
        .get(&format!("{LINK}?user_id=user-mini"), Some(&notifier))
        .await
        .assert_problem(403, "forbidden");
    app.api
        .get(&format!("{LINK}?user_id=nobody"), Some(&service))
        .await
        .assert_problem(404, "link_not_found");
    for (query, code) in [
        ("?user_id=a&telegram_user_id=1", "lookup_invalid"),
        ("?user_id=a&user_id=b", "lookup_invalid"),
        ("?telegram_user_id=-5", "telegram_user_id_invalid"),
    ] {
        app.api
            .get(&format!("{LINK}{query}"), Some(&service))
            .await
            .assert_problem(400, code);
    }
    // The user starts the bot: the Mini App link learns its chat.
    assert_eq!(webhook(&app, start_update(700, 9201)).await.status, 200);
    let after = app
        .api
        .get(&format!("{LINK}?user_id=user-mini"), Some(&service))
        .await;
    assert_eq!(after.json["chat_id"], 9201, "{}", after.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_looks_links_up_sqlite() {
    a_service_looks_links_up(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_looks_links_up_dynamodb() {
    a_service_looks_links_up(Backend::DynamoDb).await;
}
