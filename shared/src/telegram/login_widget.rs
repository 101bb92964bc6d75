//! Validation of Telegram's (legacy) Login Widget data.
//!
//! A website embedding the Login Widget with `data-auth-url` gets the user back on that URL
//! with the widget's fields as its query string, for example
//!
//! ```text
//! id=42&first_name=Ann&username=ann&photo_url=https%3A%2F%2Ft.me%2Fi%2Fuserpic%2F320%2Fa.jpg&auth_date=1700000000&hash=9f1c...
//! ```
//!
//! and that query string is what a backend checks (Telegram's "Checking authorization",
//! `core.telegram.org/widgets/login`):
//!
//! ```text
//! secret_key        = SHA256(bot_token)
//! data_check_string = every received field except `hash`, sorted by key, "key=value"
//!                     joined by "\n"
//! hash              = lowercase_hex(HMAC-SHA256(key = secret_key, message = data_check_string))
//! ```
//!
//! # One way to do each thing
//!
//! The string is parsed by the initData parser ([`super::initdata::parse`]) and checked with its
//! HMAC comparison and its time window, so the rules are the initData validator's, exactly:
//!
//! - form decoding, the 16 KiB limit, key characters (`[A-Za-z0-9_]`), no control characters
//!   in values, UTF-8 — anything else is [`WidgetError::Malformed`];
//! - **a duplicated field** (also after decoding, `id=1&%69d=1`) is
//!   [`WidgetError::Malformed`], never "first wins" or "last wins";
//! - **an unknown field** is an ordinary field: it is in the data-check-string, so one Telegram
//!   signed is accepted (kept in [`WidgetLogin::extra`]), and one added by anybody else breaks
//!   the hash ([`WidgetError::SignatureInvalid`]);
//! - `hash` must be exactly 64 lowercase hex digits and is compared in constant time
//!   (`aws_lc_rs::hmac::verify`); a missing one is [`WidgetError::HashMissing`];
//! - `auth_date` (plain decimal) is checked only after the hash: accepted when
//!   `auth_date <= now + MAX_FUTURE_SKEW_SECS` (60 s, else [`WidgetError::FromFuture`]) and
//!   `now - auth_date <= TELEGRAM_LOGIN_MAX_AGE_SEC` (default 86400, else
//!   [`WidgetError::Expired`]).
//!
//! Only the key differs from initData's HMAC scheme (`SHA256(bot_token)` instead of
//! `HMAC-SHA256("WebAppData", bot_token)`), so a Mini App initData is never a valid widget
//! payload and the other way round. There is no third-party (Ed25519) scheme for the widget:
//! it needs `TELEGRAM_BOT_TOKEN`.
//!
//! # After the hash
//!
//! `id` must be a positive decimal integer and `first_name` present, else
//! [`WidgetError::Malformed`]. Bots cannot log in to websites, so Telegram's widget has no
//! `is_bot`; should a signed payload carry `is_bot=true` it is [`WidgetError::BotUser`]
//! (as initData's `user.is_bot`). [`WidgetLogin::replay_key`] identifies the content
//! independently of its encoding and field order, in its own domain (it cannot equal an
//! initData's).
//!
//! # Error codes
//!
//! | error | code |
//! |---|---|
//! | `Malformed`, `HashMissing`, `AuthDateMissing`, `AuthDateInvalid` | `widget_malformed` |
//! | `SignatureInvalid` | `widget_signature_invalid` |
//! | `Expired`, `FromFuture` | `widget_expired` |
//! | `BotUser` | `bot_user_rejected` |
//! | `Replayed` (the store: used before) | `widget_replayed` |
//! | `Blocked` (the store: blocked by an admin) | `telegram_user_blocked` |
//!
//! No error message ever contains a piece of the input.

use std::{collections::BTreeMap, fmt};

use aws_lc_rs::{digest, hmac};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{
    initdata::{self, InitDataError, MAX_FUTURE_SKEW_SECS},
    miniapp::{DEFAULT_SESSION_TTL_SECS, Flags},
};
use crate::{
    config::{self, ConfigError, Env, flag, positive_or},
    ids::TelegramUserId,
    store::signins::InitDataUse,
    time::UnixTime,
    token::TokenHash,
};

/// Default of `TELEGRAM_LOGIN_MAX_AGE_SEC`: one day.
pub const DEFAULT_MAX_AGE_SECS: u64 = 86_400;

