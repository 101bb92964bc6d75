//! Keys: the `pk`/`sk` of every kind of item in the table, in one place.
//!
//! | item | `pk` | `sk` |
//! | --- | --- | --- |
//! | link, by Telegram user | `TGUSER#<id>` | `LINK` |
//! | link, by app user | `USER#<id>` | `TGLINK` |
//! | block | `TGBLOCK#<id>` | `BLOCK` |
//! | sign-in record (sessions, initData claims, link and block mirrors) | `TGSIGNIN#<id>` | `SIGNIN` |
//! | claim | `CLAIM#<kind>#<key>` | `CLAIM` |
//! | token bucket (notify) | `RATE#<kind>#<id>` | `RATE` |
//! | connect token | `CONNECT#<hash>` | `CONNECT` |
//! | credentials | `VAULT#<id>` | `CREDENTIALS` |
//! | worker token (listing) | `VAULT#<id>` | `WORKERTOKEN#<id>` |
//! | registration pointer | `REGISTRATION#<hash>` | `REGISTRATION` |
//! | registration state | `REGISTRATIONID#<id>` | `REGISTRATION` |
//! | TOTP verification state | `TOTP#<user id>` | `TOTP` |
//! | current signing key (pointer) | `SIGNKEY#set` | `CURRENT` |
//! | signing key | `SIGNKEY#set` | `KEY#<kid>` |
//! | pending OpenID authorization request | `AUTHREQ#<hash of tglink's upstream state>` | `AUTHREQ` |
//! | tglink authorization code | `AUTHCODE#<hash>` | `AUTHCODE` |
//!
//! The `pk` prefix is what IAM sees (`dynamodb:LeadingKeys`): each function's role in
//! `template.yaml` may touch only the prefixes it uses, so a kind of item that one function
//! must not touch never shares a prefix with one it uses. The vault (`VAULT#`: credentials and
//! worker tokens, settings and worker-credentials only) does not share `USER#` with links,
//! blocks (written by the admin routes only) do not share `TGUSER#` with links, claims carry
//! their kind (`CLAIM#update#…` for the webhook), and the sign-in record (`TGSIGNIN#`: sessions,
//! initData claims, link and block mirrors) has a prefix of its own, so the token endpoint
//! touches no link item. A new kind of item gets a prefix of its own and a row in the IAM matrix of
//! `tests/tests/deploy/iam.rs`.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{Item, s};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{BucketKey, ClaimKey, registrations::RegistrationId},
    token::TokenHash,
};

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Self {
        Self { pk, sk: sk.into() }
    }

    /// The key as a request's `Key`.
    pub fn attributes(self) -> Item {
        Item::from([("pk".to_owned(), s(self.pk)), ("sk".to_owned(), s(self.sk))])
    }

    /// The item under this key with `attributes`.
    pub fn item<const N: usize>(self, attributes: [(&str, AttributeValue); N]) -> Item {
        let mut item = self.attributes();
        item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
        item
    }
}

/// The vault partition of an app user: credentials and worker tokens.
pub(super) fn vault_pk(user: &UserId) -> String {
    format!("VAULT#{}", user.as_str())
}

fn telegram_pk(id: TelegramUserId) -> String {
    format!("TGUSER#{id}")
}

pub(super) fn link_by_telegram(id: TelegramUserId) -> Key {
    Key::new(telegram_pk(id), "LINK")
}

pub(super) fn link_by_user(user: &UserId) -> Key {
    Key::new(format!("USER#{}", user.as_str()), "TGLINK")
}

pub(super) fn block(id: TelegramUserId) -> Key {
    Key::new(format!("TGBLOCK#{id}"), "BLOCK")
}

/// The Telegram user's sign-in record (see `signins.rs`).
pub(super) fn signin(id: TelegramUserId) -> Key {
    Key::new(format!("TGSIGNIN#{id}"), "SIGNIN")
}

pub(super) fn claim(key: &ClaimKey) -> Key {
    Key::new(format!("CLAIM#{}", key.as_str()), "CLAIM")
}

pub(super) fn bucket(key: &BucketKey) -> Key {
    Key::new(format!("RATE#{}", key.as_str()), "RATE")
}

