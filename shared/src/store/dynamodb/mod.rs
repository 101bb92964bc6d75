//! DynamoDB adapter: one table, keys `pk`/`sk` (S), TTL attribute `expires_at` (N).
//!
//! The toolkit every entity file uses: [`item`] (attribute values in and out), [`keys`] (every
//! item's `pk`/`sk`) and [`tx`] (transactions, their failures, the retry loop, idempotency).
//! Each entity file (`links.rs`, `blocks.rs`, …) holds only its own items and logic.

mod item;
mod keys;
mod tx;

mod authorizations;
mod blocks;
mod claims;
mod connect_flow;
mod connect_tokens;
mod credentials;
mod links;
mod rate_limits;
mod registrations;
mod signing_keys;
mod signins;
mod worker_tokens;

use aws_sdk_dynamodb::{
    Client,
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    },
};

use self::{item::Item, keys::Key};
use super::StoreError;
use crate::aws_error::AwsFailure;

/// The DynamoDB store. Build once per cold start and share.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// What `read` makes of the item under `key` (one consistent read); `None` when there is
    /// no item.
    async fn get_with<T>(
        &self,
        key: Key,
        read: impl FnOnce(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self.get_consistent(key).await? {
            Some(item) => read(&item),
            None => Ok(None),
        }
    }

    /// The item under `key` (one consistent read).
    async fn get_consistent(&self, key: Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.attributes()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Creates the table (on-demand, TTL on `expires_at`) if it does not exist. For tests and
    /// local runs against an emulator; in AWS the table comes from `template.yaml`.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let key = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
                .expect("static key schema")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("static attribute definition")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(unavailable(e)),
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .expect("static TTL specification"),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Any SDK failure that is not a condition we asked for, classified
/// ([`crate::aws_error`]): transient (throttling, timeout, 5xx, no connection) → the store is
/// unavailable, retry later; permanent (validation, no such table, access denied) → failed.
fn unavailable<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match crate::aws_error::classify(&err) {
        AwsFailure::Transient(why) => StoreError::Unavailable(why),
        AwsFailure::Permanent(why) => StoreError::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::{error::ErrorMetadata, operation::get_item::GetItemError};

    use super::*;

    fn service_error(code: &str, status: u16) -> SdkError<GetItemError, HttpResponse> {
        SdkError::service_error(
            GetItemError::generic(ErrorMetadata::builder().code(code).build()),
            HttpResponse::new(status.try_into().unwrap(), "".into()),
        )
    }

    #[test]
    fn store_refusals_are_permanent_throttling_and_outages_transient() {
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "UnrecognizedClientException",
        ] {
            let err = unavailable(service_error(code, 400));
            assert!(
                matches!(&err, StoreError::Failed(why) if why.contains(code)),
                "{code}: {err:?}"
            );
        }
        for (code, status) in [
            ("ProvisionedThroughputExceededException", 400),
            ("ThrottlingException", 400),
            ("RequestLimitExceeded", 400),
            ("InternalServerError", 500),
            ("Anything", 503),
        ] {
            let err = unavailable(service_error(code, status));
            assert!(matches!(err, StoreError::Unavailable(_)), "{code}: {err:?}");
        }
    }
}
