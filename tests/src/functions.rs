//! Every function crate of `functions/`, with its routes and how to build it in-process: the
//! one list the deployment tests compare `template.yaml`, `openapi.yaml` and `tests/events/`
//! against. A test checks that every directory of `functions/` is listed here.
//!
//! Adding a function is one line in the `functions!` invocation below (crate name as in
//! `functions/<name>`, the crate, and its `Function` type).

use std::sync::Arc;

use tglink_shared::{
    routes::Route,
    runtime::{Function, Startup, StartupError},
};

/// A function crate: its Lambda/binary name and its routes (`<crate>::ROUTES`).
#[derive(Debug, Clone, Copy)]
pub struct FunctionCrate {
    pub name: &'static str,
    pub routes: &'static [Route],
    /// The service secrets it reads from SSM (`Function::secrets`).
    pub secrets: fn() -> &'static [&'static str],
}

macro_rules! functions {
    ($($name:literal => $krate:ident :: $ty:ident,)+) => {
        /// Every function crate, in the order of `docs/design.md` ("Functions").
        pub const FUNCTIONS: &[FunctionCrate] = &[
            $(FunctionCrate {
                name: $name,
                routes: $krate::ROUTES,
                secrets: <$krate::$ty as Function>::secrets,
            },)+
        ];

        /// Builds the function called `name` from `startup`, as its `main.rs` does in Lambda.
        pub async fn build(
            name: &str,
            startup: &Startup,
        ) -> Result<Arc<dyn Function>, StartupError> {
            match name {
                $($name => Ok(Arc::new(<$krate::$ty as Function>::build(startup).await?)),)+
                other => panic!("no function crate called {other:?} in tests/src/functions.rs"),
            }
        }
    };
}

functions! {
    "connect-link" => connect_link::ConnectLink,
    "webhook" => webhook::Webhook,
    "registration" => registration::Registration,
    "settings" => settings::Settings,
    "worker-credentials" => worker_credentials::WorkerCredentials,
    "initdata-verify" => initdata_verify::InitDataVerify,
    "link" => link::LinkFunction,
    "oauth" => oauth::OAuth,
    "oidc" => oidc::Oidc,
    "signing-keys" => signing_keys::SigningKeysFunction,
    "notify" => notify::Notify,
    "authorize" => authorize::Authorize,
}

/// The function called `name`.
pub fn function(name: &str) -> &'static FunctionCrate {
    FUNCTIONS
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no function crate called {name:?}"))
}

/// The directories of `functions/` (each one is a function crate).
pub fn crate_dirs() -> Vec<String> {
    let dir = crate::workspace_root().join("functions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `(METHOD, /path/{param})` of a route, the shape the template and the spec use.
pub fn route_key(route: &Route) -> (String, String) {
    (route.method.to_owned(), route.pattern.to_owned())
}

/// The file name (without `.json`) of a route's event in `tests/events/<function>/`:
/// the method in lower case, then the path without `/api/` (or its leading `/`), `/` → `-`,
/// braces dropped (`POST /oauth/token` → `post-oauth-token`).
/// `DELETE /api/worker/tokens/{id}` → `delete-worker-tokens-id`.
/// the method in lower case, then the path without `/api/`, `/` → `-`, braces dropped.
/// `DELETE /api/worker/tokens/{id}` → `delete-worker-tokens-id`; a path outside `/api/` loses
/// its leading `/` (`GET /.well-known/jwks.json` → `get-.well-known-jwks.json`).
pub fn event_slug(route: &Route) -> String {
    let path = route
        .pattern
        .trim_start_matches("/api/")
        .trim_start_matches('/')
        .replace(['{', '}'], "")
        .replace('/', "-");
    format!("{}-{path}", route.method.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            event_slug(&Route::new("DELETE", "/api/worker/tokens/{id}")),
            "delete-worker-tokens-id"
        );
        assert_eq!(
            event_slug(&Route::new("POST", "/api/telegram/connect-link")),
            "post-telegram-connect-link"
        );
    }
}