pub(super) fn connect_token(hash: &TokenHash) -> Key {
    Key::new(format!("CONNECT#{}", hash.as_str()), "CONNECT")
}

pub(super) fn credentials(user: &UserId) -> Key {
    Key::new(vault_pk(user), "CREDENTIALS")
}

/// The prefix of every worker token's `sk` in its user's partition.
pub(super) const WORKER_TOKEN_PREFIX: &str = "WORKERTOKEN#";

pub(super) fn worker_token(user: &UserId, id: &str) -> Key {
    Key::new(vault_pk(user), format!("{WORKER_TOKEN_PREFIX}{id}"))
}

const REGISTRATION_SK: &str = "REGISTRATION";

pub(super) fn registration_by_token(hash: &TokenHash) -> Key {
    Key::new(format!("REGISTRATION#{}", hash.as_str()), REGISTRATION_SK)
}

pub(super) fn registration_by_id(id: &RegistrationId) -> Key {
    Key::new(format!("REGISTRATIONID#{id}"), REGISTRATION_SK)
}

/// A user's TOTP verification state: the current seed's registration and the failures.
pub(super) fn totp(user: &UserId) -> Key {
    Key::new(format!("TOTP#{}", user.as_str()), "TOTP")
}

/// The one partition of the signing keys: one `Query` reads the whole set.
pub(super) const SIGNING_KEYS_PK: &str = "SIGNKEY#set";

pub(super) fn signing_key_current() -> Key {
    Key::new(SIGNING_KEYS_PK.to_owned(), "CURRENT")
}

pub(super) fn signing_key(kid: &str) -> Key {
    Key::new(SIGNING_KEYS_PK.to_owned(), format!("KEY#{kid}"))
}

/// A pending authorization request of tglink's OpenID provider (`authorizations.rs`).
pub(super) fn auth_request(state: &TokenHash) -> Key {
    Key::new(format!("AUTHREQ#{}", state.as_str()), "AUTHREQ")
}

/// A tglink authorization code (`authorizations.rs`).
pub(super) fn auth_code(code: &TokenHash) -> Key {
    Key::new(format!("AUTHCODE#{}", code.as_str()), "AUTHCODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_as_documented() {
        let tg = TelegramUserId::new(42).unwrap();
        let user = UserId::parse("user#1").unwrap();
        let hash = TokenHash::of(b"token");
        let pair = |k: Key| (k.pk, k.sk);
        assert_eq!(
            pair(link_by_telegram(tg)),
            ("TGUSER#42".into(), "LINK".into())
        );
        assert_eq!(
            pair(link_by_user(&user)),
            ("USER#user#1".into(), "TGLINK".into())
        );
        assert_eq!(pair(block(tg)), ("TGBLOCK#42".into(), "BLOCK".into()));
        assert_eq!(pair(signin(tg)), ("TGSIGNIN#42".into(), "SIGNIN".into()));
        assert_eq!(
            pair(credentials(&user)),
            ("VAULT#user#1".into(), "CREDENTIALS".into())
        );
        assert_eq!(
            pair(worker_token(&user, "w1")),
            ("VAULT#user#1".into(), "WORKERTOKEN#w1".into())
        );
        assert_eq!(
            pair(claim(&ClaimKey::new("initdata", "abc"))),
            ("CLAIM#initdata#abc".into(), "CLAIM".into())
        );
        assert_eq!(
            pair(registration_by_token(&hash)).0,
            format!("REGISTRATION#{}", hash.as_str())
        );
        assert_eq!(pair(totp(&user)), ("TOTP#user#1".into(), "TOTP".into()));
        assert_eq!(
            pair(bucket(&BucketKey::chat(42))),
            ("RATE#chat#42".into(), "RATE".into())
        );
        assert_eq!(
            pair(auth_request(&hash)),
            (format!("AUTHREQ#{}", hash.as_str()), "AUTHREQ".into())
        );
        assert_eq!(
            pair(auth_code(&hash)),
            (format!("AUTHCODE#{}", hash.as_str()), "AUTHCODE".into())
        );
    }
}
