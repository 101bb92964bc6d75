//! Linking through initData in one `TransactWriteItems`:
//!
//! 0. Put the initData's claim `COMPLETED` — if claimable (none, or past its retention);
//! 1. Put `TGUSER#<tg>` / `LINK` — if absent;
//! 2. Put `USER#<uid>` / `TGLINK` — if absent;
//! 3. Check `TGUSER#<tg>` / `BLOCK` — absent.
//!
//! A failed claim is a replay and a failed block check a block. A failed link condition is
//! told apart by reading both link items: linked elsewhere is a conflict; the same pair already
//! linked is accepted, and then only the claim is written (one conditional write).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{
    DynamoStore, attempt_id,
    blocks::not_blocked,
    claims,
    links::{
        LINK_SK, MAX_ATTEMPTS, TGLINK_SK, TxFailure, backoff, link_item, put, telegram_pk, user_pk,
    },
};
use crate::store::{
    Blocks, ClaimOnce, Claims, Link, LinkSide, Links, MiniAppFlow, MiniAppLinkOutcome, ReplayClaim,
    StoreError,
};

#[async_trait]
impl MiniAppFlow for DynamoStore {
    async fn claim_and_link(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, StoreError> {
        for round in 0..MAX_ATTEMPTS {
            let write_id = attempt_id();
            let items = vec![
                put(
                    self,
                    claims::completed_item(
                        &replay.key,
                        replay.now.plus_secs(replay.retain_secs),
                        &write_id,
                    ),
                    claims::CLAIMABLE,
                    Some(claims::status_name()),
                    claims::claimable_values(replay.now, &write_id),
                )?,
                put(
                    self,
                    link_item(telegram_pk(link.telegram_user_id), LINK_SK, link),
                    "attribute_not_exists(pk)",
                    None,
                    HashMap::new(),
                )?,
                put(
                    self,
                    link_item(user_pk(&link.user_id), TGLINK_SK, link),
                    "attribute_not_exists(pk)",
                    None,
                    HashMap::new(),
                )?,
                not_blocked(self, link.telegram_user_id)?,
            ];
            match self.transact(items).await? {
                Ok(()) => return Ok(MiniAppLinkOutcome::Linked(link.clone())),
                Err(TxFailure::Conditions(failed)) => {
                    let failed = |i: usize| failed.get(i).copied().unwrap_or(false);
                    if failed(0) {
                        return Ok(MiniAppLinkOutcome::Replayed);
                    }
                    if failed(3) {
                        return Ok(MiniAppLinkOutcome::Blocked);
                    }
                    let by_telegram = self.get_by_telegram(link.telegram_user_id).await?;
                    if by_telegram
                        .as_ref()
                        .is_some_and(|t| t.user_id != link.user_id)
                    {
                        return Ok(MiniAppLinkOutcome::Conflict(LinkSide::Telegram));
                    }
                    let by_user = self.get_by_user(&link.user_id).await?;
                    if by_user
                        .as_ref()
                        .is_some_and(|u| u.telegram_user_id != link.telegram_user_id)
                    {
                        return Ok(MiniAppLinkOutcome::Conflict(LinkSide::User));
                    }
                    if let (Some(existing), Some(_)) = (by_telegram, by_user) {
                        return Ok(
                            match self
                                .claim_once(&replay.key, replay.now, replay.retain_secs)
                                .await?
                            {
                                ClaimOnce::Claimed => MiniAppLinkOutcome::AlreadyLinked(existing),
                                ClaimOnce::AlreadyClaimed => MiniAppLinkOutcome::Replayed,
                            },
                        );
                    }
                    if self.get_block(link.telegram_user_id).await?.is_some() {
                        return Ok(MiniAppLinkOutcome::Blocked);
                    }
                    // Unlinked between the write and the reads: try again.
                    backoff(round).await;
                }
                Err(TxFailure::Conflict) => backoff(round).await,
                Err(TxFailure::Unavailable(err)) => return Err(err),
            }
        }
        Err(StoreError::Unavailable(
            "transaction kept conflicting with concurrent writers".into(),
        ))
    }
}
