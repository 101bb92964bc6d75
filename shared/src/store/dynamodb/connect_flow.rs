//! `/start <token>` in two calls: one `TransactGetItems` (claim, token, Telegram user's link and
//! block) and one `TransactWriteItems`:
//!
//! 0. Put the update's claim `COMPLETED` — if claimable (none, expired, or a dead attempt);
//! 1. Update the token `SET consumed_at` — if it exists, is unconsumed, unexpired and still
//!    belongs to the user read in the first call;
//! 2. Put `TGUSER#<tg>` / `LINK` — if absent or linked to the same user;
//! 3. Put `USER#<uid>` / `TGLINK` — if absent or linked to the same Telegram user;
//! 4. Check `TGUSER#<tg>` / `BLOCK` — absent (the Telegram user is not blocked).
//!
//! The cancellation reasons say which condition failed, in this order of precedence:
//! duplicate, token invalid, blocked, Telegram user linked elsewhere, app user linked
//! elsewhere. The first call reads the block too, so a blocked user costs no write. A
//! cancellation by a concurrent transaction (`TransactionConflict`) is retried from the read.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Get, TransactGetItem, TransactWriteItem, Update};

use super::{
    DynamoStore, Item, attempt_id,
    blocks::{BLOCK_SK, not_blocked},
    claims, connect_tokens, get_s,
    links::{
        LINK_SK, MAX_ATTEMPTS, TGLINK_SK, TxFailure, backoff, build_error, get_u64, link_item,
        parse_link, put, telegram_pk, tx_failure, user_pk, values,
    },
    n, request_token, s, unavailable,
};
use crate::{
    ids::UserId,
    store::{ConnectAttempt, ConnectFlow, ConnectOutcome, Link, LinkSide, LinkSource, StoreError},
};

impl DynamoStore {
    fn get(&self, pk: String, sk: &str) -> Result<TransactGetItem, StoreError> {
        let get = Get::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .build()
            .map_err(build_error)?;
        Ok(TransactGetItem::builder().get(get).build())
    }

    /// The claim, the token, the Telegram user's link and block, read together (consistent).
    async fn read_connect_state(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<[Option<Item>; 4], StoreError> {
        let out = self
            .client
            .transact_get_items()
            .transact_items(self.get(claims::pk(&attempt.claim), claims::SK)?)
            .transact_items(self.get(connect_tokens::pk(&attempt.token), connect_tokens::SK)?)
            .transact_items(self.get(telegram_pk(attempt.telegram_user_id), LINK_SK)?)
            .transact_items(self.get(telegram_pk(attempt.telegram_user_id), BLOCK_SK)?)
            .send()
            .await
            .map_err(unavailable)?;
        let responses = out.responses();
        if responses.len() != 4 {
            return Err(StoreError::Corrupt(
                "TransactGetItems returned the wrong number of items".into(),
            ));
        }
        Ok([0, 1, 2, 3].map(|i| responses[i].item().filter(|item| !item.is_empty()).cloned()))
    }

    fn connect_writes(
        &self,
        attempt: &ConnectAttempt,
        link: &Link,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let now = attempt.now;
        let write_id = attempt_id();
        let claim = put(
            self,
            claims::completed_item(
                &attempt.claim,
                now.plus_secs(attempt.claim_retain_secs),
                &write_id,
            ),
            claims::CLAIMABLE,
            Some(claims::status_name()),
            claims::claimable_values(now, &write_id),
        )?;
        let token = Update::builder()
            .table_name(&self.table)
            .key("pk", s(connect_tokens::pk(&attempt.token)))
            .key("sk", s(connect_tokens::SK))
            .update_expression("SET consumed_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(consumed_at) \
                 AND expires_at > :now AND user_id = :uid",
            )
            .set_expression_attribute_values(Some(values([
                (":now", n(now.secs())),
                (":uid", s(link.user_id.as_str())),
            ])))
            .build()
            .map_err(build_error)?;
        let by_telegram = put(
            self,
            link_item(telegram_pk(link.telegram_user_id), LINK_SK, link),
            "attribute_not_exists(pk) OR user_id = :uid",
            None,
            values([(":uid", s(link.user_id.as_str()))]),
        )?;
        let by_user = put(
            self,
            link_item(user_pk(&link.user_id), TGLINK_SK, link),
            "attribute_not_exists(pk) OR telegram_user_id = :tg",
            None,
            values([(":tg", n(link.telegram_user_id.get()))]),
        )?;
        Ok(vec![
            claim,
            TransactWriteItem::builder().update(token).build(),
            by_telegram,
            by_user,
            not_blocked(self, link.telegram_user_id)?,
        ])
    }
}

#[async_trait]
impl ConnectFlow for DynamoStore {
    async fn consume_and_link(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<ConnectOutcome, StoreError> {
        let now = attempt.now;
        for round in 0..MAX_ATTEMPTS {
            let [claim, token, existing, block] = self.read_connect_state(attempt).await?;
            if let Some(claim) = &claim
                && claims::live_status(claim, now)?.is_some()
            {
                return Ok(ConnectOutcome::Duplicate);
            }
            let Some(token) = token else {
                return Ok(ConnectOutcome::TokenInvalid);
            };
            if token.contains_key("consumed_at") || get_u64(&token, "expires_at")? <= now.secs() {
                return Ok(ConnectOutcome::TokenInvalid);
            }
            if block.is_some() {
                return Ok(ConnectOutcome::Blocked);
            }
            let user_id = UserId::parse(get_s(&token, "user_id")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let existing = existing.map(|item| parse_link(&item)).transpose()?;
            if existing.as_ref().is_some_and(|e| e.user_id != user_id) {
                return Ok(ConnectOutcome::Conflict(LinkSide::Telegram));
            }
            let link = Link {
                telegram_user_id: attempt.telegram_user_id,
                user_id,
                chat_id: Some(attempt.chat_id),
                username: attempt.username.clone(),
                source: existing.as_ref().map_or(LinkSource::Bot, |e| e.source),
                linked_at: existing.as_ref().map_or(now, |e| e.linked_at),
            };
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(self.connect_writes(attempt, &link)?))
                .client_request_token(request_token())
                .send()
                .await;
            match result {
                Ok(_) => {
                    return Ok(ConnectOutcome::Linked {
                        link,
                        already: existing.is_some(),
                    });
                }
                Err(e) => match tx_failure(e) {
                    TxFailure::Conditions(failed) => {
                        let failed = |i: usize| failed.get(i).copied().unwrap_or(false);
                        return Ok(if failed(0) {
                            ConnectOutcome::Duplicate
                        } else if failed(1) {
                            ConnectOutcome::TokenInvalid
                        } else if failed(4) {
                            ConnectOutcome::Blocked
                        } else if failed(2) {
                            ConnectOutcome::Conflict(LinkSide::Telegram)
                        } else {
                            ConnectOutcome::Conflict(LinkSide::User)
                        });
                    }
                    TxFailure::Conflict => backoff(round).await,
                    TxFailure::Unavailable(err) => return Err(err),
                },
            }
        }
        Err(StoreError::Unavailable(
            "transaction kept conflicting with concurrent writers".into(),
        ))
    }
}
