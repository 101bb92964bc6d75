//! Port: the sign-in record of a Telegram user (`TGSIGNIN#<id>` / `SIGNIN`): its sessions,
//! its initData replay claims, and mirrors of its link and block — so that a token exchange
//! and a refresh are each **one** conditional write that knows everything it must (issue 14).
//!
//! A *session* is one sign-in of a Telegram user (through the Mini App now; `amr` names the
//! method, so Telegram OIDC and the Login Widget plug in later): its refresh token (stored only
//! as its SHA-256, with the hashes of the last [`PREVIOUS_SLOTS`] rotated ones for reuse
//! detection), `amr`, `auth_time`, `created_at`, its absolute expiry
//! (`TELEGRAM_SESSION_TTL_SEC`), the Telegram profile proven at sign-in, the `client_id`, and
//! the app user it linked (`linked`, at most once).
//!
//! - [`SignIns::start`] (the token exchange): the initData's replay claim, the block check
//!   and the new session in one write. At [`SignIns::start`]'s `max_sessions` the oldest
//!   session is evicted (one more write).
//! - [`SignIns::refresh`]: rotates the refresh token if it is the session's current one, the
//!   session is live and the user not blocked; returns the session with the app user linked
//!   *now*. A rotated-away token of a live session (one of the last [`PREVIOUS_SLOTS`]) is
//!   **reuse** (RFC 9700 §4.14.2): the whole session is ended (one more write) and
//!   [`RefreshOutcome::Reused`] returned. Anything else (unknown, older than the slots, expired,
//!   ended session, blocked user) is [`RefreshOutcome::Invalid`] and changes nothing. So of
//!   concurrent refreshes with one token exactly one succeeds; the others are reuse and end
//!   the session (including the winner's new token).
//! - Unlink (both sides), admin revoke, `/disconnect` and block end **every** session of the
//!   Telegram user in the same transaction as the link's removal (no epoch: the sessions are
//!   gone). Every write of a link records its app user here (the link mirror), so the next
//!   refresh carries `app_user_id`.
//! - The initData replay claims of every use of an initData (token exchange, link by
//!   initData) live here too: one namespace, so an initData that signed in cannot also link.

use std::fmt;

use async_trait::async_trait;
use aws_lc_rs::rand::SecureRandom;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{Link, LinkSide, StoreError};
use crate::{
    ids::{TelegramUserId, UserId},
    time::UnixTime,
    token::{TOKEN_LEN, TokenFormatError, TokenHash},
};

/// How many rotated-away refresh tokens of a session are remembered (round-robin by
/// generation): presenting one of them is detected as reuse; an older one is merely refused.
pub const PREVIOUS_SLOTS: u32 = 16;

/// Default cap of live sessions per Telegram user (`TGLINK_SESSIONS_MAX`).
pub const DEFAULT_SESSIONS_MAX: u32 = 20;

/// How a session signed in (the access token's `amr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amr {
    TelegramMiniApp,
    TelegramOidc,
    TelegramWidget,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TelegramMiniApp => "telegram_miniapp",
            Self::TelegramOidc => "telegram_oidc",
            Self::TelegramWidget => "telegram_widget",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "telegram_miniapp" => Ok(Self::TelegramMiniApp),
            "telegram_oidc" => Ok(Self::TelegramOidc),
            "telegram_widget" => Ok(Self::TelegramWidget),
            _ => Err(StoreError::Corrupt("unknown amr".into())),
        }
    }
}

/// A session id: 32 random bits, unique among one Telegram user's sessions; shown as 8
/// lowercase hex digits (the access token's `sid`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u32);

impl SessionId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 4];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("system random source failed");
        Self(u32::from_be_bytes(bytes))
    }

    pub fn from_u32(v: u32) -> Self {
        Self(v)
    }

    /// Exactly 8 lowercase hex digits.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 8 && raw.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| u32::from_str_radix(raw, 16).ok().map(Self))
            .flatten()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Where a refresh token points: its Telegram user, its session and its generation (0 for
/// the token of the exchange, +1 per rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshKey {
    pub telegram_user_id: TelegramUserId,
    pub sid: SessionId,
    pub generation: u32,
}

