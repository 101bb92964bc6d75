//! Telegram's OpenID Connect, with tglink as the relying party ("Log in with Telegram",
//! Bot API 9.5): the authorization URL tglink sends a browser to, the code redeemed at
//! Telegram's token endpoint, and the id_token verified strictly.
//!
//! - Client id = the bot's id (`TELEGRAM_BOT_ID`, else the id prefix of `TELEGRAM_BOT_TOKEN`);
//!   client secret `TELEGRAM_OIDC_CLIENT_SECRET` (a service secret, SSM in the cloud); issuer
//!   `TELEGRAM_OIDC_ISSUER` (default [`DEFAULT_ISSUER`]; `https://` except loopback).
//! - Telegram's discovery document and JWKS are fetched through [`Outbound`] (short timeouts),
//!   kept for the life of the instance (per cold start), and the JWKS is fetched again on an
//!   unknown `kid`: once, and not more often than every [`JWKS_REFETCH_MIN_SECS`], so a flood
//!   of forged `kid`s cannot turn into calls to Telegram.
//! - The id_token: the header's `alg` must be in the allow-list (`TELEGRAM_OIDC_ID_TOKEN_ALGS`,
//!   default `RS256`, Telegram's default; `ES256` and `EdDSA` can be allowed — what BotFather
//!   offers and jsonwebtoken verifies); the key is the JWKS key named by `kid` (never a
//!   symmetric one, and of the family the `alg` needs); `iss` exact, `aud` = the client id,
//!   `exp`/`iat` with [`LEEWAY_SECS`], `nonce` equal to the one tglink sent — absent only if
//!   the discovery document's `claims_supported` lists no `nonce` (Telegram's real one does
//!   not, and its id_tokens carry none; PKCE and the one-time `state` bind the code then).
//! - The Telegram user id is the `id` claim, not `sub` (see docs/design.md, "Telegram OpenID
//!   Connect"): `sub` is Telegram's subject for this client, `id` the Bot API user id tglink
//!   keys everything on.
//!
//! Nothing here logs; errors are stable codes ([`UpstreamError`]) that never carry the
//! client secret, the code, the id_token or Telegram's answer.

use std::{collections::HashSet, fmt, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{
    config::{self, ConfigError, Env},
    ids::TelegramUserId,
    outbound::{self, Outbound},
    secret::SecretString,
    store::signins::Profile,
    time::{Clock, UnixTime},
};

/// Telegram's issuer (`iss` of its id_tokens, base of its discovery document).
pub const DEFAULT_ISSUER: &str = "https://oauth.telegram.org";

/// Clock skew tolerated on an id_token's `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The shortest interval between two JWKS fetches forced by an unknown `kid`.
pub const JWKS_REFETCH_MIN_SECS: u64 = 60;

/// The largest discovery document, JWKS or token answer read (Telegram's are a few KB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The algorithms tglink can verify and may be allowed (`TELEGRAM_OIDC_ID_TOKEN_ALGS`).
/// Telegram's BotFather also offers ES256K, which jsonwebtoken does not verify.
const SUPPORTED_ALGS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("ES256", Algorithm::ES256),
    ("EdDSA", Algorithm::EdDSA),
];

/// Telegram OIDC's configuration.
#[derive(Clone)]
pub struct TelegramOidcConfig {
    /// The issuer, exactly as in the id_token's `iss` (no trailing slash).
    pub issuer: String,
    /// The bot's id, as a string (the id_token's `aud`).
    pub client_id: String,
    client_secret: SecretString,
    /// The id_token algorithms accepted (non-empty).
    pub algorithms: Vec<Algorithm>,
}

impl fmt::Debug for TelegramOidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramOidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

