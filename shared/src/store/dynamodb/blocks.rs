//! Blocks: `TGUSER#<id>` / `BLOCK` (telegram_user_id, blocked_at, blocked_by), next to the
//! user's `LINK` item. Every write that links a Telegram user or gives it a session carries
//! [`not_blocked`] as a `ConditionCheck` in its own transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, Get, TransactGetItem, TransactWriteItem};

use super::{
    DynamoStore, Item, get_s,
    links::{
        LINK_SK, MAX_ATTEMPTS, TGLINK_SK, backoff, build_error, delete, get_i64, get_u64,
        parse_link, put, telegram_pk, user_pk, values,
    },
    n, s, unavailable,
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{Block, BlockOutcome, Blocks, StoreError},
    time::UnixTime,
};

pub(super) const BLOCK_SK: &str = "BLOCK";

/// A `ConditionCheck` that `pk`/`sk` satisfies `condition`.
pub(super) fn condition_check(
    store: &DynamoStore,
    pk: String,
    sk: &str,
    condition: &str,
    values: HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(&store.table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .condition_expression(condition)
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// The transaction item "this Telegram user is not blocked".
pub(super) fn not_blocked(
    store: &DynamoStore,
    id: TelegramUserId,
) -> Result<TransactWriteItem, StoreError> {
    condition_check(
        store,
        telegram_pk(id),
        BLOCK_SK,
        "attribute_not_exists(pk)",
        HashMap::new(),
    )
}

fn block_item(block: &Block) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(telegram_pk(block.telegram_user_id))),
        ("sk".to_owned(), s(BLOCK_SK)),
        (
            "telegram_user_id".to_owned(),
            n(block.telegram_user_id.get()),
        ),
        ("blocked_at".to_owned(), n(block.blocked_at.secs())),
        ("blocked_by".to_owned(), s(block.blocked_by.as_str())),
    ])
}

pub(super) fn parse_block(item: &Item) -> Result<Block, StoreError> {
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    Ok(Block {
        telegram_user_id: TelegramUserId::new(get_i64(item, "telegram_user_id")?)
            .map_err(corrupt)?,
        blocked_at: UnixTime(get_u64(item, "blocked_at")?),
        blocked_by: UserId::parse(get_s(item, "blocked_by")?).map_err(corrupt)?,
    })
}

fn transact_get(store: &DynamoStore, pk: String, sk: &str) -> Result<TransactGetItem, StoreError> {
    let get = Get::builder()
        .table_name(&store.table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(build_error)?;
    Ok(TransactGetItem::builder().get(get).build())
}

impl DynamoStore {
    /// The block and the link of a Telegram user, read together (consistent).
    async fn read_block_and_link(
        &self,
        id: TelegramUserId,
    ) -> Result<[Option<Item>; 2], StoreError> {
        let out = self
            .client
            .transact_get_items()
            .transact_items(transact_get(self, telegram_pk(id), BLOCK_SK)?)
            .transact_items(transact_get(self, telegram_pk(id), LINK_SK)?)
            .send()
            .await
            .map_err(unavailable)?;
        let responses = out.responses();
        if responses.len() != 2 {
            return Err(StoreError::Corrupt(
                "TransactGetItems returned the wrong number of items".into(),
            ));
        }
        Ok([0, 1].map(|i| responses[i].item().filter(|item| !item.is_empty()).cloned()))
    }
}

#[async_trait]
impl Blocks for DynamoStore {
    async fn get_block(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        self.get_consistent(telegram_pk(id), BLOCK_SK)
            .await?
            .map(|item| parse_block(&item))
            .transpose()
    }

    async fn block(&self, block: &Block) -> Result<BlockOutcome, StoreError> {
        let id = block.telegram_user_id;
        for round in 0..MAX_ATTEMPTS {
            let [existing, link] = self.read_block_and_link(id).await?;
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
            let mut items = Vec::with_capacity(3);
            items.push(match &existing {
                None => put(
                    self,
                    block_item(block),
                    "attribute_not_exists(pk)",
                    None,
                    HashMap::new(),
                )?,
                // Still the block that was read.
                Some(b) => condition_check(
                    self,
                    telegram_pk(id),
                    BLOCK_SK,
                    "blocked_at = :at AND blocked_by = :by",
                    values([
                        (":at", n(b.blocked_at.secs())),
                        (":by", s(b.blocked_by.as_str())),
                    ]),
                )?,
            });
            match &link {
                // Both items of the link that was read (the app user's may be missing).
                Some(l) => {
                    items.push(delete(
                        self,
                        telegram_pk(id),
                        LINK_SK,
                        "user_id = :uid",
                        values([(":uid", s(l.user_id.as_str()))]),
                    )?);
                    items.push(delete(
                        self,
                        user_pk(&l.user_id),
                        TGLINK_SK,
                        "attribute_not_exists(pk) OR telegram_user_id = :tg",
                        values([(":tg", n(id.get()))]),
                    )?);
                }
                // Still not linked (a link landing meanwhile must be removed too).
                None => items.push(condition_check(
                    self,
                    telegram_pk(id),
                    LINK_SK,
                    "attribute_not_exists(pk)",
                    HashMap::new(),
                )?),
            }
            match self.transact(items).await? {
                Ok(()) => {
                    return Ok(BlockOutcome {
                        already: existing.is_some(),
                        block: existing.unwrap_or_else(|| block.clone()),
                        revoked: link,
                    });
                }
                // The block or the link changed since the read: look again.
                Err(_) => backoff(round).await,
            }
        }
        Err(StoreError::Unavailable(
            "transaction kept conflicting with concurrent writers".into(),
        ))
    }

    /// Read, then delete the block that was read (condition: still that block) in a
    /// one-item `TransactWriteItems`, whose client request token makes the SDK's retry of a
    /// delete that did happen succeed instead of failing its condition. So of concurrent
    /// unblocks exactly one gets the block; a condition failure means another unblock won
    /// (`None`) or a new block replaced it (which is removed in turn).
    async fn unblock(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        for round in 0..MAX_ATTEMPTS {
            let Some(block) = self.get_block(id).await? else {
                return Ok(None);
            };
            let removed = self
                .transact(vec![delete(
                    self,
                    telegram_pk(id),
                    BLOCK_SK,
                    "blocked_at = :at AND blocked_by = :by",
                    values([
                        (":at", n(block.blocked_at.secs())),
                        (":by", s(block.blocked_by.as_str())),
                    ]),
                )?])
                .await?;
            match removed {
                Ok(()) => return Ok(Some(block)),
                Err(_) => backoff(round).await,
            }
        }
        Err(StoreError::Unavailable(
            "block kept changing under concurrent writers".into(),
        ))
    }
}
