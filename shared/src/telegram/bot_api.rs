//! A small Telegram Bot API client, for the calls tglink makes itself: `getMe`, which proves a
//! bot token and names its bot, and `sendMessage` (notify), whose refusals are classified
//! ([`SendError`]): Telegram's `429` with `retry_after`, a chat the bot cannot reach (blocked,
//! deactivated, gone), another refusal, or no answer.
//!
//! Requests go through the [`Outbound`] client (the SDK's HTTPS connector, the platform's
//! trust store, short timeouts, no redirects, transport errors without URLs). The base URL is
//! `TELEGRAM_API_BASE` (default `https://api.telegram.org`; `http://` only to loopback, for
//! tests). A bot token travels in the request path (`/bot<token>/getMe`), so no transport error
//! is ever logged or returned as is: failures are reduced to a fixed description that cannot
//! contain the URL.

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

pub use crate::outbound::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use crate::{
    config::{ConfigError, Env},
    outbound::{Outbound, target_url},
    store::UnreachableReason,
};

/// Default `TELEGRAM_API_BASE`.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// A bot token as issued by @BotFather: `<bot id>:<secret>`, the id at least 5 digits, the
/// secret at least 30 of `[A-Za-z0-9_-]`. Redacted in `Debug`, no `Display`, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(Zeroizing<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bot token is malformed: expected <digits>:<secret> as issued by @BotFather")]
pub struct BotTokenFormatError;

impl BotToken {
    /// Longest accepted token (real ones are about 46 characters).
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, BotTokenFormatError> {
        let raw = raw.trim();
        if raw.len() > Self::MAX_LEN {
            return Err(BotTokenFormatError);
        }
        let (id, secret) = raw.split_once(':').ok_or(BotTokenFormatError)?;
        let id_ok = id.len() >= 5 && id.len() <= 20 && id.bytes().all(|c| c.is_ascii_digit());
        let secret_ok = secret.len() >= 30
            && secret
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !(id_ok && secret_ok) {
            return Err(BotTokenFormatError);
        }
        Ok(Self(Zeroizing::new(raw.to_owned())))
    }

    /// The bot's numeric id (the part before the colon).
    pub fn bot_id(&self) -> Option<i64> {
        self.0.split_once(':').and_then(|(id, _)| id.parse().ok())
    }

    /// The secret text, for the one place that needs it (the request path, sealing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

/// `getMe`'s answer (the fields tglink uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BotUser {
    pub id: i64,
    pub is_bot: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
}

/// Why a Bot API call failed. Never contains the token or the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotApiError {
    /// Telegram answered and refused the token (401/403/404, or `ok: false` on a 4xx).
    #[error("Telegram rejected the bot token (HTTP {status})")]
    Rejected { status: u16 },
    /// Telegram could not be reached or failed (connect error, timeout, 5xx, 429, garbage).
    #[error("Telegram Bot API unreachable: {0}")]
    Unreachable(&'static str),
}

/// The Bot API client. Build once per cold start and share.
///
/// The HTTPS connector (and its TLS roots) is built on first use, not at cold start: most
/// requests of a function that holds a `BotApi` never call Telegram.
#[derive(Clone)]
pub struct BotApi {
    outbound: Outbound,
    base: String,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BotApi").field("base", &self.base).finish()
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
}

/// A Bot API error document (`{"ok":false,"error_code":…,"description":…,"parameters":…}`).
#[derive(Deserialize)]
struct Refusal {
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<RefusalParameters>,
}

#[derive(Deserialize)]
struct RefusalParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// `sendMessage`'s answer (the fields tglink uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub message_id: i64,
    /// Unix seconds.
    pub date: u64,
    pub chat: SentChat,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentChat {
    pub id: i64,
}

