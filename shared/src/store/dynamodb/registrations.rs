//! `Registrations` on DynamoDB.
//!
//! - `REGISTRATION#<hash>` / `REGISTRATION`: pointer `{registration_id}`, never changes;
//! - `REGISTRATIONID#<id>` / `REGISTRATION`: every piece of state.
//!
//! Both items are created by one `TransactWriteItems`; each transition is one conditional
//! `UpdateItem` of the by-id item (with `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a
//! refusal reports the record as it is without another read). `expires_at` (the table's TTL
//! attribute) is the end of retention; the token's own expiry is `token_expires_at`. Both are
//! checked in every read and condition.
//!
//! The SDK retries a request whose response was lost. So that the retry of a write that did
//! succeed is not reported as refused, each transition records its attempt id
//! (`transition_by`) and its condition also accepts that same attempt; creation passes a
//! client request token, which makes `TransactWriteItems` idempotent.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::{transact_write_items::TransactWriteItemsError, update_item::UpdateItemError},
    primitives::Blob,
    types::{
        AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    },
};

use super::{DynamoStore, Item, attempt_id, get_s, n, s, unavailable};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        registrations::{
            Finish, NewRegistration, RegistrationId, RegistrationRecord, RegistrationStatus,
            Registrations, SealedSeed, Transition,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

const SK: &str = "REGISTRATION";

fn token_pk(hash: &TokenHash) -> String {
    format!("REGISTRATION#{}", hash.as_str())
}

fn id_pk(id: &RegistrationId) -> String {
    format!("REGISTRATIONID#{id}")
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("registrations: {what}"))
}

fn get_opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not a string"))),
    }
}

fn get_opt_time(item: &Item, name: &str) -> Result<Option<UnixTime>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse::<u64>()
            .map(|v| Some(UnixTime(v)))
            .map_err(|_| corrupt(format_args!("attribute {name} is not a timestamp"))),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not a number"))),
    }
}

fn get_time(item: &Item, name: &str) -> Result<UnixTime, StoreError> {
    get_opt_time(item, name)?.ok_or_else(|| corrupt(format_args!("attribute {name} missing")))
}

fn get_opt_b(item: &Item, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::B(v)) => Ok(Some(v.as_ref().to_vec())),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not binary"))),
    }
}

/// Whether an item read back is still within its retention.
fn live(item: &Item, now: UnixTime) -> Result<bool, StoreError> {
    Ok(get_time(item, "expires_at")? > now)
}

fn record(item: &Item) -> Result<RegistrationRecord, StoreError> {
    let sealed_seed = match (
        get_opt_b(item, "seed_key")?,
        get_opt_b(item, "seed_sealed")?,
    ) {
        (Some(wrapped_key), Some(sealed)) => Some(SealedSeed {
            wrapped_key,
            sealed,
        }),
        (None, None) => None,
        _ => return Err(corrupt("half a sealed seed")),
    };
    Ok(RegistrationRecord {
        id: RegistrationId::parse(get_s(item, "registration_id")?)
            .ok_or_else(|| corrupt("bad registration id"))?,
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(corrupt)?,
        service_name: get_s(item, "service_name")?.to_owned(),
        email: get_opt_s(item, "email")?,
        callback_url: get_opt_s(item, "callback_url")?,
        status: RegistrationStatus::parse(get_s(item, "status")?)
            .ok_or_else(|| corrupt("unknown status"))?,
        created_at: get_time(item, "created_at")?,
        token_expires_at: get_time(item, "token_expires_at")?,
        retain_until: get_time(item, "expires_at")?,
        completed_at: get_opt_time(item, "completed_at")?,
        seed_id: get_opt_s(item, "seed_id")?,
        sealed_seed,
    })
}

/// The record of an item read back, or `None` when it is past its retention.
fn live_record(item: &Item, now: UnixTime) -> Result<Option<RegistrationRecord>, StoreError> {
    if live(item, now)? {
        record(item).map(Some)
    } else {
        Ok(None)
    }
}

