//! `TELEGRAM_BOT_USERNAME`: the service bot's username, for `t.me` links and for commands
//! written `/<command>@<bot>`.

use crate::config::{ConfigError, Env, required};

/// A Telegram bot username: 5–32 of `[A-Za-z0-9_]`, a leading `@` dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotUsername(String);

impl BotUsername {
    pub const VAR: &'static str = "TELEGRAM_BOT_USERNAME";

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let name = raw.trim().trim_start_matches('@');
        let valid = (5..=32).contains(&name.len())
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !valid {
            return Err(ConfigError::new(
                Self::VAR,
                "is malformed: expected 5-32 letters, digits or underscores",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The required `TELEGRAM_BOT_USERNAME`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Self::parse(&required(env, Self::VAR)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn valid_names_and_the_leading_at() {
        assert_eq!(BotUsername::parse("@my_bot").unwrap().as_str(), "my_bot");
        assert_eq!(BotUsername::parse("My_Bot").unwrap().as_str(), "My_Bot");
    }

    #[test]
    fn invalid_names_name_the_variable() {
        for bad in ["ab", "bad-name", &"a".repeat(33), ""] {
            assert_eq!(
                BotUsername::parse(bad).unwrap_err().var,
                "TELEGRAM_BOT_USERNAME"
            );
        }
        assert!(BotUsername::from_env(&MapEnv::new()).is_err());
    }
}
