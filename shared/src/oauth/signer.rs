//! [`TokenSigner`]: signs access tokens (and OpenID Connect ID tokens) in-process with the current signing key.
//!
//! The key is loaded lazily, on the first token of a cold start: one store read (the key set)
//! and one key unwrap (one KMS `Decrypt` in the cloud), then cached (the instance that
//! creates the first key instead makes one data key, `GenerateDataKey`, and one write). Every token after that
//! costs no AWS call; after [`KEY_REFRESH_SECS`] (measured on the tokens' `iat`) the signer
//! reads the key set again (one store read, no unwrap unless the signing key changed). A new
//! key signs once it is [`KEY_ACTIVATION_SECS`] old (published first, see
//! [`crate::store::SigningKeySet::signing_key`]), so after a rotation every warm instance
//! carries the new `kid` within activation + refresh (two minutes). When the store holds no key
//! yet, the signer creates the first one with a conditional write; of concurrent cold starts
//! one wins and the others use its key.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::Mutex;

use super::{
    ACCESS_TOKEN_TYP, AccessTokenClaims, ID_TOKEN_TYP, IdTokenClaims, KEY_ACTIVATION_SECS,
    KEY_REFRESH_SECS, keys,
};
use crate::{
    seal::{SealError, Sealer},
    store::{AddOutcome, SigningKeys, StoreError},
    time::UnixTime,
};

/// Why a token could not be signed. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A stored or generated key is not usable (a bug or a corrupt record).
    #[error("signing key: {0}")]
    Key(&'static str),
}

struct CurrentKey {
    kid: String,
    key: EncodingKey,
    checked_at: u64,
}

/// Signs access tokens. Cheap to clone; clones share the cached key.
#[derive(Clone)]
pub struct TokenSigner {
    keys: Arc<dyn SigningKeys>,
    sealer: Sealer,
    current: Arc<Mutex<Option<CurrentKey>>>,
}

/// Attempts at creating the first key before giving up (each loser re-reads the winner's).
const FIRST_KEY_ATTEMPTS: usize = 3;

impl TokenSigner {
    pub fn new(keys: Arc<dyn SigningKeys>, sealer: Sealer) -> Self {
        Self {
            keys,
            sealer,
            current: Arc::default(),
        }
    }

    /// The compact JWS of `claims`: header `{"alg":"ES256","typ":"at+jwt","kid":…}`.
    pub async fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SigningError> {
        self.sign_typed(claims, ACCESS_TOKEN_TYP, claims.iat).await
    }

    /// The compact JWS of an OpenID Connect ID token (OIDC Core §2): header
    /// `{"alg":"ES256","typ":"JWT","kid":…}`, signed with the same key as access tokens (so
    /// the one JWKS verifies both; `typ` tells them apart, RFC 8725 §3.11).
    pub async fn sign_id_token(&self, claims: &IdTokenClaims) -> Result<String, SigningError> {
        self.sign_typed(claims, ID_TOKEN_TYP, claims.iat).await
    }

    async fn sign_typed<T: serde::Serialize>(
        &self,
        claims: &T,
        typ: &str,
        iat: i64,
    ) -> Result<String, SigningError> {
        let now = UnixTime(u64::try_from(iat).unwrap_or(0));
        let mut current = self.current.lock().await;
        let fresh = current
            .as_ref()
            .is_some_and(|c| now.secs() < c.checked_at.saturating_add(KEY_REFRESH_SECS));
        if !fresh {
            *current = Some(self.load(current.take(), now).await?);
        }
        let current = current.as_ref().expect("loaded above");
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(current.kid.clone());
        jsonwebtoken::encode(&header, claims, &current.key)
            .map_err(|_| SigningError::Key("signing failed"))
    }

    /// The kid the next token will carry (loads the key like [`sign`](Self::sign)).
    pub async fn current_kid(&self, now: UnixTime) -> Result<String, SigningError> {
        let mut current = self.current.lock().await;
        let fresh = current
            .as_ref()
            .is_some_and(|c| now.secs() < c.checked_at.saturating_add(KEY_REFRESH_SECS));
        if !fresh {
            *current = Some(self.load(current.take(), now).await?);
        }
        Ok(current.as_ref().expect("loaded above").kid.clone())
    }

    /// Reads the key set; keeps `cached` if it is still current, otherwise opens the current
    /// key (creating the first one if there is none).
    async fn load(
        &self,
        cached: Option<CurrentKey>,
        now: UnixTime,
    ) -> Result<CurrentKey, SigningError> {
        for _ in 0..FIRST_KEY_ATTEMPTS {
            let set = self.keys.key_set().await?;
            if let Some(record) = set.signing_key(now, KEY_ACTIVATION_SECS) {
                if let Some(cached) = cached.filter(|c| c.kid == record.kid) {
                    return Ok(CurrentKey {
                        checked_at: now.secs(),
                        ..cached
                    });
                }
                let pkcs8 = keys::open_private(&self.sealer, record).await?;
                return Ok(CurrentKey {
                    kid: record.kid.clone(),
                    key: EncodingKey::from_ec_der(pkcs8.expose()),
                    checked_at: now.secs(),
                });
            }
            if set.current.is_some() {
                return Err(StoreError::Corrupt("current signing key missing".into()).into());
            }
            let (record, pkcs8) = keys::new_key(&self.sealer, now).await?;
            if self.keys.add_current(&record, None, now).await? == AddOutcome::Added {
                return Ok(CurrentKey {
                    kid: record.kid,
                    key: EncodingKey::from_ec_der(pkcs8.expose()),
                    checked_at: now.secs(),
                });
            }
        }
        Err(StoreError::Unavailable("the first signing key kept changing".into()).into())
    }
}
