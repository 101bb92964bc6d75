//! JSON logs through `tracing`. Secrets are never passed to a log macro: types that hold them
//! redact their `Debug` output, and handlers log ids and outcomes only.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the process-wide JSON subscriber (level from `RUST_LOG`, default `info`).
/// Calling it again is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(true)
        .without_time()
        .try_init();
}
