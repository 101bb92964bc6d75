//! Links: one row per link with both ids unique, the SQLite form of the two DynamoDB items
//! (`TGUSER#<id>` / `LINK` and `USER#<id>` / `TGLINK`), which are always written together.
//! Deleting a link bumps the Telegram user's session epoch in the same transaction.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, blocks, immediate, signins, sql_error};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        Link, LinkOutcome, LinkSource, Links, Reachability, StoreError, Unreachable,
        UnreachableReason,
    },
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS telegram_links (
    telegram_user_id INTEGER PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL UNIQUE,
    chat_id          INTEGER,
    username         TEXT,
    source           TEXT NOT NULL,
    linked_at        INTEGER NOT NULL,
    unreachable_reason TEXT,
    unreachable_since  INTEGER
) STRICT;
";

/// Columns added after the table first shipped (a database of before gets them on open).
pub(super) const MIGRATIONS: &[&str] = &[
    "ALTER TABLE telegram_links ADD COLUMN unreachable_reason TEXT",
    "ALTER TABLE telegram_links ADD COLUMN unreachable_since INTEGER",
];

const COLUMNS: &str = "telegram_user_id, user_id, chat_id, username, source, linked_at, \
                       unreachable_reason, unreachable_since";

type RawLink = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawLink> {
    row.try_into()
}

fn to_link(raw: RawLink) -> Result<Link, StoreError> {
    let (tg, user, chat_id, username, source, linked_at, reason, since) = raw;
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    Ok(Link {
        telegram_user_id: TelegramUserId::new(tg).map_err(corrupt)?,
        user_id: UserId::parse(&user).map_err(corrupt)?,
        chat_id,
        username,
        source: LinkSource::parse(&source)?,
        linked_at: UnixTime(
            u64::try_from(linked_at)
                .map_err(|_| StoreError::Corrupt("negative linked_at".into()))?,
        ),
        unreachable: match (reason, since) {
            (Some(reason), Some(since)) => Some(Unreachable {
                reason: UnreachableReason::parse(&reason)?,
                since: UnixTime(
                    u64::try_from(since)
                        .map_err(|_| StoreError::Corrupt("negative unreachable_since".into()))?,
                ),
            }),
            _ => None,
        },
    })
}

pub(super) fn by_telegram(
    conn: &Connection,
    id: TelegramUserId,
) -> Result<Option<Link>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM telegram_links WHERE telegram_user_id = ?1"),
        [id.get()],
        from_row,
    )
    .optional()
    .map_err(sql_error)?
    .map(to_link)
    .transpose()
}

pub(super) fn by_user(conn: &Connection, user: &UserId) -> Result<Option<Link>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM telegram_links WHERE user_id = ?1"),
        [user.as_str()],
        from_row,
    )
    .optional()
    .map_err(sql_error)?
    .map(to_link)
    .transpose()
}

/// Inserts `link`, or refreshes chat and username of the same pair (keeping `linked_at` and
/// `source`). The caller has checked that neither side is linked elsewhere.
pub(super) fn upsert(conn: &Connection, link: &Link) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO telegram_links ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(telegram_user_id) DO UPDATE SET
                 chat_id = excluded.chat_id, username = excluded.username,
                 unreachable_reason = excluded.unreachable_reason,
                 unreachable_since = excluded.unreachable_since
             WHERE telegram_links.user_id = excluded.user_id"
        ),
        params![
            link.telegram_user_id.get(),
            link.user_id.as_str(),
            link.chat_id,
            link.username,
            link.source.as_str(),
            link.linked_at.secs() as i64,
            link.unreachable.as_ref().map(|u| u.reason.as_str()),
            link.unreachable.as_ref().map(|u| u.since.secs() as i64),
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Deletes the link whose `column` is `value` and bumps its Telegram user's session epoch
/// (the caller commits both together); returns what was deleted.
fn delete_returning(
    conn: &Connection,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Link>, StoreError> {
    let deleted = conn
        .query_row(
            &format!("DELETE FROM telegram_links WHERE {column} = ?1 RETURNING {COLUMNS}"),
            [value],
            from_row,
        )
        .optional()
        .map_err(sql_error)?
        .map(to_link)
        .transpose()?;
    if let Some(link) = &deleted {
        signins::end_all(conn, link.telegram_user_id)?;
    }
    Ok(deleted)
}

/// Runs `delete` (a [`delete_returning`]) in its own `IMMEDIATE` transaction.
fn unlink(
    conn: &mut Connection,
    delete: impl FnOnce(&Connection) -> Result<Option<Link>, StoreError>,
) -> Result<Option<Link>, StoreError> {
    let tx = immediate(conn)?;
    let deleted = delete(&tx)?;
    tx.commit().map_err(sql_error)?;
    Ok(deleted)
}

/// Deletes the Telegram user's link (bumping its session epoch); returns what was deleted.
pub(super) fn delete_by_telegram(
    conn: &Connection,
    id: TelegramUserId,
) -> Result<Option<Link>, StoreError> {
    delete_returning(conn, "telegram_user_id", &id.get())
}

#[async_trait]
impl Links for SqliteStore {
    async fn get_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        self.with_conn(move |conn| by_telegram(conn, id)).await
    }

    async fn get_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| by_user(conn, &user)).await
    }

    async fn link(&self, link: &Link) -> Result<LinkOutcome, StoreError> {
        let link = link.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if blocks::is_blocked(&tx, link.telegram_user_id)? {
                return Ok(LinkOutcome::Blocked);
            }
            let t = by_telegram(&tx, link.telegram_user_id)?;
            let u = by_user(&tx, &link.user_id)?;
            if let Some(side) = link.conflict(t.as_ref(), u.as_ref()) {
                return Ok(LinkOutcome::Conflict(side));
            }
            if let Some(existing) = t {
                return Ok(LinkOutcome::AlreadyLinked(existing));
            }
            upsert(&tx, &link)?;
            tx.commit().map_err(sql_error)?;
            Ok(LinkOutcome::Linked(link))
        })
        .await
    }

    async fn set_reachability(
        &self,
        id: TelegramUserId,
        change: Reachability,
    ) -> Result<Option<Link>, StoreError> {
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            let Some(found) = by_telegram(&tx, id)? else {
                return Ok(None);
            };
            let updated = found.with_reachability(change);
            upsert(&tx, &updated)?;
            tx.commit().map_err(sql_error)?;
            Ok(Some(updated))
        })
        .await
    }

    async fn unlink_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| {
            unlink(conn, |tx| delete_returning(tx, "user_id", &user.as_str()))
        })
        .await
    }

    async fn unlink_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        self.with_conn(move |conn| unlink(conn, |tx| delete_by_telegram(tx, id)))
            .await
    }
}
