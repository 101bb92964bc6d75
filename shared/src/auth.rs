//! App-user authentication: a JWT issued by the host application.
//!
//! HS256 with a shared secret, or RS256/ES256/EdDSA with a public key. The algorithm is pinned
//! by configuration (never taken from the token header), `exp`, `iss`, `aud` and `sub` are
//! required, and `sub` is the user id. Handlers get an [`AppUser`] only from
//! [`JwtVerifier::authenticate`], so the user id can never come from a body or query.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use lambda_http::Request;
use serde::{Deserialize, Serialize};

use crate::{
    config::{ConfigError, JwtConfig, JwtKey},
    http::bearer_token,
    ids::UserId,
};

/// Clock skew tolerated on `exp`/`nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Default `APP_JWT_ADMIN_ROLE`: the role that grants the admin endpoints. Namespaced, so that
/// a host application's own `admin` role does not make its holders tglink admins.
pub const DEFAULT_ADMIN_ROLE: &str = "tglink:admin";

/// Default `APP_JWT_ROLES_CLAIM`: the claim holding the roles (an array of strings, or one
/// string).
pub const DEFAULT_ROLES_CLAIM: &str = "roles";

/// Default `APP_JWT_SERVICE_ROLE`: the role of a host application's backend, which may name the
/// user a call is about (`POST /api/auth/2fa/verify`). Namespaced like the admin role.
pub const DEFAULT_SERVICE_ROLE: &str = "tglink:service";

/// A verified app user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUser {
    pub user_id: UserId,
    pub email: Option<String>,
    /// The optional `name` claim (a display name), if it is a string.
    pub name: Option<String>,
    /// The roles of the `APP_JWT_ROLES_CLAIM` claim.
    pub roles: Vec<String>,
    /// Whether `roles` holds `APP_JWT_ADMIN_ROLE`.
    pub admin: bool,
}

impl AppUser {
    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token invalid: {0}")]
    Invalid(&'static str),
    /// A valid app JWT without the admin role, on an admin endpoint.
    #[error("the admin role is required")]
    Forbidden,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    /// Every other claim: the roles claim's name is configured.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// The roles of a claim value: an array's strings, or one string; any other shape holds none.
fn roles_of(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(role)) => vec![role.clone()],
        _ => Vec::new(),
    }
}

/// Verifies app JWTs. Built once per cold start.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    admin_role: String,
    service_role: String,
    roles_claim: String,
}

impl JwtVerifier {
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let (key, algorithm) = match &config.key {
            JwtKey::Secret(secret) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            JwtKey::PublicKey { pem, algorithm } => public_key(pem, algorithm.as_deref())?,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        Ok(Self {
            key,
            validation,
            admin_role: config.admin_role.clone(),
            service_role: config.service_role.clone(),
            roles_claim: config.roles_claim.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<AppUser, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Invalid("algorithm not accepted")
                }
                ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer"),
                ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience"),
                ErrorKind::ImmatureSignature => AuthError::Invalid("not valid yet"),
                ErrorKind::MissingRequiredClaim(_) => {
                    AuthError::Invalid("a required claim is missing")
                }
                _ => AuthError::Invalid("malformed"),
            },
        )?;
        let user_id = UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid("bad sub"))?;
        let roles = roles_of(data.claims.other.get(&self.roles_claim));
        let admin = roles.contains(&self.admin_role);
        let name = data
            .claims
            .other
            .get("name")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok(AppUser {
            user_id,
            email: data.claims.email,
            name,
            roles,
            admin,
        })
    }

    /// The verified user of a request's `Authorization: Bearer` JWT (a 401 problem otherwise,
    /// see [`crate::http::problems`]).
    pub fn authenticate(&self, req: &Request) -> Result<AppUser, AuthError> {
        let token = bearer_token(req).ok_or(AuthError::Missing)?;
        if token.starts_with(crate::vault::worker_token::WORKER_TOKEN_PREFIX) {
            return Err(AuthError::Invalid(
                "this is a worker token, which only fetches credentials (GET /api/worker/credentials) and reports a dead session (POST /api/telegram/session/report); this route takes the user's app JWT",
            ));
        }
        self.verify(token)
    }

    /// Whether `user`'s roles hold `APP_JWT_SERVICE_ROLE`: a host application's backend, which
    /// may act for a user it names.
    pub fn is_service(&self, user: &AppUser) -> bool {
        user.roles.contains(&self.service_role)
    }

    /// Like [`authenticate`](Self::authenticate), and the user must hold the admin role
    /// ([`AuthError::Forbidden`], a 403, otherwise).
    pub fn authenticate_admin(&self, req: &Request) -> Result<AppUser, AuthError> {
        let user = self.authenticate(req)?;
        if !user.is_admin() {
            return Err(AuthError::Forbidden);
        }
        Ok(user)
    }
}

