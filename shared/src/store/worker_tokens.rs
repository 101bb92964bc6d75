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
use crate::{ids::UserId, time::UnixTime, token::TokenHash};

/// How long a revoked token stays listed before it is deleted.
pub const REVOKED_RETENTION_SECS: u64 = 30 * 86_400;

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
    /// token hashes (one transaction).
    async fn insert(&self, record: &WorkerTokenRecord) -> Result<(), StoreError>;

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
}
