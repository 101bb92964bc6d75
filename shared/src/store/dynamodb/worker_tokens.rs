//! `WorkerTokens` on DynamoDB: the listing item `USER#<id>` / `WORKERTOKEN#<id>` (listed by
//! user, names the hash for revocation) and the hash in the string set `worker_tokens` of the
//! credentials item `USER#<id>` / `CREDENTIALS` (checked by the worker's credentials read in
//! the same call, see `credentials.rs`), written together with `TransactWriteItems` (a `Put`
//! and an `Update ... ADD`, which creates a stub credentials item if the user has none yet)
//! and revoked together (an `Update` marking the listing item and an `Update ... DELETE`).
//! The `ADD` is conditional on the set holding fewer than the limit's hashes
//! (`size(worker_tokens) < :max`), so concurrent creations never exceed it.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    DynamoStore,
    credentials::{WORKER_TOKENS, holds_token},
    item::{Item, corrupt, get_s, get_time, n, opt_time, s},
    keys::{self, WORKER_TOKEN_PREFIX, vault_pk},
    tx::{Expr, Tx, TxError, absent, retry_on_conflict},
    unavailable,
};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        worker_tokens::{
            InsertOutcome, REVOKED_RETENTION_SECS, RevokeOutcome, WorkerTokenRecord, WorkerTokens,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

/// Listing items revoked per transaction by `revoke_all` (DynamoDB allows 100 items in a
/// transaction; one more is the credentials item's set).
const REVOKE_ALL_CHUNK: usize = 99;

/// Past its retention (DynamoDB TTL deletes late, so every read checks).
fn expired(item: &Item, now: UnixTime) -> Result<bool, StoreError> {
    Ok(opt_time(item, "expires_at")?.is_some_and(|at| at <= now))
}

fn parse(item: &Item) -> Result<WorkerTokenRecord, StoreError> {
    Ok(WorkerTokenRecord {
        id: get_s(item, "id")?.to_owned(),
        hash: TokenHash::from_stored(get_s(item, "token_hash")?.to_owned()),
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(corrupt)?,
        name: get_s(item, "name")?.to_owned(),
        created_at: get_time(item, "created_at")?,
        revoked_at: opt_time(item, "revoked_at")?,
    })
}

/// `ADD` (`DELETE`) `hash` to (from) `user`'s active token hashes on the credentials item.
/// `ADD` creates a stub item when the user has no credentials yet; `DELETE` of the last hash
/// removes the attribute.
fn active_hashes(tx: &mut Tx<'_>, user: &UserId, action: &str, hash: &TokenHash) {
    tx.update(
        keys::credentials(user),
        Expr::new(format!("{action} #tokens :hash"))
            .name("#tokens", WORKER_TOKENS)
            .value(":hash", AttributeValue::Ss(vec![hash.as_str().to_owned()])),
        None,
    );
}

impl DynamoStore {
    /// The listing item and the hash, written together. The listing item's id is new, so a
    /// cancellation can only be a concurrent write to the credentials item: send it again.
    async fn insert_once(
        &self,
        r: &WorkerTokenRecord,
        max: usize,
    ) -> Result<InsertOutcome, TxError> {
        let mut tx = Tx::new(self);
        tx.put(
            keys::worker_token(&r.user_id, &r.id).item([
                ("id", s(&r.id)),
                ("token_hash", s(r.hash.as_str())),
                ("user_id", s(r.user_id.as_str())),
                ("name", s(&r.name)),
                ("created_at", n(r.created_at.secs())),
            ]),
            absent(),
        );
        let room = tx.update(
            keys::credentials(&r.user_id),
            Expr::new("ADD #tokens :hash")
                .name("#tokens", WORKER_TOKENS)
                .value(
                    ":hash",
                    AttributeValue::Ss(vec![r.hash.as_str().to_owned()]),
                ),
            Some(
                Expr::new("attribute_not_exists(#tokens) OR size(#tokens) < :max")
                    .name("#tokens", WORKER_TOKENS)
                    .value(":max", n(max)),
            ),
        );
        match tx.run().await {
            Ok(()) => Ok(InsertOutcome::Inserted),
            Err(TxError::Failed(failed)) if failed.failed(room) => Ok(InsertOutcome::LimitReached),
            Err(e) => Err(e),
        }
    }

    /// Marks the listing item `id` revoked, if it is still active (a transaction item).
    fn mark_revoked(tx: &mut Tx<'_>, user: &UserId, id: &str, now: UnixTime) {
        tx.update(
            keys::worker_token(user, id),
            Expr::new("SET revoked_at = :now, expires_at = :expires"),
            Some(
                Expr::new(
                    "attribute_exists(pk) AND attribute_not_exists(revoked_at) \
                     AND (attribute_not_exists(expires_at) OR expires_at > :now)",
                )
                .value(":now", n(now.secs()))
                .value(":expires", n(now.plus_secs(REVOKED_RETENTION_SECS).secs())),
            ),
        );
    }

    /// Revokes the user's active tokens, at most [`REVOKE_ALL_CHUNK`] per transaction (each
    /// marks its listing items and deletes their hashes together), counting into `done` what
    /// was committed (a retry after a race re-reads and goes on from there).
    async fn revoke_all_once(
        &self,
        user: &UserId,
        now: UnixTime,
        done: &AtomicUsize,
    ) -> Result<(), TxError> {
        let active: Vec<WorkerTokenRecord> = WorkerTokens::list(self, user, now)
            .await?
            .into_iter()
            .filter(|t| t.revoked_at.is_none())
            .collect();
        for chunk in active.chunks(REVOKE_ALL_CHUNK) {
            let mut tx = Tx::new(self);
            for token in chunk {
                Self::mark_revoked(&mut tx, user, &token.id, now);
            }
            tx.update(
                keys::credentials(user),
                Expr::new("DELETE #tokens :hashes")
                    .name("#tokens", WORKER_TOKENS)
                    .value(
                        ":hashes",
                        AttributeValue::Ss(
                            chunk.iter().map(|t| t.hash.as_str().to_owned()).collect(),
                        ),
                    ),
                None,
            );
            tx.run().await?;
            done.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads the listing item, then marks it revoked and removes the hash together; a lost
    /// race (another revoke, or a concurrent transaction) is decided by reading again.
    async fn revoke_once(
        &self,
        user: &UserId,
        id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, TxError> {
        let Some(item) = self.get_consistent(keys::worker_token(user, id)).await? else {
            return Ok(RevokeOutcome::NotFound);
        };
        if expired(&item, now)? {
            return Ok(RevokeOutcome::NotFound);
        }
        let record = parse(&item)?;
        if record.revoked_at.is_some() {
            return Ok(RevokeOutcome::AlreadyRevoked);
        }
        let mut tx = Tx::new(self);
        Self::mark_revoked(&mut tx, user, id, now);
        active_hashes(&mut tx, user, "DELETE", &record.hash);
        tx.run().await?;
        Ok(RevokeOutcome::Revoked)
    }
}

#[async_trait]
impl WorkerTokens for DynamoStore {
    async fn insert(
        &self,
        record: &WorkerTokenRecord,
        max: usize,
    ) -> Result<InsertOutcome, StoreError> {
        retry_on_conflict(move || self.insert_once(record, max)).await
    }

    async fn is_active(&self, user: &UserId, hash: &TokenHash) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::credentials(user).attributes()))
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
                .expression_attribute_values(":pk", s(vault_pk(user)))
                .expression_attribute_values(":prefix", s(WORKER_TOKEN_PREFIX))
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
        retry_on_conflict(move || self.revoke_once(user, id, now)).await
    }

    async fn revoke_all(&self, user: &UserId, now: UnixTime) -> Result<usize, StoreError> {
        let done = AtomicUsize::new(0);
        retry_on_conflict(|| self.revoke_all_once(user, now, &done)).await?;
        Ok(done.load(Ordering::SeqCst))
    }
}
