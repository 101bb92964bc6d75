//! Signing keys: generation (P-256, aws-lc-rs), the `kid` (RFC 7638 JWK thumbprint), the
//! public JWK and the JWKS document, the cached published set, and rotation.

use std::sync::Arc;

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use serde::Serialize;
use tokio::sync::Mutex;

use super::{KEY_REFRESH_SECS, SigningError, UNKNOWN_KID_REFETCH_SECS};
use crate::{
    ids::UserId,
    seal::{SealScope, Sealer, SecretBytes},
    store::{
        AddOutcome, SigningKeyRecord, SigningKeySet, SigningKeys, StoreError,
        signing_keys::{PRIVATE_KEY_ATTRIBUTE, SIGNING_KEY_OWNER, SIGNING_KEY_PURPOSE},
    },
    time::UnixTime,
};

/// A public key as published in the JWKS (RFC 7517 §4, RFC 7518 §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub y: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
}

impl PublicJwk {
    pub fn of(key: &SigningKeyRecord) -> Self {
        Self {
            kty: "EC",
            crv: "P-256",
            x: key.x.clone(),
            y: key.y.clone(),
            kid: key.kid.clone(),
            use_: "sig",
            alg: "ES256",
        }
    }
}

/// The JWKS document (`{"keys": [...]}`) of `keys`.
pub fn jwks(keys: &[&SigningKeyRecord]) -> serde_json::Value {
    serde_json::json!({ "keys": keys.iter().map(|k| PublicJwk::of(k)).collect::<Vec<_>>() })
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of the P-256 public key `(x, y)`: the hash of
/// the canonical JSON `{"crv":"P-256","kty":"EC","x":…,"y":…}`, computed by `jsonwebtoken`.
pub fn thumbprint(x: &str, y: &str) -> Result<String, SigningError> {
    let jwk: Jwk = serde_json::from_value(serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
    }))
    .map_err(|_| SigningError::Key("public key is not a P-256 JWK"))?;
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| SigningError::Key("cannot compute the key thumbprint"))
}

/// A freshly generated key pair: its public coordinates, its `kid` and the PKCS#8 private key.
pub struct GeneratedKey {
    pub kid: String,
    pub x: String,
    pub y: String,
    pub pkcs8: SecretBytes,
}

/// The public coordinates (base64url) of a PKCS#8 P-256 private key.
pub fn public_coordinates(pkcs8: &[u8]) -> Result<(String, String), SigningError> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|_| SigningError::Key("private key is not a P-256 PKCS#8 key"))?;
    let point = pair.public_key().as_ref();
    // Uncompressed SEC1 point: 0x04 ‖ X (32) ‖ Y (32).
    if point.len() != 65 || point[0] != 4 {
        return Err(SigningError::Key("unexpected public key encoding"));
    }
    Ok((
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..]),
    ))
}

/// Generates a P-256 key pair.
pub fn generate() -> Result<GeneratedKey, SigningError> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| SigningError::Key("key generation failed"))?;
    let pkcs8 = SecretBytes::new(doc.as_ref().to_vec());
    let (x, y) = public_coordinates(pkcs8.expose())?;
    Ok(GeneratedKey {
        kid: thumbprint(&x, &y)?,
        x,
        y,
        pkcs8,
    })
}

/// What a signing key's private half is sealed under: purpose [`SIGNING_KEY_PURPOSE`], owner
/// [`SIGNING_KEY_OWNER`], record `SIGNKEY#<kid>`.
pub fn seal_scope(kid: &str) -> SealScope {
    SealScope::new(
        SIGNING_KEY_PURPOSE,
        &UserId::parse(SIGNING_KEY_OWNER).expect("static owner id"),
        format!("SIGNKEY#{kid}"),
    )
}

/// Generates a key and seals its private half (one data-key request to the sealer): the
/// record to store.
pub async fn new_record(sealer: &Sealer, now: UnixTime) -> Result<SigningKeyRecord, SigningError> {
    Ok(new_key(sealer, now).await?.0)
}

/// Like [`new_record`], also answering the PKCS#8 private key (so the instance that made the
/// key signs with it without opening it again).
pub async fn new_key(
    sealer: &Sealer,
    now: UnixTime,
) -> Result<(SigningKeyRecord, SecretBytes), SigningError> {
    let key = generate()?;
    let sealed = sealer
        .seal(
            &seal_scope(&key.kid),
            &[(PRIVATE_KEY_ATTRIBUTE, key.pkcs8.expose())],
        )
        .await?;
    Ok((
        SigningKeyRecord {
            kid: key.kid,
            x: key.x,
            y: key.y,
            sealed,
            created_at: now,
            retired_at: None,
        },
        key.pkcs8,
    ))
}

