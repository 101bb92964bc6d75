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
    /// A random id of this insert ([`new_attempt`]): the write carries it, and inserting the
    /// same record again (the SDK retrying a write whose answer was lost) succeeds instead of
    /// failing on the item it wrote itself.
    pub attempt: String,
    /// Who minted the token, as the bot's confirmation names them: a display name or a masked
    /// e-mail from the app JWT (never the JWT), at most [`ACCOUNT_LABEL_MAX_CHARS`]
    /// characters without control characters. `None` when the JWT carried neither.
    pub account: Option<String>,
}

/// The longest [`ConnectTokenRecord::account`] label, in characters.
pub const ACCOUNT_LABEL_MAX_CHARS: usize = 64;

/// A fresh random attempt id (43 characters) for [`ConnectTokenRecord::attempt`].
pub fn new_attempt() -> String {
    crate::token::OneTimeToken::mint()
        .hash()
        .as_str()
        .to_owned()
}

#[async_trait]
pub trait ConnectTokens: Send + Sync {
    /// Stores a freshly minted token (one write). Idempotent for the same record (same
    /// `attempt`); a different record under the same hash is an error, never an overwrite.
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError>;

    /// Burns a token seen where it must not be used (posted in a group or channel): marks it
    /// consumed without linking anyone. `true` when this call burned it, `false` when it is
    /// unknown or already consumed.
    async fn burn(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError>;
}
