//! [`AccessTokenVerifier`]: verifies tglink's own access tokens (e.g. one presented to
//! `POST /api/telegram/link`).
//!
//! The algorithm is pinned to ES256 (never read from the token), the `typ` must be `at+jwt`
//! (RFC 9068 §4), the `kid` must name a published key (an unknown `kid` makes the verifier read
//! the key set again, at most once per [`UNKNOWN_KID_REFETCH_SECS`]), `iss` and `aud` must be
//! tglink's, `exp` must not have passed and `iat` must not be in the future (both with
//! [`LEEWAY_SECS`]), and every required claim must be present.
//!
//! [`UNKNOWN_KID_REFETCH_SECS`]: super::UNKNOWN_KID_REFETCH_SECS

use std::{collections::HashSet, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{ACCESS_TOKEN_TYP, AccessTokenClaims, LEEWAY_SECS, PublishedKeys, TokenConfig};
use crate::{
    store::{SigningKeys, StoreError},
    time::UnixTime,
};

/// Why an access token was refused. The reason never quotes the token.
#[derive(Debug, thiserror::Error)]
pub enum AccessTokenError {
    /// Not a valid tglink access token (malformed, forged, expired, another issuer or
    /// audience, an unpublished key, a wrong algorithm or type).
    #[error("access token invalid: {0}")]
    Invalid(&'static str),
    /// The published keys could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies access tokens. Cheap to clone; clones share the cached key set.
#[derive(Clone)]
pub struct AccessTokenVerifier {
    config: Arc<TokenConfig>,
    keys: PublishedKeys,
}

impl AccessTokenVerifier {
    pub fn new(config: TokenConfig, keys: Arc<dyn SigningKeys>) -> Self {
        Self::with_published(config, PublishedKeys::new(keys))
    }

    /// A verifier over an existing cache of the key set (shared with a discovery endpoint).
    pub fn with_published(config: TokenConfig, keys: PublishedKeys) -> Self {
        Self {
            config: Arc::new(config),
            keys,
        }
    }

    pub async fn verify(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<AccessTokenClaims, AccessTokenError> {
        use AccessTokenError::Invalid;
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid("malformed"))?;
        if header.alg != Algorithm::ES256 {
            return Err(Invalid("algorithm not accepted"));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(Invalid("not an access token (typ)"));
        }
        let kid = header.kid.ok_or(Invalid("no kid"))?;
        let set = self.keys.get_with(&kid, now).await?;
        let record = set
            .published(now, self.config.keep_retired_secs())
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or(Invalid("unknown kid"))?;
        let key = DecodingKey::from_ec_components(&record.x, &record.y)
            .map_err(|_| StoreError::Corrupt("published key does not decode".into()))?;

        let mut validation = Validation::new(Algorithm::ES256);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Invalid("bad signature"),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => Invalid("wrong issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => Invalid("wrong audience"),
                jsonwebtoken::errors::ErrorKind::Json(_) => Invalid("a required claim is missing"),
                _ => Invalid("malformed"),
            },
        )?;
        let claims = data.claims;
        let now = i64::try_from(now.secs()).unwrap_or(i64::MAX);
        let leeway = LEEWAY_SECS as i64;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(Invalid("expired"));
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(Invalid("issued in the future"));
        }
        if claims.sub.is_empty() || claims.sid.is_empty() || claims.jti.is_empty() {
            return Err(Invalid("a required claim is empty"));
        }
        Ok(claims)
    }
}
