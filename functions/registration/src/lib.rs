//! `registration`: durable, one-time registration tokens for a 2FA/TOTP provider's callback.
//!
//! - `POST /api/auth/setup-2fa` (app JWT): creates a pending registration and returns its
//!   non-secret `registration_id` and its secret one-time `token` (stored only as SHA-256),
//!   valid for `REGISTRATION_TOKEN_TTL_SEC`.
//! - `POST /api/auth/registration/callback` (the provider, signed with
//!   `REGISTRATION_CALLBACK_SECRET`, see [`signature`]): pending → completed/rejected by one
//!   conditional write; a TOTP seed is sealed for the owner before it is written.
//! - `GET /api/auth/registration/{registration_id}` (the owner's JWT): status and timestamps,
//!   never the token or the seed.
//! - `POST /api/auth/2fa/verify` (the user's JWT, or a host backend's with
//!   `APP_JWT_SERVICE_ROLE` naming `user_id`): checks a TOTP code against the sealed seed of the
//!   user's most recent completed registration (or the one named), see [`totp`]. The seed is
//!   opened only here (one KMS `Decrypt`) and never leaves; a code is accepted once (a
//!   conditional write of its time step); `TOTP_MAX_FAILURES` failures within
//!   `TOTP_LOCKOUT_SEC` lock the user's verification until that window ends. It lives here, not
//!   in a function of its own: it reads the registration records this function owns and opens
//!   the seed under the seal purpose (`registration`) this function already seals it with, so a
//!   separate role would hold the same grants plus `kms:Decrypt`.
//!
//! Records stay for [`RETENTION_SECS`] after the token's expiry as an audit trail.

pub mod signature;
pub mod totp;

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::{Deserialize, Serialize};
use tglink_shared::{
    auth::{AppUser, JwtVerifier},
    config::{ConfigError, positive_or, required, ttl_secs_or},
    http::{Problem, body_bytes, json, parse_json},
    ids::UserId,
    routes::{Endpoint, Operation, PathParam, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    seal::{SealError, Sealer},
    secret::SecretString,
    store::{
        StoreError,
        registrations::{
            FinalStatus, Finish, NewRegistration, RegistrationId, RegistrationRecord,
            RegistrationStatus, Registrations, SEED_ATTRIBUTE, SealedSeed, TotpAccept, TotpLockout,
            Transition, seed_scope,
        },
    },
    time::{Clock, UnixTime},
    token::OneTimeToken,
};

pub use tglink_shared::store::registrations::RETENTION_SECS;

use crate::signature::{CallbackSecret, SignatureError};

pub const SETUP: Route = Route::new("POST", "/api/auth/setup-2fa");
pub const CALLBACK: Route = Route::new("POST", "/api/auth/registration/callback");
pub const STATUS: Route = Route::new("GET", "/api/auth/registration/{registration_id}");
pub const VERIFY: Route = Route::new("POST", "/api/auth/2fa/verify");

/// What `registration` does: one operation per route, its path parameter typed.
enum RegistrationOp {
    Setup,
    Callback,
    Status(PathParam<RegistrationId>),
    Verify,
}

impl Operation for RegistrationOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[
        Endpoint::new(SETUP, |_| Self::Setup),
        Endpoint::new(CALLBACK, |_| Self::Callback),
        Endpoint::new(STATUS, |p| Self::Status(p.get("registration_id"))),
        Endpoint::new(VERIFY, |_| Self::Verify),
    ];
}

pub const ROUTES: &[Route] = &routes::<RegistrationOp, { RegistrationOp::ENDPOINTS.len() }>();

/// Default `REGISTRATION_TOKEN_TTL_SEC`: 24 hours.
pub const DEFAULT_TTL_SECS: u64 = 86_400;

/// Limits of the inputs.
pub const SERVICE_NAME_MAX_CHARS: usize = 100;
pub const CALLBACK_URL_MAX_LEN: usize = 2048;
pub const EMAIL_MAX_LEN: usize = 254;
pub const SEED_ID_MAX_CHARS: usize = 256;
pub const TOTP_SEED_MAX_LEN: usize = 1024;

/// Defaults of `TOTP_MAX_FAILURES` and `TOTP_LOCKOUT_SEC`.
pub const DEFAULT_TOTP_MAX_FAILURES: u64 = 5;
pub const DEFAULT_TOTP_LOCKOUT_SECS: u64 = 900;
/// The most `TOTP_MAX_FAILURES` may be.
pub const TOTP_MAX_FAILURES_LIMIT: u64 = 100;

