//! `Credentials` on SQLite: one row per user, one column per sealed attribute. A user's active
//! worker tokens live in the `worker_tokens` table (see `worker_tokens.rs`), so there is no
//! stub row here; a worker read checks its token in the same `IMMEDIATE` transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, immediate, sql_error, worker_tokens};
use crate::{
    ids::{TelegramUserId, UserId},
    seal::SealedRecord,
    store::{
        StoreError,
        credentials::{
            Credentials, CredentialsRecord, Reauth, SEALED_BOT_TOKEN, SEALED_CHANNEL_INVITE,
            SEALED_PHONE, SEALED_SESSION, WorkerAuth, WorkerRead, WriteOutcome,
        },
    },
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credentials (
    user_id                TEXT PRIMARY KEY NOT NULL,
    version                INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    data_key               BLOB,
    sealed_bot_token       BLOB,
    sealed_session         BLOB,
    sealed_phone           BLOB,
    sealed_channel_invite  BLOB,
    bot_username           TEXT,
    bot_id                 INTEGER,
    channel_id             INTEGER,
    telegram_user_id       INTEGER,
    session_saved_at       INTEGER,
    last_used_at           INTEGER,
    reauth_reason          TEXT,
    reauth_at              INTEGER
) STRICT;
";

const COLUMNS: &str = "user_id, version, updated_at, data_key, sealed_bot_token, sealed_session,
    sealed_phone, sealed_channel_invite, bot_username, bot_id, channel_id, telegram_user_id,
    session_saved_at, last_used_at, reauth_reason, reauth_at";

/// Sealed attribute name ↔ column, in column order after `data_key`.
const SEALED_COLUMNS: [&str; 4] = [
    SEALED_BOT_TOKEN,
    SEALED_SESSION,
    SEALED_PHONE,
    SEALED_CHANNEL_INVITE,
];

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("credentials: {what}"))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<CredentialsRecord, StoreError>> {
    let user_id: String = row.get(0)?;
    let version: i64 = row.get(1)?;
    let updated_at: i64 = row.get(2)?;
    let data_key: Option<Vec<u8>> = row.get(3)?;
    let mut attributes = BTreeMap::new();
    for (i, name) in SEALED_COLUMNS.iter().enumerate() {
        if let Some(blob) = row.get::<_, Option<Vec<u8>>>(4 + i)? {
            attributes.insert((*name).to_owned(), blob);
        }
    }
    let bot_username: Option<String> = row.get(8)?;
    let bot_id: Option<i64> = row.get(9)?;
    let channel_id: Option<i64> = row.get(10)?;
    let telegram_user_id: Option<i64> = row.get(11)?;
    let session_saved_at: Option<i64> = row.get(12)?;
    let last_used_at: Option<i64> = row.get(13)?;
    let reauth_reason: Option<String> = row.get(14)?;
    let reauth_at: Option<i64> = row.get(15)?;
    Ok((|| {
        let sealed = match data_key {
            Some(key) => Some(SealedRecord {
                wrapped_key: key,
                attributes,
            }),
            None if attributes.is_empty() => None,
            None => return Err(corrupt("sealed attributes without a data key")),
        };
        Ok(CredentialsRecord {
            user_id: UserId::parse(&user_id).map_err(|_| corrupt("bad user_id"))?,
            version: version as u64,
            sealed,
            bot_username,
            bot_id,
            channel_id,
            telegram_user_id: telegram_user_id
                .map(TelegramUserId::new)
                .transpose()
                .map_err(|_| corrupt("bad telegram_user_id"))?,
            session_saved_at: session_saved_at.map(|t| UnixTime(t as u64)),
            last_used_at: last_used_at.map(|t| UnixTime(t as u64)),
            reauth: match (reauth_reason, reauth_at) {
                (Some(reason), Some(at)) => Some(Reauth {
                    reason,
                    at: UnixTime(at as u64),
                }),
                _ => None,
            },
            updated_at: UnixTime(updated_at as u64),
        })
    })())
}

fn select(
    conn: &rusqlite::Connection,
    user: &str,
) -> Result<Option<CredentialsRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM credentials WHERE user_id = ?1"),
        [user],
        from_row,
    )
    .optional()
    .map_err(sql_error)?
    .transpose()
}

fn sealed_column(record: &CredentialsRecord, name: &str) -> Option<Vec<u8>> {
    record
        .sealed
        .as_ref()
        .and_then(|s| s.attributes.get(name).cloned())
}

