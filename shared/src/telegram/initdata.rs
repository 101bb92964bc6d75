//! Validation of Telegram Mini App `initData`.
//!
//! A Mini App reads `Telegram.WebApp.initData`, an `application/x-www-form-urlencoded` query
//! string such as
//!
//! ```text
//! query_id=AAH...&user=%7B%22id%22%3A279058397%2C...%7D&auth_date=1733584787&signature=zL-u...&hash=2174...
//! ```
//!
//! and forwards it verbatim to the backend, which must check that Telegram produced it before
//! trusting the user in it. Telegram offers two schemes; a [`Validator`] uses exactly one.
//!
//! # Parsing ([`parse`])
//!
//! The string is split on `&`; every field must be `key=value`, and keys and values are
//! form-decoded (`+` is a space, `%XX` is a byte, with `percent-encoding`). Each decoded value
//! is kept exactly as sent: the JSON text of `user`, `receiver` and `chat` is never
//! re-serialized for the check string. Stricter than the common libraries, the following are
//! [`InitDataError::Malformed`]:
//!
//! - input longer than [`MAX_INIT_DATA_BYTES`] (16 KiB), or empty;
//! - an empty field (`a=1&&b=2`, a leading or trailing `&`) or a field without `=`;
//! - an empty key, or a key with characters other than ASCII letters, digits and `_`
//!   (so a key cannot contain the `=` or `\n` of the check string);
//! - a value containing a C0 control character (U+0000 to U+001F, notably the `\n` separator
//!   of the check string; Telegram's JSON escapes them and its other values are identifiers);
//! - percent-escapes that decode to invalid UTF-8 (never silently replaced by U+FFFD);
//! - a key that occurs twice, after decoding (`user=..&us%65r=..` is a duplicate).
//!
//! A missing `hash` is [`InitDataError::HashMissing`]; a missing `auth_date` is
//! [`InitDataError::AuthDateMissing`], and one that is not a plain decimal `u64` (digits only:
//! no sign, no spaces) is [`InitDataError::AuthDateInvalid`].
//!
//! # The data-check-string
//!
//! Every field except the excluded ones, sorted by key (byte order), written `key=value` with
//! the decoded value, joined by `\n` (0x0A) with no trailing newline:
//!
//! ```text
//! auth_date=1733584787
//! chat_instance=8134722200314281151
//! chat_type=private
//! user={"id":279058397,"first_name":"Vladislav + - ? \/", ...}
//! ```
//!
//! # Scheme 1: HMAC-SHA256 with the bot token ([`validate_hmac`])
//!
//! ```text
//! secret_key        = HMAC-SHA256(key = "WebAppData", message = bot_token)
//! data_check_string = sorted fields except `hash`, "key=value" joined by "\n"
//! hash              = lowercase_hex(HMAC-SHA256(key = secret_key, message = data_check_string))
//! ```
//!
//! `signature`, when present, is an ordinary field here and **stays in** the check string.
//! The `hash` field must be exactly 64 lowercase hex digits (anything else is
//! [`InitDataError::SignatureInvalid`]) and is compared in constant time
//! (`aws_lc_rs::hmac::verify`). [`WebAppSecret`] holds `secret_key`, so a function can be
//! given the derived key instead of the bot token.
//!
//! # Scheme 2: Ed25519, third-party validation ([`validate_ed25519`])
//!
//! For services that know the bot's id but not its token:
//!
//! ```text
//! data_check_string = "<bot_id>:WebAppData\n" + sorted fields except `hash` and `signature`,
//!                     "key=value" joined by "\n"
//! signature         = base64url_unpadded(Ed25519-Sign(telegram_key, data_check_string))
//! ```
//!
//! for example `7342037359:WebAppData\nauth_date=1733584787\nchat_instance=...`. The
//! `signature` field is required and must be strict unpadded base64url (no `=`, no `+` or `/`,
//! canonical trailing bits) of exactly 64 bytes. Telegram's public keys (hex):
//!
//! - production: `e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d`
//! - test environment: `40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec`
//!
//! In this scheme `hash` is not covered by anything this module can check: it must still be
//! present and shaped like a SHA-256 hex digest, but [`InitData::hash`] is then unauthenticated.
//!
//! # Time
//!
//! `now` is always an argument. With `age = now - auth_date`, initData is accepted when
//! `auth_date <= now + MAX_FUTURE_SKEW_SECS` (else [`InitDataError::FromFuture`]) and
//! `age <= max_age_secs` (else [`InitDataError::Expired`]): an age of exactly `max_age_secs`
//! is accepted, one second more is not. Time is checked only after the signature, so an
//! unauthenticated `auth_date` never decides the error.
//!
//! # After the signature
//!
//! `user`, `receiver` and `chat` are decoded into [`WebAppUser`] and [`WebAppChat`] (unknown
//! JSON fields kept); invalid JSON, a missing required field or a non-positive user id is
//! [`InitDataError::Malformed`]. A `user` with `"is_bot": true` is [`InitDataError::BotUser`].
//! [`InitData::replay_key`] identifies the content independently of its encoding.
//!
//! # Error codes
//!
//! [`InitDataError::code`] gives the stable code for HTTP problems:
//!
//! | error | code |
//! |---|---|
//! | `Malformed`, `HashMissing`, `AuthDateMissing`, `AuthDateInvalid` | `initdata_malformed` |
//! | `SignatureInvalid` | `initdata_signature_invalid` |
//! | `Expired`, `FromFuture` | `initdata_expired` |
//! | `BotUser` | `bot_user_rejected` |
//!
//! A missing `hash` or `auth_date` means the string is not initData at all, hence
//! `initdata_malformed`; `FromFuture` means "outside the accepted time window", like `Expired`.
//! No error message ever contains a piece of the input.

use std::{borrow::Cow, collections::BTreeMap, fmt, str::FromStr};

use aws_lc_rs::{hmac, signature};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    config::{self, ConfigError, Env},
    time::UnixTime,
    token::TokenHash,
};

/// Largest accepted initData string, in bytes (real ones are well under 2 KiB).
pub const MAX_INIT_DATA_BYTES: usize = 16 * 1024;

/// How far `auth_date` may be ahead of `now` (clock skew between Telegram and us), in seconds.
pub const MAX_FUTURE_SKEW_SECS: u64 = 60;

/// Default of `TELEGRAM_INITDATA_MAX_AGE_SEC`: one day.
pub const DEFAULT_MAX_AGE_SECS: u64 = 86_400;

/// Telegram's Ed25519 public key for production bots, hex.
pub const PROD_PUBLIC_KEY_HEX: &str =
    "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d";

/// Telegram's Ed25519 public key for bots in the test environment, hex.
pub const TEST_PUBLIC_KEY_HEX: &str =
    "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec";

/// The constant of both schemes: the HMAC key deriving the secret, and the Ed25519 prefix.
const WEB_APP_DATA: &str = "WebAppData";

/// Why initData was refused. Messages never contain input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("initData is malformed: {0}")]
    Malformed(&'static str),
    #[error("initData has no hash")]
    HashMissing,
    #[error("initData signature is invalid")]
    SignatureInvalid,
    #[error("initData has no auth_date")]
    AuthDateMissing,
    #[error("initData auth_date is not a non-negative integer")]
    AuthDateInvalid,
    #[error("initData is older than the accepted maximum age")]
    Expired,
    #[error("initData auth_date is in the future")]
    FromFuture,
    #[error("initData belongs to a bot user")]
    BotUser,
}

impl InitDataError {
    /// The stable, machine-readable code for an HTTP problem (see the module docs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_)
            | Self::HashMissing
            | Self::AuthDateMissing
            | Self::AuthDateInvalid => "initdata_malformed",
            Self::SignatureInvalid => "initdata_signature_invalid",
            Self::Expired | Self::FromFuture => "initdata_expired",
            Self::BotUser => "bot_user_rejected",
        }
    }
}

/// `secret_key = HMAC-SHA256(key = "WebAppData", message = bot_token)`: everything the HMAC
/// scheme needs, without holding the bot token. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct WebAppSecret {
    /// The HMAC key schedule of the secret, computed once, not per validation (boxed: it is
    /// over a kilobyte).
    key: Box<hmac::Key>,
}

impl WebAppSecret {
    /// Derives the secret from the bot token (`<bot id>:<secret>`).
    pub fn from_bot_token(bot_token: &str) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, WEB_APP_DATA.as_bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(hmac::sign(&key, bot_token.as_bytes()).as_ref());
        Self::new(bytes)
    }

    /// Wraps a secret derived elsewhere (the 32 bytes of `HMAC-SHA256("WebAppData", token)`).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::new(Zeroizing::new(bytes))
    }

    fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self {
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, bytes.as_slice())),
        }
    }

    /// `HMAC-SHA256(key = secret_key, message)`.
    fn sign(&self, message: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, message)
    }
}

impl fmt::Debug for WebAppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebAppSecret(<redacted>)")
    }
}

