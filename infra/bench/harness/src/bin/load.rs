//! `load`: the release local API under `wrk` on loopback, per backend and route.
//!
//! ```text
//! load --local-api <release binary> --routes worker-credentials[,verify]
//!      [--backends sqlite,dynamodb] [--duration 10] [--connections 8] [--threads 1]
//!      --out <json>
//! ```
//!
//! For each backend the binary is started as a process on a fresh store (SQLite + local key in
//! a temporary directory, or a new DynamoDB table and KMS key on moto), seeded over HTTP
//! (credentials, a worker token), then each route gets a 2 s warm-up and a measured `wrk` run
//! (`infra/bench/load/report.lua` prints the figures as JSON). `verify` sends a distinct signed
//! initData per request, as real clients do (a pool of 100,000 bodies the script sends in turn),
//! so no run measures one input over and over.

use std::{
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bench_harness::world::{USER, seed};
use serde::Serialize;
use serde_json::{Value, json};
use tglink_shared::{
    config::{Env, MapEnv},
    time::UnixTime,
};
use tglink_tests::{fake_telegram::FakeTelegram, fixtures::Backend, http_client::Api};

struct Args {
    local_api: PathBuf,
    routes: Vec<String>,
    backends: Vec<String>,
    duration: u64,
    connections: u32,
    threads: u32,
    out: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        local_api: PathBuf::new(),
        routes: vec!["worker-credentials".into()],
        backends: vec!["sqlite".into(), "dynamodb".into()],
        duration: 10,
        connections: 8,
        threads: 1,
        out: PathBuf::from("load.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let list = |v: String| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match flag.as_str() {
            "--local-api" => args.local_api = value().into(),
            "--routes" => args.routes = list(value()),
            "--backends" => args.backends = list(value()),
            "--duration" => args.duration = value().parse().expect("--duration seconds"),
            "--connections" => args.connections = value().parse().expect("--connections N"),
            "--threads" => args.threads = value().parse().expect("--threads N"),
            "--out" => args.out = value().into(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        args.local_api.exists(),
        "--local-api {} not found",
        args.local_api.display()
    );
    args
}

/// One request shape for wrk.
struct Target {
    route: String,
    method: &'static str,
    path: &'static str,
    authorization: Option<String>,
    body: Option<String>,
    /// For verify: sign a distinct initData per request with this bot token.
    fresh_init_data: Option<String>,
    /// The request in words (for the report).
    request: String,
}

#[derive(Serialize)]
struct Measured {
    backend: String,
    route: String,
    request: String,
    connections: u32,
    threads: u32,
    duration_s: u64,
    wrk: Value,
    requests_per_s: f64,
}

#[derive(Serialize)]
struct Output {
    tool: String,
    results: Vec<Measured>,
}

struct LocalApi {
    child: Child,
    base: String,
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(binary: &Path, vars: &MapEnv) -> LocalApi {
    let port = free_port();
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in vars.iter() {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start the release local API");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the local API did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    LocalApi {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// How many distinct verify bodies a wrk run cycles through (verify is read-only, so a body
/// coming round again is served like any other).
const FRESH_BODIES: u64 = 100_000;

fn wrk(args: &Args, target: &Target, base: &str, seconds: u64) -> Value {
    let script = tglink_tests::workspace_root().join("infra/bench/load/report.lua");
    // One distinct request body per line, for the script to send in turn.
    let bodies = target.fresh_init_data.as_ref().map(|token| {
        let mut file = tempfile::NamedTempFile::new().expect("bodies file");
        let salt = UnixTime::now().secs();
        for i in 0..FRESH_BODIES {
            let body = json!({"init_data": init_data_numbered(token, salt, i)}).to_string();
            writeln!(file, "{body}").expect("write bodies");
        }
        file
    });
    let output = Command::new("wrk")
        .args([
            "-t",
            &args.threads.to_string(),
            "-c",
            &args.connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{base}{}", target.path))
        .env("WRK_METHOD", target.method)
        .env("WRK_BODY", target.body.clone().unwrap_or_default())
        .env("WRK_THREADS", args.threads.to_string())
        .env(
            "WRK_BODIES",
            bodies
                .as_ref()
                .map(|f| f.path().display().to_string())
                .unwrap_or_default(),
        )
        .env(
            "WRK_AUTHORIZATION",
            target.authorization.clone().unwrap_or_default(),
        )
        .env(
            "WRK_CONTENT_TYPE",
            if target.body.is_some() || bodies.is_some() {
                "application/json"
            } else {
                ""
            },
        )
        .output()
        .expect("run wrk (apt-get install wrk)");
    assert!(
        output.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from wrk: {stdout}"));
    serde_json::from_str(line).expect("wrk JSON")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let mut results = Vec::new();
    for backend_name in &args.backends {
        let backend = match backend_name.as_str() {
            "sqlite" => Backend::Sqlite,
            "dynamodb" => Backend::DynamoDb,
            other => panic!("unknown backend {other}"),
        };
        let dir = tempfile::TempDir::new().expect("temp dir");
        let fake = FakeTelegram::start().await;
        let vars = backend
            .app_env(dir.path())
            .await
            .with("TELEGRAM_API_BASE", fake.base_url())
            .with("TELEGRAM_API_ID", "12345678")
            .with("TELEGRAM_API_HASH", "5ec2e7a1b0c94d1f8a3b6c7d9e0f1a2b")
            .with("BACKEND_URL", "https://backend.example");
        let server = start(&args.local_api, &vars);
        // The same development secrets the process generated in its data directory.
        let env = local_api::local_env(Arc::new(vars.clone())).expect("local env");
        let jwt = local_api::dev_jwt(env.as_ref(), USER).expect("an HS256 dev secret");
        let api = Api::new(server.base.clone());
        let seeded = seed(&api, &fake, &jwt).await;

        for route in &args.routes {
            let target = match route.as_str() {
                "worker-credentials" => Target {
                    route: route.clone(),
                    method: "GET",
                    path: "/api/worker/credentials",
                    authorization: Some(format!("Bearer {}", seeded.worker_token)),
                    body: None,
                    request: "GET /api/worker/credentials (worker token): 200 with the opened credentials".into(),
                    fresh_init_data: None,
                },
                "verify" => {
                    let token = env
                        .var("TELEGRAM_BOT_TOKEN")
                        .expect("the local API has a dev TELEGRAM_BOT_TOKEN (initdata-verify merged?)");
                    Target {
                        route: route.clone(),
                        method: "POST",
                        path: "/api/telegram/miniapp/verify",
                        authorization: None,
                        body: Some(json!({"init_data": init_data(&token)}).to_string()),
                        request: "POST /api/telegram/miniapp/verify (valid initData, 100,000 distinct in turn): 200 with the typed data (one store read)".into(),
                        fresh_init_data: Some(token),
                    }
                }
                other => panic!("unknown route {other} (known: worker-credentials, verify)"),
            };
            // The request must succeed before it is measured.
            let mut probe = api.request(target.method.parse().expect("method"), target.path);
            if let Some(auth) = &target.authorization {
                probe = probe.header("authorization", auth);
            }
            if let Some(body) = &target.body {
                probe = probe
                    .header("content-type", "application/json")
                    .body(body.clone());
            }
            let resp = api.send(probe).await;
            assert_eq!(resp.status, 200, "{route} on {backend_name}: {}", resp.text);
            wrk(&args, &target, &server.base, 2);
            let figures = wrk(&args, &target, &server.base, args.duration);
            let requests = figures["requests"].as_f64().unwrap_or(0.0);
            let duration_s = figures["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
            eprintln!(
                "load: {route} on {backend_name}: {:.0} req/s, p50 {} µs, p99 {} µs, errors {}",
                requests / duration_s,
                figures["latency_us"]["p50"],
                figures["latency_us"]["p99"],
                figures["errors"]
            );
            results.push(Measured {
                backend: backend_name.clone(),
                route: target.route,
                request: target.request,
                connections: args.connections,
                threads: args.threads,
                duration_s: args.duration,
                requests_per_s: requests / duration_s,
                wrk: figures,
            });
        }
        drop(server);
    }
    let tool = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("wrk")
                .to_owned()
        })
        .unwrap_or_else(|_| "wrk".into());
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).expect("output directory");
    }
    std::fs::write(
        &args.out,
        serde_json::to_vec_pretty(&Output { tool, results }).expect("serialize"),
    )
    .expect("write output");
}

/// Fresh initData of a (non-bot) Telegram user signed with `bot_token`.
fn init_data(bot_token: &str) -> String {
    init_data_with(bot_token, "AAHdF6IQAAAAAN0XohDhrOrd")
}

/// Distinct initData number `i` (its own `query_id`, so its own replay key).
fn init_data_numbered(bot_token: &str, salt: u64, i: u64) -> String {
    init_data_with(bot_token, &format!("AAHload{salt:x}n{i}"))
}

fn init_data_with(bot_token: &str, query_id: &str) -> String {
    use tglink_shared::telegram::initdata::signing::sign_hmac;
    let user =
        json!({"id": 7_900_000_002i64, "first_name": "Load", "username": "load_user"}).to_string();
    sign_hmac(
        &[
            ("query_id", query_id),
            ("user", &user),
            ("auth_date", &UnixTime::now().secs().to_string()),
        ],
        bot_token,
    )
}
