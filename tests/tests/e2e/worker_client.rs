//! End-to-end: the JavaScript worker client (`clients/worker/credentials.mjs`) run by Node
//! against the local API — fetched (200), revalidated (304), rotated, served stale while tglink
//! is unreachable (bounded), and dropped on revocation (401).

use std::process::Stdio;

use http::Method;
use serde_json::{Value, json};
use tglink_shared::config::MapEnv;
use tglink_tests::{
    app::spawn_app_with, fake_telegram::FakeTelegram, fixtures::Backend, workspace_root,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

struct Driver {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Driver {
    fn start(base: &str, worker_token: &str) -> Self {
        let root = workspace_root();
        let mut child = Command::new("node")
            .arg(root.join("tests/js/worker_client_driver.mjs"))
            .arg(base)
            .arg(worker_token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (Node.js ≥ 18 is a test prerequisite)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            _child: child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, command: &str) -> Value {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let line = self
            .stdout
            .next_line()
            .await
            .unwrap()
            .expect("the driver answers every command");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// `get`: the session string served and where it came from.
    async fn get(&mut self) -> (String, String) {
        let answer = self.send("get").await;
        assert_eq!(answer["ok"], true, "{answer}");
        (
            answer["source"].as_str().unwrap().to_owned(),
            answer["session"].as_str().unwrap().to_owned(),
        )
    }

    async fn advance_secs(&mut self, secs: u64) {
        self.send(&format!("advance {}", secs * 1000)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_client_caches_revalidates_serves_stale_and_drops_on_revocation() {
    let fake = FakeTelegram::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("TELEGRAM_API_BASE", fake.base_url())
            .with("TELEGRAM_API_ID", "12345678")
            .with("TELEGRAM_API_HASH", "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b")
            .with("BACKEND_URL", "https://backend.example"),
    )
    .await;
    let jwt = app.jwt("js-worker-owner");
    let bot = "555000111:AAHjsWorkerClientTestToken_abcdefghij";
    fake.add_bot(bot, "js_worker_bot");
    let put = |path: &'static str, body: Value| {
        let api = &app.api;
        let jwt = jwt.clone();
        async move { api.call(Method::PUT, path, Some(&jwt), Some(&body)).await }
    };
    let resp = put("/api/settings/bot-token", json!({"bot_token": bot})).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let session =
        |s: &str| json!({"session": s, "telegram_user_id": 4242, "channel_id": -1001234567890i64});
    let resp = put("/api/telegram/session", session("session-one")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let resp = app
        .api
        .post(
            "/api/worker/tokens",
            Some(&jwt),
            Some(&json!({"name": "js"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let token_id = resp.json["id"].as_str().unwrap().to_owned();
    let worker_token = resp.json["worker_token"].as_str().unwrap().to_owned();

    let mut js = Driver::start(&app.api.base, &worker_token);
    // 200, then from the cache without a request, then 304 after the max age.
    assert_eq!(js.get().await, ("fetched".into(), "session-one".into()));
    assert_eq!(js.get().await, ("cache".into(), "session-one".into()));
    js.advance_secs(61).await;
    assert_eq!(js.get().await, ("revalidated".into(), "session-one".into()));

    // Rotated: seen at the next revalidation.
    let resp = put("/api/telegram/session", session("session-two")).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(js.get().await, ("cache".into(), "session-one".into()));
    js.advance_secs(61).await;
    assert_eq!(js.get().await, ("fetched".into(), "session-two".into()));

    // tglink unreachable (a closed port): stale for at most staleIfErrorMs (600 s), then an error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    js.send(&format!("retarget {dead}")).await;
    js.advance_secs(61).await;
    assert_eq!(js.get().await, ("stale".into(), "session-two".into()));
    js.advance_secs(600).await;
    let answer = js.send("get").await;
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"], "CredentialsUnavailableError", "{answer}");

    // Reachable again and revalidated; then the token is revoked: 401 drops the cache, and
    // nothing stale is served afterwards even when tglink is unreachable.
    js.send(&format!("retarget {}", app.api.base)).await;
    assert_eq!(js.get().await, ("revalidated".into(), "session-two".into()));
    let resp = app
        .api
        .call(
            Method::DELETE,
            &format!("/api/worker/tokens/{token_id}"),
            Some(&jwt),
            None,
        )
        .await;
    assert!(resp.status == 200 || resp.status == 204, "{}", resp.text);
    js.advance_secs(61).await;
    let answer = js.send("get").await;
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"], "CredentialsRefusedError", "{answer}");
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(answer["code"], "worker_token_invalid", "{answer}");
    js.send(&format!("retarget {dead}")).await;
    let answer = js.send("get").await;
    assert_eq!(answer["error"], "CredentialsUnavailableError", "{answer}");
}
