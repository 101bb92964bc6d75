//! Worker tokens (`tgw_<base64url(user id)>.<43-character secret>`, told apart from a JWT at a
//! glance) and the public ids they are listed and revoked by.

use std::fmt;

use aws_lc_rs::rand::SecureRandom;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::{
    ids::UserId,
    token::{OneTimeToken, TokenHash},
};

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
}
