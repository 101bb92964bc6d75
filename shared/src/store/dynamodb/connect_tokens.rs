//! Connect tokens: `CONNECT#<hash>` / `CONNECT` with user_id, created_at, expires_at (TTL),
//! attempt (the id of the insert, for SDK retries) and,
//! once used, consumed_at (set by the connect flow's transaction, see `connect_flow.rs`).

use async_trait::async_trait;

use super::{
    DynamoStore,
    item::{n, s},
    keys, unavailable,
};
use crate::store::{ConnectTokenRecord, ConnectTokens, StoreError};

#[async_trait]
impl ConnectTokens for DynamoStore {
    async fn insert(&self, record: &ConnectTokenRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(keys::connect_token(&record.hash).item([
                ("user_id", s(record.user_id.as_str())),
                ("created_at", n(record.created_at.secs())),
                ("expires_at", n(record.expires_at.secs())),
                ("attempt", s(&record.attempt)),
            ])))
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
}