/// `TOTP_MAX_FAILURES` (1–100, default 5) and `TOTP_LOCKOUT_SEC` (default 900).
pub fn totp_lockout(env: &dyn tglink_shared::config::Env) -> Result<TotpLockout, StartupError> {
    let max = positive_or(env, "TOTP_MAX_FAILURES", DEFAULT_TOTP_MAX_FAILURES)?;
    if max > TOTP_MAX_FAILURES_LIMIT {
        return Err(ConfigError::new(
            "TOTP_MAX_FAILURES",
            format_args!("must be at most {TOTP_MAX_FAILURES_LIMIT}"),
        )
        .into());
    }
    Ok(TotpLockout {
        max_failures: max as u32,
        window_secs: positive_or(env, "TOTP_LOCKOUT_SEC", DEFAULT_TOTP_LOCKOUT_SECS)?,
    })
}

pub struct Registration {
    pub auth: JwtVerifier,
    pub registrations: Arc<dyn Registrations>,
    pub sealer: Sealer,
    pub secret: CallbackSecret,
    pub ttl_secs: u64,
    pub lockout: TotpLockout,
    pub clock: Clock,
}

#[async_trait]
impl Function for Registration {
    fn secrets() -> &'static [&'static str] {
        &[
            "APP_JWT_SECRET",
            "APP_JWT_PUBLIC_KEY",
            "REGISTRATION_CALLBACK_SECRET",
        ]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let secret = CallbackSecret::new(&required(env, "REGISTRATION_CALLBACK_SECRET")?)?;
        let ttl_secs = ttl_secs_or(env, "REGISTRATION_TOKEN_TTL_SEC", DEFAULT_TTL_SECS)?;
        Ok(Self {
            auth: startup.jwt()?,
            registrations: startup.store().await?.registrations(),
            sealer: startup.sealer().await?,
            secret,
            ttl_secs,
            lockout: totp_lockout(env)?,
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

pub async fn handle(deps: &Registration, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        RegistrationOp::Setup => setup(deps, &req).await,
        RegistrationOp::Callback => callback(deps, &req).await,
        RegistrationOp::Status(id) => status(deps, &req, id).await,
        RegistrationOp::Verify => verify(deps, &req).await,
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Errors, and their HTTP mapping (the one place).

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "service_name must be 1-{SERVICE_NAME_MAX_CHARS} characters without control characters"
    )]
    ServiceName,
    #[error(
        "callback_url must be an absolute https:// URL without credentials, at most {CALLBACK_URL_MAX_LEN} bytes (http:// only for localhost and 127.0.0.1)"
    )]
    CallbackUrl,
    #[error("email is not a plausible address")]
    Email,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("token is not a registration token")]
    TokenMalformed,
    #[error("seed_id must be 1-{SEED_ID_MAX_CHARS} characters without control characters")]
    SeedId,
    #[error("totp_seed must be 1-{TOTP_SEED_MAX_LEN} bytes")]
    TotpSeed,
    #[error(transparent)]
    TotpSeedInvalid(#[from] totp::SeedError),
    #[error("seed_id and totp_seed are accepted only with status completed")]
    SeedNotAllowed,
    #[error("no registration has this token")]
    NotFound,
    #[error("the registration is already {}", .0.as_str())]
    AlreadyFinished(RegistrationStatus),
    #[error("the registration token has expired")]
    Expired,
    #[error("the registration changed during the callback")]
    Inconsistent,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no such registration")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SetupError> for Problem {
    fn from(err: SetupError) -> Self {
        let detail = err.to_string();
        match err {
            SetupError::ServiceName => Problem::bad_request("service_name_invalid", detail),
            SetupError::CallbackUrl => Problem::bad_request("callback_url_invalid", detail),
            SetupError::Email => Problem::bad_request("email_invalid", detail),
            SetupError::Store(e) => e.into(),
        }
    }
}

