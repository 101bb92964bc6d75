//! The credential vault's shared domain: what both `settings` (which seals and writes) and
//! `worker-credentials` (which only reads and opens) need.
//!
//! - the sealing scope of a user's credential record (purpose `credentials`, record
//!   `USER#<id>/CREDENTIALS`), so a sealed value copied into another user's record does not
//!   open;
//! - worker tokens (`tgw_<base64url(user id)>.<43-character secret>`, told apart from a JWT
//!   at a glance; see [`WorkerToken`]) and authentication by app JWT or worker token, the user
//!   id coming only from the token (a worker token's user id is trusted only once the store
//!   has found the token's hash among that user's active tokens);
//! - [`SecretString`], a redacting, zeroizing string for secrets arriving in request bodies;
//! - [`Clock`], so tests can move time.
//!
//! Sealing itself happens only in `settings`; this module never calls [`crate::seal::Sealer::seal`].

use std::{fmt, sync::Arc};

use aws_lc_rs::rand::SecureRandom;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::header;
use lambda_http::Request;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::{
    auth::{AppUser, AuthError, JwtVerifier},
    config::{ConfigError, Env, positive_or},
    http::{Problem, bearer_token},
    ids::UserId,
    seal::SealScope,
    store::{WorkerTokens, credentials::record_key},
    time::UnixTime,
    token::{OneTimeToken, TokenHash},
};

/// The encryption-context purpose of credential records.
pub const PURPOSE: &str = "credentials";

/// Default `TELEGRAM_SESSION_MAX_IDLE_SEC`: 7 days.
pub const DEFAULT_MAX_IDLE_SECS: u64 = 604_800;

/// `TELEGRAM_SESSION_MAX_IDLE_SEC`.
pub fn max_idle_from_env(env: &dyn Env) -> Result<u64, ConfigError> {
    positive_or(env, "TELEGRAM_SESSION_MAX_IDLE_SEC", DEFAULT_MAX_IDLE_SECS)
}

/// The sealing scope of `user`'s credential record.
pub fn scope(user: &UserId) -> SealScope {
    SealScope::new(PURPOSE, user, record_key(user))
}

/// A secret string from a request body or the configuration: redacted in `Debug`, no
/// `Display`, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// The prefix of every worker token.
pub const WORKER_TOKEN_PREFIX: &str = "tgw_";

/// Separates a worker token's user-id part from its secret (`.` is not in base64url).
const WORKER_TOKEN_SEPARATOR: char = '.';

/// A worker token: `tgw_<base64url(user id)>.<secret>`, where the user id is the owner's
/// [`UserId`] as UTF-8 in base64url without padding (1 to 344 characters) and the secret is 32
/// random bytes in base64url (43 characters, a [`OneTimeToken`]). The user id is readable by
/// anyone holding the token (it is not a secret); it only tells the store which credentials
/// item to read, in the same call that checks the token.
///
/// Stored only as the SHA-256 of the WHOLE token text ([`WorkerToken::hash`]), in the owner's
/// set of active token hashes: a token whose user-id part is changed has another hash, which
/// is in no user's set.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerToken {
    text: Zeroizing<String>,
    user_id: UserId,
}

impl WorkerToken {
    /// A new token for `user`.
    pub fn mint(user: &UserId) -> Self {
        Self {
            text: Zeroizing::new(format!(
                "{WORKER_TOKEN_PREFIX}{}{WORKER_TOKEN_SEPARATOR}{}",
                URL_SAFE_NO_PAD.encode(user.as_str()),
                OneTimeToken::mint().expose()
            )),
            user_id: user.clone(),
        }
    }

    /// Accepts only the exact shape [`WorkerToken::mint`] produces: the prefix, canonical
    /// base64url (no padding) of a valid user id, the separator, and a 43-character secret.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(WORKER_TOKEN_PREFIX)?;
        let (user_part, secret) = rest.split_once(WORKER_TOKEN_SEPARATOR)?;
        // The user-id part: 1 to 256 bytes in base64url, so at most 344 characters.
        if user_part.is_empty() || user_part.len() > UserId::MAX_LEN.div_ceil(3) * 4 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(user_part).ok()?;
        // Exactly one spelling per user id (no trailing bits, no padding).
        if URL_SAFE_NO_PAD.encode(&bytes) != user_part {
            return None;
        }
        let user_id = UserId::parse(std::str::from_utf8(&bytes).ok()?).ok()?;
        OneTimeToken::parse(secret).ok()?;
        Some(Self {
            text: Zeroizing::new(raw.to_owned()),
            user_id,
        })
    }

    /// The owner the token names (checked by the store read that also checks the token).
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// SHA-256 of the whole token text.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.text.as_bytes())
    }

    /// The secret text, for the one response that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for WorkerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerToken(<redacted>)")
    }
}

