//! Deployment tests: `template.yaml` (cfn-lint, routes, IAM least privilege proved by the
//! recorded calls of the full scenario), `openapi.yaml` against the routes and real responses,
//! the deploy scripts, the `cargo lambda` smoke test, and what the deployed builds leave out.
//!
//! One test binary whose modules are the deployment artefacts.

mod cargo_lambda;
mod docs;
mod iam;
mod openapi;
mod release_deps;
mod scripts;
mod template;
