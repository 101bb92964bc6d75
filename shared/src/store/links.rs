//! Port: the link between a Telegram user and an app user.
//!
//! One link is two items written and deleted together in one transaction: `TGUSER#<id>` /
//! `LINK` (by Telegram user) and `USER#<id>` / `TGLINK` (by app user), each with the whole
//! record. So a Telegram user is linked to at most one app user and an app user to at most one
//! Telegram user, and either lookup is one read. Links do not expire.

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
}

/// Which side of a requested link is already linked to someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSide {
    /// The Telegram user is linked to another app user.
    Telegram,
    /// The app user is linked to another Telegram user.
    User,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Both items were written.
    Linked(Link),
    /// The same pair was already linked; the stored link (unchanged) is returned.
    AlreadyLinked(Link),
    /// Refused, nothing written: this side is linked elsewhere (when both are, `Telegram`).
    Conflict(LinkSide),
    /// Refused, nothing written: the Telegram user is blocked (`TGUSER#<id>` / `BLOCK`).
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

    /// Deletes the app user's link (both items, atomically); returns what was deleted.
    async fn unlink_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError>;

    /// Deletes the Telegram user's link (both items, atomically); returns what was deleted.
    async fn unlink_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError>;
}
