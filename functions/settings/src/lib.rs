//! `settings`: the credential vault's write side.
//!
//! - `PUT /api/settings/bot-token`: the bot token is checked for shape, proven with the Bot
//!   API's `getMe` (which also names the bot), then sealed into the user's record;
//! - `PUT /api/telegram/session`, `DELETE /api/telegram/session`: the MTProto session string
//!   (and phone, channel invite) sealed, with its auth state (`saved_at`, version);
//! - `GET /api/telegram/status`: whether the session is usable (idle expiry after
//!   `TELEGRAM_SESSION_MAX_IDLE_SEC`, worker reads count as activity);
//! - `POST /api/telegram/session/report`: a worker reports `AUTH_KEY_UNREGISTERED` (or
//!   another fatal MTProto error); the session is cleared and re-authentication is required;
//! - `POST/GET /api/worker/tokens`, `DELETE /api/worker/tokens/{id}`: worker tokens (at most
//!   `WORKER_TOKENS_MAX` active per user); `DELETE /api/worker/tokens` revokes them all, as
//!   does `DELETE /api/telegram/session?revoke_workers=true`.
//!
//! This module only translates HTTP to the domain: changes to the record are in [`record`]
//! (read–modify–write of one versioned record, every secret sealed under one data key), the
//! status answer in [`status`](mod@status).

pub mod record;
pub mod status;

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::{Deserialize, Serialize};
use tglink_shared::{
    auth::JwtVerifier,
    http::{Problem, empty, json, parse_json},
    ids::{TelegramUserId, UserId},
    routes::{Endpoint, FromParam, Operation, PathParam, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    seal::Sealer,
    secret::SecretString,
    store::{
        Credentials, CredentialsRecord, InsertOutcome, WorkerTokenRecord, WorkerTokens,
        credentials::WorkerAuth,
        worker_tokens::{RevokeOutcome, max_active_from_env},
    },
    telegram::bot_api::{BotApi, BotApiError, BotToken},
    time::{Clock, UnixTime},
    vault::{
        self, WorkerToken,
        caller::{Presented, present_app_or_worker, worker_token_invalid},
        max_idle_from_env,
        worker_token::{is_worker_token_id, new_worker_token_id},
    },
};

use crate::{
    record::{Applied, Change, SessionInput, Vault, VaultError},
    status::status,
};

/// What `settings` does: one operation per route, its path parameter typed.
enum SettingsOp {
    PutBotToken,
    PutSession,
    DeleteSession,
    GetStatus,
    Report,
    CreateWorkerToken,
    ListWorkerTokens,
    RevokeAllWorkerTokens,
    RevokeWorkerToken(PathParam<WorkerTokenId>),
}

impl Operation for SettingsOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(Route::new("PUT", "/api/settings/bot-token"), |_| {
            Self::PutBotToken
        }),
        Endpoint::new(Route::new("PUT", "/api/telegram/session"), |_| {
            Self::PutSession
        }),
        Endpoint::new(Route::new("DELETE", "/api/telegram/session"), |_| {
            Self::DeleteSession
        }),
        Endpoint::new(Route::new("GET", "/api/telegram/status"), |_| {
            Self::GetStatus
        }),
        Endpoint::new(Route::new("POST", "/api/telegram/session/report"), |_| {
            Self::Report
        }),
        Endpoint::new(Route::new("POST", "/api/worker/tokens"), |_| {
            Self::CreateWorkerToken
        }),
        Endpoint::new(Route::new("GET", "/api/worker/tokens"), |_| {
            Self::ListWorkerTokens
        }),
        Endpoint::new(Route::new("DELETE", "/api/worker/tokens"), |_| {
            Self::RevokeAllWorkerTokens
        }),
        Endpoint::new(Route::new("DELETE", "/api/worker/tokens/{id}"), |p| {
            Self::RevokeWorkerToken(p.get("id"))
        }),
    ];
}

pub const ROUTES: &[Route] = &routes::<SettingsOp, { SettingsOp::ENDPOINTS.len() }>();

/// The id of a worker token, as in `DELETE /api/worker/tokens/{id}`.
struct WorkerTokenId(String);

impl FromParam for WorkerTokenId {
    fn from_param(raw: &str) -> Option<Self> {
        is_worker_token_id(raw).then(|| Self(raw.to_owned()))
    }
}

/// Longest accepted MTProto session string.
pub const MAX_SESSION_BYTES: usize = 16 * 1024;

