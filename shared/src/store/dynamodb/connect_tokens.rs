//! Connect tokens: `CONNECT#<hash>` / `CONNECT` with user_id, created_at, expires_at (TTL),
//! attempt (the id of the insert, for SDK retries), account (the label of who minted it, if
//! any) and, once used, consumed_at (set by the connect flow's transaction, see
//! `connect_flow.rs`, or by a burn, which also sets `burned`).

use async_trait::async_trait;
use aws_sdk_dynamodb::{operation::update_item::UpdateItemError, types::AttributeValue};

use super::{
    DynamoStore,
    item::{n, s},
    keys, unavailable,
};
use crate::{
    store::{ConnectTokenRecord, ConnectTokens, StoreError},
    time::UnixTime,
    token::TokenHash,
};

#[async_trait]
impl ConnectTokens for DynamoStore {
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError> {
        let mut item = keys::connect_token(&record.hash).item([
            ("user_id", s(record.user_id.as_str())),
            ("created_at", n(record.created_at.secs())),
            ("expires_at", n(record.expires_at.secs())),
            ("attempt", s(&record.attempt)),
        ]);
        if let Some(account) = &record.account {
            item.insert("account".to_owned(), s(account));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A 256-bit collision is not going to happen; never overwrite all the same. The
            // item this very insert wrote (its attempt id), while unused, may be written again:
            // an SDK retry after a lost answer succeeds instead of failing on itself.
            .condition_expression(
                "attribute_not_exists(pk) OR (attempt = :attempt AND attribute_not_exists(consumed_at))",
            )
            .expression_attribute_values(":attempt", s(&record.attempt))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn burn(&self, hash: &TokenHash, now: UnixTime) -> Result<bool, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::connect_token(hash).attributes()))
            .update_expression("SET consumed_at = :now, burned = :burned")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(consumed_at)")
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":burned", AttributeValue::Bool(true))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
