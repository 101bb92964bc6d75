//! Wall-clock time as Unix seconds, and the [`Clock`] handlers read it from. Domain operations
//! take `now` as an argument so that expiry is decided by one clock reading per request and
//! tests can move time freely.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// Seconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self(secs)
    }

    pub fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    pub fn secs(self) -> u64 {
        self.0
    }
}

/// Where a handler's "now" comes from: the system clock, or a test's.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> UnixTime + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(UnixTime::now))
    }

    pub fn new(f: impl Fn() -> UnixTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> UnixTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_time() {
        let clock = Clock::new(|| UnixTime(42));
        assert_eq!(clock.now(), UnixTime(42));
        assert_eq!(clock.now().plus_secs(8).secs(), 50);
        assert!(Clock::system().now() > UnixTime(1_600_000_000));
    }
}
