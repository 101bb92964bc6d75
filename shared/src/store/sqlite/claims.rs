//! Claims: one row per `<kind>#<key>` with the same status, `in_progress_until` and
//! `expires_at` semantics as the DynamoDB item.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, immediate, sql_error};
use crate::{
    store::{
        ClaimKey, ClaimLease, ClaimOnce, ClaimOutcome, ClaimRecord, ClaimStatus, ClaimTimes,
        Claims, StoreError,
    },
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS claims (
    claim_key         TEXT PRIMARY KEY NOT NULL,
    status            TEXT NOT NULL,
    in_progress_until INTEGER,
    expires_at        INTEGER NOT NULL,
    digest            TEXT,
    result            TEXT
) STRICT;
";

/// Columns added after the table first shipped (a database of before gets them on open).
pub(super) const MIGRATIONS: &[&str] = &[
    "ALTER TABLE claims ADD COLUMN digest TEXT",
    "ALTER TABLE claims ADD COLUMN result TEXT",
];

pub(super) const PURGE: &str = "DELETE FROM claims WHERE expires_at <= ?1";

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// The live claim of `key`: not past its retention, and if in progress, not past
/// `in_progress_until`.
pub(super) fn live_status(
    conn: &Connection,
    key: &ClaimKey,
    now: UnixTime,
) -> Result<Option<ClaimStatus>, StoreError> {
    let row: Option<(String, Option<i64>, i64)> = conn
        .query_row(
            "SELECT status, in_progress_until, expires_at FROM claims WHERE claim_key = ?1",
            [key.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let Some((status, until, expires_at)) = row else {
        return Ok(None);
    };
    if expires_at <= now.secs() as i64 {
        return Ok(None);
    }
    match status.as_str() {
        COMPLETED => Ok(Some(ClaimStatus::Completed)),
        IN_PROGRESS => {
            let until = until
                .and_then(|u| u64::try_from(u).ok())
                .ok_or_else(|| StoreError::Corrupt("claim without in_progress_until".into()))?;
            Ok((until > now.secs()).then_some(ClaimStatus::InProgress {
                until: UnixTime(until),
            }))
        }
        _ => Err(StoreError::Corrupt("unknown claim status".into())),
    }
}

/// The live claim of `key` with its digest and result.
pub(super) fn live_record(
    conn: &Connection,
    key: &ClaimKey,
    now: UnixTime,
) -> Result<Option<ClaimRecord>, StoreError> {
    let Some(status) = live_status(conn, key, now)? else {
        return Ok(None);
    };
    let (digest, result): (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT digest, result FROM claims WHERE claim_key = ?1",
            [key.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(sql_error)?;
    Ok(Some(ClaimRecord {
        status,
        digest,
        result,
    }))
}

/// Writes the claim `IN_PROGRESS` until `until` with `digest`, replacing a dead one.
pub(super) fn write_in_progress(
    conn: &Connection,
    key: &ClaimKey,
    until: UnixTime,
    expires_at: UnixTime,
    digest: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO claims
             (claim_key, status, in_progress_until, expires_at, digest, result)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        params![
            key.as_str(),
            IN_PROGRESS,
            until.secs() as i64,
            expires_at.secs() as i64,
            digest
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Writes the claim as `COMPLETED` until `expires_at`, replacing whatever was there.
pub(super) fn write_completed(
    conn: &Connection,
    key: &ClaimKey,
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO claims (claim_key, status, in_progress_until, expires_at)
         VALUES (?1, ?2, NULL, ?3)",
        params![key.as_str(), COMPLETED, expires_at.secs() as i64],
    )
    .map_err(sql_error)?;
    Ok(())
}

#[async_trait]
impl Claims for SqliteStore {
    async fn begin(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            match live_status(&tx, &key, now)? {
                Some(ClaimStatus::Completed) => return Ok(ClaimOutcome::Completed),
                Some(ClaimStatus::InProgress { .. }) => return Ok(ClaimOutcome::InProgress),
                None => {}
            }
            let until = now.plus_secs(times.in_progress_secs);
            write_in_progress(&tx, &key, until, now.plus_secs(times.retain_secs), None)?;
            tx.commit().map_err(sql_error)?;
            Ok(ClaimOutcome::Acquired(ClaimLease {
                key,
                in_progress_until: until,
            }))
        })
        .await
    }

    async fn complete(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<(), StoreError> {
        let key = lease.key.clone();
        self.with_conn(move |conn| write_completed(conn, &key, now.plus_secs(retain_secs)))
            .await
    }

    async fn complete_with_result(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
        digest: &str,
        result: &str,
    ) -> Result<(), StoreError> {
        let (key, digest, result) = (lease.key.clone(), digest.to_owned(), result.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO claims
                     (claim_key, status, in_progress_until, expires_at, digest, result)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
                params![
                    key.as_str(),
                    COMPLETED,
                    now.plus_secs(retain_secs).secs() as i64,
                    digest,
                    result
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, lease: &ClaimLease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM claims
                 WHERE claim_key = ?1 AND status = ?2 AND in_progress_until = ?3",
                params![
                    lease.key.as_str(),
                    IN_PROGRESS,
                    lease.in_progress_until.secs() as i64
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn claim_once(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<ClaimOnce, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            if live_status(&tx, &key, now)?.is_some() {
                return Ok(ClaimOnce::AlreadyClaimed);
            }
            write_completed(&tx, &key, now.plus_secs(retain_secs))?;
            tx.commit().map_err(sql_error)?;
            Ok(ClaimOnce::Claimed)
        })
        .await
    }

    async fn status(
        &self,
        key: &ClaimKey,
        now: UnixTime,
    ) -> Result<Option<ClaimStatus>, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| live_status(conn, &key, now))
            .await
    }
}
