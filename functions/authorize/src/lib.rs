//! `authorize`: tglink's OpenID Connect authorization endpoint (OIDC Core 1.0 §3.1, RFC 6749
//! §4.1, PKCE RFC 7636), whose users sign in with Telegram's OpenID Connect.
//!
//! - `GET /oauth/authorize`: a registered client (`TGLINK_OIDC_CLIENTS`) sends the browser
//!   with `response_type=code`, `client_id`, an exactly registered `redirect_uri`, `scope`
//!   with `openid`, `state`, `nonce` (optional, as OIDC Core allows in the code flow) and PKCE (`code_challenge`, `code_challenge_method=S256`;
//!   `plain` is refused). The request is stored one-time (port `Authorizations`, keyed by the
//!   hash of tglink's own upstream `state`) and the browser is sent on to Telegram's
//!   authorization endpoint with tglink's own `state`, `nonce` and PKCE, and tglink's callback
//!   `{TGLINK_ISSUER}/oauth/callback/telegram` as the redirect URI.
//! - `GET /oauth/callback/telegram`: takes the stored request once (a conditional write: a
//!   replayed or unknown `state` is refused), redeems Telegram's code (tglink's PKCE verifier,
//!   client secret), verifies Telegram's ID token (`shared::telegram::oidc`), stores a one-time
//!   tglink authorization code (≤ 60 s, bound to the client, the redirect URI, the code
//!   challenge, the nonce and the Telegram identity) and sends the browser to the client's
//!   `redirect_uri` with `code`, the client's `state` and `iss` (RFC 9207). The session starts
//!   when the client redeems the code at `POST /oauth/token` (`oauth`'s `code_grant`).
//!
//! Errors: once the client and its redirect URI are known to match the registry, every refusal
//! is an OAuth error redirect to that URI (RFC 6749 §4.1.2.1: `error`, `error_description`,
//! `state`, `iss`); before that (unknown client, unregistered redirect URI, unknown or replayed
//! `state`) the answer is a problem+json page, never a redirect (RFC 6749 §4.1.2.1, RFC 9700
//! §4.1: no open redirect). Telegram unreachable → `temporarily_unavailable`. No state, code,
//! nonce, verifier or secret reaches a log line.

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use std::{collections::BTreeMap, sync::Arc};
use tglink_shared::{
    http::Problem,
    oauth::{OidcClient, OidcClients, TokenConfig, pkce},
    outbound::Outbound,
    routes::{Endpoint, Operation, Route, dispatch, routes, switched_off},
    runtime::{Function, Startup, StartupError},
    store::{
        Authorizations, StoreError,
        authorizations::{CODE_TTL_SECS, IssuedCode, PendingAuthorization, REQUEST_TTL_SECS},
    },
    telegram::oidc::{TelegramOidc, TelegramOidcConfig, UpstreamAuthorization, UpstreamError},
    time::Clock,
    token::OneTimeToken,
};

pub const AUTHORIZE: Route = Route::new("GET", "/oauth/authorize");
pub const CALLBACK: Route = Route::new("GET", "/oauth/callback/telegram");

/// The path of tglink's redirect URI at Telegram (under `TGLINK_ISSUER`).
pub const CALLBACK_PATH: &str = "/oauth/callback/telegram";

/// The scopes tglink asks Telegram for.
pub const UPSTREAM_SCOPE: &str = "openid profile";

enum AuthorizeOp {
    Authorize,
    Callback,
}

impl Operation for AuthorizeOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(AUTHORIZE, |_| Self::Authorize),
        Endpoint::new(CALLBACK, |_| Self::Callback),
    ];
}

pub const ROUTES: &[Route] = &routes::<AuthorizeOp, { AuthorizeOp::ENDPOINTS.len() }>();

pub struct Authorize {
    pub clients: OidcClients,
    /// `None` when Telegram OIDC is not configured (no `TELEGRAM_OIDC_CLIENT_SECRET`): every
    /// route is then `404`.
    pub upstream: Option<TelegramOidc>,
    pub authorizations: Arc<dyn Authorizations>,
    pub tokens: TokenConfig,
    pub clock: Clock,
}