/// A new public worker-token id: `wt_` + 12 random bytes in base64url.
pub fn new_worker_token_id() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source failed");
    format!("wt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `id` has the shape of a worker-token id (anything else cannot exist).
pub fn is_worker_token_id(id: &str) -> bool {
    id.len() == 19
        && id.starts_with("wt_")
        && id[3..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The user, with an app JWT.
    App(AppUser),
    /// One of the user's workers, with an active worker token.
    Worker { user_id: UserId },
}

impl Caller {
    /// The user id: always from a verified token, never from the request otherwise.
    pub fn user_id(&self) -> &UserId {
        match self {
            Self::App(user) => &user.user_id,
            Self::Worker { user_id } => user_id,
        }
    }

    /// `jwt` or `worker_token`, for logs.
    pub fn via(&self) -> &'static str {
        match self {
            Self::App(_) => "jwt",
            Self::Worker { .. } => "worker_token",
        }
    }
}

/// The bearer credential of a request, before the store has been asked about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// A verified app JWT: authenticated.
    App(AppUser),
    /// A well-formed worker token: NOT yet authenticated. It only names the user whose
    /// record to read; the read itself checks that the token is one of that user's active
    /// tokens (`WorkerAuth::Token`) and answers [`worker_token_invalid`] otherwise.
    Worker(WorkerToken),
}

impl Presented {
    /// The user the credential names (for a worker token: to be checked by the store).
    pub fn user_id(&self) -> &UserId {
        match self {
            Self::App(user) => &user.user_id,
            Self::Worker(token) => token.user_id(),
        }
    }

    /// `jwt` or `worker_token`, for logs.
    pub fn via(&self) -> &'static str {
        match self {
            Self::App(_) => "jwt",
            Self::Worker(_) => "worker_token",
        }
    }
}

/// The 401 of a worker token that is malformed, unknown, revoked, or not the named user's.
pub fn worker_token_invalid() -> Problem {
    Problem::unauthorized(
        "worker_token_invalid",
        "the worker token is unknown or revoked",
    )
}

/// Reads `Authorization: Bearer <app JWT or worker token>` without any store call. A JWT
/// (three dot-separated parts) is verified by `jwt`; a `tgw_` token must have the exact shape
/// of [`WorkerToken`] and is returned unchecked ([`Presented::Worker`]): the caller must
/// check it in the store. 401 otherwise.
pub fn present_app_or_worker(jwt: &JwtVerifier, req: &Request) -> Result<Presented, Problem> {
    let token = bearer_token(req).ok_or(AuthError::Missing)?;
    if token.starts_with(WORKER_TOKEN_PREFIX) {
        return WorkerToken::parse(token)
            .map(Presented::Worker)
            .ok_or_else(worker_token_invalid);
    }
    if token.split('.').count() == 3 {
        return Ok(Presented::App(jwt.verify(token)?));
    }
    Err(AuthError::Invalid("neither an app JWT nor a worker token").into())
}

/// Authenticates `Authorization: Bearer <app JWT or worker token>`: a worker token must be one
/// of its named user's active tokens (one strongly consistent read). 401 otherwise, 503 if the
/// store is down. (`worker-credentials` does not use this: its credentials read checks the
/// token in the same store call.)
pub async fn authenticate_app_or_worker(
    jwt: &JwtVerifier,
    tokens: &dyn WorkerTokens,
    req: &Request,
) -> Result<Caller, Problem> {
    match present_app_or_worker(jwt, req)? {
        Presented::App(user) => Ok(Caller::App(user)),
        Presented::Worker(token) => {
            if tokens.is_active(token.user_id(), &token.hash()).await? {
                Ok(Caller::Worker {
                    user_id: token.user_id().clone(),
                })
            } else {
                Err(worker_token_invalid())
            }
        }
    }
}