impl TelegramOidcConfig {
    /// A configuration with explicit values (tests, tools). `issuer` loses a trailing slash.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret,
            algorithms: vec![Algorithm::RS256],
        }
    }

    /// `None` = Telegram OIDC not configured (no `TELEGRAM_OIDC_CLIENT_SECRET`).
    ///
    /// - client id = the bot's id: `TELEGRAM_BOT_ID`, else the id prefix of
    ///   `TELEGRAM_BOT_TOKEN` (both set: they must agree);
    /// - issuer = `TELEGRAM_OIDC_ISSUER` (default [`DEFAULT_ISSUER`]; `https://` required
    ///   except to a loopback host);
    /// - `TELEGRAM_OIDC_ID_TOKEN_ALGS`: comma-separated allow-list, default `RS256`; `ES256`
    ///   and `EdDSA` may be added.
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let Some(secret) = config::optional(env, "TELEGRAM_OIDC_CLIENT_SECRET") else {
            return Ok(None);
        };
        let client_secret = SecretString::new(secret.trim());
        let token = config::optional(env, "TELEGRAM_BOT_TOKEN").map(zeroize::Zeroizing::new);
        let bot_id = super::initdata::configured_bot_id(env, token.as_deref().map(String::as_str))?;
        let bot_id = bot_id.ok_or_else(|| {
            ConfigError::new(
                "TELEGRAM_BOT_ID",
                "is required when TELEGRAM_OIDC_CLIENT_SECRET is set (the OIDC client id is \
                 the bot's id; or set TELEGRAM_BOT_TOKEN)",
            )
        })?;
        let issuer = match config::optional(env, "TELEGRAM_OIDC_ISSUER") {
            None => DEFAULT_ISSUER.to_owned(),
            Some(raw) => {
                let url = outbound::target_url("TELEGRAM_OIDC_ISSUER", &raw)?;
                if url.contains(['?', '#']) {
                    return Err(ConfigError::new(
                        "TELEGRAM_OIDC_ISSUER",
                        "is malformed: an issuer has no query or fragment",
                    ));
                }
                url
            }
        };
        let algorithms = match config::optional(env, "TELEGRAM_OIDC_ID_TOKEN_ALGS") {
            None => vec![Algorithm::RS256],
            Some(raw) => {
                let mut algs = Vec::new();
                for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let alg = SUPPORTED_ALGS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, a)| *a)
                        .ok_or_else(|| {
                            ConfigError::new(
                                "TELEGRAM_OIDC_ID_TOKEN_ALGS",
                                "is malformed: expected a comma-separated list of RS256, ES256, \
                                 EdDSA",
                            )
                        })?;
                    if !algs.contains(&alg) {
                        algs.push(alg);
                    }
                }
                if algs.is_empty() {
                    return Err(ConfigError::new(
                        "TELEGRAM_OIDC_ID_TOKEN_ALGS",
                        "is empty: expected at least one of RS256, ES256, EdDSA",
                    ));
                }
                algs
            }
        };
        Ok(Some(Self {
            issuer,
            client_id: bot_id.to_string(),
            client_secret,
            algorithms,
        }))
    }

    /// With `algorithms` as the allow-list instead.
    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        self.algorithms = algorithms;
        self
    }
}

/// What tglink puts in the authorization request it sends the browser to Telegram with.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamAuthorization<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    /// The `S256` challenge of tglink's own code verifier.
    pub code_challenge: &'a str,
    /// Space-separated scopes (`openid profile`, plus `phone` if wanted).
    pub scope: &'a str,
}

/// Who signed in, from a verified id_token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramIdentity {
    /// The `id` claim: the Bot API user id.
    pub telegram_user_id: TelegramUserId,
    /// `username` ← `preferred_username`, `first_name` ← `given_name`, else `name`.
    pub profile: Profile,
    /// `auth_time` if Telegram sends it, else `iat`.
    pub auth_time: UnixTime,
    /// Telegram's `sub` for this client (kept for reference; not the user id).
    pub subject: String,
    /// The `name` claim (the display name).
    pub name: Option<String>,
    /// The `picture` claim (a URL).
    pub picture: Option<String>,
    /// The `phone_number` claim (only with the `phone` scope).
    pub phone_number: Option<String>,
}

