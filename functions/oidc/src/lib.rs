//! `oidc`: `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`.
//!
//! - `jwks.json` (RFC 7517): every published signing key — the current one and each key
//!   retired less than the access-token lifetime plus the leeway ago — as
//!   `{"kty":"EC","crv":"P-256","x","y","kid","use":"sig","alg":"ES256"}`, `kid` the RFC 7638
//!   thumbprint.
//! - `openid-configuration` (RFC 8414 / OpenID Connect Discovery 1.0): the fields that apply
//!   to the token service and the OpenID provider: issuer, JWKS, the authorization, token and
//!   revocation endpoints, grant types, `response_types_supported` `["code"]`, subject type
//!   `public`, ES256 ID tokens, PKCE `S256` only, client authentication (`none`,
//!   `client_secret_basic`, `client_secret_post`), scopes and claims.
//!
//! Both are public and cacheable (`Cache-Control: public, max-age=300`). The keys come from the
//! store's public halves only (no KMS call, no private key opened), read at most once per
//! [`KEY_REFRESH_SECS`] per warm instance ([`PublishedKeys`]): a warm request makes no AWS call,
//! and a rotation is served within that interval.

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;
use tglink_shared::{
    http::Problem,
    oauth::{KEY_REFRESH_SECS, PublishedKeys, TokenConfig, clients::SUPPORTED_SCOPES, keys},
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    time::Clock,
};

pub const JWKS: Route = Route::new("GET", "/.well-known/jwks.json");
pub const CONFIGURATION: Route = Route::new("GET", "/.well-known/openid-configuration");

/// `Cache-Control` of both documents.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The RFC 8693 token-exchange grant.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

enum OidcOp {
    Jwks,
    Configuration,
}

impl Operation for OidcOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(JWKS, |_| Self::Jwks),
        Endpoint::new(CONFIGURATION, |_| Self::Configuration),
    ];
}

pub const ROUTES: &[Route] = &routes::<OidcOp, { OidcOp::ENDPOINTS.len() }>();

pub struct Oidc {
    pub config: TokenConfig,
    pub keys: PublishedKeys,
    pub clock: Clock,
}

#[async_trait]
impl Function for Oidc {
    fn secrets() -> &'static [&'static str] {
        &[]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        Ok(Self {
            config: startup.token_config()?,
            keys: startup.published_keys().await?,
            clock: Clock::system(),
        })
    }

    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    async fn handle(&self, req: Request) -> Response<Body> {
        handle(self, req).await
    }
}

pub async fn handle(deps: &Oidc, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        OidcOp::Jwks => jwks(deps).await,
        OidcOp::Configuration => Ok(public_json(&configuration(&deps.config))),
    })
    .await
}

async fn jwks(deps: &Oidc) -> Result<Response<Body>, Problem> {
    let now = deps.clock.now();
    let set = deps.keys.get(now).await?;
    let published = set.published(now, deps.config.keep_retired_secs());
    Ok(public_json(&keys::jwks(&published)))
}

/// The claims tglink's ID tokens may carry (OIDC Discovery 1.0 §3).
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "sid",
    "at_hash",
    "app_user_id",
    "preferred_username",
    "given_name",
    "name",
    "locale",
];

/// The discovery document.
pub fn configuration(config: &TokenConfig) -> serde_json::Value {
    json!({
        "issuer": config.issuer,
        "jwks_uri": config.url("/.well-known/jwks.json"),
        "token_endpoint": config.url("/oauth/token"),
        "revocation_endpoint": config.url("/oauth/revoke"),
        "authorization_endpoint": config.url("/oauth/authorize"),
        "grant_types_supported": ["authorization_code", TOKEN_EXCHANGE_GRANT, "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SUPPORTED_SCOPES,
        "claims_supported": CLAIMS_SUPPORTED,
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

/// A public, cacheable JSON document.
fn public_json(value: &serde_json::Value) -> Response<Body> {
    let mut response = tglink_shared::http::json(StatusCode::OK, value);
    response.headers_mut().insert(
        lambda_http::http::header::CACHE_CONTROL,
        lambda_http::http::HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

const _: () = assert!(KEY_REFRESH_SECS <= 300, "keys are re-read within max-age");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_reach_their_endpoints() {
        tglink_shared::routes::check::<OidcOp>();
    }

    #[test]
    fn configuration_names_the_endpoints_under_the_issuer() {
        let config = TokenConfig {
            issuer: "https://auth.example".into(),
            audience: "app".into(),
            access_token_ttl: std::time::Duration::from_secs(300),
        };
        let doc = configuration(&config);
        assert_eq!(doc["issuer"], "https://auth.example");
        assert_eq!(
            doc["jwks_uri"],
            "https://auth.example/.well-known/jwks.json"
        );
        assert_eq!(doc["token_endpoint"], "https://auth.example/oauth/token");
        assert_eq!(
            doc["revocation_endpoint"],
            "https://auth.example/oauth/revoke"
        );
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", TOKEN_EXCHANGE_GRANT, "refresh_token"])
        );
        assert_eq!(doc["token_endpoint_auth_methods_supported"][0], "none");
        assert_eq!(
            doc["authorization_endpoint"],
            "https://auth.example/oauth/authorize"
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
    }
}
