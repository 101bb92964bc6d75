//! Linking through initData in one `IMMEDIATE` transaction: the same checks, in the same order
//! of precedence, as the DynamoDB adapter (replayed, blocked, Telegram user linked elsewhere,
//! app user linked elsewhere), then the claim and the link (or, for the same pair, the claim
//! only), committed together.

use async_trait::async_trait;

use super::{SqliteStore, blocks, claims, immediate, links, sql_error};
use crate::store::{Link, MiniAppFlow, MiniAppLinkOutcome, ReplayClaim, StoreError};

#[async_trait]
impl MiniAppFlow for SqliteStore {
    async fn claim_and_link(
        &self,
        link: &Link,
        replay: &ReplayClaim,
    ) -> Result<MiniAppLinkOutcome, StoreError> {
        let link = link.clone();
        let replay = replay.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if claims::live_status(&tx, &replay.key, replay.now)?.is_some() {
                return Ok(MiniAppLinkOutcome::Replayed);
            }
            if blocks::is_blocked(&tx, link.telegram_user_id)? {
                return Ok(MiniAppLinkOutcome::Blocked);
            }
            let by_telegram = links::by_telegram(&tx, link.telegram_user_id)?;
            let by_user = links::by_user(&tx, &link.user_id)?;
            if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
                return Ok(MiniAppLinkOutcome::Conflict(side));
            }
            claims::write_completed(&tx, &replay.key, replay.now.plus_secs(replay.retain_secs))?;
            let outcome = match by_telegram {
                Some(existing) => MiniAppLinkOutcome::AlreadyLinked(existing),
                None => {
                    links::upsert(&tx, &link)?;
                    MiniAppLinkOutcome::Linked(link)
                }
            };
            tx.commit().map_err(sql_error)?;
            Ok(outcome)
        })
        .await
    }
}
