//! Smoke test as a Lambda user would run it: `cargo lambda watch` serves the real function
//! binaries on the Lambda runtime emulator, and `cargo lambda invoke <function> --data-file
//! tests/events/<function>/<event>.json` delivers every event of the scenario to them. Each
//! function starts like in the cloud (`TGLINK_SSM_PREFIX`: its secrets come from SSM; DynamoDB
//! and KMS), all on moto behind the recording proxy, with the fake Bot API. Every status code is
//! checked, the AWS calls of each function are held against its role in `template.yaml`, and
//! `cargo lambda watch` and all its children are gone at the end.

use std::{
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::Value;
use tempfile::TempDir;
use tglink_tests::{
    cloud::CloudLike,
    functions::{self, FUNCTIONS},
    lambda_events::{Invoker, Outcome, Session, run_scenario},
    template::Template,
    workspace_root,
};

fn cargo_lambda() -> PathBuf {
    let bin = workspace_root().join(".venv/bin/cargo-lambda");
    assert!(
        bin.exists(),
        "{} not found: run `make test` (it installs the pinned cargo-lambda into .venv)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Variables of the developer's shell that must not leak into the functions.
fn scrubbed(name: &str) -> bool {
    [
        "TGLINK_",
        "AWS_",
        "APP_",
        "TELEGRAM_",
        "REGISTRATION_",
        "CONNECT_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "BACKEND_URL"
        || name == "RUST_LOG"
}

/// `cargo lambda watch` in its own process group; stopped (the whole group) on drop.
struct Watch {
    pgid: i32,
    exited: mpsc::Receiver<std::io::Result<ExitStatus>>,
    log: PathBuf,
    port: u16,
}

impl Watch {
    fn start(env_file: &Path, log: PathBuf) -> Self {
        let port = free_port();
        let mut cmd = Command::new(cargo_lambda());
        cmd.args(["lambda", "watch", "--ignore-changes", "--invoke-address"])
            .arg("127.0.0.1")
            .arg("--invoke-port")
            .arg(port.to_string())
            .arg("--env-file")
            .arg(env_file)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("watch log"))
            .stderr(std::fs::File::create(&log).expect("watch log"));
        for (name, _) in std::env::vars() {
            if scrubbed(&name) {
                cmd.env_remove(&name);
            }
        }
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0).pre_exec(|| {
                // Dies with the thread below, which lives exactly as long as the child: a
                // crashed test binary leaves no emulator behind.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = pid_tx.send(Ok(child.id()));
                let _ = exit_tx.send(child.wait());
            }
            Err(e) => {
                let _ = pid_tx.send(Err(e));
            }
        });
        let pid = pid_rx
            .recv()
            .expect("spawner thread")
            .expect("spawn cargo lambda watch");
        let watch = Self {
            pgid: pid as i32,
            exited,
            log,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port}:\n{}",
                watch.log_text()
            );
            if let Ok(status) = watch.exited.try_recv() {
                panic!(
                    "cargo lambda watch exited ({status:?}):\n{}",
                    watch.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        watch
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to the group, SIGKILL after a grace period; then waits until no process of the
    /// group is left. Returns whether the group is gone.
    fn stop(&mut self) -> bool {
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        if self.exited.recv_timeout(Duration::from_secs(10)).is_err() {
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            let _ = self.exited.recv_timeout(Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive = unsafe { libc::kill(-self.pgid, 0) } == 0;
            if !alive {
                return true;
            }
            if Instant::now() > deadline {
                unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cargo lambda invoke <function> --data-file <event> --output-format json`, against the
/// emulator it owns.
struct CargoLambdaInvoke {
    watch: Watch,
    env_file: PathBuf,
    /// The logs of the emulators stopped for a cold start.
    earlier_logs: String,
    dir: PathBuf,
    count: usize,
}

impl CargoLambdaInvoke {
    /// Every function's log lines so far.
    fn log_text(&self) -> String {
        format!("{}{}", self.earlier_logs, self.watch.log_text())
    }
}

#[async_trait]
impl Invoker for CargoLambdaInvoke {
    /// The emulator keeps a function's process: a cold start is a new emulator (every
    /// function starts cold again; the binaries are built already).
    async fn cold_start(&mut self, _function: &str) {
        let log = self.dir.join(format!("watch-{}.log", self.count));
        let mut old = std::mem::replace(&mut self.watch, Watch::start(&self.env_file, log));
        self.earlier_logs.push_str(&old.log_text());
        assert!(old.stop(), "cargo lambda watch left processes behind");
    }

    async fn invoke(&mut self, function: &str, event: &Value) -> Outcome {
        self.count += 1;
        let file = self.dir.join(format!("{:02}-{function}.json", self.count));
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(event.to_string().as_bytes()))
            .expect("write the event");
        let mut cmd = Command::new(cargo_lambda());
        cmd.args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
        ])
        .arg("--invoke-port")
        .arg(self.watch.port.to_string())
        .arg("--data-file")
        .arg(&file)
        .args(["--output-format", "json"])
        .current_dir(workspace_root());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("invoke thread")
            .expect("run cargo lambda invoke");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo lambda invoke {function} failed: {}\n{stdout}\n--- watch log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        let response: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("cargo lambda invoke {function}: not JSON ({e}): {stdout}"));
        Outcome::from_proxy_response(&response)
    }
}

/// Builds each function exactly as `cargo lambda watch` runs it (`cargo run --bin <name>`), so
/// the emulator starts them at once instead of compiling during an invocation.
fn build_functions() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for function in FUNCTIONS {
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--bin", function.name])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build --bin {} failed",
            function.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_through_cargo_lambda_watch_and_invoke() {
    build_functions();
    let mut cloud = CloudLike::start().await;
    let dir = TempDir::new().expect("temp dir");
    let env_file = dir.path().join("watch.env");
    let mut vars: Vec<(String, String)> = cloud
        .env
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    vars.sort();
    let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, text).expect("write the env file");

    let watch = Watch::start(&env_file, dir.path().join("watch.log"));
    let mut invoker = CargoLambdaInvoke {
        watch,
        env_file: env_file.clone(),
        earlier_logs: String::new(),
        dir: dir.path().to_owned(),
        count: 0,
    };
    let mut session = Session::new(&mut invoker, &cloud.recorder);
    run_scenario(&mut session).await;
    let observed = session.observed.clone();
    let invoked = session.invoked.clone();
    // What the real binaries answered, as API Gateway would relay it, matches openapi.yaml.
    tglink_tests::openapi::check_responses(&session.responses_jsonl());
    drop(session);

    for function in FUNCTIONS {
        for route in function.routes {
            assert!(
                invoked.contains(&(function.name.to_owned(), functions::event_slug(route))),
                "no event for {} {} was invoked",
                route.method,
                route.pattern
            );
        }
    }
    let template = Template::load();
    let problems = template.check_scenario(
        FUNCTIONS.iter().map(|f| f.name),
        &observed,
        &cloud.deployment,
    );
    assert!(
        problems.is_empty(),
        "IAM problems:\n{}",
        problems.join("\n")
    );

    // The functions' logs (JSON lines through the emulator) carry none of the secrets.
    let log = invoker.log_text();
    assert!(
        log.contains("connect link minted"),
        "function logs reach the watch log"
    );
    for (_, secret) in tglink_tests::lambda_events::dev_secrets() {
        assert!(
            !log.contains(&secret),
            "a service secret appears in the logs"
        );
    }

    assert!(
        invoker.watch.stop(),
        "cargo lambda watch left processes behind"
    );
    cloud.recorder.stop().await;
}
