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
    item::{Item, corrupt, get_s, get_time, n, opt_b, opt_n, opt_s, opt_time, s},
    keys,
    tx::{Expr, Tx, TxError, absent, attempt_id, retry_on_conflict},
    unavailable,
};
use crate::{
    ids::UserId,
    store::{
        StoreError,
        registrations::{
            COMPLETED_RETENTION_SECS, FinalStatus, Finish, NewRegistration, RegistrationId,
            RegistrationRecord, RegistrationStatus, Registrations, SealedSeed, TotpAccept,
            TotpFailures, TotpLockout, TotpSeed, TotpTarget, Transition,
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

/// The failures recorded on a user's `TOTP#` item.
fn failures(item: Option<&Item>) -> Result<TotpFailures, StoreError> {
    let Some(item) = item else {
        return Ok(TotpFailures::default());
    };
    Ok(TotpFailures {
        count: opt_n(item, "failures")?.unwrap_or(0),
        since: opt_time(item, "failures_since")?,
    })
}

fn blob(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.to_vec()))
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

impl DynamoStore {
    /// pending → completed with a TOTP seed: one `TransactWriteItems` that updates the by-id
    /// item (kept for [`COMPLETED_RETENTION_SECS`]) and makes it the owner's current seed on
    /// `TOTP#<owner>`, then a consistent read of the record as it is.
    async fn complete_with_seed(
        &self,
        id: &RegistrationId,
        finish: &Finish,
        seed: &SealedSeed,
        now: UnixTime,
    ) -> Result<Transition, StoreError> {
        let attempt = attempt_id();
        let refused = retry_on_conflict(|| async {
            let mut set = "SET #status = :status, completed_at = :now, seed_key = :seed_key, \
                seed_sealed = :seed_sealed, expires_at = :keep, transition_by = :attempt"
                .to_owned();
            if finish.seed_id.is_some() {
                set.push_str(", seed_id = :seed_id");
            }
            let mut update = Expr::new(set)
                .name("#status", "status")
                .value(":status", s(RegistrationStatus::Completed.as_str()))
                .value(":now", n(now.secs()))
                .value(":seed_key", blob(&seed.wrapped_key))
                .value(":seed_sealed", blob(&seed.sealed))
                .value(":keep", n(now.plus_secs(COMPLETED_RETENTION_SECS).secs()))
                .value(":attempt", s(&attempt));
            if let Some(seed_id) = &finish.seed_id {
                update = update.value(":seed_id", s(seed_id));
            }
            let condition = Expr::new(
                "attribute_exists(pk) AND user_id = :owner AND ((#status = :pending \
                 AND token_expires_at > :now AND expires_at > :now) OR transition_by = :attempt)",
            )
            .value(":owner", s(finish.owner.as_str()))
            .value(":pending", s(RegistrationStatus::Pending.as_str()));
            let current = Expr::new(
                "SET user_id = :owner, registration_id = :id, seed_key = :seed_key, \
                 seed_sealed = :seed_sealed, completed_at = :now",
            )
            .value(":owner", s(finish.owner.as_str()))
            .value(":id", s(id.as_str()))
            .value(":seed_key", blob(&seed.wrapped_key))
            .value(":seed_sealed", blob(&seed.sealed))
            .value(":now", n(now.secs()));
            let mut tx = Tx::new(self);
            tx.update(keys::registration_by_id(id), update, Some(condition));
            tx.update(keys::totp(&finish.owner), current, None);
            match tx.run().await {
                Ok(()) => Ok(false),
                Err(TxError::Failed(_)) => Ok(true),
                Err(e) => Err(e),
            }
        })
        .await?;
        let record = self
            .get_with(keys::registration_by_id(id), |item| live_record(item, now))
            .await?;
        match (refused, record) {
            (false, Some(record)) => Ok(Transition::Done(record)),
            (false, None) => Err(corrupt("a completed registration cannot be read back")),
            (true, record) => Ok(Transition::Refused(record)),
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
        if let (FinalStatus::Completed, Some(seed)) = (finish.status, &finish.sealed_seed) {
            return self.complete_with_seed(id, finish, seed, now).await;
        }
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

    async fn totp_target(
        &self,
        user: &UserId,
        id: Option<&RegistrationId>,
        now: UnixTime,
    ) -> Result<TotpTarget, StoreError> {
        let Some(id) = id else {
            let item = self.get_consistent(keys::totp(user)).await?;
            let seed = match &item {
                Some(item) => match (
                    opt_s(item, "registration_id")?,
                    opt_b(item, "seed_key")?,
                    opt_b(item, "seed_sealed")?,
                ) {
                    (Some(id), Some(key), Some(sealed)) => Some(TotpSeed {
                        id: RegistrationId::parse(id)
                            .ok_or_else(|| corrupt("bad registration id in TOTP state"))?,
                        sealed_seed: SealedSeed {
                            wrapped_key: key.to_vec(),
                            sealed: sealed.to_vec(),
                        },
                    }),
                    _ => None,
                },
                None => None,
            };
            return Ok(TotpTarget {
                seed,
                failures: failures(item.as_ref())?,
            });
        };
        let [state, registration] = self
            .read_together([keys::totp(user), keys::registration_by_id(id)])
            .await?;
        let seed = match &registration {
            Some(item) => live_record(item, now)?.and_then(|r| {
                let usable = r.user_id == *user && r.status == RegistrationStatus::Completed;
                match (usable, r.sealed_seed) {
                    (true, Some(sealed_seed)) => Some(TotpSeed {
                        id: r.id,
                        sealed_seed,
                    }),
                    _ => None,
                }
            }),
            None => None,
        };
        Ok(TotpTarget {
            seed,
            failures: failures(state.as_ref())?,
        })
    }

    async fn totp_accept(
        &self,
        user: &UserId,
        id: &RegistrationId,
        step: u64,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpAccept, StoreError> {
        let cutoff = now.secs().saturating_sub(lockout.window_secs);
        retry_on_conflict(|| async {
            let mut tx = Tx::new(self);
            let registration = tx.update(
                keys::registration_by_id(id),
                Expr::new("SET last_step = :step").value(":step", n(step)),
                Some(
                    Expr::new(
                        "attribute_exists(pk) AND user_id = :user AND #status = :completed \
                         AND expires_at > :now \
                         AND (attribute_not_exists(last_step) OR last_step < :step)",
                    )
                    .name("#status", "status")
                    .value(":user", s(user.as_str()))
                    .value(":completed", s(RegistrationStatus::Completed.as_str()))
                    .value(":now", n(now.secs())),
                ),
            );
            let state = tx.update(
                keys::totp(user),
                Expr::new("REMOVE failures, failures_since"),
                Some(
                    Expr::new(
                        "attribute_not_exists(failures) OR failures < :max \
                         OR failures_since <= :cutoff",
                    )
                    .value(":max", n(lockout.max_failures))
                    .value(":cutoff", n(cutoff)),
                ),
            );
            match tx.run().await {
                Ok(()) => Ok(TotpAccept::Accepted),
                Err(TxError::Failed(f)) if f.failed(state) => Ok(TotpAccept::Locked),
                Err(TxError::Failed(f)) if f.failed(registration) => Ok(TotpAccept::StepUsed),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn totp_fail(
        &self,
        user: &UserId,
        seen: TotpFailures,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpFailures, StoreError> {
        let cutoff = now.secs().saturating_sub(lockout.window_secs);
        let mut seen = seen.current(lockout, now);
        // One write as a rule; another only when a concurrent failure moved the window.
        for _ in 0..3 {
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(keys::totp(user).attributes()))
                .expression_attribute_values(":cutoff", n(cutoff))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let request = if seen.since.is_some() {
                request
                    .update_expression("ADD failures :one")
                    .condition_expression("failures_since > :cutoff")
            } else {
                request
                    .update_expression(
                        "SET failures = :one, failures_since = :now, user_id = :user",
                    )
                    .condition_expression(
                        "attribute_not_exists(failures_since) OR failures_since <= :cutoff",
                    )
                    .expression_attribute_values(":now", n(now.secs()))
                    .expression_attribute_values(":user", s(user.as_str()))
            };
            match request.send().await {
                Ok(out) => return failures(out.attributes.as_ref()),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                        seen = failures(refused.item())?.current(lockout, now);
                    }
                    _ => return Err(unavailable(e)),
                },
            }
        }
        Err(StoreError::Unavailable(
            "the failure count kept changing under concurrent writers".into(),
        ))
    }
}
