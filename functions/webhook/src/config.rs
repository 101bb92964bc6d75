//! The webhook's configuration: the secret Telegram sends back, the bot's username, and what
//! the bot's messages say.

use std::fmt;

use aws_lc_rs::{constant_time, digest};
use tglink_shared::config::{ConfigError, Env, ttl_secs_or};

/// Default `APP_NAME`.
pub const DEFAULT_APP_NAME: &str = "tglink";

/// Default `CONNECT_TOKEN_TTL_SEC` (as in connect-link: the failure text names it).
pub const DEFAULT_TTL_SECS: u64 = 600;

/// `TELEGRAM_WEBHOOK_SECRET`: the `secret_token` given to `setWebhook`, which Telegram sends
/// in `X-Telegram-Bot-Api-Secret-Token` with every update. Only its SHA-256 is kept, and
/// presented values are compared by digest in constant time (so neither content nor length
/// leaks through timing).
#[derive(Clone)]
pub struct WebhookSecret(digest::Digest);

impl WebhookSecret {
    /// Telegram accepts 1-256 characters of `A-Za-z0-9_-`.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let valid = (1..=256).contains(&raw.len())
            && raw
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !valid {
            return Err(ConfigError::new(
                "TELEGRAM_WEBHOOK_SECRET",
                "is malformed: Telegram allows 1-256 letters, digits, '_' or '-'",
            ));
        }
        Ok(Self(digest::digest(&digest::SHA256, raw.as_bytes())))
    }

    /// Whether `presented` (the raw header value) is the secret.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let presented = digest::digest(&digest::SHA256, presented);
        constant_time::verify_slices_are_equal(presented.as_ref(), self.0.as_ref()).is_ok()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The bot's replies, with `APP_NAME` and the connect-link lifetime filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    app_name: String,
    lifetime: String,
}

impl Texts {
    pub fn new(app_name: &str, ttl_secs: u64) -> Self {
        Self {
            app_name: app_name.to_owned(),
            lifetime: lifetime(ttl_secs),
        }
    }

    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let app_name = env
            .var("APP_NAME")
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_APP_NAME.to_owned());
        if app_name.chars().count() > 64 || app_name.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "APP_NAME",
                "is malformed: at most 64 characters, no control characters",
            ));
        }
        let ttl = ttl_secs_or(env, "CONNECT_TOKEN_TTL_SEC", DEFAULT_TTL_SECS)?;
        Ok(Self::new(&app_name, ttl))
    }

    /// `account`: who minted the token (its label, else the app user id), so that a Telegram
    /// user tricked into opening someone else's link sees whose account it is.
    pub fn connected(&self, account: &str) -> String {
        format!(
            "✅ Successfully connected to the {} account {account}.\n\nNot your account? Send /disconnect to undo this.",
            self.app_name
        )
    }

    pub fn link_invalid(&self) -> String {
        format!(
            "❌ Connection link expired or invalid. Please generate a new one from the {} settings page.\n\nLinks expire after {}.",
            self.app_name, self.lifetime
        )
    }

    pub fn telegram_linked_elsewhere(&self) -> String {
        format!(
            "⚠️ This Telegram account is already connected to another {} account. Send /disconnect first, then open the link again.",
            self.app_name
        )
    }

    pub fn user_linked_elsewhere(&self) -> String {
        format!(
            "⚠️ Your {0} account is already connected to another Telegram account. Disconnect it in the {0} settings page first, then open the link again.",
            self.app_name
        )
    }

    pub fn blocked(&self) -> String {
        format!(
            "⛔ This Telegram account has been blocked from connecting to {}. Contact support if you think this is a mistake.",
            self.app_name
        )
    }

    pub fn welcome(&self) -> String {
        format!(
            "👋 To connect this Telegram account, open the connect link from the {} settings page.",
            self.app_name
        )
    }

    pub fn status_linked(&self, user_id: &str) -> String {
        format!(
            "🔗 This Telegram account is connected to the {} account {user_id}.",
            self.app_name
        )
    }

    pub fn status_not_linked(&self) -> String {
        format!(
            "This Telegram account is not connected to {0}. Generate a connect link from the {0} settings page.",
            self.app_name
        )
    }

    pub fn disconnected(&self) -> String {
        format!(
            "✅ Disconnected. This Telegram account is no longer connected to {}.",
            self.app_name
        )
    }
}

/// `600` → "10 minutes", `60` → "1 minute", `90` → "90 seconds".
fn lifetime(secs: u64) -> String {
    match (secs % 60, secs / 60) {
        (0, 1) => "1 minute".to_owned(),
        (0, minutes) => format!("{minutes} minutes"),
        _ if secs == 1 => "1 second".to_owned(),
        _ => format!("{secs} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use tglink_shared::config::MapEnv;

    use super::*;

    #[test]
    fn secret_is_validated_and_compared() {
        let secret = WebhookSecret::parse("abc_DEF-123").unwrap();
        assert!(secret.verify(b"abc_DEF-123"));
        assert!(!secret.verify(b"abc_DEF-124"));
        assert!(!secret.verify(b"abc_DEF-123 "));
        assert!(!secret.verify(b""));
        assert!(WebhookSecret::parse(&"a".repeat(256)).is_ok());
        for bad in ["", "has space", "semi;colon", "ünï", &"a".repeat(257)] {
            let err = WebhookSecret::parse(bad).unwrap_err();
            assert_eq!(err.var, "TELEGRAM_WEBHOOK_SECRET");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad));
            }
        }
        assert!(!format!("{secret:?}").contains("abc"));
    }

    #[test]
    fn failure_text_names_the_app_and_the_lifetime() {
        let texts = Texts::new("IDL Sentinel", 600);
        assert_eq!(
            texts.link_invalid(),
            "❌ Connection link expired or invalid. Please generate a new one from the IDL Sentinel settings page.\n\nLinks expire after 10 minutes."
        );
        assert_eq!(
            texts.connected("Ann Lee"),
            "✅ Successfully connected to the IDL Sentinel account Ann Lee.\n\nNot your account? Send /disconnect to undo this."
        );
        assert_eq!(
            texts.blocked(),
            "⛔ This Telegram account has been blocked from connecting to IDL Sentinel. Contact support if you think this is a mistake."
        );
        assert_eq!(lifetime(60), "1 minute");
        assert_eq!(lifetime(90), "90 seconds");
        assert_eq!(lifetime(1), "1 second");
        assert_eq!(lifetime(3600), "60 minutes");
    }

    #[test]
    fn texts_from_env() {
        let texts = Texts::from_env(&MapEnv::new()).unwrap();
        assert!(texts.link_invalid().contains("the tglink settings page"));
        assert!(texts.link_invalid().ends_with("after 10 minutes."));
        let env = MapEnv::new()
            .with("APP_NAME", "Acme")
            .with("CONNECT_TOKEN_TTL_SEC", "300");
        let texts = Texts::from_env(&env).unwrap();
        assert!(texts.link_invalid().contains("the Acme settings page"));
        assert!(texts.link_invalid().ends_with("after 5 minutes."));
        for bad in ["0", "31536001", "18446744073709551615"] {
            let bad = MapEnv::new().with("CONNECT_TOKEN_TTL_SEC", bad);
            assert_eq!(
                Texts::from_env(&bad).unwrap_err().var,
                "CONNECT_TOKEN_TTL_SEC"
            );
        }
        let bad = MapEnv::new().with("APP_NAME", "a\nb");
        assert_eq!(Texts::from_env(&bad).unwrap_err().var, "APP_NAME");
    }
}
