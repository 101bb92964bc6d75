//! Links as two items, `TGUSER#<id>` / `LINK` and `USER#<id>` / `TGLINK`, each holding the
//! whole record, always written and deleted together by one transaction (a link also checks
//! that `TGBLOCK#<id>` / `BLOCK` does not exist).

use async_trait::async_trait;

use super::{
    DynamoStore,
    blocks::not_blocked,
    item::{Item, corrupt, get_n, get_s, get_time, n, opt_n, opt_s, s},
    keys::{self, Key},
    signins,
    tx::{CondHandle, Expr, Tx, TxError, absent, retry_on_conflict},
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        Blocks, Link, LinkOutcome, LinkSide, LinkSource, Links, Reachability, StoreError,
        Unreachable, UnreachableReason,
    },
};

/// The item of `link` under `key` (both items carry the whole record).
fn link_item(key: Key, link: &Link) -> Item {
    let mut item = key.item([
        ("telegram_user_id", n(link.telegram_user_id.get())),
        ("user_id", s(link.user_id.as_str())),
        ("source", s(link.source.as_str())),
        ("linked_at", n(link.linked_at.secs())),
    ]);
    if let Some(chat) = link.chat_id {
        item.insert("chat_id".to_owned(), n(chat));
    }
    if let Some(username) = &link.username {
        item.insert("username".to_owned(), s(username));
    }
    if let Some(unreachable) = &link.unreachable {
        item.insert(
            "unreachable_reason".to_owned(),
            s(unreachable.reason.as_str()),
        );
        item.insert("unreachable_since".to_owned(), n(unreachable.since.secs()));
    }
    item
}

pub(super) fn parse_link(item: &Item) -> Result<Link, StoreError> {
    Ok(Link {
        telegram_user_id: TelegramUserId::new(get_n(item, "telegram_user_id")?).map_err(corrupt)?,
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(corrupt)?,
        chat_id: opt_n(item, "chat_id")?,
        username: opt_s(item, "username")?.map(str::to_owned),
        source: LinkSource::parse(get_s(item, "source")?)?,
        linked_at: get_time(item, "linked_at")?,
        unreachable: match opt_s(item, "unreachable_reason")? {
            Some(reason) => Some(Unreachable {
                reason: UnreachableReason::parse(reason)?,
                since: get_time(item, "unreachable_since")?,
            }),
            None => None,
        },
    })
}

/// What the two items of a link being written may replace.
pub(super) enum Replacing {
    /// Neither item may exist.
    Nothing,
    /// Either item may already hold the same pair (a relink refreshing chat and username).
    SamePair,
}

/// The conditions of a link's two items in a transaction.
pub(super) struct LinkConditions {
    pub by_telegram: CondHandle,
    pub by_user: CondHandle,
}

/// Puts both items of `link` and records the link on the Telegram user's sign-in record.
pub(super) fn put_link(tx: &mut Tx<'_>, link: &Link, replacing: Replacing) -> LinkConditions {
    signins::mirror_link(tx, link.telegram_user_id, &link.user_id);
    put_link_items(tx, link, replacing)
}

/// Puts both items of `link` only (the caller writes the sign-in record itself).
pub(super) fn put_link_items(tx: &mut Tx<'_>, link: &Link, replacing: Replacing) -> LinkConditions {
    let (by_telegram, by_user) = match replacing {
        Replacing::Nothing => (absent(), absent()),
        Replacing::SamePair => (
            Expr::new("attribute_not_exists(pk) OR user_id = :uid")
                .value(":uid", s(link.user_id.as_str())),
            Expr::new("attribute_not_exists(pk) OR telegram_user_id = :tg")
                .value(":tg", n(link.telegram_user_id.get())),
        ),
    };
    LinkConditions {
        by_telegram: tx.put(
            link_item(keys::link_by_telegram(link.telegram_user_id), link),
            by_telegram,
        ),
        by_user: tx.put(link_item(keys::link_by_user(&link.user_id), link), by_user),
    }
}

/// Deletes both items of `link` if they still describe it, and ends every session of the
/// Telegram user on its sign-in record (the link mirror goes too).
pub(super) fn delete_link(tx: &mut Tx<'_>, link: &Link, found_by: LinkSide) {
    signins::mirror_unlink(tx, link.telegram_user_id);
    delete_link_items(tx, link, found_by);
}

/// Deletes both items of `link` if they still describe it. The item it was read from
/// (`found_by`) must exist, so of concurrent unlinkers exactly one succeeds; its counterpart
/// may be missing, so a half-written link can still be removed.
pub(super) fn delete_link_items(tx: &mut Tx<'_>, link: &Link, found_by: LinkSide) {
    let (by_telegram, by_user) = match found_by {
        LinkSide::Telegram => (
            "user_id = :uid",
            "attribute_not_exists(pk) OR telegram_user_id = :tg",
        ),
        LinkSide::User => (
            "attribute_not_exists(pk) OR user_id = :uid",
            "telegram_user_id = :tg",
        ),
    };
    tx.delete(
        keys::link_by_telegram(link.telegram_user_id),
        Expr::new(by_telegram).value(":uid", s(link.user_id.as_str())),
    );
    tx.delete(
        keys::link_by_user(&link.user_id),
        Expr::new(by_user).value(":tg", n(link.telegram_user_id.get())),
    );
}

