//! Mini App sessions: `SESSION#<sha256(token)>` / `SESSION` with telegram_user_id, username?, user_id?,
//! initdata_fingerprint, auth_date, source, created_at, expires_at (TTL), active (BOOL) and
//! epoch (absent = 0: sessions written before epochs existed). The Telegram user's epoch is
//! `TGUSER#<id>` / `SESSIONS` (`epoch`), read by [`MiniAppSessions::basis`] together with the
//! link (one `TransactGetItems`); `verify` reads the block and the initData's claim together
//! (one `TransactGetItems`).
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
    item::{Item, corrupt, get_bool, get_n, get_s, get_time, n, opt_n, opt_s, s},
    keys,
    links::parse_link,
    tx::{Tx, TxError, absent, retry_on_conflict},
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        ClaimKey, InitDataStanding, MiniAppSession, MiniAppSessions, ReplayClaim, SessionBasis,
        SessionOutcome, StoreError, miniapp_sessions::SESSION_SOURCE,
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
        ("epoch", n(session.epoch)),
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
        epoch: opt_n(item, "epoch")?.unwrap_or(0),
    })
}

/// The epoch stored in a `TGUSER#<id>` / `SESSIONS` item (none: 0).
pub(super) fn parse_epoch(item: Option<&Item>) -> Result<u64, StoreError> {
    Ok(match item {
        Some(item) => opt_n(item, "epoch")?.unwrap_or(0),
        None => 0,
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
    async fn basis(&self, id: TelegramUserId) -> Result<SessionBasis, StoreError> {
        let [link, epoch] = self
            .read_together([keys::link_by_telegram(id), keys::session_epoch(id)])
            .await?;
        Ok(SessionBasis {
            user_id: link
                .map(|item| parse_link(&item))
                .transpose()?
                .map(|l| l.user_id),
            epoch: parse_epoch(epoch.as_ref())?,
        })
    }

    async fn initdata_standing(
        &self,
        id: TelegramUserId,
        replay: &ClaimKey,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError> {
        let [block, claim] = self
            .read_together([keys::block(id), keys::claim(replay)])
            .await?;
        Ok(InitDataStanding {
            blocked: block.is_some(),
            used: match claim {
                Some(item) => claims::live_status(&item, now)?.is_some(),
                None => false,
            },
        })
    }
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
            epoch: 3,
        };
        assert_eq!(parse_session(&session_item(&session)).unwrap(), session);
        session.user_id = None;
        session.username = None;
        session.active = false;
        assert_eq!(parse_session(&session_item(&session)).unwrap(), session);
        // Written before epochs existed: epoch 0.
        let mut old = session_item(&session);
        old.remove("epoch");
        session.epoch = 0;
        assert_eq!(parse_session(&old).unwrap(), session);
    }
}
