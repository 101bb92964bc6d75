//! One-time bearer tokens: 32 random bytes, base64url without padding (43 characters, valid as
//! a Telegram `start` parameter, which allows up to 64 of `[A-Za-z0-9_-]`). Only the SHA-256 of
//! a token is ever stored, so a read of the table cannot be replayed.

use std::fmt;

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// Number of characters of a minted token.
pub const TOKEN_LEN: usize = 43;

/// A raw one-time token as handed to (and presented by) a client. Never logged: `Debug`
/// redacts it and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeToken(String);

/// The storage key of a token: base64url(SHA-256(token)).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TokenHash(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFormatError {
    #[error("token must be 43 characters")]
    Length,
    #[error("token must be base64url")]
    Alphabet,
}

impl OneTimeToken {
    /// 32 bytes from the system CSPRNG.
    pub fn mint() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("system random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the exact shape [`OneTimeToken::mint`] produces.
    pub fn parse(raw: &str) -> Result<Self, TokenFormatError> {
        if raw.len() != TOKEN_LEN {
            return Err(TokenFormatError::Length);
        }
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self(raw.to_owned())),
            _ => Err(TokenFormatError::Alphabet),
        }
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }

    /// The secret text, for the one place that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeToken(<redacted>)")
    }
}

impl TokenHash {
    /// SHA-256 of arbitrary bytes, base64url (43 characters).
    pub fn of(bytes: &[u8]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, bytes)))
    }

    /// Rebuilds a hash read back from storage.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_43_url_safe_chars_and_unique() {
        let a = OneTimeToken::mint();
        let b = OneTimeToken::mint();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        assert_eq!(OneTimeToken::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn hash_is_sha256_base64url_and_differs_from_token() {
        let t = OneTimeToken::mint();
        let h = t.hash();
        assert_eq!(h.as_str().len(), 43);
        assert_ne!(h.as_str(), t.expose());
        assert_eq!(h, t.hash());
        // Known vector: SHA-256("abc").
        assert_eq!(
            TokenHash::of(b"abc").as_str(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn parse_rejects_wrong_shapes() {
        assert_eq!(OneTimeToken::parse("short"), Err(TokenFormatError::Length));
        let bad = "!".repeat(TOKEN_LEN);
        assert_eq!(OneTimeToken::parse(&bad), Err(TokenFormatError::Alphabet));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = OneTimeToken::mint();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
