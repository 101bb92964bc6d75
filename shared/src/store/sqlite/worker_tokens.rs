//! `WorkerTokens` on SQLite: one row per token (the DynamoDB adapter's listing item and set
//! entry in one): a token is active for a user while its row names that user and is not
//! revoked ([`active`], also used by the credentials adapter's worker read inside its
//! transaction). Listed by user through an index.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, immediate, sql_error};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        worker_tokens::{
            InsertOutcome, REVOKED_RETENTION_SECS, RevokeOutcome, WorkerTokenRecord, WorkerTokens,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS worker_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    expires_at  INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS worker_tokens_by_user ON worker_tokens (user_id, created_at);
";

pub(super) const PURGE: &str =
    "DELETE FROM worker_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?1";

const COLUMNS: &str = "id, token_hash, user_id, name, created_at, revoked_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(WorkerTokenRecordRaw, Option<i64>)> {
    Ok((
        WorkerTokenRecordRaw {
            id: row.get(0)?,
            hash: row.get(1)?,
            user_id: row.get(2)?,
            name: row.get(3)?,
            created_at: row.get(4)?,
        },
        row.get(5)?,
    ))
}

struct WorkerTokenRecordRaw {
    id: String,
    hash: String,
    user_id: String,
    name: String,
    created_at: i64,
}

fn record(
    (raw, revoked_at): (WorkerTokenRecordRaw, Option<i64>),
) -> Result<WorkerTokenRecord, StoreError> {
    Ok(WorkerTokenRecord {
        id: raw.id,
        hash: TokenHash::from_stored(raw.hash),
        user_id: UserId::parse(&raw.user_id)
            .map_err(|_| StoreError::Corrupt("worker token: bad user_id".into()))?,
        name: raw.name,
        created_at: UnixTime(raw.created_at as u64),
        revoked_at: revoked_at.map(|t| UnixTime(t as u64)),
    })
}

/// Whether `hash` is one of `user`'s active (not revoked) tokens.
pub(super) fn active(
    conn: &rusqlite::Connection,
    user: &UserId,
    hash: &TokenHash,
) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT 1 FROM worker_tokens
         WHERE token_hash = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![hash.as_str(), user.as_str()],
        |_| Ok(()),
    )
    .optional()
    .map_err(sql_error)
    .map(|row| row.is_some())
}

#[async_trait]
impl WorkerTokens for SqliteStore {
    async fn insert(&self, r: &WorkerTokenRecord, max: usize) -> Result<InsertOutcome, StoreError> {
        let r = r.clone();
        self.with_conn(move |conn| {
            // Counted and inserted in one IMMEDIATE transaction: concurrent insertions queue.
            let tx = immediate(conn)?;
            let active: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM worker_tokens
                     WHERE user_id = ?1 AND revoked_at IS NULL",
                    params![r.user_id.as_str()],
                    |row| row.get(0),
                )
                .map_err(sql_error)?;
            if usize::try_from(active).unwrap_or(usize::MAX) >= max {
                return Ok(InsertOutcome::LimitReached);
            }
            tx.execute(
                "INSERT INTO worker_tokens (token_hash, id, user_id, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.hash.as_str(),
                    r.id,
                    r.user_id.as_str(),
                    r.name,
                    r.created_at.secs() as i64
                ],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(InsertOutcome::Inserted)
        })
        .await
    }

    async fn is_active(&self, user: &UserId, hash: &TokenHash) -> Result<bool, StoreError> {
        let (user, hash) = (user.clone(), hash.clone());
        self.with_conn(move |conn| active(conn, &user, &hash)).await
    }

    async fn list(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Vec<WorkerTokenRecord>, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM worker_tokens
                     WHERE user_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
                     ORDER BY created_at, id"
                ))
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![user.as_str(), now.secs() as i64], from_row)
                .map_err(sql_error)?;
            rows.map(|row| row.map_err(sql_error).and_then(record))
                .collect()
        })
        .await
    }

    async fn revoke(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        let user = user.clone();
        let id = id.to_owned();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            let state: Option<Option<i64>> = tx
                .query_row(
                    "SELECT revoked_at FROM worker_tokens
                     WHERE id = ?1 AND user_id = ?2
                       AND (expires_at IS NULL OR expires_at > ?3)",
                    params![id, user.as_str(), now.secs() as i64],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let outcome = match state {
                None => RevokeOutcome::NotFound,
                Some(Some(_)) => RevokeOutcome::AlreadyRevoked,
                Some(None) => {
                    tx.execute(
                        "UPDATE worker_tokens SET revoked_at = ?3, expires_at = ?4
                         WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
                        params![
                            id,
                            user.as_str(),
                            now.secs() as i64,
                            now.plus_secs(REVOKED_RETENTION_SECS).secs() as i64
                        ],
                    )
                    .map_err(sql_error)?;
                    RevokeOutcome::Revoked
                }
            };
            tx.commit().map_err(sql_error)?;
            Ok(outcome)
        })
        .await
    }

    async fn revoke_all(&self, user: &UserId, now: UnixTime) -> Result<usize, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE worker_tokens SET revoked_at = ?2, expires_at = ?3
                 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![
                    user.as_str(),
                    now.secs() as i64,
                    now.plus_secs(REVOKED_RETENTION_SECS).secs() as i64
                ],
            )
            .map_err(sql_error)
        })
        .await
    }
}
