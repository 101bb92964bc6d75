//! Port: one-time connect tokens (`CONNECT#<hash>` / `CONNECT`). A token is consumed by
//! [`ConnectFlow::consume_and_link`](super::ConnectFlow::consume_and_link), in the same
//! transaction as the link it makes.

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
}
