//! `oauth`: `POST /oauth/token` and `POST /oauth/revoke`, the token service's OAuth 2.0
//! endpoints. Bodies are `application/x-www-form-urlencoded`; every refusal is RFC 6749 §5.2
//! JSON `{"error","error_description"}` (not problem+json: OAuth clients expect this), and
//! every token response carries `Cache-Control: no-store` and `Pragma: no-cache` (§5.1).
//!
//! - `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693) with
//!   `subject_token=<initData>` and
//!   `subject_token_type=urn:tglink:params:oauth:token-type:telegram-init-data`: the initData
//!   is validated exactly as the Mini App's `verify` does (signature, age, a human user), then
//!   one write to the sign-in record claims it, checks the block and starts a session
//!   ([`SignIns::start`]). Answer: an access token (RFC 9068 JWT, ES256), `token_type: Bearer`,
//!   `expires_in`, a refresh token and `issued_token_type`.
//! - `grant_type=refresh_token`: one write rotates the refresh token ([`SignIns::refresh`]); a
//!   rotated-away token ends the whole session (reuse detection, RFC 9700 §4.14.2).
//! - `/oauth/revoke` (RFC 7009): `token` = a refresh token ends its session; an access token is
//!   verified and ends its session (logout from a backend holding only the access token);
//!   `token_type_hint` is accepted and not needed (the two shapes differ). `200` also for an unknown or invalid
//!   token, as RFC 7009 §2.2 requires.
//!
//! - `grant_type=authorization_code` ([`code_grant`]): a client registered in
//!   `TGLINK_OIDC_CLIENTS` redeems the one-time code of tglink's OpenID Connect authorization
//!   endpoint (`authorize` function) for an ID token, an access token and a refresh token.
//!
//! `client_id` of the initData exchange, refresh and revoke: a public `client_id` form field
//! (1–64 of `[A-Za-z0-9._:-]`) is recorded on the session and put in its tokens, default
//! [`DEFAULT_CLIENT_ID`]; client authentication (`Authorization` header, `client_secret`) is
//! refused there with `401 invalid_client`. Only the `authorization_code` grant authenticates
//! registered clients.
//!
//! - The Login Widget's exchange (`subject_token_type=urn:tglink:params:oauth:token-type:
//!   telegram-login-widget`) is in [`widget`]: the same one write, `amr` `telegram_widget`.
//!
//! Each sign-in method has its flag (`TELEGRAM_MINIAPP_ENABLED`,
//! `TELEGRAM_LOGIN_WIDGET_ENABLED`); a switched-off method's exchange is `400 invalid_request`
//! `sign_in_method_disabled`, and the routes are `404` only when no method is on (or
//! `TELEGRAM_FEATURE_ENABLED` is off). Tokens, initData, widget data and keys never reach a log
//! line or a body other than the token response itself.

mod widget;

use std::{collections::BTreeMap, sync::Arc};

mod code_grant;

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;
use tglink_shared::{
    config::positive_or,
    http::{Problem, body_bytes},
    ids::TelegramUserId,
    oauth::{AccessTokenClaims, AccessTokenVerifier, OidcClients, TokenConfig, TokenSigner},
    routes::{Endpoint, Operation, Route, dispatch, routes, switched_off},
    runtime::{Function, Startup, StartupError},
    store::{
        Authorizations, SignIns, StoreError,
        signins::{
            Amr, DEFAULT_SESSIONS_MAX, InitDataUse, NewSession, Profile, RefreshKey,
            RefreshOutcome, RefreshToken, SessionId, SignedIn, StartOutcome,
        },
    },
    telegram::{
        login_widget::WidgetConfig,
        miniapp::{Flags, MiniAppConfig, MiniAppError, RawInitData},
    },
    time::{Clock, UnixTime},
    token::OneTimeToken,
};

pub const TOKEN: Route = Route::new("POST", "/oauth/token");
pub const REVOKE: Route = Route::new("POST", "/oauth/revoke");

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const INIT_DATA_TOKEN_TYPE: &str = "urn:tglink:params:oauth:token-type:telegram-init-data";
pub use widget::WIDGET_TOKEN_TYPE;
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The `client_id` of sessions whose request named none.
pub const DEFAULT_CLIENT_ID: &str = "tglink";

