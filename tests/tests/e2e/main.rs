//! End-to-end tests: every flow over HTTP through the real local API (in-process or as a real
//! process), on both backends (a SQLite file + local key; DynamoDB + KMS on moto_server), with
//! the fake Bot API on loopback; the AWS calls each request costs (`aws_calls`); and faults:
//! the injector and the hang test (`faults`), the fault matrix and the randomized-fault soak
//! (`fault_matrix`), the SIGKILL soak on SQLite (`crash_soak`); the Login Widget exchange
//! (`widget`).
//!
//! One test binary (one link of the AWS SDK, one moto_server, one log capture) whose modules are
//! the flows.

mod aws_calls;
mod bodies;
mod connect_link;
mod cors;
mod crash_soak;
mod fault_matrix;
mod faults;
mod integrate;
mod miniapp;
mod notify;
mod oauth;
mod oidc_provider;
mod registration;
mod telegram_oidc;
mod tokens;
mod totp;
mod vault;
mod walkthrough;
mod webhook;
mod widget;
mod worker_client;
