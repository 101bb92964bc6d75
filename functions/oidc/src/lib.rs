//! `oidc`: `GET /.well-known/jwks.json`, `GET /.well-known/openid-configuration` and the
//! OpenID Connect UserInfo endpoint `GET`/`POST /oauth/userinfo`.
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
//!
//! - `userinfo` (OIDC Core 1.0 §5.3, RFC 6750): the caller sends a tglink access token as
//!   `Authorization: Bearer <token>` (the header only: a token in the query or a form body is
//!   not read). It is verified by an [`AccessTokenVerifier`] over the same key cache (a warm
//!   request makes no AWS call) and answered `200` with `sub` (the Telegram user id, as in the ID
//!   token), `app_user_id` when linked, and the profile claims the access token carries, named
//!   as in the ID token (`preferred_username`, `given_name`, `name`, `locale`), with
//!   `Cache-Control: no-store`. No token → `401 auth_required` with `WWW-Authenticate: Bearer`;
//!   an invalid one (malformed, forged, expired, an ID token) → `401 access_token_invalid` with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3); the body never quotes the
//!   token. A store failure reading the keys → `503` + `Retry-After`.

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;
use serde_json::json;
use tglink_shared::{
    http::{Problem, bearer_token},
    oauth::{
        AccessTokenClaims, AccessTokenError, AccessTokenVerifier, KEY_REFRESH_SECS, PublishedKeys,
        TokenConfig, clients::SUPPORTED_SCOPES, keys,
    },
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    time::Clock,
};

pub const JWKS: Route = Route::new("GET", "/.well-known/jwks.json");
pub const CONFIGURATION: Route = Route::new("GET", "/.well-known/openid-configuration");
pub const USERINFO_GET: Route = Route::new("GET", "/oauth/userinfo");
pub const USERINFO_POST: Route = Route::new("POST", "/oauth/userinfo");

/// `Cache-Control` of both documents.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The RFC 8693 token-exchange grant.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

enum OidcOp {
    Jwks,
    Configuration,
    UserInfo,
}

impl Operation for OidcOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(JWKS, |_| Self::Jwks),
        Endpoint::new(CONFIGURATION, |_| Self::Configuration),
        Endpoint::new(USERINFO_GET, |_| Self::UserInfo),
        Endpoint::new(USERINFO_POST, |_| Self::UserInfo),
    ];
}

pub const ROUTES: &[Route] = &routes::<OidcOp, { OidcOp::ENDPOINTS.len() }>();

pub struct Oidc {
    pub config: TokenConfig,
    pub keys: PublishedKeys,
    /// Verifies userinfo's bearer tokens over the same key cache as [`Self::keys`].
    pub verifier: AccessTokenVerifier,
    pub clock: Clock,
}

#[async_trait]
impl Function for Oidc {
    fn secrets() -> &'static [&'static str] {
        &[]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let config = startup.token_config()?;
        let keys = startup.published_keys().await?;
        Ok(Self {
            verifier: AccessTokenVerifier::with_published(config.clone(), keys.clone()),
            config,
            keys,
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
        OidcOp::UserInfo => userinfo(deps, &req).await,
    })
    .await
}

/// Why userinfo refused a request (RFC 6750 §3).
#[derive(Debug, thiserror::Error)]
pub enum UserInfoError {
    #[error("send a tglink access token as Authorization: Bearer <token>")]
    Missing,
    #[error(transparent)]
    Token(#[from] AccessTokenError),
}

impl From<UserInfoError> for Problem {
    fn from(err: UserInfoError) -> Self {
        match err {
            UserInfoError::Missing => Problem::new(
                StatusCode::UNAUTHORIZED,
                "auth_required",
                "Unauthorized",
            )
            .detail(err.to_string())
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            UserInfoError::Token(AccessTokenError::Store(e)) => e.into(),
            UserInfoError::Token(e @ AccessTokenError::Invalid(_)) => {
                Problem::from(e).header(header::WWW_AUTHENTICATE, HeaderValue::from_static(
                    r#"Bearer error="invalid_token", error_description="the access token is not valid""#,
                ))
            }
        }
    }
}

/// The UserInfo response (OIDC Core 1.0 §5.3.2): claims named as in the ID token.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl From<AccessTokenClaims> for UserInfo {
    fn from(claims: AccessTokenClaims) -> Self {
        Self {
            sub: claims.sub,
            app_user_id: claims.app_user_id,
            preferred_username: claims.username,
            given_name: claims.first_name.clone(),
            name: claims.first_name,
            locale: claims.language_code,
        }
    }
}

async fn userinfo(deps: &Oidc, req: &Request) -> Result<Response<Body>, Problem> {
    let token = bearer_token(req).ok_or(UserInfoError::Missing)?;
    let claims = deps
        .verifier
        .verify(token, deps.clock.now())
        .await
        .map_err(UserInfoError::from)?;
    let mut response = tglink_shared::http::json(StatusCode::OK, &UserInfo::from(claims));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
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
        "userinfo_endpoint": config.url("/oauth/userinfo"),
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
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
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
        assert_eq!(
            doc["userinfo_endpoint"],
            "https://auth.example/oauth/userinfo"
        );
    }
}

#[cfg(test)]
mod userinfo_tests {
    use super::*;

    #[test]
    fn refusals_follow_rfc_6750_section_3() {
        let missing = Problem::from(UserInfoError::Missing);
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        assert_eq!(missing.code, "auth_required");
        assert_eq!(
            missing.headers,
            vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))]
        );
        let invalid = Problem::from(UserInfoError::Token(AccessTokenError::Invalid("expired")));
        assert_eq!(invalid.status, StatusCode::UNAUTHORIZED);
        assert_eq!(invalid.code, "access_token_invalid");
        let (name, value) = &invalid.headers[0];
        assert_eq!(name, header::WWW_AUTHENTICATE);
        assert!(
            value
                .to_str()
                .unwrap()
                .starts_with(r#"Bearer error="invalid_token""#)
        );
        let store = Problem::from(UserInfoError::Token(AccessTokenError::Store(
            tglink_shared::store::StoreError::Unavailable("throttled".into()),
        )));
        assert_eq!(store.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(store.retry_after.is_some());
    }

    #[test]
    fn claims_are_named_as_in_the_id_token() {
        let claims = AccessTokenClaims {
            iss: "https://auth.example".into(),
            aud: "app".into(),
            sub: "42".into(),
            client_id: "web".into(),
            app_user_id: Some("u-1".into()),
            sid: "s".into(),
            amr: vec!["telegram_oidc".into()],
            auth_time: 1,
            iat: 1,
            exp: 2,
            jti: "j".into(),
            username: Some("alice".into()),
            first_name: Some("Alice".into()),
            language_code: Some("en".into()),
            is_premium: None,
        };
        let value = serde_json::to_value(UserInfo::from(claims)).unwrap();
        assert_eq!(
            value,
            json!({"sub": "42", "app_user_id": "u-1", "preferred_username": "alice",
                   "given_name": "Alice", "name": "Alice", "locale": "en"})
        );
    }
}
