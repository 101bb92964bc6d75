//! DynamoDB adapter: one table, keys `pk`/`sk` (S), TTL attribute `expires_at` (N).

mod blocks;
mod claims;
mod connect_flow;
mod connect_tokens;
mod credentials;
mod links;
mod miniapp_flow;
mod miniapp_sessions;
mod registrations;
mod worker_tokens;

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, SdkError},
    types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType, TimeToLiveSpecification,
    },
};

use super::StoreError;

pub type Item = HashMap<String, AttributeValue>;

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

/// Any SDK failure that is not a condition we asked for: the store is unavailable.
pub(crate) fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(&err).to_string())
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} missing or not a string"
        ))),
    }
}

/// A random id for one logical conditional write (43 characters), so the SDK's retries of it
/// are recognisable: the write sets it, and its condition also accepts an item that already
/// carries it (see `ConnectTokens::consume`).
pub(crate) fn attempt_id() -> String {
    crate::token::OneTimeToken::mint()
        .hash()
        .as_str()
        .to_owned()
}

/// A fresh `ClientRequestToken` (DynamoDB allows at most 36 characters) for one
/// `TransactWriteItems`: the SDK's retry of a transaction that did commit then succeeds
/// instead of failing its own conditions.
pub(crate) fn request_token() -> String {
    let mut id = attempt_id();
    id.truncate(36);
    id
}
