//! Blocks: one row per blocked Telegram user. Every transaction that links a Telegram user or
//! gives it a session checks [`is_blocked`] inside itself.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, immediate, links, signins, sql_error};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{Block, BlockOutcome, Blocks, StoreError},
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS telegram_blocks (
    telegram_user_id INTEGER PRIMARY KEY NOT NULL,
    blocked_at       INTEGER NOT NULL,
    blocked_by       TEXT NOT NULL
) STRICT;
";

const COLUMNS: &str = "telegram_user_id, blocked_at, blocked_by";

fn to_block(raw: (i64, i64, String)) -> Result<Block, StoreError> {
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    Ok(Block {
        telegram_user_id: TelegramUserId::new(raw.0).map_err(corrupt)?,
        blocked_at: UnixTime(
            u64::try_from(raw.1).map_err(|_| StoreError::Corrupt("negative blocked_at".into()))?,
        ),
        blocked_by: UserId::parse(&raw.2).map_err(corrupt)?,
    })
}

/// The block of `id` that `sql` (`?1` = id, returning [`COLUMNS`]) selects or deletes.
fn block_row(
    conn: &Connection,
    sql: &str,
    id: TelegramUserId,
) -> Result<Option<Block>, StoreError> {
    conn.query_row(sql, [id.get()], |row| row.try_into())
        .optional()
        .map_err(sql_error)?
        .map(to_block)
        .transpose()
}

pub(super) fn get(conn: &Connection, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
    block_row(
        conn,
        &format!("SELECT {COLUMNS} FROM telegram_blocks WHERE telegram_user_id = ?1"),
        id,
    )
}

pub(super) fn is_blocked(conn: &Connection, id: TelegramUserId) -> Result<bool, StoreError> {
    Ok(get(conn, id)?.is_some())
}

#[async_trait]
impl Blocks for SqliteStore {
    async fn get_block(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        self.with_conn(move |conn| get(conn, id)).await
    }

    async fn block(&self, block: &Block) -> Result<BlockOutcome, StoreError> {
        let block = block.clone();
        self.with_conn(move |conn| {
            let id = block.telegram_user_id;
            let tx = immediate(conn)?;
            let existing = get(&tx, id)?;
            if existing.is_none() {
                // The sessions made before the block end with it (also after an unblock).
                signins::end_all(&tx, id)?;
                tx.execute(
                    &format!("INSERT INTO telegram_blocks ({COLUMNS}) VALUES (?1, ?2, ?3)"),
                    params![
                        id.get(),
                        block.blocked_at.secs() as i64,
                        block.blocked_by.as_str()
                    ],
                )
                .map_err(sql_error)?;
            }
            let revoked = links::delete_by_telegram(&tx, id)?;
            tx.commit().map_err(sql_error)?;
            Ok(BlockOutcome {
                already: existing.is_some(),
                block: existing.unwrap_or(block),
                revoked,
            })
        })
        .await
    }

    async fn unblock(&self, id: TelegramUserId) -> Result<Option<Block>, StoreError> {
        self.with_conn(move |conn| {
            block_row(
                conn,
                &format!(
                    "DELETE FROM telegram_blocks WHERE telegram_user_id = ?1 RETURNING {COLUMNS}"
                ),
                id,
            )
        })
        .await
    }
}
