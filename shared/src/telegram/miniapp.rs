//! What the Mini App endpoints (`initdata-verify` and `link`) have in common: their
//! configuration, the raw initData as received, verification down to a Telegram user, the
//! replay claim, and a stable code for every refusal (each a `401` problem, mapped in
//! [`crate::http::problems`]).
//!
//! | refusal | code |
//! |---|---|
//! | not initData, or initData without `user` | `initdata_malformed` |
//! | signature (HMAC or Ed25519) does not verify | `initdata_signature_invalid` |
//! | `auth_date` too old or in the future | `initdata_expired` |
//! | used before within the replay window | `initdata_replayed` |
//! | `user.is_bot` | `bot_user_rejected` |
//! | the Telegram user is blocked by an admin | `telegram_user_blocked` |

use std::fmt;

use serde::Deserialize;

use super::initdata::{InitData, InitDataError, MAX_FUTURE_SKEW_SECS, Validator, WebAppUser};
use crate::{
    config::{ConfigError, Env, flag, positive_or},
    ids::TelegramUserId,
    store::signins::InitDataUse,
    time::UnixTime,
};

/// Default `TELEGRAM_INITDATA_REPLAY_WINDOW_MS`: one day.
pub const DEFAULT_REPLAY_WINDOW_MS: u64 = 86_400_000;

/// Default `TELEGRAM_SESSION_TTL_SEC`: one day.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 86_400;

/// `TELEGRAM_FEATURE_ENABLED` and `TELEGRAM_MINIAPP_ENABLED` (both default `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// The whole Telegram feature.
    pub feature: bool,
    /// Mini App sessions and linking (only when `feature` is on too).
    pub miniapp: bool,
}

impl Flags {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            feature: flag(env, "TELEGRAM_FEATURE_ENABLED", true)?,
            miniapp: flag(env, "TELEGRAM_MINIAPP_ENABLED", true)?,
        })
    }

    /// Whether the Mini App endpoints are served.
    pub fn miniapp_enabled(&self) -> bool {
        self.feature && self.miniapp
    }
}

/// The Mini App configuration, built once per cold start.
#[derive(Debug, Clone)]
pub struct MiniAppConfig {
    /// `TELEGRAM_BOT_TOKEN` (HMAC) or `TELEGRAM_BOT_ID` + `TELEGRAM_ENV` (Ed25519), and
    /// `TELEGRAM_INITDATA_MAX_AGE_SEC`.
    pub validator: Validator,
    /// `TELEGRAM_INITDATA_REPLAY_WINDOW_MS`, rounded up to whole seconds (claims expire by the
    /// second). At least the max age: a claim never ends while its initData is still accepted
    /// (see [`MiniAppConfig::replay_claim`]).
    pub replay_window_secs: u64,
    /// `TELEGRAM_SESSION_TTL_SEC`.
    pub session_ttl_secs: u64,
}

