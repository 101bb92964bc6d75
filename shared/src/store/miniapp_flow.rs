//! Port: linking through verified Mini App `initData`, in one atomic step.
//!
//! `POST /api/telegram/link {"init_data"}` uses the initData up (its replay claim) and writes
//! the link together, under the condition that the Telegram user is not blocked: one DynamoDB
//! `TransactWriteItems` (one SQLite transaction). A refusal — replayed, blocked, or either side
//! linked elsewhere — writes nothing, so the same initData can be used again once the conflict
//! is resolved. Linking a pair that is already linked also uses the claim up (the request was
//! accepted) and leaves the link unchanged.
//!
//! Linking through a session ([`MiniAppFlow::link_session`]) is one read of the session, then
//! one transaction: the link, the block check, the session's epoch check, and the session
//! naming its app user (see [`super::miniapp_sessions`] for why a session dies with its link).
//!
//! DynamoDB cost: one `TransactWriteItems` on the happy path of `claim_and_link`; after a failed condition, the
//! reads that tell which one failed (and, for an already linked pair, one conditional claim
//! write).

use async_trait::async_trait;

use super::{Link, LinkSide, ReplayClaim, StoreError};
use crate::{ids::UserId, time::UnixTime, token::TokenHash};

/// How `POST /api/telegram/link {"session_token"}` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLinkOutcome {
    /// Both link items were written and the session now names the app user.
    Linked(Link),
    /// The same pair was linked already (the stored link, unchanged).
    AlreadyLinked(Link),
    /// No such active, unexpired session; or it names another app user; or the Telegram user's
    /// session epoch moved on since it was made (an unlink, revoke or block). Nothing written.
    Invalid,
    /// The Telegram user is blocked. Nothing written.
    Blocked,
    /// This side is linked elsewhere (when both are, `Telegram`). Nothing written.
    Conflict(LinkSide),
}

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

    /// Links `user` to the Telegram user of the session `hash`, in one transaction that also
    /// checks the session (active, unexpired, naming no other app user), its epoch (still the
    /// Telegram user's) and the block, and records `user` on the session. Checked in this
    /// order of precedence: session unknown or naming another user (`Invalid`), blocked, epoch
    /// moved on (`Invalid`), Telegram user linked elsewhere, app user linked elsewhere.
    async fn link_session(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<SessionLinkOutcome, StoreError>;
}
