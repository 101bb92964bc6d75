//! The local API as a real process: the `local-api` binary, started with an explicit
//! environment (nothing inherited but `PATH`), its output collected, stopped with SIGTERM.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::Duration,
};

use tglink_shared::config::MapEnv;

/// Builds the `local-api` binary once per test binary and returns its path.
pub fn local_api_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "local-api"])
            .current_dir(crate::workspace_root())
            .status()
            .expect("run cargo build -p local-api");
        assert!(status.success(), "cargo build -p local-api failed");
        // target/<profile>/deps/<test-binary> → target/<profile>/local-api
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
        let bin = profile_dir.join("local-api");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

pub struct LocalApiProcess {
    child: Child,
    pub base_url: String,
    output: Arc<Mutex<String>>,
}

impl LocalApiProcess {
    /// Starts the local API on a free port with exactly `env` (plus `PATH`) and waits until it
    /// listens.
    pub fn start(env: &MapEnv) -> Self {
        let mut cmd = Command::new(local_api_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env.iter() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn local-api");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                // The banner arrives in one write: report the URL only once every line of it
                // that has arrived is in `output`, so `output()` right after `start` has all of it.
                let mut reader = BufReader::new(stream);
                let mut url = None;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = line.trim_end_matches(['\r', '\n']);
                    if let Some(found) = text.strip_prefix("tglink local API listening on ") {
                        url = Some(found.trim().to_owned());
                    }
                    {
                        let mut out = output.lock().unwrap();
                        out.push_str(text);
                        out.push('\n');
                    }
                    if reader.buffer().is_empty()
                        && let Some(url) = url.take()
                    {
                        let _ = tx.send(url);
                    }
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base_url) => Self {
                child,
                base_url,
                output,
            },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "local-api did not start; output:\n{}",
                    output.lock().unwrap()
                );
            }
        }
    }

    /// Everything the process printed so far (banner and JSON logs).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn stop(mut self) -> String {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.output()
    }
}

impl Drop for LocalApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
