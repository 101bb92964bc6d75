//! Update forwarding: the host's own bot keeps working behind tglink's webhook.
//!
//! Telegram allows one webhook per bot. With `TGLINK_FORWARD_URL` set (`https://`, or
//! `http://` to loopback), every update tglink does not handle itself is POSTed there
//! synchronously, byte for byte as Telegram sent it, with `X-Tglink-Forward-Secret:
//! <TGLINK_FORWARD_SECRET>` (from SSM in the cloud) so the host can tell tglink from anyone
//! else. The host's `2xx` answer, when it is a JSON Bot API method call (as Telegram allows in
//! webhook responses), becomes the webhook's response; an empty `2xx` an empty `200`. A host that
//! fails (non-`2xx`) or cannot be reached within [`REQUEST_TIMEOUT`] makes the webhook answer
//! `502 forward_failed`, so Telegram redelivers, and the update's claim is released so that the
//! redelivery is forwarded; a forwarded update's claim is completed, so a redelivery of it is
//! not forwarded twice.

use std::fmt;

use tglink_shared::{
    config::{ConfigError, Env, optional},
    outbound::{Answer, Outbound, REQUEST_TIMEOUT, target_url},
    secret::SecretString,
};

/// The header carrying `TGLINK_FORWARD_SECRET` on every forwarded update.
pub const FORWARD_SECRET_HEADER: &str = "x-tglink-forward-secret";

/// Where unhandled updates go, and the secret that proves they come from tglink.
#[derive(Clone)]
pub struct Forwarding {
    url: String,
    secret: SecretString,
    outbound: Outbound,
}

impl fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarding")
            .field("url", &self.url)
            .finish()
    }
}

/// What the host answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostReply {
    /// `2xx` with no body (or one that is not JSON): nothing to pass on.
    Empty,
    /// `2xx` with a JSON body: a Bot API method call for Telegram, passed on as is.
    MethodCall(Vec<u8>),
}

/// Why the host did not take the update. Never the URL or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("the host answered HTTP {0}")]
    Refused(u16),
    #[error("the host could not be reached: {0}")]
    Unreachable(&'static str),
}

impl Forwarding {
    /// From `TGLINK_FORWARD_URL` (unset: no forwarding) and `TGLINK_FORWARD_SECRET` (then
    /// required: 16-256 characters of `A-Za-z0-9_-`).
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = optional(env, "TGLINK_FORWARD_URL") else {
            return Ok(None);
        };
        let url = target_url("TGLINK_FORWARD_URL", &raw)?;
        let secret = optional(env, "TGLINK_FORWARD_SECRET").ok_or_else(|| {
            ConfigError::new(
                "TGLINK_FORWARD_SECRET",
                "is required when TGLINK_FORWARD_URL is set",
            )
        })?;
        let valid = (16..=256).contains(&secret.len())
            && secret
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !valid {
            return Err(ConfigError::new(
                "TGLINK_FORWARD_SECRET",
                "is malformed: 16-256 letters, digits, '_' or '-'",
            ));
        }
        Ok(Some(Self {
            url,
            secret: SecretString::new(secret),
            outbound: Outbound::default(),
        }))
    }

    /// POSTs `update` (the raw body Telegram sent) to the host.
    pub async fn forward(&self, update: &[u8]) -> Result<HostReply, ForwardError> {
        let headers = [
            ("content-type", "application/json"),
            (FORWARD_SECRET_HEADER, self.secret.expose()),
        ];
        let Answer {
            status,
            content_type,
            body,
        } = self
            .outbound
            .post(&self.url, &headers, update.to_vec())
            .await
            .map_err(|e| ForwardError::Unreachable(e.0))?;
        if !(200..300).contains(&status) {
            return Err(ForwardError::Refused(status));
        }
        let json = content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        Ok(if json && !body.is_empty() {
            HostReply::MethodCall(body)
        } else {
            HostReply::Empty
        })
    }
}

/// The forwarding timeout, for the docs and the deadline test.
pub const FORWARD_TIMEOUT: std::time::Duration = REQUEST_TIMEOUT;

#[cfg(test)]
mod tests {
    use tglink_shared::config::MapEnv;

    use super::*;

    #[test]
    fn configuration() {
        assert!(Forwarding::from_env(&MapEnv::new()).unwrap().is_none());
        let env = |url: &str, secret: Option<&str>| {
            let env = MapEnv::new().with("TGLINK_FORWARD_URL", url);
            match secret {
                Some(s) => env.with("TGLINK_FORWARD_SECRET", s),
                None => env,
            }
        };
        let good = "a-forward-secret-0123456789";
        assert!(Forwarding::from_env(&env("https://host.example/tg", Some(good))).is_ok());
        assert!(Forwarding::from_env(&env("http://127.0.0.1:9/tg", Some(good))).is_ok());
        for (url, secret, var) in [
            ("http://host.example/tg", Some(good), "TGLINK_FORWARD_URL"),
            ("ftp://host.example", Some(good), "TGLINK_FORWARD_URL"),
            ("https://host.example", None, "TGLINK_FORWARD_SECRET"),
            (
                "https://host.example",
                Some("short"),
                "TGLINK_FORWARD_SECRET",
            ),
            (
                "https://host.example",
                Some("has spaces in it, 0123456789"),
                "TGLINK_FORWARD_SECRET",
            ),
        ] {
            let err = Forwarding::from_env(&env(url, secret)).unwrap_err();
            assert_eq!(err.var, var, "{url} {secret:?}");
            assert!(!err.to_string().contains(good));
        }
        let debug = format!(
            "{:?}",
            Forwarding::from_env(&env("https://h.example", Some(good)))
        );
        assert!(!debug.contains(good), "{debug}");
    }
}
