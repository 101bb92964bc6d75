//! The registry of the host apps that use tglink as their OpenID provider
//! (`TGLINK_OIDC_CLIENTS`, a service secret: SSM in the cloud, the environment locally).
//!
//! A JSON array, each entry
//! `{"client_id", "client_secret_sha256"?, "redirect_uris": [...], "scopes"?: [...]}`:
//!
//! - `client_id`: 1–64 of `A-Z a-z 0-9 . _ : -`, unique;
//! - `client_secret_sha256`: the lowercase or uppercase hex SHA-256 of the client's secret
//!   (a confidential client, authenticated with `client_secret_basic` or `client_secret_post`);
//!   absent = a public client (PKCE only, `token_endpoint_auth_method` `none`);
//! - `redirect_uris`: exact URLs (`https://`, or `http://` to a loopback host; no fragment),
//!   compared byte for byte (RFC 9700 §4.1.3: no pattern, no prefix);
//! - `scopes`: the scopes the client may ask for (default: every scope tglink supports).
//!
//! Anything else (unknown fields, duplicates, a bad URL) fails the cold start with one line
//! naming the variable and the entry, never a value.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::Deserialize;

use crate::config::{ConfigError, Env};

pub const CLIENTS_VAR: &str = "TGLINK_OIDC_CLIENTS";

/// The scopes tglink's authorization endpoint knows.
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile"];

/// One registered client.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcClient {
    pub client_id: String,
    /// SHA-256 of the secret; `None` = a public client.
    secret_sha256: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("client_id", &self.client_id)
            .field("confidential", &self.is_confidential())
            .field("redirect_uris", &self.redirect_uris)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl OidcClient {
    pub fn is_confidential(&self) -> bool {
        self.secret_sha256.is_some()
    }

    /// Whether `uri` is one of the registered redirect URIs, exactly.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether `presented` is the client's secret: SHA-256 compared in constant time. A public
    /// client has no secret, so nothing matches.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let Some(expected) = &self.secret_sha256 else {
            return false;
        };
        let actual = digest::digest(&digest::SHA256, presented.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(actual.as_ref(), expected).is_ok()
    }

    /// Whether every scope of `requested` is allowed to this client.
    pub fn allows_scopes<'a>(&self, mut requested: impl Iterator<Item = &'a str>) -> bool {
        requested.all(|s| self.scopes.iter().any(|a| a == s))
    }
}

/// The registered clients, by `client_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcClients(BTreeMap<String, OidcClient>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    #[serde(default)]
    client_secret_sha256: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

