//! Port: linking through verified Mini App `initData`, in one atomic step.
//!
//! `POST /api/telegram/link {"init_data"}` uses the initData up (its replay claim) and writes
//! the link together, under the condition that the Telegram user is not blocked: one DynamoDB
//! `TransactWriteItems` (one SQLite transaction). A refusal — replayed, blocked, or either side
//! linked elsewhere — writes nothing, so the same initData can be used again once the conflict
//! is resolved. Linking a pair that is already linked also uses the claim up (the request was
//! accepted) and leaves the link unchanged.
//!
//! DynamoDB cost: one `TransactWriteItems` on the happy path; after a failed condition, the
//! reads that tell which one failed (and, for an already linked pair, one conditional claim
//! write).

use async_trait::async_trait;

use super::{Link, LinkSide, ReplayClaim, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiniAppLinkOutcome {
    /// The claim and both link items were written.
    Linked(Link),
    /// The same pair was linked already; the claim was written, the stored link is returned.
    AlreadyLinked(Link),
    /// The initData's claim is live. Nothing written.
    Replayed,
    /// The Telegram user is blocked. Nothing written.
    Blocked,
    /// This side is linked elsewhere (when both are, `Telegram`). Nothing written.
    Conflict(LinkSide),
}

#[async_trait]
pub trait MiniAppFlow: Send + Sync {
    /// Checks, in this order of precedence: replayed, blocked, Telegram user linked elsewhere,
    /// app user linked elsewhere.
    async fn claim_and_link(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, StoreError>;
}
