//! Port: the one-time state of tglink's OpenID provider (issue 15 item 3), so that an
//! authorization started on one instance completes on any other and survives a restart.
//!
//! - A **pending authorization request** (`AUTHREQ#<hash of tglink's upstream state>`):
//!   what a client asked for at `GET /oauth/authorize` (client, redirect URI, its `state` and
//!   `nonce`, its PKCE `code_challenge`, scope) and tglink's own upstream PKCE verifier and
//!   nonce for Telegram. Lives [`REQUEST_TTL_SECS`]; taken **once** by the callback (a
//!   conditional write: of any number of callbacks with one `state` exactly one gets it).
//! - A **tglink authorization code** (`AUTHCODE#<hash of the code>`), stored only as its
//!   SHA-256: bound to the client, the redirect URI, the code challenge, the nonce and the
//!   Telegram identity that signed in. Lives at most [`CODE_TTL_SECS`]; redeemed **once** (a
//!   conditional write that records the session id the redemption starts). A second
//!   redemption is refused and told that session, so the caller ends it (RFC 6749 §4.1.2).
//!
//! Both records are JSON in one attribute (`data`); neither holds a bearer secret of tglink
//! (the code and the state are stored as hashes; the upstream PKCE verifier is useless without
//! Telegram's one-time code, which never reaches the store).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::{
    ids::TelegramUserId,
    store::signins::{Profile, SessionId},
    time::UnixTime,
    token::TokenHash,
};

/// How long a pending authorization request waits for Telegram's callback.
pub const REQUEST_TTL_SECS: u64 = 600;

/// How long a tglink authorization code may be redeemed (RFC 6749 §4.1.2: at most 10
/// minutes, 60 s or less recommended by RFC 9700).
pub const CODE_TTL_SECS: u64 = 60;

/// What the client asked for, and tglink's own upstream secrets for that request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub client_id: String,
    pub redirect_uri: String,
    /// The client's `state`, returned to it unchanged.
    pub client_state: String,
    /// The client's `nonce`, put in its ID token (optional in the code flow, OIDC Core
    /// §3.1.2.1).
    #[serde(default)]
    pub client_nonce: Option<String>,
    /// The client's PKCE `code_challenge` (S256).
    pub code_challenge: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// tglink's PKCE verifier for Telegram's token endpoint.
    pub upstream_verifier: String,
    /// tglink's nonce in Telegram's ID token.
    pub upstream_nonce: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A tglink authorization code as stored (under its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    #[serde(default)]
    pub nonce: Option<String>,
    pub scope: String,
    #[serde(with = "telegram_id")]
    pub telegram_user_id: TelegramUserId,
    pub profile: Profile,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// The code was live and unused: it is now used by `sid`.
    Redeemed(Box<IssuedCode>),
    /// The code was redeemed before, by the session `sid` of `telegram_user_id` (end it).
    Replayed {
        telegram_user_id: TelegramUserId,
        sid: SessionId,
    },
    /// No such code, or it expired. Nothing written.
    Unknown,
}

#[async_trait]
pub trait Authorizations: Send + Sync {
    /// Stores a pending request under the hash of tglink's upstream `state` (never
    /// overwrites another).
    async fn put_request(
        &self,
        state: &TokenHash,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError>;

    /// Takes the pending request once: the first caller before it expires gets it, every
    /// other call (or an unknown / expired state) gets `None`. `attempt` identifies this
    /// taking, so an SDK retry of the same call still gets it.
    async fn take_request(
        &self,
        state: &TokenHash,
        attempt: &str,
        now: UnixTime,
    ) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Stores a new authorization code under its hash (never overwrites another).
    async fn put_code(&self, code: &TokenHash, record: &IssuedCode) -> Result<(), StoreError>;

    /// Redeems the code once, recording `sid` (the session this redemption starts). A retry
    /// with the same `sid` is the same redemption.
    async fn redeem_code(
        &self,
        code: &TokenHash,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<RedeemOutcome, StoreError>;
}

/// A [`TelegramUserId`] as its JSON number (validated when read).
mod telegram_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::ids::TelegramUserId;

    pub fn serialize<S: Serializer>(id: &TelegramUserId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(id.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TelegramUserId, D::Error> {
        TelegramUserId::new(i64::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The stored JSON of a record.
pub fn encode<T: Serialize>(record: &T) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

/// A stored record from its JSON.
pub fn decode<T: for<'de> Deserialize<'de>>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|_| StoreError::Corrupt("authorization record".into()))
}