enum OAuthOp {
    Token,
    Revoke,
}

impl Operation for OAuthOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(TOKEN, |_| Self::Token),
        Endpoint::new(REVOKE, |_| Self::Revoke),
    ];
}

pub const ROUTES: &[Route] = &routes::<OAuthOp, { OAuthOp::ENDPOINTS.len() }>();

pub struct OAuth {
    /// `None` when the Mini App is switched off (its exchange is then refused).
    pub miniapp: Option<MiniAppConfig>,
    /// `None` when the Login Widget is switched off (its exchange is then refused). With no
    /// sign-in method on, every route is `404`.
    pub widget: Option<WidgetConfig>,
    pub signins: Arc<dyn SignIns>,
    pub signer: TokenSigner,
    pub verifier: AccessTokenVerifier,
    pub tokens: TokenConfig,
    /// `TGLINK_SESSIONS_MAX` (default 20): live sessions per Telegram user; at the cap a new
    /// sign-in ends the oldest.
    pub sessions_max: u32,
    /// `TGLINK_OIDC_CLIENTS`: the clients of the `authorization_code` grant ([`code_grant`]).
    /// None registered: the grant is refused.
    pub clients: OidcClients,
    /// `TELEGRAM_SESSION_TTL_SEC`: the absolute lifetime of a session an authorization code
    /// starts (the Mini App's and the widget's configurations carry their own copy).
    pub session_ttl_secs: u64,
    pub authorizations: Arc<dyn Authorizations>,
    pub clock: Clock,
}

#[async_trait]
impl Function for OAuth {
    fn secrets() -> &'static [&'static str] {
        &["TELEGRAM_BOT_TOKEN", "TGLINK_OIDC_CLIENTS"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let miniapp = if Flags::from_env(env)?.miniapp_enabled() {
            Some(MiniAppConfig::from_env(env)?)
        } else {
            None
        };
        let sessions_max =
            positive_or(env, "TGLINK_SESSIONS_MAX", DEFAULT_SESSIONS_MAX.into())?.min(100) as u32;
        let store = startup.store().await?;
        Ok(Self {
            miniapp,
            widget: WidgetConfig::from_env(env)?,
            signins: store.signins(),
            signer: startup.token_signer().await?,
            verifier: startup.access_token_verifier().await?,
            tokens: startup.token_config()?,
            sessions_max,
            clients: OidcClients::from_env(env)?,
            session_ttl_secs: positive_or(
                env,
                "TELEGRAM_SESSION_TTL_SEC",
                tglink_shared::telegram::miniapp::DEFAULT_SESSION_TTL_SECS,
            )?,
            authorizations: store.authorizations(),
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

pub async fn handle(deps: &OAuth, req: Request) -> Response<Body> {
    if deps.miniapp.is_none() && deps.widget.is_none() && deps.clients.is_empty() {
        return switched_off();
    }
    dispatch(&req, async |op| {
        Ok(match op {
            OAuthOp::Token => answer(token(deps, &req).await, "oauth token"),
            OAuthOp::Revoke => answer(revoke(deps, &req).await, "oauth revoke"),
        })
    })
    .await
}

// ---- errors: RFC 6749 §5.2 ----

/// An OAuth error response. The description never quotes a value of the request.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Internal cause, logged, never answered.
    cause: Option<String>,
    retry_after: Option<u32>,
    www_authenticate: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            cause: None,
            retry_after: None,
            www_authenticate: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            www_authenticate: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        });
        let mut resp = token_response(self.status, body.to_string());
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.www_authenticate {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tglink\""),
            );
        }
        resp
    }
}

/// A dependency failure as OAuth sees it: transient → `503 temporarily_unavailable` with
/// `Retry-After`, anything else → `500 server_error`.
impl From<Problem> for OAuthError {
    fn from(problem: Problem) -> Self {
        let cause = problem.cause.clone();
        let mut err = if problem.status == StatusCode::SERVICE_UNAVAILABLE {
            Self {
                retry_after: problem.retry_after,
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "a dependency is unavailable; retry later",
                )
            }
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        };
        err.cause = cause;
        err
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        Problem::from(err).into()
    }
}

impl From<tglink_shared::oauth::SigningError> for OAuthError {
    fn from(err: tglink_shared::oauth::SigningError) -> Self {
        Problem::from(err).into()
    }
}

