//! The claims of an access token: RFC 9068 §2.2 plus the Telegram profile fields the sign-in
//! proved. Optional fields are left out of the JWT when `None`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub aud: String,
    /// The Telegram user id, as a string.
    pub sub: String,
    pub client_id: String,
    /// The linked app user, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// The session id.
    pub sid: String,
    /// How the session signed in (e.g. `telegram_miniapp`).
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_premium: Option<bool>,
}

/// The claims of an OpenID Connect ID token (OIDC Core 1.0 §2, §3.1.3.6) that tglink issues to
/// a registered client at the authorization-code grant. `sub` is the Telegram user id (stable
/// across clients: tglink's subject type is `public`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client's `client_id`.
    pub aud: String,
    /// The authorized party (OIDC Core §2): the client, as `aud`.
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    /// The client's `nonce` from its authorization request, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    /// The session id (OpenID Connect Front-Channel/Back-Channel Logout's `sid`).
    pub sid: String,
    /// Left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
    pub at_hash: String,
    /// The linked app user, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// `profile` scope: the Telegram username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `profile` scope: the Telegram first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `profile` scope: the Telegram language, as a BCP 47 tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// `at_hash` of `access_token` for ES256 (OIDC Core §3.1.3.6): base64url of the left half of
/// its SHA-256.
pub fn at_hash(access_token: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}
