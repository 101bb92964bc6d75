//! Mini App sessions: `SESSION#<sha256(token)>` / `SESSION` with telegram_user_id, username?, user_id?,
//! initdata_fingerprint, auth_date, source, created_at, expires_at (TTL) and active (BOOL).
//!
//! `create` is one `TransactWriteItems`:
//!
//! 0. Put the initData's claim `COMPLETED` — if claimable (none, or past its retention);
//! 1. Put the session — if absent (a 256-bit hash does not collide; this guards the invariant);
//! 2. Check `TGUSER#<tg>` / `BLOCK` — absent.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    DynamoStore, Item, attempt_id,
    blocks::not_blocked,
    claims, get_s,
    links::{MAX_ATTEMPTS, TxFailure, backoff, get_i64, get_u64, put, values},
    n, s, unavailable,
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        MiniAppSession, MiniAppSessions, ReplayClaim, SessionOutcome, StoreError,
        miniapp_sessions::SESSION_SOURCE,
    },
    time::UnixTime,
    token::TokenHash,
};

const SK: &str = "SESSION";

fn pk(hash: &TokenHash) -> String {
    format!("SESSION#{}", hash.as_str())
}

fn session_item(session: &MiniAppSession) -> Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk(&session.hash))),
        ("sk".to_owned(), s(SK)),
        (
            "telegram_user_id".to_owned(),
            n(session.telegram_user_id.get()),
        ),
        (
            "initdata_fingerprint".to_owned(),
            s(session.initdata_fingerprint.as_str()),
        ),
        ("auth_date".to_owned(), n(session.auth_date.secs())),
        ("source".to_owned(), s(SESSION_SOURCE)),
        ("created_at".to_owned(), n(session.created_at.secs())),
        ("expires_at".to_owned(), n(session.expires_at.secs())),
        ("active".to_owned(), AttributeValue::Bool(session.active)),
    ]);
    if let Some(user) = &session.user_id {
        item.insert("user_id".to_owned(), s(user.as_str()));
    }
    if let Some(username) = &session.username {
        item.insert("username".to_owned(), s(username));
    }
    item
}

fn parse_session(item: &Item) -> Result<MiniAppSession, StoreError> {
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    let hash = get_s(item, "pk")?
        .strip_prefix("SESSION#")
        .ok_or_else(|| StoreError::Corrupt("session pk without prefix".into()))?;
    Ok(MiniAppSession {
        hash: TokenHash::from_stored(hash.to_owned()),
        telegram_user_id: TelegramUserId::new(get_i64(item, "telegram_user_id")?)
            .map_err(corrupt)?,
        username: match item.get("username") {
            None => None,
            Some(AttributeValue::S(v)) => Some(v.clone()),
            Some(_) => {
                return Err(StoreError::Corrupt(
                    "attribute username not a string".into(),
                ));
            }
        },
        user_id: match item.get("user_id") {
            None => None,
            Some(AttributeValue::S(v)) => Some(UserId::parse(v).map_err(corrupt)?),
            Some(_) => return Err(StoreError::Corrupt("attribute user_id not a string".into())),
        },
        initdata_fingerprint: TokenHash::from_stored(
            get_s(item, "initdata_fingerprint")?.to_owned(),
        ),
        auth_date: UnixTime(get_u64(item, "auth_date")?),
        created_at: UnixTime(get_u64(item, "created_at")?),
        expires_at: UnixTime(get_u64(item, "expires_at")?),
        active: match item.get("active") {
            Some(AttributeValue::Bool(b)) => *b,
            _ => return Err(StoreError::Corrupt("attribute active not a boolean".into())),
        },
    })
}

impl DynamoStore {
    /// One conditional `UpdateItem` of a live session; `false` when the condition failed.
    async fn update_live_session(
        &self,
        hash: &TokenHash,
        update: &str,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(hash)))
            .key("sk", s(SK))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl MiniAppSessions for DynamoStore {
    async fn create(
        &self,
        session: &MiniAppSession,
        replay: &ReplayClaim,
    ) -> Result<SessionOutcome, StoreError> {
        for round in 0..MAX_ATTEMPTS {
            let write_id = attempt_id();
            let claim = put(
                self,
                claims::completed_item(
                    &replay.key,
                    replay.now.plus_secs(replay.retain_secs),
                    &write_id,
                ),
                claims::CLAIMABLE,
                Some(claims::status_name()),
                claims::claimable_values(replay.now, &write_id),
            )?;
            let record = put(
                self,
                session_item(session),
                "attribute_not_exists(pk)",
                None,
                HashMap::new(),
            )?;
            let items = vec![claim, record, not_blocked(self, session.telegram_user_id)?];
            match self.transact(items).await? {
                Ok(()) => return Ok(SessionOutcome::Created),
                Err(TxFailure::Conditions(failed)) => {
                    let failed = |i: usize| failed.get(i).copied().unwrap_or(false);
                    return if failed(0) {
                        Ok(SessionOutcome::Replayed)
                    } else if failed(2) {
                        Ok(SessionOutcome::Blocked)
                    } else {
                        Err(StoreError::Corrupt("session hash already exists".into()))
                    };
                }
                // A concurrent transaction on the claim or the block: the next round sees it.
                Err(TxFailure::Conflict) => backoff(round).await,
                Err(TxFailure::Unavailable(err)) => return Err(err),
            }
        }
        Err(StoreError::Unavailable(
            "transaction kept conflicting with concurrent writers".into(),
        ))
    }

    async fn get_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<MiniAppSession>, StoreError> {
        let Some(item) = self.get_consistent(pk(hash), SK).await? else {
            return Ok(None);
        };
        let session = parse_session(&item)?;
        Ok((session.active && session.expires_at > now).then_some(session))
    }

    async fn attach_user(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.update_live_session(
            hash,
            "SET user_id = :uid",
            "attribute_exists(pk) AND active = :true AND expires_at > :now",
            values([
                (":uid", s(user.as_str())),
                (":true", AttributeValue::Bool(true)),
                (":now", n(now.secs())),
            ]),
        )
        .await
    }

    async fn deactivate(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        self.update_live_session(
            hash,
            "SET active = :false",
            "attribute_exists(pk)",
            values([(":false", AttributeValue::Bool(false))]),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_items_round_trip() {
        let mut session = MiniAppSession {
            hash: TokenHash::of(b"token"),
            telegram_user_id: TelegramUserId::new(42).unwrap(),
            username: Some("ann".into()),
            user_id: Some(UserId::parse("user#1").unwrap()),
            initdata_fingerprint: TokenHash::of(b"dcs"),
            auth_date: UnixTime(1_700_000_000),
            created_at: UnixTime(1_700_000_010),
            expires_at: UnixTime(1_700_086_410),
            active: true,
        };
        assert_eq!(parse_session(&session_item(&session)).unwrap(), session);
        session.user_id = None;
        session.username = None;
        session.active = false;
        assert_eq!(parse_session(&session_item(&session)).unwrap(), session);
    }
}