/// A JSON response with the token endpoint's cache headers (RFC 6749 §5.1).
fn token_response(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(Body::Text(body))
        .expect("static response parts are valid")
}

/// The response, and the one log line of a refusal or failure (code only).
fn answer(result: Result<Response<Body>, OAuthError>, what: &str) -> Response<Body> {
    result.unwrap_or_else(|err| {
        let (status, error, cause) = (err.status.as_u16(), err.error, err.cause.as_deref());
        match status {
            502..=504 => tracing::warn!(status, error, cause, "{what}: dependency failed"),
            500..=599 => tracing::error!(status, error, cause, "{what}: internal error"),
            _ => tracing::info!(status, error, "{what} refused"),
        }
        err.into_response()
    })
}

// ---- the form ----

/// The parameters of a form body: each at most once (RFC 6749 §3.2), empty ones treated as
/// absent (§3.1).
#[derive(Debug)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    pub fn parse(req: &Request) -> Result<Self, OAuthError> {
        let form_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if form_type != Some(true) {
            return Err(OAuthError::invalid_request(
                "send the body as application/x-www-form-urlencoded",
            ));
        }
        let bytes = body_bytes(req)
            .map_err(|_| OAuthError::invalid_request("the request body is too large"))?;
        let mut params = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            if params.contains_key(name.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&name)
                )));
            }
            params.insert(name.into_owned(), value.into_owned());
        }
        params.retain(|_, v| !v.is_empty());
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }
}

/// A parameter name as it may appear in a description: only a short safe name, else `a
/// parameter` (names are not secrets, but they are client input).
fn printable(name: &str) -> &str {
    if !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name
    } else {
        "(a parameter)"
    }
}

/// The public `client_id` of the request, or [`DEFAULT_CLIENT_ID`]; client authentication is
/// refused (no client has a secret).
fn client_id(req: &Request, form: &Form) -> Result<String, OAuthError> {
    if req.headers().contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
        return Err(OAuthError::invalid_client(
            "client authentication is not supported: clients are public",
        ));
    }
    match form.get("client_id") {
        None => Ok(DEFAULT_CLIENT_ID.to_owned()),
        Some(id)
            if id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
        {
            Ok(id.to_owned())
        }
        Some(_) => Err(OAuthError::invalid_request(
            "client_id must be 1-64 of A-Z a-z 0-9 . _ : -",
        )),
    }
}

// ---- /oauth/token ----

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

async fn token(deps: &OAuth, req: &Request) -> Result<Response<Body>, OAuthError> {
    let form = Form::parse(req)?;
    if form.get("grant_type") == Some(code_grant::AUTHORIZATION_CODE) {
        return code_grant::grant(deps, req, &form).await;
    }
    let client_id = client_id(req, &form)?;
    match form.required("grant_type")? {
        TOKEN_EXCHANGE => exchange(deps, &form, client_id).await,
        REFRESH_TOKEN => refresh(deps, &form).await,
        _ => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code, urn:ietf:params:oauth:grant-type:token-exchange or refresh_token",
        )),
    }
}

/// initData refusals: RFC 8693 §2.2.2 answers an invalid subject token with
/// `invalid_request`; the description starts with tglink's stable code.
fn initdata_refused(err: MiniAppError, id: Option<TelegramUserId>) -> OAuthError {
    tracing::info!(
        telegram_user_id = id.map(TelegramUserId::get),
        outcome = err.code(),
        "oauth token exchange refused"
    );
    OAuthError::invalid_request(format!("{}: {err}", err.code()))
}

/// A sign-in method switched off by its flag: its exchange is refused (the other methods, the
/// refresh and revocation stay).
fn method_disabled(flag: &str) -> OAuthError {
    OAuthError::invalid_request(format!(
        "sign_in_method_disabled: this subject_token_type is switched off ({flag})"
    ))
}

