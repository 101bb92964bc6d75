//! `tglink-shared`: everything the tglink Lambda functions have in common.
//!
//! Handlers (in `functions/*`) translate HTTP to the domain operations here; the domain talks
//! to storage and key management only through the ports in [`store`] and [`seal`], each of
//! which has a cloud adapter (DynamoDB, KMS) and an embedded adapter (SQLite, local key).

pub mod auth;
pub mod aws;
pub mod aws_error;
pub mod config;
pub mod files;
pub mod http;
pub mod ids;
pub mod logging;
pub mod oauth;
pub mod outbound;
pub mod routes;
pub mod runtime;
pub mod seal;
pub mod secret;
pub mod store;
pub mod telegram;
pub mod time;
pub mod token;
pub mod vault;