/// The domain of [`WidgetLogin::replay_key`] (the first line of the hashed text).
const REPLAY_DOMAIN: &str = "telegram-login-widget\n";

/// Why Login Widget data was refused. Messages never contain input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WidgetError {
    #[error("the Login Widget data is malformed: {0}")]
    Malformed(&'static str),
    #[error("the Login Widget data has no hash")]
    HashMissing,
    #[error("the Login Widget data has no auth_date")]
    AuthDateMissing,
    #[error("the Login Widget auth_date is not a non-negative integer")]
    AuthDateInvalid,
    #[error("the Login Widget hash is invalid")]
    SignatureInvalid,
    #[error("the Login Widget data is older than the accepted maximum age")]
    Expired,
    #[error("the Login Widget auth_date is in the future")]
    FromFuture,
    #[error("the Login Widget data belongs to a bot")]
    BotUser,
    #[error("this Login Widget data was used before; log in again")]
    Replayed,
    #[error("this Telegram user is blocked")]
    Blocked,
}

impl WidgetError {
    /// The stable, machine-readable code (see the module docs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_)
            | Self::HashMissing
            | Self::AuthDateMissing
            | Self::AuthDateInvalid => "widget_malformed",
            Self::SignatureInvalid => "widget_signature_invalid",
            Self::Expired | Self::FromFuture => "widget_expired",
            Self::BotUser => "bot_user_rejected",
            Self::Replayed => "widget_replayed",
            Self::Blocked => "telegram_user_blocked",
        }
    }
}

/// The initData parser's and checker's refusals, in the widget's terms.
impl From<InitDataError> for WidgetError {
    fn from(err: InitDataError) -> Self {
        match err {
            InitDataError::Malformed(what) => Self::Malformed(what),
            InitDataError::HashMissing => Self::HashMissing,
            InitDataError::AuthDateMissing => Self::AuthDateMissing,
            InitDataError::AuthDateInvalid => Self::AuthDateInvalid,
            InitDataError::SignatureInvalid => Self::SignatureInvalid,
            InitDataError::Expired => Self::Expired,
            InitDataError::FromFuture => Self::FromFuture,
            InitDataError::BotUser => Self::BotUser,
        }
    }
}

/// `secret_key = SHA256(bot_token)` as an HMAC key, without holding the bot token. Zeroized
/// on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct WidgetSecret {
    key: Box<hmac::Key>,
}

impl WidgetSecret {
    pub fn from_bot_token(bot_token: &str) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(digest::digest(&digest::SHA256, bot_token.as_bytes()).as_ref());
        Self {
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, bytes.as_slice())),
        }
    }
}

impl fmt::Debug for WidgetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WidgetSecret(<redacted>)")
    }
}

/// Verified Login Widget data of a (human) Telegram user. Only [`WidgetValidator::validate`]
/// produces one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WidgetLogin {
    pub id: TelegramUserId,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub photo_url: Option<String>,
    pub auth_date: u64,
    /// Signed fields this version does not know, decoded, as sent.
    pub extra: BTreeMap<String, String>,
    replay_key: TokenHash,
}

impl WidgetLogin {
    /// SHA-256 (base64url) of `telegram-login-widget\n` + the data-check-string: the same for
    /// any encoding or field order of the same content.
    pub fn replay_key(&self) -> TokenHash {
        self.replay_key.clone()
    }
}

/// The widget's check, configured once per cold start.
#[derive(Clone, Debug)]
pub struct WidgetValidator {
    pub secret: WidgetSecret,
    pub max_age_secs: u64,
}

