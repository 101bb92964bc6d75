//! `SigningKeys` on DynamoDB: one partition `SIGNKEY#set` holding the pointer
//! (`CURRENT`: `{kid}`) and every key (`KEY#<kid>`: `x`, `y`, `wrapped_key`, `private_key`,
//! `created_at`, `retired_at`). The set is read with one consistent `Query`; a new current key
//! is one `TransactWriteItems` (put the key if absent; put the pointer if absent, or move it if
//! it still names the expected key; mark the expected key retired).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::{primitives::Blob, types::AttributeValue};

use super::{
    DynamoStore,
    item::{Item, corrupt, get_s, get_time, n, opt_b, opt_time, s},
    keys,
    tx::{Expr, Tx, TxError, absent},
    unavailable,
};
use crate::{
    seal::SealedRecord,
    store::{
        StoreError,
        signing_keys::{
            AddOutcome, PRIVATE_KEY_ATTRIBUTE, SigningKeyRecord, SigningKeySet, SigningKeys,
        },
    },
    time::UnixTime,
};

fn key_record(item: &Item) -> Result<SigningKeyRecord, StoreError> {
    let blob = |name: &str| {
        opt_b(item, name)?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| corrupt(format_args!("attribute {name} missing")))
    };
    Ok(SigningKeyRecord {
        kid: get_s(item, "kid")?.to_owned(),
        x: get_s(item, "x")?.to_owned(),
        y: get_s(item, "y")?.to_owned(),
        sealed: SealedRecord {
            wrapped_key: blob("wrapped_key")?,
            attributes: BTreeMap::from([(
                PRIVATE_KEY_ATTRIBUTE.to_owned(),
                blob(PRIVATE_KEY_ATTRIBUTE)?,
            )]),
        },
        created_at: get_time(item, "created_at")?,
        retired_at: opt_time(item, "retired_at")?,
    })
}

impl DynamoStore {
    async fn add_current_once(
        &self,
        key: &SigningKeyRecord,
        expected: Option<&str>,
        now: UnixTime,
    ) -> Result<AddOutcome, TxError> {
        let private = key
            .sealed
            .attributes
            .get(PRIVATE_KEY_ATTRIBUTE)
            .ok_or_else(|| corrupt("no sealed private key"))?;
        let mut tx = Tx::new(self);
        tx.put(
            keys::signing_key(&key.kid).item([
                ("kid", s(&key.kid)),
                ("x", s(&key.x)),
                ("y", s(&key.y)),
                (
                    "wrapped_key",
                    AttributeValue::B(Blob::new(key.sealed.wrapped_key.clone())),
                ),
                (
                    PRIVATE_KEY_ATTRIBUTE,
                    AttributeValue::B(Blob::new(private.clone())),
                ),
                ("created_at", n(key.created_at.secs())),
            ]),
            absent(),
        );
        match expected {
            None => {
                tx.put(
                    keys::signing_key_current().item([("kid", s(&key.kid))]),
                    absent(),
                );
            }
            Some(old) => {
                tx.update(
                    keys::signing_key_current(),
                    Expr::new("SET kid = :new").value(":new", s(&key.kid)),
                    Some(Expr::new("kid = :old").value(":old", s(old))),
                );
                tx.update(
                    keys::signing_key(old),
                    Expr::new("SET retired_at = :now").value(":now", n(now.secs())),
                    Some(Expr::new(
                        "attribute_exists(pk) AND attribute_not_exists(retired_at)",
                    )),
                );
            }
        }
        match tx.run().await {
            Ok(()) => Ok(AddOutcome::Added),
            Err(TxError::Failed(_)) => Ok(AddOutcome::Superseded),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl SigningKeys for DynamoStore {
    async fn key_set(&self) -> Result<SigningKeySet, StoreError> {
        let mut set = SigningKeySet::default();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::SIGNING_KEYS_PK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                let sk = get_s(item, "sk")?;
                if sk == "CURRENT" {
                    set.current = Some(get_s(item, "kid")?.to_owned());
                } else if sk.starts_with("KEY#") {
                    set.keys.push(key_record(item)?);
                }
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        set.keys
            .sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        Ok(set)
    }

    async fn add_current(
        &self,
        key: &SigningKeyRecord,
        expected: Option<&str>,
        now: UnixTime,
    ) -> Result<AddOutcome, StoreError> {
        if expected == Some(key.kid.as_str()) {
            // Already stored (and one transaction may not name one item twice).
            return Ok(AddOutcome::Superseded);
        }
        match self.add_current_once(key, expected, now).await {
            Ok(outcome) => Ok(outcome),
            Err(TxError::Store(e)) => Err(e),
            // A conflict with a concurrent transaction on the pointer: someone else is adding
            // a key; read again.
            Err(TxError::Conflict | TxError::Failed(_)) => Ok(AddOutcome::Superseded),
        }
    }
}
