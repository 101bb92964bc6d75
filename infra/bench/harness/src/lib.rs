//! `make bench` machinery that needs Rust: a loopback Lambda Runtime API that times release
//! bootstraps ([`runtime_api`]), and the seeded world they run in ([`world`]). Built in the
//! dev profile on the test harness's dependencies; what it measures are release binaries.

pub mod runtime_api;
pub mod world;
