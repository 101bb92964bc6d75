//! Transactions: the one way this adapter reads or writes several items at once.
//!
//! A write is built with [`Tx`], whose every item returns a [`CondHandle`] naming its
//! condition, and sent with [`Tx::run`]: one `TransactWriteItems` with a fresh
//! `ClientRequestToken`, so the SDK's retry of a transaction that did commit succeeds instead of
//! failing its own conditions. A cancellation comes back as a [`TxError`]: which conditions
//! failed ([`FailedConditions::failed`] with a handle), or a conflict with a concurrent
//! transaction. [`retry_on_conflict`] runs an attempt (fresh reads, then a `Tx`) again after
//! either, with a jittered backoff. [`DynamoStore::read_together`] is the read side
//! (`TransactGetItems`).
//!
//! Single-item conditional writes are made idempotent the other way: the write records an
//! [`attempt_id`] and its condition also accepts an item that already carries it.

use std::{collections::HashMap, future::Future, time::Duration};

use aws_sdk_dynamodb::{
    config::http::HttpResponse,
    error::{BuildError, SdkError},
    operation::transact_write_items::TransactWriteItemsError,
    types::{
        AttributeValue, ConditionCheck, Delete, Get, Put, TransactGetItem, TransactWriteItem,
        Update,
    },
};

use super::{
    DynamoStore,
    item::{Item, corrupt},
    keys::Key,
    unavailable,
};
use crate::store::StoreError;

/// Attempts of an operation whose transaction was cancelled by a concurrent transaction, or
/// whose state changed between its read and its write.
const MAX_ATTEMPTS: u32 = 5;

/// A random id for one logical conditional write (43 characters), so the SDK's retries of it
/// are recognisable: the write sets it, and its condition also accepts an item that already
/// carries it.
pub(super) fn attempt_id() -> String {
    crate::token::OneTimeToken::mint()
        .hash()
        .as_str()
        .to_owned()
}

/// A fresh `ClientRequestToken` (DynamoDB allows at most 36 characters) for one
/// `TransactWriteItems`.
fn request_token() -> String {
    let mut id = attempt_id();
    id.truncate(36);
    id
}

/// A condition or update expression with the attribute names (`#x`) and values (`:x`) it uses.
#[derive(Debug, Clone, Default)]
pub(super) struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// The same names and values with another text (for expressions built piece by piece).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// The expression, with `condition`'s names and values added (an update and its condition
    /// share them), and `condition`'s text.
    fn with_condition(mut self, condition: Option<Expr>) -> (Self, Option<String>) {
        let Some(condition) = condition else {
            return (self, None);
        };
        self.names.extend(condition.names);
        self.values.extend(condition.values);
        (self, Some(condition.text))
    }

    /// Text, names and values as a request takes them (an empty map is left out); also for
    /// single-item requests.
    pub fn into_parts(self) -> (String, Option<HashMap<String, String>>, Option<Item>) {
        (
            self.text,
            (!self.names.is_empty()).then_some(self.names),
            (!self.values.is_empty()).then_some(self.values),
        )
    }
}

/// The condition "no item under this key".
pub(super) fn absent() -> Expr {
    Expr::new("attribute_not_exists(pk)")
}

/// A `Put`, `Delete` or `ConditionCheck` of the transaction's table: its target (the item, or
/// the key) set by `$set`, and `$condition` with its names and values.
macro_rules! conditional {
    ($kind:ident, $tx:expr, $set:ident($target:expr), $condition:expr) => {{
        let (condition, names, values) = $condition.into_parts();
        $kind::builder()
            .table_name($tx.store.table())
            .$set(Some($target))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
    }};
}

/// One item's condition in a [`Tx`], to ask a [`FailedConditions`] about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CondHandle(usize);

