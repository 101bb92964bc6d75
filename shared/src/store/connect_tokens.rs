//! Port: one-time connect tokens (`CONNECT#<hash>` / `CONNECT`).

use async_trait::async_trait;

use super::StoreError;
use crate::{ids::UserId, time::UnixTime, token::TokenHash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTokenRecord {
    pub hash: TokenHash,
    pub user_id: UserId,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait ConnectTokens: Send + Sync {
    /// Stores a freshly minted token (one write).
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError>;

    /// Consumes the token by one conditional write. Exactly one caller ever gets
    /// `Some(user_id)`; unknown, expired (`expires_at <= now`) and already consumed tokens give
    /// `None`.
    async fn consume(&self, hash: &TokenHash, now: UnixTime) -> Result<Option<UserId>, StoreError>;
}