/// Why `sendMessage` did not send. Never contains the token, the URL or the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// `429`: Telegram's own flood control; retry after this many seconds.
    #[error("Telegram is rate limiting (retry after {retry_after}s)")]
    RateLimited { retry_after: u64 },
    /// The chat cannot be reached: the user blocked the bot, is deactivated, or the chat is gone.
    #[error("the chat is unreachable ({})", .0.as_str())]
    ChatUnreachable(UnreachableReason),
    /// Telegram refused the message (e.g. `400` for entities it cannot parse); sending it again
    /// will not help.
    #[error("Telegram refused the message (HTTP {status})")]
    Refused { status: u16 },
    /// Telegram refused the bot token (401/404).
    #[error("Telegram rejected the bot token (HTTP {status})")]
    TokenRejected { status: u16 },
    /// No answer Telegram stands behind (connect error, timeout, 5xx, garbage): it may or may
    /// not have been sent.
    #[error("Telegram Bot API unreachable: {0}")]
    Unavailable(&'static str),
}

/// The reason a Bot API refusal names an unreachable chat, from its `description`.
pub fn unreachable_reason(status: u16, description: &str) -> Option<UnreachableReason> {
    let d = description.to_ascii_lowercase();
    match status {
        403 if d.contains("blocked") => Some(UnreachableReason::BotBlocked),
        403 if d.contains("deactivated") => Some(UnreachableReason::UserDeactivated),
        403 if d.contains("can't initiate") || d.contains("kicked") || d.contains("not found") => {
            Some(UnreachableReason::ChatNotFound)
        }
        400 if d.contains("chat not found") => Some(UnreachableReason::ChatNotFound),
        _ => None,
    }
}

/// Classifies a non-2xx answer to `sendMessage`.
fn send_refusal(status: u16, body: &[u8]) -> SendError {
    let refusal = serde_json::from_slice::<Refusal>(body)
        .ok()
        .filter(|r| !r.ok);
    match (status, refusal) {
        (429, refusal) => SendError::RateLimited {
            retry_after: refusal
                .and_then(|r| r.parameters)
                .and_then(|p| p.retry_after)
                .unwrap_or(1)
                .max(1),
        },
        (401 | 404, _) => SendError::TokenRejected { status },
        (400..=499, Some(refusal)) => {
            match unreachable_reason(status, refusal.description.as_deref().unwrap_or("")) {
                Some(reason) => SendError::ChatUnreachable(reason),
                None => SendError::Refused { status },
            }
        }
        (400..=499, None) => SendError::Unavailable("Telegram answered with an error"),
        _ => SendError::Unavailable("Telegram answered with a server error"),
    }
}

