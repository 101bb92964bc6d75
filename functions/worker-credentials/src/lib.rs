//! `worker-credentials`: `GET /api/worker/credentials`, the credential vault's read side.
//!
//! An upload worker presents its user's app JWT or a worker token and receives everything it
//! needs to upload to Telegram, with the seed's field names: `bot_token`, `channel_id`,
//! `telegram_session`, `telegram_api_id`, `telegram_api_hash`, `user_id`, `backend_url`. The
//! user comes only from the token.
//!
//! Cost per request: ONE store call, with an app JWT or a worker token alike: an `UpdateItem`
//! of the credentials item that checks the worker token (its hash must be in the item's set of
//! active token hashes; the token names its user, see [`vault::WorkerToken`]), records the
//! worker's activity and returns the item. Then at most one KMS `Decrypt`: all secrets of a
//! record are sealed under one data key. The `ETag` is the record's version (plus a fingerprint of the
//! deployment values served with it); `If-None-Match` with the current tag answers 304 before
//! anything is decrypted. This function only reads and opens; it never seals.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::Serialize;
use tglink_shared::{
    auth::JwtVerifier,
    config::{ConfigError, Env, required},
    http::{Problem, empty, json},
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    seal::{SealError, Sealer},
    secret::SecretString,
    store::{
        Credentials, StoreError,
        credentials::{SEALED_BOT_TOKEN, SEALED_SESSION, WorkerAuth, WorkerRead},
    },
    time::Clock,
    vault::{
        self,
        caller::{Presented, present_app_or_worker, worker_token_invalid},
        etag::{etag, if_none_match},
        max_idle_from_env,
        session::SessionState,
    },
};

/// What `worker-credentials` does: one operation per route.
enum WorkerCredentialsOp {
    Fetch,
}

impl Operation for WorkerCredentialsOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(
        Route::new("GET", "/api/worker/credentials"),
        |_| Self::Fetch,
    )];
}

pub const ROUTES: &[Route] =
    &routes::<WorkerCredentialsOp, { WorkerCredentialsOp::ENDPOINTS.len() }>();

pub struct WorkerCredentials {
    pub auth: JwtVerifier,
    pub credentials: Arc<dyn Credentials>,
    pub sealer: Sealer,
    pub deployment: Deployment,
    pub max_idle_secs: u64,
    pub clock: Clock,
}

/// The deployment's values handed to every worker.
#[derive(Clone)]
pub struct Deployment {
    /// `TELEGRAM_API_ID`.
    pub api_id: i64,
    /// `TELEGRAM_API_HASH`.
    pub api_hash: SecretString,
    /// `BACKEND_URL`.
    pub backend_url: String,
}

impl Deployment {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let api_id = required(env, "TELEGRAM_API_ID")?
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ConfigError::new(
                    "TELEGRAM_API_ID",
                    "is malformed: expected a positive integer",
                )
            })?;
        Ok(Self {
            api_id,
            api_hash: SecretString::new(required(env, "TELEGRAM_API_HASH")?),
            backend_url: required(env, "BACKEND_URL")?,
        })
    }

    /// 8 hex characters of SHA-256 over the values, so that the ETag changes with them.
    pub fn fingerprint(&self) -> String {
        let mut input = Vec::new();
        for part in [
            self.api_id.to_string().as_str(),
            self.api_hash.expose(),
            self.backend_url.as_str(),
        ] {
            input.extend_from_slice(&(part.len() as u32).to_be_bytes());
            input.extend_from_slice(part.as_bytes());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        hex::encode(&digest.as_ref()[..4])
    }
}

#[async_trait]
impl Function for WorkerCredentials {
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY", "TELEGRAM_API_HASH"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let deployment = Deployment::from_env(env)?;
        let max_idle_secs = max_idle_from_env(env)?;
        let store = startup.store().await?;
        Ok(Self {
            auth: startup.jwt()?,
            credentials: store.credentials(),
            sealer: startup.sealer().await?,
            deployment,
            max_idle_secs,
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

pub async fn handle(deps: &WorkerCredentials, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        WorkerCredentialsOp::Fetch => fetch(deps, &req).await,
    })
    .await
}

/// Why credentials could not be served.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("telegram not configured: {0}")]
    NotConfigured(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl From<FetchError> for Problem {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::NotConfigured(what) => {
                Problem::bad_request("telegram_not_configured", what)
            }
            FetchError::Store(e) => e.into(),
            FetchError::Seal(e) => e.into(),
        }
    }
}

/// The response, with the seed's field names.
#[derive(Serialize)]
struct CredentialsBody<'a> {
    bot_token: &'a str,
    channel_id: String,
    telegram_session: &'a str,
    telegram_api_id: String,
    telegram_api_hash: &'a str,
    user_id: &'a str,
    backend_url: &'a str,
}