/// Which of Telegram's environments a bot lives in; picks the Ed25519 public key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TelegramEnv {
    #[default]
    Prod,
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("telegram environment must be prod or test")]
pub struct InvalidTelegramEnv;

impl TelegramEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prod => "prod",
            Self::Test => "test",
        }
    }

    /// Telegram's third-party validation key for this environment.
    pub fn public_key(self) -> TelegramPublicKey {
        let hex = match self {
            Self::Prod => PROD_PUBLIC_KEY_HEX,
            Self::Test => TEST_PUBLIC_KEY_HEX,
        };
        TelegramPublicKey::from_hex(hex).expect("built-in Telegram public keys are valid hex")
    }
}

impl FromStr for TelegramEnv {
    type Err = InvalidTelegramEnv;

    /// Exactly `prod` or `test`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "prod" => Ok(Self::Prod),
            "test" => Ok(Self::Test),
            _ => Err(InvalidTelegramEnv),
        }
    }
}

/// An Ed25519 public key that third-party initData signatures are checked against.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelegramPublicKey([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("public key must be 64 hex digits")]
pub struct InvalidPublicKey;

impl TelegramPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Result<Self, InvalidPublicKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| InvalidPublicKey)?;
        Ok(Self(bytes))
    }

    /// The key of one of Telegram's environments.
    pub fn for_env(env: TelegramEnv) -> Self {
        env.public_key()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TelegramPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TelegramPublicKey({})", self.to_hex())
    }
}

/// A Telegram user as sent in `user` and `receiver` (the Bot API's `WebAppUser`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAppUser {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_bot: Option<bool>,
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_premium: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_to_attachment_menu: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allows_write_to_pm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// Fields this version does not know, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The chat a Mini App was opened from via an attachment menu (the Bot API's `WebAppChat`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAppChat {
    pub id: i64,
    /// `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// Fields this version does not know, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Validated initData. Only [`validate_hmac`], [`validate_ed25519`] and
/// [`Validator::validate`] produce one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InitData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<WebAppUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<WebAppUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<WebAppChat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_send_after: Option<u64>,
    pub auth_date: u64,
    /// The `hash` field as sent (authenticated only under the HMAC scheme).
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Top-level fields this version does not know, decoded, as sent.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
    #[serde(skip)]
    replay_key: TokenHash,
}

impl InitData {
    /// SHA-256 (base64url, via [`TokenHash::of`]) of the canonical data-check-string of all
    /// fields except `hash` and `signature`: the same for any encoding or field order of the
    /// same content, and for the same content signed under either scheme.
    pub fn replay_key(&self) -> TokenHash {
        self.replay_key.clone()
    }
}

/// initData that is well-formed but not yet authenticated (or, from
/// [`Validator::authenticate`], authenticated but not yet typed): the decoded fields, sorted by
/// key, borrowed from the input where a field needed no decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedInitData<'a> {
    /// Sorted by key (byte order); keys are unique.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    auth_date: u64,
}

/// Parses the raw initData string (see the module docs for the rules). Checks no signature.
pub fn parse(raw: &str) -> Result<ParsedInitData<'_>, InitDataError> {
    if raw.len() > MAX_INIT_DATA_BYTES {
        return Err(InitDataError::Malformed("longer than 16 KiB"));
    }
    if raw.is_empty() {
        return Err(InitDataError::Malformed("empty"));
    }
    let mut fields = Vec::with_capacity(8);
    for segment in raw.split('&') {
        fields.push(decode_field(segment)?);
    }
    fields.sort_unstable_by(|a: &(Cow<str>, Cow<str>), b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if fields.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(InitDataError::Malformed("duplicate key"));
    }
    if find(&fields, "hash").is_none() {
        return Err(InitDataError::HashMissing);
    }
    let auth_date = find(&fields, "auth_date")
        .ok_or(InitDataError::AuthDateMissing)
        .and_then(|v| parse_decimal(v).ok_or(InitDataError::AuthDateInvalid))?;
    Ok(ParsedInitData { fields, auth_date })
}

/// The value of `key` in fields sorted by key.
fn find<'f>(fields: &'f [(Cow<'_, str>, Cow<'_, str>)], key: &str) -> Option<&'f str> {
    fields
        .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
        .ok()
        .map(|i| fields[i].1.as_ref())
}

/// One `key=value` segment (no `&`), form-decoded; borrowed when nothing needed decoding.
fn decode_field(segment: &str) -> Result<(Cow<'_, str>, Cow<'_, str>), InitDataError> {
    let Some((raw_key, raw_value)) = segment.split_once('=') else {
        return Err(if segment.is_empty() {
            InitDataError::Malformed("empty field")
        } else {
            InitDataError::Malformed("field without '='")
        });
    };
    let (key, value) = if memchr::memchr2(b'%', b'+', segment.as_bytes()).is_none() {
        // Nothing to decode (most fields): both borrowed.
        (Cow::Borrowed(raw_key), Cow::Borrowed(raw_value))
    } else {
        (form_decode(raw_key)?, form_decode(raw_value)?)
    };
    if key.is_empty() {
        return Err(InitDataError::Malformed("empty key"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(InitDataError::Malformed(
            "key has characters other than ASCII letters, digits and '_'",
        ));
    }
    if has_control(value.as_bytes()) {
        return Err(InitDataError::Malformed(
            "value contains a control character",
        ));
    }
    Ok((key, value))
}

/// Whether `bytes` holds a C0 control character (U+0000 to U+001F): single bytes below 0x20;
/// no byte of a multi-byte UTF-8 character is one. Without an early exit, so that it compiles
/// to a vectorized loop (the values are short).
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| found | (b < 0x20))
}

/// `application/x-www-form-urlencoded` decoding of one key or value, as `form_urlencoded`
/// does it (`+` is a space, then `%XX` escapes with `percent-encoding`; a `%` not followed by
/// two hex digits stays as it is), except that escapes decoding to invalid UTF-8 are refused
/// instead of replaced by U+FFFD. Borrowed from `raw` when there is nothing to decode.
fn form_decode(raw: &str) -> Result<Cow<'_, str>, InitDataError> {
    if memchr::memchr2(b'%', b'+', raw.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(raw));
    }
    let spaced: Cow<'_, str> = if memchr::memchr(b'+', raw.as_bytes()).is_some() {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    // Decoding never lengthens the text: one allocation of the input's size.
    let mut decoded = Vec::with_capacity(spaced.len());
    decoded.extend(percent_encoding::percent_decode_str(&spaced));
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| InitDataError::Malformed("percent-escapes are not valid UTF-8"))
}

/// A plain decimal `u64`: ASCII digits only (no sign, no whitespace), no overflow.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `prefix` followed by the sorted `key=value` lines of `fields` without `excluded` keys (for
/// [`signing`], whose fields come in any order).
pub(crate) fn check_string<'a>(
    prefix: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    excluded: &[&str],
) -> String {
    let mut lines: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, _)| !excluded.contains(k))
        .collect();
    lines.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::from(prefix);
    for (i, (k, v)) in lines.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn third_party_prefix(bot_id: i64) -> String {
    format!("{bot_id}:{WEB_APP_DATA}\n")
}

impl<'a> ParsedInitData<'a> {
    /// A decoded field.
    pub fn get(&self, key: &str) -> Option<&str> {
        find(&self.fields, key)
    }

    /// All decoded fields, sorted by key.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The `hash` field as sent (not checked by parsing).
    pub fn hash(&self) -> &str {
        self.get("hash").unwrap_or_default()
    }

    /// The `signature` field as sent, if any (not checked by parsing).
    pub fn signature(&self) -> Option<&str> {
        self.get("signature")
    }

    pub fn auth_date(&self) -> u64 {
        self.auth_date
    }

    /// The HMAC scheme's data-check-string: every field except `hash`.
    pub fn data_check_string(&self) -> String {
        self.check_string("", &["hash"])
    }

    /// The Ed25519 scheme's data-check-string: `<bot_id>:WebAppData\n` and every field except
    /// `hash` and `signature`.
    pub fn third_party_data_check_string(&self, bot_id: i64) -> String {
        self.check_string(&third_party_prefix(bot_id), &["hash", "signature"])
    }

    fn canonical_string(&self) -> String {
        self.check_string("", &["hash", "signature"])
    }

    /// `prefix` followed by the (already sorted) `key=value` lines without `excluded` keys.
    fn check_string(&self, prefix: &str, excluded: &[&str]) -> String {
        let len = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
        let mut out = String::with_capacity(prefix.len() + len);
        out.push_str(prefix);
        let mut first = true;
        for (k, v) in &self.fields {
            if excluded.contains(&k.as_ref()) {
                continue;
            }
            if !first {
                out.push('\n');
            }
            first = false;
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// The `hash` field as 32 bytes: exactly 64 lowercase hex digits.
    fn hash_bytes(&self) -> Result<[u8; 32], InitDataError> {
        let hash = self.hash();
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InitDataError::SignatureInvalid);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hash, &mut bytes).map_err(|_| InitDataError::SignatureInvalid)?;
        Ok(bytes)
    }