/// MTProto errors a worker may report: each means the stored session is dead.
pub const FATAL_SESSION_ERRORS: &[&str] = &[
    "AUTH_KEY_UNREGISTERED",
    "AUTH_KEY_INVALID",
    "AUTH_KEY_DUPLICATED",
    "SESSION_REVOKED",
    "SESSION_EXPIRED",
    "USER_DEACTIVATED",
    "USER_DEACTIVATED_BAN",
];

pub struct Settings {
    pub auth: JwtVerifier,
    pub credentials: Arc<dyn Credentials>,
    pub worker_tokens: Arc<dyn WorkerTokens>,
    pub sealer: Sealer,
    pub bot_api: BotApi,
    pub max_idle_secs: u64,
    /// `WORKER_TOKENS_MAX`: active worker tokens per user.
    pub worker_tokens_max: usize,
    pub clock: Clock,
}

impl Settings {
    /// The credential records, changed through this function's store, sealer and clock.
    pub fn vault(&self) -> Vault<'_> {
        Vault {
            credentials: self.credentials.as_ref(),
            sealer: &self.sealer,
            clock: &self.clock,
        }
    }
}

#[async_trait]
impl Function for Settings {
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let store = startup.store().await?;
        Ok(Self {
            auth: startup.jwt()?,
            credentials: store.credentials(),
            worker_tokens: store.worker_tokens(),
            sealer: startup.sealer().await?,
            bot_api: BotApi::from_env(env)?,
            max_idle_secs: max_idle_from_env(env)?,
            worker_tokens_max: max_active_from_env(env)?,
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

pub async fn handle(deps: &Settings, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        SettingsOp::PutBotToken => put_bot_token(deps, &req).await,
        SettingsOp::PutSession => put_session(deps, &req).await,
        SettingsOp::DeleteSession => delete_session(deps, &req).await,
        SettingsOp::GetStatus => get_status(deps, &req).await,
        SettingsOp::Report => report(deps, &req).await,
        SettingsOp::CreateWorkerToken => create_worker_token(deps, &req).await,
        SettingsOp::ListWorkerTokens => list_worker_tokens(deps, &req).await,
        SettingsOp::RevokeAllWorkerTokens => revoke_all_worker_tokens(deps, &req).await,
        SettingsOp::RevokeWorkerToken(id) => revoke_worker_token(deps, &req, id).await,
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Errors, mapped to HTTP in one place.

/// Why saving a bot token failed. Nothing was stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum BotTokenError {
    #[error("the bot token is malformed")]
    Malformed,
    #[error(transparent)]
    Telegram(#[from] BotApiError),
    #[error("getMe did not name the bot")]
    NoUsername,
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<VaultError> for Problem {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Store(e) => e.into(),
            VaultError::Seal(e) => e.into(),
            VaultError::Contended => Problem::new(
                StatusCode::CONFLICT,
                "concurrent_update",
                "Concurrent update",
            )
            .detail("the credentials kept changing concurrently; nothing was changed, retry"),
            VaultError::TokenInvalid => worker_token_invalid(),
            VaultError::StaleReport => {
                Problem::new(StatusCode::CONFLICT, "session_report_stale", "Stale report").detail(
                    "the session was replaced after the reported version; nothing was changed",
                )
            }
        }
    }
}

impl From<BotTokenError> for Problem {
    fn from(err: BotTokenError) -> Self {
        match err {
            BotTokenError::Malformed => Problem::bad_request(
                "bot_token_invalid",
                "the bot token is malformed: expected <digits>:<secret> as issued by @BotFather",
            ),
            BotTokenError::Telegram(BotApiError::Rejected { .. }) => Problem::bad_request(
                "bot_token_invalid",
                "Telegram rejected the bot token; nothing was stored",
            ),
            BotTokenError::Telegram(BotApiError::Unreachable(why)) => {
                telegram_unreachable().cause(format!("Telegram Bot API unreachable: {why}"))
            }
            BotTokenError::NoUsername => {
                telegram_unreachable().cause("getMe answered without a usable bot username")
            }
            BotTokenError::Vault(e) => e.into(),
        }
    }
}

fn telegram_unreachable() -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "telegram_unreachable",
        "Bad gateway",
    )
    .detail("the Telegram Bot API could not be reached; nothing was stored, retry later")
}

fn invalid(detail: &str) -> Problem {
    Problem::bad_request("body_invalid", detail)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

#[derive(Deserialize)]
struct BotTokenBody {
    bot_token: SecretString,
}

#[derive(Serialize)]
struct BotTokenSaved<'a> {
    success: bool,
    bot_username: &'a str,
    message: &'a str,
}

fn valid_username(name: &str) -> bool {
    (5..=32).contains(&name.len()) && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

async fn save_bot_token(
    deps: &Settings,
    user: &UserId,
    raw: &SecretString,
) -> Result<CredentialsRecord, BotTokenError> {
    let token = BotToken::parse(raw.expose()).map_err(|_| BotTokenError::Malformed)?;
    let bot = deps.bot_api.get_me(&token).await?;
    if !bot.username.as_deref().is_some_and(valid_username) {
        return Err(BotTokenError::NoUsername);
    }
    Ok(deps
        .vault()
        .apply(user, &Change::BotToken { token, bot })
        .await?)
}

async fn put_bot_token(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let body: BotTokenBody = parse_json(req)?;
    let record = save_bot_token(deps, &user.user_id, &body.bot_token).await?;
    let username = record.bot_username.as_deref().unwrap_or_default();
    tracing::info!(
        user_id = %user.user_id,
        bot_username = username,
        version = record.version,
        "bot token saved"
    );
    Ok(json(
        StatusCode::OK,
        &BotTokenSaved {
            success: true,
            bot_username: username,
            message: "Bot token saved successfully",
        },
    ))
}

/// An integer sent as a JSON number or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    fn get(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct SessionBody {
    session: SecretString,
    telegram_user_id: IntOrString,
    channel_id: IntOrString,
    #[serde(default)]
    channel_invite: Option<SecretString>,
    #[serde(default)]
    phone: Option<SecretString>,
}

/// Empty strings count as absent.
fn non_empty(value: Option<SecretString>) -> Option<SecretString> {
    value.filter(|v| !v.expose().trim().is_empty())
}

fn validate_session(body: SessionBody) -> Result<SessionInput, Problem> {
    let session = body.session.expose();
    if session.trim().is_empty() || session.len() > MAX_SESSION_BYTES {
        return Err(invalid(&format!(
            "session must be a non-empty string of at most {MAX_SESSION_BYTES} bytes"
        )));
    }
    if session.chars().any(char::is_control) {
        return Err(invalid("session must not contain control characters"));
    }
    let telegram_user_id = body
        .telegram_user_id
        .get()
        .and_then(|id| TelegramUserId::new(id).ok())
        .ok_or_else(|| invalid("telegram_user_id must be a positive integer"))?;
    let channel_id = body
        .channel_id
        .get()
        .filter(|id| *id != 0)
        .ok_or_else(|| invalid("channel_id must be a non-zero integer"))?;
    let phone = non_empty(body.phone);
    if let Some(phone) = &phone {
        let p = phone.expose().trim();
        let digits = p.bytes().filter(u8::is_ascii_digit).count();
        let charset = p
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b' ' | b'-' | b'(' | b')'));
        if !(charset && (4..=20).contains(&digits) && p.len() <= 32) {
            return Err(invalid("phone must be a phone number (digits, +, spaces)"));
        }
    }
    let channel_invite = non_empty(body.channel_invite);
    if let Some(invite) = &channel_invite {
        let i = invite.expose();
        if i.len() > 512 || i.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid(
                "channel_invite must be a link of at most 512 characters",
            ));
        }
    }
    Ok(SessionInput {
        session: body.session,
        telegram_user_id,
        channel_id,
        channel_invite,
        phone,
    })
}

