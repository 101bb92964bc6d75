//! End-to-end: connect-link through the local API over HTTP, on both adapters.

use http::Method;
use tglink_shared::{
    config::{Env, MapEnv},
    ids::UserId,
    store::{Store, sqlite::SqliteStore},
    time::UnixTime,
    token::OneTimeToken,
};
use tglink_tests::{
    app::{spawn_app, spawn_app_with},
    fixtures::Backend,
    http_client::Api,
    logs,
    process::LocalApiProcess,
};

const PATH: &str = "/api/telegram/connect-link";

async fn consume(store: &Store, token: &str) -> Option<UserId> {
    let token = OneTimeToken::parse(token).expect("a well-formed token");
    tglink_tests::conformance::connect_tokens::consume(store, &token.hash(), UnixTime::now()).await
}

async fn mints_a_one_time_link(backend: Backend) {
    let log = logs::capture();
    let app = spawn_app(backend).await;
    let jwt = app.jwt("user-1");
    let before = UnixTime::now().secs();
    let resp = app.api.post(PATH, Some(&jwt), None).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let token = resp.json["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert!(
        token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(
        resp.json["url"],
        format!("https://t.me/tglink_dev_bot?start={token}")
    );
    let expires_at = resp.json["expires_at"].as_u64().unwrap();
    assert!((before + 600..=UnixTime::now().secs() + 600).contains(&expires_at));

    // Two links for the same user are distinct; each is consumable exactly once, through a
    // client built independently of the server.
    let second = app.api.post(PATH, Some(&jwt), None).await;
    let token2 = second.json["token"].as_str().unwrap().to_owned();
    assert_ne!(token, token2);
    let store = app.store().await;
    assert_eq!(
        consume(&store, &token).await,
        Some(UserId::parse("user-1").unwrap())
    );
    assert_eq!(consume(&store, &token).await, None);
    assert_eq!(
        consume(&store, &token2).await,
        Some(UserId::parse("user-1").unwrap())
    );

    if backend == Backend::Sqlite {
        let path = app.env.var("TGLINK_SQLITE_PATH").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let raw = String::from_utf8_lossy(&bytes);
        assert!(!raw.contains(&token), "the raw token must not be stored");
        let hash = OneTimeToken::parse(&token).unwrap().hash();
        assert!(raw.contains(hash.as_str()), "the token's hash is the key");
    }
    log.assert_free_of(&[&token, &token2, &jwt]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mints_a_one_time_link_sqlite() {
    mints_a_one_time_link(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mints_a_one_time_link_dynamodb() {
    mints_a_one_time_link(Backend::DynamoDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_comes_from_configuration() {
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new().with("CONNECT_TOKEN_TTL_SEC", "60"),
    )
    .await;
    let now = UnixTime::now().secs();
    let resp = app.api.post(PATH, Some(&app.jwt("u")), None).await;
    let expires_at = resp.json["expires_at"].as_u64().unwrap();
    assert!((now + 60..=now + 61).contains(&expires_at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_a_valid_app_jwt() {
    let app = spawn_app(Backend::Sqlite).await;
    app.api
        .post(PATH, None, None)
        .await
        .assert_problem(401, "auth_required");
    app.api
        .post(PATH, Some("not-a-jwt"), None)
        .await
        .assert_problem(401, "token_invalid");
    // Signed with another secret.
    let other = spawn_app(Backend::Sqlite).await;
    let foreign = other.jwt("user-1");
    let resp = app.api.post(PATH, Some(&foreign), None).await;
    resp.assert_problem(401, "token_invalid");
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    let resp = app
        .api
        .call(Method::GET, PATH, Some(&app.jwt("u")), None)
        .await;
    resp.assert_problem(405, "method_not_allowed");
    assert_eq!(
        resp.header("allow"),
        Some("POST"),
        "405 names the allowed methods"
    );
    app.api
        .get("/api/nowhere", None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503_and_nothing_panics() {
    // A closed port: bind, take the port, close.
    let app = spawn_app_with(
        Backend::Sqlite,
        tglink_tests::fixtures::unreachable_dynamodb(),
    )
    .await;
    for _ in 0..2 {
        let resp = app.api.post(PATH, Some(&app.jwt("user-1")), None).await;
        resp.assert_problem(503, "service_unavailable");
        assert_eq!(resp.header("retry-after"), Some("2"));
    }
}

#[test]
fn restart_of_the_process_keeps_tokens() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("tglink.db");
    let env = MapEnv::new().with("TGLINK_SQLITE_PATH", db.display().to_string());
    let rt = tokio::runtime::Runtime::new().unwrap();

    let first = LocalApiProcess::start(&env);
    let banner = first.output();
    let jwt = banner
        .lines()
        .find_map(|l| l.strip_prefix("export TGLINK_JWT="))
        .expect("the banner prints a dev JWT")
        .to_owned();
    assert!(banner.contains("curl -s -X POST"), "{banner}");
    let api = Api::new(first.base_url.clone());
    let resp = rt.block_on(api.post(PATH, Some(&jwt), None));
    assert_eq!(resp.status, 201, "{}", resp.text);
    let token = resp.json["token"].as_str().unwrap().to_owned();
    let output = first.stop();
    assert!(!output.contains(&token), "the token must not be logged");
    // The local API's log lines carry their time (Lambda's do not: CloudWatch stamps them).
    let logged: Vec<&str> = output.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!logged.is_empty(), "{output}");
    for line in logged {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            line["timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("20")),
            "{line}"
        );
    }

    // A new process on the same .data/: the dev secrets and the token survived.
    let second = LocalApiProcess::start(&env);
    let api = Api::new(second.base_url.clone());
    let resp = rt.block_on(api.post(PATH, Some(&jwt), None));
    assert_eq!(
        resp.status, 201,
        "a JWT from before the restart still verifies"
    );
    let store = Store::Sqlite(std::sync::Arc::new(SqliteStore::open(&db).unwrap()));
    assert_eq!(
        rt.block_on(consume(&store, &token)),
        Some(UserId::parse("dev-user").unwrap())
    );
    assert_eq!(rt.block_on(consume(&store, &token)), None);
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_restart_keeps_tokens_on_both_adapters() {
    for backend in Backend::ALL {
        let app = spawn_app(backend).await;
        let jwt = app.jwt("user-r");
        let token = app.api.post(PATH, Some(&jwt), None).await.json["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let app = app.restart().await;
        let store = app.store().await;
        assert_eq!(
            consume(&store, &token).await,
            Some(UserId::parse("user-r").unwrap())
        );
        assert_eq!(consume(&store, &token).await, None);
    }
}

/// `make run` prints JWTs for a user, a second user and an admin; `local-api dev-jwt <sub>
/// [role…]` (`make dev-jwt`) signs others with the same local secret. The admin one passes the
/// admin routes, the others do not.
#[test]
fn the_banner_and_dev_jwt_give_user_and_admin_tokens() {
    let dir = tempfile::TempDir::new().unwrap();
    let env = MapEnv::new().with(
        "TGLINK_SQLITE_PATH",
        dir.path().join("tglink.db").display().to_string(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = LocalApiProcess::start(&env);
    let banner = app.output();
    let export = |name: &str| {
        banner
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("the banner exports {name}: {banner}"))
            .to_owned()
    };
    let (user, second, admin) = (
        export("TGLINK_JWT"),
        export("TGLINK_JWT2"),
        export("TGLINK_ADMIN_JWT"),
    );
    let minted = |args: &[&str]| {
        let out = std::process::Command::new(tglink_tests::process::local_api_binary())
            .arg("dev-jwt")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TGLINK_SQLITE_PATH", dir.path().join("tglink.db"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let alice_admin = minted(&["alice", "tglink:admin"]);
    let bob = minted(&["bob"]);
    let api = Api::new(app.base_url.clone());
    let block = |jwt: String, id: u64| {
        let api = &api;
        async move {
            api.post(
                &format!("/api/admin/telegram/links/{id}/block"),
                Some(&jwt),
                None,
            )
            .await
        }
    };
    for (jwt, id) in [(admin, 9_100_001), (alice_admin, 9_100_002)] {
        let resp = rt.block_on(block(jwt, id));
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    for jwt in [user.clone(), second.clone(), bob] {
        rt.block_on(block(jwt, 9_100_003))
            .assert_problem(403, "forbidden");
    }
    // The two users are different users.
    let a = rt.block_on(api.post(PATH, Some(&user), None));
    let b = rt.block_on(api.post(PATH, Some(&second), None));
    assert_eq!((a.status, b.status), (201, 201), "{} {}", a.text, b.text);
    drop(app.stop());
}

/// `TGLINK_DEV_FAKE_TELEGRAM=1`: the local API starts a built-in fake Bot API, so the vault and
/// the worker credentials can be tried offline with any well-formed bot token.
#[test]
fn the_local_api_can_fake_telegram_for_the_vault() {
    let dir = tempfile::TempDir::new().unwrap();
    let env = MapEnv::new()
        .with(
            "TGLINK_SQLITE_PATH",
            dir.path().join("tglink.db").display().to_string(),
        )
        .with("TGLINK_DEV_FAKE_TELEGRAM", "1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = LocalApiProcess::start(&env);
    let jwt = app
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("export TGLINK_JWT="))
        .expect("the banner prints a dev JWT")
        .to_owned();
    let api = Api::new(app.base_url.clone());
    let call = |method: http::Method, path: &'static str, body: Option<serde_json::Value>| {
        let (api, jwt) = (&api, jwt.clone());
        async move { api.call(method, path, Some(&jwt), body.as_ref()).await }
    };
    let token = "4242424242:AAH-any-well-formed-secret_0123456789";
    let resp = rt.block_on(call(
        http::Method::PUT,
        "/api/settings/bot-token",
        Some(serde_json::json!({"bot_token": token})),
    ));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["bot_username"], "dev4242424242_bot");
    // A malformed one is refused as Telegram would.
    let resp = rt.block_on(call(
        http::Method::PUT,
        "/api/settings/bot-token",
        Some(serde_json::json!({"bot_token": "4242424242:short"})),
    ));
    resp.assert_problem(400, "bot_token_invalid");
    let resp = rt.block_on(call(
        http::Method::PUT,
        "/api/telegram/session",
        Some(serde_json::json!({"session": "dev-session", "telegram_user_id": 1, "channel_id": -100})),
    ));
    assert_eq!(resp.status, 200, "{}", resp.text);
    let resp = rt.block_on(call(http::Method::GET, "/api/worker/credentials", None));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["bot_token"], token);
    let output = app.stop();
    assert!(
        output.contains("a fake Bot API on http://127.0.0.1:"),
        "{output}"
    );
    assert!(
        !output.contains("AAH-any-well-formed"),
        "the token is not logged"
    );
}

/// The fake and a real `TELEGRAM_API_BASE` at once is a start-up error naming the switch.
#[test]
fn the_fake_telegram_and_an_api_base_are_not_both_set() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = std::process::Command::new(tglink_tests::process::local_api_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TGLINK_SQLITE_PATH", dir.path().join("tglink.db"))
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("TGLINK_DEV_FAKE_TELEGRAM", "1")
        .env("TELEGRAM_API_BASE", "https://api.telegram.org")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TGLINK_DEV_FAKE_TELEGRAM"), "{stderr}");
}
