//! `Registrations` on SQLite: one row per registration (the token hash is a unique column, so
//! "pointer" and "record" are one row and always agree). Each transition is one conditional
//! `UPDATE` inside an `IMMEDIATE` transaction that also reads the row back when refused.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, immediate, sql_error};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        registrations::{
            COMPLETED_RETENTION_SECS, FinalStatus, Finish, NewRegistration, RegistrationId,
            RegistrationRecord, RegistrationStatus, Registrations, SealedSeed, TotpAccept,
            TotpFailures, TotpLockout, TotpSeed, TotpTarget, Transition,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS registrations (
    registration_id  TEXT PRIMARY KEY NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    service_name     TEXT NOT NULL,
    email            TEXT,
    callback_url     TEXT,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    token_expires_at INTEGER NOT NULL,
    retain_until     INTEGER NOT NULL,
    completed_at     INTEGER,
    seed_id          TEXT,
    seed_key         BLOB,
    seed_sealed      BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS registrations_retain_until ON registrations (retain_until);
CREATE TABLE IF NOT EXISTS totp_users (
    user_id          TEXT PRIMARY KEY NOT NULL,
    registration_id  TEXT,
    failures         INTEGER NOT NULL DEFAULT 0,
    failures_since   INTEGER
) STRICT;
";

/// Columns added after the first release (an existing file gets them on open).
pub(super) const MIGRATIONS: &[&str] = &["ALTER TABLE registrations ADD COLUMN last_step INTEGER"];

/// Finished, expired and abandoned registrations alike go when their retention ends.
pub(super) const PURGE: &str = "DELETE FROM registrations WHERE retain_until <= ?1";

const COLUMNS: &str = "registration_id, user_id, service_name, email, callback_url, status, \
    created_at, token_expires_at, retain_until, completed_at, seed_id, seed_key, seed_sealed";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("registrations: {what}"))
}

fn secs(value: i64) -> Result<UnixTime, StoreError> {
    u64::try_from(value)
        .map(UnixTime)
        .map_err(|_| corrupt("negative timestamp"))
}

/// The raw columns of a row, converted outside rusqlite's row closure so that conversion
/// failures are `Corrupt`, not SQL errors.
struct RawRow {
    id: String,
    user_id: String,
    service_name: String,
    email: Option<String>,
    callback_url: Option<String>,
    status: String,
    created_at: i64,
    token_expires_at: i64,
    retain_until: i64,
    completed_at: Option<i64>,
    seed_id: Option<String>,
    seed_key: Option<Vec<u8>>,
    seed_sealed: Option<Vec<u8>>,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            user_id: row.get(1)?,
            service_name: row.get(2)?,
            email: row.get(3)?,
            callback_url: row.get(4)?,
            status: row.get(5)?,
            created_at: row.get(6)?,
            token_expires_at: row.get(7)?,
            retain_until: row.get(8)?,
            completed_at: row.get(9)?,
            seed_id: row.get(10)?,
            seed_key: row.get(11)?,
            seed_sealed: row.get(12)?,
        })
    }

    fn into_record(self) -> Result<RegistrationRecord, StoreError> {
        let sealed_seed = match (self.seed_key, self.seed_sealed) {
            (Some(wrapped_key), Some(sealed)) => Some(SealedSeed {
                wrapped_key,
                sealed,
            }),
            (None, None) => None,
            _ => return Err(corrupt("half a sealed seed")),
        };
        Ok(RegistrationRecord {
            id: RegistrationId::parse(&self.id).ok_or_else(|| corrupt("bad registration id"))?,
            user_id: UserId::parse(&self.user_id).map_err(corrupt)?,
            service_name: self.service_name,
            email: self.email,
            callback_url: self.callback_url,
            status: RegistrationStatus::parse(&self.status)
                .ok_or_else(|| corrupt("unknown status"))?,
            created_at: secs(self.created_at)?,
            token_expires_at: secs(self.token_expires_at)?,
            retain_until: secs(self.retain_until)?,
            completed_at: self.completed_at.map(secs).transpose()?,
            seed_id: self.seed_id,
            sealed_seed,
        })
    }
}

/// The row with this id, unless past its retention.
fn select_by_id(
    conn: &Connection,
    id: &str,
    now: UnixTime,
) -> Result<Option<RegistrationRecord>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM registrations WHERE registration_id = ?1 AND retain_until > ?2"
        ),
        params![id, now.secs() as i64],
        RawRow::read,
    )
    .optional()
    .map_err(sql_error)?
    .map(RawRow::into_record)
    .transpose()
}