async fn put_session(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let input = validate_session(parse_json(req)?)?;
    let record = deps
        .vault()
        .apply(&user.user_id, &Change::Session(input))
        .await?;
    tracing::info!(
        user_id = %user.user_id,
        telegram_user_id = record.telegram_user_id.map(|t| t.get()),
        version = record.version,
        "telegram session saved"
    );
    let now = deps.clock.now();
    Ok(json(
        StatusCode::OK,
        &status(Some(&record), now, deps.max_idle_secs),
    ))
}

/// `?revoke_workers=true|false` (default `false`; other parameters are ignored).
fn revoke_workers(req: &Request) -> Result<bool, Problem> {
    let mut revoke = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "revoke_workers" {
            continue;
        }
        let value = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(Problem::bad_request(
                    "query_invalid",
                    "revoke_workers must be true or false",
                ));
            }
        };
        if revoke.is_some_and(|r| r != value) {
            return Err(Problem::bad_request(
                "query_invalid",
                "revoke_workers is given twice with different values",
            ));
        }
        revoke = Some(value);
    }
    Ok(revoke.unwrap_or(false))
}

async fn delete_session(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let revoke = revoke_workers(req)?;
    let record = deps
        .vault()
        .apply(&user.user_id, &Change::ClearSession)
        .await?;
    tracing::info!(user_id = %user.user_id, version = record.version, "telegram session cleared");
    if revoke {
        let revoked = deps
            .worker_tokens
            .revoke_all(&user.user_id, deps.clock.now())
            .await?;
        tracing::info!(user_id = %user.user_id, revoked, "worker tokens revoked");
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn get_status(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let record = deps.credentials.get(&user.user_id).await?;
    let now = deps.clock.now();
    Ok(json(
        StatusCode::OK,
        &status(record.as_ref(), now, deps.max_idle_secs),
    ))
}

#[derive(Deserialize)]
struct ReportBody {
    error: String,
    /// The `ETag` of the credentials the worker was using, if it has one.
    #[serde(default)]
    etag: Option<String>,
}

async fn report(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = present_app_or_worker(&deps.auth, req)?;
    // A worker token is checked now (so that a stale one gets nothing, not even the status),
    // and again by the write's own condition (so that one revoked meanwhile changes nothing).
    let hash = match &caller {
        Presented::App(_) => None,
        Presented::Worker(token) => {
            let hash = token.hash();
            if !deps.worker_tokens.is_active(token.user_id(), &hash).await? {
                return Err(worker_token_invalid());
            }
            Some(hash)
        }
    };
    let auth = hash.as_ref().map_or(WorkerAuth::App, WorkerAuth::Token);
    let body: ReportBody = parse_json(req)?;
    let reason = body.error.trim().to_ascii_uppercase();
    let Some(reason) = FATAL_SESSION_ERRORS.iter().find(|e| **e == reason) else {
        return Err(Problem::bad_request(
            "report_error_unsupported",
            format!("error must be one of {}", FATAL_SESSION_ERRORS.join(", ")),
        ));
    };
    let version = match &body.etag {
        None => None,
        Some(tag) => Some(
            vault::etag::etag_version(tag)
                .ok_or_else(|| invalid("etag must be an ETag from /api/worker/credentials"))?,
        ),
    };
    let Applied { record, written } = deps
        .vault()
        .apply_as(
            caller.user_id(),
            &Change::Report {
                reason: (*reason).to_owned(),
                version,
            },
            auth,
        )
        .await?;
    if written {
        tracing::warn!(
            user_id = %caller.user_id(),
            via = caller.via(),
            reason = *reason,
            version = record.version,
            "telegram session reported dead by a worker: cleared, re-authentication required"
        );
    } else {
        tracing::info!(
            user_id = %caller.user_id(),
            via = caller.via(),
            reason = *reason,
            "telegram session reported dead, but no session was stored"
        );
    }
    Ok(json(
        StatusCode::OK,
        &status(Some(&record), deps.clock.now(), deps.max_idle_secs),
    ))
}

#[derive(Deserialize)]
struct WorkerTokenBody {
    name: String,
}

#[derive(Serialize)]
struct WorkerTokenCreated<'a> {
    id: &'a str,
    worker_token: &'a str,
    name: &'a str,
    created_at: u64,
}

#[derive(Serialize)]
struct WorkerTokenView<'a> {
    id: &'a str,
    name: &'a str,
    created_at: u64,
    revoked_at: Option<u64>,
}

