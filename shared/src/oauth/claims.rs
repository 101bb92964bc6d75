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
