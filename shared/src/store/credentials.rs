//! Port: a user's credential record (`USER#<id>` / `CREDENTIALS`).
//!
//! One item per user holds the sealed secrets (bot token, MTProto session, phone, channel
//! invite; all under ONE data key, see [`crate::seal`]), the plain facts about them (bot
//! username, channel id, Telegram user id, when the session was saved and last used, why it
//! needs re-authentication) and a `version` that grows by one on every change and serves as
//! the ETag of what workers receive.
//!
//! Writes are conditional on the version that was read (optimistic concurrency), so two
//! concurrent changes never lose one another: the loser gets [`WriteOutcome::Conflict`] and
//! re-reads. `last_used_at` is written only by [`Credentials::read_for_worker`] (never by
//! [`Credentials::write`]), so a worker's activity and a settings change cannot overwrite
//! each other either.
//!
//! The item also holds the SHA-256 hashes of the user's active worker tokens (written only by
//! [`super::WorkerTokens`]), so that a worker's read checks its token and reads the record in
//! ONE store call ([`WorkerAuth::Token`]). Creating a token before any credentials exist may
//! therefore leave an item with token hashes and nothing else (a *stub*): every method here
//! treats an item without a `version` as "no record", [`Credentials::write`] at version 0
//! fills a stub in, and no write ever drops the token hashes.

use async_trait::async_trait;

use super::StoreError;
use crate::{
    ids::{TelegramUserId, UserId},
    seal::SealedRecord,
    time::UnixTime,
    token::TokenHash,
};

/// Names of the sealed attributes a credential record may hold.
pub const SEALED_BOT_TOKEN: &str = "bot_token";
pub const SEALED_SESSION: &str = "session";
pub const SEALED_PHONE: &str = "phone";
pub const SEALED_CHANNEL_INVITE: &str = "channel_invite";
pub const SEALED_NAMES: [&str; 4] = [
    SEALED_BOT_TOKEN,
    SEALED_SESSION,
    SEALED_PHONE,
    SEALED_CHANNEL_INVITE,
];

/// Why a stored session needs re-authentication (a worker reported it dead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reauth {
    /// The MTProto error reported, e.g. `AUTH_KEY_UNREGISTERED`.
    pub reason: String,
    pub at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsRecord {
    pub user_id: UserId,
    /// 0 for a record never stored; the stored version otherwise (1 after the first write).
    pub version: u64,
    /// The sealed secrets (names from [`SEALED_NAMES`]) and their wrapped data key; `None`
    /// when the record holds no secret.
    pub sealed: Option<SealedRecord>,
    pub bot_username: Option<String>,
    pub bot_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub telegram_user_id: Option<TelegramUserId>,
    /// Set exactly when a session is stored.
    pub session_saved_at: Option<UnixTime>,
    /// The last worker read while the session was live (written only by
    /// [`Credentials::read_for_worker`]).
    pub last_used_at: Option<UnixTime>,
    pub reauth: Option<Reauth>,
    pub updated_at: UnixTime,
}

impl CredentialsRecord {
    /// A record that does not exist yet.
    pub fn empty(user_id: UserId) -> Self {
        Self {
            user_id,
            version: 0,
            sealed: None,
            bot_username: None,
            bot_id: None,
            channel_id: None,
            telegram_user_id: None,
            session_saved_at: None,
            last_used_at: None,
            reauth: None,
            updated_at: UnixTime(0),
        }
    }

    /// Whether the sealed attribute `name` is present (no decryption needed).
    pub fn has_sealed(&self, name: &str) -> bool {
        self.sealed
            .as_ref()
            .is_some_and(|s| s.attributes.contains_key(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored as this version.
    Written { version: u64 },
    /// The stored version is not the one the record was read at: re-read and retry.
    Conflict,
    /// [`Credentials::write_as`] with a worker token that is no longer one of the user's
    /// active tokens (revoked since it was checked): nothing was written.
    TokenInvalid,
}

/// How a worker's read is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerAuth<'a> {
    /// The user's own app JWT, already verified.
    App,
    /// A worker token naming this user: its hash must be one of the user's active worker
    /// token hashes, checked in the same store call as the read.
    Token(&'a TokenHash),
}

/// The outcome of [`Credentials::read_for_worker`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, as large as the Option<CredentialsRecord> it wraps"
)]
pub enum WorkerRead {
    /// Authorized: the user's record, `None` if there is none (yet).
    Record(Option<CredentialsRecord>),
    /// [`WorkerAuth::Token`] whose hash is not among the user's active tokens (unknown,
    /// revoked, or another user's). Nothing of the record is returned.
    TokenInvalid,
}

#[async_trait]
pub trait Credentials: Send + Sync {
    /// The user's record (one strongly consistent read), if any.
    async fn get(&self, user: &UserId) -> Result<Option<CredentialsRecord>, StoreError>;

    /// Stores `record` as version `record.version + 1`, if the stored version is still
    /// `record.version` (0: no record may exist; a stub holding only worker-token hashes is
    /// no record). Absent optional fields are removed. Never writes `last_used_at`, never
    /// touches the worker-token hashes.
    async fn write(&self, record: &CredentialsRecord) -> Result<WriteOutcome, StoreError> {
        self.write_as(record, WorkerAuth::App).await
    }

    /// [`Credentials::write`] on behalf of `auth`: with [`WorkerAuth::Token`], the token's
    /// hash must still be one of the user's active worker-token hashes, checked in the SAME
    /// conditional write (a token revoked after the caller checked it changes nothing:
    /// [`WriteOutcome::TokenInvalid`]).
    async fn write_as(
        &self,
        record: &CredentialsRecord,
        auth: WorkerAuth<'_>,
    ) -> Result<WriteOutcome, StoreError>;

    /// A worker's read, authorized by `auth`: the record, in ONE store call that checks the
    /// worker token (if any) and also records the activity (`last_used_at = now`) when the
    /// caller is authorized and a session is stored and was active within `max_idle_secs`.
    /// An idle-expired session is not revived. Does not change `version`. A worker token that
    /// is not active for `user` gets [`WorkerRead::TokenInvalid`] and writes nothing.
    async fn read_for_worker(
        &self,
        user: &UserId,
        now: UnixTime,
        max_idle_secs: u64,
        auth: WorkerAuth<'_>,
    ) -> Result<WorkerRead, StoreError>;
}

/// The sealing scope's record identity of a user's credentials: a fixed string, not a
/// storage key (DynamoDB keeps the record under `VAULT#<id>`; this stays `USER#<id>/CREDENTIALS`
/// so that sealed data keeps its meaning).
pub fn record_key(user: &UserId) -> String {
    format!("USER#{}/CREDENTIALS", user.as_str())
}
