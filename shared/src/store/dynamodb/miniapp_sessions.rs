//! Mini App sessions: `SESSION#<sha256(token)>` / `SESSION` with telegram_user_id, username?, user_id?,
//! initdata_fingerprint, auth_date, source, created_at, expires_at (TTL) and active (BOOL).
//!
//! `create` is one `TransactWriteItems`:
//!
//! - put the initData's claim `COMPLETED` — if claimable (none, or past its retention);
//! - put the session — if absent (a 256-bit hash does not collide; this guards the invariant);
//! - check `TGBLOCK#<tg>` / `BLOCK` — absent.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    DynamoStore,
    blocks::not_blocked,
    claims,
    item::{Item, corrupt, get_bool, get_n, get_s, get_time, n, opt_s, s},
    keys,
    tx::{Tx, TxError, absent, retry_on_conflict},
    unavailable,
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

fn session_item(session: &MiniAppSession) -> Item {
    let mut item = keys::session(&session.hash).item([
        ("telegram_user_id", n(session.telegram_user_id.get())),
        (
            "initdata_fingerprint",
            s(session.initdata_fingerprint.as_str()),
        ),
        ("auth_date", n(session.auth_date.secs())),
        ("source", s(SESSION_SOURCE)),
        ("created_at", n(session.created_at.secs())),
        ("expires_at", n(session.expires_at.secs())),
        ("active", AttributeValue::Bool(session.active)),
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
    Ok(MiniAppSession {
        hash: keys::session_hash(get_s(item, "pk")?)
            .ok_or_else(|| corrupt("session pk without prefix"))?,
        telegram_user_id: TelegramUserId::new(get_n(item, "telegram_user_id")?).map_err(corrupt)?,
        username: opt_s(item, "username")?.map(str::to_owned),
        user_id: opt_s(item, "user_id")?
            .map(UserId::parse)
            .transpose()
            .map_err(corrupt)?,
        initdata_fingerprint: TokenHash::from_stored(
            get_s(item, "initdata_fingerprint")?.to_owned(),
        ),
        auth_date: get_time(item, "auth_date")?,
        created_at: get_time(item, "created_at")?,
        expires_at: get_time(item, "expires_at")?,
        active: get_bool(item, "active")?,
    })
}

impl DynamoStore {
    async fn create_session_once(
        &self,
        session: &MiniAppSession,
        replay: &ReplayClaim,
    ) -> Result<SessionOutcome, TxError> {
        let mut tx = Tx::new(self);
        let claimed = claims::put_replay(&mut tx, replay);
        tx.put(session_item(session), absent());
        let blocked = not_blocked(&mut tx, session.telegram_user_id);
        match tx.run().await {
            Ok(()) => Ok(SessionOutcome::Created),
            Err(TxError::Failed(f)) if f.failed(claimed) => Ok(SessionOutcome::Replayed),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(SessionOutcome::Blocked),
            Err(TxError::Failed(_)) => Err(corrupt("session hash already exists").into()),
            // A concurrent transaction on the claim or the block: the next round sees it.
            Err(other) => Err(other),
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
        retry_on_conflict(move || self.create_session_once(session, replay)).await
    }

    async fn get_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<MiniAppSession>, StoreError> {
        self.get_with(keys::session(hash), |item| {
            let session = parse_session(item)?;
            Ok((session.active && session.expires_at > now).then_some(session))
        })
        .await
    }

    async fn attach_user(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::session(hash).attributes()))
            .update_expression("SET user_id = :uid")
            .condition_expression("attribute_exists(pk) AND active = :true AND expires_at > :now")
            .expression_attribute_values(":uid", s(user.as_str()))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now.secs()))
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