#[derive(Serialize)]
struct WorkerTokenList<'a> {
    tokens: Vec<WorkerTokenView<'a>>,
}

async fn create_worker_token(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let body: WorkerTokenBody = parse_json(req)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name must be 1-64 characters without control characters",
        ));
    }
    let token = WorkerToken::mint(&user.user_id);
    let record = WorkerTokenRecord {
        id: new_worker_token_id(),
        hash: token.hash(),
        user_id: user.user_id.clone(),
        name: name.to_owned(),
        created_at: deps.clock.now(),
        revoked_at: None,
    };
    match deps
        .worker_tokens
        .insert(&record, deps.worker_tokens_max)
        .await?
    {
        InsertOutcome::Inserted => {}
        InsertOutcome::LimitReached => {
            tracing::info!(user_id = %user.user_id, "worker token refused: limit reached");
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "worker_token_limit",
                "Too many worker tokens",
            )
            .detail(format!(
                "at most {} worker tokens may be active; revoke one first",
                deps.worker_tokens_max
            )));
        }
    }
    tracing::info!(user_id = %user.user_id, token_id = %record.id, "worker token created");
    Ok(json(
        StatusCode::CREATED,
        &WorkerTokenCreated {
            id: &record.id,
            worker_token: token.expose(),
            name: &record.name,
            created_at: record.created_at.secs(),
        },
    ))
}

