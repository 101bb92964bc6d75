//! Linking through initData in one `IMMEDIATE` transaction: the same checks, in the same order
//! of precedence, as the DynamoDB adapter (replayed, blocked, Telegram user linked elsewhere,
//! app user linked elsewhere), then the claim and the link (or, for the same pair, the claim
//! only), committed together.

use async_trait::async_trait;

use rusqlite::params;

use super::{SqliteStore, blocks, claims, immediate, links, miniapp_sessions, sql_error};
use crate::{
    ids::UserId,
    store::{
        Link, LinkSource, MiniAppFlow, MiniAppLinkOutcome, ReplayClaim, SessionLinkOutcome,
        StoreError,
    },
    time::UnixTime,
    token::TokenHash,
};

#[async_trait]
impl MiniAppFlow for SqliteStore {
    async fn link_session(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<SessionLinkOutcome, StoreError> {
        let hash = hash.clone();
        let user = user.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            let Some(session) = miniapp_sessions::get(&tx, &hash, now)? else {
                return Ok(SessionLinkOutcome::Invalid);
            };
            if session.user_id.as_ref().is_some_and(|named| *named != user) {
                return Ok(SessionLinkOutcome::Invalid);
            }
            let id = session.telegram_user_id;
            if blocks::is_blocked(&tx, id)? {
                return Ok(SessionLinkOutcome::Blocked);
            }
            if miniapp_sessions::epoch(&tx, id)? != session.epoch {
                return Ok(SessionLinkOutcome::Invalid);
            }
            let link = Link {
                telegram_user_id: id,
                user_id: user.clone(),
                chat_id: None,
                username: session.username,
                source: LinkSource::MiniApp,
                linked_at: now,
            };
            let by_telegram = links::by_telegram(&tx, id)?;
            let by_user = links::by_user(&tx, &user)?;
            if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
                return Ok(SessionLinkOutcome::Conflict(side));
            }
            if let Some(existing) = by_telegram {
                return Ok(SessionLinkOutcome::AlreadyLinked(existing));
            }
            links::upsert(&tx, &link)?;
            tx.execute(
                "UPDATE miniapp_sessions SET user_id = ?1 WHERE session_hash = ?2",
                params![user.as_str(), hash.as_str()],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(SessionLinkOutcome::Linked(link))
        })
        .await
    }

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