impl DynamoStore {
    async fn get_item(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// One conditional `UpdateItem` of the by-id item: `update` is applied when `condition`
    /// holds (or when it is a retry of this very call).
    async fn transition(
        &self,
        id: &RegistrationId,
        update: String,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        now: UnixTime,
    ) -> Result<Transition, StoreError> {
        let update = format!("{update}, transition_by = :attempt");
        let condition =
            format!("attribute_exists(pk) AND (({condition}) OR transition_by = :attempt)");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(id_pk(id)))
            .key("sk", s(SK))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":attempt", s(attempt_id()))
            .expression_attribute_values(":pending", s(RegistrationStatus::Pending.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| corrupt("update returned no item"))?;
                Ok(Transition::Done(record(&item)?))
            }
            Err(e) => match e.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(refused) => {
                    let current = match refused.item() {
                        Some(item) => live_record(item, now)?,
                        None => None,
                    };
                    Ok(Transition::Refused(current))
                }
                other => Err(StoreError::Unavailable(
                    aws_sdk_dynamodb::error::DisplayErrorContext(&other).to_string(),
                )),
            },
        }
    }
}

#[async_trait]
impl Registrations for DynamoStore {
    async fn create(&self, r: &NewRegistration) -> Result<(), StoreError> {
        let retain_until = n(r.retain_until().secs());
        let pointer = Put::builder()
            .table_name(&self.table)
            .item("pk", s(token_pk(&r.token_hash)))
            .item("sk", s(SK))
            .item("registration_id", s(r.id.as_str()))
            .item("expires_at", retain_until.clone())
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(corrupt)?;
        let mut state = Put::builder()
            .table_name(&self.table)
            .item("pk", s(id_pk(&r.id)))
            .item("sk", s(SK))
            .item("registration_id", s(r.id.as_str()))
            .item("user_id", s(r.user_id.as_str()))
            .item("service_name", s(&r.service_name))
            .item("status", s(RegistrationStatus::Pending.as_str()))
            .item("created_at", n(r.created_at.secs()))
            .item("token_expires_at", n(r.token_expires_at.secs()))
            .item("expires_at", retain_until)
            .condition_expression("attribute_not_exists(pk)");
        if let Some(email) = &r.email {
            state = state.item("email", s(email));
        }
        if let Some(url) = &r.callback_url {
            state = state.item("callback_url", s(url));
        }
        let state = state.build().map_err(corrupt)?;
        let result = self
            .client
            .transact_write_items()
            // At most 36 characters; the same token makes a retried commit succeed again.
            .client_request_token(&attempt_id()[..36])
            .transact_items(TransactWriteItem::builder().put(pointer).build())
            .transact_items(TransactWriteItem::builder().put(state).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let collided = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if t.cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if collided {
                    Err(corrupt("registration id or token hash already exists"))
                } else {
                    Err(unavailable(e))
                }
            }
        }
    }

    async fn get(
        &self,
        id: &RegistrationId,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        match self.get_item(id_pk(id)).await? {
            Some(item) => live_record(&item, now),
            None => Ok(None),
        }
    }

    async fn find_by_token(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let Some(pointer) = self.get_item(token_pk(hash)).await? else {
            return Ok(None);
        };
        if !live(&pointer, now)? {
            return Ok(None);
        }
        let id = RegistrationId::parse(get_s(&pointer, "registration_id")?)
            .ok_or_else(|| corrupt("bad registration id in pointer"))?;
        self.get(&id, now).await
    }

    async fn finish(
        &self,
        id: &RegistrationId,
        finish: &Finish,
        now: UnixTime,
    ) -> Result<Transition, StoreError> {
        let status = RegistrationStatus::from(finish.status);
        let mut update = "SET #status = :status, completed_at = :now".to_owned();
        let mut values = vec![(":status", s(status.as_str()))];
        if let Some(seed_id) = &finish.seed_id {
            update.push_str(", seed_id = :seed_id");
            values.push((":seed_id", s(seed_id)));
        }
        if let Some(seed) = &finish.sealed_seed {
            update.push_str(", seed_key = :seed_key, seed_sealed = :seed_sealed");
            values.push((
                ":seed_key",
                AttributeValue::B(Blob::new(seed.wrapped_key.clone())),
            ));
            values.push((
                ":seed_sealed",
                AttributeValue::B(Blob::new(seed.sealed.clone())),
            ));
        }
        self.transition(
            id,
            update,
            "#status = :pending AND token_expires_at > :now AND expires_at > :now",
            values,
            now,
        )
        .await
    }

    async fn expire(&self, id: &RegistrationId, now: UnixTime) -> Result<Transition, StoreError> {
        self.transition(
            id,
            "SET #status = :expired".to_owned(),
            "#status = :pending AND token_expires_at <= :now AND expires_at > :now",
            vec![(":expired", s(RegistrationStatus::Expired.as_str()))],
            now,
        )
        .await
    }
}
