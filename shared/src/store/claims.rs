//! Port: idempotency and replay claims (`CLAIM#<kind>#<key>` / `CLAIM`).
//!
//! The pattern of AWS Lambda Powertools' idempotency utility. [`Claims::begin`] writes the
//! claim `IN_PROGRESS` with an `in_progress_until`, by one conditional write that succeeds only
//! if there is no live claim: none at all, one past its retention (`expires_at <= now`, which
//! DynamoDB TTL deletes late), or one still `IN_PROGRESS` past `in_progress_until` (its attempt
//! crashed; the next attempt takes over). The caller performs the effect, then
//! [`Claims::complete`] marks it `COMPLETED` for the retention period, or, when the effect
//! failed, [`Claims::release`] deletes it so a retry can run at once.
//!
//! [`Claims::claim_once`] is the one-write form for replay protection: the claim is written
//! `COMPLETED` directly, and only the first caller within the retention period gets
//! [`ClaimOnce::Claimed`].

use std::fmt;

use async_trait::async_trait;

use super::StoreError;
use crate::time::UnixTime;

/// What is claimed: a kind (`update`, `initdata`, …: lowercase letters, digits, `_`, `-`) and
/// a key within it. Stored as `<kind>#<key>`. Keys are identifiers or hashes, never secrets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimKey(String);

impl ClaimKey {
    /// `kind` is a fixed word chosen by the caller; `key` must not be empty.
    pub fn new(kind: &'static str, key: &str) -> Self {
        debug_assert!(
            !kind.is_empty()
                && kind.bytes().all(|c| c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || c == b'_'
                    || c == b'-'),
            "claim kinds are lowercase words"
        );
        debug_assert!(!key.is_empty(), "claim keys are not empty");
        Self(format!("{kind}#{key}"))
    }

    /// The claim of a Telegram update: update ids are unique per bot.
    pub fn telegram_update(bot_username: &str, update_id: i64) -> Self {
        Self::new(
            "update",
            &format!("{}:{update_id}", bot_username.to_ascii_lowercase()),
        )
    }

    /// `<kind>#<key>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimKey({})", self.0)
    }
}

/// How long a claim lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    /// How long an `IN_PROGRESS` claim blocks other attempts; after that a new attempt may
    /// take over (the holder is presumed dead). Longer than the slowest attempt.
    pub in_progress_secs: u64,
    /// How long the claim is kept (from `begin`, and again from `complete`).
    pub retain_secs: u64,
}

/// Proof of holding an `IN_PROGRESS` claim, for [`Claims::complete`] and [`Claims::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLease {
    pub key: ClaimKey,
    /// Unique per holder: a takeover happens only after this instant, so its lease ends later.
    pub in_progress_until: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds the claim and must `complete` or `release` it.
    Acquired(ClaimLease),
    /// Another attempt holds it and has not timed out: retry later.
    InProgress,
    /// The work was done already: do nothing.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOnce {
    /// First within the retention period.
    Claimed,
    /// Claimed before (completed, or in progress elsewhere).
    AlreadyClaimed,
}

/// A live claim with what an idempotent request keeps on it ([`super::RateLimits::admit`],
/// [`Claims::complete_with_result`]): a digest of the request (never the request itself) and,
/// once completed, the caller's serialized first result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    pub status: ClaimStatus,
    pub digest: Option<String>,
    pub result: Option<String>,
}

/// The stored state of a live claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatus {
    InProgress { until: UnixTime },
    Completed,
}

#[async_trait]
pub trait Claims: Send + Sync {
    /// Claims `key` as `IN_PROGRESS` (one conditional write).
    async fn begin(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Marks the claim `COMPLETED`, kept for `retain_secs` from `now` (one write).
    async fn complete(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<(), StoreError>;

    /// Marks the claim `COMPLETED` with the request's `digest` and its `result`, kept for
    /// `retain_secs` from `now` (one write): a retry is answered `result` ([`ClaimRecord`]).
    async fn complete_with_result(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
        digest: &str,
        result: &str,
    ) -> Result<(), StoreError>;

    /// Deletes the claim if it is still this lease's `IN_PROGRESS` claim (one conditional
    /// delete), so a retry need not wait for `in_progress_until`.
    async fn release(&self, lease: &ClaimLease) -> Result<(), StoreError>;

    /// Claims `key` as `COMPLETED` at once (one conditional write).
    async fn claim_once(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<ClaimOnce, StoreError>;

    /// The live claim of `key`, if any (one consistent read).
    async fn status(
        &self,
        key: &ClaimKey,
        now: UnixTime,
    ) -> Result<Option<ClaimStatus>, StoreError>;
}
