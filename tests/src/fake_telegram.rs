//! A fake Telegram Bot API on a free loopback port (`TELEGRAM_API_BASE` points at it): the one
//! peer tglink's tests cannot reach for real.
//!
//! It serves `/bot<token>/<method>` like Telegram: a token it knows (see [`FakeTelegram::add_bot`])
//! gets `{"ok":true,"result":…}`, any other gets `401 {"ok":false,"error_code":401,
//! "description":"Unauthorized"}`. `getMe` answers with the bot's user; other methods answer
//! with a result set by [`FakeTelegram::set_result`] (default `true`). It can be switched
//! "down" (every call answers a status such as 502) or stopped (the port closes). Every call is
//! recorded, so tests can count them and inspect bodies.
//!
//! `sendMessage` answers like Telegram: a `Message` with a fresh `message_id` and the request's
//! `chat_id`; a chat made unreachable ([`FakeTelegram::refuse_chat`]) gets Telegram's `403
//! Forbidden: bot was blocked by the user` / `user is deactivated` or `400 Bad Request: chat not
//! found`, and [`FakeTelegram::flood`] makes it answer `429` with `parameters.retry_after`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};

use crate::loopback::LoopbackServer;

/// A fault of the fake Bot API, for every call until [`FakeTelegram::up`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotApiFault {
    /// Answers this status (e.g. 502) with a Bot API error document.
    Status(u16),
    /// Takes the request and never answers.
    Hang,
    /// Takes the request, starts the answer (status and headers), then breaks the connection.
    ResetAfterSending,
}

/// How `sendMessage` refuses a chat, with Telegram's status and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRefusal {
    /// `403 Forbidden: bot was blocked by the user`.
    Blocked,
    /// `403 Forbidden: user is deactivated`.
    Deactivated,
    /// `400 Bad Request: chat not found`.
    NotFound,
}

impl ChatRefusal {
    fn answer(self) -> (u16, &'static str) {
        match self {
            Self::Blocked => (403, "Forbidden: bot was blocked by the user"),
            Self::Deactivated => (403, "Forbidden: user is deactivated"),
            Self::NotFound => (400, "Bad Request: chat not found"),
        }
    }
}

/// A `sendMessage` text holding this is refused as [`ChatRefusal::Blocked`].
pub const BLOCKED_MARKER: &str = "[fake:blocked]";

/// One bot the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBot {
    pub id: i64,
    pub username: String,
    pub first_name: String,
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub token: String,
    pub method: String,
    /// The request body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    bots: HashMap<String, FakeBot>,
    /// Every call meets this fault (Telegram "down").
    fault: Option<BotApiFault>,
    results: HashMap<String, Value>,
    calls: Vec<Call>,
    /// `sendMessage` to these chats is refused.
    refused_chats: HashMap<i64, ChatRefusal>,
    /// `sendMessage` answers `429` with this `retry_after`.
    flood: Option<u64>,
    /// The last `message_id` given.
    message_id: i64,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeTelegram {
    server: LoopbackServer,
    inner: Shared,
}

