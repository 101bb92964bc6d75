use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{DynamoStore, attempt_id, get_s, n, s, unavailable};
use crate::{
    ids::UserId,
    store::{ConnectTokenRecord, ConnectTokens, StoreError},
    time::UnixTime,
    token::TokenHash,
};

fn pk(hash: &TokenHash) -> String {
    format!("CONNECT#{}", hash.as_str())
}

const SK: &str = "CONNECT";

#[async_trait]
impl ConnectTokens for DynamoStore {
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk(&record.hash)))
            .item("sk", s(SK))
            .item("user_id", s(record.user_id.as_str()))
            .item("created_at", n(record.created_at.secs()))
            .item("expires_at", n(record.expires_at.secs()))
            // A 256-bit collision is not going to happen; never overwrite all the same.
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn consume(&self, hash: &TokenHash, now: UnixTime) -> Result<Option<UserId>, StoreError> {
        // The SDK retries a request whose response was lost; without an attempt id the retry of
        // a write that did succeed would fail its own condition and the real winner would be
        // told "already consumed". With it, the retry matches `consumed_by` and succeeds again.
        let attempt = attempt_id();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(hash)))
            .key("sk", s(SK))
            .update_expression("SET consumed_at = :now, consumed_by = :attempt")
            .condition_expression(
                "attribute_exists(pk) AND ((attribute_not_exists(consumed_at) AND expires_at > :now) \
                 OR consumed_by = :attempt)",
            )
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":attempt", s(attempt))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or_else(|| StoreError::Corrupt("update returned no item".into()))?;
                let user = get_s(&item, "user_id")?;
                UserId::parse(user)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
