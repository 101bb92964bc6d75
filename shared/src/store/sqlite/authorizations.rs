//! The OpenID provider's one-time state (port `Authorizations`): one table for both kinds,
//! `kind` `request` (keyed by the hash of tglink's upstream state) or `code` (the hash of the
//! code). Taking a request and redeeming a code are each one conditional `UPDATE … RETURNING`.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_error};
use crate::{
    store::{
        StoreError,
        authorizations::{
            Authorizations, IssuedCode, PendingAuthorization, RedeemOutcome, decode, encode,
        },
        signins::SessionId,
    },
    time::UnixTime,
    token::TokenHash,
};

/// How long a code's row outlives its validity (replay detection after expiry), as in DynamoDB.
const CODE_RETAIN_SECS: u64 = 600;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oidc_authorizations (
    kind        TEXT NOT NULL,
    key_hash    TEXT NOT NULL,
    data        TEXT NOT NULL,
    valid_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    mark        TEXT,
    PRIMARY KEY (kind, key_hash)
) STRICT;
";

pub(super) const PURGE: &str = "DELETE FROM oidc_authorizations WHERE expires_at <= ?1";

impl SqliteStore {
    async fn insert_new(
        &self,
        kind: &'static str,
        key: &TokenHash,
        data: String,
        valid_until: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO oidc_authorizations (kind, key_hash, data, valid_until, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    kind,
                    key.as_str(),
                    data,
                    valid_until.secs() as i64,
                    expires_at.secs() as i64
                ],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// Marks the row once (`mark` unset or equal): `Ok(data)`, or `Err(Some((data, mark)))`
    /// of a row that is marked by another or no longer valid, or `Err(None)` for no row.
    async fn mark_once(
        &self,
        kind: &'static str,
        key: &TokenHash,
        mark: String,
        now: UnixTime,
    ) -> Result<Result<String, Option<(String, Option<String>)>>, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let marked: Option<String> = conn
                .query_row(
                    "UPDATE oidc_authorizations SET mark = ?3
                     WHERE kind = ?1 AND key_hash = ?2 AND valid_until > ?4
                       AND (mark IS NULL OR mark = ?3)
                     RETURNING data",
                    params![kind, key.as_str(), mark, now.secs() as i64],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            if let Some(data) = marked {
                return Ok(Ok(data));
            }
            let old = conn
                .query_row(
                    "SELECT data, mark FROM oidc_authorizations WHERE kind = ?1 AND key_hash = ?2",
                    params![kind, key.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            Ok(Err(old))
        })
        .await
    }
}

#[async_trait]
impl Authorizations for SqliteStore {
    async fn put_request(
        &self,
        state: &TokenHash,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        self.insert_new(
            "request",
            state,
            encode(request)?,
            request.expires_at,
            request.expires_at,
        )
        .await
    }

    async fn take_request(
        &self,
        state: &TokenHash,
        attempt: &str,
        now: UnixTime,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        match self
            .mark_once("request", state, attempt.to_owned(), now)
            .await?
        {
            Ok(data) => Ok(Some(decode(&data)?)),
            Err(_) => Ok(None),
        }
    }

    async fn put_code(&self, code: &TokenHash, record: &IssuedCode) -> Result<(), StoreError> {
        self.insert_new(
            "code",
            code,
            encode(record)?,
            record.expires_at,
            record.expires_at.plus_secs(CODE_RETAIN_SECS),
        )
        .await
    }

    async fn redeem_code(
        &self,
        code: &TokenHash,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<RedeemOutcome, StoreError> {
        match self.mark_once("code", code, sid.to_string(), now).await? {
            Ok(data) => Ok(RedeemOutcome::Redeemed(Box::new(decode(&data)?))),
            Err(Some((data, Some(mark)))) => match SessionId::parse(&mark) {
                Some(first) => {
                    let record: IssuedCode = decode(&data)?;
                    Ok(RedeemOutcome::Replayed {
                        telegram_user_id: record.telegram_user_id,
                        sid: first,
                    })
                }
                None => Err(StoreError::Corrupt("authorization code mark".into())),
            },
            Err(_) => Ok(RedeemOutcome::Unknown),
        }
    }
}
