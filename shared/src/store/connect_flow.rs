//! Port: the bot side of a connect link, in one atomic step.
//!
//! `/start <token>` consumes the connect token, writes the link (both items) and records the
//! update's claim as `COMPLETED`, all in one DynamoDB `TransactWriteItems` (one SQLite
//! transaction): either all of it happens or none of it does. The claim makes a redelivered
//! update a no-op; the token condition makes the token one-time; the block condition refuses a
//! blocked Telegram user and the link conditions a Telegram user or app user that is linked to
//! someone else, each leaving the token unconsumed. Precedence: duplicate, token invalid,
//! blocked, Telegram user linked elsewhere, app user linked elsewhere.
//!
//! DynamoDB cost: one `TransactGetItems` (claim, token, Telegram user's link, block;
//! consistent) and one `TransactWriteItems`. The read learns the token's user id (needed for the `USER#<id>`
//! item) and answers the refusals without a write.

use async_trait::async_trait;

use super::{ClaimKey, Link, LinkSide, StoreError};
use crate::{ids::TelegramUserId, time::UnixTime, token::TokenHash};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectAttempt {
    /// The hash of the token from `/start <token>`.
    pub token: TokenHash,
    /// The claim of the update that carried it.
    pub claim: ClaimKey,
    /// How long the claim is kept.
    pub claim_retain_secs: u64,
    pub telegram_user_id: TelegramUserId,
    pub chat_id: i64,
    pub username: Option<String>,
    pub now: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The token was consumed and the link written. `already` when this pair was linked
    /// before (the link keeps its `linked_at` and `source`; chat and username are refreshed).
    /// `account`: the token's [`account`](super::ConnectTokenRecord::account) label, for the
    /// confirmation.
    Linked {
        link: Link,
        already: bool,
        account: Option<String>,
    },
    /// The update's claim exists: it was handled before. Nothing written.
    Duplicate,
    /// The token is unknown, expired or consumed. Nothing written.
    TokenInvalid,
    /// The Telegram user is blocked (`TGBLOCK#<id>` / `BLOCK`). Nothing written; the token
    /// stays unconsumed.
    Blocked,
    /// The token is valid but this side is linked elsewhere. Nothing written; the token stays
    /// unconsumed.
    Conflict(LinkSide),
}

#[async_trait]
pub trait ConnectFlow: Send + Sync {
    async fn consume_and_link(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<ConnectOutcome, StoreError>;
}