/// Opens a stored key's private half (one key unwrap: one KMS `Decrypt` in the cloud).
pub async fn open_private(
    sealer: &Sealer,
    key: &SigningKeyRecord,
) -> Result<SecretBytes, SigningError> {
    let opened = sealer.open(&seal_scope(&key.kid), &key.sealed).await?;
    let pkcs8 = opened
        .get(PRIVATE_KEY_ATTRIBUTE)
        .cloned()
        .ok_or(SigningError::Key("sealed record holds no private key"))?;
    // The stored public half must be the private key's own.
    if public_coordinates(pkcs8.expose())? != (key.x.clone(), key.y.clone()) {
        return Err(SigningError::Key("stored public key does not match"));
    }
    Ok(pkcs8)
}

/// Adds a new current key, retiring the current one (the admin and the scheduled rotation):
/// returns the `kid` now current. If another instance made a new key current meanwhile, that
/// one is kept and returned (two rotations at once make one).
pub async fn rotate(
    keys: &dyn SigningKeys,
    sealer: &Sealer,
    now: UnixTime,
) -> Result<String, SigningError> {
    let set = keys.key_set().await?;
    let record = new_record(sealer, now).await?;
    match keys
        .add_current(&record, set.current.as_deref(), now)
        .await?
    {
        AddOutcome::Added => Ok(record.kid),
        AddOutcome::Superseded => keys
            .key_set()
            .await?
            .current
            .ok_or_else(|| SigningError::Store(StoreError::Corrupt("no current key".into()))),
    }
}

/// The key set, read from the store at most once per [`KEY_REFRESH_SECS`] (and once more, at
/// most every [`UNKNOWN_KID_REFETCH_SECS`], when asked for a `kid` it does not hold). Shared by
/// clones.
#[derive(Clone)]
pub struct PublishedKeys {
    keys: Arc<dyn SigningKeys>,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    set: Option<Arc<SigningKeySet>>,
    loaded_at: u64,
    forced_at: Option<u64>,
}

impl PublishedKeys {
    pub fn new(keys: Arc<dyn SigningKeys>) -> Self {
        Self {
            keys,
            cache: Arc::default(),
        }
    }

    /// The key set as of at most [`KEY_REFRESH_SECS`] before `now`.
    pub async fn get(&self, now: UnixTime) -> Result<Arc<SigningKeySet>, StoreError> {
        let mut cache = self.cache.lock().await;
        match &cache.set {
            Some(set) if now.secs() < cache.loaded_at.saturating_add(KEY_REFRESH_SECS) => {
                Ok(set.clone())
            }
            _ => Self::load(&self.keys, &mut cache, now).await,
        }
    }

    /// The key set holding `kid` if the store has it: a cached set without it is read again,
    /// at most once per [`UNKNOWN_KID_REFETCH_SECS`].
    pub async fn get_with(
        &self,
        kid: &str,
        now: UnixTime,
    ) -> Result<Arc<SigningKeySet>, StoreError> {
        let set = self.get(now).await?;
        if set.keys.iter().any(|k| k.kid == kid) {
            return Ok(set);
        }
        let mut cache = self.cache.lock().await;
        let may_refetch = cache
            .forced_at
            .is_none_or(|at| now.secs() >= at.saturating_add(UNKNOWN_KID_REFETCH_SECS));
        if !may_refetch {
            return Ok(cache.set.clone().unwrap_or(set));
        }
        cache.forced_at = Some(now.secs());
        Self::load(&self.keys, &mut cache, now).await
    }

    async fn load(
        keys: &Arc<dyn SigningKeys>,
        cache: &mut Cache,
        now: UnixTime,
    ) -> Result<Arc<SigningKeySet>, StoreError> {
        let set = Arc::new(keys.key_set().await?);
        cache.set = Some(set.clone());
        cache.loaded_at = now.secs();
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key's thumbprint, through the same library call.
    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// The EC thumbprint is SHA-256 of the canonical JSON (members `crv`, `kty`, `x`, `y` in
    /// lexicographic order, no whitespace), base64url without padding.
    #[test]
    fn ec_thumbprint_is_the_hash_of_the_canonical_json() {
        let key = generate().unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            key.x, key.y
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(key.kid, URL_SAFE_NO_PAD.encode(digest.as_ref()));
        assert_eq!(key.kid.len(), 43);
        assert_eq!(key.x.len(), 43);
        assert_eq!(key.y.len(), 43);
        assert_ne!(generate().unwrap().kid, key.kid);
    }

    #[test]
    fn jwk_has_exactly_the_rfc7517_members() {
        let key = generate().unwrap();
        let record = SigningKeyRecord {
            kid: key.kid.clone(),
            x: key.x.clone(),
            y: key.y.clone(),
            sealed: crate::seal::SealedRecord {
                wrapped_key: vec![],
                attributes: Default::default(),
            },
            created_at: UnixTime(1),
            retired_at: None,
        };
        let doc = jwks(&[&record]);
        let jwk = doc["keys"][0].as_object().unwrap();
        let mut names: Vec<_> = jwk.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["kid"], key.kid.as_str());
        assert!(!doc.to_string().contains("\"d\""));
    }
}