async fn fetch(deps: &WorkerCredentials, req: &Request) -> Result<Response<Body>, Problem> {
    let now = deps.clock.now();
    // A worker token is only well-formed here: the read below checks it (same call).
    let caller = present_app_or_worker(&deps.auth, req)?;
    let token_hash;
    let auth = match &caller {
        Presented::App(_) => WorkerAuth::App,
        Presented::Worker(token) => {
            token_hash = token.hash();
            WorkerAuth::Token(&token_hash)
        }
    };
    let user = caller.user_id();
    let read = deps
        .credentials
        .read_for_worker(user, now, deps.max_idle_secs, auth)
        .await
        .map_err(FetchError::from)?;
    let record = match read {
        WorkerRead::Record(record) => record,
        WorkerRead::TokenInvalid => return Err(worker_token_invalid()),
    };
    let Some(record) = record else {
        return Err(FetchError::NotConfigured(
            "no bot token and no Telegram session are stored: log in to Telegram and save a bot token",
        )
        .into());
    };
    if !record.has_sealed(SEALED_BOT_TOKEN) {
        return Err(
            FetchError::NotConfigured("no bot token is stored: save one in the settings").into(),
        );
    }
    let not_live = match record.session_state(now, deps.max_idle_secs) {
        SessionState::Live(_) => None,
        SessionState::None => Some("no Telegram session is stored: log in to Telegram"),
        SessionState::ReportedDead { .. } => {
            Some("the Telegram session was reported dead: log in to Telegram again")
        }
        SessionState::IdleExpired(_) => {
            Some("the Telegram session expired after being idle: log in to Telegram again")
        }
    };
    if let Some(why) = not_live {
        return Err(FetchError::NotConfigured(why).into());
    }
    let Some(channel_id) = record.channel_id else {
        return Err(FetchError::NotConfigured("no channel is stored: log in to Telegram").into());
    };
    let tag = etag(record.version, &deps.deployment.fingerprint());
    if if_none_match(req, &tag) {
        tracing::info!(user_id = %user, via = caller.via(), version = record.version, "worker credentials not modified");
        return Ok(with_etag(empty(StatusCode::NOT_MODIFIED), &tag));
    }
    let sealed = record
        .sealed
        .as_ref()
        .ok_or(FetchError::NotConfigured("no secrets are stored"))?;
    let opened = deps
        .sealer
        .open(&vault::scope(user), sealed)
        .await
        .map_err(FetchError::from)?;
    let (Some(bot_token), Some(session)) =
        (opened.text(SEALED_BOT_TOKEN), opened.text(SEALED_SESSION))
    else {
        return Err(FetchError::Seal(SealError::Integrity).into());
    };
    tracing::info!(user_id = %user, via = caller.via(), version = record.version, "worker credentials served");
    let body = CredentialsBody {
        bot_token,
        channel_id: channel_id.to_string(),
        telegram_session: session,
        telegram_api_id: deps.deployment.api_id.to_string(),
        telegram_api_hash: deps.deployment.api_hash.expose(),
        user_id: user.as_str(),
        backend_url: &deps.deployment.backend_url,
    };
    Ok(with_etag(json(StatusCode::OK, &body), &tag))
}

fn with_etag(mut resp: Response<Body>, tag: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(tag) {
        resp.headers_mut().insert(header::ETAG, value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tglink_shared::config::MapEnv;

    fn env() -> MapEnv {
        MapEnv::new()
            .with("TELEGRAM_API_ID", "12345")
            .with("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")
            .with("BACKEND_URL", "https://backend.example")
    }

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<WorkerCredentialsOp>();
    }

    #[test]
    fn deployment_configuration() {
        let d = Deployment::from_env(&env()).unwrap();
        assert_eq!(d.api_id, 12345);
        assert_eq!(d.fingerprint().len(), 8);
        let mut other = env();
        other.set("TELEGRAM_API_HASH", "ffffffffffffffffffffffffffffffff");
        assert_ne!(
            Deployment::from_env(&other).unwrap().fingerprint(),
            d.fingerprint()
        );
        for (var, value) in [("TELEGRAM_API_ID", "abc"), ("TELEGRAM_API_ID", "-3")] {
            let mut bad = env();
            bad.set(var, value);
            let err = Deployment::from_env(&bad).err().unwrap();
            assert_eq!(err.var, var);
            assert!(!err.to_string().contains(value));
        }
        for var in ["TELEGRAM_API_ID", "TELEGRAM_API_HASH", "BACKEND_URL"] {
            let mut missing = env();
            missing.remove(var);
            assert_eq!(Deployment::from_env(&missing).err().unwrap().var, var);
        }
    }
}
