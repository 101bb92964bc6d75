//! Port: the link between a Telegram user and an app user.
//!
//! One link is two items written and deleted together in one transaction: `TGUSER#<id>` /
//! `LINK` (by Telegram user) and `USER#<id>` / `TGLINK` (by app user), each with the whole
//! record. So a Telegram user is linked to at most one app user and an app user to at most one
//! Telegram user, and either lookup is one read. Links do not expire.
//!
//! Removing a link (either `unlink_*`) bumps the Telegram user's session epoch in the same
//! transaction: every Mini App session of that user ends with it (see
//! [`super::miniapp_sessions`]).

use async_trait::async_trait;

use super::StoreError;
use crate::{
    ids::{TelegramUserId, UserId},
    time::UnixTime,
};

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkSource {
    /// `/start <token>` to the bot (a connect link).
    Bot,
    /// A verified Mini App `initData`.
    MiniApp,
}

impl LinkSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::MiniApp => "miniapp",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "bot" => Ok(Self::Bot),
            "miniapp" => Ok(Self::MiniApp),
            _ => Err(StoreError::Corrupt("unknown link source".into())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub telegram_user_id: TelegramUserId,
    pub user_id: UserId,
    /// The private chat with the bot, when known (links made through the bot).
    pub chat_id: Option<i64>,
    /// The Telegram `@username` at link time, without the `@`.
    pub username: Option<String>,
    pub source: LinkSource,
    pub linked_at: UnixTime,
}

impl Link {
    /// Whether `other` links the same pair of users.
    pub fn same_pair(&self, other: &Link) -> bool {
        self.telegram_user_id == other.telegram_user_id && self.user_id == other.user_id
    }

    /// Which side of this (requested) link is linked to someone else, given the stored links of
    /// its Telegram user and of its app user: the one rule every adapter applies.
    pub fn conflict(&self, by_telegram: Option<&Link>, by_user: Option<&Link>) -> Option<LinkSide> {
        let elsewhere = |stored: Option<&Link>| stored.is_some_and(|s| !self.same_pair(s));
        LinkSide::reported(elsewhere(by_telegram), elsewhere(by_user))
    }
}

/// Which side of a requested link is already linked to someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSide {
    /// The Telegram user is linked to another app user.
    Telegram,
    /// The app user is linked to another Telegram user.
    User,
}

impl LinkSide {
    /// The side a refusal reports, given which sides are linked elsewhere: the Telegram user's
    /// when both are.
    pub fn reported(telegram: bool, user: bool) -> Option<Self> {
        if telegram {
            Some(Self::Telegram)
        } else if user {
            Some(Self::User)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Both items were written.
    Linked(Link),
    /// The same pair was already linked; the stored link (unchanged) is returned.
    AlreadyLinked(Link),
    /// Refused, nothing written: this side is linked elsewhere (when both are, `Telegram`).
    Conflict(LinkSide),
    /// Refused, nothing written: the Telegram user is blocked (`TGBLOCK#<id>` / `BLOCK`).
    Blocked,
}

#[async_trait]
pub trait Links: Send + Sync {
    /// The link of a Telegram user (one consistent read).
    async fn get_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError>;

    /// The link of an app user (one consistent read).
    async fn get_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError>;

    /// Writes both items atomically, unless the Telegram user is blocked or either side is
    /// linked already (checked in that order, in the same transaction as the write).
    async fn link(&self, link: &Link) -> Result<LinkOutcome, StoreError>;

    /// Deletes the app user's link (both items, atomically, with the Telegram user's session
    /// epoch bumped); returns what was deleted.
    async fn unlink_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError>;

    /// Deletes the Telegram user's link (both items, atomically, with its session epoch
    /// bumped); returns what was deleted.
    async fn unlink_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(tg: i64, user: &str) -> Link {
        Link {
            telegram_user_id: TelegramUserId::new(tg).unwrap(),
            user_id: UserId::parse(user).unwrap(),
            chat_id: None,
            username: None,
            source: LinkSource::Bot,
            linked_at: UnixTime(0),
        }
    }

    #[test]
    fn the_telegram_side_is_reported_first() {
        let wanted = link(1, "a");
        let same = link(1, "a");
        let tg_elsewhere = link(1, "b");
        let user_elsewhere = link(2, "a");
        assert_eq!(wanted.conflict(None, None), None);
        assert_eq!(wanted.conflict(Some(&same), Some(&same)), None);
        assert_eq!(
            wanted.conflict(Some(&tg_elsewhere), Some(&user_elsewhere)),
            Some(LinkSide::Telegram)
        );
        assert_eq!(
            wanted.conflict(None, Some(&user_elsewhere)),
            Some(LinkSide::User)
        );
        assert_eq!(
            wanted.conflict(Some(&tg_elsewhere), None),
            Some(LinkSide::Telegram)
        );
    }
}