impl MiniAppConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let window_ms = positive_or(
            env,
            "TELEGRAM_INITDATA_REPLAY_WINDOW_MS",
            DEFAULT_REPLAY_WINDOW_MS,
        )?;
        let validator = Validator::from_env(env)?;
        let max_age = validator.max_age_secs;
        if max_age == 0 {
            return Err(ConfigError::new(
                "TELEGRAM_INITDATA_MAX_AGE_SEC",
                "must be greater than 0 for the Mini App (initData of age 0 is unusable)",
            ));
        }
        let replay_window_secs = window_ms.div_ceil(1000);
        if replay_window_secs < max_age {
            return Err(ConfigError::new(
                "TELEGRAM_INITDATA_REPLAY_WINDOW_MS",
                format_args!(
                    "must be at least TELEGRAM_INITDATA_MAX_AGE_SEC ({max_age} s = {} ms): \
                     initData would be replayable after its claim ends",
                    max_age.saturating_mul(1000)
                ),
            ));
        }
        Ok(Self {
            validator,
            replay_window_secs,
            session_ttl_secs: positive_or(
                env,
                "TELEGRAM_SESSION_TTL_SEC",
                DEFAULT_SESSION_TTL_SECS,
            )?,
        })
    }

    /// Validates `raw` and requires a (human) user in it.
    pub fn verify(&self, raw: &RawInitData, now: UnixTime) -> Result<Verified, MiniAppError> {
        let data = self.validator.validate(raw.expose(), now)?;
        let user = data.user.clone().ok_or(MiniAppError::NoUser)?;
        // The validator refuses non-positive user ids, so this cannot fail.
        let telegram_user_id = TelegramUserId::new(user.id)
            .map_err(|_| MiniAppError::InitData(InitDataError::Malformed("user id")))?;
        Ok(Verified {
            data,
            user,
            telegram_user_id,
        })
    }

    /// The use of `verified` (its replay claim on the sign-in record): kept for the replay
    /// window, and in any case until its initData can no longer be accepted
    /// ([`Self::replay_retain_secs`]).
    pub fn initdata_use(&self, verified: &Verified, now: UnixTime) -> InitDataUse {
        InitDataUse {
            telegram_user_id: verified.telegram_user_id,
            fingerprint: verified.data.replay_key(),
            retain_until: now.plus_secs(self.replay_retain_secs(verified.data.auth_date, now)),
            now,
        }
    }

    /// How long, from `now`, the claim of initData dated `auth_date` is kept: the replay window,
    /// and at least past the last second the initData is accepted (`auth_date + max_age`; an
    /// `auth_date` up to [`MAX_FUTURE_SKEW_SECS`] ahead of `now` is accepted that much longer).
    /// A claim is live while `now < expires_at`, hence the `+ 1`.
    pub fn replay_retain_secs(&self, auth_date: u64, now: UnixTime) -> u64 {
        let last_accepted = auth_date.saturating_add(self.validator.max_age_secs);
        let covering = last_accepted.saturating_add(1).saturating_sub(now.secs());
        // `auth_date` is at most MAX_FUTURE_SKEW_SECS ahead of an accepted `now`.
        debug_assert!(covering <= self.validator.max_age_secs + MAX_FUTURE_SKEW_SECS + 1);
        self.replay_window_secs.max(covering)
    }
}

/// initData exactly as the Mini App sent it (`Telegram.WebApp.initData`). Never logged or
/// echoed: `Debug` is redacted and there is no `Display`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RawInitData(String);

impl RawInitData {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawInitData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawInitData(<redacted>)")
    }
}

/// Verified initData of a human user.
#[derive(Debug, Clone)]
pub struct Verified {
    pub data: InitData,
    pub user: WebAppUser,
    pub telegram_user_id: TelegramUserId,
}

/// Why a Mini App request was refused. Messages never contain input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MiniAppError {
    #[error(transparent)]
    InitData(#[from] InitDataError),
    #[error("initData has no user")]
    NoUser,
    #[error("this initData was used before; open the Mini App again")]
    Replayed,
    #[error("this Telegram user is blocked")]
    Blocked,
}

