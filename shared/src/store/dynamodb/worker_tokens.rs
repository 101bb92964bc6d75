//! `WorkerTokens` on DynamoDB: `WORKERTOKEN#<hash>` / `WORKERTOKEN` (looked up by the hash a
//! worker presents) and `USER#<id>` / `WORKERTOKEN#<id>` (listed by user, names the hash for
//! revocation), written and revoked together with `TransactWriteItems`.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, TransactWriteItem, Update},
};

use super::{DynamoStore, Item, get_s, n, s, unavailable};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        worker_tokens::{REVOKED_RETENTION_SECS, RevokeOutcome, WorkerTokenRecord, WorkerTokens},
    },
    time::UnixTime,
    token::TokenHash,
};

const TOKEN_SK: &str = "WORKERTOKEN";
const LIST_PREFIX: &str = "WORKERTOKEN#";

fn token_pk(hash: &TokenHash) -> String {
    format!("WORKERTOKEN#{}", hash.as_str())
}

fn user_pk(user: &UserId) -> String {
    format!("USER#{}", user.as_str())
}

fn list_sk(id: &str) -> String {
    format!("{LIST_PREFIX}{id}")
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("worker token: {what}"))
}

fn opt_n(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(&format!("{name} is not a number"))),
        Some(_) => Err(corrupt(&format!("{name} is not a number"))),
    }
}

/// Past its retention (DynamoDB TTL deletes late, so every read checks).
fn expired(item: &Item, now: UnixTime) -> Result<bool, StoreError> {
    Ok(opt_n(item, "expires_at")?.is_some_and(|at| at <= now.secs()))
}

fn parse(item: &Item) -> Result<WorkerTokenRecord, StoreError> {
    Ok(WorkerTokenRecord {
        id: get_s(item, "id")?.to_owned(),
        hash: TokenHash::from_stored(get_s(item, "token_hash")?.to_owned()),
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(|_| corrupt("bad user_id"))?,
        name: get_s(item, "name")?.to_owned(),
        created_at: UnixTime(opt_n(item, "created_at")?.ok_or_else(|| corrupt("created_at"))?),
        revoked_at: opt_n(item, "revoked_at")?.map(UnixTime),
    })
}

fn put(table: &str, pk: String, sk: String, r: &WorkerTokenRecord) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s(sk))
        .item("id", s(&r.id))
        .item("token_hash", s(r.hash.as_str()))
        .item("user_id", s(r.user_id.as_str()))
        .item("name", s(&r.name))
        .item("created_at", n(r.created_at.secs()))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .expect("table, item and condition are set");
    TransactWriteItem::builder().put(put).build()
}

fn revoke(table: &str, pk: String, sk: String, now: UnixTime) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .update_expression("SET revoked_at = :now, expires_at = :expires")
        .condition_expression(
            "attribute_exists(pk) AND attribute_not_exists(revoked_at) \
             AND (attribute_not_exists(expires_at) OR expires_at > :now)",
        )
        .expression_attribute_values(":now", n(now.secs()))
        .expression_attribute_values(":expires", n(now.plus_secs(REVOKED_RETENTION_SECS).secs()))
        .build()
        .expect("table, key and expression are set");
    TransactWriteItem::builder().update(update).build()
}

#[async_trait]
impl WorkerTokens for DynamoStore {
    async fn insert(&self, record: &WorkerTokenRecord) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .transact_items(put(
                &self.table,
                token_pk(&record.hash),
                TOKEN_SK.to_owned(),
                record,
            ))
            .transact_items(put(
                &self.table,
                user_pk(&record.user_id),
                list_sk(&record.id),
                record,
            ))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn lookup(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<WorkerTokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(token_pk(hash)))
            .key("sk", s(TOKEN_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if expired(&item, now)? {
            return Ok(None);
        }
        let record = parse(&item)?;
        Ok(record.revoked_at.is_none().then_some(record))
    }

    async fn list(
        &self,
        user: &UserId,
        now: UnixTime,
    ) -> Result<Vec<WorkerTokenRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(user_pk(user)))
                .expression_attribute_values(":prefix", s(LIST_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                if !expired(item, now)? {
                    out.push(parse(item)?);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn revoke(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        // A lost race (another revoke, or DynamoDB's transaction conflict) is decided by
        // reading again.
        for _ in 0..5 {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(user_pk(user)))
                .key("sk", s(list_sk(id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            let Some(item) = out.item else {
                return Ok(RevokeOutcome::NotFound);
            };
            if expired(&item, now)? {
                return Ok(RevokeOutcome::NotFound);
            }
            let record = parse(&item)?;
            if record.revoked_at.is_some() {
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            let result = self
                .client
                .transact_write_items()
                .transact_items(revoke(
                    &self.table,
                    token_pk(&record.hash),
                    TOKEN_SK.to_owned(),
                    now,
                ))
                .transact_items(revoke(&self.table, user_pk(user), list_sk(id), now))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(RevokeOutcome::Revoked),
                Err(e) => {
                    let raced = match e.as_service_error() {
                        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                            c.cancellation_reasons().iter().any(|r| {
                                matches!(
                                    r.code(),
                                    Some("ConditionalCheckFailed" | "TransactionConflict")
                                )
                            })
                        }
                        _ => false,
                    };
                    if !raced {
                        return Err(unavailable(e));
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "worker token revocation kept conflicting".into(),
        ))
    }
}
