use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, sql_error};
use crate::{
    store::{ConnectTokenRecord, ConnectTokens, StoreError},
    time::UnixTime,
    token::TokenHash,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connect_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    attempt     TEXT,
    account     TEXT
) STRICT;
";

/// Columns added since the table was first created: an older database gets them on open (a
/// "duplicate column" error means it has them).
pub(super) const MIGRATIONS: &[&str] = &[
    "ALTER TABLE connect_tokens ADD COLUMN attempt TEXT",
    "ALTER TABLE connect_tokens ADD COLUMN account TEXT",
];

pub(super) const PURGE: &str = "DELETE FROM connect_tokens WHERE expires_at <= ?1";

#[async_trait]
impl ConnectTokens for SqliteStore {
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.with_conn(move |conn| {
            // The same insert again (same attempt, token unused) is a no-op success; any other
            // row under the hash is never overwritten.
            let written = conn
                .execute(
                    "INSERT INTO connect_tokens
                         (token_hash, user_id, created_at, expires_at, attempt, account)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (token_hash) DO UPDATE SET token_hash = excluded.token_hash
                     WHERE attempt = excluded.attempt AND consumed_at IS NULL",
                    params![
                        record.hash.as_str(),
                        record.user_id.as_str(),
                        record.created_at.secs() as i64,
                        record.expires_at.secs() as i64,
                        record.attempt,
                        record.account,
                    ],
                )
                .map_err(sql_error)?;
            if written == 0 {
                return Err(StoreError::Corrupt(
                    "another connect token has this hash".into(),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn burn(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError> {
        let hash = hash.clone();
        self.with_conn(move |conn| {
            let burned = conn
                .execute(
                    "UPDATE connect_tokens SET consumed_at = ?1
                     WHERE token_hash = ?2 AND consumed_at IS NULL",
                    params![now.secs() as i64, hash.as_str()],
                )
                .map_err(sql_error)?;
            Ok(burned == 1)
        })
        .await
    }
}
