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
    operation::update_item::UpdateItemError,
    primitives::Blob,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    DynamoStore,
    item::{Item, corrupt, get_s, get_time, n, opt_b, opt_s, opt_time, s},
    keys,
    tx::{Tx, TxError, absent, attempt_id},
    unavailable,
};
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

/// Whether an item read back is still within its retention.
fn live(item: &Item, now: UnixTime) -> Result<bool, StoreError> {
    Ok(get_time(item, "expires_at")? > now)
}

fn record(item: &Item) -> Result<RegistrationRecord, StoreError> {
    let sealed_seed = match (opt_b(item, "seed_key")?, opt_b(item, "seed_sealed")?) {
        (Some(wrapped_key), Some(sealed)) => Some(SealedSeed {
            wrapped_key: wrapped_key.to_vec(),
            sealed: sealed.to_vec(),
        }),
        (None, None) => None,
        _ => return Err(corrupt("half a sealed seed")),
    };
    Ok(RegistrationRecord {
        id: RegistrationId::parse(get_s(item, "registration_id")?)
            .ok_or_else(|| corrupt("bad registration id"))?,
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(corrupt)?,
        service_name: get_s(item, "service_name")?.to_owned(),
        email: opt_s(item, "email")?.map(str::to_owned),
        callback_url: opt_s(item, "callback_url")?.map(str::to_owned),
        status: RegistrationStatus::parse(get_s(item, "status")?)
            .ok_or_else(|| corrupt("unknown status"))?,
        created_at: get_time(item, "created_at")?,
        token_expires_at: get_time(item, "token_expires_at")?,
        retain_until: get_time(item, "expires_at")?,
        completed_at: opt_time(item, "completed_at")?,
        seed_id: opt_s(item, "seed_id")?.map(str::to_owned),
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
            .set_key(Some(keys::registration_by_id(id).attributes()))
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
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    let current = match refused.item() {
                        Some(item) => live_record(item, now)?,
                        None => None,
                    };
                    Ok(Transition::Refused(current))
                }
                _ => Err(unavailable(e)),
            },
        }
    }
}

#[async_trait]
impl Registrations for DynamoStore {
    async fn create(&self, r: &NewRegistration) -> Result<(), StoreError> {
        let retain_until = n(r.retain_until().secs());
        let pointer = keys::registration_by_token(&r.token_hash).item([
            ("registration_id", s(r.id.as_str())),
            ("expires_at", retain_until.clone()),
        ]);
        let mut state = keys::registration_by_id(&r.id).item([
            ("registration_id", s(r.id.as_str())),
            ("user_id", s(r.user_id.as_str())),
            ("service_name", s(&r.service_name)),
            ("status", s(RegistrationStatus::Pending.as_str())),
            ("created_at", n(r.created_at.secs())),
            ("token_expires_at", n(r.token_expires_at.secs())),
            ("expires_at", retain_until),
        ]);
        if let Some(email) = &r.email {
            state.insert("email".to_owned(), s(email));
        }
        if let Some(url) = &r.callback_url {
            state.insert("callback_url".to_owned(), s(url));
        }
        let mut tx = Tx::new(self);
        tx.put(pointer, absent());
        tx.put(state, absent());
        match tx.run().await {
            Ok(()) => Ok(()),
            Err(TxError::Failed(_)) => Err(corrupt("registration id or token hash already exists")),
            Err(TxError::Conflict) => Err(StoreError::Unavailable(
                "registration creation conflicted with a concurrent transaction".into(),
            )),
            Err(TxError::Store(err)) => Err(err),
        }
    }

    async fn get(
        &self,
        id: &RegistrationId,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        self.get_with(keys::registration_by_id(id), |item| live_record(item, now))
            .await
    }

    async fn find_by_token(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let Some(pointer) = self
            .get_consistent(keys::registration_by_token(hash))
            .await?
        else {
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
