//! End-to-end: the integration guide (`docs/integrate.md`) is true. Every snippet in it (a
//! fenced block after `<!-- snippet: NAME -->`) is extracted and run — Python by the pinned
//! `.venv` (PyJWT), JavaScript by Node (the browser's `fetch`, `URLSearchParams`) — against
//! the local API, in the order a host would use them: the host backend's app JWT, a connect
//! link, the Mini App's sign-in, the backend verifying the access token, linking, a refresh
//! that then carries `app_user_id`, a website's Login Widget sign-in, a website's "Log in with
//! Telegram" through tglink's OpenID provider (Authlib; Telegram's OpenID provider a fake on
//! loopback), the backend's service lookup and a notification sent once for two requests with
//! one key (the Bot API a fake on loopback), and the host's own bot receiving a forwarded
//! update.
//!
//! Each snippet runs as written; the test only adds a prelude (the names the guide says the
//! host has: `TGLINK`, `appJwt`, `APP_JWT_SECRET`, …, from the environment) and an epilogue
//! printing what the snippet produced, as JSON, for the assertions.

use std::{path::PathBuf, process::Stdio};

use aws_lc_rs::digest;
use http::Method;
use serde_json::{Value, json};
use tglink_shared::{
    config::MapEnv,
    telegram::{initdata::signing::sign_hmac, login_widget::signing::sign_widget},
    time::UnixTime,
};
use tglink_tests::{
    app::spawn_app_with,
    fake_telegram::FakeTelegram,
    fake_telegram_oidc::FakeTelegramOidc,
    fixtures::Backend,
    snippets::{self, Snippet},
    workspace_root,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const GUIDE: &str = "docs/integrate.md";

/// Every snippet the guide may hold; each is run by [`the_integration_guide_runs_end_to_end`].
const RUN: &[&str] = &[
    "app-jwt",
    "connect-link",
    "miniapp-signin",
    "miniapp-refresh",
    "miniapp-link",
    "backend-verify",
    "widget-signin",
    "oidc-login",
    "service-lookup",
    "notify",
    "bot-forward",
];

fn snippet(name: &str) -> Snippet {
    snippets::named(GUIDE, "snippet", name)
}

#[test]
fn every_code_block_in_the_guide_is_a_run_snippet_or_a_diagram() {
    let unmarked = snippets::unmarked(&workspace_root().join(GUIDE), "snippet", &["text"]);
    assert!(
        unmarked.is_empty(),
        "{GUIDE}: code blocks (line, language) that no test runs: {unmarked:?} — mark each \
         `<!-- snippet: NAME -->` and run it in e2e integrate::"
    );
    let names: Vec<String> = snippets::in_file(GUIDE, "snippet")
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in &names {
        assert!(RUN.contains(&name.as_str()), "snippet {name} is not run");
    }
    for name in RUN {
        assert_eq!(
            names.iter().filter(|n| n == name).count(),
            1,
            "{GUIDE} has snippet {name} exactly once"
        );
    }
}

/// A snippet as a program: `prelude`, the snippet, `epilogue`.
fn program(snippet: &Snippet, prelude: &str, epilogue: &str) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = workspace_root();
    let (file, mut command) = match snippet.lang.as_str() {
        "js" => (dir.path().join("snippet.mjs"), Command::new("node")),
        "python" => {
            let python = root.join(".venv/bin/python");
            assert!(
                python.exists(),
                "{} is missing: run `make venv`",
                python.display()
            );
            (dir.path().join("snippet.py"), Command::new(python))
        }
        other => panic!("snippet {}: no runner for {other}", snippet.name),
    };
    std::fs::write(&file, format!("{prelude}\n{}\n{epilogue}\n", snippet.code)).unwrap();
    command.arg::<PathBuf>(file).kill_on_drop(true);
    (command, dir)
}

