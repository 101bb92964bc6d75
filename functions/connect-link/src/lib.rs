//! `connect-link`: `POST /api/telegram/connect-link`.
//!
//! A signed-in app user (app JWT) gets a one-time `https://t.me/<bot>?start=<token>` link.
//! The token is 32 random bytes (43 base64url characters, within Telegram's 64-character
//! `start` limit), stored only as its SHA-256 with a lifetime of `CONNECT_TOKEN_TTL_SEC`. The
//! webhook consumes it exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::Serialize;
use tglink_shared::{
    auth::JwtVerifier,
    config::ttl_secs_or,
    http::{Problem, json},
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    store::{ConnectTokenRecord, ConnectTokens},
    telegram::bot_username::BotUsername,
    time::Clock,
    token::OneTimeToken,
};

/// What `connect-link` does: one operation per route.
enum ConnectLinkOp {
    Create,
}

impl Operation for ConnectLinkOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(
        Route::new("POST", "/api/telegram/connect-link"),
        |_| Self::Create,
    )];
}

pub const ROUTES: &[Route] = &routes::<ConnectLinkOp, { ConnectLinkOp::ENDPOINTS.len() }>();

/// Default `CONNECT_TOKEN_TTL_SEC`.
pub const DEFAULT_TTL_SECS: u64 = 600;

pub struct ConnectLink {
    pub auth: JwtVerifier,
    pub tokens: Arc<dyn ConnectTokens>,
    pub bot_username: BotUsername,
    pub ttl_secs: u64,
    pub clock: Clock,
}

#[derive(Debug, Serialize)]
pub struct ConnectLinkCreated {
    pub token: String,
    pub url: String,
    /// Unix seconds.
    pub expires_at: u64,
}

#[async_trait]
impl Function for ConnectLink {
    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let bot_username = BotUsername::from_env(env)?;
        let ttl_secs = ttl_secs_or(env, "CONNECT_TOKEN_TTL_SEC", DEFAULT_TTL_SECS)?;
        Ok(Self {
            auth: startup.jwt()?,
            tokens: startup.store().await?.connect_tokens(),
            bot_username,
            ttl_secs,
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

pub async fn handle(deps: &ConnectLink, req: Request) -> Response<Body> {
    dispatch(&req, async |op| match op {
        ConnectLinkOp::Create => create(deps, &req).await,
    })
    .await
}

async fn create(deps: &ConnectLink, req: &Request) -> Result<Response<Body>, Problem> {
    let user = deps.auth.authenticate(req)?;
    let token = OneTimeToken::mint();
    let now = deps.clock.now();
    let expires_at = now.plus_secs(deps.ttl_secs);
    deps.tokens
        .insert(&ConnectTokenRecord {
            hash: token.hash(),
            user_id: user.user_id.clone(),
            created_at: now,
            expires_at,
            attempt: tglink_shared::store::connect_tokens::new_attempt(),
        })
        .await?;
    tracing::info!(user_id = %user.user_id, expires_at = expires_at.secs(), "connect link minted");
    let url = format!(
        "https://t.me/{}?start={}",
        deps.bot_username.as_str(),
        token.expose()
    );
    Ok(json(
        StatusCode::CREATED,
        &ConnectLinkCreated {
            token: token.expose().to_owned(),
            url,
            expires_at: expires_at.secs(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<ConnectLinkOp>();
    }
}
