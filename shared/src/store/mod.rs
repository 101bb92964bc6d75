//! Storage ports and their two adapters.
//!
//! A port is a narrow trait named after the domain (`ConnectTokens`, …). Each has a DynamoDB
//! adapter (single table, `pk`/`sk`, TTL attribute `expires_at`, conditional writes) and a
//! SQLite adapter (one file, WAL, transactions). Both check expiry on every read and in every
//! condition, because DynamoDB TTL deletes items late. One conformance suite
//! (`tests/tests/conformance_*.rs`) runs against both; a difference between them is a bug.

pub mod authorizations;
pub mod blocks;
pub mod claims;
pub mod connect_flow;
pub mod connect_tokens;
pub mod credentials;
pub mod dynamodb;
pub mod links;
pub mod rate_limits;
pub mod registrations;
pub mod signing_keys;
pub mod signins;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod worker_tokens;

use std::sync::Arc;

pub use authorizations::Authorizations;
pub use blocks::{Block, BlockOutcome, Blocks};
pub use claims::{
    ClaimKey, ClaimLease, ClaimOnce, ClaimOutcome, ClaimRecord, ClaimStatus, ClaimTimes, Claims,
};
pub use connect_flow::{ConnectAttempt, ConnectFlow, ConnectOutcome};
pub use connect_tokens::{ConnectTokenRecord, ConnectTokens};
pub use credentials::{Credentials, CredentialsRecord};
pub use links::{
    Link, LinkOutcome, LinkSide, LinkSource, Links, Reachability, Unreachable, UnreachableReason,
};
pub use rate_limits::{Admission, Bucket, BucketKey, RateLimits};
pub use registrations::Registrations;
pub use signing_keys::{AddOutcome, SigningKeyRecord, SigningKeySet, SigningKeys};
pub use signins::SignIns;
pub use worker_tokens::{InsertOutcome, WorkerTokenRecord, WorkerTokens};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the request for capacity reasons: retryable,
    /// and nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request for a reason no retry fixes (access denied, no such
    /// table, an invalid request): nothing was written. See [`crate::aws_error`].
    #[error("store request failed: {0}")]
    Failed(String),
    /// An item exists but does not have the expected shape.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

/// The configured store. Cheap to clone; hand each handler only the ports it uses.
#[derive(Clone)]
pub enum Store {
    DynamoDb(Arc<dynamodb::DynamoStore>),
    /// Only with the `sqlite` feature (local API, tests): the deployed Lambdas have no SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<sqlite::SqliteStore>),
}

/// One accessor per port: `store.links()` is the configured adapter as `Arc<dyn Links>`.
macro_rules! port_accessors {
    ($($accessor:ident: $port:ident),+ $(,)?) => {
        impl Store {
            $(
                pub fn $accessor(&self) -> Arc<dyn $port> {
                    match self {
                        Self::DynamoDb(s) => s.clone(),
                        #[cfg(feature = "sqlite")]
                        Self::Sqlite(s) => s.clone(),
                    }
                }
            )+
        }
    };
}

port_accessors! {
    connect_tokens: ConnectTokens,
    connect_flow: ConnectFlow,
    claims: Claims,
    links: Links,
    credentials: Credentials,
    worker_tokens: WorkerTokens,
    registrations: Registrations,
    blocks: Blocks,
    signins: SignIns,
    signing_keys: SigningKeys,
    rate_limits: RateLimits,
    authorizations: Authorizations,
}