/// Runs one conditional `UPDATE … RETURNING` (parameters `?1` = id, `?2` = now, then
/// `extra`); when it matches no row, reads the row as it is, in the same transaction.
fn transition(
    conn: &mut Connection,
    update: &str,
    id: &RegistrationId,
    now: UnixTime,
    extra: &[&dyn rusqlite::ToSql],
) -> Result<Transition, StoreError> {
    transition_then(conn, update, id, now, extra, |_, _| Ok(()))
}

/// [`transition`], and `then` with the record when it is done, in the same transaction.
fn transition_then(
    conn: &mut Connection,
    update: &str,
    id: &RegistrationId,
    now: UnixTime,
    extra: &[&dyn rusqlite::ToSql],
    then: impl FnOnce(&Connection, &RegistrationRecord) -> Result<(), StoreError>,
) -> Result<Transition, StoreError> {
    let tx = immediate(conn)?;
    let id_text = id.as_str();
    let now_i = now.secs() as i64;
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&id_text, &now_i];
    values.extend_from_slice(extra);
    let updated = tx
        .query_row(
            &format!("{update} RETURNING {COLUMNS}"),
            values.as_slice(),
            RawRow::read,
        )
        .optional()
        .map_err(sql_error)?;
    let outcome = match updated {
        Some(row) => {
            let record = row.into_record()?;
            then(&tx, &record)?;
            Transition::Done(record)
        }
        None => Transition::Refused(select_by_id(&tx, id.as_str(), now)?),
    };
    tx.commit().map_err(sql_error)?;
    Ok(outcome)
}

