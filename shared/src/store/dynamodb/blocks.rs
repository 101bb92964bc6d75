//! Blocks: `TGBLOCK#<id>` / `BLOCK` (telegram_user_id, blocked_at, blocked_by), a partition of
//! their own (only the admin routes may write it; IAM tells it from `TGUSER#` links). Every
//! write that links a Telegram user or gives it a session carries [`not_blocked`] as a
//! `ConditionCheck` in its own transaction. A block bumps the user's session epoch
//! (`TGUSER#<id>` / `SESSIONS`) in its transaction.

use async_trait::async_trait;

use super::{
    DynamoStore,
    item::{Item, corrupt, get_n, get_s, get_time, n, s},
    keys,
    links::{delete_link_items, parse_link},
    signins::{mirror_block, mirror_unblock},
    tx::{CondHandle, Expr, Tx, TxError, absent, retry_on_conflict},
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{Block, BlockOutcome, Blocks, LinkSide, StoreError},
};

/// Adds the condition "this Telegram user is not blocked" to `tx`.
pub(super) fn not_blocked(tx: &mut Tx<'_>, id: TelegramUserId) -> CondHandle {
    tx.check(keys::block(id), absent())
}

/// The condition "the block is still the one that was read".
fn still(block: &Block) -> Expr {
    Expr::new("blocked_at = :at AND blocked_by = :by")
        .value(":at", n(block.blocked_at.secs()))
        .value(":by", s(block.blocked_by.as_str()))
}

fn block_item(block: &Block) -> Item {
    keys::block(block.telegram_user_id).item([
        ("telegram_user_id", n(block.telegram_user_id.get())),
        ("blocked_at", n(block.blocked_at.secs())),
        ("blocked_by", s(block.blocked_by.as_str())),
    ])
}

fn parse_block(item: &Item) -> Result<Block, StoreError> {
    Ok(Block {
        telegram_user_id: TelegramUserId::new(get_n(item, "telegram_user_id")?).map_err(corrupt)?,
        blocked_at: get_time(item, "blocked_at")?,
        blocked_by: UserId::parse(get_s(item, "blocked_by")?).map_err(corrupt)?,
    })
}

impl DynamoStore {
    /// Reads the user's block and link together, then writes the block (or checks it is still
    /// the one read) and deletes that link (or checks there still is none) in one transaction.
    async fn block_once(&self, block: &Block) -> Result<BlockOutcome, TxError> {
        let id = block.telegram_user_id;
        let [existing, link] = self
            .read_together([keys::block(id), keys::link_by_telegram(id)])
            .await?;
        let existing = existing.map(|item| parse_block(&item)).transpose()?;
        let link = link.map(|item| parse_link(&item)).transpose()?;
        if let (Some(existing), None) = (&existing, &link) {
            // Blocked, and a blocked user cannot be linked: nothing to do.
            return Ok(BlockOutcome {
                block: existing.clone(),
                already: true,
                revoked: None,
            });
        }
        let mut tx = Tx::new(self);
        match &existing {
            None => tx.put(block_item(block), absent()),
            Some(b) => tx.check(keys::block(id), still(b)),
        };
        match &link {
            // Both items of the link that was read (the app user's may be missing).
            Some(l) => delete_link_items(&mut tx, l, LinkSide::Telegram),
            // Still not linked (a link landing meanwhile must be removed too).
            None => {
                tx.check(keys::link_by_telegram(id), absent());
            }
        }
        // The sessions made before the block end with it; the sign-in record says blocked.
        mirror_block(&mut tx, id);
        // A failed condition: the block or the link changed since the read (look again).
        tx.run().await?;
        Ok(BlockOutcome {
            already: existing.is_some(),
            block: existing.unwrap_or_else(|| block.clone()),
            revoked: link,
        })
    }

    /// Reads the block, then deletes it if it is still that block. A failed condition means
    /// another unblock won (the next read finds none) or a new block replaced it (removed in
    /// turn).
    async fn unblock_once(&self, id: TelegramUserId) -> Result<Option<Block>, TxError> {
        let Some(block) = self.get_block(id).await? else {
            return Ok(None);
        };
        let mut tx = Tx::new(self);
        tx.delete(keys::block(id), still(&block));
        mirror_unblock(&mut tx, id);
        tx.run().await?;
        Ok(Some(block))
    }
}

#[async_trait]
impl Blocks for DynamoStore {
    async fn get_block(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        self.get_with(keys::block(id), |item| parse_block(item).map(Some))
            .await
    }

    async fn block(&self, block: &Block) -> Result<BlockOutcome, StoreError> {
        retry_on_conflict(move || self.block_once(block)).await
    }

    /// One transaction of one delete, whose client request token makes the SDK's retry of a
    /// delete that did happen succeed instead of failing its condition: so of concurrent
    /// unblocks exactly one gets the block.
    async fn unblock(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        retry_on_conflict(move || self.unblock_once(id)).await
    }
}
