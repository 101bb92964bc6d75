//! Deployment tests: `template.yaml` (cfn-lint, routes, IAM least privilege proved by the
//! recorded calls of the full scenario), `openapi.yaml` against the routes and real responses,
//! the deploy scripts, and the `cargo lambda` smoke test.
//!
//! One test binary whose modules are the deployment artefacts.

mod cargo_lambda;
mod docs;
mod iam;
mod openapi;
mod scripts;
mod template;
