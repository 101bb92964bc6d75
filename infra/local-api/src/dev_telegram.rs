//! A built-in fake Telegram Bot API for trying tglink offline (`TGLINK_DEV_FAKE_TELEGRAM=1`,
//! local API only: no Lambda links this crate).
//!
//! It answers on a free loopback port, and the local API's `TELEGRAM_API_BASE` points at it:
//! `getMe` accepts any well-formed bot token (`<id>:<secret>`) and names its bot
//! `dev<id>_bot`, so the vault (`PUT /api/settings/bot-token`) and the worker credentials can
//! be tried without a real bot; `sendMessage` answers a message id. Anything else, and a
//! malformed token, is refused the way Telegram refuses (`401` / `404` with `ok: false`).

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use axum::{
    Json, Router,
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::json;
use tglink_shared::{
    config::{ConfigError, Env, Layered, MapEnv},
    telegram::bot_api::BotToken,
};
use tokio::{net::TcpListener, task::JoinHandle};

/// The switch.
pub const VAR: &str = "TGLINK_DEV_FAKE_TELEGRAM";

/// The running fake; it stops when dropped.
pub struct DevTelegram {
    pub base_url: String,
    task: JoinHandle<()>,
}

impl Drop for DevTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// With [`VAR`] = `1`: starts the fake and layers `TELEGRAM_API_BASE` (its URL) over `env`.
/// Without it: `env` unchanged. `TELEGRAM_API_BASE` set too is a configuration error (which
/// one is meant?).
pub async fn with_dev_telegram(
    env: Arc<dyn Env>,
) -> Result<(Arc<dyn Env>, Option<DevTelegram>), ConfigError> {
    match env.var(VAR).as_deref() {
        None | Some("0") => return Ok((env, None)),
        Some("1") => {}
        Some(_) => return Err(ConfigError::new(VAR, "must be 1 or 0")),
    }
    if env.var("TELEGRAM_API_BASE").is_some() {
        return Err(ConfigError::new(
            VAR,
            "and TELEGRAM_API_BASE are both set: the fake Bot API replaces TELEGRAM_API_BASE",
        ));
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ConfigError::new(VAR, format_args!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ConfigError::new(VAR, format_args!("cannot listen on loopback: {e}")))?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router()).await;
    });
    let base_url = format!("http://{addr}");
    let env: Arc<dyn Env> = Arc::new(Layered {
        top: MapEnv::new().with("TELEGRAM_API_BASE", &base_url),
        base: env,
    });
    Ok((env, Some(DevTelegram { base_url, task })))
}

fn router() -> Router {
    let message_ids = Arc::new(AtomicI64::new(1));
    Router::new().route(
        "/{bot}/{method}",
        any(move |Path((bot, method)): Path<(String, String)>| {
            let message_ids = message_ids.clone();
            async move { answer(&bot, &method, &message_ids) }
        }),
    )
}

fn answer(bot: &str, method: &str, message_ids: &AtomicI64) -> Response {
    let refused = |status: StatusCode, description: &str| {
        let body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
        (status, Json(body)).into_response()
    };
    let Some(id) = bot
        .strip_prefix("bot")
        .and_then(|token| BotToken::parse(token).ok())
        .and_then(|token| token.bot_id())
    else {
        return refused(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let result = match method {
        "getMe" => json!({
            "id": id,
            "is_bot": true,
            "first_name": format!("Dev bot {id}"),
            "username": format!("dev{id}_bot"),
        }),
        "sendMessage" => json!({"message_id": message_ids.fetch_add(1, Ordering::Relaxed)}),
        _ => return refused(StatusCode::NOT_FOUND, "Not Found: method not found"),
    };
    Json(json!({"ok": true, "result": result})).into_response()
}
