//! Mini App sessions: one row per session, keyed by the token's hash. `create` checks the
//! initData's claim and the block, then writes the claim and the session, in one `IMMEDIATE`
//! transaction. Each Telegram user's session epoch is a row of `telegram_session_epochs`
//! (absent = 0), bumped by [`bump_epoch`] inside every transaction that removes a link or
//! blocks.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, blocks, claims, immediate, links, sql_error};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        ClaimKey, InitDataStanding, MiniAppSession, MiniAppSessions, ReplayClaim, SessionBasis,
        SessionOutcome, StoreError, miniapp_sessions::SESSION_SOURCE,
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
    active               INTEGER NOT NULL,
    epoch                INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS telegram_session_epochs (
    telegram_user_id INTEGER PRIMARY KEY NOT NULL,
    epoch            INTEGER NOT NULL
) STRICT;
";

/// Adds `epoch` to a `miniapp_sessions` table made before it existed (its sessions get 0).
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_epoch: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('miniapp_sessions') WHERE name = 'epoch'",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    if !has_epoch {
        conn.execute_batch(
            "ALTER TABLE miniapp_sessions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        )
        .map_err(sql_error)?;
    }
    Ok(())
}

/// The Telegram user's session epoch (0 when never bumped).
pub(super) fn epoch(conn: &Connection, id: TelegramUserId) -> Result<u64, StoreError> {
    let epoch: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM telegram_session_epochs WHERE telegram_user_id = ?1",
            [id.get()],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    u64::try_from(epoch.unwrap_or(0)).map_err(|_| StoreError::Corrupt("negative epoch".into()))
}

/// Bumps the Telegram user's session epoch: every session made before stops linking. Called
/// inside the transaction that removes the link or writes the block.
pub(super) fn bump_epoch(conn: &Connection, id: TelegramUserId) -> Result<(), StoreError> {
    super::signins::end_all(conn, id)?;
    conn.execute(
        "INSERT INTO telegram_session_epochs (telegram_user_id, epoch) VALUES (?1, 1)
         ON CONFLICT(telegram_user_id) DO UPDATE SET epoch = epoch + 1",
        [id.get()],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) const PURGE: &str = "DELETE FROM miniapp_sessions WHERE expires_at <= ?1";

const COLUMNS: &str = "session_hash, telegram_user_id, username, user_id, initdata_fingerprint, \
                       auth_date, created_at, expires_at, active, epoch";

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
    i64,
);

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawSession> {
    row.try_into()
}

fn to_session(raw: RawSession) -> Result<MiniAppSession, StoreError> {
    let (hash, tg, username, user, fingerprint, auth_date, created_at, expires_at, active, epoch) =
        raw;
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
        epoch: u64::try_from(epoch)
            .map_err(|_| StoreError::Corrupt("negative epoch in session".into()))?,
    })
}

/// The active, unexpired session with this hash.
pub(super) fn get(
    conn: &Connection,
    hash: &TokenHash,
    now: UnixTime,
) -> Result<Option<MiniAppSession>, StoreError> {
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
}

#[async_trait]
impl MiniAppSessions for SqliteStore {
    async fn basis(&self, id: TelegramUserId) -> Result<SessionBasis, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            Ok(SessionBasis {
                user_id: links::by_telegram(&tx, id)?.map(|l| l.user_id),
                epoch: epoch(&tx, id)?,
            })
        })
        .await
    }

    async fn initdata_standing(
        &self,
        id: TelegramUserId,
        replay: &ClaimKey,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError> {
        let replay = replay.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            Ok(InitDataStanding {
                blocked: blocks::is_blocked(&tx, id)?,
                used: claims::live_status(&tx, &replay, now)?.is_some(),
            })
        })
        .await
    }
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
                     initdata_fingerprint, auth_date, source, created_at, expires_at, active, epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                    i64::try_from(session.epoch)
                        .map_err(|_| StoreError::Corrupt("epoch out of range".into()))?,
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
        self.with_conn(move |conn| get(conn, &hash, now)).await
    }
}
