//! Storage ports and their two adapters.
//!
//! A port is a narrow trait named after the domain (`ConnectTokens`, …). Each has a DynamoDB
//! adapter (single table, `pk`/`sk`, TTL attribute `expires_at`, conditional writes) and a
//! SQLite adapter (one file, WAL, transactions). Both check expiry on every read and in every
//! condition, because DynamoDB TTL deletes items late. One conformance suite
//! (`tests/tests/conformance_*.rs`) runs against both; a difference between them is a bug.

pub mod blocks;
pub mod claims;
pub mod connect_flow;
pub mod connect_tokens;
pub mod dynamodb;
pub mod links;
pub mod miniapp_flow;
pub mod miniapp_sessions;
pub mod registrations;
pub mod sqlite;

use std::sync::Arc;

pub use blocks::{Block, BlockOutcome, Blocks};
pub use claims::{ClaimKey, ClaimLease, ClaimOnce, ClaimOutcome, ClaimStatus, ClaimTimes, Claims};
pub use connect_flow::{ConnectAttempt, ConnectFlow, ConnectOutcome};
pub use connect_tokens::{ConnectTokenRecord, ConnectTokens};
pub use links::{Link, LinkOutcome, LinkSide, LinkSource, Links};
pub use miniapp_flow::{MiniAppFlow, MiniAppLinkOutcome};
pub use miniapp_sessions::{MiniAppSession, MiniAppSessions, ReplayClaim, SessionOutcome};
pub use registrations::Registrations;

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

    pub fn links(&self) -> Arc<dyn Links> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn claims(&self) -> Arc<dyn Claims> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn connect_flow(&self) -> Arc<dyn ConnectFlow> {
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

    pub fn blocks(&self) -> Arc<dyn Blocks> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn miniapp_sessions(&self) -> Arc<dyn MiniAppSessions> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }

    pub fn miniapp_flow(&self) -> Arc<dyn MiniAppFlow> {
        match self {
            Self::DynamoDb(s) => s.clone(),
            Self::Sqlite(s) => s.clone(),
        }
    }
}
