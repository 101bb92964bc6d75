//! Port: worker tokens (`WORKERTOKEN#<hash>` / `WORKERTOKEN`, listed under `USER#<id>` /
//! `WORKERTOKEN#<id>`).
//!
//! A worker token lets an upload worker fetch its user's credentials without the user's own
//! login token. Only its SHA-256 is stored. Both items are written in one transaction and
//! revoked in one transaction; a revoked token stops working at once (reads are strongly
//! consistent) and stays listed, marked revoked, for [`REVOKED_RETENTION_SECS`].

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
    /// Stores a new token (both items, one transaction).
    async fn insert(&self, record: &WorkerTokenRecord) -> Result<(), StoreError>;

    /// The active (not revoked) token with this hash (one strongly consistent read).
    async fn lookup(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<WorkerTokenRecord>, StoreError>;

    /// The user's tokens, oldest first, revoked ones included until their retention ends.
    async fn list(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Vec<WorkerTokenRecord>, StoreError>;

    /// Revokes the user's token `id` (both items, one transaction).
    async fn revoke(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError>;
}