    fn verify_hmac(&self, secret: &WebAppSecret) -> Result<(), InitDataError> {
        self.verify_hmac_key(&secret.key)
    }

    /// `hash` (64 lowercase hex digits) against `HMAC-SHA256(key, data_check_string)`, in
    /// constant time. Also the Login Widget's check ([`super::login_widget`]), with its key.
    pub(crate) fn verify_hmac_key(&self, key: &hmac::Key) -> Result<(), InitDataError> {
        let expected = self.hash_bytes()?;
        hmac::verify(key, self.data_check_string().as_bytes(), &expected)
            .map_err(|_| InitDataError::SignatureInvalid)
    }

    fn verify_ed25519(&self, bot_id: i64, key: &TelegramPublicKey) -> Result<(), InitDataError> {
        self.hash_bytes()?;
        let text = self.signature().ok_or(InitDataError::SignatureInvalid)?;
        let sig = decode_signature(text)?;
        signature::UnparsedPublicKey::new(&signature::ED25519, key.as_bytes())
            .verify(self.third_party_data_check_string(bot_id).as_bytes(), &sig)
            .map_err(|_| InitDataError::SignatureInvalid)
    }

    /// Builds the typed result; only called once the signature has been checked.
    fn into_init_data(self) -> Result<InitData, InitDataError> {
        let replay_key = TokenHash::of(self.canonical_string().as_bytes());
        let auth_date = self.auth_date;
        let mut fields: BTreeMap<String, String> = self
            .fields
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let user: Option<WebAppUser> = take_json(&mut fields, "user", "user is not a valid user")?;
        let receiver: Option<WebAppUser> =
            take_json(&mut fields, "receiver", "receiver is not a valid user")?;
        let chat: Option<WebAppChat> = take_json(&mut fields, "chat", "chat is not a valid chat")?;
        if user.as_ref().is_some_and(|u| u.id <= 0) {
            return Err(InitDataError::Malformed("user id is not positive"));
        }
        if receiver.as_ref().is_some_and(|u| u.id <= 0) {
            return Err(InitDataError::Malformed("receiver id is not positive"));
        }
        let can_send_after = fields
            .remove("can_send_after")
            .map(|v| {
                parse_decimal(&v)
                    .ok_or(InitDataError::Malformed("can_send_after is not an integer"))
            })
            .transpose()?;
        fields.remove("auth_date");
        let data = InitData {
            query_id: fields.remove("query_id"),
            user,
            receiver,
            chat,
            chat_type: fields.remove("chat_type"),
            chat_instance: fields.remove("chat_instance"),
            start_param: fields.remove("start_param"),
            can_send_after,
            auth_date,
            hash: fields.remove("hash").unwrap_or_default(),
            signature: fields.remove("signature"),
            extra: fields,
            replay_key,
        };
        if data.user.as_ref().is_some_and(|u| u.is_bot == Some(true)) {
            return Err(InitDataError::BotUser);
        }
        Ok(data)
    }
}

/// Strict unpadded base64url of exactly 64 bytes.
fn decode_signature(text: &str) -> Result<Vec<u8>, InitDataError> {
    match URL_SAFE_NO_PAD.decode(text) {
        Ok(sig) if sig.len() == 64 => Ok(sig),
        _ => Err(InitDataError::SignatureInvalid),
    }
}

fn take_json<T: serde::de::DeserializeOwned>(
    fields: &mut BTreeMap<String, String>,
    key: &str,
    problem: &'static str,
) -> Result<Option<T>, InitDataError> {
    fields
        .remove(key)
        .map(|text| serde_json::from_str(&text).map_err(|_| InitDataError::Malformed(problem)))
        .transpose()
}

/// `auth_date` against `now`: see "Time" in the module docs.
pub(crate) fn check_auth_date(
    auth_date: u64,
    max_age_secs: u64,
    now: UnixTime,
) -> Result<(), InitDataError> {
    let now = now.secs();
    if auth_date > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
        return Err(InitDataError::FromFuture);
    }
    if now.saturating_sub(auth_date) > max_age_secs {
        return Err(InitDataError::Expired);
    }
    Ok(())
}

fn authenticate_with<'a>(
    raw: &'a str,
    max_age_secs: u64,
    now: UnixTime,
    verify: impl FnOnce(&ParsedInitData<'a>) -> Result<(), InitDataError>,
) -> Result<ParsedInitData<'a>, InitDataError> {
    let parsed = parse(raw)?;
    verify(&parsed)?;
    check_auth_date(parsed.auth_date, max_age_secs, now)?;
    Ok(parsed)
}

fn validate_with<'a>(
    raw: &'a str,
    max_age_secs: u64,
    now: UnixTime,
    verify: impl FnOnce(&ParsedInitData<'a>) -> Result<(), InitDataError>,
) -> Result<InitData, InitDataError> {
    authenticate_with(raw, max_age_secs, now, verify)?.into_init_data()
}

/// Validates initData under the bot-token HMAC scheme.
pub fn validate_hmac(
    raw: &str,
    secret: &WebAppSecret,
    max_age_secs: u64,
    now: UnixTime,
) -> Result<InitData, InitDataError> {
    validate_with(raw, max_age_secs, now, |p| p.verify_hmac(secret))
}

/// Validates initData under Telegram's Ed25519 third-party scheme for the bot `bot_id`.
pub fn validate_ed25519(
    raw: &str,
    bot_id: i64,
    key: &TelegramPublicKey,
    max_age_secs: u64,
    now: UnixTime,
) -> Result<InitData, InitDataError> {
    validate_with(raw, max_age_secs, now, |p| p.verify_ed25519(bot_id, key))
}

/// How a [`Validator`] authenticates initData.
#[derive(Clone, Debug)]
pub enum Scheme {
    /// First party: the bot token's derived secret.
    Hmac(WebAppSecret),
    /// Third party: Telegram's Ed25519 signature for `bot_id`.
    ThirdParty {
        bot_id: i64,
        public_key: TelegramPublicKey,
    },
}

/// One configured way of validating initData, built once per cold start.
#[derive(Clone, Debug)]
pub struct Validator {
    pub scheme: Scheme,
    pub max_age_secs: u64,
}

impl Validator {
    /// From the environment:
    ///
    /// - `TELEGRAM_BOT_TOKEN` set: the HMAC scheme. The token must look like
    ///   `<bot id>:<secret>`.
    /// - otherwise `TELEGRAM_BOT_ID` (a positive integer) and `TELEGRAM_ENV` (`prod` or `test`,
    ///   default `prod`): the Ed25519 scheme with Telegram's key for that environment.
    /// - `TELEGRAM_BOT_ID` defaults to the token's numeric prefix; if both are set they must
    ///   agree.
    /// - `TELEGRAM_INITDATA_MAX_AGE_SEC`: maximum age in seconds, default 86400.
    ///
    /// Neither token nor bot id set is an error naming `TELEGRAM_BOT_TOKEN`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let max_age_secs =
            config::parse_or::<u64>(env, "TELEGRAM_INITDATA_MAX_AGE_SEC", DEFAULT_MAX_AGE_SECS)?;
        let telegram_env = match env.var("TELEGRAM_ENV") {
            None => TelegramEnv::default(),
            Some(raw) => raw.trim().parse().map_err(|_| {
                ConfigError::new("TELEGRAM_ENV", "is malformed: expected prod or test")
            })?,
        };
        let token = config::optional(env, "TELEGRAM_BOT_TOKEN").map(Zeroizing::new);
        let bot_id = configured_bot_id(env, token.as_deref().map(String::as_str))?;
        let scheme = match (token, bot_id) {
            (Some(token), _) => Scheme::Hmac(WebAppSecret::from_bot_token(&token)),
            (None, Some(bot_id)) => Scheme::ThirdParty {
                bot_id,
                public_key: telegram_env.public_key(),
            },
            (None, None) => {
                return Err(ConfigError::new(
                    "TELEGRAM_BOT_TOKEN",
                    "is required (or TELEGRAM_BOT_ID for third-party validation) but neither is set",
                ));
            }
        };
        Ok(Self {
            scheme,
            max_age_secs,
        })
    }

    /// Checks initData's signature and age with the configured scheme, without typing its
    /// content: the decoded fields, borrowed from `raw` where possible. What
    /// [`validate`](Self::validate) does before decoding `user`, `receiver` and `chat`.
    pub fn authenticate<'a>(
        &self,
        raw: &'a str,
        now: UnixTime,
    ) -> Result<ParsedInitData<'a>, InitDataError> {
        match &self.scheme {
            Scheme::Hmac(secret) => {
                authenticate_with(raw, self.max_age_secs, now, |p| p.verify_hmac(secret))
            }
            Scheme::ThirdParty { bot_id, public_key } => {
                authenticate_with(raw, self.max_age_secs, now, |p| {
                    p.verify_ed25519(*bot_id, public_key)
                })
            }
        }
    }

    /// Validates initData with the configured scheme and maximum age.
    pub fn validate(&self, raw: &str, now: UnixTime) -> Result<InitData, InitDataError> {
        match &self.scheme {
            Scheme::Hmac(secret) => validate_hmac(raw, secret, self.max_age_secs, now),
            Scheme::ThirdParty { bot_id, public_key } => {
                validate_ed25519(raw, *bot_id, public_key, self.max_age_secs, now)
            }
        }
    }
}

