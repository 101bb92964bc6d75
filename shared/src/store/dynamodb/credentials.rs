//! `Credentials` on DynamoDB: one item `USER#<id>` / `CREDENTIALS`.
//!
//! Sealed secrets are a map `sealed` of binary attributes plus the binary `data_key`. A
//! settings write is one `UpdateItem` that sets every field it owns and removes the absent
//! ones, conditional on `version`; a worker read is one `UpdateItem` (`SET last_used_at`)
//! returning the whole item, whose condition (session stored and live) failing still returns
//! the item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    primitives::Blob,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{DynamoStore, Item, attempt_id, get_s, n, s, unavailable};
use crate::{
    ids::{TelegramUserId, UserId},
    seal::SealedRecord,
    store::{
        StoreError,
        credentials::{Credentials, CredentialsRecord, Reauth, WriteOutcome},
    },
    time::UnixTime,
};

const SK: &str = "CREDENTIALS";

fn pk(user: &UserId) -> String {
    format!("USER#{}", user.as_str())
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

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("credentials: {what}"))
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(&format!("{name} is not a number"))),
        Some(_) => Err(corrupt(&format!("{name} is not a number"))),
    }
}

fn opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(corrupt(&format!("{name} is not a string"))),
    }
}

fn parse(item: &Item) -> Result<CredentialsRecord, StoreError> {
    let user_id = UserId::parse(get_s(item, "user_id")?).map_err(|_| corrupt("bad user_id"))?;
    let version: u64 = opt_n(item, "version")?.ok_or_else(|| corrupt("no version"))?;
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
    let reauth = match (
        opt_s(item, "reauth_reason")?,
        opt_n::<u64>(item, "reauth_at")?,
    ) {
        (Some(reason), Some(at)) => Some(Reauth {
            reason,
            at: UnixTime(at),
        }),
        _ => None,
    };
    Ok(CredentialsRecord {
        user_id,
        version,
        sealed,
        bot_username: opt_s(item, "bot_username")?,
        bot_id: opt_n(item, "bot_id")?,
        channel_id: opt_n(item, "channel_id")?,
        telegram_user_id,
        session_saved_at: opt_n::<u64>(item, "session_saved_at")?.map(UnixTime),
        last_used_at: opt_n::<u64>(item, "last_used_at")?.map(UnixTime),
        reauth,
        updated_at: UnixTime(opt_n(item, "updated_at")?.unwrap_or(0)),
    })
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
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(user)))
            .key("sk", s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(parse).transpose()
    }

    async fn write(&self, record: &CredentialsRecord) -> Result<WriteOutcome, StoreError> {
        let new_version = record.version + 1;
        let present = present(record);
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(&record.user_id)))
            .key("sk", s(SK))
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
        req = if record.version == 0 {
            req.condition_expression("attribute_not_exists(pk) OR #write_attempt = :attempt")
        } else {
            req.condition_expression("#version = :expected OR #write_attempt = :attempt")
                .expression_attribute_values(":expected", n(record.version))
        };
        match req.send().await {
            Ok(_) => Ok(WriteOutcome::Written {
                version: new_version,
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
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
    ) -> Result<Option<CredentialsRecord>, StoreError> {
        let cutoff = now.secs() as i128 - max_idle_secs as i128;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(user)))
            .key("sk", s(SK))
            .update_expression("SET #used = :now")
            .condition_expression(
                "attribute_exists(#saved) AND attribute_exists(#sealed.#session) \
                 AND (#saved > :cutoff OR #used > :cutoff)",
            )
            .expression_attribute_names("#used", "last_used_at")
            .expression_attribute_names("#saved", "session_saved_at")
            .expression_attribute_names("#sealed", "sealed")
            .expression_attribute_names("#session", "session")
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":cutoff", n(cutoff))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| corrupt("update returned no item"))?;
                parse(&item).map(Some)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    // No session, or an idle-expired one: the item as it is (if any).
                    failed.item().map(parse).transpose()
                }
                _ => Err(unavailable(e)),
            },
        }
    }
}