#[async_trait]
impl Function for Authorize {
    fn secrets() -> &'static [&'static str] {
        &[
            "TELEGRAM_BOT_TOKEN",
            "TELEGRAM_OIDC_CLIENT_SECRET",
            "TGLINK_OIDC_CLIENTS",
        ]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let clients = OidcClients::from_env(env)?;
        let clock = Clock::system();
        let upstream = TelegramOidcConfig::from_env(env)?
            .map(|config| TelegramOidc::new(config, Outbound::default(), clock.clone()));
        let store = startup.store().await?;
        Ok(Self {
            clients,
            upstream,
            authorizations: store.authorizations(),
            tokens: startup.token_config()?,
            clock,
        })
    }

    fn routes(&self) -> &'static [Route] {
        ROUTES
    }

    async fn handle(&self, req: Request) -> Response<Body> {
        handle(self, req).await
    }
}

pub async fn handle(deps: &Authorize, req: Request) -> Response<Body> {
    let Some(upstream) = &deps.upstream else {
        return switched_off();
    };
    dispatch(&req, async |op| {
        let result = match op {
            AuthorizeOp::Authorize => authorize(deps, upstream, &req).await,
            AuthorizeOp::Callback => callback(deps, upstream, &req).await,
        };
        match result {
            Ok(response) => Ok(response),
            Err(Refusal::Page(problem)) => Err(problem),
            Err(Refusal::Redirect(redirect)) => Ok(redirect.into_response(&deps.tokens.issuer)),
        }
    })
    .await
}

// ---- refusals ----

/// An OAuth error sent back to a trusted (registered, exact) redirect URI.
pub struct ErrorRedirect {
    to: String,
    state: Option<String>,
    error: &'static str,
    description: String,
}

impl ErrorRedirect {
    fn into_response(self, issuer: &str) -> Response<Body> {
        let mut params = vec![
            ("error", self.error),
            ("error_description", self.description.as_str()),
        ];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        params.push(("iss", issuer));
        tracing::info!(error = self.error, "oauth authorize: error redirect");
        found(&with_query(&self.to, &params))
    }
}

/// How a request is refused: a page (no trusted redirect URI) or an error redirect.
pub enum Refusal {
    Page(Problem),
    Redirect(ErrorRedirect),
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Self {
        Self::Page(p)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Page(e.into())
    }
}

/// The trusted redirect of one client request, once its redirect URI matched the registry.
struct Trusted<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
}

impl Trusted<'_> {
    fn refuse(&self, error: &'static str, description: impl Into<String>) -> Refusal {
        Refusal::Redirect(ErrorRedirect {
            to: self.redirect_uri.to_owned(),
            state: self.state.map(str::to_owned),
            error,
            description: description.into(),
        })
    }

    /// A store or upstream failure as the client sees it: `temporarily_unavailable` (RFC 6749
    /// §4.1.2.1) for a transient one, `server_error` otherwise. Logged with its cause here.
    fn failed(&self, problem: Problem) -> Refusal {
        if problem.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(
                cause = problem.cause.as_deref(),
                "oauth authorize: dependency unavailable"
            );
            self.refuse(
                "temporarily_unavailable",
                "a dependency is unavailable; retry later",
            )
        } else {
            tracing::error!(
                cause = problem.cause.as_deref(),
                "oauth authorize: internal error"
            );
            self.refuse("server_error", "internal error")
        }
    }
}

fn bad_page(code: &'static str, detail: &str) -> Refusal {
    tracing::info!(code, "oauth authorize refused (no trusted redirect)");
    Refusal::Page(Problem::bad_request(code, detail))
}

// ---- the query ----

/// The query parameters, each at most once (RFC 6749 §3.1); empty ones are absent.
struct Query(BTreeMap<String, String>);

