//! `/start <token>` in one `IMMEDIATE` transaction: the same checks, in the same order of
//! precedence, as the DynamoDB transaction (duplicate, token invalid, blocked, Telegram user
//! linked elsewhere, app user linked elsewhere), then the claim, the token's `consumed_at` and the
//! link, committed together.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, blocks, claims, immediate, links, sql_error};
use crate::{
    ids::UserId,
    store::{ConnectAttempt, ConnectFlow, ConnectOutcome, Link, LinkSource, StoreError},
};

#[async_trait]
impl ConnectFlow for SqliteStore {
    async fn consume_and_link(
        &self,
        attempt: &ConnectAttempt,
    ) -> Result<ConnectOutcome, StoreError> {
        let attempt = attempt.clone();
        self.with_conn(move |conn| {
            let now = attempt.now;
            let tx = immediate(conn)?;
            if claims::live_status(&tx, &attempt.claim, now)?.is_some() {
                return Ok(ConnectOutcome::Duplicate);
            }
            let token: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT user_id, account FROM connect_tokens
                     WHERE token_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2",
                    params![attempt.token.as_str(), now.secs() as i64],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            let Some((user, account)) = token else {
                return Ok(ConnectOutcome::TokenInvalid);
            };
            if blocks::is_blocked(&tx, attempt.telegram_user_id)? {
                return Ok(ConnectOutcome::Blocked);
            }
            let user_id = UserId::parse(&user).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let by_telegram = links::by_telegram(&tx, attempt.telegram_user_id)?;
            let by_user = links::by_user(&tx, &user_id)?;
            let link = Link {
                telegram_user_id: attempt.telegram_user_id,
                user_id,
                chat_id: Some(attempt.chat_id),
                username: attempt.username.clone(),
                source: by_telegram.as_ref().map_or(LinkSource::Bot, |e| e.source),
                linked_at: by_telegram.as_ref().map_or(now, |e| e.linked_at),
                unreachable: None,
            };
            if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
                return Ok(ConnectOutcome::Conflict(side));
            }
            claims::write_completed(
                &tx,
                &attempt.claim,
                now.plus_secs(attempt.claim_retain_secs),
            )?;
            tx.execute(
                "UPDATE connect_tokens SET consumed_at = ?1 WHERE token_hash = ?2",
                params![now.secs() as i64, attempt.token.as_str()],
            )
            .map_err(sql_error)?;
            links::upsert(&tx, &link)?;
            tx.commit().map_err(sql_error)?;
            Ok(ConnectOutcome::Linked {
                link,
                already: by_telegram.is_some(),
                account,
            })
        })
        .await
    }
}