impl From<CallbackError> for Problem {
    fn from(err: CallbackError) -> Self {
        let detail = err.to_string();
        match err {
            CallbackError::Signature(e) => {
                let code = match e {
                    SignatureError::Missing => "signature_missing",
                    SignatureError::Malformed | SignatureError::Invalid => "signature_invalid",
                    SignatureError::Stale => "signature_stale",
                };
                Problem::new(StatusCode::UNAUTHORIZED, code, "Unauthorized").detail(detail)
            }
            CallbackError::TokenMalformed => Problem::bad_request("token_malformed", detail),
            CallbackError::SeedId => Problem::bad_request("seed_id_invalid", detail),
            CallbackError::TotpSeed | CallbackError::TotpSeedInvalid(_) => {
                Problem::bad_request("totp_seed_invalid", detail)
            }
            CallbackError::SeedNotAllowed => Problem::bad_request("seed_not_allowed", detail),
            CallbackError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "registration_not_found", "Not found")
                    .detail(detail)
            }
            CallbackError::AlreadyFinished(_) => {
                Problem::new(StatusCode::CONFLICT, "registration_finished", "Conflict")
                    .detail(detail)
            }
            CallbackError::Expired => {
                Problem::new(StatusCode::GONE, "registration_expired", "Gone").detail(detail)
            }
            CallbackError::Inconsistent => {
                Problem::internal().cause("registration refused a transition its state allows")
            }
            CallbackError::Store(e) => e.into(),
            CallbackError::Seal(e) => e.into(),
        }
    }
}

impl From<StatusError> for Problem {
    fn from(err: StatusError) -> Self {
        match err {
            StatusError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "registration_not_found", "Not found")
                    .detail("no registration of yours has this id")
            }
            StatusError::Store(e) => e.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POST /api/auth/setup-2fa

#[derive(Deserialize)]
pub struct SetupRequest {
    pub service_name: String,
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SetupCreated {
    pub registration_id: String,
    pub token: String,
    /// Unix seconds: when the token stops being accepted.
    pub expires_at: u64,
    pub status: &'static str,
}

/// A validated setup request.
#[derive(Debug, PartialEq, Eq)]
pub struct SetupInput {
    pub service_name: String,
    pub callback_url: Option<String>,
    pub email: Option<String>,
}

impl SetupInput {
    /// Validates `request`; the email falls back to the JWT's `email` claim when it is a
    /// plausible address.
    pub fn parse(request: SetupRequest, user: &AppUser) -> Result<Self, SetupError> {
        let service_name = request.service_name.trim();
        let chars = service_name.chars().count();
        if !(1..=SERVICE_NAME_MAX_CHARS).contains(&chars)
            || service_name.chars().any(char::is_control)
        {
            return Err(SetupError::ServiceName);
        }
        let callback_url = request
            .callback_url
            .as_deref()
            .map(callback_url)
            .transpose()?;
        let email = match request.email.as_deref() {
            Some(raw) => Some(email(raw).ok_or(SetupError::Email)?),
            None => user.email.as_deref().and_then(email),
        };
        Ok(Self {
            service_name: service_name.to_owned(),
            callback_url,
            email,
        })
    }
}

/// An absolute `https://` URL (or `http://` to localhost / 127.0.0.1 / [::1], for development)
/// without user info; returned in its normalised form.
pub fn callback_url(raw: &str) -> Result<String, SetupError> {
    if raw.len() > CALLBACK_URL_MAX_LEN {
        return Err(SetupError::CallbackUrl);
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| SetupError::CallbackUrl)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SetupError::CallbackUrl);
    }
    let allowed = match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(host))) => host.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    };
    if !allowed {
        return Err(SetupError::CallbackUrl);
    }
    Ok(url.into())
}