fn public_key(pem: &str, pinned: Option<&str>) -> Result<(DecodingKey, Algorithm), ConfigError> {
    let bad = |why: &str| ConfigError::new("APP_JWT_PUBLIC_KEY", why);
    let pem = pem.as_bytes();
    if let Some(name) = pinned {
        let algorithm: Algorithm = name.parse().map_err(|_| {
            ConfigError::new("APP_JWT_ALGORITHM", "is malformed: unknown algorithm")
        })?;
        let key = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => {
                return Err(ConfigError::new(
                    "APP_JWT_ALGORITHM",
                    "must be an asymmetric algorithm when APP_JWT_PUBLIC_KEY is set",
                ));
            }
        }
        .map_err(|_| bad("is not a PEM public key of the APP_JWT_ALGORITHM type"))?;
        return Ok((key, algorithm));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, Algorithm::ES256));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Algorithm::RS256));
    }
    Err(bad("is not an RSA, EC P-256 or Ed25519 PEM public key"))
}

/// Claims for issuing tokens in development and tests (the host application issues them in
/// production).
#[derive(Debug, Clone, Serialize)]
pub struct DevClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl DevClaims {
    pub fn new(sub: &str, config: &JwtConfig, valid_for_secs: u64) -> Self {
        let now = jsonwebtoken::get_current_timestamp();
        Self {
            sub: sub.to_owned(),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            exp: now + valid_for_secs,
            iat: now,
            email: None,
            name: None,
            roles: Vec::new(),
        }
    }
}