/// Why Telegram OIDC failed. The `Display` text is the fixed code, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Telegram could not be reached or answered 5xx or garbage (discovery, JWKS or token
    /// endpoint): 503 to the caller.
    #[error("telegram oidc unavailable")]
    Unavailable,
    /// The token endpoint refused the code (`invalid_grant`, `invalid_client`, ...).
    #[error("telegram refused the code: {0}")]
    Refused(&'static str),
    /// The id_token failed verification: `malformed`, `alg_not_allowed`, `unknown_kid`,
    /// `bad_signature`, `wrong_issuer`, `wrong_audience`, `expired`, `issued_in_future`,
    /// `nonce_mismatch`, `missing_user_id`, `bot_account`, `missing_id_token`.
    #[error("telegram id_token invalid: {0}")]
    InvalidIdToken(&'static str),
}

impl UpstreamError {
    /// The stable code (`unavailable` for [`Self::Unavailable`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Refused(code) | Self::InvalidIdToken(code) => code,
        }
    }
}

/// Telegram's discovery document, the fields tglink uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    claims_supported: Option<Vec<String>>,
}

impl Discovery {
    /// Whether the provider's id_tokens carry the `nonce` sent: unless its `claims_supported`
    /// is listed without `nonce` (Telegram's, as measured: it never echoes one), yes.
    fn echoes_nonce(&self) -> bool {
        self.claims_supported
            .as_ref()
            .is_none_or(|claims| claims.iter().any(|c| c == "nonce"))
    }
}

/// One usable key of the JWKS.
#[derive(Clone)]
struct Key {
    kid: String,
    jwk: Jwk,
}

#[derive(Default)]
struct Cache {
    discovery: Option<Arc<Discovery>>,
    keys: Option<Arc<Vec<Key>>>,
    /// When the JWKS was last fetched (successfully or not).
    keys_fetched_at: Option<UnixTime>,
}

struct Inner {
    config: TelegramOidcConfig,
    outbound: Outbound,
    clock: Clock,
    cache: Mutex<Cache>,
}

/// Telegram OIDC as a relying party. Cheap to clone; clones share the cached discovery
/// document and JWKS.
#[derive(Clone)]
pub struct TelegramOidc {
    inner: Arc<Inner>,
}

impl fmt::Debug for TelegramOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramOidc")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The claims of Telegram's id_token tglink reads (`iss` and `aud` are checked by
/// jsonwebtoken).
#[derive(Deserialize)]
struct IdTokenClaims {
    exp: i64,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    picture: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    is_bot: Option<bool>,
}

/// An answer of the token endpoint, the fields tglink reads.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: String,
}

/// The `alg` of a JWS header, read without trusting anything else in it.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// Whether `token` has the shape of a compact JWS: three base64url parts, the payload a JSON
/// object (the signature may be empty: `alg: none` is refused by name, not as garbage).
fn compact_jws_shape(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64 = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    !header.is_empty()
        && b64(signature).is_some()
        && b64(payload)
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .is_some_and(|v| v.is_object())
}

fn alg_name(alg: Algorithm) -> &'static str {
    SUPPORTED_ALGS
        .iter()
        .find(|(_, a)| *a == alg)
        .map(|(n, _)| *n)
        .unwrap_or("?")
}

/// Whether `jwk` may verify `alg`: an asymmetric key of the right family and curve, meant for
/// signatures, whose own `alg` (if it names one) is `alg`.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let family_ok = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let use_ok = !matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    );
    let alg_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|k| k.to_string() == alg_name(alg));
    family_ok && use_ok && alg_ok
}

