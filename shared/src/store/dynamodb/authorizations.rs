//! The OpenID provider's one-time state (port `Authorizations`):
//! `AUTHREQ#<state hash>` / `AUTHREQ` and `AUTHCODE#<code hash>` / `AUTHCODE`, each with
//! `data` (the record's JSON), `valid_until` (the end of its use) and `expires_at` (TTL: a
//! code is kept [`CODE_RETAIN_SECS`] longer, so a late replay still finds — and ends — the
//! session its first redemption started). Taking a request SETs `taken_by` (the attempt id);
//! redeeming a code SETs `used_sid`; each under "exists, still valid, not taken / used by
//! another", so one caller wins on any number of instances and an SDK retry of the winner's
//! call is recognised.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::{put_item::PutItemError, update_item::UpdateItemError},
    types::{ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    DynamoStore,
    item::{Item, get_s, n, opt_s, s},
    keys::{self, Key},
    unavailable,
};
use crate::{
    store::{
        StoreError,
        authorizations::{
            Authorizations, IssuedCode, PendingAuthorization, RedeemOutcome, decode, encode,
        },
        signins::SessionId,
    },
    time::UnixTime,
    token::TokenHash,
};

/// How long a code's item outlives its validity (replay detection after expiry).
pub const CODE_RETAIN_SECS: u64 = 600;

impl DynamoStore {
    async fn put_new(
        &self,
        key: Key,
        data: String,
        valid_until: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let item = key.item([
            ("data", s(data)),
            ("valid_until", n(valid_until.secs())),
            ("expires_at", n(expires_at.secs())),
        ]);
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // The key is the hash of 256 random bits: an existing item is this very write,
            // landed before an SDK retry.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// SET `name = :mark` if the item exists, is valid at `now` and is unmarked or marked
    /// `mark`. `Ok(Ok(new))` or `Ok(Err(old))` (the old item when the condition failed).
    async fn mark_once(
        &self,
        key: Key,
        name: &str,
        mark: &str,
        now: UnixTime,
    ) -> Result<Result<Item, Option<Item>>, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.attributes()))
            .update_expression("SET #m = :mark")
            .condition_expression(
                "attribute_exists(pk) AND valid_until > :now AND (attribute_not_exists(#m) OR #m = :mark)",
            )
            .expression_attribute_names("#m", name)
            .expression_attribute_values(":mark", s(mark))
            .expression_attribute_values(":now", n(now.secs()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Ok(out.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(Err(refused.item().cloned()))
                }
                _ => Err(unavailable(e)),
            },
        }
    }
}

#[async_trait]
impl Authorizations for DynamoStore {
    async fn put_request(
        &self,
        state: &TokenHash,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        self.put_new(
            keys::auth_request(state),
            encode(request)?,
            request.expires_at,
            request.expires_at,
        )
        .await
    }

    async fn take_request(
        &self,
        state: &TokenHash,
        attempt: &str,
        now: UnixTime,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        match self
            .mark_once(keys::auth_request(state), "taken_by", attempt, now)
            .await?
        {
            Ok(item) => Ok(Some(decode(get_s(&item, "data")?)?)),
            Err(_) => Ok(None),
        }
    }

    async fn put_code(&self, code: &TokenHash, record: &IssuedCode) -> Result<(), StoreError> {
        self.put_new(
            keys::auth_code(code),
            encode(record)?,
            record.expires_at,
            record.expires_at.plus_secs(CODE_RETAIN_SECS),
        )
        .await
    }

    async fn redeem_code(
        &self,
        code: &TokenHash,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<RedeemOutcome, StoreError> {
        match self
            .mark_once(keys::auth_code(code), "used_sid", &sid.to_string(), now)
            .await?
        {
            Ok(item) => Ok(RedeemOutcome::Redeemed(Box::new(decode(get_s(
                &item, "data",
            )?)?))),
            Err(Some(old)) => match opt_s(&old, "used_sid")?.and_then(SessionId::parse) {
                Some(first) => {
                    let record: IssuedCode = decode(get_s(&old, "data")?)?;
                    Ok(RedeemOutcome::Replayed {
                        telegram_user_id: record.telegram_user_id,
                        sid: first,
                    })
                }
                None => Ok(RedeemOutcome::Unknown),
            },
            Err(None) => Ok(RedeemOutcome::Unknown),
        }
    }
}