/// Signs `claims` with an HS256 secret.
pub fn sign_hs256(secret: &str, claims: &impl Serialize) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing with an in-memory secret cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";

    fn config() -> JwtConfig {
        JwtConfig::from_env(
            &crate::config::MapEnv::new()
                .with("APP_JWT_SECRET", SECRET)
                .with("APP_JWT_ISSUER", "https://app.example")
                .with("APP_JWT_AUDIENCE", "tglink"),
        )
        .unwrap()
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&config()).unwrap()
    }

    #[test]
    fn accepts_a_valid_token_and_takes_sub_as_user_id() {
        let mut claims = DevClaims::new("user-42", &config(), 300);
        claims.roles = vec![DEFAULT_ADMIN_ROLE.into()];
        claims.email = Some("a@example.com".into());
        let user = verifier().verify(&sign_hs256(SECRET, &claims)).unwrap();
        assert_eq!(user.user_id.as_str(), "user-42");
        assert!(user.is_admin());
        assert_eq!(user.email.as_deref(), Some("a@example.com"));
    }

    /// A host application's own "admin" is not a tglink admin: the default admin role is
    /// namespaced (`tglink:admin`).
    #[test]
    fn a_plain_admin_role_is_not_the_tglink_admin_role() {
        let mut claims = DevClaims::new("user-42", &config(), 300);
        claims.roles = vec!["admin".into()];
        let user = verifier().verify(&sign_hs256(SECRET, &claims)).unwrap();
        assert!(!user.is_admin());
        claims.roles = vec!["editor".into(), "tglink:admin".into()];
        assert!(
            verifier()
                .verify(&sign_hs256(SECRET, &claims))
                .unwrap()
                .is_admin()
        );
    }

    /// `APP_JWT_SERVICE_ROLE` (default `tglink:service`) marks a host backend; it is not the
    /// admin role, and a plain `service` role is not it.
    #[test]
    fn the_service_role_is_namespaced_and_configurable() {
        let mut claims = DevClaims::new("backend", &config(), 300);
        claims.roles = vec!["service".into(), "tglink:admin".into()];
        let v = verifier();
        assert!(!v.is_service(&v.verify(&sign_hs256(SECRET, &claims)).unwrap()));
        claims.roles = vec![DEFAULT_SERVICE_ROLE.into()];
        let backend = v.verify(&sign_hs256(SECRET, &claims)).unwrap();
        assert!(v.is_service(&backend) && !backend.is_admin());
        let env = crate::config::MapEnv::new()
            .with("APP_JWT_SECRET", SECRET)
            .with("APP_JWT_ISSUER", "https://app.example")
            .with("APP_JWT_AUDIENCE", "tglink")
            .with("APP_JWT_SERVICE_ROLE", " host-backend ");
        let cfg = JwtConfig::from_env(&env).unwrap();
        let custom = JwtVerifier::new(&cfg).unwrap();
        claims.roles = vec!["host-backend".into()];
        claims.iss = "https://app.example".into();
        claims.aud = "tglink".into();
        assert!(custom.is_service(&custom.verify(&sign_hs256(SECRET, &claims)).unwrap()));
    }

    /// `APP_JWT_ADMIN_ROLE` and `APP_JWT_ROLES_CLAIM` choose the role and the claim holding it.
    #[test]
    fn the_admin_role_and_its_claim_are_configurable() {
        let env = crate::config::MapEnv::new()
            .with("APP_JWT_SECRET", SECRET)
            .with("APP_JWT_ISSUER", "https://app.example")
            .with("APP_JWT_AUDIENCE", "tglink")
            .with("APP_JWT_ADMIN_ROLE", "ops")
            .with("APP_JWT_ROLES_CLAIM", "https://app.example/groups");
        let cfg = JwtConfig::from_env(&env).unwrap();
        let verifier = JwtVerifier::new(&cfg).unwrap();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        let base = serde_json::json!({
            "sub": "u1", "iss": "https://app.example", "aud": "tglink",
            "exp": jsonwebtoken::get_current_timestamp() + 300,
        });
        let with = |name: &str, value: serde_json::Value| {
            let mut c = base.clone();
            c[name] = value;
            sign(c)
        };
        let admin = verifier
            .verify(&with(
                "https://app.example/groups",
                serde_json::json!(["x", "ops"]),
            ))
            .unwrap();
        assert!(admin.is_admin());
        // A single string counts as one role.
        assert!(
            verifier
                .verify(&with(
                    "https://app.example/groups",
                    serde_json::json!("ops")
                ))
                .unwrap()
                .is_admin()
        );
        // The role in the default claim no longer counts.
        assert!(
            !verifier
                .verify(&with("roles", serde_json::json!(["ops"])))
                .unwrap()
                .is_admin()
        );
        // A claim of another shape grants nothing and does not break the token.
        let odd = verifier
            .verify(&with(
                "https://app.example/groups",
                serde_json::json!({"ops": true}),
            ))
            .unwrap();
        assert!(!odd.is_admin());
    }

    #[test]
    fn rejects_alg_none() {
        let claims = DevClaims::new("user-42", &config(), 300);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
            assert!(matches!(
                verifier().verify(&token),
                Err(AuthError::Invalid(_))
            ));
        }
    }

    #[test]
    fn rejects_wrong_algorithm() {
        let claims = DevClaims::new("user-42", &config(), 300);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::Invalid("algorithm not accepted"))
        );
    }

    #[test]
    fn rejects_expired_beyond_leeway_but_accepts_within() {
        let mut claims = DevClaims::new("user-42", &config(), 0);
        claims.exp -= LEEWAY_SECS + 5;
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &claims)),
            Err(AuthError::Expired)
        );
        let mut claims = DevClaims::new("user-42", &config(), 0);
        claims.exp -= LEEWAY_SECS / 2;
        assert!(verifier().verify(&sign_hs256(SECRET, &claims)).is_ok());
    }

    #[test]
    fn rejects_wrong_audience_and_issuer() {
        let mut claims = DevClaims::new("user-42", &config(), 300);
        claims.aud = "someone-else".into();
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &claims)),
            Err(AuthError::Invalid("wrong audience"))
        );
        let mut claims = DevClaims::new("user-42", &config(), 300);
        claims.iss = "https://evil.example".into();
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &claims)),
            Err(AuthError::Invalid("wrong issuer"))
        );
    }

    #[test]
    fn rejects_bad_signature() {
        let claims = DevClaims::new("user-42", &config(), 300);
        let token = sign_hs256("a-different-secret-of-32-bytes-or-more", &claims);
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::Invalid("bad signature"))
        );
    }

    #[test]
    fn rejects_missing_required_claims() {
        #[derive(Serialize)]
        struct NoAud {
            sub: String,
            iss: String,
            exp: u64,
        }
        let claims = NoAud {
            sub: "u".into(),
            iss: "https://app.example".into(),
            exp: jsonwebtoken::get_current_timestamp() + 300,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            verifier().verify(&token),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn verifies_eddsa_with_a_public_key_and_refuses_hs256_confusion() {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        // SubjectPublicKeyInfo for Ed25519: fixed 12-byte prefix + 32-byte key.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let cfg = JwtConfig {
            key: JwtKey::PublicKey {
                pem: pem.clone(),
                algorithm: None,
            },
            ..config()
        };
        let verifier = JwtVerifier::new(&cfg).unwrap();
        let claims = DevClaims::new("ed-user", &cfg, 300);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(pkcs8.as_ref()),
        )
        .unwrap();
        assert_eq!(verifier.verify(&token).unwrap().user_id.as_str(), "ed-user");
        // The classic key-confusion attack: HS256 signed with the public key's bytes.
        let forged = sign_hs256(&pem, &claims);
        assert!(verifier.verify(&forged).is_err());
    }
}