/// What kept a link from being written, as read after its conditions failed.
pub(super) enum InTheWay {
    /// A side is linked elsewhere.
    Conflict(LinkSide),
    /// The same pair is linked (the stored link).
    SamePair(Link),
    Blocked,
}

impl DynamoStore {
    /// Why `link`'s items could not be written: read after the transaction failed. `None` when
    /// nothing is in the way any more (unlinked or unblocked meanwhile: try again).
    pub(super) async fn in_the_way(&self, link: &Link) -> Result<Option<InTheWay>, StoreError> {
        let by_telegram = self.get_by_telegram(link.telegram_user_id).await?;
        let by_user = self.get_by_user(&link.user_id).await?;
        if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
            return Ok(Some(InTheWay::Conflict(side)));
        }
        if let (Some(existing), Some(_)) = (by_telegram, by_user) {
            return Ok(Some(InTheWay::SamePair(existing)));
        }
        if self.get_block(link.telegram_user_id).await?.is_some() {
            return Ok(Some(InTheWay::Blocked));
        }
        Ok(None)
    }

    async fn link_once(&self, link: &Link) -> Result<LinkOutcome, TxError> {
        let mut tx = Tx::new(self);
        put_link(&mut tx, link, Replacing::Nothing);
        let blocked = not_blocked(&mut tx, link.telegram_user_id);
        match tx.run().await {
            Ok(()) => Ok(LinkOutcome::Linked(link.clone())),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(LinkOutcome::Blocked),
            Err(TxError::Failed(f)) => match self.in_the_way(link).await? {
                Some(InTheWay::Conflict(side)) => Ok(LinkOutcome::Conflict(side)),
                Some(InTheWay::SamePair(existing)) => Ok(LinkOutcome::AlreadyLinked(existing)),
                Some(InTheWay::Blocked) => Ok(LinkOutcome::Blocked),
                None => Err(TxError::Failed(f)),
            },
            Err(other) => Err(other),
        }
    }

    /// Deletes the link that was `found` by its `found_by` side; a failed condition means it
    /// was unlinked or relinked meanwhile (look again).
    async fn unlink_found(
        &self,
        found: Option<Link>,
        found_by: LinkSide,
    ) -> Result<Option<Link>, TxError> {
        let Some(link) = found else {
            return Ok(None);
        };
        let mut tx = Tx::new(self);
        delete_link(&mut tx, &link, found_by);
        tx.run().await?;
        Ok(Some(link))
    }
}

#[async_trait]
impl Links for DynamoStore {
    async fn get_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        self.get_with(keys::link_by_telegram(id), |item| {
            parse_link(item).map(Some)
        })
        .await
    }

    async fn get_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        self.get_with(keys::link_by_user(user), |item| parse_link(item).map(Some))
            .await
    }

    async fn link(&self, link: &Link) -> Result<LinkOutcome, StoreError> {
        retry_on_conflict(move || self.link_once(link)).await
    }

    async fn set_reachability(
        &self,
        id: TelegramUserId,
        change: Reachability,
    ) -> Result<Option<Link>, StoreError> {
        retry_on_conflict(move || async move {
            let Some(found) = self.get_by_telegram(id).await? else {
                return Ok(None);
            };
            let updated = found.clone().with_reachability(change);
            if updated == found {
                return Ok(Some(found));
            }
            // Both items must still hold this pair: a relink or unlink meanwhile looks again.
            let mut tx = Tx::new(self);
            tx.put(
                link_item(keys::link_by_telegram(id), &updated),
                Expr::new("user_id = :uid").value(":uid", s(updated.user_id.as_str())),
            );
            tx.put(
                link_item(keys::link_by_user(&updated.user_id), &updated),
                Expr::new("telegram_user_id = :tg").value(":tg", n(id.get())),
            );
            tx.run().await?;
            Ok(Some(updated))
        })
        .await
    }

    async fn unlink_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        retry_on_conflict(move || async move {
            let found = self.get_by_user(user).await?;
            self.unlink_found(found, LinkSide::User).await
        })
        .await
    }

    async fn unlink_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        retry_on_conflict(move || async move {
            let found = self.get_by_telegram(id).await?;
            self.unlink_found(found, LinkSide::Telegram).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixTime;

    #[test]
    fn link_items_round_trip() {
        let link = Link {
            telegram_user_id: TelegramUserId::new(42).unwrap(),
            user_id: UserId::parse("user#1").unwrap(),
            chat_id: Some(42),
            username: Some("someone".into()),
            source: LinkSource::Bot,
            linked_at: UnixTime(1_700_000_000),
            unreachable: Some(Unreachable {
                reason: UnreachableReason::BotBlocked,
                since: UnixTime(1_700_000_100),
            }),
        };
        let item = link_item(keys::link_by_telegram(link.telegram_user_id), &link);
        assert_eq!(parse_link(&item).unwrap(), link);
        let bare = Link {
            chat_id: None,
            username: None,
            source: LinkSource::MiniApp,
            unreachable: None,
            ..link
        };
        let item = link_item(keys::link_by_user(&bare.user_id), &bare);
        assert_eq!(parse_link(&item).unwrap(), bare);
    }
}