/// Where "now" comes from: the system clock, or a test's.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> UnixTime + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(UnixTime::now))
    }

    pub fn new(f: impl Fn() -> UnixTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn now(&self) -> UnixTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// The entity tag of credential record `version` as served to workers: the version, plus a
/// short fingerprint of the deployment values served with it (so that a changed API hash or
/// backend URL also changes the tag).
pub fn etag(version: u64, fingerprint: &str) -> String {
    format!("\"{version}-{fingerprint}\"")
}

/// The record version an entity tag from [`etag`] names.
pub fn etag_version(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    inner.split('-').next()?.parse().ok()
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, `*` matches).
pub fn if_none_match(req: &Request, etag: &str) -> bool {
    let strip = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let current = strip(etag);
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| candidate.trim() == "*" || strip(candidate) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_tokens_have_a_prefix_and_a_fixed_shape() {
        let alice = UserId::parse("alice").unwrap();
        let t = WorkerToken::mint(&alice);
        assert!(t.expose().starts_with("tgw_YWxpY2U."), "{:?}", t.expose());
        assert_eq!(t.expose().len(), "tgw_YWxpY2U.".len() + 43);
        assert_eq!(t.user_id(), &alice);
        assert_eq!(WorkerToken::parse(t.expose()), Some(t.clone()));
        assert!(WorkerToken::parse("tgw_short").is_none());
        assert!(WorkerToken::parse(&t.expose()[4..]).is_none());
        assert_ne!(t.hash().as_str(), t.expose());
        assert_eq!(t.hash(), TokenHash::of(t.expose().as_bytes()));
        let secret = &t.expose()["tgw_YWxpY2U.".len()..];
        assert!(!format!("{t:?}").contains(secret));
        assert_ne!(WorkerToken::mint(&alice), t);

        // Another user id in the token is another token, with another hash.
        let bob = format!("tgw_{}.{secret}", URL_SAFE_NO_PAD.encode("bob"));
        let bob = WorkerToken::parse(&bob).unwrap();
        assert_eq!(bob.user_id().as_str(), "bob");
        assert_ne!(bob.hash(), t.hash());

        // Exactly the minted shape: no padding, no non-canonical spelling, no empty or
        // invalid user id, no second separator, a 43-character secret.
        for bad in [
            format!("tgw_YWxpY2U=.{secret}"),
            format!("tgw_YWxpY2V.{secret}"),
            format!("tgw_.{secret}"),
            format!("tgw_{}.{secret}", URL_SAFE_NO_PAD.encode("a\nb")),
            format!("tgw_{}.{secret}", URL_SAFE_NO_PAD.encode([0xff, 0xfe])),
            format!("tgw_YWxpY2U.{secret}."),
            format!("tgw_YWxpY2U..{secret}"),
            format!("tgw_YWxpY2U.{}", &secret[1..]),
            format!("tgw_YWxpY2U{secret}"),
            format!("TGW_YWxpY2U.{secret}"),
            format!("tgw_{}.{secret}", "A".repeat(348)),
        ] {
            assert!(WorkerToken::parse(&bad).is_none(), "{bad}");
        }
        // The longest user id fits.
        let long = UserId::parse(&"x".repeat(UserId::MAX_LEN)).unwrap();
        let t = WorkerToken::mint(&long);
        assert_eq!(WorkerToken::parse(t.expose()).unwrap().user_id(), &long);
    }

    #[test]
    fn worker_token_ids() {
        let id = new_worker_token_id();
        assert!(is_worker_token_id(&id), "{id}");
        assert_ne!(id, new_worker_token_id());
        assert!(!is_worker_token_id("wt_../../etc"));
        assert!(!is_worker_token_id("USER#x"));
    }

    #[test]
    fn secret_string_redacts() {
        let s: SecretString = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn etags_and_if_none_match() {
        let tag = etag(7, "abcd1234");
        assert_eq!(tag, "\"7-abcd1234\"");
        assert_eq!(etag_version(&tag), Some(7));
        assert_eq!(etag_version("W/\"12-x\""), Some(12));
        assert_eq!(etag_version("12"), None);
        let req = |v: &str| {
            http::Request::builder()
                .header(header::IF_NONE_MATCH, v)
                .body(lambda_http::Body::Empty)
                .unwrap()
        };
        assert!(if_none_match(&req(&tag), &tag));
        assert!(if_none_match(&req(&format!("\"1-x\", W/{tag}")), &tag));
        assert!(if_none_match(&req("*"), &tag));
        assert!(!if_none_match(&req("\"6-abcd1234\""), &tag));
        let none = http::Request::builder()
            .body(lambda_http::Body::Empty)
            .unwrap();
        assert!(!if_none_match(&none, &tag));
    }

    #[test]
    fn scope_binds_purpose_user_and_record() {
        let user = UserId::parse("u1").unwrap();
        let s = scope(&user);
        assert_eq!(s.record, "USER#u1/CREDENTIALS");
        assert_eq!(s.context.purpose, "credentials");
        assert_eq!(s.context.user_id, user);
    }
}
