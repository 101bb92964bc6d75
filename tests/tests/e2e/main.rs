//! End-to-end tests: every flow over HTTP through the real local API (in-process or as a real
//! process), on both backends (a SQLite file + local key; DynamoDB + KMS on moto_server), with
//! the fake Bot API on loopback; and the AWS calls each request costs (`aws_calls`).
//!
//! One test binary (one link of the AWS SDK, one moto_server, one log capture) whose modules are
//! the flows.

mod aws_calls;
mod connect_link;
mod miniapp;
mod oauth;
mod registration;
mod tokens;
mod vault;
mod webhook;
