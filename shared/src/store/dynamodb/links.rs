//! Links as two items, `TGUSER#<id>` / `LINK` and `USER#<id>` / `TGLINK`, each holding the
//! whole record, always written and deleted together by `TransactWriteItems` (a link also
//! checks that `TGUSER#<id>` / `BLOCK` does not exist). Also the
//! transaction helpers shared with `claims` and `connect_flow`.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Delete, Put, TransactWriteItem},
};

use super::{DynamoStore, Item, blocks::not_blocked, get_s, n, request_token, s, unavailable};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{Blocks, Link, LinkOutcome, LinkSide, LinkSource, Links, StoreError},
    time::UnixTime,
};

pub(super) const LINK_SK: &str = "LINK";
pub(super) const TGLINK_SK: &str = "TGLINK";

/// Attempts of an operation whose transaction was cancelled by a conflicting concurrent
/// transaction (`TransactionConflict`), or whose state changed between its read and its write.
pub(super) const MAX_ATTEMPTS: u32 = 5;

pub(super) fn telegram_pk(id: TelegramUserId) -> String {
    format!("TGUSER#{id}")
}

pub(super) fn user_pk(user: &UserId) -> String {
    format!("USER#{}", user.as_str())
}

/// The item of `link` under `pk`/`sk` (both items carry the whole record).
pub(super) fn link_item(pk: String, sk: &str, link: &Link) -> Item {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        (
            "telegram_user_id".to_owned(),
            n(link.telegram_user_id.get()),
        ),
        ("user_id".to_owned(), s(link.user_id.as_str())),
        ("source".to_owned(), s(link.source.as_str())),
        ("linked_at".to_owned(), n(link.linked_at.secs())),
    ]);
    if let Some(chat) = link.chat_id {
        item.insert("chat_id".to_owned(), n(chat));
    }
    if let Some(username) = &link.username {
        item.insert("username".to_owned(), s(username));
    }
    item
}

pub(super) fn parse_link(item: &Item) -> Result<Link, StoreError> {
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    Ok(Link {
        telegram_user_id: TelegramUserId::new(get_i64(item, "telegram_user_id")?)
            .map_err(corrupt)?,
        user_id: UserId::parse(get_s(item, "user_id")?).map_err(corrupt)?,
        chat_id: opt_i64(item, "chat_id")?,
        username: match item.get("username") {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            None => None,
            Some(_) => {
                return Err(StoreError::Corrupt(
                    "attribute username not a string".into(),
                ));
            }
        },
        source: LinkSource::parse(get_s(item, "source")?)?,
        linked_at: UnixTime(get_u64(item, "linked_at")?),
    })
}

pub(super) fn get_i64(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_i64(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing")))
}

pub(super) fn get_u64(item: &Item, name: &str) -> Result<u64, StoreError> {
    u64::try_from(get_i64(item, name)?)
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is negative")))
}

pub(super) fn opt_i64(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
    }
}

/// A request builder refused its input: a bug here, not a store outage.
pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Corrupt(format!("cannot build request: {e}"))
}

/// Expression values from `(name, value)` pairs.
pub(super) fn values<const N: usize>(
    pairs: [(&str, AttributeValue); N],
) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub(super) fn put(
    store: &DynamoStore,
    item: Item,
    condition: &str,
    names: Option<HashMap<String, String>>,
    values: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(&store.table)
        .set_item(Some(item))
        .condition_expression(condition)
        .set_expression_attribute_names(names)
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

pub(super) fn delete(
    store: &DynamoStore,
    pk: String,
    sk: &str,
    condition: &str,
    values: HashMap<String, AttributeValue>,
) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(&store.table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// Why a `TransactWriteItems` did not commit.
#[derive(Debug)]
pub(super) enum TxFailure {
    /// The condition of these items (by position) failed.
    Conditions(Vec<bool>),
    /// Cancelled by a concurrent transaction on the same items: retry with fresh reads.
    Conflict,
    Unavailable(StoreError),
}

pub(super) fn tx_failure<R: std::fmt::Debug>(
    err: SdkError<TransactWriteItemsError, R>,
) -> TxFailure {
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
        Some(codes) => classify_cancellation(&codes)
            .unwrap_or_else(|| TxFailure::Unavailable(unavailable(err))),
        None => TxFailure::Unavailable(unavailable(err)),
    }
}

/// Failed conditions decide; otherwise a conflict is retryable; anything else (throttling,
/// validation, capacity) is not ours to interpret.
pub(super) fn classify_cancellation(codes: &[String]) -> Option<TxFailure> {
    if codes.iter().any(|c| c == "ConditionalCheckFailed") {
        return Some(TxFailure::Conditions(
            codes
                .iter()
                .map(|c| c == "ConditionalCheckFailed")
                .collect(),
        ));
    }
    if codes.iter().any(|c| c == "TransactionConflict") {
        return Some(TxFailure::Conflict);
    }
    None
}

/// A short, jittered pause before retrying after a conflict.
pub(super) async fn backoff(attempt: u32) {
    use aws_lc_rs::rand::SecureRandom;
    let mut jitter = [0u8; 1];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut jitter);
    let millis = (10u64 << attempt.min(5)) + u64::from(jitter[0] % 16);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

fn contention() -> StoreError {
    StoreError::Unavailable("transaction kept conflicting with concurrent writers".into())
}

impl DynamoStore {
    pub(super) async fn get_consistent(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), TxFailure>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token())
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => match tx_failure(e) {
                TxFailure::Unavailable(err) => Err(err),
                other => Ok(Err(other)),
            },
        }
    }

    /// Deletes both items of `link` if they still describe it. The item it was read from
    /// (`found_by`) must exist, so of concurrent unlinkers exactly one succeeds; its
    /// counterpart may be missing, so a half-written link can still be removed.
    async fn delete_link(
        &self,
        link: &Link,
        found_by: LinkSide,
    ) -> Result<Result<(), TxFailure>, StoreError> {
        let (by_telegram, by_user) = match found_by {
            LinkSide::Telegram => (
                "user_id = :uid",
                "attribute_not_exists(pk) OR telegram_user_id = :tg",
            ),
            LinkSide::User => (
                "attribute_not_exists(pk) OR user_id = :uid",
                "telegram_user_id = :tg",
            ),
        };
        self.transact(vec![
            delete(
                self,
                telegram_pk(link.telegram_user_id),
                LINK_SK,
                by_telegram,
                values([(":uid", s(link.user_id.as_str()))]),
            )?,
            delete(
                self,
                user_pk(&link.user_id),
                TGLINK_SK,
                by_user,
                values([(":tg", n(link.telegram_user_id.get()))]),
            )?,
        ])
        .await
    }

    async fn unlink_found<F, Fut>(
        &self,
        found_by: LinkSide,
        mut find: F,
    ) -> Result<Option<Link>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Link>, StoreError>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(link) = find().await? else {
                return Ok(None);
            };
            match self.delete_link(&link, found_by).await? {
                Ok(()) => return Ok(Some(link)),
                // Unlinked or relinked meanwhile: look again.
                Err(_) => backoff(attempt).await,
            }
        }
        Err(contention())
    }
}