impl FakeTelegram {
    /// Starts the fake on `127.0.0.1:<free port>`.
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let router = Router::new()
            .route("/{bot}/{method}", any(serve))
            .with_state(inner.clone());
        Self {
            server: LoopbackServer::start(router, "the fake Bot API").await,
            inner,
        }
    }

    /// The value for `TELEGRAM_API_BASE`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Makes `token` valid, for a bot `@username`. The bot id is the token's numeric prefix.
    pub fn add_bot(&self, token: &str, username: &str) -> FakeBot {
        let id = token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(1);
        let bot = FakeBot {
            id,
            username: username.to_owned(),
            first_name: username.to_owned(),
        };
        self.lock().bots.insert(token.to_owned(), bot.clone());
        bot
    }

    /// Makes `token` invalid again (Telegram revoked it).
    pub fn remove_bot(&self, token: &str) {
        self.lock().bots.remove(token);
    }

    /// Every call answers `status` (e.g. 502) until [`FakeTelegram::up`].
    pub fn down(&self, status: u16) {
        self.fault(BotApiFault::Status(status));
    }

    /// Every call meets `fault` until [`FakeTelegram::up`].
    pub fn fault(&self, fault: BotApiFault) {
        self.lock().fault = Some(fault);
    }

    pub fn up(&self) {
        self.lock().fault = None;
    }

    /// The `result` of `method` for known tokens (default `true`).
    pub fn set_result(&self, method: &str, result: Value) {
        self.lock().results.insert(method.to_owned(), result);
    }

    /// `sendMessage` to `chat_id` is refused as `refusal` says (`None`: sent again).
    pub fn refuse_chat(&self, chat_id: i64, refusal: Option<ChatRefusal>) {
        let mut state = self.lock();
        match refusal {
            Some(refusal) => state.refused_chats.insert(chat_id, refusal),
            None => state.refused_chats.remove(&chat_id),
        };
    }

    /// `sendMessage` answers `429 Too Many Requests` with `retry_after` (`None`: sends again).
    pub fn flood(&self, retry_after: Option<u64>) {
        self.lock().flood = retry_after;
    }

    /// The bodies of the `sendMessage` calls received so far.
    pub fn sent(&self) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == "sendMessage")
            .map(|c| c.body.clone())
            .collect()
    }

    /// Every call received so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `method` were received.
    pub fn count(&self, method: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// Closes the port: from now on the Bot API is unreachable.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake Telegram state")
    }
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

async fn serve(
    State(inner): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return reply(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        );
    };
    let fault = {
        let mut state = inner.lock().expect("fake Telegram state");
        state.calls.push(Call {
            token: token.to_owned(),
            method: method.clone(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        state.fault
    };
    match fault {
        None => {}
        Some(BotApiFault::Status(status)) => {
            return reply(
                status,
                json!({"ok": false, "error_code": status, "description": "Bad Gateway"}),
            );
        }
        Some(BotApiFault::Hang) => {
            std::future::pending::<()>().await;
            unreachable!("a pending future never completes");
        }
        Some(BotApiFault::ResetAfterSending) => {
            // The status and headers go out, then the body fails: the server aborts the
            // connection mid-answer.
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(axum::body::Body::new(BrokenBody))
                .expect("static response parts");
        }
    }
    let mut state = inner.lock().expect("fake Telegram state");
    let Some(known) = state.bots.get(token).cloned() else {
        return reply(
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    };
    let result = match method.as_str() {
        "getMe" => json!({
            "id": known.id,
            "is_bot": true,
            "first_name": known.first_name,
            "username": known.username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
        }),
        "sendMessage" => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let chat_id = request["chat_id"].as_i64().unwrap_or(0);
            if let Some(retry_after) = state.flood {
                return reply(
                    429,
                    json!({"ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {retry_after}"),
                        "parameters": {"retry_after": retry_after}}),
                );
            }
            // A text asking for it is refused as blocked (for event replays, which cannot
            // reach the fake's controls).
            let asked = request["text"]
                .as_str()
                .is_some_and(|t| t.contains(BLOCKED_MARKER));
            let refusal = state
                .refused_chats
                .get(&chat_id)
                .copied()
                .or(asked.then_some(ChatRefusal::Blocked));
            if let Some(refusal) = refusal {
                let (status, description) = refusal.answer();
                return reply(
                    status,
                    json!({"ok": false, "error_code": status, "description": description}),
                );
            }
            state.message_id += 1;
            json!({
                "message_id": state.message_id,
                "date": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                "chat": {"id": chat_id, "type": "private"},
                "text": request["text"],
            })
        }
        other => state.results.get(other).cloned().unwrap_or(json!(true)),
    };
    reply(200, json!({"ok": true, "result": result}))
}

/// A response body that fails at once: the connection is aborted after the headers.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection reset after sending",
        ))))
    }
}