async fn exchange(
    deps: &OAuth,
    form: &Form,
    client_id: String,
) -> Result<Response<Body>, OAuthError> {
    let subject = form.required("subject_token")?;
    let subject_type = form.required("subject_token_type")?;
    if subject_type != INIT_DATA_TOKEN_TYPE && subject_type != WIDGET_TOKEN_TYPE {
        return Err(OAuthError::invalid_request(format!(
            "subject_token_type must be {INIT_DATA_TOKEN_TYPE} or {WIDGET_TOKEN_TYPE}"
        )));
    }
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    if subject_type == WIDGET_TOKEN_TYPE {
        return widget::exchange(deps, subject, client_id).await;
    }
    let Some(miniapp) = &deps.miniapp else {
        return Err(method_disabled("TELEGRAM_MINIAPP_ENABLED"));
    };
    let now = deps.clock.now();
    let verified = miniapp
        .verify(&RawInitData::new(subject), now)
        .map_err(|e| initdata_refused(e, None))?;
    let id = verified.telegram_user_id;
    let user = &verified.user;
    let first = RefreshToken::mint(RefreshKey {
        telegram_user_id: id,
        sid: SessionId::random(),
        generation: 0,
    });
    let session = NewSession {
        telegram_user_id: id,
        sid: first.key().sid,
        amr: Amr::TelegramMiniApp,
        client_id,
        profile: Profile {
            username: user.username.clone(),
            first_name: Some(user.first_name.clone()).filter(|n| !n.is_empty()),
            language_code: user.language_code.clone(),
            is_premium: user.is_premium,
        },
        auth_time: UnixTime(verified.data.auth_date),
        created_at: now,
        expires_at: now.plus_secs(miniapp.session_ttl_secs),
        refresh: first.hash(),
    };
    let use_ = miniapp.initdata_use(&verified, now);
    let started = start(deps, &session, &use_, |outcome| {
        let err = match outcome {
            Refused::Replayed => MiniAppError::Replayed,
            Refused::Blocked => MiniAppError::Blocked,
        };
        initdata_refused(err, Some(id))
    })
    .await?;
    issue(deps, &started, &first, Some(ACCESS_TOKEN_TYPE), now).await
}

/// Why [`start`] wrote nothing.
enum Refused {
    Replayed,
    Blocked,
}

/// Starts `session` with the replay claim `use_` in one write (every exchange's last step);
/// `refused` answers a replay or a block in the method's terms.
async fn start(
    deps: &OAuth,
    session: &NewSession,
    use_: &InitDataUse,
    refused: impl FnOnce(Refused) -> OAuthError,
) -> Result<SignedIn, OAuthError> {
    match deps.signins.start(session, use_, deps.sessions_max).await? {
        StartOutcome::Started { session, evicted } => {
            tracing::info!(
                telegram_user_id = session.telegram_user_id.get(),
                sid = %session.sid,
                amr = session.amr.as_str(),
                evicted = evicted.map(|s| s.to_string()),
                linked = session.app_user_id.is_some(),
                outcome = "started",
                "oauth token exchange"
            );
            Ok(session)
        }
        StartOutcome::Replayed => Err(refused(Refused::Replayed)),
        StartOutcome::Blocked => Err(refused(Refused::Blocked)),
    }
}

async fn refresh(deps: &OAuth, form: &Form) -> Result<Response<Body>, OAuthError> {
    let presented = RefreshToken::parse(form.required("refresh_token")?)
        .map_err(|_| OAuthError::invalid_grant("the refresh token is invalid or expired"))?;
    let id = presented.key().telegram_user_id;
    let now = deps.clock.now();
    let next = presented.next();
    match deps.signins.refresh(&presented, &next.hash(), now).await? {
        RefreshOutcome::Refreshed(session) => {
            tracing::info!(
                telegram_user_id = id.get(),
                sid = %session.sid,
                outcome = "refreshed",
                "oauth refresh"
            );
            issue(deps, &session, &next, None, now).await
        }
        RefreshOutcome::Reused => {
            tracing::warn!(
                telegram_user_id = id.get(),
                sid = %presented.key().sid,
                outcome = "reused",
                "oauth refresh: a rotated refresh token was presented; the session is ended"
            );
            Err(OAuthError::invalid_grant(
                "the refresh token was used before; the session is ended",
            ))
        }
        RefreshOutcome::Invalid => Err(OAuthError::invalid_grant(
            "the refresh token is invalid or expired",
        )),
    }
}