impl WidgetValidator {
    /// Checks `raw` (the redirect's query string, without `?`) at `now`; see the module docs.
    pub fn validate(&self, raw: &str, now: UnixTime) -> Result<WidgetLogin, WidgetError> {
        let parsed = initdata::parse(raw)?;
        parsed.verify_hmac_key(&self.secret.key)?;
        initdata::check_auth_date(parsed.auth_date(), self.max_age_secs, now)?;
        let replay_key =
            TokenHash::of(format!("{REPLAY_DOMAIN}{}", parsed.data_check_string()).as_bytes());
        let auth_date = parsed.auth_date();
        let mut fields: BTreeMap<String, String> = parsed
            .fields()
            .filter(|(k, _)| !matches!(*k, "hash" | "auth_date"))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let id = fields
            .remove("id")
            .ok_or(WidgetError::Malformed("id is missing"))?;
        let id = id
            .parse::<i64>()
            .ok()
            .filter(|_| id.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| TelegramUserId::new(id).ok())
            .ok_or(WidgetError::Malformed("id is not a positive integer"))?;
        let first_name = fields
            .remove("first_name")
            .ok_or(WidgetError::Malformed("first_name is missing"))?;
        if fields.get("is_bot").is_some_and(|v| v == "true") {
            return Err(WidgetError::BotUser);
        }
        Ok(WidgetLogin {
            id,
            first_name,
            last_name: fields.remove("last_name"),
            username: fields.remove("username"),
            photo_url: fields.remove("photo_url"),
            auth_date,
            extra: fields,
            replay_key,
        })
    }
}

/// The Login Widget exchange's configuration, built once per cold start.
#[derive(Clone, Debug)]
pub struct WidgetConfig {
    pub validator: WidgetValidator,
    /// `TELEGRAM_SESSION_TTL_SEC` (shared with the Mini App's sessions).
    pub session_ttl_secs: u64,
}

impl WidgetConfig {
    /// `None` when the widget is off:
    ///
    /// - `TELEGRAM_FEATURE_ENABLED` off: off;
    /// - `TELEGRAM_LOGIN_WIDGET_ENABLED` unset: on exactly when `TELEGRAM_BOT_TOKEN` is set
    ///   (a third-party deployment with only `TELEGRAM_BOT_ID` cannot check the widget's hash);
    /// - `true`: on, and `TELEGRAM_BOT_TOKEN` is required (the cold start fails without it);
    /// - `false`: off.
    ///
    /// `TELEGRAM_LOGIN_MAX_AGE_SEC` (default 86400, > 0), `TELEGRAM_SESSION_TTL_SEC`.
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        const FLAG: &str = "TELEGRAM_LOGIN_WIDGET_ENABLED";
        let token = config::optional(env, "TELEGRAM_BOT_TOKEN").map(Zeroizing::new);
        let on = match config::optional(env, FLAG) {
            None => token.is_some(),
            Some(_) => flag(env, FLAG, true)?,
        };
        if !on || !Flags::from_env(env)?.feature {
            return Ok(None);
        }
        let Some(token) = token else {
            return Err(ConfigError::new(
                "TELEGRAM_BOT_TOKEN",
                "is required by the Login Widget (TELEGRAM_LOGIN_WIDGET_ENABLED is true)",
            ));
        };
        let max_age_secs = positive_or(env, "TELEGRAM_LOGIN_MAX_AGE_SEC", DEFAULT_MAX_AGE_SECS)?;
        Ok(Some(Self {
            validator: WidgetValidator {
                secret: WidgetSecret::from_bot_token(&token),
                max_age_secs,
            },
            session_ttl_secs: positive_or(
                env,
                "TELEGRAM_SESSION_TTL_SEC",
                DEFAULT_SESSION_TTL_SECS,
            )?,
        }))
    }

    pub fn verify(&self, raw: &RawWidgetData, now: UnixTime) -> Result<WidgetLogin, WidgetError> {
        self.validator.validate(raw.expose(), now)
    }

    /// The replay claim of `login` on the sign-in record (the namespace of initData's claims):
    /// live until the last second the same data is still accepted (`auth_date + max_age`; an
    /// `auth_date` up to [`MAX_FUTURE_SKEW_SECS`] ahead is accepted that much longer).
    pub fn widget_use(&self, login: &WidgetLogin, now: UnixTime) -> InitDataUse {
        let last_accepted = login.auth_date.saturating_add(self.validator.max_age_secs);
        let covering = last_accepted.saturating_add(1).saturating_sub(now.secs());
        debug_assert!(covering <= self.validator.max_age_secs + MAX_FUTURE_SKEW_SECS + 1);
        InitDataUse {
            telegram_user_id: login.id,
            fingerprint: login.replay_key(),
            retain_until: now.plus_secs(covering.max(1)),
            now,
        }
    }
}

/// Login Widget data exactly as received. Never logged or echoed: `Debug` is redacted and
/// there is no `Display`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RawWidgetData(String);

