//! `initdata-verify`: `POST /api/telegram/miniapp/verify`.
//!
//! Takes `{"init_data": "<Telegram.WebApp.initData>"}`, verified with
//! [`tglink_shared::telegram::initdata`] (bot-token HMAC or Ed25519 third-party signature,
//! `auth_date` bounded, bot users refused), and requires a `user` in it.
//!
//! `verify` is a pure check: `200` with the validated, typed data and `used` (whether this
//! initData's replay claim is live: it was exchanged for tokens at `POST /oauth/token` or used
//! to link already), after one read of the Telegram user's sign-in record (the block mirror and
//! the claims together). It writes nothing and does **not** use the initData up, so a Mini App
//! can check its initData and then exchange it; a host using verify as a login check must
//! refuse `"used": true` (better: use the token exchange, which uses the initData up).
//!
//! `POST /api/telegram/miniapp/session` is gone (issue 14): the one way in is the token
//! exchange of function `oauth`.
//!
//! Refusals are `401` problems (`initdata_malformed`, `initdata_signature_invalid`,
//! `initdata_expired`, `bot_user_rejected`, `telegram_user_blocked`); with
//! `TELEGRAM_FEATURE_ENABLED` or `TELEGRAM_MINIAPP_ENABLED` off the route is `404`. The
//! initData and its `hash`/`signature` never reach a log line or an error.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde::{Deserialize, Serialize};
use tglink_shared::{
    http::{Problem, json, parse_json},
    ids::TelegramUserId,
    routes::{Endpoint, Operation, Route, dispatch, routes, switched_off},
    runtime::{Function, Startup, StartupError},
    store::SignIns,
    telegram::{
        initdata::{InitData, WebAppChat, WebAppUser},
        miniapp::{Flags, MiniAppConfig, MiniAppError, RawInitData, Verified},
    },
    time::{Clock, UnixTime},
};

pub const VERIFY: Route = Route::new("POST", "/api/telegram/miniapp/verify");

/// What `initdata-verify` does: one operation per route.
enum MiniAppOp {
    Verify,
}

impl Operation for MiniAppOp {
    const ENDPOINTS: &'static [Endpoint<Self>] = &[Endpoint::new(VERIFY, |_| Self::Verify)];
}

pub const ROUTES: &[Route] = &routes::<MiniAppOp, { MiniAppOp::ENDPOINTS.len() }>();

pub struct InitDataVerify {
    /// `None` when the Mini App endpoints are switched off (every route is then `404`).
    pub config: Option<MiniAppConfig>,
    pub signins: Arc<dyn SignIns>,
    pub clock: Clock,
}

/// `{"init_data": "..."}`.
#[derive(Deserialize)]
pub struct InitDataBody {
    pub init_data: RawInitData,
}

/// The `verify` answer: the Telegram user and the validated data, without `hash` and
/// `signature` (and never the raw string).
#[derive(Debug, Serialize)]
pub struct Verification<'a> {
    pub telegram_user_id: TelegramUserId,
    /// Whether this initData was used already (a token exchange or a link): its replay claim is
    /// live. A host using verify as a login check refuses `true`.
    pub used: bool,
    pub init_data: InitDataView<'a>,
}

/// [`InitData`] as answered: every validated field except `hash` and `signature`.
#[derive(Debug, Serialize)]
pub struct InitDataView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a WebAppUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<&'a WebAppUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<&'a WebAppChat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_instance: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_send_after: Option<u64>,
    pub auth_date: u64,
    /// Top-level fields this version does not know, decoded.
    #[serde(flatten)]
    pub extra: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a InitData> for InitDataView<'a> {
    fn from(data: &'a InitData) -> Self {
        Self {
            query_id: data.query_id.as_deref(),
            user: data.user.as_ref(),
            receiver: data.receiver.as_ref(),
            chat: data.chat.as_ref(),
            chat_type: data.chat_type.as_deref(),
            chat_instance: data.chat_instance.as_deref(),
            start_param: data.start_param.as_deref(),
            can_send_after: data.can_send_after,
            auth_date: data.auth_date,
            extra: &data.extra,
        }
    }
}

#[async_trait]
impl Function for InitDataVerify {
    fn secrets() -> &'static [&'static str] {
        &["TELEGRAM_BOT_TOKEN"]
    }

    async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let env = startup.env();
        let config = if Flags::from_env(env)?.miniapp_enabled() {
            Some(MiniAppConfig::from_env(env)?)
        } else {
            None
        };
        let store = startup.store().await?;
        Ok(Self {
            config,
            signins: store.signins(),
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

pub async fn handle(deps: &InitDataVerify, req: Request) -> Response<Body> {
    let Some(config) = &deps.config else {
        return switched_off();
    };
    dispatch(&req, async |op| match op {
        MiniAppOp::Verify => verify(deps, config, &req).await,
    })
    .await
}

/// Validates the body's initData; a refusal is logged (code only) and becomes a problem.
fn verified(
    config: &MiniAppConfig,
    req: &Request,
    now: UnixTime,
    what: &'static str,
) -> Result<Verified, Problem> {
    let body: InitDataBody = parse_json(req)?;
    config
        .verify(&body.init_data, now)
        .map_err(|err| refused(err, None, what))
}

fn refused(err: MiniAppError, telegram_user_id: Option<TelegramUserId>, what: &str) -> Problem {
    tracing::info!(
        telegram_user_id = telegram_user_id.map(TelegramUserId::get),
        outcome = err.code(),
        "{what} refused"
    );
    err.into()
}

async fn verify(
    deps: &InitDataVerify,
    config: &MiniAppConfig,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let now = deps.clock.now();
    let verified = verified(config, req, now, "miniapp verify")?;
    let id = verified.telegram_user_id;
    let standing = deps
        .signins
        .standing(id, &verified.data.replay_key(), now)
        .await?;
    if standing.blocked {
        return Err(refused(MiniAppError::Blocked, Some(id), "miniapp verify"));
    }
    tracing::info!(
        telegram_user_id = id.get(),
        used = standing.used,
        outcome = "verified",
        "miniapp verify"
    );
    Ok(json(
        StatusCode::OK,
        &Verification {
            telegram_user_id: id,
            used: standing.used,
            init_data: InitDataView::from(&verified.data),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_reaches_its_operation() {
        tglink_shared::routes::check::<MiniAppOp>();
    }
}
