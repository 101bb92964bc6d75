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
    /// Set when the bot cannot reach the user's private chat (the user blocked the bot, was
    /// deactivated, or the chat is gone); `None`: reachable. A relink resets it.
    pub unreachable: Option<Unreachable>,
}

/// Why and since when the bot cannot reach a linked user's private chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub reason: UnreachableReason,
    pub since: UnixTime,
}

/// Why a chat is unreachable: what Telegram said (a `403`/`400` to `sendMessage`, or a
/// `my_chat_member` update with the bot `kicked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnreachableReason {
    /// The user blocked the bot (`403 … bot was blocked by the user`, or `kicked`).
    BotBlocked,
    /// The user's account is deactivated (`403 … user is deactivated`).
    UserDeactivated,
    /// The chat is gone (`400 … chat not found`, `403 … bot can't initiate conversation`).
    ChatNotFound,
}

impl UnreachableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BotBlocked => "bot_blocked",
            Self::UserDeactivated => "user_deactivated",
            Self::ChatNotFound => "chat_not_found",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "bot_blocked" => Ok(Self::BotBlocked),
            "user_deactivated" => Ok(Self::UserDeactivated),
            "chat_not_found" => Ok(Self::ChatNotFound),
            _ => Err(StoreError::Corrupt("unknown unreachable reason".into())),
        }
    }
}

/// A change of a link's reachability ([`Links::set_reachability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Reachable again (the user started the bot, or unblocked it); `chat_id`, when given, is
    /// the private chat to record on the link.
    Reachable { chat_id: Option<i64> },
    /// Unreachable for `reason` from `now` (an earlier `since` is kept).
    Unreachable {
        reason: UnreachableReason,
        now: UnixTime,
    },
}

impl Link {
    /// Whether `other` links the same pair of users.
    pub fn same_pair(&self, other: &Link) -> bool {
        self.telegram_user_id == other.telegram_user_id && self.user_id == other.user_id
    }

    /// This link after `change`: the one rule every adapter applies.
    pub fn with_reachability(mut self, change: Reachability) -> Link {
        match change {
            Reachability::Reachable { chat_id } => {
                self.unreachable = None;
                if chat_id.is_some() {
                    self.chat_id = chat_id;
                }
            }
            Reachability::Unreachable { reason, now } => {
                let since = self.unreachable.as_ref().map_or(now, |u| u.since);
                self.unreachable = Some(Unreachable { reason, since });
            }
        }
        self
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

    /// Records a change of the Telegram user's link's reachability on both items (see
    /// [`Link::with_reachability`]); returns the updated link, `None` when not linked.
    async fn set_reachability(
        &self,
        id: TelegramUserId,
        change: Reachability,
    ) -> Result<Option<Link>, StoreError>;

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
            unreachable: None,
        }
    }

    #[test]
    fn reachability_keeps_the_first_since_and_a_known_chat() {
        let mut l = link(1, "a");
        l.chat_id = Some(1);
        let blocked = l.clone().with_reachability(Reachability::Unreachable {
            reason: UnreachableReason::BotBlocked,
            now: UnixTime(10),
        });
        let again = blocked
            .clone()
            .with_reachability(Reachability::Unreachable {
                reason: UnreachableReason::ChatNotFound,
                now: UnixTime(20),
            });
        assert_eq!(
            again.unreachable,
            Some(Unreachable {
                reason: UnreachableReason::ChatNotFound,
                since: UnixTime(10)
            })
        );
        let back = again.with_reachability(Reachability::Reachable { chat_id: None });
        assert_eq!(back, l);
        let chat = back.with_reachability(Reachability::Reachable { chat_id: Some(7) });
        assert_eq!(chat.chat_id, Some(7));
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
