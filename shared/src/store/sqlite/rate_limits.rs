//! Token buckets: one row per bucket with its `tat` (microseconds), taken with the notify claim
//! in one `IMMEDIATE` transaction.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, claims, immediate, sql_error};
use crate::{
    store::{Admission, Bucket, ClaimKey, ClaimLease, ClaimTimes, RateLimits, StoreError},
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rate_buckets (
    bucket_key TEXT PRIMARY KEY NOT NULL,
    tat        INTEGER NOT NULL
) STRICT;
";

/// Buckets idle for an hour (`tat` in microseconds, `?1` in seconds) are gone.
pub(super) const PURGE: &str = "DELETE FROM rate_buckets WHERE tat / 1000000 + 3600 <= ?1";

fn tat(conn: &Connection, bucket: &Bucket) -> Result<Option<u64>, StoreError> {
    let raw: Option<i64> = conn
        .query_row(
            "SELECT tat FROM rate_buckets WHERE bucket_key = ?1",
            [bucket.key.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    raw.map(|t| u64::try_from(t).map_err(|_| StoreError::Corrupt("negative tat".into())))
        .transpose()
}

fn set_tat(conn: &Connection, bucket: &Bucket, tat: u64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO rate_buckets (bucket_key, tat) VALUES (?1, ?2)",
        params![bucket.key.as_str(), tat as i64],
    )
    .map_err(sql_error)?;
    Ok(())
}

#[async_trait]
impl RateLimits for SqliteStore {
    async fn admit(
        &self,
        claim: &ClaimKey,
        digest: &str,
        times: ClaimTimes,
        chat: &Bucket,
        bot: &Bucket,
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let (claim, digest, chat, bot) =
            (claim.clone(), digest.to_owned(), chat.clone(), bot.clone());
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if let Some(record) = claims::live_record(&tx, &claim, now)? {
                return Ok(Admission::Claimed(record));
            }
            let taken = (
                chat.take(tat(&tx, &chat)?, now),
                bot.take(tat(&tx, &bot)?, now),
            );
            let (chat_tat, bot_tat) = match taken {
                (Ok(c), Ok(b)) => (c, b),
                (c, b) => {
                    let wait = c.err().unwrap_or(0).max(b.err().unwrap_or(0));
                    return Ok(Admission::RateLimited {
                        retry_after_secs: wait,
                    });
                }
            };
            let until = now.plus_secs(times.in_progress_secs);
            claims::write_in_progress(
                &tx,
                &claim,
                until,
                now.plus_secs(times.retain_secs),
                Some(&digest),
            )?;
            set_tat(&tx, &chat, chat_tat)?;
            set_tat(&tx, &bot, bot_tat)?;
            tx.commit().map_err(sql_error)?;
            Ok(Admission::Admitted(ClaimLease {
                key: claim,
                in_progress_until: until,
            }))
        })
        .await
    }
}
