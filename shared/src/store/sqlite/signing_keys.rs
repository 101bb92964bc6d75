//! `SigningKeys` on SQLite: one row per key (`signing_keys`) and a one-row pointer
//! (`signing_key_current`, `id = 1`). [`SigningKeys::add_current`] checks the pointer and
//! writes the key, the pointer and the retirement in one `IMMEDIATE` transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, immediate, sql_error};
use crate::{
    seal::SealedRecord,
    store::{
        StoreError,
        signing_keys::{
            AddOutcome, PRIVATE_KEY_ATTRIBUTE, SigningKeyRecord, SigningKeySet, SigningKeys,
        },
    },
    time::UnixTime,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    x           TEXT NOT NULL,
    y           TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    private_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS signing_key_current (
    id  INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    kid TEXT NOT NULL REFERENCES signing_keys (kid)
) STRICT;
";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("signing keys: {what}"))
}

fn secs(value: i64) -> Result<UnixTime, StoreError> {
    u64::try_from(value)
        .map(UnixTime)
        .map_err(|_| corrupt("negative timestamp"))
}

type RawKey = (String, String, String, Vec<u8>, Vec<u8>, i64, Option<i64>);

fn record(raw: RawKey) -> Result<SigningKeyRecord, StoreError> {
    let (kid, x, y, wrapped_key, private_key, created_at, retired_at) = raw;
    Ok(SigningKeyRecord {
        kid,
        x,
        y,
        sealed: SealedRecord {
            wrapped_key,
            attributes: BTreeMap::from([(PRIVATE_KEY_ATTRIBUTE.to_owned(), private_key)]),
        },
        created_at: secs(created_at)?,
        retired_at: retired_at.map(secs).transpose()?,
    })
}

#[async_trait]
impl SigningKeys for SqliteStore {
    async fn key_set(&self) -> Result<SigningKeySet, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT kid FROM signing_key_current WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let raws = {
                let mut stmt = tx
                    .prepare(
                        "SELECT kid, x, y, wrapped_key, private_key, created_at, retired_at \
                         FROM signing_keys ORDER BY created_at, kid",
                    )
                    .map_err(sql_error)?;
                stmt.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .map_err(sql_error)?
                .collect::<rusqlite::Result<Vec<RawKey>>>()
                .map_err(sql_error)?
            };
            tx.commit().map_err(sql_error)?;
            let keys = raws.into_iter().map(record).collect::<Result<_, _>>()?;
            Ok(SigningKeySet { current, keys })
        })
        .await
    }

    async fn add_current(
        &self,
        key: &SigningKeyRecord,
        expected: Option<&str>,
        now: UnixTime,
    ) -> Result<AddOutcome, StoreError> {
        let key = key.clone();
        let expected = expected.map(str::to_owned);
        self.with_conn(move |conn| {
            let private = key
                .sealed
                .attributes
                .get(PRIVATE_KEY_ATTRIBUTE)
                .ok_or_else(|| corrupt("no sealed private key"))?;
            let tx = immediate(conn)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT kid FROM signing_key_current WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = ?1)",
                    [&key.kid],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            if current != expected || exists {
                return Ok(AddOutcome::Superseded);
            }
            tx.execute(
                "INSERT INTO signing_keys (kid, x, y, wrapped_key, private_key, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.kid,
                    key.x,
                    key.y,
                    key.sealed.wrapped_key,
                    private,
                    key.created_at.secs() as i64
                ],
            )
            .map_err(sql_error)?;
            if let Some(old) = &expected {
                tx.execute(
                    "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1 AND retired_at IS NULL",
                    params![old, now.secs() as i64],
                )
                .map_err(sql_error)?;
            }
            tx.execute(
                "INSERT INTO signing_key_current (id, kid) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET kid = excluded.kid",
                [&key.kid],
            )
            .map_err(sql_error)?;
            tx.commit().map_err(sql_error)?;
            Ok(AddOutcome::Added)
        })
        .await
    }
}