impl Query {
    fn parse(req: &Request) -> Result<Self, Refusal> {
        let mut params = BTreeMap::new();
        let raw = req.uri().query().unwrap_or("");
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if params.contains_key(name.as_ref()) {
                return Err(bad_page("invalid_request", "a query parameter is repeated"));
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        params.retain(|_, v| !v.is_empty());
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

// ---- GET /oauth/authorize ----

async fn authorize(
    deps: &Authorize,
    upstream: &TelegramOidc,
    req: &Request,
) -> Result<Response<Body>, Refusal> {
    let query = Query::parse(req)?;
    let client = query
        .get("client_id")
        .and_then(|id| deps.clients.get(id))
        .ok_or_else(|| bad_page("unknown_client", "client_id is missing or not registered"))?;
    let redirect_uri = query
        .get("redirect_uri")
        .filter(|uri| client.has_redirect_uri(uri))
        .ok_or_else(|| {
            bad_page(
                "invalid_redirect_uri",
                "redirect_uri is missing or not registered for this client (exact match)",
            )
        })?;
    let trusted = Trusted {
        redirect_uri,
        state: query.get("state"),
    };
    let request = validate(client, &query, &trusted)?;

    let now = deps.clock.now();
    let state = OneTimeToken::mint();
    let upstream_nonce = pkce::new_random_token();
    let upstream_verifier = pkce::new_code_verifier();
    let callback = deps.tokens.url(CALLBACK_PATH);
    let location = upstream
        .authorization_url(&UpstreamAuthorization {
            redirect_uri: &callback,
            state: state.expose(),
            nonce: &upstream_nonce,
            code_challenge: &pkce::s256_challenge(&upstream_verifier),
            scope: UPSTREAM_SCOPE,
        })
        .await
        .map_err(|e| trusted.failed(upstream_problem(e)))?;
    let pending = PendingAuthorization {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        client_state: request.state.to_owned(),
        client_nonce: request.nonce.map(str::to_owned),
        code_challenge: request.code_challenge.to_owned(),
        scope: request.scope,
        upstream_verifier,
        upstream_nonce,
        created_at: now,
        expires_at: now.plus_secs(REQUEST_TTL_SECS),
    };
    deps.authorizations
        .put_request(&state.hash(), &pending)
        .await
        .map_err(|e| trusted.failed(e.into()))?;
    tracing::info!(
        client_id = %client.client_id,
        outcome = "sent_to_telegram",
        "oauth authorize"
    );
    Ok(found(&location))
}

/// A validated authorization request.
struct ValidRequest<'a> {
    state: &'a str,
    nonce: Option<&'a str>,
    code_challenge: &'a str,
    scope: String,
}

fn validate<'a>(
    client: &OidcClient,
    query: &'a Query,
    trusted: &Trusted<'_>,
) -> Result<ValidRequest<'a>, Refusal> {
    if query.get("request").is_some() {
        return Err(trusted.refuse("request_not_supported", "request objects are not supported"));
    }
    if query.get("request_uri").is_some() {
        return Err(trusted.refuse("request_uri_not_supported", "request_uri is not supported"));
    }
    match query.get("response_type") {
        Some("code") => {}
        None => return Err(trusted.refuse("invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(trusted.refuse("unsupported_response_type", "response_type must be code"));
        }
    }
    if query
        .get("response_mode")
        .is_some_and(|mode| mode != "query")
    {
        return Err(trusted.refuse("invalid_request", "response_mode must be query"));
    }
    let state = query
        .get("state")
        .ok_or_else(|| trusted.refuse("invalid_request", "state is required"))?;
    let scopes: Vec<&str> = query
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !scopes.contains(&"openid") {
        return Err(trusted.refuse("invalid_scope", "scope must include openid"));
    }
    if !client.allows_scopes(scopes.iter().copied()) {
        return Err(trusted.refuse(
            "invalid_scope",
            "a requested scope is not allowed to this client",
        ));
    }
    // Optional in the code flow (OIDC Core §3.1.2.1); when sent, it is in the ID token.
    let nonce = query.get("nonce");
    if nonce.is_some_and(|n| n.len() > 255) {
        return Err(trusted.refuse("invalid_request", "nonce is too long (at most 255)"));
    }
    let code_challenge = query.get("code_challenge").ok_or_else(|| {
        trusted.refuse(
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        )
    })?;
    if query.get("code_challenge_method") != Some(pkce::S256) {
        return Err(trusted.refuse(
            "invalid_request",
            "code_challenge_method must be S256 (plain is not supported)",
        ));
    }
    if !pkce::is_valid_s256_challenge(code_challenge) {
        return Err(trusted.refuse(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 (43 characters)",
        ));
    }
    if query
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "none"))
    {
        return Err(trusted.refuse(
            "login_required",
            "tglink cannot sign in without showing Telegram's page",
        ));
    }
    let mut granted: Vec<&str> = Vec::new();
    for scope in scopes {
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(ValidRequest {
        state,
        nonce,
        code_challenge,
        scope: granted.join(" "),
    })
}

// ---- GET /oauth/callback/telegram ----