#[async_trait]
impl Credentials for SqliteStore {
    async fn get(&self, user: &UserId) -> Result<Option<CredentialsRecord>, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| select(conn, user.as_str()))
            .await
    }

    async fn write_as(
        &self,
        record: &CredentialsRecord,
        auth: WorkerAuth<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        if let Some(sealed) = &record.sealed
            && let Some(name) = sealed
                .attributes
                .keys()
                .find(|k| !SEALED_COLUMNS.contains(&k.as_str()))
        {
            return Err(corrupt(&format!("unknown sealed attribute {name}")));
        }
        let record = record.clone();
        let token = match auth {
            WorkerAuth::App => None,
            WorkerAuth::Token(hash) => Some(hash.clone()),
        };
        self.with_conn(move |conn| {
            // The worker token (if any) is checked in the transaction that writes.
            let conn = immediate(conn)?;
            if let Some(hash) = &token
                && !worker_tokens::active(&conn, &record.user_id, hash)?
            {
                return Ok(WriteOutcome::TokenInvalid);
            }
            let new_version = record.version + 1;
            let values = params![
                record.user_id.as_str(),
                new_version as i64,
                record.updated_at.secs() as i64,
                record.sealed.as_ref().map(|s| s.wrapped_key.clone()),
                sealed_column(&record, SEALED_BOT_TOKEN),
                sealed_column(&record, SEALED_SESSION),
                sealed_column(&record, SEALED_PHONE),
                sealed_column(&record, SEALED_CHANNEL_INVITE),
                record.bot_username,
                record.bot_id,
                record.channel_id,
                record.telegram_user_id.map(|t| t.get()),
                record.session_saved_at.map(|t| t.secs() as i64),
                record.reauth.as_ref().map(|r| r.reason.clone()),
                record.reauth.as_ref().map(|r| r.at.secs() as i64),
                record.version as i64,
            ];
            let changed = if record.version == 0 {
                conn.execute(
                    "INSERT INTO credentials (user_id, version, updated_at, data_key,
                        sealed_bot_token, sealed_session, sealed_phone, sealed_channel_invite,
                        bot_username, bot_id, channel_id, telegram_user_id, session_saved_at,
                        reauth_reason, reauth_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
                     WHERE ?16 = 0
                     ON CONFLICT (user_id) DO NOTHING",
                    values,
                )
            } else {
                conn.execute(
                    "UPDATE credentials SET version = ?2, updated_at = ?3, data_key = ?4,
                        sealed_bot_token = ?5, sealed_session = ?6, sealed_phone = ?7,
                        sealed_channel_invite = ?8, bot_username = ?9, bot_id = ?10,
                        channel_id = ?11, telegram_user_id = ?12, session_saved_at = ?13,
                        reauth_reason = ?14, reauth_at = ?15
                     WHERE user_id = ?1 AND version = ?16",
                    values,
                )
            }
            .map_err(sql_error)?;
            conn.commit().map_err(sql_error)?;
            Ok(if changed == 1 {
                WriteOutcome::Written {
                    version: new_version,
                }
            } else {
                WriteOutcome::Conflict
            })
        })
        .await
    }

    async fn read_for_worker(
        &self,
        user: &UserId,
        now: UnixTime,
        max_idle_secs: u64,
        auth: WorkerAuth<'_>,
    ) -> Result<WorkerRead, StoreError> {
        let user = user.clone();
        let token = match auth {
            WorkerAuth::App => None,
            WorkerAuth::Token(hash) => Some(hash.clone()),
        };
        let cutoff = now.secs() as i64 - max_idle_secs.min(i64::MAX as u64) as i64;
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if let Some(hash) = &token
                && !worker_tokens::active(&tx, &user, hash)?
            {
                return Ok(WorkerRead::TokenInvalid);
            }
            let touched = tx
                .query_row(
                    &format!(
                        "UPDATE credentials SET last_used_at = ?2
                         WHERE user_id = ?1 AND session_saved_at IS NOT NULL
                           AND sealed_session IS NOT NULL
                           AND (session_saved_at > ?3 OR last_used_at > ?3)
                         RETURNING {COLUMNS}"
                    ),
                    params![user.as_str(), now.secs() as i64, cutoff],
                    from_row,
                )
                .optional()
                .map_err(sql_error)?
                .transpose()?;
            let record = match touched {
                Some(record) => Some(record),
                // No session, or an idle-expired one: the row as it is.
                None => select(&tx, user.as_str())?,
            };
            tx.commit().map_err(sql_error)?;
            Ok(WorkerRead::Record(record))
        })
        .await
    }
}