/// The bot's id as configured: `TELEGRAM_BOT_ID`, else the id prefix of `token` (the
/// `TELEGRAM_BOT_TOKEN`); both set, they must agree. `None` when neither is set.
pub(crate) fn configured_bot_id(
    env: &dyn Env,
    token: Option<&str>,
) -> Result<Option<i64>, ConfigError> {
    let token_bot_id = token
        .map(|t| {
            t.split_once(':')
                .filter(|(_, secret)| !secret.is_empty())
                .and_then(|(id, _)| parse_bot_id(id))
                .ok_or_else(|| {
                    ConfigError::new(
                        "TELEGRAM_BOT_TOKEN",
                        "is malformed: expected <bot id>:<secret>",
                    )
                })
        })
        .transpose()?;
    match config::optional(env, "TELEGRAM_BOT_ID") {
        None => Ok(token_bot_id),
        Some(raw) => {
            let id = parse_bot_id(raw.trim()).ok_or_else(|| {
                ConfigError::new(
                    "TELEGRAM_BOT_ID",
                    "is malformed: expected a positive integer",
                )
            })?;
            if token_bot_id.is_some_and(|t| t != id) {
                return Err(ConfigError::new(
                    "TELEGRAM_BOT_ID",
                    "does not match the bot id of TELEGRAM_BOT_TOKEN",
                ));
            }
            Ok(Some(id))
        }
    }
}

pub(crate) fn parse_bot_id(text: &str) -> Option<i64> {
    parse_decimal(text)
        .and_then(|id| i64::try_from(id).ok())
        .filter(|id| *id > 0)
}

