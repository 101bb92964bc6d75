//! Linking through initData in one `TransactWriteItems`:
//!
//! - put the initData's claim `COMPLETED` — if claimable (none, or past its retention);
//! - put `TGUSER#<tg>` / `LINK` — if absent;
//! - put `USER#<uid>` / `TGLINK` — if absent;
//! - check `TGBLOCK#<tg>` / `BLOCK` — absent.
//!
//! Linking through a session: read the session, then one `TransactWriteItems` of both link
//! items (absent), `TGUSER#<tg>` / `BLOCK` absent, `TGUSER#<tg>` / `SESSIONS` still at the
//! session's epoch (`ConditionCheck`), and the session naming the app user (`Update`, if active,
//! unexpired and naming no other user).
//!
//! A failed claim is a replay and a failed block check a block. A failed link condition is
//! told apart by reading both link items: linked elsewhere is a conflict; the same pair already
//! linked is accepted, and then only the claim is written (one conditional write).

use async_trait::async_trait;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    DynamoStore,
    blocks::not_blocked,
    claims,
    item::{n, s},
    keys,
    links::{InTheWay, Replacing, put_link},
    tx::{Expr, Tx, TxError, retry_on_conflict},
};
use crate::{
    ids::UserId,
    store::{
        ClaimOnce, Claims, Link, LinkSource, MiniAppFlow, MiniAppLinkOutcome, MiniAppSessions,
        ReplayClaim, SessionLinkOutcome, StoreError,
    },
    time::UnixTime,
    token::TokenHash,
};

/// The condition "the Telegram user's session epoch is still `epoch`" (absent counts as 0).
fn epoch_is(epoch: u64) -> Expr {
    let expr = if epoch == 0 {
        Expr::new("attribute_not_exists(#epoch)")
    } else {
        Expr::new("#epoch = :epoch").value(":epoch", n(epoch))
    };
    expr.name("#epoch", "epoch")
}

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

impl DynamoStore {
    /// Reads the session, then in one transaction: both link items (absent), "not blocked",
    /// "the epoch is still the session's", and the session naming `user` (if it is still
    /// active, unexpired and names no other user).
    async fn link_session_once(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<SessionLinkOutcome, TxError> {
        let Some(session) = self.get_session(hash, now).await? else {
            return Ok(SessionLinkOutcome::Invalid);
        };
        if session.user_id.as_ref().is_some_and(|named| named != user) {
            return Ok(SessionLinkOutcome::Invalid);
        }
        let link = Link {
            telegram_user_id: session.telegram_user_id,
            user_id: user.clone(),
            chat_id: None,
            username: session.username.clone(),
            source: LinkSource::MiniApp,
            linked_at: now,
        };
        let mut tx = Tx::new(self);
        put_link(&mut tx, &link, Replacing::Nothing);
        let blocked = not_blocked(&mut tx, link.telegram_user_id);
        let current = tx.check(
            keys::session_epoch(link.telegram_user_id),
            epoch_is(session.epoch),
        );
        let named = tx.update(
            keys::session(hash),
            Expr::new("SET user_id = :uid").value(":uid", s(user.as_str())),
            Some(
                Expr::new(
                    "active = :true AND expires_at > :now \
                     AND (attribute_not_exists(user_id) OR user_id = :uid)",
                )
                .value(":true", AttributeValue::Bool(true))
                .value(":now", n(now.secs())),
            ),
        );
        match tx.run().await {
            Ok(()) => Ok(SessionLinkOutcome::Linked(link)),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(SessionLinkOutcome::Blocked),
            Err(TxError::Failed(f)) if f.failed(current) || f.failed(named) => {
                Ok(SessionLinkOutcome::Invalid)
            }
            Err(TxError::Failed(f)) => match self.in_the_way(&link).await? {
                Some(InTheWay::Conflict(side)) => Ok(SessionLinkOutcome::Conflict(side)),
                Some(InTheWay::SamePair(existing)) => {
                    Ok(SessionLinkOutcome::AlreadyLinked(existing))
                }
                Some(InTheWay::Blocked) => Ok(SessionLinkOutcome::Blocked),
                // Unlinked between the write and the reads: try again.
                None => Err(TxError::Failed(f)),
            },
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl MiniAppFlow for DynamoStore {
    async fn link_session(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<SessionLinkOutcome, StoreError> {
        retry_on_conflict(move || self.link_session_once(hash, user, now)).await
    }

    async fn claim_and_link(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, StoreError> {
        retry_on_conflict(move || self.claim_and_link_once(link, replay)).await
    }
}