/// A plausible email address (`local@domain.tld`, no spaces or control characters), trimmed.
pub fn email(raw: &str) -> Option<String> {
    let email = raw.trim();
    if email.len() > EMAIL_MAX_LEN
        || email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
    {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    plausible.then(|| email.to_owned())
}

async fn setup(deps: &Registration, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let input = SetupInput::parse(parse_json::<SetupRequest>(req)?, &user)?;
    let token = OneTimeToken::mint();
    let now = deps.clock.now();
    let registration = NewRegistration {
        id: RegistrationId::generate(),
        token_hash: token.hash(),
        user_id: user.user_id.clone(),
        service_name: input.service_name,
        email: input.email,
        callback_url: input.callback_url,
        created_at: now,
        token_expires_at: now.plus_secs(deps.ttl_secs),
    };
    deps.registrations
        .create(&registration)
        .await
        .map_err(SetupError::from)?;
    tracing::info!(
        registration_id = %registration.id,
        user_id = %user.user_id,
        expires_at = registration.token_expires_at.secs(),
        "registration created"
    );
    Ok(json(
        StatusCode::CREATED,
        &SetupCreated {
            registration_id: registration.id.to_string(),
            token: token.expose().to_owned(),
            expires_at: registration.token_expires_at.secs(),
            status: RegistrationStatus::Pending.as_str(),
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// POST /api/auth/registration/callback

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CallbackStatus {
    Completed,
    Rejected,
}

/// The provider's callback body.
#[derive(Deserialize, Debug)]
pub struct CallbackRequest {
    pub token: SecretString,
    pub status: CallbackStatus,
    #[serde(default)]
    pub seed_id: Option<String>,
    #[serde(default)]
    pub totp_seed: Option<SecretString>,
}

#[derive(Debug, Serialize)]
pub struct CallbackAccepted {
    pub registration_id: String,
    pub status: &'static str,
    pub completed_at: Option<u64>,
}

async fn callback(deps: &Registration, req: &Request) -> Result<Response<Body>, Problem> {
    let body = body_bytes(req)?;
    let now = deps.clock.now();
    let header = req.headers().get(signature::HEADER).map(|v| v.as_bytes());
    if let Err(e) = signature::verify(&deps.secret, header, body, now) {
        tracing::warn!(reason = %e, "registration callback refused: signature");
        return Err(CallbackError::from(e).into());
    }
    let request = parse_json::<CallbackRequest>(req)?;
    let record = deliver(deps, request, now).await.map_err(|e| {
        // A failure on our side (5xx) is logged once, with its cause, as it is answered.
        if !matches!(
            e,
            CallbackError::Store(_) | CallbackError::Seal(_) | CallbackError::Inconsistent
        ) {
            tracing::info!(outcome = %e, "registration callback refused");
        }
        Problem::from(e)
    })?;
    tracing::info!(
        registration_id = %record.id,
        user_id = %record.user_id,
        status = record.status.as_str(),
        "registration finished"
    );
    Ok(json(
        StatusCode::OK,
        &CallbackAccepted {
            registration_id: record.id.to_string(),
            status: record.status.as_str(),
            completed_at: record.completed_at.map(UnixTime::secs),
        },
    ))
}

/// Validates the callback, then moves the registration out of `pending` with one conditional
/// write. The seed is sealed (one data key, context: purpose `registration` + the owner) only
/// once the registration is known to be pending, and written by that same conditional write.
pub async fn deliver(
    deps: &Registration,
    request: CallbackRequest,
    now: UnixTime,
) -> Result<RegistrationRecord, CallbackError> {
    let token =
        OneTimeToken::parse(request.token.expose()).map_err(|_| CallbackError::TokenMalformed)?;
    let status = match request.status {
        CallbackStatus::Completed => FinalStatus::Completed,
        CallbackStatus::Rejected => FinalStatus::Rejected,
    };
    if status == FinalStatus::Rejected && (request.seed_id.is_some() || request.totp_seed.is_some())
    {
        return Err(CallbackError::SeedNotAllowed);
    }
    if let Some(seed_id) = &request.seed_id {
        let chars = seed_id.chars().count();
        if !(1..=SEED_ID_MAX_CHARS).contains(&chars) || seed_id.chars().any(char::is_control) {
            return Err(CallbackError::SeedId);
        }
    }
    if let Some(seed) = &request.totp_seed {
        if !(1..=TOTP_SEED_MAX_LEN).contains(&seed.expose().len()) {
            return Err(CallbackError::TotpSeed);
        }
        // A seed that cannot verify a code is refused now, not at the user's first sign-in.
        totp::parse_seed(seed.expose())?;
    }

    let current = deps
        .registrations
        .find_by_token(&token.hash(), now)
        .await?
        .ok_or(CallbackError::NotFound)?;
    // The provider re-sending the callback that finished the registration (its answer was
    // lost): the same answer again, nothing written.
    if repeats(&current, status, request.seed_id.as_deref()) {
        return Ok(current);
    }
    ensure_pending(deps, &current, now).await?;

    let sealed_seed = match &request.totp_seed {
        Some(seed) => {
            let scope = seed_scope(&current.user_id, &current.id);
            let record = deps
                .sealer
                .seal(&scope, &[(SEED_ATTRIBUTE, seed.expose().as_bytes())])
                .await?;
            Some(SealedSeed::from_record(record).ok_or(CallbackError::Inconsistent)?)
        }
        None => None,
    };
    let finish = Finish {
        owner: current.user_id.clone(),
        status,
        seed_id: request.seed_id,
        sealed_seed,
    };
    match deps.registrations.finish(&current.id, &finish, now).await? {
        Transition::Done(record) => Ok(record),
        Transition::Refused(None) => Err(CallbackError::NotFound),
        Transition::Refused(Some(record)) => {
            if repeats(&record, finish.status, finish.seed_id.as_deref()) {
                return Ok(record);
            }
            ensure_pending(deps, &record, now).await?;
            Err(CallbackError::Inconsistent)
        }
    }
}

/// Whether `record` was finished by a callback like this one: the same final status and
/// `seed_id` (a re-sent callback; the seed first stored stays).
fn repeats(record: &RegistrationRecord, status: FinalStatus, seed_id: Option<&str>) -> bool {
    let same_status = matches!(
        (record.status, status),
        (RegistrationStatus::Completed, FinalStatus::Completed)
            | (RegistrationStatus::Rejected, FinalStatus::Rejected)
    );
    same_status && record.seed_id.as_deref() == seed_id
}

/// `Ok` when `record` can still be finished at `now`; otherwise the refusal. A pending record
/// whose token has expired is marked `expired` (one conditional write) on the way.
async fn ensure_pending(
    deps: &Registration,
    record: &RegistrationRecord,
    now: UnixTime,
) -> Result<(), CallbackError> {
    match record.status {
        RegistrationStatus::Completed | RegistrationStatus::Rejected => {
            Err(CallbackError::AlreadyFinished(record.status))
        }
        RegistrationStatus::Expired => Err(CallbackError::Expired),
        RegistrationStatus::Pending if record.token_expires_at <= now => {
            match deps.registrations.expire(&record.id, now).await? {
                Transition::Done(expired) => {
                    tracing::info!(registration_id = %expired.id, "registration expired");
                    Err(CallbackError::Expired)
                }
                Transition::Refused(None) => Err(CallbackError::NotFound),
                Transition::Refused(Some(other)) => match other.status {
                    RegistrationStatus::Completed | RegistrationStatus::Rejected => {
                        Err(CallbackError::AlreadyFinished(other.status))
                    }
                    RegistrationStatus::Expired => Err(CallbackError::Expired),
                    RegistrationStatus::Pending => Err(CallbackError::Inconsistent),
                },
            }
        }
        RegistrationStatus::Pending => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// GET /api/auth/registration/{registration_id}

#[derive(Debug, Serialize)]
pub struct RegistrationView {
    pub registration_id: String,
    pub status: &'static str,
    pub service_name: String,
    pub email: Option<String>,
    pub callback_url: Option<String>,
    pub seed_id: Option<String>,
    pub created_at: u64,
    /// When the token stops (or stopped) being accepted.
    pub expires_at: u64,
    pub completed_at: Option<u64>,
}

impl RegistrationView {
    pub fn of(record: RegistrationRecord, now: UnixTime) -> Self {
        Self {
            registration_id: record.id.to_string(),
            status: record.effective_status(now).as_str(),
            service_name: record.service_name,
            email: record.email,
            callback_url: record.callback_url,
            seed_id: record.seed_id,
            created_at: record.created_at.secs(),
            expires_at: record.token_expires_at.secs(),
            completed_at: record.completed_at.map(UnixTime::secs),
        }
    }
}

async fn status(
    deps: &Registration,
    req: &Request,
    id: PathParam<RegistrationId>,
) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let now = deps.clock.now();
    let view = read_own(deps, &user, id, now).await?;
    Ok(json(StatusCode::OK, &view))
}

/// The owner's registration; another user's, an unknown and a malformed id all look alike.
async fn read_own(
    deps: &Registration,
    user: &AppUser,
    id: PathParam<RegistrationId>,
    now: UnixTime,
) -> Result<RegistrationView, StatusError> {
    let id = id.or(StatusError::NotFound)?;
    let record = deps
        .registrations
        .get(&id, now)
        .await?
        .filter(|r| r.user_id == user.user_id)
        .ok_or(StatusError::NotFound)?;
    Ok(RegistrationView::of(record, now))
}

// ---------------------------------------------------------------------------------------------
// POST /api/auth/2fa/verify

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("a service-role token must name the user_id whose code this is")]
    UserIdRequired,
    #[error("user_id is not a valid user id")]
    UserIdInvalid,
    #[error("only a service-role token may name another user_id")]
    UserIdNotAllowed,
    #[error("the user has no completed registration with a TOTP seed (or not the one named)")]
    NotEnrolled,
    #[error("the code is not valid")]
    Invalid,
    #[error("the code was already used")]
    Replayed,
    #[error("too many failed codes: verification is locked for {retry_after} s")]
    Locked { retry_after: u64 },
    #[error("the stored TOTP seed cannot be used")]
    SeedUnusable,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl From<VerifyError> for Problem {
    fn from(err: VerifyError) -> Self {
        let detail = err.to_string();
        match err {
            VerifyError::UserIdRequired => Problem::bad_request("user_id_required", detail),
            VerifyError::UserIdInvalid => Problem::bad_request("user_id_invalid", detail),
            VerifyError::UserIdNotAllowed => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
            }
            VerifyError::NotEnrolled => {
                Problem::new(StatusCode::NOT_FOUND, "totp_not_enrolled", "Not found").detail(detail)
            }
            VerifyError::Invalid => {
                Problem::new(StatusCode::UNAUTHORIZED, "totp_invalid", "Unauthorized")
                    .detail(detail)
            }
            VerifyError::Replayed => {
                Problem::new(StatusCode::UNAUTHORIZED, "totp_replayed", "Unauthorized")
                    .detail(detail)
            }
            VerifyError::Locked { retry_after } => {
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "totp_locked",
                    "Too many requests",
                )
                .detail(detail);
                problem.retry_after = Some(u32::try_from(retry_after.max(1)).unwrap_or(u32::MAX));
                problem
            }
            VerifyError::SeedUnusable => Problem::internal()
                .cause("a stored TOTP seed does not parse (sealed before seeds were checked)"),
            VerifyError::Store(e) => e.into(),
            VerifyError::Seal(e) => e.into(),
        }
    }
}

/// The verification request. `user_id` only with the service role; `registration_id` to
/// check against that registration instead of the most recent one.
#[derive(Deserialize, Debug)]
pub struct VerifyRequest {
    pub code: SecretString,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub registration_id: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verified {
    pub valid: bool,
    pub registration_id: String,
    /// The accepted time step (Unix time / period).
    pub step: u64,
}

async fn verify(deps: &Registration, req: &Request) -> Result<Response<Body>, Problem> {
    let caller = deps.auth.authenticate(req)?;
    let request = parse_json::<VerifyRequest>(req)?;
    let now = deps.clock.now();
    let user = verified_user(deps, &caller, request.user_id.as_deref())?;
    let verified = check_code(deps, &user, request, now).await?;
    tracing::info!(
        user_id = %user,
        registration_id = %verified.registration_id,
        step = verified.step,
        "totp code accepted"
    );
    Ok(json(StatusCode::OK, &verified))
}

/// Whose code this is: the caller's own, or (service role only) the user the body names.
fn verified_user(
    deps: &Registration,
    caller: &AppUser,
    named: Option<&str>,
) -> Result<UserId, VerifyError> {
    match (deps.auth.is_service(caller), named) {
        (true, Some(raw)) => UserId::parse(raw).map_err(|_| VerifyError::UserIdInvalid),
        (true, None) => Err(VerifyError::UserIdRequired),
        (false, None) => Ok(caller.user_id.clone()),
        (false, Some(raw)) if raw == caller.user_id.as_str() => Ok(caller.user_id.clone()),
        (false, Some(_)) => Err(VerifyError::UserIdNotAllowed),
    }
}

/// One read (the seed's registration and the user's failures), one KMS `Decrypt` (the seed),
/// one conditional write (the accepted step, or the failure).
pub async fn check_code(
    deps: &Registration,
    user: &UserId,
    request: VerifyRequest,
    now: UnixTime,
) -> Result<Verified, VerifyError> {
    let named = match request.registration_id.as_deref() {
        Some(raw) => Some(RegistrationId::parse(raw).ok_or(VerifyError::NotEnrolled)?),
        None => None,
    };
    let target = deps
        .registrations
        .totp_target(user, named.as_ref(), now)
        .await?;
    if let Some(until) = target.failures.locked_until(deps.lockout, now) {
        return Err(VerifyError::Locked {
            retry_after: until.secs().saturating_sub(now.secs()),
        });
    }
    let seed = target.seed.ok_or(VerifyError::NotEnrolled)?;
    let opened = deps
        .sealer
        .open(&seed_scope(user, &seed.id), &seed.sealed_seed.to_record())
        .await?;
    let step = {
        let raw = opened
            .get(SEED_ATTRIBUTE)
            .ok_or(VerifyError::SeedUnusable)?;
        let text = std::str::from_utf8(raw.expose()).map_err(|_| VerifyError::SeedUnusable)?;
        let generator = totp::parse_seed(text).map_err(|_| VerifyError::SeedUnusable)?;
        totp::matching_step(&generator, request.code.expose(), now.secs())
    };
    drop(opened);
    let Some(step) = step else {
        deps.registrations
            .totp_fail(user, target.failures, deps.lockout, now)
            .await?;
        return Err(VerifyError::Invalid);
    };
    match deps
        .registrations
        .totp_accept(user, &seed.id, step, deps.lockout, now)
        .await?
    {
        TotpAccept::Accepted => Ok(Verified {
            valid: true,
            registration_id: seed.id.to_string(),
            step,
        }),
        TotpAccept::StepUsed => Err(VerifyError::Replayed),
        TotpAccept::Locked => Err(VerifyError::Locked {
            retry_after: deps.lockout.window_secs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tglink_shared::ids::UserId;

    fn user(email: Option<&str>) -> AppUser {
        AppUser {
            user_id: UserId::parse("u1").unwrap(),
            email: email.map(str::to_owned),
            name: None,
            roles: vec![],
            admin: false,
        }
    }

    fn request(service: &str, url: Option<&str>, email: Option<&str>) -> SetupRequest {
        SetupRequest {
            service_name: service.to_owned(),
            callback_url: url.map(str::to_owned),
            email: email.map(str::to_owned),
        }
    }

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<RegistrationOp>();
    }

    #[test]
    fn service_name_is_1_to_100_chars() {
        let ok = SetupInput::parse(request("  Legitate ", None, None), &user(None)).unwrap();
        assert_eq!(ok.service_name, "Legitate");
        assert!(SetupInput::parse(request(&"é".repeat(100), None, None), &user(None)).is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(matches!(
                SetupInput::parse(request(bad, None, None), &user(None)),
                Err(SetupError::ServiceName)
            ));
        }
    }

    #[test]
    fn callback_urls() {
        for ok in [
            "https://provider.example/cb",
            "https://provider.example:8443/cb?x=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/",
        ] {
            assert!(callback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://provider.example/cb",
            "ftp://provider.example/",
            "javascript:alert(1)",
            "/relative",
            "https://user:pass@provider.example/",
            "http://localhost.evil.example/",
            "not a url",
            &format!("https://p.example/{}", "a".repeat(CALLBACK_URL_MAX_LEN)),
        ] {
            assert!(callback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_the_jwt_fallback() {
        assert_eq!(email(" a@b.co ").as_deref(), Some("a@b.co"));
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@.b", "a@b.", "a@b..c",
        ] {
            assert_eq!(email(bad), None, "{bad}");
        }
        let from_jwt =
            SetupInput::parse(request("S", None, None), &user(Some("jwt@example.com"))).unwrap();
        assert_eq!(from_jwt.email.as_deref(), Some("jwt@example.com"));
        let body_wins = SetupInput::parse(
            request("S", None, Some("body@example.com")),
            &user(Some("jwt@example.com")),
        )
        .unwrap();
        assert_eq!(body_wins.email.as_deref(), Some("body@example.com"));
        let bad_claim = SetupInput::parse(request("S", None, None), &user(Some("nope"))).unwrap();
        assert_eq!(bad_claim.email, None);
        assert!(matches!(
            SetupInput::parse(request("S", None, Some("nope")), &user(None)),
            Err(SetupError::Email)
        ));
    }

    #[test]
    fn seed_is_redacted() {
        let seed: SecretString = serde_json::from_str("\"JBSWY3DPEHPK3PXP\"").unwrap();
        assert!(!format!("{seed:?}").contains("JBSW"));
    }
}