impl MiniAppError {
    /// The stable code (see the module docs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InitData(e) => e.code(),
            Self::NoUser => "initdata_malformed",
            Self::Replayed => "initdata_replayed",
            Self::Blocked => "telegram_user_blocked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::MapEnv,
        telegram::initdata::signing::{encode, sign_hmac},
    };

    const TOKEN: &str = "123456:AAH-miniapp-unit-test-token";
    const NOW: UnixTime = UnixTime(1_700_000_000);

    fn config(env: MapEnv) -> MiniAppConfig {
        MiniAppConfig::from_env(&env.with("TELEGRAM_BOT_TOKEN", TOKEN)).unwrap()
    }

    #[test]
    fn defaults_and_rounding() {
        let c = config(MapEnv::new());
        assert_eq!(c.replay_window_secs, 86_400);
        assert_eq!(c.session_ttl_secs, 86_400);
        let short = |window_ms: &str| {
            config(
                MapEnv::new()
                    .with("TELEGRAM_INITDATA_MAX_AGE_SEC", "1")
                    .with("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", window_ms),
            )
        };
        assert_eq!(short("1500").replay_window_secs, 2);
        assert_eq!(short("1").replay_window_secs, 1);
        for (var, bad) in [
            ("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", "0"),
            ("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", "soon"),
            ("TELEGRAM_SESSION_TTL_SEC", "0"),
            ("TELEGRAM_SESSION_TTL_SEC", "-1"),
        ] {
            let env = MapEnv::new()
                .with("TELEGRAM_BOT_TOKEN", TOKEN)
                .with(var, bad);
            assert_eq!(MiniAppConfig::from_env(&env).unwrap_err().var, var);
        }
        let err = MiniAppConfig::from_env(&MapEnv::new()).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_TOKEN");
    }

    #[test]
    fn a_replay_window_shorter_than_the_max_age_or_a_max_age_of_0_fails_the_cold_start() {
        let env = |age: &str, window_ms: &str| {
            MapEnv::new()
                .with("TELEGRAM_BOT_TOKEN", TOKEN)
                .with("TELEGRAM_INITDATA_MAX_AGE_SEC", age)
                .with("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", window_ms)
        };
        let err = MiniAppConfig::from_env(&env("300", "299000")).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_INITDATA_REPLAY_WINDOW_MS");
        assert!(err.to_string().contains("300000 ms"), "{err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        // The default window (a day) is shorter than a two-day max age.
        let long = MapEnv::new()
            .with("TELEGRAM_BOT_TOKEN", TOKEN)
            .with("TELEGRAM_INITDATA_MAX_AGE_SEC", "172800");
        assert_eq!(
            MiniAppConfig::from_env(&long).unwrap_err().var,
            "TELEGRAM_INITDATA_REPLAY_WINDOW_MS"
        );
        let err = MiniAppConfig::from_env(&env("0", "1000")).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_INITDATA_MAX_AGE_SEC");
        // Equal is enough (the claim is stretched to cover the future skew).
        let c = MiniAppConfig::from_env(&env("300", "300000")).unwrap();
        assert_eq!((c.replay_window_secs, c.validator.max_age_secs), (300, 300));
    }

    #[test]
    fn the_claim_covers_the_last_accepted_second() {
        let c = MiniAppConfig::from_env(
            &MapEnv::new()
                .with("TELEGRAM_BOT_TOKEN", TOKEN)
                .with("TELEGRAM_INITDATA_MAX_AGE_SEC", "100")
                .with("TELEGRAM_INITDATA_REPLAY_WINDOW_MS", "100000"),
        )
        .unwrap();
        let now = NOW.secs();
        // Dated now: accepted until now + 100, so live until then (expires at now + 101).
        assert_eq!(c.replay_retain_secs(now, NOW), 101);
        // Dated 60 s ahead: accepted until now + 160.
        assert_eq!(c.replay_retain_secs(now + 60, NOW), 161);
        // Dated long ago: the window.
        assert_eq!(c.replay_retain_secs(now - 100, NOW), 100);
    }

    proptest::proptest! {
        /// Every `auth_date` the validator accepts at `now` is covered by its claim: up to the
        /// last second the same initData is still accepted, the claim made at `now` is live.
        #[test]
        fn every_accepted_auth_date_is_covered_by_its_claim(
            max_age in 1u64..400,
            extra_window in 0u64..200,
            auth_offset in 0u64..600,
        ) {
            let c = config(
                MapEnv::new()
                    .with("TELEGRAM_INITDATA_MAX_AGE_SEC", max_age.to_string())
                    .with(
                        "TELEGRAM_INITDATA_REPLAY_WINDOW_MS",
                        ((max_age + extra_window) * 1000).to_string(),
                    ),
            );
            let now = NOW;
            // auth_date from beyond the future skew to far in the past.
            let auth_date = now.secs() + MAX_FUTURE_SKEW_SECS + 10 - auth_offset;
            let user = r#"{"id":42,"first_name":"Ann"}"#;
            let raw = RawInitData::new(sign_hmac(
                &[("auth_date", &auth_date.to_string()), ("user", user)],
                TOKEN,
            ));
            let Ok(verified) = c.verify(&raw, now) else {
                return Ok(());
            };
            let claim = c.initdata_use(&verified, now);
            let expires_at = claim.retain_until.secs();
            // The last second the initData is accepted, and the first it is not.
            let last = UnixTime(auth_date + max_age);
            proptest::prop_assert!(c.verify(&raw, last).is_ok());
            proptest::prop_assert!(c.verify(&raw, last.plus_secs(1)).is_err());
            proptest::prop_assert!(
                expires_at > last.secs(),
                "accepted until {last:?} but the claim ends at {expires_at}"
            );
            proptest::prop_assert!(expires_at - now.secs() >= c.replay_window_secs);
        }
    }

    #[test]
    fn flags() {
        let on = Flags::from_env(&MapEnv::new()).unwrap();
        assert!(on.miniapp_enabled());
        let off =
            Flags::from_env(&MapEnv::new().with("TELEGRAM_FEATURE_ENABLED", "false")).unwrap();
        assert!(!off.miniapp_enabled());
        let off = Flags::from_env(&MapEnv::new().with("TELEGRAM_MINIAPP_ENABLED", "0")).unwrap();
        assert!(off.feature && !off.miniapp_enabled());
        let err = Flags::from_env(&MapEnv::new().with("TELEGRAM_MINIAPP_ENABLED", "maybe"));
        assert_eq!(err.unwrap_err().var, "TELEGRAM_MINIAPP_ENABLED");
    }

    #[test]
    fn verify_requires_a_user_and_maps_codes() {
        let c = config(MapEnv::new());
        let user = r#"{"id":42,"first_name":"Ann","username":"ann"}"#;
        let ok = sign_hmac(&[("auth_date", "1700000000"), ("user", user)], TOKEN);
        let verified = c.verify(&RawInitData::new(ok.clone()), NOW).unwrap();
        assert_eq!(verified.telegram_user_id.get(), 42);
        assert_eq!(verified.user.username.as_deref(), Some("ann"));
        let claim = c.initdata_use(&verified, NOW);
        // Dated now: kept past the initData's last accepted second (a day), not just the window.
        assert_eq!(claim.retain_until, NOW.plus_secs(86_401));
        assert_eq!(claim.fingerprint, verified.data.replay_key());
        assert_eq!(claim.telegram_user_id, verified.telegram_user_id);

        let no_user = sign_hmac(&[("auth_date", "1700000000"), ("query_id", "q")], TOKEN);
        let err = c.verify(&RawInitData::new(no_user), NOW).unwrap_err();
        assert_eq!(err, MiniAppError::NoUser);
        assert_eq!(err.code(), "initdata_malformed");

        let bot = sign_hmac(
            &[
                ("auth_date", "1700000000"),
                ("user", r#"{"id":7,"first_name":"B","is_bot":true}"#),
            ],
            TOKEN,
        );
        assert_eq!(
            c.verify(&RawInitData::new(bot), NOW).unwrap_err().code(),
            "bot_user_rejected"
        );
        let forged = sign_hmac(&[("auth_date", "1700000000"), ("user", user)], "1:other");
        assert_eq!(
            c.verify(&RawInitData::new(forged), NOW).unwrap_err().code(),
            "initdata_signature_invalid"
        );
        let unsigned = encode(&[("auth_date", "1700000000"), ("user", user)]);
        assert_eq!(
            c.verify(&RawInitData::new(unsigned), NOW)
                .unwrap_err()
                .code(),
            "initdata_malformed"
        );
        assert_eq!(
            c.verify(&RawInitData::new(ok), NOW.plus_secs(86_401))
                .unwrap_err()
                .code(),
            "initdata_expired"
        );
    }

    #[test]
    fn raw_init_data_is_redacted() {
        let raw = RawInitData::new("auth_date=1&hash=secret-ish");
        assert!(!format!("{raw:?}").contains("secret-ish"));
        let parsed: RawInitData = serde_json::from_str(r#""a=b""#).unwrap();
        assert_eq!(parsed.expose(), "a=b");
    }
}
