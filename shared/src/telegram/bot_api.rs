//! A small Telegram Bot API client, for the calls tglink makes itself: today `getMe`, which
//! proves a bot token and names its bot.
//!
//! It sends its requests through the AWS SDK's own HTTPS connector (`aws-smithy-http-client`:
//! hyper + rustls on aws-lc), which every function links anyway, rather than a second HTTP
//! stack. Unlike the SDK's client (see [`crate::aws`]), it trusts the platform's trust store
//! (`rustls-native-certs`, `SSL_CERT_FILE` included), and, like it, honours `HTTPS_PROXY` /
//! `NO_PROXY`. Plain `http://` bases are accepted (tests point `TELEGRAM_API_BASE` at a fake on
//! loopback).
//!
//! The base URL is `TELEGRAM_API_BASE` (default `https://api.telegram.org`). A bot token travels
//! in the request path (`/bot<token>/getMe`), so no transport error is ever logged or returned
//! as is: failures are reduced to a fixed description that cannot contain the URL. Timeouts are
//! short (connect 3 s, the whole call 5 s) and redirects are not followed (the connector does
//! not follow them), so a token never leaves for another host.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use aws_smithy_http_client::{
    Connector,
    proxy::ProxyConfig,
    tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode},
};
use aws_smithy_runtime_api::client::{
    http::{HttpConnector, HttpConnectorSettings},
    orchestrator::HttpRequest,
    result::ConnectorError,
};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::{ConfigError, Env};

/// Default `TELEGRAM_API_BASE`.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Connecting to the Bot API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One Bot API call, whole (connect, send, answer read); calls are not retried (the caller's
/// client retries the request), and this is well inside
/// [`REQUEST_DEADLINE`](crate::runtime::REQUEST_DEADLINE).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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
    connector: Arc<OnceLock<Connector>>,
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

impl BotApi {
    /// A client for `base` (e.g. `https://api.telegram.org`, no trailing slash needed):
    /// `https://`, or `http://` to a loopback host only (`localhost`, `127.0.0.0/8`, `[::1]`),
    /// so a bot token never crosses a network in clear; no user info.
    pub fn new(base: &str) -> Result<Self, ConfigError> {
        /// The host of an authority (`host`, `host:port`, `[v6]:port`); `None` if malformed.
        fn host_of(authority: &str) -> Option<&str> {
            if authority.contains('@') {
                return None;
            }
            let host = match authority.strip_prefix('[') {
                Some(rest) => rest.split_once(']')?.0,
                None => authority.split(':').next()?,
            };
            (!host.is_empty()).then_some(host)
        }
        fn is_loopback(host: &str) -> bool {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        let bad = |why: &str| ConfigError::new("TELEGRAM_API_BASE", why);
        let base = base.trim().trim_end_matches('/').to_owned();
        let lower = base.to_ascii_lowercase();
        let (https, rest) = if let Some(rest) = lower.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = lower.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("is malformed: expected an https URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host_of(authority).ok_or_else(|| bad("is malformed: expected an https URL"))?;
        if !https && !is_loopback(host) {
            return Err(bad(
                "must be https:// (plain http:// only for a loopback host)",
            ));
        }
        Ok(Self {
            connector: Arc::default(),
            base,
        })
    }

    /// The connector, built on first use: the platform's trust store, the connect timeout and
    /// the proxy settings of the environment.
    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| {
            let trust = TlsContext::builder()
                .with_trust_store(TrustStore::default())
                .build()
                .expect("a TLS context with a trust store only always builds");
            Connector::builder()
                .connector_settings(
                    HttpConnectorSettings::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .build(),
                )
                .proxy_config(ProxyConfig::from_env())
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(trust)
                .build()
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

    /// One Bot API method without parameters.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        token: &BotToken,
        method: &str,
    ) -> Result<T, BotApiError> {
        let url = Zeroizing::new(format!("{}/bot{}/{method}", self.base, token.expose()));
        let request = http::Request::get(url.as_str())
            .body(SdkBody::empty())
            .map_err(|_| BotApiError::Unreachable("the request failed"))
            .and_then(|request| {
                HttpRequest::try_from(request)
                    .map_err(|_| BotApiError::Unreachable("the request failed"))
            })?;
        let exchange = async {
            let response = self
                .connector()
                .call(request)
                .await
                .map_err(|e| BotApiError::Unreachable(describe(&e)))?;
            let status = response.status().as_u16();
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|_| BotApiError::Unreachable("the response could not be read"))?
                .into_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| BotApiError::Unreachable("timed out"))??;
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

/// A fixed description of a transport failure: never the error's own text, which may carry
/// the URL (and so the token).
fn describe(err: &ConnectorError) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_io() {
        // Refused, reset or unresolvable: the connector's I/O errors.
        "cannot connect"
    } else {
        "the request failed"
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        sync::atomic::{AtomicUsize, Ordering},
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
