//! Claims: `CLAIM#<kind>#<key>` / `CLAIM` with `status` (`IN_PROGRESS` | `COMPLETED`),
//! `in_progress_until` and the TTL attribute `expires_at`.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::put_item::PutItemError, types::ReturnValuesOnConditionCheckFailure,
};

use super::{
    DynamoStore,
    item::{Item, attributes, get_s, get_time, n, s},
    keys,
    tx::{CondHandle, Expr, Tx, attempt_id},
    unavailable,
};
use crate::{
    store::{
        ClaimKey, ClaimLease, ClaimOnce, ClaimOutcome, ClaimRecord, ClaimStatus, ClaimTimes,
        Claims, StoreError,
    },
    time::UnixTime,
};

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// The live claim of a stored claim item with its digest and result.
pub(super) fn live_record(item: &Item, now: UnixTime) -> Result<Option<ClaimRecord>, StoreError> {
    Ok(live_status(item, now)?.map(|status| ClaimRecord {
        status,
        digest: item.get("digest").and_then(|v| v.as_s().ok()).cloned(),
        result: item.get("result").and_then(|v| v.as_s().ok()).cloned(),
    }))
}

/// The `IN_PROGRESS` claim item of `key` until `until`, kept until `expires_at`, with `digest`.
pub(super) fn in_progress_item(
    key: &ClaimKey,
    until: UnixTime,
    expires_at: UnixTime,
    attempt: &str,
    digest: &str,
) -> Item {
    keys::claim(key).item([
        ("status", s(IN_PROGRESS)),
        ("in_progress_until", n(until.secs())),
        ("expires_at", n(expires_at.secs())),
        ("attempt", s(attempt)),
        ("digest", s(digest)),
    ])
}

/// A claim may be (re)written when there is none, when it is past its retention, when its
/// attempt is past `in_progress_until`, or when it is this very write (the SDK retrying a
/// request whose response was lost). `status` is a DynamoDB reserved word.
pub(super) fn claimable(now: UnixTime, attempt: &str) -> Expr {
    Expr::new(
        "attribute_not_exists(pk) OR expires_at <= :now \
         OR (#status = :in_progress AND in_progress_until <= :now) OR attempt = :attempt",
    )
    .name("#status", "status")
    .value(":now", n(now.secs()))
    .value(":in_progress", s(IN_PROGRESS))
    .value(":attempt", s(attempt))
}

fn completed_item(key: &ClaimKey, expires_at: UnixTime, attempt: &str) -> Item {
    keys::claim(key).item([
        ("status", s(COMPLETED)),
        ("expires_at", n(expires_at.secs())),
        ("attempt", s(attempt)),
    ])
}

/// Adds to `tx` the claim `key`, `COMPLETED` until `expires_at`, if it is claimable at `now`.
pub(super) fn put_completed(
    tx: &mut Tx<'_>,
    key: &ClaimKey,
    now: UnixTime,
    expires_at: UnixTime,
) -> CondHandle {
    let attempt = attempt_id();
    tx.put(
        completed_item(key, expires_at, &attempt),
        claimable(now, &attempt),
    )
}

/// The live status of a stored claim item (`None` when it no longer counts).
pub(super) fn live_status(item: &Item, now: UnixTime) -> Result<Option<ClaimStatus>, StoreError> {
    if get_time(item, "expires_at")? <= now {
        return Ok(None);
    }
    match get_s(item, "status")? {
        COMPLETED => Ok(Some(ClaimStatus::Completed)),
        IN_PROGRESS => {
            let until = get_time(item, "in_progress_until")?;
            Ok((until > now).then_some(ClaimStatus::InProgress { until }))
        }
        _ => Err(StoreError::Corrupt("unknown claim status".into())),
    }
}

impl DynamoStore {
    /// One conditional put of `item` (which carries `attempt`); `Ok(None)` when written, else
    /// the live claim in the way.
    async fn put_claim(
        &self,
        item: Item,
        attempt: &str,
        now: UnixTime,
    ) -> Result<Option<ClaimStatus>, StoreError> {
        let (condition, names, values) = claimable(now, attempt).into_parts();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let old = e.as_service_error().and_then(|s| match s {
                    PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                    _ => None,
                });
                let status = match old {
                    Some(item) => live_status(&item, now)?,
                    None => None,
                };
                // The condition failed, so some live claim was there; if the old image is
                // missing or already dead (a race with its deletion), report it in progress so
                // the caller retries rather than skipping work.
                Ok(Some(
                    status.unwrap_or(ClaimStatus::InProgress { until: now }),
                ))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl Claims for DynamoStore {
    async fn begin(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError> {
        let until = now.plus_secs(times.in_progress_secs);
        let attempt = attempt_id();
        let item = keys::claim(key).item([
            ("status", s(IN_PROGRESS)),
            ("in_progress_until", n(until.secs())),
            ("expires_at", n(now.plus_secs(times.retain_secs).secs())),
            ("attempt", s(&attempt)),
        ]);
        Ok(match self.put_claim(item, &attempt, now).await? {
            None => ClaimOutcome::Acquired(ClaimLease {
                key: key.clone(),
                in_progress_until: until,
            }),
            Some(ClaimStatus::Completed) => ClaimOutcome::Completed,
            Some(ClaimStatus::InProgress { .. }) => ClaimOutcome::InProgress,
        })
    }

    async fn complete(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(completed_item(
                &lease.key,
                now.plus_secs(retain_secs),
                &attempt_id(),
            )))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn complete_with_result(
        &self,
        lease: &ClaimLease,
        now: UnixTime,
        retain_secs: u64,
        digest: &str,
        result: &str,
    ) -> Result<(), StoreError> {
        let mut item = completed_item(&lease.key, now.plus_secs(retain_secs), &attempt_id());
        item.insert("digest".to_owned(), s(digest));
        item.insert("result".to_owned(), s(result));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, lease: &ClaimLease) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::claim(&lease.key).attributes()))
            .condition_expression("#status = :in_progress AND in_progress_until = :until")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(attributes([
                (":in_progress", s(IN_PROGRESS)),
                (":until", n(lease.in_progress_until.secs())),
            ])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed, or taken over by a later attempt: not ours to delete.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn claim_once(
        &self,
        key: &ClaimKey,
        now: UnixTime,
        retain_secs: u64,
    ) -> Result<ClaimOnce, StoreError> {
        let attempt = attempt_id();
        let item = completed_item(key, now.plus_secs(retain_secs), &attempt);
        Ok(match self.put_claim(item, &attempt, now).await? {
            None => ClaimOnce::Claimed,
            Some(_) => ClaimOnce::AlreadyClaimed,
        })
    }

    async fn status(
        &self,
        key: &ClaimKey,
        now: UnixTime,
    ) -> Result<Option<ClaimStatus>, StoreError> {
        self.get_with(keys::claim(key), |item| live_status(item, now))
            .await
    }
}