/// The claims of an access token for `session`, issued at `now`.
pub fn claims(config: &TokenConfig, session: &SignedIn, now: UnixTime) -> AccessTokenClaims {
    let ttl = config.access_token_ttl.as_secs();
    let secs = |t: UnixTime| i64::try_from(t.secs()).unwrap_or(i64::MAX);
    let mut jti = OneTimeToken::mint().hash().as_str().to_owned();
    jti.truncate(22);
    AccessTokenClaims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: session.telegram_user_id.to_string(),
        client_id: session.client_id.clone(),
        app_user_id: session.app_user_id.as_ref().map(|u| u.as_str().to_owned()),
        sid: session.sid.to_string(),
        amr: vec![session.amr.as_str().to_owned()],
        auth_time: secs(session.auth_time),
        iat: secs(now),
        exp: secs(now.plus_secs(ttl)),
        jti,
        username: session.profile.username.clone(),
        first_name: session.profile.first_name.clone(),
        language_code: session.profile.language_code.clone(),
        is_premium: session.profile.is_premium,
    }
}

async fn issue(
    deps: &OAuth,
    session: &SignedIn,
    refresh: &RefreshToken,
    issued_token_type: Option<&'static str>,
    now: UnixTime,
) -> Result<Response<Body>, OAuthError> {
    let access_token = deps
        .signer
        .sign(&claims(&deps.tokens, session, now))
        .await?;
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: deps.tokens.access_token_ttl.as_secs(),
        refresh_token: refresh.expose().to_owned(),
        issued_token_type,
    };
    let text = serde_json::to_string(&body)
        .map_err(|_| OAuthError::from(Problem::internal().cause("token response")))?;
    Ok(token_response(StatusCode::OK, text))
}

// ---- /oauth/revoke ----

async fn revoke(deps: &OAuth, req: &Request) -> Result<Response<Body>, OAuthError> {
    let form = Form::parse(req)?;
    client_id(req, &form)?;
    let token = form.required("token")?;
    // `token_type_hint` is accepted and not needed: a refresh token (43 characters) and an
    // access token (a JWT, with dots) cannot be taken for each other.
    let ended = match RefreshToken::parse(token).ok() {
        Some(refresh) => {
            let id = refresh.key().telegram_user_id;
            let ended = deps.signins.end_by_refresh(&refresh).await?;
            tracing::info!(
                telegram_user_id = id.get(),
                ended,
                kind = "refresh_token",
                "oauth revoke"
            );
            ended
        }
        None => revoke_access_token(deps, token).await?,
    };
    let _ = ended;
    Ok(token_response(StatusCode::OK, "{}".to_owned()))
}

/// A valid access token ends its session; an invalid one is ignored (RFC 7009 §2.2).
async fn revoke_access_token(deps: &OAuth, token: &str) -> Result<bool, OAuthError> {
    let now = deps.clock.now();
    let claims = match deps.verifier.verify(token, now).await {
        Ok(claims) => claims,
        Err(tglink_shared::oauth::AccessTokenError::Invalid(_)) => {
            tracing::info!(kind = "unknown", ended = false, "oauth revoke");
            return Ok(false);
        }
        Err(tglink_shared::oauth::AccessTokenError::Store(e)) => return Err(e.into()),
    };
    let (Ok(id), Some(sid)) = (
        TelegramUserId::parse(&claims.sub),
        SessionId::parse(&claims.sid),
    ) else {
        return Ok(false);
    };
    let ended = deps.signins.end_session(id, sid).await?;
    tracing::info!(
        telegram_user_id = id.get(),
        ended,
        kind = "access_token",
        "oauth revoke"
    );
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<OAuthOp>();
    }

    fn form(body: &str) -> Result<Form, OAuthError> {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::Text(body.to_owned()))
            .unwrap();
        Form::parse(&req)
    }

    #[test]
    fn forms_refuse_repeats_and_drop_empty_values() {
        let f = form("grant_type=refresh_token&refresh_token=&client_id=a%2Bb").unwrap();
        assert_eq!(f.get("grant_type"), Some("refresh_token"));
        assert_eq!(f.get("refresh_token"), None);
        assert_eq!(f.get("client_id"), Some("a+b"));
        let err = form("grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.error, "invalid_request");
        assert!(err.description.contains("grant_type"));
        // A repeated secret-looking name is never echoed raw.
        let err = form("a%20b%3Dc=1&a%20b%3Dc=2").unwrap_err();
        assert!(!err.description.contains("a b"));
    }
}