/// A `TransactWriteItems` being built. Each item is added with its condition and returns the
/// handle of that condition.
#[must_use = "a transaction does nothing until it is run"]
pub(super) struct Tx<'a> {
    store: &'a DynamoStore,
    items: Vec<TransactWriteItem>,
    /// The first request the SDK's builders refused (a bug here, reported by `run`).
    invalid: Option<BuildError>,
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a DynamoStore) -> Self {
        Self {
            store,
            items: Vec::new(),
            invalid: None,
        }
    }

    fn push(&mut self, item: Result<TransactWriteItem, BuildError>) -> CondHandle {
        let handle = CondHandle(self.items.len());
        match item {
            Ok(item) => self.items.push(item),
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        handle
    }

    /// Puts `item` if `condition` holds.
    pub fn put(&mut self, item: Item, condition: Expr) -> CondHandle {
        let put = conditional!(Put, self, set_item(item), condition);
        self.push(put.map(|put| TransactWriteItem::builder().put(put).build()))
    }

    /// Deletes the item under `key` if `condition` holds.
    pub fn delete(&mut self, key: Key, condition: Expr) -> CondHandle {
        let delete = conditional!(Delete, self, set_key(key.attributes()), condition);
        self.push(delete.map(|delete| TransactWriteItem::builder().delete(delete).build()))
    }

    /// Writes nothing: the transaction only commits if the item under `key` meets `condition`.
    pub fn check(&mut self, key: Key, condition: Expr) -> CondHandle {
        let check = conditional!(ConditionCheck, self, set_key(key.attributes()), condition);
        self.push(check.map(|check| TransactWriteItem::builder().condition_check(check).build()))
    }

    /// Applies `update` to the item under `key` (creating it if absent), if `condition` holds.
    pub fn update(&mut self, key: Key, update: Expr, condition: Option<Expr>) -> CondHandle {
        let (update, condition) = update.with_condition(condition);
        let (update, names, values) = update.into_parts();
        let item = Update::builder()
            .table_name(self.store.table())
            .set_key(Some(key.attributes()))
            .update_expression(update)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .map(|update| TransactWriteItem::builder().update(update).build());
        self.push(item)
    }

    /// Sends the transaction: every item is written, or none.
    pub async fn run(self) -> Result<(), TxError> {
        if let Some(e) = self.invalid {
            return Err(TxError::Store(corrupt(format_args!(
                "cannot build request: {e}"
            ))));
        }
        self.store
            .client()
            .transact_write_items()
            .set_transact_items(Some(self.items))
            .client_request_token(request_token())
            .send()
            .await
            .map(|_| ())
            .map_err(TxError::from_sdk)
    }
}

/// Why a transaction (or an attempt around one) did not go through. Nothing was written.
#[derive(Debug)]
pub(super) enum TxError {
    /// These conditions failed.
    Failed(FailedConditions),
    /// Cancelled by a concurrent transaction on the same items.
    Conflict,
    /// Anything else: the answer for the caller.
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl TxError {
    fn from_sdk(err: SdkError<TransactWriteItemsError, HttpResponse>) -> Self {
        let codes: Option<Vec<String>> = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
                e.cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect(),
            ),
            _ => None,
        };
        match codes {
            Some(codes) => classify_cancellation(&codes).unwrap_or_else(|| {
                // Cancelled for capacity: transient, whatever the exception's status says.
                if codes
                    .iter()
                    .any(|c| THROTTLED_CANCELLATIONS.contains(&c.as_str()))
                {
                    Self::Store(StoreError::Unavailable(
                        aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string(),
                    ))
                } else {
                    Self::Store(unavailable(err))
                }
            }),
            None => Self::Store(unavailable(err)),
        }
    }
}

/// Cancellation reasons that mean "too many requests right now" (retry later); any other
/// reason a transaction was cancelled for (`ValidationError`, `ItemCollectionSizeLimitExceeded`)
/// is permanent.
const THROTTLED_CANCELLATIONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// The failed conditions of a cancelled transaction.
#[derive(Debug)]
pub(super) struct FailedConditions(Vec<bool>);

impl FailedConditions {
    /// Whether the condition `handle` names failed.
    pub fn failed(&self, handle: CondHandle) -> bool {
        self.0.get(handle.0).copied().unwrap_or(false)
    }
}

/// Failed conditions decide; otherwise a conflict is retryable; anything else (throttling,
/// validation, capacity) is not ours to interpret.
fn classify_cancellation(codes: &[String]) -> Option<TxError> {
    let failed = |c: &String| c == "ConditionalCheckFailed";
    if codes.iter().any(failed) {
        return Some(TxError::Failed(FailedConditions(
            codes.iter().map(failed).collect(),
        )));
    }
    if codes.iter().any(|c| c == "TransactionConflict") {
        return Some(TxError::Conflict);
    }
    None
}

/// Runs `attempt` (its reads, then its write) until it is not refused for a race: after a
/// [`TxError::Conflict`], or a [`TxError::Failed`] the attempt did not turn into an answer (a
/// condition on state it had read, which changed before its write), it runs again with fresh
/// reads after a short backoff, at most five times in all.
pub(super) async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TxError>>,
{
    for round in 0..MAX_ATTEMPTS {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(TxError::Store(err)) => return Err(err),
            Err(TxError::Failed(_) | TxError::Conflict) => backoff(round).await,
        }
    }
    Err(StoreError::Unavailable(
        "transaction kept conflicting with concurrent writers".into(),
    ))
}

