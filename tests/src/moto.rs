//! One moto server on a free loopback port per test binary, started on first use from the
//! pinned `.venv` the Makefile installs. Each test then makes its own table or key, so tests
//! stay parallel and independent.
//!
//! The server is moto's own application, launched by `infra/moto_server_serialized.py`, which
//! serializes request processing: stock `moto_server` has no lock around its backends, so
//! concurrent conditional writes to one item could all pass (real DynamoDB is atomic per item).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tglink_shared::{config::MapEnv, store::dynamodb::DynamoStore};

pub struct Moto {
    pub endpoint: String,
}

static MOTO: OnceLock<Moto> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The moto_server of this test binary (started on first call).
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

/// The venv's Python (which has the pinned moto) and the launcher script.
fn moto_command() -> (PathBuf, PathBuf) {
    let root = crate::workspace_root();
    let python = std::env::var("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run `make test` (it installs the pinned moto[server] into .venv)",
        python.display()
    );
    (python, root.join("infra/moto_server_serialized.py"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start() -> Moto {
    let (binary, script) = moto_command();
    for _attempt in 0..3 {
        let port = free_port();
        let (tx, rx) = std::sync::mpsc::channel();
        let bin = binary.clone();
        let script = script.clone();
        // The child is spawned from a thread that never exits: PR_SET_PDEATHSIG fires when the
        // spawning *thread* ends, and we want moto to die exactly when the test binary does.
        std::thread::spawn(move || {
            let mut cmd = Command::new(&bin);
            cmd.arg(&script)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn();
            let ok = child.is_ok();
            let _ = tx.send(child.map(|c| c.id()).map_err(|e| e.to_string()));
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        rx.recv()
            .expect("moto spawner thread")
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        if wait_ready(port, Duration::from_secs(30)) {
            return Moto { endpoint };
        }
    }
    panic!("moto_server did not become ready");
}

fn wait_ready(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            let mut buf = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Moto {
    /// The variables a process (or `Startup`) needs to talk to this moto.
    pub fn env(&self) -> MapEnv {
        MapEnv::new()
            .with("AWS_ENDPOINT_URL", &self.endpoint)
            .with("AWS_REGION", "us-east-1")
            .with("AWS_ACCESS_KEY_ID", "testing")
            .with("AWS_SECRET_ACCESS_KEY", "testing")
    }

    /// A fresh SDK configuration (an independent client stack each call).
    pub async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// A unique name (per process, per call) for tables and keys.
    pub fn unique(prefix: &str) -> String {
        format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A new, empty table of the tglink shape.
    pub async fn new_table(&self) -> DynamoStore {
        let store = DynamoStore::from_sdk(&self.sdk().await, Self::unique("tglink"));
        store.ensure_table().await.expect("create table on moto");
        store
    }

    /// A new symmetric KMS key; returns its id.
    pub async fn new_kms_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk().await);
        let key = kms
            .create_key()
            .description("tglink test key")
            .send()
            .await
            .expect("create KMS key on moto");
        key.key_metadata()
            .map(|m| m.key_id().to_owned())
            .expect("key metadata")
    }
}