/// Runs `name` to completion with `env`; its last stdout line, as JSON.
async fn run(name: &str, prelude: &str, epilogue: &str, env: &[(&str, &str)]) -> Value {
    let snippet = snippet(name);
    let (mut command, _dir) = program(&snippet, prelude, epilogue);
    let output = command
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the snippet's runtime starts (Node.js >= 18, .venv python)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "snippet {name} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("snippet {name} printed {stdout}: {e}"))
}

/// The bot (its id is Telegram OIDC's client id) and the website registered with tglink.
const BOT_ID: &str = "7000000001";
const TELEGRAM_OIDC_SECRET: &str = "guide-telegram-oidc-secret";
const SITE: &str = "guide-site";
const SITE_SECRET: &str = "guide-site-secret-0123456789abcdef";
/// The site's callback (never contacted: the test is the browser and stops there).
const SITE_CALLBACK: &str = "http://127.0.0.1:9/callback";

const JS_PRELUDE: &str = "const TGLINK = process.env.TGLINK;\nconst appJwt = process.env.APP_JWT;";

/// The host's bot (`bot-forward`), serving on a free loopback port; returns it and its port.
async fn start_host_bot(secret: &str) -> (Child, u16, tempfile::TempDir) {
    let snippet = snippet("bot-forward");
    let (mut command, dir) = program(
        &snippet,
        "import os\nTGLINK_FORWARD_SECRET = os.environ[\"TGLINK_FORWARD_SECRET\"]",
        "from http.server import HTTPServer\nserver = HTTPServer((\"127.0.0.1\", 0), ForwardedUpdates)\nprint(server.server_address[1], flush=True)\nserver.serve_forever()",
    );
    let mut child = command
        .env("TGLINK_FORWARD_SECRET", secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = lines
        .next_line()
        .await
        .unwrap()
        .expect("the host bot prints its port")
        .parse()
        .unwrap();
    (child, port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_guide_runs_end_to_end() {
    let forward_secret = "guide-forward-secret-0123456789";
    let (_host, port, _host_dir) = start_host_bot(forward_secret).await;
    // A fixed port, so that the issuer (by default the local API's own URL) is reachable.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    // Telegram's OpenID provider (a fake on loopback) knows the bot; tglink knows the site.
    let telegram_oidc = FakeTelegramOidc::start_with(BOT_ID, TELEGRAM_OIDC_SECRET);
    // The Bot API (a fake on loopback) knows the bot: notifications are sent through it.
    let bot_api = FakeTelegram::start().await;
    let bot_token = format!("{BOT_ID}:AAH-guide-bot-token-0123456789abcdef");
    bot_api.add_bot(&bot_token, "tglink_dev_bot");
    let site = json!([{
        "client_id": SITE,
        "client_secret_sha256": hex::encode(digest::digest(&digest::SHA256, SITE_SECRET.as_bytes())),
        "redirect_uris": [SITE_CALLBACK],
    }]);
    let app = spawn_app_with(
        Backend::Sqlite,
        MapEnv::new()
            .with("LISTEN_ADDR", listen.to_string())
            .with("TELEGRAM_BOT_TOKEN", &bot_token)
            .with("TELEGRAM_API_BASE", bot_api.base_url())
            .with("TELEGRAM_OIDC_ISSUER", &telegram_oidc.issuer)
            .with("TELEGRAM_OIDC_CLIENT_SECRET", TELEGRAM_OIDC_SECRET)
            .with("TGLINK_OIDC_CLIENTS", site.to_string())
            .with("TGLINK_FORWARD_URL", format!("http://127.0.0.1:{port}/bot"))
            .with("TGLINK_FORWARD_SECRET", forward_secret),
    )
    .await;
    let var = |name: &str| app.env.var(name).unwrap();
    // The host bot refuses a caller without the forward secret.
    let stranger = reqwest::Client::builder().no_proxy().build().unwrap();
    let refused = stranger
        .post(format!("http://127.0.0.1:{port}/bot"))
        .header("X-Tglink-Forward-Secret", "guide-forward-secret-012345678X")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "a wrong forward secret is refused");
    let base = app.api.base.clone();
    assert_eq!(var("TGLINK_ISSUER"), base);

    // The host backend issues the app JWT (HS256 with the local API's secret).
    let app_jwt = run(
        "app-jwt",
        "import os\nAPP_JWT_SECRET = os.environ[\"APP_JWT_SECRET\"]\nAPP_JWT_ISSUER = os.environ[\"APP_JWT_ISSUER\"]\nAPP_JWT_AUDIENCE = os.environ[\"APP_JWT_AUDIENCE\"]",
        "import json\nprint(json.dumps(tglink_jwt(os.environ[\"SUB\"])))",
        &[
            ("APP_JWT_SECRET", &var("APP_JWT_SECRET")),
            ("APP_JWT_ISSUER", &var("APP_JWT_ISSUER")),
            ("APP_JWT_AUDIENCE", &var("APP_JWT_AUDIENCE")),
            ("SUB", "guide-user"),
        ],
    )
    .await;
    let app_jwt = app_jwt.as_str().expect("a JWT string").to_owned();

    // The settings page mints a connect link with it.
    let connect = run(
        "connect-link",
        JS_PRELUDE,
        "console.log(JSON.stringify({ status: res.status, url, expires_at }));",
        &[("TGLINK", &base), ("APP_JWT", &app_jwt)],
    )
    .await;
    assert_eq!(connect["status"], 201, "{connect}");
    assert!(
        connect["url"]
            .as_str()
            .unwrap()
            .starts_with("https://t.me/tglink_dev_bot?start="),
        "{connect}"
    );
    assert!(connect["expires_at"].as_u64().unwrap() > UnixTime::now().secs());

    // The Mini App signs in with its initData.
    let telegram_user = 777_000_123_i64;
    let user = json!({"id": telegram_user, "first_name": "Guide", "username": "guide_user"});
    let init_data = sign_hmac(
        &[
            ("query_id", "AAGuide"),
            ("user", &user.to_string()),
            ("auth_date", &(UnixTime::now().secs() - 5).to_string()),
        ],
        &var("TELEGRAM_BOT_TOKEN"),
    );
    let signin = run(
        "miniapp-signin",
        &format!(
            "{JS_PRELUDE}\nglobalThis.Telegram = {{ WebApp: {{ initData: process.env.INIT_DATA }} }};"
        ),
        "console.log(JSON.stringify({ status: res.status, tokens }));",
        &[("TGLINK", &base), ("INIT_DATA", &init_data)],
    )
    .await;
    assert_eq!(signin["status"], 200, "{signin}");
    let tokens = signin["tokens"].clone();
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // The host backend recognizes the Telegram user (no host user linked yet).
    let verify = |token: String| {
        let base = base.clone();
        let audience = var("TGLINK_TOKEN_AUDIENCE");
        async move {
            run(
                "backend-verify",
                "import os\nTGLINK_ISSUER = os.environ[\"TGLINK_ISSUER\"]\nTGLINK_AUDIENCE = os.environ[\"TGLINK_AUDIENCE\"]",
                "import json\nprint(json.dumps(telegram_user(os.environ[\"ACCESS_TOKEN\"])))",
                &[
                    ("TGLINK_ISSUER", &base),
                    ("TGLINK_AUDIENCE", &audience),
                    ("ACCESS_TOKEN", &token),
                ],
            )
            .await
        }
    };
    assert_eq!(
        verify(access.clone()).await,
        json!({"telegram_user_id": telegram_user.to_string(), "app_user_id": null})
    );

    // Linking the Mini App user to the host account.
    let tokens_env = tokens.to_string();
    let link = run(
        "miniapp-link",
        &format!("{JS_PRELUDE}\nconst tokens = JSON.parse(process.env.TOKENS);"),
        "console.log(JSON.stringify({ status: res.status, link }));",
        &[
            ("TGLINK", &base),
            ("APP_JWT", &app_jwt),
            ("TOKENS", &tokens_env),
        ],
    )
    .await;
    assert_eq!(link["status"], 201, "{link}");
    assert_eq!(link["link"]["user_id"], "guide-user");
    assert_eq!(link["link"]["telegram_user_id"], telegram_user);
    assert_eq!(link["link"]["source"], "miniapp");

    // A refresh: the new access token carries the linked host user.
    let refresh = run(
        "miniapp-refresh",
        &format!("{JS_PRELUDE}\nconst tokens = JSON.parse(process.env.TOKENS);"),
        "console.log(JSON.stringify({ status: res.status, fresh }));",
        &[("TGLINK", &base), ("TOKENS", &tokens_env)],
    )
    .await;
    assert_eq!(refresh["status"], 200, "{refresh}");
    assert_ne!(refresh["fresh"]["refresh_token"], tokens["refresh_token"]);
    let fresh = refresh["fresh"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify(fresh).await,
        json!({"telegram_user_id": telegram_user.to_string(), "app_user_id": "guide-user"})
    );

    // A website's Login Widget redirect is exchanged for tokens of the same Telegram user, who
    // is linked already: the new session's token carries the host user.
    let widget_user = telegram_user.to_string();
    let auth_date = (UnixTime::now().secs() - 5).to_string();
    let query = sign_widget(
        &[
            ("id", widget_user.as_str()),
            ("first_name", "Guide"),
            ("username", "guide_user"),
            ("auth_date", &auth_date),
        ],
        &var("TELEGRAM_BOT_TOKEN"),
    );
    let widget = run(
        "widget-signin",
        &format!("{JS_PRELUDE}\nglobalThis.location = {{ search: process.env.SEARCH }};"),
        "console.log(JSON.stringify({ status: res.status, tokens }));",
        &[("TGLINK", &base), ("SEARCH", &format!("?{query}"))],
    )
    .await;
    assert_eq!(widget["status"], 200, "{widget}");
    let widget_access = widget["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify(widget_access).await,
        json!({"telegram_user_id": telegram_user.to_string(), "app_user_id": "guide-user"})
    );

    // A website's "Log in with Telegram": Authlib against tglink, the same Telegram user
    // approving at Telegram; the ID token names the Telegram user and the linked host user.
    telegram_oidc
        .set_user(json!({"id": telegram_user, "first_name": "Guide", "username": "guide_user"}))
        .await;
    let login = run(
        "oidc-login",
        "import os\nTGLINK_ISSUER = os.environ[\"TGLINK_ISSUER\"]\nCLIENT_ID = os.environ[\"CLIENT_ID\"]\nCLIENT_SECRET = os.environ[\"CLIENT_SECRET\"]\nREDIRECT_URI = os.environ[\"REDIRECT_URI\"]",
        // The test is the browser: it follows the redirects until the site's callback.
        "import json\nsession = {}\nurl = login(session)\nwhile not url.startswith(REDIRECT_URI):\n    url = requests.get(url, allow_redirects=False, timeout=10).headers[\"Location\"]\nclaims = callback(session, url)\nprint(json.dumps({\"sub\": claims[\"sub\"], \"app_user_id\": claims.get(\"app_user_id\"), \"amr\": claims[\"amr\"], \"access_token\": claims[\"tokens\"][\"access_token\"]}))",
        &[
            ("TGLINK_ISSUER", &base),
            ("CLIENT_ID", SITE),
            ("CLIENT_SECRET", SITE_SECRET),
            ("REDIRECT_URI", SITE_CALLBACK),
        ],
    )
    .await;
    assert_eq!(login["sub"], telegram_user.to_string(), "{login}");
    assert_eq!(login["app_user_id"], "guide-user", "{login}");
    assert_eq!(login["amr"], json!(["telegram_oidc"]), "{login}");
    assert_eq!(
        verify(login["access_token"].as_str().unwrap().to_owned()).await,
        json!({"telegram_user_id": telegram_user.to_string(), "app_user_id": "guide-user"})
    );

    // The user starts the bot (so the Mini App link gets its chat); the backend looks the link
    // up with the service role and notifies the user, twice with one key: one message.
    let start = json!({
        "update_id": 4_242_000,
        "message": {
            "message_id": 1, "date": 1_700_000_000, "text": "/start",
            "entities": [{"offset": 0, "length": 6, "type": "bot_command"}],
            "from": {"id": telegram_user, "is_bot": false, "first_name": "Guide"},
            "chat": {"id": telegram_user, "type": "private"}
        }
    });
    let resp = app
        .api
        .send(
            app.api
                .request(Method::POST, "/api/telegram/webhook")
                .header(
                    "X-Telegram-Bot-Api-Secret-Token",
                    var("TELEGRAM_WEBHOOK_SECRET"),
                )
                .json(&start),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let backend = |name: &str, epilogue: &str| {
        let code = snippet("app-jwt").code;
        let base = base.clone();
        let (secret, issuer, audience) = (
            var("APP_JWT_SECRET"),
            var("APP_JWT_ISSUER"),
            var("APP_JWT_AUDIENCE"),
        );
        let (name, epilogue) = (name.to_owned(), epilogue.to_owned());
        async move {
            run(
                &name,
                &format!("import os\nTGLINK = os.environ[\"TGLINK\"]\nAPP_JWT_SECRET = os.environ[\"APP_JWT_SECRET\"]\nAPP_JWT_ISSUER = os.environ[\"APP_JWT_ISSUER\"]\nAPP_JWT_AUDIENCE = os.environ[\"APP_JWT_AUDIENCE\"]\n{code}"),
                &epilogue,
                &[
                    ("TGLINK", &base),
                    ("APP_JWT_SECRET", &secret),
                    ("APP_JWT_ISSUER", &issuer),
                    ("APP_JWT_AUDIENCE", &audience),
                ],
            )
            .await
        }
    };
    let found = backend(
        "service-lookup",
        "import json\nprint(json.dumps(telegram_of(\"guide-user\")))",
    )
    .await;
    assert_eq!(found["telegram_user_id"], telegram_user, "{found}");
    assert_eq!(found["chat_id"], telegram_user, "{found}");
    assert_eq!(found["reachable"], true, "{found}");
    let sent = backend(
        "notify",
        "import json\nfirst = notify(\"guide-user\", \"Your export is ready.\", \"export-42\")\nagain = notify(\"guide-user\", \"Your export is ready.\", \"export-42\")\nprint(json.dumps({\"status\": [first.status_code, again.status_code], \"first\": first.json(), \"again\": again.json()}))",
    )
    .await;
    assert_eq!(
        sent["status"],
        json!([200, 200]),
        "{sent} {:?}",
        bot_api.calls()
    );
    assert_eq!(
        sent["first"], sent["again"],
        "the retry is the first answer"
    );
    assert_eq!(sent["first"]["chat_id"], telegram_user);
    let messages = bot_api.sent();
    assert_eq!(messages.len(), 1, "one message for one key: {messages:?}");
    assert_eq!(messages[0]["text"], "Your export is ready.");

    // The host's own bot gets what tglink does not handle, and its reply goes back to Telegram.
    let update = json!({
        "update_id": 4_242_001,
        "message": {
            "message_id": 1, "date": 1_700_000_000, "text": "hello bot",
            "from": {"id": telegram_user, "is_bot": false, "first_name": "Guide"},
            "chat": {"id": telegram_user, "type": "private"}
        }
    });
    let resp = app
        .api
        .send(
            app.api
                .request(Method::POST, "/api/telegram/webhook")
                .header(
                    "X-Telegram-Bot-Api-Secret-Token",
                    var("TELEGRAM_WEBHOOK_SECRET"),
                )
                .json(&update),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.json,
        json!({"method": "sendMessage", "chat_id": telegram_user, "text": "You said: hello bot"})
    );
}
