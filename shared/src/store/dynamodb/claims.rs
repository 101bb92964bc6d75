//! Claims: `CLAIM#<kind>#<key>` / `CLAIM` with `status` (`IN_PROGRESS` | `COMPLETED`),
//! `in_progress_until` and the TTL attribute `expires_at`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{
    DynamoStore, Item, attempt_id, get_s,
    links::{get_u64, values},
    n, s, unavailable,
};
use crate::{
    store::{
        ClaimKey, ClaimLease, ClaimOnce, ClaimOutcome, ClaimStatus, ClaimTimes, Claims, StoreError,
    },
    time::UnixTime,
};

pub(super) const SK: &str = "CLAIM";
pub(super) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(super) const COMPLETED: &str = "COMPLETED";

/// A claim may be (re)written when there is none, when it is past its retention, when its
/// attempt is past `in_progress_until`, or when it is this very write (the SDK retrying a
/// request whose response was lost). Needs `:now`, `:in_progress`, `:attempt` and `#status`.
pub(super) const CLAIMABLE: &str = "attribute_not_exists(pk) OR expires_at <= :now \
     OR (#status = :in_progress AND in_progress_until <= :now) OR attempt = :attempt";

pub(super) fn pk(key: &ClaimKey) -> String {
    format!("CLAIM#{}", key.as_str())
}

/// `status` is a DynamoDB reserved word.
pub(super) fn status_name() -> HashMap<String, String> {
    HashMap::from([("#status".to_owned(), "status".to_owned())])
}

pub(super) fn claimable_values(now: UnixTime, attempt: &str) -> HashMap<String, AttributeValue> {
    values([
        (":now", n(now.secs())),
        (":in_progress", s(IN_PROGRESS)),
        (":attempt", s(attempt)),
    ])
}

pub(super) fn completed_item(key: &ClaimKey, expires_at: UnixTime, attempt: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(pk(key))),
        ("sk".to_owned(), s(SK)),
        ("status".to_owned(), s(COMPLETED)),
        ("expires_at".to_owned(), n(expires_at.secs())),
        ("attempt".to_owned(), s(attempt)),
    ])
}

/// The live status of a stored claim item (`None` when it no longer counts).
pub(super) fn live_status(item: &Item, now: UnixTime) -> Result<Option<ClaimStatus>, StoreError> {
    if get_u64(item, "expires_at")? <= now.secs() {
        return Ok(None);
    }
    match get_s(item, "status")? {
        COMPLETED => Ok(Some(ClaimStatus::Completed)),
        IN_PROGRESS => {
            let until = UnixTime(get_u64(item, "in_progress_until")?);
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
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIMABLE)
            .set_expression_attribute_names(Some(status_name()))
            .set_expression_attribute_values(Some(claimable_values(now, attempt)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let old = e
                    .as_service_error()
                    .and_then(|s| match s {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item().cloned()
                        }
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
        let item = HashMap::from([
            ("pk".to_owned(), s(pk(key))),
            ("sk".to_owned(), s(SK)),
            ("status".to_owned(), s(IN_PROGRESS)),
            ("in_progress_until".to_owned(), n(until.secs())),
            (
                "expires_at".to_owned(),
                n(now.plus_secs(times.retain_secs).secs()),
            ),
            ("attempt".to_owned(), s(&attempt)),
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

    async fn release(&self, lease: &ClaimLease) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk(&lease.key)))
            .key("sk", s(SK))
            .condition_expression("#status = :in_progress AND in_progress_until = :until")
            .set_expression_attribute_names(Some(status_name()))
            .set_expression_attribute_values(Some(values([
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
        match self.get_consistent(pk(key), SK).await? {
            Some(item) => live_status(&item, now),
            None => Ok(None),
        }
    }
}
