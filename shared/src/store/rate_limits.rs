//! Port: token buckets shared by every instance (`RATE#<kind>#<id>` / `RATE`), taken together
//! with an idempotency claim (`CLAIM#notify#…`, the [`super::Claims`] item).
//!
//! A bucket is kept as GCRA's *theoretical arrival time* (`tat`, microseconds): a bucket of
//! `rate` tokens per second and `burst` tokens admits a message at `now` when
//! `max(tat, now) - now <= (burst - 1) / rate`, and moves `tat` to `max(tat, now) + 1 / rate`
//! ([`Bucket::take`], the one rule both adapters apply). [`RateLimits::admit`] reads the claim and
//! both buckets, then writes all three with conditions on what it read (one transaction; a
//! concurrent writer makes it read again), so across instances a bucket never admits more than
//! its limit, a refused message leaves nothing written, and an admitted one holds the claim.

use std::fmt;

use async_trait::async_trait;

use super::{ClaimKey, ClaimLease, ClaimRecord, ClaimTimes, StoreError};
use crate::time::UnixTime;

const MICROS: u64 = 1_000_000;

/// Which bucket: a kind (`chat`, `bot`) and an id. Stored as `<kind>#<id>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BucketKey(String);

impl BucketKey {
    /// The bucket of one private chat.
    pub fn chat(chat_id: i64) -> Self {
        Self(format!("chat#{chat_id}"))
    }

    /// The bucket of a whole bot (every chat).
    pub fn bot(bot_id: i64) -> Self {
        Self(format!("bot#{bot_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BucketKey({})", self.0)
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` at once (both at least 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: BucketKey,
    pub rate: u32,
    pub burst: u32,
}

impl Bucket {
    fn interval(&self) -> u64 {
        MICROS / u64::from(self.rate.max(1))
    }

    /// Takes one token from a bucket whose stored `tat` is `tat` (`None`: never used): the new
    /// `tat`, or, when the bucket is empty, the whole seconds until a token is there (≥ 1).
    pub fn take(&self, tat: Option<u64>, now: UnixTime) -> Result<u64, u64> {
        let now = now.secs() * MICROS;
        let base = tat.unwrap_or(0).max(now);
        let tolerance = self.interval() * u64::from(self.burst.max(1) - 1);
        let ahead = base - now;
        if ahead > tolerance {
            Err((ahead - tolerance).div_ceil(MICROS).max(1))
        } else {
            Ok(base + self.interval())
        }
    }
}

/// What [`RateLimits::admit`] decided. Only `Admitted` wrote anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Both buckets gave a token and the claim is held: send, then complete or release it.
    Admitted(ClaimLease),
    /// The claim is live (in progress elsewhere, or completed): nothing taken.
    Claimed(ClaimRecord),
    /// A bucket is empty: nothing taken, retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
}

#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Unless `claim` is live, takes a token from `chat` and from `bot` and claims `claim`
    /// `IN_PROGRESS` with `digest`, all or nothing (one read and one transaction on DynamoDB).
    async fn admit(
        &self,
        claim: &ClaimKey,
        digest: &str,
        times: ClaimTimes,
        chat: &Bucket,
        bot: &Bucket,
        now: UnixTime,
    ) -> Result<Admission, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let b = Bucket {
            key: BucketKey::chat(1),
            rate: 1,
            burst: 3,
        };
        let t0 = UnixTime(100);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(b.take(tat, t0).unwrap());
        }
        assert_eq!(b.take(tat, t0), Err(1));
        // One second later one token is back, not more.
        let t1 = UnixTime(101);
        tat = Some(b.take(tat, t1).unwrap());
        assert_eq!(b.take(tat, t1), Err(1));
        // Idle for long: the full burst again, not more.
        let later = UnixTime(1_000);
        for _ in 0..3 {
            tat = Some(b.take(tat, later).unwrap());
        }
        assert!(b.take(tat, later).is_err());
        let global = Bucket {
            key: BucketKey::bot(1),
            rate: 30,
            burst: 30,
        };
        let mut tat = None;
        for _ in 0..30 {
            tat = Some(global.take(tat, t0).unwrap());
        }
        assert_eq!(global.take(tat, t0), Err(1));
    }
}
