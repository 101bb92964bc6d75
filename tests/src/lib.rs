//! Test harness for tglink: a real `moto_server` per test binary, store and sealer fixtures
//! for both adapters, the conformance suite (written once, run against both), the local API
//! in-process or as a real process, and log capture.
//!
//! Nothing here fakes DynamoDB, KMS or SQLite: the only fake peers in the project are
//! Telegram's: the Bot API and its OpenID provider.

pub mod app;
pub mod aws_calls;
pub mod aws_recorder;
pub mod cloud;
pub mod conformance;
pub mod fake_telegram;
pub mod fake_telegram_oidc;
pub mod faults;
pub mod fixtures;
pub mod functions;
pub mod http_client;
pub mod lambda_events;
pub mod logs;
pub mod loopback;
pub mod moto;
pub mod openapi;
pub mod process;
pub mod template;

/// The workspace root (where `.venv/` and `target/` live).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