#[async_trait]
impl Registrations for SqliteStore {
    async fn create(&self, r: &NewRegistration) -> Result<(), StoreError> {
        let r = r.clone();
        self.with_conn(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO registrations (registration_id, token_hash, user_id, service_name,
                     email, callback_url, status, created_at, token_expires_at, retain_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9)",
                params![
                    r.id.as_str(),
                    r.token_hash.as_str(),
                    r.user_id.as_str(),
                    r.service_name,
                    r.email,
                    r.callback_url,
                    r.created_at.secs() as i64,
                    r.token_expires_at.secs() as i64,
                    r.retain_until().secs() as i64,
                ],
            );
            match inserted {
                Ok(_) => Ok(()),
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    Err(corrupt("registration id or token hash already exists"))
                }
                Err(e) => Err(sql_error(e)),
            }
        })
        .await
    }

    async fn get(
        &self,
        id: &RegistrationId,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let id = id.clone();
        self.with_conn(move |conn| select_by_id(conn, id.as_str(), now))
            .await
    }

    async fn find_by_token(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let hash = hash.clone();
        self.with_conn(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM registrations
                     WHERE token_hash = ?1 AND retain_until > ?2"
                ),
                params![hash.as_str(), now.secs() as i64],
                RawRow::read,
            )
            .optional()
            .map_err(sql_error)?
            .map(RawRow::into_record)
            .transpose()
        })
        .await
    }

    async fn finish(
        &self,
        id: &RegistrationId,
        finish: &Finish,
        now: UnixTime,
    ) -> Result<Transition, StoreError> {
        let id = id.clone();
        let finish = finish.clone();
        self.with_conn(move |conn| {
            let status = RegistrationStatus::from(finish.status);
            let (key, sealed) = match &finish.sealed_seed {
                Some(s) => (Some(s.wrapped_key.clone()), Some(s.sealed.clone())),
                None => (None, None),
            };
            let verifier = finish.status == FinalStatus::Completed && sealed.is_some();
            // A registration completed with a seed is kept as the verifier's record.
            let keep = verifier.then(|| now.plus_secs(COMPLETED_RETENTION_SECS).secs() as i64);
            transition_then(
                conn,
                "UPDATE registrations
                 SET status = ?3, completed_at = ?2, seed_id = ?4, seed_key = ?5, seed_sealed = ?6,
                     retain_until = COALESCE(?8, retain_until)
                 WHERE registration_id = ?1 AND user_id = ?7 AND status = 'pending'
                   AND token_expires_at > ?2 AND retain_until > ?2",
                &id,
                now,
                &[
                    &status.as_str(),
                    &finish.seed_id,
                    &key,
                    &sealed,
                    &finish.owner.as_str(),
                    &keep,
                ],
                |tx, record| {
                    if verifier {
                        tx.execute(
                            "INSERT INTO totp_users (user_id, registration_id) VALUES (?1, ?2)
                             ON CONFLICT (user_id) DO UPDATE SET registration_id = ?2",
                            params![record.user_id.as_str(), record.id.as_str()],
                        )
                        .map_err(sql_error)?;
                    }
                    Ok(())
                },
            )
        })
        .await
    }

    async fn expire(&self, id: &RegistrationId, now: UnixTime) -> Result<Transition, StoreError> {
        let id = id.clone();
        self.with_conn(move |conn| {
            transition(
                conn,
                "UPDATE registrations SET status = 'expired'
                 WHERE registration_id = ?1 AND status = 'pending'
                   AND token_expires_at <= ?2 AND retain_until > ?2",
                &id,
                now,
                &[],
            )
        })
        .await
    }

    async fn totp_target(
        &self,
        user: &UserId,
        id: Option<&RegistrationId>,
        now: UnixTime,
    ) -> Result<TotpTarget, StoreError> {
        let user = user.clone();
        let id = id.cloned();
        self.with_conn(move |conn| {
            let state: Option<(Option<String>, i64, Option<i64>)> = conn
                .query_row(
                    "SELECT registration_id, failures, failures_since FROM totp_users
                     WHERE user_id = ?1",
                    [user.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(sql_error)?;
            let (current, failures) = match state {
                Some((current, count, since)) => (
                    current,
                    TotpFailures {
                        count: u32::try_from(count).map_err(|_| corrupt("bad failure count"))?,
                        since: since.map(secs).transpose()?,
                    },
                ),
                None => (None, TotpFailures::default()),
            };
            let wanted = match id {
                Some(id) => Some(id.as_str().to_owned()),
                None => current,
            };
            let seed = match wanted {
                Some(wanted) => select_by_id(conn, &wanted, now)?.and_then(|r| {
                    let usable = r.user_id == user && r.status == RegistrationStatus::Completed;
                    match (usable, r.sealed_seed) {
                        (true, Some(sealed_seed)) => Some(TotpSeed {
                            id: r.id,
                            sealed_seed,
                        }),
                        _ => None,
                    }
                }),
                None => None,
            };
            Ok(TotpTarget { seed, failures })
        })
        .await
    }

    async fn totp_accept(
        &self,
        user: &UserId,
        id: &RegistrationId,
        step: u64,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpAccept, StoreError> {
        let user = user.clone();
        let id = id.clone();
        let step = i64::try_from(step).map_err(|_| corrupt("time step out of range"))?;
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            let cutoff = now.secs().saturating_sub(lockout.window_secs) as i64;
            let locked: bool = tx
                .query_row(
                    "SELECT COUNT(*) > 0 FROM totp_users
                     WHERE user_id = ?1 AND failures >= ?2 AND failures_since > ?3",
                    params![user.as_str(), i64::from(lockout.max_failures), cutoff],
                    |row| row.get(0),
                )
                .map_err(sql_error)?;
            if locked {
                return Ok(TotpAccept::Locked);
            }
            let accepted = tx
                .execute(
                    "UPDATE registrations SET last_step = ?3
                     WHERE registration_id = ?1 AND user_id = ?2 AND status = 'completed'
                       AND retain_until > ?4 AND (last_step IS NULL OR last_step < ?3)",
                    params![id.as_str(), user.as_str(), step, now.secs() as i64],
                )
                .map_err(sql_error)?;
            if accepted == 0 {
                return Ok(TotpAccept::StepUsed);
            }
            tx.execute(
                "UPDATE totp_users SET failures = 0, failures_since = NULL WHERE user_id = ?1",
                [user.as_str()],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(TotpAccept::Accepted)
        })
        .await
    }

    async fn totp_fail(
        &self,
        user: &UserId,
        _seen: TotpFailures,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpFailures, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| {
            let cutoff = now.secs().saturating_sub(lockout.window_secs) as i64;
            let (count, since): (i64, Option<i64>) = conn
                .query_row(
                    "INSERT INTO totp_users (user_id, failures, failures_since) VALUES (?1, 1, ?2)
                     ON CONFLICT (user_id) DO UPDATE SET
                       failures = CASE WHEN failures_since > ?3 THEN failures + 1 ELSE 1 END,
                       failures_since = CASE WHEN failures_since > ?3 THEN failures_since
                                             ELSE ?2 END
                     RETURNING failures, failures_since",
                    params![user.as_str(), now.secs() as i64, cutoff],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(sql_error)?;
            Ok(TotpFailures {
                count: u32::try_from(count).map_err(|_| corrupt("bad failure count"))?,
                since: since.map(secs).transpose()?,
            })
        })
        .await
    }
}
