//! Port: the admin block list of Telegram users (`TGBLOCK#<id>` / `BLOCK`).
//!
//! A blocked Telegram user cannot be linked to anyone and cannot get a Mini App session. The
//! block is enforced inside the writes it guards, not by a read before them: [`Links::link`],
//! `ConnectFlow::consume_and_link`, `MiniAppFlow::claim_and_link` and
//! `MiniAppSessions::create` each carry the condition "no block item" in their own DynamoDB
//! transaction (SQLite: their own `IMMEDIATE` transaction). So a block and a concurrent link
//! are ordered: either the link lands first and [`Blocks::block`] removes it, or the block
//! lands first and the link is refused.
//!
//! [`Blocks::block`] writes the block and removes the user's link (both items) in one
//! transaction, which also bumps the user's session epoch: every Mini App session made before
//! the block is dead, also after an unblock (see [`super::miniapp_sessions`]). Blocks do not
//! expire.
//!
//! [`Links::link`]: super::Links::link

use async_trait::async_trait;

use super::{Link, StoreError};
use crate::{
    ids::{TelegramUserId, UserId},
    time::UnixTime,
};

/// A stored block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub telegram_user_id: TelegramUserId,
    pub blocked_at: UnixTime,
    /// The admin who blocked.
    pub blocked_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The block as stored: the new one, or the earlier one when `already` (kept unchanged).
    pub block: Block,
    /// Whether the user was blocked before this call.
    pub already: bool,
    /// The link removed by this call (both items), if there was one.
    pub revoked: Option<Link>,
}

#[async_trait]
pub trait Blocks: Send + Sync {
    /// The user's block, if any (one consistent read).
    async fn get_block(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError>;

    /// Blocks the user and removes their link, atomically. Blocking a blocked user keeps the
    /// first block.
    async fn block(&self, block: &Block) -> Result<BlockOutcome, StoreError>;

    /// Removes the block; returns it, or `None` when the user was not blocked.
    async fn unblock(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError>;
}