/// The usable keys of a JWKS document: each key parsed on its own (a key type jsonwebtoken
/// does not know, e.g. Telegram's secp256k1 key, is skipped, not fatal), symmetric keys and
/// keys without a `kid` dropped.
fn parse_jwks(body: &[u8]) -> Option<Vec<Key>> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body).ok()?;
    Some(
        set.keys
            .into_iter()
            .filter_map(|raw| serde_json::from_value::<Jwk>(raw).ok())
            .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                Some(Key { kid, jwk })
            })
            .collect(),
    )
}

/// A token endpoint error code, as one of the fixed codes (never Telegram's own text).
fn refusal_code(error: &str) -> &'static str {
    match error {
        "invalid_grant" => "invalid_grant",
        "invalid_client" => "invalid_client",
        "invalid_request" => "invalid_request",
        "unauthorized_client" => "unauthorized_client",
        "unsupported_grant_type" => "unsupported_grant_type",
        "invalid_scope" => "invalid_scope",
        _ => "refused",
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl TelegramOidc {
    pub fn new(config: TelegramOidcConfig, outbound: Outbound, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                outbound,
                clock,
                cache: Mutex::new(Cache::default()),
            }),
        }
    }

    pub fn config(&self) -> &TelegramOidcConfig {
        &self.inner.config
    }

    /// A GET through the outbound client: the body of a 200 answer of at most
    /// [`MAX_ANSWER_BYTES`], else `Unavailable`.
    async fn get_ok(&self, url: &str) -> Result<Vec<u8>, UpstreamError> {
        let answer = self
            .inner
            .outbound
            .get(url)
            .await
            .map_err(|_| UpstreamError::Unavailable)?;
        if answer.status != 200 || answer.body.len() > MAX_ANSWER_BYTES {
            return Err(UpstreamError::Unavailable);
        }
        Ok(answer.body)
    }

    /// The discovery document: cached for the life of the instance once fetched and checked
    /// (its `issuer` exactly the configured one; every endpoint an allowed outbound target).
    async fn discovery(&self) -> Result<Arc<Discovery>, UpstreamError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(d) = &cache.discovery {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.inner.config.issuer
        );
        let body = self.get_ok(&url).await?;
        let doc: Discovery =
            serde_json::from_slice(&body).map_err(|_| UpstreamError::Unavailable)?;
        if doc.issuer != self.inner.config.issuer {
            return Err(UpstreamError::Unavailable);
        }
        for endpoint in [
            &doc.authorization_endpoint,
            &doc.token_endpoint,
            &doc.jwks_uri,
        ] {
            outbound::target_url("discovery", endpoint).map_err(|_| UpstreamError::Unavailable)?;
        }
        let doc = Arc::new(doc);
        cache.discovery = Some(doc.clone());
        Ok(doc)
    }

    /// The key named `kid`: from the cached JWKS; fetched (again) when there is none yet, or
    /// when `kid` is unknown and the last fetch is at least [`JWKS_REFETCH_MIN_SECS`] old.
    async fn key(&self, kid: &str) -> Result<Jwk, UpstreamError> {
        let discovery = self.discovery().await?;
        let mut cache = self.inner.cache.lock().await;
        let now = self.inner.clock.now();
        if let Some(keys) = &cache.keys {
            if let Some(key) = keys.iter().find(|k| k.kid == kid) {
                return Ok(key.jwk.clone());
            }
            let recent = cache
                .keys_fetched_at
                .is_some_and(|at| now.secs() < at.secs().saturating_add(JWKS_REFETCH_MIN_SECS));
            if recent {
                return Err(UpstreamError::InvalidIdToken("unknown_kid"));
            }
        }
        // A failed fetch counts too: an unreachable JWKS is not asked again at once for every
        // forged kid (a first fetch, with no keys at all, is always tried).
        if cache.keys.is_some() {
            cache.keys_fetched_at = Some(now);
        }
        let body = self.get_ok(&discovery.jwks_uri).await?;
        let keys = parse_jwks(&body).ok_or(UpstreamError::Unavailable)?;
        let found = keys.iter().find(|k| k.kid == kid).map(|k| k.jwk.clone());
        cache.keys = Some(Arc::new(keys));
        cache.keys_fetched_at = Some(now);
        found.ok_or(UpstreamError::InvalidIdToken("unknown_kid"))
    }

    /// Telegram's authorization endpoint URL (from discovery) with `response_type=code`,
    /// `client_id`, `redirect_uri`, `scope`, `state`, `nonce`, `code_challenge` and
    /// `code_challenge_method=S256`.
    pub async fn authorization_url(
        &self,
        req: &UpstreamAuthorization<'_>,
    ) -> Result<String, UpstreamError> {
        let discovery = self.discovery().await?;
        let query = form(&[
            ("response_type", "code"),
            ("client_id", &self.inner.config.client_id),
            ("redirect_uri", req.redirect_uri),
            ("scope", req.scope),
            ("state", req.state),
            ("nonce", req.nonce),
            ("code_challenge", req.code_challenge),
            ("code_challenge_method", crate::oauth::pkce::S256),
        ]);
        let endpoint = &discovery.authorization_endpoint;
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{sep}{query}"))
    }

    /// Code → token endpoint (`client_secret_basic`, with `code_verifier`) → the id_token
    /// verified ([`verify_id_token`](Self::verify_id_token)) → who signed in.
    pub async fn redeem(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<TelegramIdentity, UpstreamError> {
        let discovery = self.discovery().await?;
        let config = &self.inner.config;
        // RFC 6749 §2.3.1: each part form-encoded, then `id:secret` in base64.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_urlencoded::byte_serialize(config.client_id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(config.client_secret.expose().as_bytes())
                .collect::<String>(),
        ));
        let authorization = zeroize::Zeroizing::new(format!("Basic {basic}"));
        drop(zeroize::Zeroizing::new(basic));
        let body = zeroize::Zeroizing::new(form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &config.client_id),
            ("code_verifier", code_verifier),
        ]));
        let answer = self
            .inner
            .outbound
            .post(
                &discovery.token_endpoint,
                &[
                    ("authorization", authorization.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "application/json"),
                ],
                body.as_bytes().to_vec(),
            )
            .await
            .map_err(|_| UpstreamError::Unavailable)?;
        if answer.body.len() > MAX_ANSWER_BYTES {
            return Err(UpstreamError::Unavailable);
        }
        match answer.status {
            200 => {
                let tokens: TokenAnswer =
                    serde_json::from_slice(&answer.body).map_err(|_| UpstreamError::Unavailable)?;
                let id_token = zeroize::Zeroizing::new(
                    tokens
                        .id_token
                        .ok_or(UpstreamError::InvalidIdToken("missing_id_token"))?,
                );
                self.verify_id_token(&id_token, nonce).await
            }
            400..=499 => {
                let code = serde_json::from_slice::<TokenErrorAnswer>(&answer.body)
                    .map(|e| refusal_code(&e.error))
                    .unwrap_or(if answer.status == 401 {
                        "invalid_client"
                    } else {
                        "refused"
                    });
                Err(UpstreamError::Refused(code))
            }
            _ => Err(UpstreamError::Unavailable),
        }
    }

    /// Verifies Telegram's id_token strictly (see the module documentation) and returns who
    /// signed in.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<TelegramIdentity, UpstreamError> {
        use UpstreamError::InvalidIdToken as Invalid;
        let config = &self.inner.config;
        // The allow-list first, from the raw header: `none` and `HS256` are refused here,
        // before any key is looked at (jsonwebtoken cannot even parse `none`).
        if !compact_jws_shape(id_token) {
            return Err(Invalid("malformed"));
        }
        let alg_text = header_alg(id_token).ok_or(Invalid("malformed"))?;
        let alg = config
            .algorithms
            .iter()
            .copied()
            .find(|a| alg_name(*a) == alg_text)
            .ok_or(Invalid("alg_not_allowed"))?;
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| Invalid("malformed"))?;
        if header.alg != alg {
            return Err(Invalid("alg_not_allowed"));
        }
        if header.crit.is_some() {
            return Err(Invalid("malformed"));
        }
        let kid = header.kid.ok_or(Invalid("unknown_kid"))?;
        let jwk = self.key(&kid).await?;
        if !key_fits(&jwk, alg) {
            return Err(Invalid("alg_not_allowed"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| Invalid("unknown_kid"))?;

        let mut validation = Validation::new(alg);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::from(["iss".to_owned(), "aud".to_owned()]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.client_id]);
        let claims = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => Invalid("bad_signature"),
                ErrorKind::InvalidIssuer => Invalid("wrong_issuer"),
                ErrorKind::InvalidAudience => Invalid("wrong_audience"),
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => Invalid("wrong_issuer"),
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => Invalid("wrong_audience"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Invalid("alg_not_allowed")
                }
                _ => Invalid("malformed"),
            })?
            .claims;

        // OIDC Core §3.1.3.7: with an `azp`, it must be this client.
        if claims.azp.as_deref().is_some_and(|a| a != config.client_id) {
            return Err(Invalid("wrong_audience"));
        }
        let now = i64::try_from(self.inner.clock.now().secs()).unwrap_or(i64::MAX);
        let leeway = LEEWAY_SECS as i64;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(Invalid("expired"));
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(Invalid("issued_in_future"));
        }
        // OIDC Core §3.1.3.7 (11): a nonce sent must come back. A provider whose discovery
        // document says it issues no `nonce` claim (Telegram's) is held to it only when its
        // token carries one; the flow stays bound to this browser by the one-time `state` and
        // PKCE (the code is redeemed only with tglink's verifier, over TLS, by client secret).
        let nonce_ok = match claims.nonce.as_deref() {
            Some(n) => {
                aws_lc_rs::constant_time::verify_slices_are_equal(n.as_bytes(), nonce.as_bytes())
                    .is_ok()
            }
            None => !self.discovery().await?.echoes_nonce(),
        };
        if nonce.is_empty() || !nonce_ok {
            return Err(Invalid("nonce_mismatch"));
        }
        let user_id = match &claims.id {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => super::initdata::parse_bot_id(s),
            _ => None,
        }
        .and_then(|id| TelegramUserId::new(id).ok())
        .ok_or(Invalid("missing_user_id"))?;
        if claims.is_bot == Some(true) || user_id.to_string() == config.client_id {
            return Err(Invalid("bot_account"));
        }
        let auth_time = claims
            .auth_time
            .filter(|t| *t > 0)
            .unwrap_or(claims.iat)
            .max(0) as u64;
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let name = non_empty(claims.name);
        Ok(TelegramIdentity {
            telegram_user_id: user_id,
            profile: Profile {
                username: non_empty(claims.preferred_username),
                first_name: non_empty(claims.given_name).or_else(|| name.clone()),
                language_code: None,
                is_premium: None,
            },
            auth_time: UnixTime(auth_time),
            subject: claims.sub.unwrap_or_default(),
            name,
            picture: non_empty(claims.picture),
            phone_number: non_empty(claims.phone_number),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn env() -> MapEnv {
        MapEnv::new().with("TELEGRAM_OIDC_CLIENT_SECRET", "s3cret")
    }

    #[test]
    fn not_configured_without_a_client_secret() {
        let env = MapEnv::new().with("TELEGRAM_BOT_TOKEN", "123:abc");
        assert!(TelegramOidcConfig::from_env(&env).unwrap().is_none());
    }

    #[test]
    fn client_id_is_the_bot_id() {
        let c = TelegramOidcConfig::from_env(&env().with("TELEGRAM_BOT_TOKEN", "4242:abc"))
            .unwrap()
            .unwrap();
        assert_eq!(c.client_id, "4242");
        assert_eq!(c.issuer, DEFAULT_ISSUER);
        assert_eq!(c.algorithms, vec![Algorithm::RS256]);
        assert!(!format!("{c:?}").contains("s3cret"));
        let c = TelegramOidcConfig::from_env(&env().with("TELEGRAM_BOT_ID", "77"))
            .unwrap()
            .unwrap();
        assert_eq!(c.client_id, "77");
        let err = TelegramOidcConfig::from_env(&env()).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_ID");
        let err = TelegramOidcConfig::from_env(
            &env()
                .with("TELEGRAM_BOT_ID", "77")
                .with("TELEGRAM_BOT_TOKEN", "78:x"),
        )
        .unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_ID");
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn issuer_must_be_https_except_loopback() {
        let base = env().with("TELEGRAM_BOT_ID", "77");
        let c = TelegramOidcConfig::from_env(
            &base
                .clone()
                .with("TELEGRAM_OIDC_ISSUER", "http://127.0.0.1:8080/"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        let err = TelegramOidcConfig::from_env(
            &base
                .clone()
                .with("TELEGRAM_OIDC_ISSUER", "http://oauth.example.com"),
        )
        .unwrap_err();
        assert_eq!(err.var, "TELEGRAM_OIDC_ISSUER");
        assert!(
            TelegramOidcConfig::from_env(
                &base.with("TELEGRAM_OIDC_ISSUER", "https://oauth.example.com")
            )
            .is_ok()
        );
    }

    #[test]
    fn algorithm_allow_list() {
        let base = env().with("TELEGRAM_BOT_ID", "77");
        let c = TelegramOidcConfig::from_env(
            &base
                .clone()
                .with("TELEGRAM_OIDC_ID_TOKEN_ALGS", "RS256, EdDSA,ES256"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.algorithms,
            vec![Algorithm::RS256, Algorithm::EdDSA, Algorithm::ES256]
        );
        for bad in ["HS256", "none", "ES256K", " , "] {
            let err = TelegramOidcConfig::from_env(
                &base.clone().with("TELEGRAM_OIDC_ID_TOKEN_ALGS", bad),
            )
            .unwrap_err();
            assert_eq!(err.var, "TELEGRAM_OIDC_ID_TOKEN_ALGS", "{bad}");
        }
    }

    #[test]
    fn jwks_skips_unknown_and_symmetric_keys() {
        let body = br#"{"keys":[
            {"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"},
            {"kty":"oct","kid":"hs","k":"c2VjcmV0"},
            {"kty":"RSA","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"rsa","n":"AQAB","e":"AQAB","alg":"RS256","use":"sig"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
        // The secp256k1 key (ES256K) may parse, but verifies nothing tglink allows.
        assert!(
            kids.ends_with(&["rsa"]) && !kids.contains(&"hs"),
            "{kids:?}"
        );
        for key in &keys {
            let fits = |alg| key_fits(&key.jwk, alg);
            assert_eq!(fits(Algorithm::RS256), key.kid == "rsa", "{}", key.kid);
            assert!(
                !fits(Algorithm::ES256) && !fits(Algorithm::EdDSA),
                "{}",
                key.kid
            );
        }
        assert!(parse_jwks(b"not json").is_none());
    }

    #[test]
    fn header_alg_reads_none() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            header_alg(&format!("{header}.e30.")).as_deref(),
            Some("none")
        );
        assert_eq!(header_alg("garbage"), None);
    }

    #[test]
    fn errors_name_only_a_code() {
        assert_eq!(
            UpstreamError::InvalidIdToken("expired").to_string(),
            "telegram id_token invalid: expired"
        );
        assert_eq!(UpstreamError::Unavailable.code(), "unavailable");
        assert_eq!(
            UpstreamError::Refused("invalid_grant").code(),
            "invalid_grant"
        );
    }
}
