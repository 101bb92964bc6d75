//! Items: building attribute values and reading them back. Every reader maps a missing or
//! mistyped attribute to [`StoreError::Corrupt`]; an optional attribute may be absent or `NULL`.

use std::{collections::HashMap, fmt::Display, str::FromStr};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::{store::StoreError, time::UnixTime};

/// One item (or key, or set of expression values) as the SDK takes it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute.
pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An item (or expression values) from `(name, value)` pairs.
pub(super) fn attributes<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Any value that did not parse (an id, a status) makes the item corrupt.
pub(super) fn corrupt(why: impl Display) -> StoreError {
    StoreError::Corrupt(why.to_string())
}

/// The attribute, `None` when it is absent or `NULL`.
fn present<'a>(item: &'a Item, name: &str) -> Option<&'a AttributeValue> {
    item.get(name)
        .filter(|v| !matches!(v, AttributeValue::Null(_)))
}

fn missing(name: &str) -> StoreError {
    corrupt(format_args!("attribute {name} missing"))
}

pub(super) fn opt_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not a string"))),
    }
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    opt_s(item, name)?.ok_or_else(|| missing(name))
}

/// A number attribute parsed as `T` (an integer type).
pub(super) fn opt_n<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(format_args!("attribute {name} is not a valid integer"))),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not a number"))),
    }
}

pub(super) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    opt_n(item, name)?.ok_or_else(|| missing(name))
}

pub(super) fn opt_time(item: &Item, name: &str) -> Result<Option<UnixTime>, StoreError> {
    Ok(opt_n(item, name)?.map(UnixTime))
}

pub(super) fn get_time(item: &Item, name: &str) -> Result<UnixTime, StoreError> {
    get_n(item, name).map(UnixTime)
}

pub(super) fn opt_b<'a>(item: &'a Item, name: &str) -> Result<Option<&'a [u8]>, StoreError> {
    match present(item, name) {
        None => Ok(None),
        Some(AttributeValue::B(v)) => Ok(Some(v.as_ref())),
        Some(_) => Err(corrupt(format_args!("attribute {name} is not binary"))),
    }
}

/// Whether the string set `name` holds `value`.
pub(super) fn set_holds(item: &Item, name: &str, value: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Ss(set)) if set.iter().any(|v| v == value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_attributes_may_be_absent_or_null_but_not_mistyped() {
        let item = attributes([
            ("name", s("ann")),
            ("count", n(-3)),
            ("gone", AttributeValue::Null(true)),
        ]);
        assert_eq!(get_s(&item, "name").unwrap(), "ann");
        assert_eq!(get_n::<i64>(&item, "count").unwrap(), -3);
        assert!(get_n::<u64>(&item, "count").is_err());
        assert_eq!(opt_s(&item, "gone").unwrap(), None);
        assert_eq!(opt_n::<u64>(&item, "absent").unwrap(), None);
        assert!(get_s(&item, "absent").is_err());
        assert!(opt_n::<i64>(&item, "name").is_err());
        assert!(opt_s(&item, "count").is_err());
    }
}
