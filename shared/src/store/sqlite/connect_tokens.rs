use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, sql_error};
use crate::store::{ConnectTokenRecord, ConnectTokens, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connect_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;
";

pub(super) const PURGE: &str = "DELETE FROM connect_tokens WHERE expires_at <= ?1";

#[async_trait]
impl ConnectTokens for SqliteStore {
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO connect_tokens (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    record.hash.as_str(),
                    record.user_id.as_str(),
                    record.created_at.secs() as i64,
                    record.expires_at.secs() as i64,
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}