async fn callback(
    deps: &Authorize,
    upstream: &TelegramOidc,
    req: &Request,
) -> Result<Response<Body>, Refusal> {
    let query = Query::parse(req)?;
    let state = query
        .get("state")
        .ok_or_else(|| bad_page("invalid_state", "state is missing"))?;
    let now = deps.clock.now();
    let attempt = OneTimeToken::mint().hash();
    let pending = deps
        .authorizations
        .take_request(
            &tglink_shared::token::TokenHash::of(state.as_bytes()),
            attempt.as_str(),
            now,
        )
        .await?
        .ok_or_else(|| {
            bad_page(
                "invalid_state",
                "this sign-in is unknown, expired or was completed before; start again",
            )
        })?;
    let trusted = Trusted {
        redirect_uri: &pending.redirect_uri,
        state: Some(&pending.client_state),
    };
    if let Some(error) = query.get("error") {
        tracing::info!(
            client_id = %pending.client_id,
            upstream_error = printable(error),
            "oauth callback: telegram refused"
        );
        return Err(if error == "access_denied" {
            trusted.refuse("access_denied", "the user declined the sign-in at Telegram")
        } else {
            trusted.refuse("server_error", "Telegram refused the sign-in")
        });
    }
    let code = query
        .get("code")
        .ok_or_else(|| trusted.refuse("server_error", "Telegram sent no code"))?;
    let callback = deps.tokens.url(CALLBACK_PATH);
    let identity = match upstream
        .redeem(
            code,
            &pending.upstream_verifier,
            &callback,
            &pending.upstream_nonce,
        )
        .await
    {
        Ok(identity) => identity,
        Err(UpstreamError::Unavailable) => {
            tracing::warn!("oauth callback: telegram unavailable");
            return Err(trusted.refuse(
                "temporarily_unavailable",
                "Telegram is unavailable; retry later",
            ));
        }
        Err(err) => {
            tracing::info!(
                client_id = %pending.client_id,
                outcome = err.code(),
                "oauth callback: telegram sign-in refused"
            );
            return Err(trusted.refuse(
                "access_denied",
                format!("the Telegram sign-in was refused: {}", err.code()),
            ));
        }
    };
    let code = OneTimeToken::mint();
    let issued = IssuedCode {
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        nonce: pending.client_nonce.clone(),
        scope: pending.scope.clone(),
        telegram_user_id: identity.telegram_user_id,
        profile: identity.profile.clone(),
        auth_time: identity.auth_time,
        created_at: now,
        expires_at: now.plus_secs(CODE_TTL_SECS),
    };
    deps.authorizations
        .put_code(&code.hash(), &issued)
        .await
        .map_err(|e| trusted.failed(e.into()))?;
    tracing::info!(
        client_id = %pending.client_id,
        telegram_user_id = identity.telegram_user_id.get(),
        outcome = "code_issued",
        "oauth callback"
    );
    Ok(found(&with_query(
        &pending.redirect_uri,
        &[
            ("code", code.expose()),
            ("state", &pending.client_state),
            ("iss", &deps.tokens.issuer),
        ],
    )))
}

fn upstream_problem(err: UpstreamError) -> Problem {
    match err {
        UpstreamError::Unavailable => {
            Problem::unavailable("Telegram").cause("telegram unavailable")
        }
        other => Problem::internal().cause(other.code()),
    }
}

/// An upstream error code as it may appear in a log line: short and plain, else `other`.
fn printable(code: &str) -> &str {
    if code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        code
    } else {
        "other"
    }
}

/// `uri` with `params` added to its query.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// `302 Found` to `location`, never cached, no referrer (the URL carries a code or state).
fn found(location: &str) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::FOUND)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .header("referrer-policy", "no-referrer")
        .body(Body::Empty)
        .expect("static response parts are valid");
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => respond_internal(),
    }
}

fn respond_internal() -> Response<Body> {
    tglink_shared::http::respond(Err(
        Problem::internal().cause("redirect URL is not a header")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<AuthorizeOp>();
    }

    #[test]
    fn query_is_appended_to_an_existing_query() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", "a b"), ("state", "s&t")]
            ),
            "https://a.example/cb?x=1&code=a+b&state=s%26t"
        );
        assert_eq!(
            with_query("https://a.example/cb", &[("error", "access_denied")]),
            "https://a.example/cb?error=access_denied"
        );
    }
}
