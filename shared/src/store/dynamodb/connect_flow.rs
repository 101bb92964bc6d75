//! `/start <token>` in two calls: one `TransactGetItems` (claim, token, Telegram user's link and
//! block) and one `TransactWriteItems`:
//!
//! - put the update's claim `COMPLETED` — if claimable (none, expired, or a dead attempt);
//! - update the token `SET consumed_at` — if it exists, is unconsumed, unexpired and still
//!   belongs to the user read in the first call;
//! - put `TGUSER#<tg>` / `LINK` — if absent or linked to the same user;
//! - put `USER#<uid>` / `TGLINK` — if absent or linked to the same Telegram user;
//! - check `TGBLOCK#<tg>` / `BLOCK` — absent (the Telegram user is not blocked).
//!
//! The failed conditions say what went wrong, in this order of precedence: duplicate, token
//! invalid, blocked, Telegram user linked elsewhere, app user linked elsewhere. The first call
//! reads the block too, so a blocked user costs no write. A cancellation by a concurrent
//! transaction (`TransactionConflict`) is retried from the read.

use async_trait::async_trait;

use super::{
    DynamoStore,
    blocks::not_blocked,
    claims,
    item::{corrupt, get_s, get_time, n, s},
    keys,
    links::{Replacing, parse_link, put_link},
    tx::{Expr, Tx, TxError, retry_on_conflict},
};
use crate::{
    ids::UserId,
    store::{ConnectAttempt, ConnectFlow, ConnectOutcome, Link, LinkSide, LinkSource, StoreError},
};

impl DynamoStore {
    async fn consume_and_link_once(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<ConnectOutcome, TxError> {
        let now = attempt.now;
        let tg = attempt.telegram_user_id;
        let [claim, token, existing, block] = self
            .read_together([
                keys::claim(&attempt.claim),
                keys::connect_token(&attempt.token),
                keys::link_by_telegram(tg),
                keys::block(tg),
            ])
            .await?;
        if let Some(claim) = &claim
            && claims::live_status(claim, now)?.is_some()
        {
            return Ok(ConnectOutcome::Duplicate);
        }
        let Some(token) = token else {
            return Ok(ConnectOutcome::TokenInvalid);
        };
        if token.contains_key("consumed_at") || get_time(&token, "expires_at")? <= now {
            return Ok(ConnectOutcome::TokenInvalid);
        }
        if block.is_some() {
            return Ok(ConnectOutcome::Blocked);
        }
        let user_id = UserId::parse(get_s(&token, "user_id")?).map_err(corrupt)?;
        let account = token.get("account").and_then(|v| v.as_s().ok()).cloned();
        let existing = existing.map(|item| parse_link(&item)).transpose()?;
        let link = Link {
            telegram_user_id: tg,
            user_id,
            chat_id: Some(attempt.chat_id),
            username: attempt.username.clone(),
            source: existing.as_ref().map_or(LinkSource::Bot, |e| e.source),
            linked_at: existing.as_ref().map_or(now, |e| e.linked_at),
            unreachable: None,
        };
        // The app user's side is left to the write's condition.
        if let Some(side) = link.conflict(existing.as_ref(), None) {
            return Ok(ConnectOutcome::Conflict(side));
        }

        let mut tx = Tx::new(self);
        let claimed = claims::put_completed(
            &mut tx,
            &attempt.claim,
            now,
            now.plus_secs(attempt.claim_retain_secs),
        );
        let consumed = tx.update(
            keys::connect_token(&attempt.token),
            Expr::new("SET consumed_at = :now"),
            Some(
                Expr::new(
                    "attribute_exists(pk) AND attribute_not_exists(consumed_at) \
                     AND expires_at > :now AND user_id = :uid",
                )
                .value(":now", n(now.secs()))
                .value(":uid", s(link.user_id.as_str())),
            ),
        );
        let linked = put_link(&mut tx, &link, Replacing::SamePair);
        let blocked = not_blocked(&mut tx, tg);
        match tx.run().await {
            Ok(()) => Ok(ConnectOutcome::Linked {
                already: existing.is_some(),
                link,
                account,
            }),
            Err(TxError::Failed(f)) => Ok(if f.failed(claimed) {
                ConnectOutcome::Duplicate
            } else if f.failed(consumed) {
                ConnectOutcome::TokenInvalid
            } else if f.failed(blocked) {
                ConnectOutcome::Blocked
            } else {
                // By elimination one of the link's conditions failed.
                ConnectOutcome::Conflict(
                    LinkSide::reported(f.failed(linked.by_telegram), f.failed(linked.by_user))
                        .unwrap_or(LinkSide::User),
                )
            }),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl ConnectFlow for DynamoStore {
    async fn consume_and_link(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<ConnectOutcome, StoreError> {
        retry_on_conflict(move || self.consume_and_link_once(attempt)).await
    }
}
