//! Storage ports and their two adapters.
//!
//! A port is a narrow trait named after the domain (`ConnectTokens`, …). Each has a DynamoDB
//! adapter (single table, `pk`/`sk`, TTL attribute `expires_at`, conditional writes) and a
//! SQLite adapter (one file, WAL, transactions). Both check expiry on every read and in every
//! condition, because DynamoDB TTL deletes items late. One conformance suite
//! (`tests/tests/conformance_*.rs`) runs against both; a difference between them is a bug.

pub mod connect_tokens;
pub mod credentials;
pub mod dynamodb;
pub mod registrations;
pub mod sqlite;
pub mod worker_tokens;

use std::sync::Arc;

pub use connect_tokens::{ConnectTokenRecord, ConnectTokens};
pub use credentials::{Credentials, CredentialsRecord};
pub use registrations::Registrations;
pub use worker_tokens::{WorkerTokenRecord, WorkerTokens};

use crate::http::Problem;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the request for capacity reasons: retryable,
    /// and nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item exists but does not have the expected shape.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                Problem::unavailable("the store")
            }
            StoreError::Corrupt(why) => {
                tracing::error!(error = %why, "corrupt item in store");
                Problem::internal()
            }
        }
    }
}

/// The configured store. Cheap to clone; hand each handler only the ports it uses.
#[derive(Clone)]
pub enum Store {
    DynamoDb(Arc<dynamodb::DynamoStore>),
    Sqlite(Arc<sqlite::SqliteStore>),
}

impl Store {
    pub fn connect_tokens(&self) -> Arc<dyn ConnectTokens> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn credentials(&self) -> Arc<dyn Credentials> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn worker_tokens(&self) -> Arc<dyn WorkerTokens> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn registrations(&self) -> Arc<dyn Registrations> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }
}
