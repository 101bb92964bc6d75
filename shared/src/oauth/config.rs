//! Configuration of the token service: who issues tokens, for whom, and for how long.

use std::time::Duration;

use crate::config::{ConfigError, Env, required, ttl_secs_or};

/// Default `TGLINK_ACCESS_TOKEN_TTL_SEC`: five minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 300;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    /// `TGLINK_ISSUER`: the `iss` of every token and the base of the discovery URLs. An
    /// `https://` URL (plain `http://` only to a loopback host), no query, no fragment, no user
    /// info; a trailing `/` is dropped.
    pub issuer: String,
    /// `TGLINK_TOKEN_AUDIENCE`: the `aud` of every access token.
    pub audience: String,
    /// `TGLINK_ACCESS_TOKEN_TTL_SEC` (default 300, at most one year).
    pub access_token_ttl: Duration,
}

impl TokenConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let issuer = parse_issuer(&required(env, "TGLINK_ISSUER")?)?;
        let audience = required(env, "TGLINK_TOKEN_AUDIENCE")?;
        if audience.trim().is_empty() || audience.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "TGLINK_TOKEN_AUDIENCE",
                "is malformed: expected a non-empty string",
            ));
        }
        let ttl = ttl_secs_or(
            env,
            "TGLINK_ACCESS_TOKEN_TTL_SEC",
            DEFAULT_ACCESS_TOKEN_TTL_SECS,
        )?;
        Ok(Self {
            issuer,
            audience,
            access_token_ttl: Duration::from_secs(ttl),
        })
    }

    /// `<issuer>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.issuer, path.trim_start_matches('/'))
    }

    /// How long a retired signing key stays published: it may still sign for
    /// [`KEY_ACTIVATION_SECS`](super::KEY_ACTIVATION_SECS) after its retirement, and a token
    /// it signed may be live for its lifetime plus the clock-skew leeway.
    pub fn keep_retired_secs(&self) -> u64 {
        self.access_token_ttl.as_secs() + super::LEEWAY_SECS + super::KEY_ACTIVATION_SECS
    }
}

fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new("TGLINK_ISSUER", why);
    let malformed = || bad("is malformed: expected an https URL without query or fragment");
    let issuer = raw.trim().trim_end_matches('/');
    if issuer.contains(['?', '#', '@']) || issuer.chars().any(|c| c.is_whitespace()) {
        return Err(malformed());
    }
    let uri: http::Uri = issuer.parse().map_err(|_| malformed())?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(malformed)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "must be https:// (plain http:// only for a loopback host)",
                ));
            }
        }
        _ => return Err(malformed()),
    }
    Ok(issuer.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn env(issuer: &str) -> MapEnv {
        MapEnv::new()
            .with("TGLINK_ISSUER", issuer)
            .with("TGLINK_TOKEN_AUDIENCE", "app")
    }

    #[test]
    fn issuer_is_https_or_loopback_http_without_query_or_fragment() {
        for ok in [
            "https://auth.example.com",
            "https://auth.example.com/tglink/",
            "http://127.0.0.1:8080",
            "http://localhost:9000",
            "http://[::1]:8080",
        ] {
            let config = TokenConfig::from_env(&env(ok)).unwrap();
            assert!(!config.issuer.ends_with('/'), "{ok}");
        }
        for bad in [
            "http://auth.example.com",
            "ftp://auth.example.com",
            "https://auth.example.com?x=1",
            "https://auth.example.com#f",
            "https://user@auth.example.com",
            "auth.example.com",
            "https://",
            "",
        ] {
            let err = TokenConfig::from_env(&env(bad)).unwrap_err();
            assert!(err.to_string().contains("TGLINK_ISSUER"), "{bad}: {err}");
        }
    }

    #[test]
    fn ttl_defaults_to_five_minutes_and_is_capped() {
        let config = TokenConfig::from_env(&env("https://a.example")).unwrap();
        assert_eq!(config.access_token_ttl, Duration::from_secs(300));
        assert_eq!(config.url("/oauth/token"), "https://a.example/oauth/token");
        assert_eq!(config.keep_retired_secs(), 390);
        let capped = env("https://a.example").with("TGLINK_ACCESS_TOKEN_TTL_SEC", "31536001");
        assert!(TokenConfig::from_env(&capped).is_err());
        assert!(TokenConfig::from_env(&MapEnv::new().with("TGLINK_ISSUER", "https://a")).is_err());
    }
}
