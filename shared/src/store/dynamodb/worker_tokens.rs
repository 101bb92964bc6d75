//! `WorkerTokens` on DynamoDB: the listing item `USER#<id>` / `WORKERTOKEN#<id>` (listed by
//! user, names the hash for revocation) and the hash in the string set `worker_tokens` of the
//! credentials item `USER#<id>` / `CREDENTIALS` (checked by the worker's credentials read in
//! the same call, see `credentials.rs`), written together with `TransactWriteItems` (a `Put`
//! and an `Update ... ADD`, which creates a stub credentials item if the user has none yet)
//! and revoked together (an `Update` marking the listing item and an `Update ... DELETE`).

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, TransactWriteItem, Update},
};

use super::{
    DynamoStore, Item,
    credentials::{self, WORKER_TOKENS, holds_token},
    get_s,
    links::user_pk,
    n, request_token, s, unavailable,
};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        worker_tokens::{REVOKED_RETENTION_SECS, RevokeOutcome, WorkerTokenRecord, WorkerTokens},
    },
    time::UnixTime,
    token::TokenHash,
};

const LIST_PREFIX: &str = "WORKERTOKEN#";

/// How often a transaction is sent again after DynamoDB cancelled it for a concurrent write
/// (nothing of a cancelled transaction is written).
const ATTEMPTS: usize = 5;

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

fn put(table: &str, r: &WorkerTokenRecord) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(user_pk(&r.user_id)))
        .item("sk", s(list_sk(&r.id)))
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

fn revoke(table: &str, user: &UserId, id: &str, now: UnixTime) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(user_pk(user)))
        .key("sk", s(list_sk(id)))
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

/// `ADD` (`DELETE`) `hash` to (from) `user`'s active token hashes on the credentials item.
/// `ADD` creates a stub item when the user has no credentials yet; `DELETE` of the last hash
/// removes the attribute.
fn active_hashes(table: &str, user: &UserId, action: &str, hash: &TokenHash) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(table)
        .key("pk", s(user_pk(user)))
        .key("sk", s(credentials::SK))
        .update_expression(format!("{action} #tokens :hash"))
        .expression_attribute_names("#tokens", WORKER_TOKENS)
        .expression_attribute_values(":hash", AttributeValue::Ss(vec![hash.as_str().to_owned()]))
        .build()
        .expect("table, key and expression are set");
    TransactWriteItem::builder().update(update).build()
}

/// Whether a cancelled transaction lost a race (a condition, or a concurrent write), so that
/// re-deciding and sending it again is right.
fn raced<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

#[async_trait]
impl WorkerTokens for DynamoStore {
    async fn insert(&self, record: &WorkerTokenRecord) -> Result<(), StoreError> {
        // The listing item's id is new (`attribute_not_exists(pk)`), so a cancellation can only
        // be a concurrent write to the credentials item: nothing was written, send it again.
        // Each send is one logical operation with its own request token, so the SDK's retry
        // of a transaction that did commit succeeds instead of failing its own condition.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .client_request_token(request_token())
                .transact_items(put(&self.table, record))
                .transact_items(active_hashes(
                    &self.table,
                    &record.user_id,
                    "ADD",
                    &record.hash,
                ))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if attempt < ATTEMPTS && raced(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    async fn is_active(&self, user: &UserId, hash: &TokenHash) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s(credentials::SK))
            .projection_expression("#tokens")
            .expression_attribute_names("#tokens", WORKER_TOKENS)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item.is_some_and(|item| holds_token(&item, hash)))
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
        for _ in 0..ATTEMPTS {
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
                .client_request_token(request_token())
                .transact_items(revoke(&self.table, user, id, now))
                .transact_items(active_hashes(&self.table, user, "DELETE", &record.hash))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(RevokeOutcome::Revoked),
                Err(e) if raced(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(
            "worker token revocation kept conflicting".into(),
        ))
    }
}
