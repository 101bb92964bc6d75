//! `Credentials` on DynamoDB: one item `USER#<id>` / `CREDENTIALS`.
//!
//! Sealed secrets are a map `sealed` of binary attributes plus the binary `data_key`. The
//! string set `worker_tokens` holds the user's active worker-token hashes (written only by the
//! `WorkerTokens` adapter; an item with that set and no `version` is a stub, read as "no
//! record"). A settings write is one `UpdateItem` that sets every field it owns and removes the
//! absent ones (never `worker_tokens`), conditional on `version` (or, at version 0, on there
//! being no `version`); a worker read is one `UpdateItem` (`SET last_used_at`) returning the
//! whole item, whose condition (worker token among `worker_tokens` if one is used, session
//! stored and live) failing still returns the item
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), from which the token is checked again:
//! absent hash → the token is invalid and nothing of the item is used.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    primitives::Blob,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    DynamoStore,
    item::{Item, corrupt, get_s, n, opt_n, opt_s, opt_time, s, set_holds},
    keys,
    tx::{TxError, attempt_id, retry_on_conflict},
    unavailable,
};
use crate::{
    ids::{TelegramUserId, UserId},
    seal::SealedRecord,
    store::{
        StoreError,
        credentials::{
            Credentials, CredentialsRecord, Reauth, WorkerAuth, WorkerRead, WriteOutcome,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

/// The string set of the user's active worker-token hashes.
pub(super) const WORKER_TOKENS: &str = "worker_tokens";

/// Whether the item's `worker_tokens` set holds `hash`.
pub(super) fn holds_token(item: &Item, hash: &TokenHash) -> bool {
    set_holds(item, WORKER_TOKENS, hash.as_str())
}

/// Optional attributes owned by settings writes (removed when absent).
const OPTIONAL: &[&str] = &[
    "data_key",
    "sealed",
    "bot_username",
    "bot_id",
    "channel_id",
    "telegram_user_id",
    "session_saved_at",
    "reauth_reason",
    "reauth_at",
];

/// The record of an item; `None` for a stub (no `version`: only worker-token hashes).
fn parse(item: &Item) -> Result<Option<CredentialsRecord>, StoreError> {
    let Some(version) = opt_n::<u64>(item, "version")? else {
        return Ok(None);
    };
    let user_id = UserId::parse(get_s(item, "user_id")?).map_err(|_| corrupt("bad user_id"))?;
    let sealed = match (item.get("data_key"), item.get("sealed")) {
        (Some(AttributeValue::B(key)), Some(AttributeValue::M(map))) => {
            let mut attributes = BTreeMap::new();
            for (name, value) in map {
                match value {
                    AttributeValue::B(blob) => {
                        attributes.insert(name.clone(), blob.as_ref().to_vec());
                    }
                    _ => return Err(corrupt("a sealed attribute is not binary")),
                }
            }
            Some(SealedRecord {
                wrapped_key: key.as_ref().to_vec(),
                attributes,
            })
        }
        (None, None) => None,
        _ => return Err(corrupt("data_key and sealed must come together")),
    };
    let telegram_user_id = opt_n::<i64>(item, "telegram_user_id")?
        .map(|id| TelegramUserId::new(id).map_err(|_| corrupt("bad telegram_user_id")))
        .transpose()?;
    let reauth = match (opt_s(item, "reauth_reason")?, opt_time(item, "reauth_at")?) {
        (Some(reason), Some(at)) => Some(Reauth {
            reason: reason.to_owned(),
            at,
        }),
        _ => None,
    };
    Ok(Some(CredentialsRecord {
        user_id,
        version,
        sealed,
        bot_username: opt_s(item, "bot_username")?.map(str::to_owned),
        bot_id: opt_n(item, "bot_id")?,
        channel_id: opt_n(item, "channel_id")?,
        telegram_user_id,
        session_saved_at: opt_time(item, "session_saved_at")?,
        last_used_at: opt_time(item, "last_used_at")?,
        reauth,
        updated_at: UnixTime(opt_n(item, "updated_at")?.unwrap_or(0)),
    }))
}

/// The settings-owned optional attributes of `record` that are present.
fn present(record: &CredentialsRecord) -> HashMap<&'static str, AttributeValue> {
    let mut out = HashMap::new();
    if let Some(sealed) = &record.sealed {
        out.insert(
            "data_key",
            AttributeValue::B(Blob::new(sealed.wrapped_key.clone())),
        );
        out.insert(
            "sealed",
            AttributeValue::M(
                sealed
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), AttributeValue::B(Blob::new(v.clone()))))
                    .collect(),
            ),
        );
    }
    if let Some(v) = &record.bot_username {
        out.insert("bot_username", s(v));
    }
    if let Some(v) = record.bot_id {
        out.insert("bot_id", n(v));
    }
    if let Some(v) = record.channel_id {
        out.insert("channel_id", n(v));
    }
    if let Some(v) = record.telegram_user_id {
        out.insert("telegram_user_id", n(v.get()));
    }
    if let Some(v) = record.session_saved_at {
        out.insert("session_saved_at", n(v.secs()));
    }
    if let Some(r) = &record.reauth {
        out.insert("reauth_reason", s(&r.reason));
        out.insert("reauth_at", n(r.at.secs()));
    }
    out
}