/// A refresh token: 32 bytes, base64url (43 characters): the Telegram user id (8 bytes), the
/// session id (4), the generation (4) and 128 random bits, so the server finds its record
/// without a second item. Opaque to clients (no client may rely on its content); only its
/// SHA-256 is stored. Never logged: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    raw: String,
    key: RefreshKey,
}

impl RefreshToken {
    pub fn mint(key: RefreshKey) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&key.telegram_user_id.get().to_be_bytes());
        bytes[8..12].copy_from_slice(&key.sid.0.to_be_bytes());
        bytes[12..16].copy_from_slice(&key.generation.to_be_bytes());
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes[16..])
            .expect("system random source failed");
        Self {
            raw: URL_SAFE_NO_PAD.encode(bytes),
            key,
        }
    }

    /// Accepts only the shape [`RefreshToken::mint`] produces.
    pub fn parse(raw: &str) -> Result<Self, TokenFormatError> {
        if raw.len() != TOKEN_LEN {
            return Err(TokenFormatError::Length);
        }
        let bytes = match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            _ => return Err(TokenFormatError::Alphabet),
        };
        let word = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[range]);
            u32::from_be_bytes(b)
        };
        let mut tg = [0u8; 8];
        tg.copy_from_slice(&bytes[..8]);
        let telegram_user_id =
            TelegramUserId::new(i64::from_be_bytes(tg)).map_err(|_| TokenFormatError::Alphabet)?;
        Ok(Self {
            raw: raw.to_owned(),
            key: RefreshKey {
                telegram_user_id,
                sid: SessionId(word(8..12)),
                generation: word(12..16),
            },
        })
    }

    pub fn key(&self) -> RefreshKey {
        self.key
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.raw.as_bytes())
    }

    /// The secret text, for the one place that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The token that replaces this one at a refresh.
    pub fn next(&self) -> Self {
        Self::mint(RefreshKey {
            generation: self.key.generation.wrapping_add(1),
            ..self.key
        })
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The Telegram profile proven at sign-in (the access token's profile claims). Serializable
/// (absent fields default) for the authorization code that carries it (`authorizations`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Profile {
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub language_code: Option<String>,
    pub is_premium: Option<bool>,
}

/// A session being started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub telegram_user_id: TelegramUserId,
    pub sid: SessionId,
    pub amr: Amr,
    pub client_id: String,
    pub profile: Profile,
    /// When the user authenticated (the initData's `auth_date`).
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    /// Absolute end of the session (`created_at + TELEGRAM_SESSION_TTL_SEC`).
    pub expires_at: UnixTime,
    /// SHA-256 of the session's first refresh token (generation 0).
    pub refresh: TokenHash,
}

/// One use of an initData: its replay key and until when the claim is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitDataUse {
    pub telegram_user_id: TelegramUserId,
    /// `InitData::replay_key`.
    pub fingerprint: TokenHash,
    pub retain_until: UnixTime,
    pub now: UnixTime,
}

/// A live session as stored, with the app user the Telegram user is linked to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub telegram_user_id: TelegramUserId,
    pub sid: SessionId,
    pub amr: Amr,
    pub client_id: String,
    pub profile: Profile,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// The app user linked to the Telegram user (the link mirror), if any.
    pub app_user_id: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The claim and the session were written (`evicted`: the oldest session ended to make
    /// room under the cap).
    Started {
        session: SignedIn,
        evicted: Option<SessionId>,
    },
    /// The initData was used before (its claim is live). Nothing written.
    Replayed,
    /// The Telegram user is blocked. Nothing written.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Rotated: the presented token is now a previous one.
    Refreshed(SignedIn),
    /// The presented token was rotated away already: the session was ended.
    Reused,
    /// Unknown, too old, expired, ended, or the user is blocked. Nothing written.
    Invalid,
}

/// What `POST /api/telegram/miniapp/verify` learns about an initData (one read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitDataStanding {
    pub blocked: bool,
    /// The initData's replay claim is live (it signed in or linked).
    pub used: bool,
}