#[async_trait]
impl Links for DynamoStore {
    async fn get_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        self.get_consistent(telegram_pk(id), LINK_SK)
            .await?
            .map(|item| parse_link(&item))
            .transpose()
    }

    async fn get_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        self.get_consistent(user_pk(user), TGLINK_SK)
            .await?
            .map(|item| parse_link(&item))
            .transpose()
    }

    async fn link(&self, link: &Link) -> Result<LinkOutcome, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let written = self
                .transact(vec![
                    put(
                        self,
                        link_item(telegram_pk(link.telegram_user_id), LINK_SK, link),
                        "attribute_not_exists(pk)",
                        None,
                        HashMap::new(),
                    )?,
                    put(
                        self,
                        link_item(user_pk(&link.user_id), TGLINK_SK, link),
                        "attribute_not_exists(pk)",
                        None,
                        HashMap::new(),
                    )?,
                    not_blocked(self, link.telegram_user_id)?,
                ])
                .await?;
            match written {
                Ok(()) => return Ok(LinkOutcome::Linked(link.clone())),
                Err(TxFailure::Conditions(failed)) => {
                    if failed.get(2).copied().unwrap_or(false) {
                        return Ok(LinkOutcome::Blocked);
                    }
                    let by_telegram = self.get_by_telegram(link.telegram_user_id).await?;
                    if by_telegram
                        .as_ref()
                        .is_some_and(|t| t.user_id != link.user_id)
                    {
                        return Ok(LinkOutcome::Conflict(LinkSide::Telegram));
                    }
                    let by_user = self.get_by_user(&link.user_id).await?;
                    if by_user
                        .as_ref()
                        .is_some_and(|u| u.telegram_user_id != link.telegram_user_id)
                    {
                        return Ok(LinkOutcome::Conflict(LinkSide::User));
                    }
                    if let (Some(existing), Some(_)) = (by_telegram, by_user) {
                        return Ok(LinkOutcome::AlreadyLinked(existing));
                    }
                    if self.get_block(link.telegram_user_id).await?.is_some() {
                        return Ok(LinkOutcome::Blocked);
                    }
                    // Unlinked between the write and the reads: try again.
                }
                Err(_) => {}
            }
            backoff(attempt).await;
        }
        Err(contention())
    }

    async fn unlink_by_user(&self, user: &UserId) -> Result<Option<Link>, StoreError> {
        self.unlink_found(LinkSide::User, move || self.get_by_user(user))
            .await
    }

    async fn unlink_by_telegram(&self, id: TelegramUserId) -> Result<Option<Link>, StoreError> {
        self.unlink_found(LinkSide::Telegram, move || self.get_by_telegram(id))
            .await
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
            Some(TxFailure::Conditions(flags)) => assert_eq!(flags, [false, true, false]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_cancellation(&codes(&["TransactionConflict", "None"])),
            Some(TxFailure::Conflict)
        ));
        assert!(classify_cancellation(&codes(&["ThrottlingError", "None"])).is_none());
        assert!(classify_cancellation(&codes(&["None", "ValidationError"])).is_none());
    }

    #[test]
    fn link_items_round_trip() {
        let link = Link {
            telegram_user_id: TelegramUserId::new(42).unwrap(),
            user_id: UserId::parse("user#1").unwrap(),
            chat_id: Some(42),
            username: Some("someone".into()),
            source: LinkSource::Bot,
            linked_at: UnixTime(1_700_000_000),
        };
        let item = link_item(telegram_pk(link.telegram_user_id), LINK_SK, &link);
        assert_eq!(parse_link(&item).unwrap(), link);
        let bare = Link {
            chat_id: None,
            username: None,
            source: LinkSource::MiniApp,
            ..link
        };
        let item = link_item(user_pk(&bare.user_id), TGLINK_SK, &bare);
        assert_eq!(parse_link(&item).unwrap(), bare);
    }
}
