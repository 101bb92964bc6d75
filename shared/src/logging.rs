//! JSON logs through `tracing`. Secrets are never passed to a log macro: types that hold them
//! redact their `Debug` output, and handlers log ids and outcomes only.

use tracing_subscriber::{filter::Targets, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// Installs the process-wide JSON subscriber of a Lambda (level from `RUST_LOG`, default
/// `info`), without timestamps: CloudWatch stamps every line itself. Calling it again is
/// harmless.
pub fn init() {
    install(false);
}

/// [`init`] for the local API, whose lines go to a terminal or a file: each carries its
/// `timestamp` (RFC 3339, UTC).
pub fn init_local() {
    install(true);
}

fn install(timestamps: bool) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let layer = fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(true);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if timestamps {
        registry.with(layer).try_init()
    } else {
        registry.with(layer.without_time()).try_init()
    };
}

/// `RUST_LOG` as a list of `level` and `target=level` directives (e.g. `info`,
/// `warn,tglink_shared=debug`); unset, empty or malformed: `info`. Span and field directives
/// (`tracing-subscriber`'s `env-filter`, left out of the Lambdas for size) are not supported.
fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::{Level, level_filters::LevelFilter};

    use super::filter;

    #[test]
    fn rust_log_sets_levels_and_defaults_to_info() {
        let default = filter(None);
        assert!(default.would_enable("tglink_shared::x", &Level::INFO));
        assert!(!default.would_enable("tglink_shared::x", &Level::DEBUG));
        for bad in ["", "  ", "=[", "info,a=b=c"] {
            assert_eq!(
                filter(Some(bad)).default_level(),
                Some(LevelFilter::INFO),
                "{bad:?}"
            );
        }
        let debug = filter(Some("debug"));
        assert!(debug.would_enable("settings", &Level::DEBUG));
        let mixed = filter(Some("warn,tglink_shared=debug"));
        assert!(mixed.would_enable("tglink_shared::store", &Level::DEBUG));
        assert!(!mixed.would_enable("settings", &Level::INFO));
        assert!(mixed.would_enable("settings", &Level::WARN));
    }
}