/// A short, jittered pause before retrying after a conflict.
pub(super) async fn backoff(attempt: u32) {
    use aws_lc_rs::rand::SecureRandom;
    let mut jitter = [0u8; 1];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut jitter);
    let millis = (10u64 << attempt.min(5)) + u64::from(jitter[0] % 16);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

impl DynamoStore {
    /// The items under `keys`, read together and consistently (one `TransactGetItems`).
    pub(super) async fn read_together<const N: usize>(
        &self,
        keys: [Key; N],
    ) -> Result<[Option<Item>; N], StoreError> {
        let gets = keys
            .into_iter()
            .map(|key| {
                Get::builder()
                    .table_name(self.table())
                    .set_key(Some(key.attributes()))
                    .build()
                    .map(|get| TransactGetItem::builder().get(get).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(format_args!("cannot build request: {e}")))?;
        let out = self
            .client()
            .transact_get_items()
            .set_transact_items(Some(gets))
            .send()
            .await
            .map_err(unavailable)?;
        let responses = out.responses();
        if responses.len() != N {
            return Err(StoreError::Corrupt(
                "TransactGetItems returned the wrong number of items".into(),
            ));
        }
        Ok(std::array::from_fn(|i| {
            responses[i].item().filter(|item| !item.is_empty()).cloned()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn failed_conditions_decide_then_conflicts_retry() {
        match classify_cancellation(&codes(&[
            "None",
            "ConditionalCheckFailed",
            "TransactionConflict",
        ])) {
            Some(TxError::Failed(f)) => {
                assert_eq!(
                    [0, 1, 2, 3].map(|i| f.failed(CondHandle(i))),
                    [false, true, false, false]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_cancellation(&codes(&["TransactionConflict", "None"])),
            Some(TxError::Conflict)
        ));
        assert!(classify_cancellation(&codes(&["ThrottlingError", "None"])).is_none());
        assert!(classify_cancellation(&codes(&["None", "ValidationError"])).is_none());
    }

    #[tokio::test]
    async fn races_are_retried_five_times_store_errors_never() {
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        let calls = AtomicU32::new(0);
        let done = retry_on_conflict(|| async {
            match calls.fetch_add(1, SeqCst) {
                0 => Err(TxError::Conflict),
                1 => Err(TxError::Failed(FailedConditions(vec![true]))),
                _ => Ok("done"),
            }
        })
        .await;
        assert_eq!((done.unwrap(), calls.load(SeqCst)), ("done", 3));

        calls.store(0, SeqCst);
        let gone = retry_on_conflict(|| async {
            calls.fetch_add(1, SeqCst);
            Err::<(), _>(TxError::Store(StoreError::Corrupt("bad".into())))
        })
        .await;
        assert!(matches!(gone, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.load(SeqCst), 1);

        calls.store(0, SeqCst);
        let busy = retry_on_conflict(|| async {
            calls.fetch_add(1, SeqCst);
            Err::<(), _>(TxError::Conflict)
        })
        .await;
        assert!(matches!(busy, Err(StoreError::Unavailable(_))));
        assert_eq!(calls.load(SeqCst), MAX_ATTEMPTS);
    }

    fn cancelled(reasons: &[&str]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        use aws_sdk_dynamodb::{
            error::ErrorMetadata,
            types::{CancellationReason, error::TransactionCanceledException},
        };
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .set_cancellation_reasons(Some(
                        reasons
                            .iter()
                            .map(|r| CancellationReason::builder().code(*r).build())
                            .collect(),
                    ))
                    .meta(
                        ErrorMetadata::builder()
                            .code("TransactionCanceledException")
                            .build(),
                    )
                    .build(),
            ),
            HttpResponse::new(400.try_into().unwrap(), "".into()),
        )
    }

    #[test]
    fn cancelled_for_capacity_is_transient_for_validation_permanent() {
        for reasons in [
            ["ThrottlingError", "None"],
            ["None", "ProvisionedThroughputExceeded"],
        ] {
            assert!(
                matches!(
                    TxError::from_sdk(cancelled(&reasons)),
                    TxError::Store(StoreError::Unavailable(_))
                ),
                "{reasons:?}"
            );
        }
        for reasons in [
            ["ValidationError", "None"],
            ["None", "ItemCollectionSizeLimitExceeded"],
        ] {
            assert!(
                matches!(
                    TxError::from_sdk(cancelled(&reasons)),
                    TxError::Store(StoreError::Failed(_))
                ),
                "{reasons:?}"
            );
        }
        assert!(matches!(
            TxError::from_sdk(cancelled(&["ConditionalCheckFailed", "ThrottlingError"])),
            TxError::Failed(_)
        ));
    }
}