impl BotApi {
    /// A client for `base` (e.g. `https://api.telegram.org`, no trailing slash needed):
    /// `https://`, or `http://` to a loopback host only (`localhost`, `127.0.0.0/8`, `[::1]`),
    /// so a bot token never crosses a network in clear; no user info.
    pub fn new(base: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            outbound: Outbound::default(),
            base: target_url("TELEGRAM_API_BASE", base)?,
        })
    }

    /// From `TELEGRAM_API_BASE` (default [`DEFAULT_API_BASE`]).
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Self::new(
            &env.var("TELEGRAM_API_BASE")
                .unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
        )
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `getMe`: proves the token and returns the bot.
    pub async fn get_me(&self, token: &BotToken) -> Result<BotUser, BotApiError> {
        let user: BotUser = self.call(token, "getMe").await?;
        if !user.is_bot {
            return Err(BotApiError::Unreachable("getMe did not describe a bot"));
        }
        Ok(user)
    }

    /// `sendMessage` with `params` (a JSON object: `chat_id`, `text`, …), one call, not retried.
    pub async fn send_message(
        &self,
        token: &BotToken,
        params: &serde_json::Value,
    ) -> Result<SentMessage, SendError> {
        let url = Zeroizing::new(format!("{}/bot{}/sendMessage", self.base, token.expose()));
        let body = Zeroizing::new(serde_json::to_vec(params).unwrap_or_default());
        let answer = self
            .outbound
            .post(
                url.as_str(),
                &[("content-type", "application/json")],
                body.to_vec(),
            )
            .await
            .map_err(|e| SendError::Unavailable(e.0))?;
        match answer.status {
            200..=299 => {
                let envelope: Envelope<SentMessage> = serde_json::from_slice(&answer.body)
                    .map_err(|_| SendError::Unavailable("Telegram answered with bad JSON"))?;
                match (envelope.ok, envelope.result) {
                    (true, Some(sent)) => Ok(sent),
                    _ => Err(SendError::Unavailable("Telegram answered without a result")),
                }
            }
            status => Err(send_refusal(status, &answer.body)),
        }
    }

    /// One Bot API method without parameters.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        token: &BotToken,
        method: &str,
    ) -> Result<T, BotApiError> {
        let url = Zeroizing::new(format!("{}/bot{}/{method}", self.base, token.expose()));
        let answer = self
            .outbound
            .get(url.as_str())
            .await
            .map_err(|e| BotApiError::Unreachable(e.0))?;
        let (status, body) = (answer.status, answer.body);
        match status {
            200..=299 => {
                let envelope: Envelope<T> = serde_json::from_slice(&body)
                    .map_err(|_| BotApiError::Unreachable("Telegram answered with bad JSON"))?;
                match (envelope.ok, envelope.result) {
                    (true, Some(result)) => Ok(result),
                    _ => Err(BotApiError::Unreachable(
                        "Telegram answered without a result",
                    )),
                }
            }
            401 | 403 | 404 => Err(BotApiError::Rejected { status }),
            429 => Err(BotApiError::Unreachable("Telegram is rate limiting")),
            400..=499 => {
                // Another 4xx is a refusal only when it is a Bot API error document.
                let refused = serde_json::from_slice::<Envelope<serde_json::Value>>(&body)
                    .is_ok_and(|e| !e.ok);
                if refused {
                    Err(BotApiError::Rejected { status })
                } else {
                    Err(BotApiError::Unreachable("Telegram answered with an error"))
                }
            }
            _ => Err(BotApiError::Unreachable(
                "Telegram answered with a server error",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use super::*;

    const GOOD: &str = "123456789:AAE-abcdefghijklmnopqrstuvwxyz_01234";

    #[test]
    fn token_format() {
        let t = BotToken::parse(GOOD).unwrap();
        assert_eq!(t.bot_id(), Some(123456789));
        assert_eq!(t.expose(), GOOD);
        assert!(!format!("{t:?}").contains("AAE"));
        for bad in [
            "",
            "123456789",
            "1234:AAE-abcdefghijklmnopqrstuvwxyz_01234",
            "12345x:AAE-abcdefghijklmnopqrstuvwxyz_01234",
            "123456789:short",
            "123456789:AAE-abcdefghijklmnopqrstuvwxyz/01234",
            "123456789:AAE-abcdefghijklmnopqrstuvwxyz 01234",
            "123456789:AAE-abcdefghijklmnopqrstuvwxyz_01234:x",
        ] {
            assert!(BotToken::parse(bad).is_err(), "{bad}");
        }
        assert!(BotToken::parse(&format!("12345:{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn base_must_be_http() {
        assert!(BotApi::new("ftp://x").is_err());
        assert_eq!(
            BotApi::new("http://127.0.0.1:1/").unwrap().base(),
            "http://127.0.0.1:1"
        );
    }

    /// Plain `http://` only to a loopback host: a bot token never crosses a network in clear.
    #[test]
    fn base_must_be_https_except_on_loopback() {
        for ok in [
            "https://api.telegram.org",
            "https://tg-proxy.example:8443/",
            "http://127.0.0.1:8081",
            "http://127.1.2.3",
            "http://localhost:9000/",
            "HTTP://LOCALHOST",
            "http://[::1]:8081",
        ] {
            assert!(BotApi::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.telegram.org",
            "http://10.0.0.1:8081",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1@evil.example",
            "http://[::2]:80",
            "http://",
            "https://",
            "https://user:pw@api.telegram.org",
        ] {
            let err = BotApi::new(bad).unwrap_err();
            assert_eq!(err.var, "TELEGRAM_API_BASE", "{bad}");
        }
    }

    /// A loopback server that reads each request and answers it with `response` (`None`: never
    /// answers), counting connections. Returns its base URL and the counter.
    fn canned(response: Option<String>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                match &response {
                    Some(response) => {
                        let _ = stream.write_all(response.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(30)),
                }
            }
        });
        (base, connections)
    }

    fn answer(status: &str, headers: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
            body.len()
        ))
    }

    async fn get_me(base: &str) -> Result<BotUser, BotApiError> {
        let token = BotToken::parse(GOOD).unwrap();
        BotApi::new(base).unwrap().get_me(&token).await
    }

    #[tokio::test]
    async fn answers_are_read_and_classified() {
        let user = r#"{"ok":true,"result":{"id":123456789,"is_bot":true,"username":"tg_bot","first_name":"Bot"}}"#;
        let (base, _) = canned(answer("200 OK", "", user));
        assert_eq!(
            get_me(&base).await.unwrap(),
            BotUser {
                id: 123456789,
                is_bot: true,
                username: Some("tg_bot".into()),
                first_name: Some("Bot".into()),
            }
        );
        let refusal = r#"{"ok":false,"error_code":400,"description":"Bad Request"}"#;
        for (status, body, expected) in [
            (
                "401 Unauthorized",
                "",
                BotApiError::Rejected { status: 401 },
            ),
            (
                "400 Bad Request",
                refusal,
                BotApiError::Rejected { status: 400 },
            ),
            (
                "400 Bad Request",
                "<html>",
                BotApiError::Unreachable("Telegram answered with an error"),
            ),
            (
                "429 Too Many Requests",
                "",
                BotApiError::Unreachable("Telegram is rate limiting"),
            ),
            (
                "502 Bad Gateway",
                "",
                BotApiError::Unreachable("Telegram answered with a server error"),
            ),
            (
                "200 OK",
                "not json",
                BotApiError::Unreachable("Telegram answered with bad JSON"),
            ),
            (
                "200 OK",
                r#"{"ok":true,"result":{"id":1,"is_bot":false}}"#,
                BotApiError::Unreachable("getMe did not describe a bot"),
            ),
        ] {
            let (base, _) = canned(answer(status, "", body));
            assert_eq!(
                get_me(&base).await.unwrap_err(),
                expected,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn send_refusals_are_classified() {
        let doc = |code: u16, description: &str| {
            format!(r#"{{"ok":false,"error_code":{code},"description":"{description}"}}"#)
        };
        let cases = [
            (
                429,
                r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#.to_owned(),
                SendError::RateLimited { retry_after: 7 },
            ),
            (
                403,
                doc(403, "Forbidden: bot was blocked by the user"),
                SendError::ChatUnreachable(UnreachableReason::BotBlocked),
            ),
            (
                403,
                doc(403, "Forbidden: user is deactivated"),
                SendError::ChatUnreachable(UnreachableReason::UserDeactivated),
            ),
            (
                403,
                doc(403, "Forbidden: bot can't initiate conversation with a user"),
                SendError::ChatUnreachable(UnreachableReason::ChatNotFound),
            ),
            (
                400,
                doc(400, "Bad Request: chat not found"),
                SendError::ChatUnreachable(UnreachableReason::ChatNotFound),
            ),
            (
                400,
                doc(400, "Bad Request: can't parse entities"),
                SendError::Refused { status: 400 },
            ),
            (401, doc(401, "Unauthorized"), SendError::TokenRejected { status: 401 }),
            (
                502,
                doc(502, "Bad Gateway"),
                SendError::Unavailable("Telegram answered with a server error"),
            ),
            (
                400,
                "<html>".to_owned(),
                SendError::Unavailable("Telegram answered with an error"),
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(send_refusal(status, body.as_bytes()), expected, "{body}");
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (elsewhere, visits) = canned(answer("200 OK", "", "{}"));
        let location = format!("location: {elsewhere}/bot{GOOD}/getMe\r\n");
        let (base, _) = canned(answer("302 Found", &location, ""));
        assert_eq!(
            get_me(&base).await.unwrap_err(),
            BotApiError::Unreachable("Telegram answered with a server error")
        );
        assert_eq!(visits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (base, connections) = canned(None);
        let started = std::time::Instant::now();
        let err = get_me(&base).await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err, BotApiError::Unreachable("timed out"));
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert!(
            // The upper bound only tells a timeout from a hang: generous, for a loaded machine.
            elapsed >= REQUEST_TIMEOUT && elapsed < REQUEST_TIMEOUT * 4,
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn unreachable_error_never_contains_the_token() {
        // A closed port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = BotApi::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = api
            .get_me(&BotToken::parse(GOOD).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, BotApiError::Unreachable(_)));
        assert!(!err.to_string().contains("AAE"));
        assert!(!format!("{err:?}").contains("AAE"));
    }
}
