//! Linking through initData in one `TransactWriteItems`:
//!
//! - put the initData's claim `COMPLETED` — if claimable (none, or past its retention);
//! - put `TGUSER#<tg>` / `LINK` — if absent;
//! - put `USER#<uid>` / `TGLINK` — if absent;
//! - check `TGBLOCK#<tg>` / `BLOCK` — absent.
//!
//! A failed claim is a replay and a failed block check a block. A failed link condition is
//! told apart by reading both link items: linked elsewhere is a conflict; the same pair already
//! linked is accepted, and then only the claim is written (one conditional write).

use async_trait::async_trait;

use super::{
    DynamoStore,
    blocks::not_blocked,
    claims,
    links::{InTheWay, Replacing, put_link},
    tx::{Tx, TxError, retry_on_conflict},
};
use crate::store::{
    ClaimOnce, Claims, Link, MiniAppFlow, MiniAppLinkOutcome, ReplayClaim, StoreError,
};

impl DynamoStore {
    async fn claim_and_link_once(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, TxError> {
        let mut tx = Tx::new(self);
        let claimed = claims::put_replay(&mut tx, replay);
        put_link(&mut tx, link, Replacing::Nothing);
        let blocked = not_blocked(&mut tx, link.telegram_user_id);
        match tx.run().await {
            Ok(()) => Ok(MiniAppLinkOutcome::Linked(link.clone())),
            Err(TxError::Failed(f)) if f.failed(claimed) => Ok(MiniAppLinkOutcome::Replayed),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(MiniAppLinkOutcome::Blocked),
            Err(TxError::Failed(f)) => match self.in_the_way(link).await? {
                Some(InTheWay::Conflict(side)) => Ok(MiniAppLinkOutcome::Conflict(side)),
                Some(InTheWay::SamePair(existing)) => Ok(
                    match self
                        .claim_once(&replay.key, replay.now, replay.retain_secs)
                        .await?
                    {
                        ClaimOnce::Claimed => MiniAppLinkOutcome::AlreadyLinked(existing),
                        ClaimOnce::AlreadyClaimed => MiniAppLinkOutcome::Replayed,
                    },
                ),
                Some(InTheWay::Blocked) => Ok(MiniAppLinkOutcome::Blocked),
                // Unlinked between the write and the reads: try again.
                None => Err(TxError::Failed(f)),
            },
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl MiniAppFlow for DynamoStore {
    async fn claim_and_link(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, StoreError> {
        retry_on_conflict(move || self.claim_and_link_once(link, replay)).await
    }
}
