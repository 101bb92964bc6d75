//! Mini App sessions: one row per session, keyed by the token's hash. `create` checks the
//! initData's claim and the block, then writes the claim and the session, in one `IMMEDIATE`
//! transaction.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, blocks, claims, immediate, sql_error};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        MiniAppSession, MiniAppSessions, ReplayClaim, SessionOutcome, StoreError,
        miniapp_sessions::SESSION_SOURCE,
    },
    time::UnixTime,
    token::TokenHash,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS miniapp_sessions (
    session_hash         TEXT PRIMARY KEY NOT NULL,
    telegram_user_id     INTEGER NOT NULL,
    username             TEXT,
    user_id              TEXT,
    initdata_fingerprint TEXT NOT NULL,
    auth_date            INTEGER NOT NULL,
    source               TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    active               INTEGER NOT NULL
) STRICT;
";

pub(super) const PURGE: &str = "DELETE FROM miniapp_sessions WHERE expires_at <= ?1";

const COLUMNS: &str = "session_hash, telegram_user_id, username, user_id, initdata_fingerprint, \
                       auth_date, created_at, expires_at, active";

type RawSession = (
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    bool,
);

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawSession> {
    row.try_into()
}

fn to_session(raw: RawSession) -> Result<MiniAppSession, StoreError> {
    let (hash, tg, username, user, fingerprint, auth_date, created_at, expires_at, active) = raw;
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    let secs = |v: i64| {
        u64::try_from(v)
            .map(UnixTime)
            .map_err(|_| StoreError::Corrupt("negative time in session".into()))
    };
    Ok(MiniAppSession {
        hash: TokenHash::from_stored(hash),
        telegram_user_id: TelegramUserId::new(tg).map_err(corrupt)?,
        username,
        user_id: user
            .map(|u| UserId::parse(&u))
            .transpose()
            .map_err(corrupt)?,
        initdata_fingerprint: TokenHash::from_stored(fingerprint),
        auth_date: secs(auth_date)?,
        created_at: secs(created_at)?,
        expires_at: secs(expires_at)?,
        active,
    })
}

#[async_trait]
impl MiniAppSessions for SqliteStore {
    async fn create(
        &self,
        session: &MiniAppSession,
        replay: &ReplayClaim,
    ) -> Result<SessionOutcome, StoreError> {
        let session = session.clone();
        let replay = replay.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if claims::live_status(&tx, &replay.key, replay.now)?.is_some() {
                return Ok(SessionOutcome::Replayed);
            }
            if blocks::is_blocked(&tx, session.telegram_user_id)? {
                return Ok(SessionOutcome::Blocked);
            }
            claims::write_completed(&tx, &replay.key, replay.now.plus_secs(replay.retain_secs))?;
            tx.execute(
                "INSERT INTO miniapp_sessions (session_hash, telegram_user_id, username, user_id,
                     initdata_fingerprint, auth_date, source, created_at, expires_at, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    session.hash.as_str(),
                    session.telegram_user_id.get(),
                    session.username,
                    session.user_id.as_ref().map(UserId::as_str),
                    session.initdata_fingerprint.as_str(),
                    session.auth_date.secs() as i64,
                    SESSION_SOURCE,
                    session.created_at.secs() as i64,
                    session.expires_at.secs() as i64,
                    session.active,
                ],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(SessionOutcome::Created)
        })
        .await
    }

    async fn get_session(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<MiniAppSession>, StoreError> {
        let hash = hash.clone();
        self.with_conn(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM miniapp_sessions
                     WHERE session_hash = ?1 AND active = 1 AND expires_at > ?2"
                ),
                params![hash.as_str(), now.secs() as i64],
                from_row,
            )
            .optional()
            .map_err(sql_error)?
            .map(to_session)
            .transpose()
        })
        .await
    }

    async fn attach_user(
        &self,
        hash: &TokenHash,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let hash = hash.clone();
        let user = user.clone();
        self.with_conn(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE miniapp_sessions SET user_id = ?1
                     WHERE session_hash = ?2 AND active = 1 AND expires_at > ?3",
                    params![user.as_str(), hash.as_str(), now.secs() as i64],
                )
                .map_err(sql_error)?;
            Ok(changed == 1)
        })
        .await
    }
}
