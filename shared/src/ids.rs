//! Identifier newtypes: parsed once at the edge, trusted everywhere after.

use std::fmt;

/// The host application's user id: the `sub` claim of a verified app JWT.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid user id: {0}")]
pub struct InvalidId(&'static str);

impl UserId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if raw.is_empty() {
            return Err(InvalidId("empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidId("longer than 256 bytes"));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidId("contains control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// A Telegram user id (positive, fits in 52 bits per the Bot API; we accept any positive i64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct TelegramUserId(i64);

impl TelegramUserId {
    pub fn new(id: i64) -> Result<Self, InvalidId> {
        if id <= 0 {
            return Err(InvalidId("telegram user id must be positive"));
        }
        Ok(Self(id))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        raw.parse::<i64>()
            .map_err(|_| InvalidId("telegram user id is not an integer"))
            .and_then(Self::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TelegramUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rejects_empty_long_and_control() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(257)).is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert_eq!(UserId::parse("user-1").unwrap().as_str(), "user-1");
    }

    #[test]
    fn telegram_user_id_must_be_positive_integer() {
        assert!(TelegramUserId::parse("0").is_err());
        assert!(TelegramUserId::parse("-5").is_err());
        assert!(TelegramUserId::parse("12x").is_err());
        assert_eq!(TelegramUserId::parse("42").unwrap().get(), 42);
    }
}