#[async_trait]
impl Credentials for DynamoStore {
    async fn get(&self, user: &UserId) -> Result<Option<CredentialsRecord>, StoreError> {
        self.get_with(keys::credentials(user), parse).await
    }

    async fn write_as(
        &self,
        record: &CredentialsRecord,
        auth: WorkerAuth<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let new_version = record.version + 1;
        let present = present(record);
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::credentials(&record.user_id).attributes()))
            .expression_attribute_names("#write_attempt", "write_attempt")
            .expression_attribute_values(":attempt", s(attempt_id()))
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":user_id", s(record.user_id.as_str()))
            .expression_attribute_values(":new_version", n(new_version))
            .expression_attribute_values(":updated_at", n(record.updated_at.secs()));
        let mut sets = vec![
            "#write_attempt = :attempt".to_owned(),
            "#user_id = :user_id".to_owned(),
            "#version = :new_version".to_owned(),
            "#updated_at = :updated_at".to_owned(),
        ];
        let mut removes = Vec::new();
        for name in OPTIONAL {
            req = req.expression_attribute_names(format!("#{name}"), *name);
            match present.get(name) {
                Some(value) => {
                    sets.push(format!("#{name} = :{name}"));
                    req = req.expression_attribute_values(format!(":{name}"), value.clone());
                }
                None => removes.push(format!("#{name}")),
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        req = req.update_expression(expression);
        // The SDK retries a request whose response was lost; without an attempt id the retry
        // of a write that did succeed would fail its own condition and report a conflict.
        // Version 0: no record, but maybe a stub holding worker-token hashes (kept: the update
        // neither sets nor removes them).
        // A worker token must still be active, checked by the same condition (and, when the
        // condition fails, from the item as it was: absent hash → the token is invalid).
        let expected = if record.version == 0 {
            "attribute_not_exists(#version)"
        } else {
            req = req.expression_attribute_values(":expected", n(record.version));
            "#version = :expected"
        };
        req = match auth {
            WorkerAuth::App => {
                req.condition_expression(format!("{expected} OR #write_attempt = :attempt"))
            }
            WorkerAuth::Token(hash) => req
                .condition_expression(format!(
                    "({expected} AND contains(#tokens, :token)) OR #write_attempt = :attempt"
                ))
                .expression_attribute_names("#tokens", WORKER_TOKENS)
                .expression_attribute_values(":token", s(hash.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                ),
        };
        match req.send().await {
            Ok(_) => Ok(WriteOutcome::Written {
                version: new_version,
            }),
            Err(e)
                if let (
                    WorkerAuth::Token(hash),
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)),
                ) = (auth, e.as_service_error())
                    && !failed.item().is_some_and(|item| holds_token(item, hash)) =>
            {
                Ok(WriteOutcome::TokenInvalid)
            }
            // A concurrent worker-token transaction on the item also means "re-read and
            // retry": nothing was written.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_conditional_check_failed_exception()
                        || s.is_transaction_conflict_exception()
                }) =>
            {
                Ok(WriteOutcome::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read_for_worker(
        &self,
        user: &UserId,
        now: UnixTime,
        max_idle_secs: u64,
        auth: WorkerAuth<'_>,
    ) -> Result<WorkerRead, StoreError> {
        // A conflict: a worker token of this user being created or revoked at this moment.
        retry_on_conflict(move || self.read_for_worker_once(user, now, max_idle_secs, auth)).await
    }
}

impl DynamoStore {
    async fn read_for_worker_once(
        &self,
        user: &UserId,
        now: UnixTime,
        max_idle_secs: u64,
        auth: WorkerAuth<'_>,
    ) -> Result<WorkerRead, TxError> {
        let cutoff = now.secs() as i128 - max_idle_secs as i128;
        let live = "attribute_exists(#saved) AND attribute_exists(#sealed.#session) \
                    AND (#saved > :cutoff OR #used > :cutoff)";
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::credentials(user).attributes()))
            .update_expression("SET #used = :now")
            .expression_attribute_names("#used", "last_used_at")
            .expression_attribute_names("#saved", "session_saved_at")
            .expression_attribute_names("#sealed", "sealed")
            .expression_attribute_names("#session", "session")
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":cutoff", n(cutoff))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        req = match auth {
            WorkerAuth::App => req.condition_expression(live),
            WorkerAuth::Token(hash) => req
                .condition_expression(format!("contains(#tokens, :token) AND {live}"))
                .expression_attribute_names("#tokens", WORKER_TOKENS)
                .expression_attribute_values(":token", s(hash.as_str())),
        };
        match req.send().await {
            // The condition held: authorized, and the session's activity recorded.
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| corrupt("update returned no item"))?;
                Ok(parse(&item).map(WorkerRead::Record)?)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    // Not authorized, or no session, or an idle-expired one: decide from the
                    // item as it is (if any).
                    let item = failed.item();
                    if let WorkerAuth::Token(hash) = auth
                        && !item.is_some_and(|item| holds_token(item, hash))
                    {
                        return Ok(WorkerRead::TokenInvalid);
                    }
                    Ok(match item {
                        Some(item) => WorkerRead::Record(parse(item)?),
                        None => WorkerRead::Record(None),
                    })
                }
                Some(UpdateItemError::TransactionConflictException(_)) => Err(TxError::Conflict),
                _ => Err(unavailable(e).into()),
            },
        }
    }
}