async fn list_worker_tokens(deps: &Settings, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let tokens = deps
        .worker_tokens
        .list(&user.user_id, deps.clock.now())
        .await?;
    Ok(json(
        StatusCode::OK,
        &WorkerTokenList {
            tokens: tokens
                .iter()
                .map(|t| WorkerTokenView {
                    id: &t.id,
                    name: &t.name,
                    created_at: t.created_at.secs(),
                    revoked_at: t.revoked_at.map(UnixTime::secs),
                })
                .collect(),
        },
    ))
}

#[derive(Serialize)]
struct WorkerTokensRevoked {
    revoked: usize,
}

async fn revoke_all_worker_tokens(
    deps: &Settings,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let revoked = deps
        .worker_tokens
        .revoke_all(&user.user_id, deps.clock.now())
        .await?;
    tracing::info!(user_id = %user.user_id, revoked, "worker tokens revoked");
    Ok(json(StatusCode::OK, &WorkerTokensRevoked { revoked }))
}

async fn revoke_worker_token(
    deps: &Settings,
    req: &Request,
    id: PathParam<WorkerTokenId>,
) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let not_found = || {
        Problem::new(StatusCode::NOT_FOUND, "worker_token_not_found", "Not found")
            .detail("no worker token with this id belongs to you")
    };
    let WorkerTokenId(id) = id.or_else(not_found)?;
    let id = id.as_str();
    match deps
        .worker_tokens
        .revoke(&user.user_id, id, deps.clock.now())
        .await?
    {
        RevokeOutcome::Revoked => {
            tracing::info!(user_id = %user.user_id, token_id = id, "worker token revoked");
            Ok(empty(StatusCode::NO_CONTENT))
        }
        RevokeOutcome::AlreadyRevoked => Ok(empty(StatusCode::NO_CONTENT)),
        RevokeOutcome::NotFound => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<SettingsOp>();
    }

    fn session_body(json: &str) -> Result<SessionInput, Problem> {
        validate_session(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn session_validation() {
        let ok = session_body(
            r#"{"session":"1AgAOMTQ","telegram_user_id":"42","channel_id":-1001234567890,"phone":"+1 234 567","channel_invite":""}"#,
        )
        .unwrap();
        assert_eq!(ok.telegram_user_id.get(), 42);
        assert_eq!(ok.channel_id, -1001234567890);
        assert!(ok.channel_invite.is_none());
        assert!(ok.phone.is_some());
        for bad in [
            r#"{"session":"","telegram_user_id":42,"channel_id":-1}"#,
            r#"{"session":"s","telegram_user_id":0,"channel_id":-1}"#,
            r#"{"session":"s","telegram_user_id":42,"channel_id":0}"#,
            r#"{"session":"s","telegram_user_id":42,"channel_id":"x"}"#,
            r#"{"session":"s","telegram_user_id":42,"channel_id":-1,"phone":"call me"}"#,
            r#"{"session":"s","telegram_user_id":42,"channel_id":-1,"channel_invite":"a b"}"#,
        ] {
            let err = session_body(bad).err().expect(bad);
            assert_eq!(err.code, "body_invalid");
            assert!(!err.detail.unwrap().contains("call me"));
        }
    }

    #[test]
    fn revoke_workers_query() {
        let with = |uri: &str| {
            revoke_workers(
                &lambda_http::http::Request::builder()
                    .uri(uri)
                    .body(Body::Empty)
                    .unwrap(),
            )
        };
        assert!(!with("/api/telegram/session").unwrap());
        assert!(!with("/api/telegram/session?revoke_workers=false").unwrap());
        assert!(with("/api/telegram/session?revoke_workers=true").unwrap());
        assert!(with("/api/telegram/session?x=1&revoke_workers=true").unwrap());
        for bad in [
            "revoke_workers=yes",
            "revoke_workers",
            "revoke_workers=true&revoke_workers=false",
        ] {
            let err = with(&format!("/api/telegram/session?{bad}")).unwrap_err();
            assert_eq!(err.code, "query_invalid", "{bad}");
        }
    }
}