/// Builds signed initData the way Telegram does, for tests (here and in other crates).
///
/// Fields are given decoded, in the order they should appear; they are form-encoded with
/// `form_urlencoded::Serializer` (so spaces become `+`). Nothing here checks the fields:
/// duplicates or odd keys are encoded and signed as given, for the validator to reject.
pub mod signing {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{Ed25519KeyPair, KeyPair},
    };
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::{TelegramPublicKey, WebAppSecret, check_string, third_party_prefix};

    /// Form-encodes `fields` in order, without signing.
    pub fn encode(fields: &[(&str, &str)]) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    }

    /// `hex(HMAC-SHA256(secret_key, data_check_string))` over `fields` (which must not
    /// contain `hash`; `signature`, if given, is included).
    pub fn hmac_hash(fields: &[(&str, &str)], secret: &WebAppSecret) -> String {
        let dcs = check_string("", fields.iter().copied(), &["hash"]);
        hex::encode(secret.sign(dcs.as_bytes()))
    }

    /// `fields` followed by `hash`, computed with `bot_token`: what an HMAC-only (older)
    /// Telegram client sends.
    pub fn sign_hmac(fields: &[(&str, &str)], bot_token: &str) -> String {
        let hash = hmac_hash(fields, &WebAppSecret::from_bot_token(bot_token));
        let mut all = fields.to_vec();
        all.push(("hash", &hash));
        encode(&all)
    }

    /// `fields` followed by `signature` (Ed25519 for `bot_id` with `key_pair`) and `hash`
    /// (HMAC with `bot_token`, covering `signature`): what current Telegram clients send.
    /// It validates under both schemes.
    pub fn sign_ed25519(
        fields: &[(&str, &str)],
        bot_id: i64,
        key_pair: &TestKeyPair,
        bot_token: &str,
    ) -> String {
        let signature = key_pair.signature(fields, bot_id);
        let mut all = fields.to_vec();
        all.push(("signature", &signature));
        let hash = hmac_hash(&all, &WebAppSecret::from_bot_token(bot_token));
        all.push(("hash", &hash));
        encode(&all)
    }

    /// A freshly generated Ed25519 key pair standing in for Telegram's.
    #[derive(Debug)]
    pub struct TestKeyPair(Ed25519KeyPair);

    impl TestKeyPair {
        pub fn generate() -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .expect("Ed25519 key generation failed");
            Self(
                Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .expect("a generated PKCS#8 document parses"),
            )
        }

        pub fn public_key(&self) -> TelegramPublicKey {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(self.0.public_key().as_ref());
            TelegramPublicKey::from_bytes(bytes)
        }

        /// The unpadded base64url Ed25519 signature of the third-party data-check-string of
        /// `fields` (`hash` and `signature` excluded) for `bot_id`.
        pub fn signature(&self, fields: &[(&str, &str)], bot_id: i64) -> String {
            let dcs = check_string(
                &third_party_prefix(bot_id),
                fields.iter().copied(),
                &["hash", "signature"],
            );
            URL_SAFE_NO_PAD.encode(self.0.sign(dcs.as_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::{signing::*, *};

    const TOKEN: &str = "123456:AAH-test-token-for-unit-tests";
    const BOT_ID: i64 = 123_456;
    const NOW: UnixTime = UnixTime(1_700_000_000);
    const AUTH: &str = "1700000000";
    const DAY: u64 = 86_400;

    static KEY: LazyLock<TestKeyPair> = LazyLock::new(TestKeyPair::generate);

    fn user(first_name: &str) -> String {
        serde_json::json!({"id": 42, "first_name": first_name, "username": "ann"}).to_string()
    }

    fn hmac(raw: &str) -> Result<InitData, InitDataError> {
        validate_hmac(raw, &WebAppSecret::from_bot_token(TOKEN), DAY, NOW)
    }

    fn ed(raw: &str) -> Result<InitData, InitDataError> {
        validate_ed25519(raw, BOT_ID, &KEY.public_key(), DAY, NOW)
    }

    fn telegram(fields: &[(&str, &str)]) -> String {
        sign_ed25519(fields, BOT_ID, &KEY, TOKEN)
    }

    #[test]
    fn hmac_valid_initdata_is_typed() {
        let u = serde_json::json!({
            "id": 42, "first_name": "Ann", "last_name": "Lee", "username": "ann",
            "language_code": "en", "is_premium": true, "allows_write_to_pm": true,
            "added_to_attachment_menu": false, "photo_url": "https://t.me/i/userpic/320/a.svg"
        })
        .to_string();
        let chat = r#"{"id":-100123,"type":"supergroup","title":"Group","username":"grp"}"#;
        let receiver = r#"{"id":7,"first_name":"Bot","is_bot":true}"#;
        let raw = sign_hmac(
            &[
                ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
                ("user", &u),
                ("receiver", receiver),
                ("chat", chat),
                ("chat_type", "supergroup"),
                ("chat_instance", "-6755150262645657088"),
                ("start_param", "ref_42"),
                ("can_send_after", "10"),
                ("auth_date", AUTH),
            ],
            TOKEN,
        );
        let data = hmac(&raw).unwrap();
        let user = data.user.as_ref().unwrap();
        assert_eq!(user.id, 42);
        assert_eq!(user.first_name, "Ann");
        assert_eq!(user.last_name.as_deref(), Some("Lee"));
        assert_eq!(user.language_code.as_deref(), Some("en"));
        assert_eq!(user.is_premium, Some(true));
        assert_eq!(user.added_to_attachment_menu, Some(false));
        assert_eq!(user.is_bot, None);
        assert_eq!(data.receiver.as_ref().unwrap().is_bot, Some(true));
        let c = data.chat.as_ref().unwrap();
        assert_eq!(
            (c.id, c.kind.as_str(), c.title.as_str()),
            (-100123, "supergroup", "Group")
        );
        assert_eq!(data.query_id.as_deref(), Some("AAHdF6IQAAAAAN0XohDhrOrc"));
        assert_eq!(data.chat_type.as_deref(), Some("supergroup"));
        assert_eq!(data.chat_instance.as_deref(), Some("-6755150262645657088"));
        assert_eq!(data.start_param.as_deref(), Some("ref_42"));
        assert_eq!(data.can_send_after, Some(10));
        assert_eq!(data.auth_date, 1_700_000_000);
        assert_eq!(data.hash.len(), 64);
        assert_eq!(data.signature, None);
        assert!(data.extra.is_empty());
        // The Validator gives the same answer.
        let v = Validator {
            scheme: Scheme::Hmac(WebAppSecret::from_bot_token(TOKEN)),
            max_age_secs: DAY,
        };
        assert_eq!(v.validate(&raw, NOW).unwrap(), data);
        // Another token does not validate it.
        let other = WebAppSecret::from_bot_token("123456:another");
        assert_eq!(
            validate_hmac(&raw, &other, DAY, NOW),
            Err(InitDataError::SignatureInvalid)
        );
    }

    #[test]
    fn plus_and_percent_20_both_decode_to_a_space() {
        let u = user("Ann Marie Lee");
        let raw = sign_hmac(&[("user", &u), ("auth_date", AUTH)], TOKEN);
        assert!(raw.contains("Ann+Marie+Lee"));
        let pct = raw.replace('+', "%20");
        assert!(pct.contains("Ann%20Marie%20Lee"));
        for r in [&raw, &pct] {
            assert!(
                parse(r)
                    .unwrap()
                    .data_check_string()
                    .contains("Ann Marie Lee")
            );
            assert_eq!(hmac(r).unwrap().user.unwrap().first_name, "Ann Marie Lee");
        }
        // A literal plus sign is %2B and stays a plus.
        let plus = user("A+B");
        let raw = sign_hmac(&[("user", &plus), ("auth_date", AUTH)], TOKEN);
        assert!(raw.contains("A%2BB"));
        assert_eq!(hmac(&raw).unwrap().user.unwrap().first_name, "A+B");
    }

    #[test]
    fn json_text_is_checked_as_sent_not_reserialized() {
        // Escaped slashes, spacing and key order that serde_json would not reproduce.
        let u = r#"{ "username":"ann", "id": 42,"first_name":"Ann","photo_url":"https:\/\/t.me\/a.svg"}"#;
        let raw = sign_hmac(&[("user", u), ("auth_date", AUTH)], TOKEN);
        let parsed = parse(&raw).unwrap();
        assert_eq!(parsed.get("user"), Some(u));
        assert_eq!(
            parsed.data_check_string(),
            format!("auth_date={AUTH}\nuser={u}")
        );
        let data = hmac(&raw).unwrap();
        assert_eq!(
            data.user.unwrap().photo_url.as_deref(),
            Some("https://t.me/a.svg")
        );
    }

    #[test]
    fn duplicate_keys_are_rejected_even_when_encoded_differently() {
        let u = user("Ann");
        let raw = sign_hmac(&[("user", &u), ("user", &u), ("auth_date", AUTH)], TOKEN);
        assert_eq!(hmac(&raw), Err(InitDataError::Malformed("duplicate key")));
        let raw = sign_hmac(&[("user", &u), ("auth_date", AUTH)], TOKEN);
        let dup = format!("{raw}&us%65r=%7B%7D");
        assert_eq!(parse(&dup), Err(InitDataError::Malformed("duplicate key")));
        let dup_hash = format!("{raw}&hash=00");
        assert_eq!(
            parse(&dup_hash),
            Err(InitDataError::Malformed("duplicate key"))
        );
    }

    #[test]
    fn empty_keys_fields_and_bad_keys_are_rejected() {
        let raw = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        let cases = [
            (format!("={AUTH}&{raw}"), "empty key"),
            (
                format!("%3D=1&{raw}"),
                "key has characters other than ASCII letters, digits and '_'",
            ),
            (
                format!("a-b=1&{raw}"),
                "key has characters other than ASCII letters, digits and '_'",
            ),
            (
                format!("a%0Ab=1&{raw}"),
                "key has characters other than ASCII letters, digits and '_'",
            ),
            (format!("&{raw}"), "empty field"),
            (format!("{raw}&"), "empty field"),
            (raw.replacen('&', "&&", 1), "empty field"),
            (format!("flag&{raw}"), "field without '='"),
            (String::new(), "empty"),
        ];
        for (input, why) in cases {
            assert_eq!(parse(&input), Err(InitDataError::Malformed(why)), "{input}");
            assert_eq!(hmac(&input), Err(InitDataError::Malformed(why)), "{input}");
        }
        // Keys are checked after decoding: an encoded plain key is fine.
        let ok = raw.replace("auth_date", "auth%5Fdate");
        assert!(hmac(&ok).is_ok());
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_rejected() {
        for bad in ["a%0Ab", "a%0D", "%00", "tab%09"] {
            let input = format!("x={bad}&auth_date={AUTH}&hash=00");
            assert_eq!(
                parse(&input),
                Err(InitDataError::Malformed(
                    "value contains a control character"
                ))
            );
        }
        for bad in [
            "%FF",
            "%C3",
            "%E2%28%A1",
            "%E2%EF%BF%BD",
            "%EF%BF",
            "%ED%A0%80",
        ] {
            let input = format!("x={bad}&auth_date={AUTH}&hash=00");
            assert_eq!(
                parse(&input),
                Err(InitDataError::Malformed(
                    "percent-escapes are not valid UTF-8"
                )),
                "{bad}"
            );
        }
        // A genuine U+FFFD, escaped or literal, and other non-ASCII text are kept.
        for good in [
            "%EF%BF%BD",
            "%ef%bf%bdx%EF%BF%BD",
            "\u{FFFD}",
            "%C3%A9t%C3%A9",
            "été",
        ] {
            let input = format!("x={good}&auth_date={AUTH}&hash=00");
            assert!(parse(&input).is_ok(), "{good}");
        }
        let raw = format!("x=%EF%BF%BD%C3%A9&auth_date={AUTH}&hash=00");
        let parsed = parse(&raw).unwrap();
        assert_eq!(parsed.get("x"), Some("\u{FFFD}é"));
    }

    #[test]
    fn oversize_input_is_malformed() {
        let big = "a".repeat(MAX_INIT_DATA_BYTES);
        let raw = sign_hmac(&[("pad", &big), ("auth_date", AUTH)], TOKEN);
        assert!(raw.len() > MAX_INIT_DATA_BYTES);
        assert_eq!(
            hmac(&raw),
            Err(InitDataError::Malformed("longer than 16 KiB"))
        );
        // Just under the limit is parsed.
        let fixed = sign_hmac(&[("pad", ""), ("auth_date", AUTH)], TOKEN).len();
        let fits = "a".repeat(MAX_INIT_DATA_BYTES - fixed);
        let raw = sign_hmac(&[("pad", &fits), ("auth_date", AUTH)], TOKEN);
        assert_eq!(raw.len(), MAX_INIT_DATA_BYTES);
        assert!(hmac(&raw).is_ok());
    }

    #[test]
    fn missing_hash_is_its_own_error() {
        let raw = encode(&[("user", &user("Ann")), ("auth_date", AUTH)]);
        assert_eq!(parse(&raw), Err(InitDataError::HashMissing));
        assert_eq!(hmac(&raw), Err(InitDataError::HashMissing));
        assert_eq!(ed(&raw), Err(InitDataError::HashMissing));
        assert_eq!(InitDataError::HashMissing.code(), "initdata_malformed");
    }

    #[test]
    fn auth_date_must_be_present_and_a_plain_integer() {
        let raw = sign_hmac(&[("user", &user("Ann"))], TOKEN);
        assert_eq!(hmac(&raw), Err(InitDataError::AuthDateMissing));
        for bad in [
            "",
            "abc",
            "-1",
            "+1",
            " 1",
            "1.5",
            "1e9",
            "18446744073709551616",
        ] {
            let raw = sign_hmac(&[("auth_date", bad)], TOKEN);
            assert_eq!(hmac(&raw), Err(InitDataError::AuthDateInvalid), "{bad:?}");
            assert_eq!(parse(&raw), Err(InitDataError::AuthDateInvalid), "{bad:?}");
        }
        assert_eq!(InitDataError::AuthDateMissing.code(), "initdata_malformed");
        assert_eq!(InitDataError::AuthDateInvalid.code(), "initdata_malformed");
    }

    #[test]
    fn hash_must_be_64_lowercase_hex() {
        let raw = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        let hash = parse(&raw).unwrap().hash().to_owned();
        let cases = [
            hash.to_ascii_uppercase(),
            hash[..62].to_owned(),
            format!("{hash}00"),
            format!("{}zz", &hash[..62]),
            String::new(),
        ];
        for bad in cases {
            let input = raw.replace(&hash, &bad);
            assert_eq!(hmac(&input), Err(InitDataError::SignatureInvalid), "{bad}");
        }
    }

    #[test]
    fn signature_stays_in_the_hmac_check_string() {
        let u = user("Ann");
        let fields = [("user", u.as_str()), ("auth_date", AUTH)];
        // Telegram-shaped data (signature then hash) validates under HMAC ...
        let raw = telegram(&fields);
        let parsed = parse(&raw).unwrap();
        let sig = parsed.signature().unwrap().to_owned();
        assert!(
            parsed
                .data_check_string()
                .contains(&format!("signature={sig}"))
        );
        let data = hmac(&raw).unwrap();
        assert_eq!(data.signature.as_deref(), Some(sig.as_str()));
        // ... but a hash computed without the signature does not cover it.
        let without = sign_hmac(&fields, TOKEN);
        let added = format!("{without}&signature={sig}");
        assert_eq!(hmac(&added), Err(InitDataError::SignatureInvalid));
        // And the HMAC-only string validates without it.
        assert!(hmac(&without).unwrap().signature.is_none());
    }

    #[test]
    fn ed25519_valid_and_bound_to_bot_id() {
        let u = user("Ann");
        let raw = telegram(&[("query_id", "Q1"), ("user", &u), ("auth_date", AUTH)]);
        let data = ed(&raw).unwrap();
        assert_eq!(data.user.as_ref().unwrap().id, 42);
        assert_eq!(data.query_id.as_deref(), Some("Q1"));
        assert!(data.signature.is_some());
        let parsed = parse(&raw).unwrap();
        assert_eq!(
            parsed.third_party_data_check_string(BOT_ID),
            format!("123456:WebAppData\nauth_date={AUTH}\nquery_id=Q1\nuser={u}")
        );
        // Another bot's id fails.
        assert_eq!(
            validate_ed25519(&raw, BOT_ID + 1, &KEY.public_key(), DAY, NOW),
            Err(InitDataError::SignatureInvalid)
        );
        // So does a signature made for another bot id.
        let other_bot = sign_ed25519(&[("auth_date", AUTH)], BOT_ID + 1, &KEY, TOKEN);
        assert_eq!(ed(&other_bot), Err(InitDataError::SignatureInvalid));
        // Tampering with a field (the hash is not what Ed25519 checks) fails.
        let tampered = raw.replace("query_id=Q1", "query_id=Q2");
        assert_eq!(ed(&tampered), Err(InitDataError::SignatureInvalid));
        // The Validator gives the same answer.
        let v = Validator {
            scheme: Scheme::ThirdParty {
                bot_id: BOT_ID,
                public_key: KEY.public_key(),
            },
            max_age_secs: DAY,
        };
        assert_eq!(v.validate(&raw, NOW).unwrap(), data);
    }

    #[test]
    fn ed25519_requires_the_matching_public_key() {
        let raw = telegram(&[("auth_date", AUTH)]);
        let other = TestKeyPair::generate();
        assert_ne!(other.public_key(), KEY.public_key());
        for key in [
            other.public_key(),
            TelegramEnv::Prod.public_key(),
            TelegramEnv::Test.public_key(),
        ] {
            assert_eq!(
                validate_ed25519(&raw, BOT_ID, &key, DAY, NOW),
                Err(InitDataError::SignatureInvalid)
            );
        }
        // Signed by "test", checked against "prod" (and the reverse).
        let test_signed = sign_ed25519(&[("auth_date", AUTH)], BOT_ID, &other, TOKEN);
        assert!(validate_ed25519(&test_signed, BOT_ID, &other.public_key(), DAY, NOW).is_ok());
        assert!(validate_ed25519(&test_signed, BOT_ID, &KEY.public_key(), DAY, NOW).is_err());
    }

    #[test]
    fn telegram_env_picks_the_documented_keys() {
        assert_eq!(
            TelegramEnv::Prod.public_key().to_hex(),
            "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d"
        );
        assert_eq!(
            TelegramPublicKey::for_env(TelegramEnv::Test).to_hex(),
            "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec"
        );
        assert_eq!("prod".parse(), Ok(TelegramEnv::Prod));
        assert_eq!("test".parse(), Ok(TelegramEnv::Test));
        for bad in ["", "production", "PROD", " test"] {
            assert_eq!(bad.parse::<TelegramEnv>(), Err(InvalidTelegramEnv));
        }
        assert_eq!(TelegramEnv::default(), TelegramEnv::Prod);
        assert_eq!(TelegramEnv::Test.as_str(), "test");
        assert_eq!(
            TelegramPublicKey::from_hex(&TEST_PUBLIC_KEY_HEX.to_ascii_uppercase()),
            Ok(TelegramEnv::Test.public_key())
        );
        assert_eq!(TelegramPublicKey::from_hex("abcd"), Err(InvalidPublicKey));
        assert_eq!(
            TelegramPublicKey::from_hex(&"zz".repeat(32)),
            Err(InvalidPublicKey)
        );
    }

    #[test]
    fn ed25519_signature_must_be_strict_unpadded_base64url() {
        // Find a signature whose standard-alphabet encoding differs from base64url.
        let (raw, sig) = (0..1000)
            .find_map(|i| {
                let q = i.to_string();
                let raw = telegram(&[("query_id", &q), ("auth_date", AUTH)]);
                let sig = parse(&raw).unwrap().signature().unwrap().to_owned();
                (sig.contains('-') || sig.contains('_')).then_some((raw, sig))
            })
            .expect("some signature has '-' or '_'");
        assert!(ed(&raw).is_ok());
        let bytes = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        assert!(padded.ends_with("=="));
        let truncated = sig[..sig.len() - 1].to_owned();
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        // The last character carries 4 unused bits: a non-zero one is non-canonical.
        let mut trailing = sig.clone().into_bytes();
        *trailing.last_mut().unwrap() += 1;
        let trailing = String::from_utf8(trailing).unwrap();
        for bad in [
            standard,
            padded,
            truncated,
            flipped,
            trailing,
            String::new(),
        ] {
            let input = raw.replace(&format!("signature={sig}"), &encode(&[("signature", &bad)]));
            assert_ne!(input, raw);
            assert_eq!(ed(&input), Err(InitDataError::SignatureInvalid), "{bad}");
        }
        // A missing signature fails the Ed25519 scheme (HMAC-only data).
        let hmac_only = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        assert_eq!(ed(&hmac_only), Err(InitDataError::SignatureInvalid));
        // The hash must still be shaped like one.
        let no_hash_shape = raw.replace(&format!("hash={}", parse(&raw).unwrap().hash()), "hash=x");
        assert_eq!(ed(&no_hash_shape), Err(InitDataError::SignatureInvalid));
    }

    #[test]
    fn decode_signature_rejects_standard_alphabet_directly() {
        let ok = "A".repeat(86);
        assert_eq!(decode_signature(&ok).unwrap(), vec![0u8; 64]);
        let plus = format!("{}+{}", "A".repeat(40), "A".repeat(45));
        let slash = format!("{}/{}", "A".repeat(40), "A".repeat(45));
        let dash = format!("{}-{}", "A".repeat(40), "A".repeat(45));
        assert!(decode_signature(&plus).is_err());
        assert!(decode_signature(&slash).is_err());
        assert!(decode_signature(&dash).is_ok());
        assert!(decode_signature(&format!("{ok}==")).is_err());
        assert!(decode_signature(&"A".repeat(84)).is_err());
    }

    #[test]
    fn expiry_boundary_is_exact() {
        let raw = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        let auth = 1_700_000_000u64;
        let secret = WebAppSecret::from_bot_token(TOKEN);
        let at = |now: u64, max: u64| validate_hmac(&raw, &secret, max, UnixTime(now));
        // age == max_age is accepted, max_age + 1 is not.
        assert!(at(auth + DAY, DAY).is_ok());
        assert_eq!(at(auth + DAY + 1, DAY), Err(InitDataError::Expired));
        assert!(at(auth, 0).is_ok());
        assert_eq!(at(auth + 1, 0), Err(InitDataError::Expired));
        // Any max age, however large.
        assert!(at(u64::MAX, u64::MAX).is_ok());
        assert!(at(auth + 10 * 365 * DAY, u64::MAX).is_ok());
        assert_eq!(InitDataError::Expired.code(), "initdata_expired");
        // The same boundary under Ed25519.
        let raw = telegram(&[("auth_date", AUTH)]);
        let key = KEY.public_key();
        assert!(validate_ed25519(&raw, BOT_ID, &key, 60, UnixTime(auth + 60)).is_ok());
        assert_eq!(
            validate_ed25519(&raw, BOT_ID, &key, 60, UnixTime(auth + 61)),
            Err(InitDataError::Expired)
        );
    }

    #[test]
    fn future_auth_date_beyond_skew_is_rejected() {
        let auth = 1_700_000_000u64;
        let raw = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        let secret = WebAppSecret::from_bot_token(TOKEN);
        let at = |now: u64| validate_hmac(&raw, &secret, DAY, UnixTime(now));
        assert!(at(auth - MAX_FUTURE_SKEW_SECS).is_ok());
        assert_eq!(
            at(auth - MAX_FUTURE_SKEW_SECS - 1),
            Err(InitDataError::FromFuture)
        );
        assert_eq!(at(0), Err(InitDataError::FromFuture));
        assert_eq!(InitDataError::FromFuture.code(), "initdata_expired");
        // Huge auth_date near u64::MAX does not overflow.
        let raw = sign_hmac(&[("auth_date", &u64::MAX.to_string())], TOKEN);
        assert_eq!(
            validate_hmac(&raw, &secret, u64::MAX, NOW),
            Err(InitDataError::FromFuture)
        );
    }

    #[test]
    fn time_is_checked_only_after_the_signature() {
        let raw = sign_hmac(&[("auth_date", "1")], "123456:other-token");
        assert_eq!(hmac(&raw), Err(InitDataError::SignatureInvalid));
    }

    #[test]
    fn bot_users_are_rejected() {
        let bot = r#"{"id":42,"first_name":"Bot","is_bot":true}"#;
        let raw = telegram(&[("user", bot), ("auth_date", AUTH)]);
        assert_eq!(hmac(&raw), Err(InitDataError::BotUser));
        assert_eq!(ed(&raw), Err(InitDataError::BotUser));
        assert_eq!(InitDataError::BotUser.code(), "bot_user_rejected");
        let human = r#"{"id":42,"first_name":"Ann","is_bot":false}"#;
        let raw = telegram(&[("user", human), ("auth_date", AUTH)]);
        assert_eq!(hmac(&raw).unwrap().user.unwrap().is_bot, Some(false));
    }

    #[test]
    fn unknown_fields_are_kept_and_serialized() {
        let u = r#"{"id":42,"first_name":"Ann","new_flag":true,"nested":{"a":[1,2]}}"#;
        let chat = r#"{"id":-1,"type":"group","title":"G","color":3}"#;
        let raw = telegram(&[
            ("user", u),
            ("chat", chat),
            ("future_field", "x y"),
            ("auth_date", AUTH),
        ]);
        let data = hmac(&raw).unwrap();
        let user = data.user.as_ref().unwrap();
        assert_eq!(user.extra["new_flag"], serde_json::json!(true));
        assert_eq!(user.extra["nested"], serde_json::json!({"a": [1, 2]}));
        assert_eq!(
            data.chat.as_ref().unwrap().extra["color"],
            serde_json::json!(3)
        );
        assert_eq!(
            data.extra.get("future_field").map(String::as_str),
            Some("x y")
        );
        assert_eq!(data.extra.len(), 1);
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["future_field"], "x y");
        assert_eq!(json["user"]["new_flag"], true);
        assert_eq!(json["user"]["id"], 42);
        assert_eq!(json["chat"]["type"], "group");
        assert_eq!(json["chat"]["color"], 3);
        assert_eq!(json["auth_date"], 1_700_000_000u64);
        assert!(json.get("receiver").is_none());
        assert!(json.get("replay_key").is_none());
        // WebAppUser round-trips through serde with its extra fields.
        let back: WebAppUser = serde_json::from_value(json["user"].clone()).unwrap();
        assert_eq!(&back, user);
    }

    #[test]
    fn malformed_typed_fields_after_a_valid_signature() {
        let cases = [
            ("user", "{not json", "user is not a valid user"),
            (
                "user",
                r#"{"first_name":"Ann"}"#,
                "user is not a valid user",
            ),
            ("user", r#"{"id":42}"#, "user is not a valid user"),
            (
                "user",
                r#"{"id":"42","first_name":"A"}"#,
                "user is not a valid user",
            ),
            ("user", r#"[42,null,"Ann"]"#, "user is not a valid user"),
            (
                "user",
                r#"{"id":0,"first_name":"A"}"#,
                "user id is not positive",
            ),
            ("receiver", "null", "receiver is not a valid user"),
            (
                "receiver",
                r#"{"id":-5,"first_name":"A"}"#,
                "receiver id is not positive",
            ),
            (
                "chat",
                r#"{"id":1,"title":"G"}"#,
                "chat is not a valid chat",
            ),
            ("chat", "", "chat is not a valid chat"),
            ("can_send_after", "soon", "can_send_after is not an integer"),
            ("can_send_after", "-1", "can_send_after is not an integer"),
        ];
        for (key, value, why) in cases {
            let raw = telegram(&[(key, value), ("auth_date", AUTH)]);
            assert_eq!(
                hmac(&raw),
                Err(InitDataError::Malformed(why)),
                "{key}={value}"
            );
            assert_eq!(
                ed(&raw),
                Err(InitDataError::Malformed(why)),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn replay_key_ignores_encoding_order_hash_and_signature() {
        let u = user("Ann Lee");
        let fields = [
            ("query_id", "Q1"),
            ("user", u.as_str()),
            ("auth_date", AUTH),
        ];
        let raw = sign_hmac(&fields, TOKEN);
        let key = hmac(&raw).unwrap().replay_key();
        // %20 instead of +.
        assert_eq!(hmac(&raw.replace('+', "%20")).unwrap().replay_key(), key);
        // Fields in another order.
        let reordered = [fields[2], fields[0], fields[1]];
        assert_eq!(
            hmac(&sign_hmac(&reordered, TOKEN)).unwrap().replay_key(),
            key
        );
        // Needlessly percent-encoded key and hash characters.
        let hash = parse(&raw).unwrap().hash().to_owned();
        let escaped: String = hash.bytes().map(|b| format!("%{b:02X}")).collect();
        let reencoded = raw
            .replace(&hash, &escaped)
            .replace("query_id=", "query%5Fid=");
        assert_ne!(reencoded, raw);
        assert_eq!(hmac(&reencoded).unwrap().replay_key(), key);
        // The same content with a signature (Telegram-shaped), under either scheme.
        let signed = telegram(&fields);
        assert_eq!(hmac(&signed).unwrap().replay_key(), key);
        assert_eq!(ed(&signed).unwrap().replay_key(), key);
        // It is the SHA-256 of the canonical check string.
        assert_eq!(
            key,
            TokenHash::of(format!("auth_date={AUTH}\nquery_id=Q1\nuser={u}").as_bytes())
        );
        // Different content, different key.
        let other = sign_hmac(
            &[("query_id", "Q2"), ("user", &u), ("auth_date", AUTH)],
            TOKEN,
        );
        assert_ne!(hmac(&other).unwrap().replay_key(), key);
        let later = sign_hmac(
            &[
                ("query_id", "Q1"),
                ("user", &u),
                ("auth_date", "1700000001"),
            ],
            TOKEN,
        );
        assert_ne!(hmac(&later).unwrap().replay_key(), key);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let secret = WebAppSecret::from_bot_token(TOKEN);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "WebAppSecret(<redacted>)");
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, WEB_APP_DATA.as_bytes()),
            TOKEN.as_bytes(),
        );
        let bytes = hex::encode(derived.as_ref());
        let validator =
            Validator::from_env(&crate::config::MapEnv::new().with("TELEGRAM_BOT_TOKEN", TOKEN))
                .unwrap();
        let shown = format!("{validator:?}");
        assert!(!shown.contains(&bytes));
        assert!(!shown.contains("AAH-test-token"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn errors_never_contain_input() {
        const MARK: &str = "SECRETMARK";
        let u = format!(r#"{{"id":"{MARK}","first_name":"{MARK}"}}"#);
        let inputs = [
            MARK.to_owned(),
            format!("{MARK}=1&{MARK}=2"),
            format!("{MARK}-x=1"),
            format!("a={MARK}%0A&hash=1&auth_date=1"),
            format!("a={MARK}%FF&hash=1&auth_date=1"),
            format!("a={MARK}"),
            format!("hash={MARK}&auth_date={MARK}"),
            format!("hash={MARK}&auth_date={AUTH}"),
            format!("hash={MARK}&auth_date={AUTH}&signature={MARK}"),
            sign_hmac(&[("user", &u), ("auth_date", AUTH)], TOKEN),
            sign_hmac(&[("can_send_after", MARK), ("auth_date", AUTH)], TOKEN),
            "x=".to_owned() + &MARK.repeat(2000),
        ];
        for input in inputs {
            let errors = [
                Some(hmac(&input).expect_err(&input)),
                Some(ed(&input).expect_err(&input)),
                parse(&input).err(),
            ];
            for err in errors.into_iter().flatten() {
                assert!(!err.to_string().contains(MARK), "{err}");
                assert!(!format!("{err:?}").contains(MARK), "{err:?}");
            }
        }
    }

    #[test]
    fn every_error_has_a_stable_code() {
        let all = [
            (InitDataError::Malformed("x"), "initdata_malformed"),
            (InitDataError::HashMissing, "initdata_malformed"),
            (
                InitDataError::SignatureInvalid,
                "initdata_signature_invalid",
            ),
            (InitDataError::AuthDateMissing, "initdata_malformed"),
            (InitDataError::AuthDateInvalid, "initdata_malformed"),
            (InitDataError::Expired, "initdata_expired"),
            (InitDataError::FromFuture, "initdata_expired"),
            (InitDataError::BotUser, "bot_user_rejected"),
        ];
        for (err, code) in all {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn web_app_secret_derivation_matches_published_vector() {
        // From @tma.js/init-data-node's test suite: the "WebAppData" HMAC of a token, and
        // the HMAC of "abc" under it.
        let derived = WebAppSecret::from_bot_token("my-secret-token");
        assert_eq!(
            hex::encode(derived.sign(b"abc")),
            "6ecc2e9b51f30dde6877ce374ede54eb626c84e78a5d9a9dcac54d2d248f6bde"
        );
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(
            "fe37f490481d351837ed49f3b369c886c61013d6d036656fc3c9c92e163e3477",
            &mut bytes,
        )
        .unwrap();
        let stored = WebAppSecret::from_bytes(bytes);
        assert_eq!(stored.sign(b"abc").as_ref(), derived.sign(b"abc").as_ref());
    }

    /// Real initData for bot 7342037359, as published in @tma.js/init-data-node's docs and
    /// tests: signed by Telegram (Ed25519) and by the bot token below (HMAC).
    const PUBLISHED: &str = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date=1733584787&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6";

    #[test]
    fn authenticate_checks_signature_and_age_and_returns_the_decoded_fields() {
        let now = UnixTime(1_733_584_787);
        let token = "7342037359:AAFZehRPBRs8Seg40oDjTMIW8uTGPuW1zfQ";
        let hmac = Validator {
            scheme: Scheme::Hmac(WebAppSecret::from_bot_token(token)),
            max_age_secs: DAY,
        };
        let ed25519 = Validator {
            scheme: Scheme::ThirdParty {
                bot_id: 7_342_037_359,
                public_key: TelegramEnv::Prod.public_key(),
            },
            max_age_secs: DAY,
        };
        for validator in [&hmac, &ed25519] {
            let fields = validator.authenticate(PUBLISHED, now).unwrap();
            assert_eq!(fields.auth_date(), 1_733_584_787);
            assert_eq!(fields.get("chat_type"), Some("private"));
            assert!(
                fields
                    .get("user")
                    .unwrap()
                    .starts_with("{\"id\":279058397,")
            );
            // The same checks as `validate`, which only adds typing.
            assert!(validator.validate(PUBLISHED, now).is_ok());
            let tampered = PUBLISHED.replace("private", "group");
            assert_eq!(
                validator.authenticate(&tampered, now).err(),
                Some(InitDataError::SignatureInvalid)
            );
            assert_eq!(
                validator
                    .authenticate(PUBLISHED, UnixTime(now.secs() + DAY + 1))
                    .err(),
                Some(InitDataError::Expired)
            );
        }
    }

    #[test]
    fn published_vector_validates_under_both_schemes() {
        let now = UnixTime(1_733_584_787);
        let secret = WebAppSecret::from_bot_token("7342037359:AAFZehRPBRs8Seg40oDjTMIW8uTGPuW1zfQ");
        let data = validate_hmac(PUBLISHED, &secret, DAY, now).unwrap();
        let prod = TelegramEnv::Prod.public_key();
        assert_eq!(
            validate_ed25519(PUBLISHED, 7_342_037_359, &prod, DAY, now).unwrap(),
            data
        );
        let user = data.user.as_ref().unwrap();
        assert_eq!(user.id, 279_058_397);
        // "%20%2B%20" is " + " and the JSON's "\/" is unescaped only when typed.
        assert_eq!(user.first_name, "Vladislav + - ? /");
        assert!(
            parse(PUBLISHED)
                .unwrap()
                .third_party_data_check_string(7_342_037_359)
                .starts_with(
                    "7342037359:WebAppData\nauth_date=1733584787\nchat_instance=8134722200314281151\nchat_type=private\nuser={\"id\":279058397,\"first_name\":\"Vladislav + - ? \\/\""
                )
        );
        // Not under the test environment's key, another bot id, or an old enough `now`.
        let test = TelegramEnv::Test.public_key();
        assert_eq!(
            validate_ed25519(PUBLISHED, 7_342_037_359, &test, DAY, now),
            Err(InitDataError::SignatureInvalid)
        );
        assert_eq!(
            validate_ed25519(PUBLISHED, 7_342_037_358, &prod, DAY, now),
            Err(InitDataError::SignatureInvalid)
        );
        assert_eq!(
            validate_hmac(PUBLISHED, &secret, DAY, UnixTime::now()),
            Err(InitDataError::Expired)
        );
        assert!(validate_hmac(PUBLISHED, &secret, u64::MAX, UnixTime::now()).is_ok());
    }

    #[test]
    fn validator_from_env() {
        use crate::config::MapEnv;
        // A token: HMAC, default max age.
        let v = Validator::from_env(&MapEnv::new().with("TELEGRAM_BOT_TOKEN", TOKEN)).unwrap();
        assert!(matches!(v.scheme, Scheme::Hmac(_)));
        assert_eq!(v.max_age_secs, DEFAULT_MAX_AGE_SECS);
        let raw = sign_hmac(&[("auth_date", AUTH)], TOKEN);
        assert!(v.validate(&raw, NOW).is_ok());
        // A matching bot id next to the token is fine; a different one is not.
        let env = MapEnv::new()
            .with("TELEGRAM_BOT_TOKEN", TOKEN)
            .with("TELEGRAM_BOT_ID", "123456");
        assert!(matches!(
            Validator::from_env(&env).unwrap().scheme,
            Scheme::Hmac(_)
        ));
        let env = env.with("TELEGRAM_BOT_ID", "654321");
        assert_eq!(
            Validator::from_env(&env).unwrap_err().var,
            "TELEGRAM_BOT_ID"
        );
        // A bot id alone: Ed25519 with the production key, or the test key.
        let env = MapEnv::new()
            .with("TELEGRAM_BOT_ID", "123456")
            .with("TELEGRAM_INITDATA_MAX_AGE_SEC", "300");
        let v = Validator::from_env(&env).unwrap();
        assert_eq!(v.max_age_secs, 300);
        match v.scheme {
            Scheme::ThirdParty { bot_id, public_key } => {
                assert_eq!(bot_id, BOT_ID);
                assert_eq!(public_key, TelegramEnv::Prod.public_key());
            }
            Scheme::Hmac(_) => panic!("expected third-party validation"),
        }
        let v = Validator::from_env(&env.clone().with("TELEGRAM_ENV", "test")).unwrap();
        assert!(matches!(
            v.scheme,
            Scheme::ThirdParty { public_key, .. } if public_key == TelegramEnv::Test.public_key()
        ));
        // Nothing set names the token.
        let err = Validator::from_env(&MapEnv::new()).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_TOKEN");
        // Malformed values name their variable and never echo the value.
        let bad = [
            ("TELEGRAM_BOT_TOKEN", "no-colon-AAH-test-token"),
            ("TELEGRAM_BOT_TOKEN", "abc:AAH-test-token"),
            ("TELEGRAM_BOT_TOKEN", "123456:"),
            ("TELEGRAM_BOT_TOKEN", "0:AAH-test-token"),
            ("TELEGRAM_BOT_ID", "-5"),
            ("TELEGRAM_BOT_ID", "twelve"),
            ("TELEGRAM_ENV", "production"),
            ("TELEGRAM_INITDATA_MAX_AGE_SEC", "-1"),
        ];
        for (var, value) in bad {
            let env = MapEnv::new()
                .with("TELEGRAM_BOT_ID", "123456")
                .with(var, value);
            let err = Validator::from_env(&env).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(!err.to_string().contains(value), "{err}");
        }
    }

    fn arbitrary_fields() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec((any::<String>(), any::<String>()), 0..6)
    }

    fn as_refs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(raw in any::<String>()) {
            let _ = parse(&raw);
            let _ = hmac(&raw);
            let _ = ed(&raw);
        }

        #[test]
        fn query_like_strings_never_panic(raw in "[a-z_=&%0-9A-Fa-f+\\-]{0,300}") {
            let _ = parse(&raw);
            let _ = hmac(&raw);
            let _ = ed(&raw);
        }

        #[test]
        fn arbitrary_signed_pairs_never_panic(fields in arbitrary_fields(), with_auth in any::<bool>()) {
            let mut fields = as_refs(&fields);
            if with_auth {
                fields.push(("auth_date", AUTH));
            }
            for raw in [telegram(&fields), sign_hmac(&fields, TOKEN), encode(&fields)] {
                let _ = parse(&raw);
                let _ = hmac(&raw);
                let _ = ed(&raw);
            }
        }

        #[test]
        fn anything_signed_by_the_helper_validates(
            extra in prop::collection::btree_map("x_[a-z0-9_]{0,8}", "\\PC{0,40}", 0..6),
            first_name in "\\PC{1,30}",
            user_id in 1i64..=i64::MAX,
            age in 0u64..=DAY,
            query_id in proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        ) {
            let u = serde_json::json!({"id": user_id, "first_name": first_name}).to_string();
            let auth = (NOW.secs() - age).to_string();
            let mut fields: Vec<(&str, &str)> = vec![("user", &u), ("auth_date", &auth)];
            if let Some(q) = &query_id {
                fields.push(("query_id", q));
            }
            fields.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let raw = telegram(&fields);
            let by_hmac = hmac(&raw).unwrap();
            let by_ed = ed(&raw).unwrap();
            prop_assert_eq!(&by_hmac, &by_ed);
            prop_assert_eq!(&by_hmac.extra, &extra);
            prop_assert_eq!(&by_hmac.query_id, &query_id);
            let user = by_hmac.user.as_ref().unwrap();
            prop_assert_eq!(user.id, user_id);
            prop_assert_eq!(&user.first_name, &first_name);
            // HMAC-only data validates too, with the same replay key.
            let hmac_only = hmac(&sign_hmac(&fields, TOKEN)).unwrap();
            prop_assert_eq!(hmac_only.replay_key(), by_hmac.replay_key());
        }
    }
}
