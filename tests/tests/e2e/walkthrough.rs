//! End-to-end: the local walkthrough is copy-pasteable. The real `local-api` process is started
//! as `make run` starts it (its data under `.data/` of the working directory); the lines its
//! banner tells a reader to paste (the `export`s and the `curl`) and every shell block of
//! README.md and docs/api.md marked `<!-- walkthrough: NAME -->` are run by bash, in one
//! shell, from that directory, as written — only the documented address `127.0.0.1:8080` is
//! replaced by the process's — and each step's output is checked against what the
//! documentation says it gives.

use std::{net::TcpListener, process::Stdio};

use serde_json::Value;
use tglink_shared::config::MapEnv;
use tglink_tests::{
    process::LocalApiProcess,
    snippets::{self, Snippet},
};

const DOCUMENTED: &str = "http://127.0.0.1:8080";

/// The walkthrough blocks, in the order they run, with the file they are in.
const STEPS: &[(&str, &str)] = &[
    ("docs/api.md", "registration-callback"),
    ("docs/api.md", "miniapp-signin"),
    ("docs/api.md", "webhook-start"),
];

/// What the banner tells a reader to paste into another shell: the `export` lines and the
/// `curl` line after "Mint a connect link:".
fn banner_lines(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let mut paste: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("export TGLINK_"))
        .collect();
    let mint = lines
        .iter()
        .position(|l| *l == "Mint a connect link:")
        .expect("the banner says how to mint a connect link");
    paste.push(lines[mint + 1]);
    assert!(paste.len() >= 4, "three JWTs and a curl: {paste:?}");
    paste.join("\n") + "\n"
}

/// Each step's output, by the step's name.
fn outputs(stdout: &str) -> Vec<(String, String)> {
    stdout
        .split("\n::step ")
        .skip(1)
        .map(|part| {
            let (name, out) = part.split_once('\n').unwrap_or((part, ""));
            (name.to_owned(), out.to_owned())
        })
        .collect()
}

/// The JSON objects a step printed, in order (curl prints an answer without a final newline,
/// so one line may hold several).
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .flat_map(|l| {
            serde_json::Deserializer::from_str(l.trim())
                .into_iter::<Value>()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        })
        .filter(Value::is_object)
        .collect()
}

#[test]
fn every_marked_walkthrough_block_is_a_run_shell_step() {
    for (file, name) in STEPS {
        let snippet = snippets::named(file, "walkthrough", name);
        assert_eq!(snippet.lang, "sh", "{file} {name}");
        assert!(
            snippet.code.contains(DOCUMENTED),
            "{file} {name} calls the local API"
        );
    }
    for file in ["README.md", "docs/api.md"] {
        let marked = snippets::in_file(file, "walkthrough");
        for s in &marked {
            assert!(
                STEPS.contains(&(file, s.name.as_str())),
                "{file}: walkthrough {} is not run",
                s.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let api = LocalApiProcess::start(
        &MapEnv::new()
            .with("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .with(
                "TGLINK_SQLITE_PATH",
                dir.path().join(".data/tglink.db").to_string_lossy(),
            ),
    );
    let base = api.base_url.clone();
    assert!(
        dir.path().join(".data/dev-secrets.json").exists(),
        "make run's secrets are under .data/"
    );

    let mut script = String::from("set -euo pipefail\n");
    script.push_str(&banner_lines(&api.output()));
    // The banner's own curl ran last: mark its output.
    script.insert_str(
        script.rfind("curl ").unwrap(),
        "printf '\\n::step banner-curl\\n'\n",
    );
    for (file, name) in STEPS {
        let Snippet { code, .. } = snippets::named(file, "walkthrough", name);
        script.push_str(&format!("printf '\\n::step {name}\\n'\n"));
        script.push_str(&code.replace(DOCUMENTED, &base));
        script.push_str("echo\n");
    }
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the walkthrough failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps = outputs(&stdout);
    let step = |name: &str| {
        steps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, out)| json_lines(out))
            .unwrap_or_else(|| panic!("no output of step {name}: {stdout}"))
    };

    // README: the banner's curl mints a connect link.
    let minted = step("banner-curl");
    assert!(
        minted[0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://t.me/tglink_dev_bot?start=")),
        "{minted:?}"
    );
    // docs/api.md: the registration round trip completes.
    let callback = step("registration-callback");
    assert_eq!(
        callback.last().unwrap()["status"],
        "completed",
        "{callback:?}"
    );
    // docs/api.md: the Mini App signs in (tokens) and links Telegram user 42 to dev-user.
    let miniapp = step("miniapp-signin");
    assert_eq!(miniapp[0]["telegram_user_id"], 42, "verify: {miniapp:?}");
    assert!(miniapp[1]["access_token"].is_string(), "{miniapp:?}");
    let link = miniapp.last().unwrap();
    assert_eq!(link["user_id"], "dev-user", "{link}");
    assert_eq!(link["telegram_user_id"], 42, "{link}");
    assert_eq!(link["source"], "miniapp", "{link}");
    // docs/api.md: the bot's /start with a fresh connect token (42 is dev-user's already).
    let start = step("webhook-start");
    assert_eq!(start[0]["method"], "sendMessage", "{start:?}");
    assert!(
        start[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Successfully connected")),
        "{start:?}"
    );
    drop(api);
}