impl RawWidgetData {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawWidgetData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawWidgetData(<redacted>)")
    }
}

/// Builds Login Widget data the way Telegram does, for tests (here and in other crates).
/// Nothing is checked: duplicates or odd keys are encoded and signed as given.
pub mod signing {
    use aws_lc_rs::hmac;

    use super::WidgetSecret;
    use crate::telegram::initdata::{check_string, signing::encode};

    /// `hex(HMAC-SHA256(SHA256(bot_token), data_check_string))` over `fields` (without `hash`).
    pub fn widget_hash(fields: &[(&str, &str)], bot_token: &str) -> String {
        let dcs = check_string("", fields.iter().copied(), &["hash"]);
        hex::encode(hmac::sign(
            &WidgetSecret::from_bot_token(bot_token).key,
            dcs.as_bytes(),
        ))
    }

    /// `fields` followed by their `hash`, form-encoded: the redirect's query string.
    pub fn sign_widget(fields: &[(&str, &str)], bot_token: &str) -> String {
        let hash = widget_hash(fields, bot_token);
        let mut all = fields.to_vec();
        all.push(("hash", &hash));
        encode(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::{signing::sign_widget, *};
    use crate::{config::MapEnv, telegram::initdata::signing::encode};

    const TOKEN: &str = "123456:AAH-widget-unit-test-token";
    const NOW: UnixTime = UnixTime(1_700_000_000);
    const DAY: u64 = 86_400;

    fn validator() -> WidgetValidator {
        WidgetValidator {
            secret: WidgetSecret::from_bot_token(TOKEN),
            max_age_secs: DAY,
        }
    }

    fn check(raw: &str) -> Result<WidgetLogin, WidgetError> {
        validator().validate(raw, NOW)
    }

    /// Vectors computed independently of this crate, with Python's `hmac`/`hashlib`
    /// (`tests/py/widget_vectors.py`, whose output is pasted here):
    /// `secret = sha256(token).digest()`,
    /// `hmac.new(secret, "\n".join(sorted(f"{k}={v}" ...)).encode(), sha256).hexdigest()`.
    const PY_TOKEN: &str = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
    const PY_VALID: &str = "id=279058397&first_name=Vladislav&last_name=Kibenko&username=vdkfrost&photo_url=https%3A%2F%2Ft.me%2Fi%2Fuserpic%2F320%2Fa.jpg&auth_date=1700000000&hash=63e2b490c0243e6ea45dd83b7f67fdcacc721879759a7a2d1c7a3783e2270df7";
    const PY_EXTRA: &str = "id=42&first_name=Ann+Lee&auth_date=1700000000&new_field=x%26y&hash=0e62ac9c14074038a534e62a3708f075c83ecdf76ed372592275eaa4c885dad9";

    #[test]
    fn python_vectors_verify() {
        let v = WidgetValidator {
            secret: WidgetSecret::from_bot_token(PY_TOKEN),
            max_age_secs: DAY,
        };
        let login = v.validate(PY_VALID, NOW).unwrap();
        assert_eq!(login.id.get(), 279_058_397);
        assert_eq!(login.first_name, "Vladislav");
        assert_eq!(login.last_name.as_deref(), Some("Kibenko"));
        assert_eq!(login.username.as_deref(), Some("vdkfrost"));
        assert_eq!(
            login.photo_url.as_deref(),
            Some("https://t.me/i/userpic/320/a.jpg")
        );
        assert_eq!(login.auth_date, 1_700_000_000);
        assert!(login.extra.is_empty());
        // An unknown field Telegram signed is kept; decoded `+` and `%26` are in the check.
        let login = v.validate(PY_EXTRA, NOW).unwrap();
        assert_eq!(login.first_name, "Ann Lee");
        assert_eq!(
            login.extra.get("new_field").map(String::as_str),
            Some("x&y")
        );
        // The same payload checked with initData's key does not verify (and vice versa).
        let other = WidgetValidator {
            secret: WidgetSecret::from_bot_token("5768337691:other"),
            max_age_secs: DAY,
        };
        assert_eq!(
            other.validate(PY_VALID, NOW).unwrap_err(),
            WidgetError::SignatureInvalid
        );
    }

    #[test]
    fn refusals_and_codes() {
        let fields = [
            ("id", "42"),
            ("first_name", "Ann"),
            ("username", "ann"),
            ("auth_date", "1700000000"),
        ];
        let ok = sign_widget(&fields, TOKEN);
        assert_eq!(check(&ok).unwrap().id.get(), 42);

        // Hash wrong: another token, a flipped digit, uppercase hex, missing.
        let wrong = sign_widget(&fields, "123456:other");
        assert_eq!(check(&wrong).unwrap_err(), WidgetError::SignatureInvalid);
        let flipped = {
            let (head, hash) = ok.rsplit_once("hash=").unwrap();
            let mut h = hash.as_bytes().to_vec();
            h[0] = if h[0] == b'0' { b'1' } else { b'0' };
            format!("{head}hash={}", String::from_utf8(h).unwrap())
        };
        assert_eq!(
            check(&flipped).unwrap_err().code(),
            "widget_signature_invalid"
        );
        let upper = {
            let (head, hash) = ok.rsplit_once("hash=").unwrap();
            format!("{head}hash={}", hash.to_uppercase())
        };
        assert_eq!(check(&upper).unwrap_err(), WidgetError::SignatureInvalid);
        let no_hash = encode(&fields);
        assert_eq!(check(&no_hash).unwrap_err(), WidgetError::HashMissing);
        assert_eq!(check(&no_hash).unwrap_err().code(), "widget_malformed");

        // A field added after signing breaks the hash; a duplicated one is malformed, also
        // when the duplicate is an encoded spelling of the key.
        assert_eq!(
            check(&format!("{ok}&last_name=Evil")).unwrap_err(),
            WidgetError::SignatureInvalid
        );
        for dup in [
            format!("{ok}&id=43"),
            format!("id=43&{ok}"),
            format!("{ok}&%69d=42"),
        ] {
            assert_eq!(
                check(&dup).unwrap_err(),
                WidgetError::Malformed("duplicate key"),
                "{dup}"
            );
        }
        // Duplicates are refused even when signed as given.
        let signed_dup = sign_widget(&[("id", "42"), ("id", "43"), ("auth_date", "1")], TOKEN);
        assert_eq!(check(&signed_dup).unwrap_err().code(), "widget_malformed");

        // An unknown field that was signed is accepted and kept.
        let mut more = fields.to_vec();
        more.push(("new_field", "v"));
        let login = check(&sign_widget(&more, TOKEN)).unwrap();
        assert_eq!(login.extra.get("new_field").map(String::as_str), Some("v"));

        // Time: age exactly max accepted, one more second not; the future skew.
        let v = validator();
        assert!(v.validate(&ok, NOW.plus_secs(DAY)).is_ok());
        assert_eq!(
            v.validate(&ok, NOW.plus_secs(DAY + 1)).unwrap_err(),
            WidgetError::Expired
        );
        let at = |t: u64| {
            let t = t.to_string();
            sign_widget(
                &[("id", "42"), ("first_name", "A"), ("auth_date", &t)],
                TOKEN,
            )
        };
        assert!(check(&at(NOW.secs() + MAX_FUTURE_SKEW_SECS)).is_ok());
        let future = check(&at(NOW.secs() + MAX_FUTURE_SKEW_SECS + 1)).unwrap_err();
        assert_eq!(
            (future, future.code()),
            (WidgetError::FromFuture, "widget_expired")
        );
        // Time is checked after the hash: an expired forgery is a forgery.
        let forged_old = sign_widget(
            &[("id", "42"), ("first_name", "A"), ("auth_date", "1")],
            "1:x",
        );
        assert_eq!(
            check(&forged_old).unwrap_err(),
            WidgetError::SignatureInvalid
        );

        // Content after the hash.
        for (bad, what) in [
            (
                vec![("first_name", "A"), ("auth_date", "1700000000")],
                "id is missing",
            ),
            (
                vec![
                    ("id", "0"),
                    ("first_name", "A"),
                    ("auth_date", "1700000000"),
                ],
                "id is not a positive integer",
            ),
            (
                vec![
                    ("id", "+4"),
                    ("first_name", "A"),
                    ("auth_date", "1700000000"),
                ],
                "id is not a positive integer",
            ),
            (
                vec![("id", "4"), ("auth_date", "1700000000")],
                "first_name is missing",
            ),
        ] {
            assert_eq!(
                check(&sign_widget(&bad, TOKEN)).unwrap_err(),
                WidgetError::Malformed(what)
            );
        }
        let bot = sign_widget(
            &[
                ("id", "7"),
                ("first_name", "B"),
                ("is_bot", "true"),
                ("auth_date", "1700000000"),
            ],
            TOKEN,
        );
        assert_eq!(check(&bot).unwrap_err().code(), "bot_user_rejected");
        assert_eq!(check("").unwrap_err().code(), "widget_malformed");
        assert_eq!(check("?id=1").unwrap_err().code(), "widget_malformed");
    }

    #[test]
    fn replay_key_ignores_encoding_and_order_and_differs_from_initdata() {
        let a = sign_widget(
            &[
                ("id", "42"),
                ("first_name", "Ann Lee"),
                ("auth_date", "1700000000"),
            ],
            TOKEN,
        );
        let b = sign_widget(
            &[
                ("auth_date", "1700000000"),
                ("first_name", "Ann Lee"),
                ("id", "42"),
            ],
            TOKEN,
        )
        .replace('+', "%20");
        assert_ne!(a, b);
        let (a, b) = (check(&a).unwrap(), check(&b).unwrap());
        assert_eq!(a.replay_key(), b.replay_key());
        let dcs = "auth_date=1700000000\nfirst_name=Ann Lee\nid=42";
        assert_ne!(a.replay_key(), TokenHash::of(dcs.as_bytes()));
        let c = check(&sign_widget(
            &[
                ("id", "42"),
                ("first_name", "Ann"),
                ("auth_date", "1700000000"),
            ],
            TOKEN,
        ))
        .unwrap();
        assert_ne!(a.replay_key(), c.replay_key());
    }

    #[test]
    fn config_flags_and_claim() {
        let with_token = MapEnv::new().with("TELEGRAM_BOT_TOKEN", TOKEN);
        let c = WidgetConfig::from_env(&with_token).unwrap().unwrap();
        assert_eq!(c.validator.max_age_secs, DAY);
        assert_eq!(c.session_ttl_secs, DAY);
        // Unset flag: on exactly with a bot token.
        assert!(
            WidgetConfig::from_env(&MapEnv::new().with("TELEGRAM_BOT_ID", "1"))
                .unwrap()
                .is_none()
        );
        let off = with_token
            .clone()
            .with("TELEGRAM_LOGIN_WIDGET_ENABLED", "false");
        assert!(WidgetConfig::from_env(&off).unwrap().is_none());
        let feature_off = with_token.clone().with("TELEGRAM_FEATURE_ENABLED", "false");
        assert!(WidgetConfig::from_env(&feature_off).unwrap().is_none());
        let on_without_token = MapEnv::new().with("TELEGRAM_LOGIN_WIDGET_ENABLED", "true");
        let err = WidgetConfig::from_env(&on_without_token).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_TOKEN");
        assert!(!err.to_string().contains('\n'));
        for (var, bad) in [
            ("TELEGRAM_LOGIN_WIDGET_ENABLED", "maybe"),
            ("TELEGRAM_LOGIN_MAX_AGE_SEC", "0"),
            ("TELEGRAM_LOGIN_MAX_AGE_SEC", "a day"),
        ] {
            let err = WidgetConfig::from_env(&with_token.clone().with(var, bad)).unwrap_err();
            assert_eq!(err.var, var);
        }
        let c = WidgetConfig::from_env(&with_token.with("TELEGRAM_LOGIN_MAX_AGE_SEC", "100"))
            .unwrap()
            .unwrap();
        let raw = RawWidgetData::new(sign_widget(
            &[
                ("id", "42"),
                ("first_name", "A"),
                ("auth_date", &NOW.secs().to_string()),
            ],
            TOKEN,
        ));
        assert!(!format!("{raw:?}").contains("hash"));
        let login = c.verify(&raw, NOW).unwrap();
        let claim = c.widget_use(&login, NOW);
        // Accepted until NOW + 100: live until then.
        assert_eq!(claim.retain_until, NOW.plus_secs(101));
        assert_eq!(claim.fingerprint, login.replay_key());
        assert!(c.verify(&raw, NOW.plus_secs(100)).is_ok());
        assert!(c.verify(&raw, NOW.plus_secs(101)).is_err());
        assert!(!format!("{c:?}").contains(TOKEN));
    }
}
