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
//! kept for the replay window) and the session in **one** transaction, under the condition that
//! the Telegram user is not blocked: either the initData is used up and the session exists, or
//! neither. A store failure therefore never burns the initData, and a retry of the same
//! initData after a `503` can still succeed.

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
    /// The app user the Telegram user was linked to at creation (or later attached).
    pub user_id: Option<UserId>,
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

#[async_trait]
pub trait MiniAppSessions: Send + Sync {
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

    /// Records the app user on an active, unexpired session (one conditional write); `false`
    /// when there is no such session.
    async fn attach_user(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}