impl OidcClients {
    /// `TGLINK_OIDC_CLIENTS`; unset or empty = no client (the authorization endpoint then
    /// refuses every request as an unknown client).
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        match env.var(CLIENTS_VAR) {
            None => Ok(Self::default()),
            Some(raw) if raw.trim().is_empty() => Ok(Self::default()),
            Some(raw) => Self::parse(&raw),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = |problem: String| ConfigError::new(CLIENTS_VAR, problem);
        let entries: Vec<RawClient> = serde_json::from_str(raw).map_err(|e| {
            bad(format!(
                "is malformed: expected a JSON array of {{\"client_id\", \"client_secret_sha256\"?, \"redirect_uris\", \"scopes\"?}} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let mut clients = BTreeMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let at = |why: &str| bad(format!("is malformed: entry {index}: {why}"));
            let id = entry.client_id;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            {
                return Err(at("client_id must be 1-64 of A-Z a-z 0-9 . _ : -"));
            }
            let secret_sha256 = match entry.client_secret_sha256 {
                None => None,
                Some(hex_text) => {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(hex_text.trim(), &mut out).map_err(|_| {
                        at("client_secret_sha256 must be 64 hex digits (SHA-256 of the secret)")
                    })?;
                    Some(out)
                }
            };
            if entry.redirect_uris.is_empty() {
                return Err(at("redirect_uris must name at least one URL"));
            }
            for uri in &entry.redirect_uris {
                if !valid_redirect_uri(uri) {
                    return Err(at(
                        "every redirect_uri must be an absolute https:// URL (http:// only to a loopback host) without fragment",
                    ));
                }
            }
            let scopes = match entry.scopes {
                None => SUPPORTED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                Some(scopes) => {
                    if let Some(_unknown) = scopes
                        .iter()
                        .find(|s| !SUPPORTED_SCOPES.contains(&s.as_str()))
                    {
                        return Err(at("scopes may name only openid and profile"));
                    }
                    if !scopes.iter().any(|s| s == "openid") {
                        return Err(at("scopes must include openid"));
                    }
                    scopes
                }
            };
            let client = OidcClient {
                client_id: id.clone(),
                secret_sha256,
                redirect_uris: entry.redirect_uris,
                scopes,
            };
            if clients.insert(id, client).is_some() {
                return Err(at("client_id is registered twice"));
            }
        }
        Ok(Self(clients))
    }

    pub fn get(&self, client_id: &str) -> Option<&OidcClient> {
        self.0.get(client_id)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An absolute `https://` URL, or `http://` to a loopback host (native apps and tests, RFC
/// 8252 §7.3), with no fragment (RFC 6749 §3.1.2).
fn valid_redirect_uri(raw: &str) -> bool {
    if raw.contains(['#', '@']) || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(uri) = raw.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn sha256_hex(secret: &str) -> String {
        hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
    }

    #[test]
    fn parses_public_and_confidential_clients() {
        let raw = serde_json::json!([
            {"client_id": "web", "client_secret_sha256": sha256_hex("s3cret"),
             "redirect_uris": ["https://app.example/cb"]},
            {"client_id": "spa", "redirect_uris": ["http://127.0.0.1:3000/cb"], "scopes": ["openid"]},
        ])
        .to_string();
        let clients =
            OidcClients::from_env(&MapEnv::new().with(CLIENTS_VAR, raw.as_str())).unwrap();
        let web = clients.get("web").unwrap();
        assert!(web.is_confidential());
        assert!(web.secret_matches("s3cret"));
        assert!(!web.secret_matches("s3cret "));
        assert!(web.has_redirect_uri("https://app.example/cb"));
        assert!(!web.has_redirect_uri("https://app.example/cb/"));
        assert!(!web.has_redirect_uri("https://app.example/cb?x=1"));
        assert_eq!(web.scopes, ["openid", "profile"]);
        let spa = clients.get("spa").unwrap();
        assert!(!spa.is_confidential());
        assert!(!spa.secret_matches(""));
        assert!(spa.allows_scopes(["openid"].into_iter()));
        assert!(!spa.allows_scopes(["openid", "profile"].into_iter()));
        assert!(!format!("{web:?}").contains(&sha256_hex("s3cret")));
        assert!(
            OidcClients::from_env(&MapEnv::new())
                .unwrap()
                .get("web")
                .is_none()
        );
    }

    #[test]
    fn malformed_registries_fail_with_one_line_naming_the_variable() {
        for raw in [
            "{",
            "{}",
            r#"[{"client_id": "a"}]"#,
            r#"[{"client_id": "a", "redirect_uris": []}]"#,
            r#"[{"client_id": "a b", "redirect_uris": ["https://x/cb"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["http://evil.example/cb"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb#frag"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["/relative"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb"], "client_secret_sha256": "zz"}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb"], "scopes": ["email"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb"], "scopes": ["profile"]}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb"], "extra": 1}]"#,
            r#"[{"client_id": "a", "redirect_uris": ["https://x/cb"]}, {"client_id": "a", "redirect_uris": ["https://y/cb"]}]"#,
        ] {
            let err = OidcClients::parse(raw).unwrap_err();
            let line = err.to_string();
            assert!(
                line.starts_with("configuration error: TGLINK_OIDC_CLIENTS "),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }
}
