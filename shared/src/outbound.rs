//! Outbound HTTPS calls tglink makes itself (the Telegram Bot API, the host's update
//! forwarding): one client for both.
//!
//! It sends through the AWS SDK's own HTTPS connector (`aws-smithy-http-client`: hyper + rustls
//! on aws-lc), which every function links anyway, rather than a second HTTP stack. Unlike the
//! SDK's client (see [`crate::aws`]), it trusts the platform's trust store
//! (`rustls-native-certs`, `SSL_CERT_FILE` included), and, like it, honours `HTTPS_PROXY` /
//! `NO_PROXY`. A target is `https://`, or `http://` only to a loopback host (tests point targets
//! at fakes on loopback), never with user info. Redirects are not followed (the connector does
//! not follow them), so what a request carries never leaves for another host. Timeouts are short
//! ([`CONNECT_TIMEOUT`], the whole call [`REQUEST_TIMEOUT`], well inside
//! [`REQUEST_DEADLINE`](crate::runtime::REQUEST_DEADLINE)); calls are not retried (the caller's
//! own client retries the request). Transport failures are reduced to fixed descriptions that
//! cannot contain the URL (a bot token travels in the Bot API's path).

use std::{
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

use crate::config::ConfigError;

/// Connecting to an outbound target.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One outbound call, whole (connect, send, answer read).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an outbound call got no answer. A fixed text: never the URL or the error's own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub &'static str);

/// An answer: status, `Content-Type`, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The HTTPS client. Cheap to clone; its connector (and TLS roots) is built on first use, not
/// at cold start: most requests of a function that holds one never call out.
#[derive(Clone, Default)]
pub struct Outbound {
    connector: Arc<OnceLock<Connector>>,
}

impl Outbound {
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

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Answer, Unreachable> {
        let request = http::Request::get(url)
            .body(SdkBody::empty())
            .map_err(|_| Unreachable("the request failed"))?;
        self.send(request).await
    }

    /// `POST url` with `headers` and `body`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, Unreachable> {
        let mut builder = http::Request::post(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(SdkBody::from(body))
            .map_err(|_| Unreachable("the request failed"))?;
        self.send(request).await
    }

    /// Sends `request` and reads the whole answer within [`REQUEST_TIMEOUT`].
    async fn send(&self, request: http::Request<SdkBody>) -> Result<Answer, Unreachable> {
        let request =
            HttpRequest::try_from(request).map_err(|_| Unreachable("the request failed"))?;
        let exchange = async {
            let response = self
                .connector()
                .call(request)
                .await
                .map_err(|e| Unreachable(describe(&e)))?;
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(str::to_owned);
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|_| Unreachable("the response could not be read"))?
                .to_vec();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Unreachable("timed out"))?
    }
}

/// A fixed description of a transport failure: never the error's own text, which may carry
/// the URL.
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

/// An outbound target from configuration variable `var`: `https://`, or `http://` to a loopback
/// host only (`localhost`, `127.0.0.0/8`, `[::1]`); no user info. Returned without a trailing
/// slash.
pub fn target_url(var: &str, raw: &str) -> Result<String, ConfigError> {
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
    let bad = |why: &str| ConfigError::new(var, why);
    let url = raw.trim().trim_end_matches('/').to_owned();
    let lower = url.to_ascii_lowercase();
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
    Ok(url)
}
