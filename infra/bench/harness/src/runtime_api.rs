//! Enough of the Lambda Runtime API, on loopback, to run a release `bootstrap` as Lambda does
//! and time it: `GET /2018-06-01/runtime/invocation/next` hands out queued events (then waits
//! forever, like an idle sandbox), `POST …/{id}/response` and `…/{id}/error` and
//! `…/init/error` are recorded with the instant they arrived.
//!
//! One [`measure`] is one cold start: exec the binary with a clean environment, record exec →
//! first poll and exec → first response, then the warm invocations (event handed out →
//! response), then the peak RSS (`VmHWM`) at the first poll and once idle after the last
//! response, then SIGKILL.

use std::{
    collections::VecDeque,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::Value;
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};

/// What the emulated Runtime API saw, with when.
#[derive(Debug)]
enum Seen {
    /// A `next` poll, with the process's memory at that moment (it is blocked in the poll).
    Poll { at: Instant, memory: Memory },
    /// An event handed out.
    Delivered { at: Instant },
    /// A response (or an error report) for the invocation handed out last.
    Answered {
        at: Instant,
        body: Bytes,
        error: bool,
    },
    /// `/runtime/init/error`.
    InitError { body: Bytes },
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

impl Memory {
    fn of(pid: i32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Self {
            hwm_kib: field("VmHWM:"),
            rss_kib: field("VmRSS:"),
        }
    }
}

struct Shared {
    events: Mutex<VecDeque<Value>>,
    seen: mpsc::UnboundedSender<Seen>,
    pid: watch::Receiver<Option<i32>>,
    /// Set when the measurement ends: an idle poll then returns.
    stop: watch::Receiver<bool>,
    next_id: Mutex<u64>,
}

type St = Arc<Shared>;

async fn next(State(st): State<St>) -> Response {
    let at = Instant::now();
    let mut pid = st.pid.clone();
    let pid = pid
        .wait_for(Option::is_some)
        .await
        .map(|p| p.expect("set"))
        .unwrap_or(0);
    let _ = st.seen.send(Seen::Poll {
        at,
        memory: Memory::of(pid),
    });
    let event = st.events.lock().unwrap().pop_front();
    let Some(event) = event else {
        // No more work: an idle sandbox is not answered (until the measurement ends).
        let _ = st.stop.clone().wait_for(|stop| *stop).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let id = {
        let mut n = st.next_id.lock().unwrap();
        *n += 1;
        format!("bench-{n:08}")
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        headers.insert(k, HeaderValue::from_str(&v).expect("header value"));
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    let body = serde_json::to_vec(&event).expect("event serializes");
    let _ = st.seen.send(Seen::Delivered { at: Instant::now() });
    (StatusCode::OK, headers, body).into_response()
}

async fn response(State(st): State<St>, UrlPath(_id): UrlPath<String>, body: Bytes) -> StatusCode {
    let _ = st.seen.send(Seen::Answered {
        at: Instant::now(),
        body,
        error: false,
    });
    StatusCode::ACCEPTED
}

async fn error(State(st): State<St>, UrlPath(_id): UrlPath<String>, body: Bytes) -> StatusCode {
    let _ = st.seen.send(Seen::Answered {
        at: Instant::now(),
        body,
        error: true,
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(st): State<St>, body: Bytes) -> StatusCode {
    let _ = st.seen.send(Seen::InitError { body });
    StatusCode::ACCEPTED
}

/// One cold start and its warm invocations.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// exec → first `GET /runtime/invocation/next`, in microseconds.
    pub poll_us: u64,
    /// exec → the first invocation's response, in microseconds.
    pub first_response_us: u64,
    /// Each warm invocation: event handed out → response, in microseconds.
    pub warm_us: Vec<u64>,
    /// Memory at the first poll (everything built, nothing served).
    pub at_first_poll: Memory,
    /// Memory once idle after the last warm invocation (`hwm_kib` is the peak of the run).
    pub after_warm: Memory,
    /// The `statusCode` of every response (0: not an HTTP response; 1000+: an error report).
    pub statuses: Vec<u16>,
}

/// Starts `binary` with exactly `env` (plus the Runtime API variables), serves it `events` (the
/// first is the cold invocation), and measures. Fails if the process dies or stalls.
pub async fn measure(
    binary: &Path,
    env: &[(String, String)],
    events: Vec<Value>,
) -> Result<Run, String> {
    let total = events.len();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (pid_tx, pid_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        events: Mutex::new(events.into()),
        seen: seen_tx,
        pid: pid_rx,
        stop: stop_rx,
        next_id: Mutex::new(0),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let stderr = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().map_err(|e| e.to_string())?);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("exec {}: {e}", binary.display()))?;
    let _ = pid_tx.send(Some(child.id() as i32));

    let result = observe(&mut seen, &mut child, started, total).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = stop_tx.send(true);
    server.abort();
    result.map_err(|e| {
        let err = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        format!("{}: {e}; stderr: {}", binary.display(), err.trim())
    })
}

async fn observe(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    child: &mut std::process::Child,
    started: Instant,
    total: usize,
) -> Result<Run, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let micros = |from: Instant, to: Instant| to.duration_since(from).as_micros() as u64;
    let mut polls: Vec<(Instant, Memory)> = Vec::new();
    let mut delivered: Vec<Instant> = Vec::new();
    let mut answered: Vec<(Instant, u16)> = Vec::new();
    // Done when every event is answered and the process polls again (idle).
    while !(answered.len() == total && polls.len() > total) {
        let item = tokio::select! {
            item = seen.recv() => item,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("the process exited ({status})"));
                }
                if Instant::now() > deadline {
                    return Err("no progress within 60 s".into());
                }
                continue;
            }
        };
        match item.ok_or("the Runtime API stopped")? {
            Seen::Poll { at, memory } => polls.push((at, memory)),
            Seen::Delivered { at } => delivered.push(at),
            Seen::Answered { at, body, error } => {
                let status = if error {
                    1000
                } else {
                    serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["statusCode"].as_u64())
                        .unwrap_or(0) as u16
                };
                answered.push((at, status));
            }
            Seen::InitError { body } => {
                return Err(format!(
                    "init error reported: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    Ok(Run {
        poll_us: micros(started, polls[0].0),
        first_response_us: micros(started, answered[0].0),
        warm_us: (1..total)
            .map(|i| micros(delivered[i], answered[i].0))
            .collect(),
        at_first_poll: polls[0].1,
        after_warm: polls[total].1,
        statuses: answered.iter().map(|(_, s)| *s).collect(),
    })
}

/// How long the emulated Runtime API takes to see a poll once it is sent (a debug-built axum
/// on loopback): included equally in every poll figure. Median of `n` fresh connections.
pub async fn reception_overhead_us(n: usize) -> u64 {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let app = Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(
                |State(tx): State<mpsc::UnboundedSender<Instant>>| async move {
                    let _ = tx.send(Instant::now());
                    StatusCode::OK
                },
            ),
        )
        .with_state(tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            let sent = Instant::now();
            s.write_all(
                b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .expect("write");
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            sent
        })
        .await
        .expect("client");
        let at = rx.recv().await.expect("seen");
        samples.push(at.saturating_duration_since(sent).as_micros() as u64);
    }
    server.abort();
    samples.sort_unstable();
    samples[samples.len() / 2]
}
