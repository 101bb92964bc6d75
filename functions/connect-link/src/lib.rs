//! `connect-link`: `POST /api/telegram/connect-link`.
//!
//! A signed-in app user (app JWT) gets a one-time `https://t.me/<bot>?start=<token>` link.
//! The token is 32 random bytes (43 base64url characters, within Telegram's 64-character
//! `start` limit), stored only as its SHA-256 with a lifetime of `CONNECT_TOKEN_TTL_SEC`. The
//! webhook consumes it exactly once. The token record also carries who minted it
//! ([`account_label`]: the JWT's `name`, else its masked `email`), so that the bot's
//! confirmation names the account a Telegram user was just connected to.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::Serialize;
use tglink_shared::{
    auth::{AppUser, JwtVerifier},
    config::ttl_secs_or,
    http::{Problem, json},
    routes::{Endpoint, Operation, Route, dispatch, routes},
    runtime::{Function, Startup, StartupError},
    store::{ConnectTokenRecord, ConnectTokens, connect_tokens::ACCOUNT_LABEL_MAX_CHARS},
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

/// How the bot's confirmation names the app account: the JWT's `name` claim, else its `email`
/// masked (`a***@example.com`); never the JWT or any other claim. Control and bidirectional
/// formatting characters are dropped, whitespace runs become one space, and the label is cut
/// to [`ACCOUNT_LABEL_MAX_CHARS`] characters. `None` when neither claim gives a label.
pub fn account_label(user: &AppUser) -> Option<String> {
    let clean = |raw: &str| {
        let text: String = raw
            .chars()
            .filter(|c| {
                !c.is_control()
                    && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
            })
            .collect();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > ACCOUNT_LABEL_MAX_CHARS {
            let cut: String = text.chars().take(ACCOUNT_LABEL_MAX_CHARS - 1).collect();
            Some(format!("{}…", cut.trim_end()))
        } else {
            (!text.is_empty()).then_some(text)
        }
    };
    if let Some(name) = user.name.as_deref().and_then(clean) {
        return Some(name);
    }
    let email = user.email.as_deref()?.trim();
    let (local, domain) = email.rsplit_once('@')?;
    let first = local.chars().next()?;
    if domain.is_empty() {
        return None;
    }
    clean(&format!("{first}***@{domain}"))
}

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
    fn secrets() -> &'static [&'static str] {
        &["APP_JWT_SECRET", "APP_JWT_PUBLIC_KEY"]
    }

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
            account: account_label(&user),
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

    fn user(name: Option<&str>, email: Option<&str>) -> AppUser {
        AppUser {
            user_id: tglink_shared::ids::UserId::parse("u1").unwrap(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            roles: vec![],
            admin: false,
        }
    }

    #[test]
    fn the_account_label_is_a_name_or_a_masked_email() {
        assert_eq!(
            account_label(&user(Some(" Ann  Lee "), Some("ann@example.com"))).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            account_label(&user(None, Some("ann.lee@example.com"))).as_deref(),
            Some("a***@example.com")
        );
        assert_eq!(account_label(&user(None, None)), None);
        assert_eq!(account_label(&user(Some("\u{202E}\n"), Some("nope"))), None);
        assert_eq!(
            account_label(&user(Some("Ann\u{202E}\u{0007}\nLee"), None)).as_deref(),
            Some("AnnLee")
        );
        let long = account_label(&user(Some(&"x".repeat(500)), None)).unwrap();
        assert_eq!(long.chars().count(), ACCOUNT_LABEL_MAX_CHARS);
        assert!(long.ends_with('…'));
    }
}
