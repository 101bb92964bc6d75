//! `signing-keys`: rotation of the access-token signing key.
//!
//! - `POST /api/admin/signing-keys/rotate` (app JWT with the admin role): generates a P-256 key
//!   pair, seals its private half (one `kms:GenerateDataKey` under the `signing-key` purpose)
//!   and makes it current in one conditional write that retires the previous key. `200` with
//!   the new `kid` and every published `kid`.
//! - The scheduled rotation: EventBridge Scheduler invokes the function with
//!   `{"tglink_scheduled": "rotate-signing-key"}` (see [`tglink_shared::runtime::Invocation`]);
//!   it does the same.
//!
//! A retired key stays published (JWKS) while a token it signed can be live: the access-token
//! lifetime plus the leeway. Signers pick the new key up within
//! [`tglink_shared::oauth::KEY_REFRESH_SECS`], or at their next cold start. Two rotations at
//! once make one new key.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::Serialize;
use tglink_shared::{
    auth::{AuthError, JwtVerifier},
    http::{Problem, json},
    oauth::{SigningError, TokenConfig, keys},
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, ScheduledFunction, Startup, StartupError},
    seal::Sealer,
    store::SigningKeys,
    time::Clock,
};

pub const ROTATE: Route = Route::new("POST", "/api/admin/signing-keys/rotate");

/// The scheduled job this function runs.
pub const ROTATE_JOB: &str = "rotate-signing-key";

enum SigningKeysOp {
    Rotate,
}

impl Operation for SigningKeysOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(ROTATE, |_| Self::Rotate)];
}

pub const ROUTES: &[Route] = &routes::<SigningKeysOp, { SigningKeysOp::ENDPOINTS.len() }>();

pub struct SigningKeysFunction {
    pub jwt: JwtVerifier,
    pub config: TokenConfig,
    pub keys: Arc<dyn SigningKeys>,
    pub sealer: Sealer,
    pub clock: Clock,
}

/// The rotation's answer.
#[derive(Debug, Serialize)]
pub struct Rotated {
    /// The new current key.
    pub kid: String,
    /// Every published key, the current one first.
    pub published: Vec<String>,
}

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<RotateError> for Problem {
    fn from(err: RotateError) -> Self {
        match err {
            RotateError::Auth(e) => e.into(),
            RotateError::Signing(e) => e.into(),
        }
    }
}

#[async_trait]
impl Function for SigningKeysFunction {
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let store = startup.store().await?;
        Ok(Self {
            jwt: startup.jwt()?,
            config: startup.token_config()?,
            keys: store.signing_keys(),
            sealer: startup.sealer().await?,
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

#[async_trait]
impl ScheduledFunction for SigningKeysFunction {
    async fn scheduled(&self, job: &str) -> Result<serde_json::Value, String> {
        if job != ROTATE_JOB {
            return Err(format!("unknown job {job:?}"));
        }
        let rotated = rotate(self).await.map_err(|e| e.to_string())?;
        serde_json::to_value(rotated).map_err(|e| e.to_string())
    }
}

pub async fn handle(deps: &SigningKeysFunction, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        SigningKeysOp::Rotate => {
            let admin = deps
                .jwt
                .authenticate_admin(&req)
                .map_err(RotateError::from)?;
            let rotated = rotate(deps).await?;
            tracing::info!(
                admin = admin.user_id.as_str(),
                kid = rotated.kid.as_str(),
                outcome = "rotated",
                "signing key rotation"
            );
            Ok(json(StatusCode::OK, &rotated))
        }
    })
    .await
}

/// Adds a new current key; answers it and the published set.
pub async fn rotate(deps: &SigningKeysFunction) -> Result<Rotated, RotateError> {
    let now = deps.clock.now();
    let kid = keys::rotate(deps.keys.as_ref(), &deps.sealer, now).await?;
    let set = deps.keys.key_set().await.map_err(SigningError::from)?;
    let published = set
        .published(now, deps.config.keep_retired_secs())
        .into_iter()
        .map(|k| k.kid.clone())
        .collect();
    Ok(Rotated { kid, published })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_reach_their_endpoints() {
        tglink_shared::routes::check::<SigningKeysOp>();
    }
}