/// How linking with an access token (its session) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLinkOutcome {
    /// Both link items were written and the session recorded the app user.
    Linked(Link),
    /// The same pair was linked already (the stored link, unchanged; nothing written).
    AlreadyLinked(Link),
    /// The session is ended or expired, or it linked another app user before. Nothing
    /// written. (The app user it linked may present it again: `AlreadyLinked`.)
    Invalid,
    Blocked,
    Conflict(LinkSide),
}

/// How linking with an initData ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDataLinkOutcome {
    /// The claim and both link items were written.
    Linked(Link),
    /// The same pair was linked already; the claim was written.
    AlreadyLinked(Link),
    /// The initData's claim is live. Nothing written.
    Replayed,
    Blocked,
    Conflict(LinkSide),
}

#[async_trait]
pub trait SignIns: Send + Sync {
    /// The token exchange: claims `initdata` and starts `session` in one write, unless the
    /// claim is live (`Replayed`, reported first) or the user is blocked. At `max_sessions`
    /// live sessions the oldest is ended (a second write).
    async fn start(
        &self,
        session: &NewSession,
        initdata: &InitDataUse,
        max_sessions: u32,
    ) -> Result<StartOutcome, StoreError>;

    /// Rotates `presented` to `next` (one write); see the module doc for reuse.
    async fn refresh(
        &self,
        presented: &RefreshToken,
        next: &TokenHash,
        now: UnixTime,
    ) -> Result<RefreshOutcome, StoreError>;

    /// Ends the session of `presented` if it is its current token or one of the remembered
    /// previous ones (RFC 7009 logout). Whether a session was ended.
    async fn end_by_refresh(&self, presented: &RefreshToken) -> Result<bool, StoreError>;

    /// Ends the session `sid` of the Telegram user (revocation by a verified access token).
    async fn end_session(&self, id: TelegramUserId, sid: SessionId) -> Result<bool, StoreError>;

    /// The live session `sid` (one read).
    async fn session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<Option<SignedIn>, StoreError>;

    /// Whether the user is blocked and the initData used (one read).
    async fn standing(
        &self,
        id: TelegramUserId,
        fingerprint: &TokenHash,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError>;

    /// Links `user` to the Telegram user of the live session `sid`, in one transaction that
    /// also checks the block and that the session is live and has linked no other app user
    /// (a session links at most once), and records the link on it. Precedence: blocked, session invalid, Telegram user linked
    /// elsewhere, app user linked elsewhere.
    async fn link_with_session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        user: &UserId,
        username: Option<String>,
        now: UnixTime,
    ) -> Result<TokenLinkOutcome, StoreError>;

    /// Links through an initData: its claim and both link items in one transaction, unless
    /// replayed (first), blocked, or either side is linked elsewhere.
    async fn link_with_initdata(
        &self,
        link: &Link,
        initdata: &InitDataUse,
    ) -> Result<InitDataLinkOutcome, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_43_chars_and_carry_their_key() {
        let key = RefreshKey {
            telegram_user_id: TelegramUserId::new(9_007_199_254_740_991).unwrap(),
            sid: SessionId::from_u32(0xdead_beef),
            generation: 7,
        };
        let t = RefreshToken::mint(key);
        assert_eq!(t.expose().len(), 43);
        let parsed = RefreshToken::parse(t.expose()).unwrap();
        assert_eq!(parsed.key(), key);
        assert_eq!(parsed.hash(), t.hash());
        assert_ne!(RefreshToken::mint(key), t);
        assert_eq!(t.next().key().generation, 8);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert_eq!(key.sid.to_string(), "deadbeef");
        assert_eq!(SessionId::parse("deadbeef"), Some(key.sid));
        assert_eq!(SessionId::parse("DEADBEEF"), None);
        assert_eq!(SessionId::parse("dead"), None);
    }

    #[test]
    fn refresh_token_parse_refuses_other_shapes() {
        assert_eq!(RefreshToken::parse("x"), Err(TokenFormatError::Length));
        assert_eq!(
            RefreshToken::parse(&"!".repeat(43)),
            Err(TokenFormatError::Alphabet)
        );
        // A zero Telegram user id is not a token we minted.
        let zeros = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert!(RefreshToken::parse(&zeros).is_err());
    }
}
