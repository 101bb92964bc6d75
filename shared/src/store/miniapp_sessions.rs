//! Port: Mini App sessions (`SESSION#<hash>` / `SESSION`).
//!
//! A session is what verified `initData` is exchanged for: a 43-character bearer token (minted
//! like a one-time token), stored only as its SHA-256, that stands for "Telegram user N proved
//! itself through the Mini App" until `expires_at`. It carries the Telegram user and username,
//! the app user linked at creation (if any), the initData fingerprint (its replay key),
//! `auth_date`, the source (`miniapp`), `created_at`, `expires_at` and an `active` flag. Reads return only active,
//! unexpired sessions (DynamoDB TTL deletes late, so `expires_at` is checked in the read).
//!
//! [`MiniAppSessions::create`] writes the initData's replay claim (`CLAIM#initdata#<fingerprint>`,
//! kept for the replay window, and at least as long as the initData is accepted) and the session
//! in **one** transaction, under the condition that the Telegram user is not blocked: either the
//! initData is used up and the session exists, or neither. A store failure therefore never burns
//! the initData, and a retry of the same initData after a `503` can still succeed.
//!
//! **A session is not a reusable link ticket** (issue 13). Every Telegram user has a *session
//! epoch* (`TGUSER#<id>` / `SESSIONS`, SQLite `telegram_session_epochs`; absent = 0), and every
//! session records the epoch it was made in ([`MiniAppSessions::basis`], read together with the
//! link before the session is written). Every removal of a link — the user's unlink, an admin
//! revoke, the bot's `/disconnect`, a block — bumps the epoch **in the same transaction** as the
//! removal, and a block bumps it even when there was no link. A session links
//! ([`super::MiniAppFlow::link_session`]) only while its epoch is current, and only the app user
//! it names (`user_id`: the one linked when it was made, or the first one it linked); the epoch
//! and the session are conditions of the link's own transaction, so this holds across instances.
//! So once the link a session made or saw is gone, or the user was blocked, the session is dead
//! for everyone — also after an unblock. A session made concurrently with an unlink may be born
//! with the old epoch: it is then refused (`session_invalid`), never wrongly accepted.

use async_trait::async_trait;

use super::{ClaimKey, StoreError};
use crate::{
    ids::{TelegramUserId, UserId},
    time::UnixTime,
    token::TokenHash,
};

/// The `source` of every Mini App session.
pub const SESSION_SOURCE: &str = "miniapp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniAppSession {
    /// SHA-256 of the session token (the token itself is never stored).
    pub hash: TokenHash,
    pub telegram_user_id: TelegramUserId,
    /// The Telegram `@username` from the initData, without the `@` (for the link record).
    pub username: Option<String>,
    /// The app user the Telegram user was linked to at creation, or the first one this session
    /// linked: the only one it may link.
    pub user_id: Option<UserId>,
    /// The Telegram user's session epoch when the session was made ([`SessionBasis::epoch`]).
    /// The session links only while this is still the user's epoch.
    pub epoch: u64,
    /// The initData's replay key (`InitData::replay_key`).
    pub initdata_fingerprint: TokenHash,
    /// `auth_date` of the initData, Unix seconds.
    pub auth_date: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub active: bool,
}

/// The replay claim written together with a session or a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayClaim {
    pub key: ClaimKey,
    /// How long the claim is kept (the replay window).
    pub retain_secs: u64,
    pub now: UnixTime,
}

impl ReplayClaim {
    /// The claim of one initData fingerprint.
    pub fn initdata(fingerprint: &TokenHash, retain_secs: u64, now: UnixTime) -> Self {
        Self {
            key: ClaimKey::new("initdata", fingerprint.as_str()),
            retain_secs,
            now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutcome {
    /// The claim and the session were written.
    Created,
    /// The initData's claim is live: it was used before. Nothing written.
    Replayed,
    /// The Telegram user is blocked. Nothing written (the claim neither).
    Blocked,
}

/// What a new session of a Telegram user is made on (read together, in one call).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionBasis {
    /// The app user the Telegram user is linked to, if any.
    pub user_id: Option<UserId>,
    /// The Telegram user's current session epoch (0 when never bumped).
    pub epoch: u64,
}

/// What `POST /api/telegram/miniapp/verify` learns about an initData (read together, in one
/// call; nothing written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitDataStanding {
    /// The Telegram user is blocked.
    pub blocked: bool,
    /// The initData's replay claim is live: it was used (for a session or a link).
    pub used: bool,
}

#[async_trait]
pub trait MiniAppSessions: Send + Sync {
    /// The Telegram user's link (its app user) and session epoch, read together: what
    /// [`MiniAppSessions::create`] is given in `session.user_id` and `session.epoch`.
    async fn basis(&self, id: TelegramUserId) -> Result<SessionBasis, StoreError>;

    /// Whether the Telegram user is blocked and whether the claim `replay` is live at `now`,
    /// read together (one call, nothing written).
    async fn initdata_standing(
        &self,
        id: TelegramUserId,
        replay: &ClaimKey,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError>;

    /// Writes `replay`'s claim and `session` atomically, unless the claim is live or the
    /// Telegram user is blocked (replay is reported first).
    async fn create(
        &self,
        session: &MiniAppSession,
        replay: &ReplayClaim,
    ) -> Result<SessionOutcome, StoreError>;

    /// The active, unexpired session with this hash (one consistent read).
    async fn get_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<MiniAppSession>, StoreError>;
}
