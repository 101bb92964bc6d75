//! Port: worker tokens (listed under `USER#<id>` / `WORKERTOKEN#<id>`; the active ones' hashes
//! in the set `worker_tokens` of the user's credentials item `USER#<id>` / `CREDENTIALS`).
//!
//! A worker token lets an upload worker fetch its user's credentials without the user's own
//! login token. It names its user (see [`crate::vault::WorkerToken`]); only its SHA-256 is
//! stored. Creating a token writes the listing item and adds the hash to the user's set in one
//! transaction (the set's item may be a stub when the user has no credentials yet, see
//! [`super::credentials`]); revoking marks the listing item revoked and removes the hash in one
//! transaction. So a worker's credentials read checks the token in the same call
//! ([`super::credentials::WorkerAuth::Token`]), a revoked token stops working at once (reads
//! are strongly consistent), and it stays listed, marked revoked, for
//! [`REVOKED_RETENTION_SECS`].

use async_trait::async_trait;

use super::StoreError;
use crate::{
    config::{ConfigError, Env, parse_or},
    ids::UserId,
    time::UnixTime,
    token::TokenHash,
};

/// How long a revoked token stays listed before it is deleted.
pub const REVOKED_RETENTION_SECS: u64 = 30 * 86_400;

/// Default `WORKER_TOKENS_MAX`: active worker tokens a user may hold.
pub const DEFAULT_MAX_ACTIVE: usize = 20;

/// The largest accepted `WORKER_TOKENS_MAX`. The active hashes live in the user's credentials
/// item, which DynamoDB limits to 400 KB: 100 hashes of 43 bytes are 4.3 KB, beside at most
/// 16 KiB of sealed session (+ 29 bytes of format, nonce and tag per sealed attribute), a
/// phone (≤ 32 B), a channel invite (≤ 512 B), a bot token (< 100 B), the wrapped data key
/// (~200 B) and < 1 KB of plain attributes: under 23 KB in all, far below 400 KB.
pub const MAX_ACTIVE_LIMIT: usize = 100;

/// `WORKER_TOKENS_MAX` (1..=[`MAX_ACTIVE_LIMIT`], default [`DEFAULT_MAX_ACTIVE`]); checked at
/// cold start.
pub fn max_active_from_env(env: &dyn Env) -> Result<usize, ConfigError> {
    const NAME: &str = "WORKER_TOKENS_MAX";
    let max = parse_or::<usize>(env, NAME, DEFAULT_MAX_ACTIVE)?;
    if !(1..=MAX_ACTIVE_LIMIT).contains(&max) {
        return Err(ConfigError::new(
            NAME,
            format_args!("must be between 1 and {MAX_ACTIVE_LIMIT}"),
        ));
    }
    Ok(max)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The user already has `max` active tokens: nothing was written.
    LimitReached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerTokenRecord {
    /// Public identifier (`wt_…`), used to list and revoke.
    pub id: String,
    pub hash: TokenHash,
    pub user_id: UserId,
    pub name: String,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    /// No token with this id belongs to this user.
    NotFound,
}

#[async_trait]
pub trait WorkerTokens: Send + Sync {
    /// Stores a new token: its listing item, and its hash among `record.user_id`'s active
    /// token hashes (one transaction), if the user has fewer than `max` active tokens
    /// (checked in the same transaction, so concurrent insertions never exceed it).
    async fn insert(
        &self,
        record: &WorkerTokenRecord,
        max: usize,
    ) -> Result<InsertOutcome, StoreError>;

    /// Whether `hash` is one of `user`'s active (not revoked) token hashes (one strongly
    /// consistent read).
    async fn is_active(&self, user: &UserId, hash: &TokenHash) -> Result<bool, StoreError>;

    /// The user's tokens, oldest first, revoked ones included until their retention ends.
    async fn list(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Vec<WorkerTokenRecord>, StoreError>;

    /// Revokes the user's token `id`: marks it revoked and removes its hash from the active
    /// ones (one transaction).
    async fn revoke(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError>;

    /// Revokes every active token of the user (each as [`WorkerTokens::revoke`] does); returns
    /// how many were revoked.
    async fn revoke_all(&self, user: &UserId, now: UnixTime) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn the_limit_is_bounded_at_cold_start() {
        assert_eq!(max_active_from_env(&MapEnv::new()), Ok(DEFAULT_MAX_ACTIVE));
        let env = |v: &str| MapEnv::new().with("WORKER_TOKENS_MAX", v);
        assert_eq!(max_active_from_env(&env("3")), Ok(3));
        assert_eq!(max_active_from_env(&env("100")), Ok(100));
        for bad in ["0", "101", "-1", "many"] {
            let err = max_active_from_env(&env(bad)).unwrap_err();
            assert_eq!(err.var, "WORKER_TOKENS_MAX", "{bad}");
        }
    }
}
