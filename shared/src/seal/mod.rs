//! Envelope encryption of secrets at rest.
//!
//! One data key per record, from a [`KeyWrapper`]: AWS KMS `GenerateDataKey`/`Decrypt`
//! ([`kms::KmsKeys`]) in the cloud, a local AES-256-GCM master key file ([`local::LocalKeys`])
//! in the embedded default. Each attribute is sealed with AES-256-GCM under the record's data
//! key, with associated data binding the service, purpose, user, record identity and attribute
//! name. The wrapped data key is bound to the encryption context (service, purpose, user id),
//! so a sealed value copied into another user's record does not open. Opening a record costs
//! exactly one key unwrap (one KMS call), however many attributes it holds.

pub mod kms;
pub mod local;

use std::{collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;
use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use zeroize::Zeroizing;

use crate::ids::UserId;

/// Service name in every encryption context.
pub const SERVICE: &str = "tglink";

/// Format version byte of a sealed attribute.
const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// KMS (or the key file) could not be used right now: retryable.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// KMS refused for a reason no retry fixes (access denied, key disabled or not found, a
    /// ciphertext it rejects as malformed): nothing was sealed or opened. See
    /// [`crate::aws_error`].
    #[error("key service refused: {0}")]
    Failed(String),
    /// The sealed data does not open under this context: tampered, copied from another
    /// record, or wrapped by another key.
    #[error("sealed data failed authentication")]
    Integrity,
}

/// Bytes of a plaintext secret: zeroed on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// Who a sealed value belongs to: the KMS encryption context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionContext {
    pub purpose: String,
    pub user_id: UserId,
}

impl EncryptionContext {
    pub fn new(purpose: &str, user_id: &UserId) -> Self {
        Self {
            purpose: purpose.to_owned(),
            user_id: user_id.clone(),
        }
    }

    /// The key/value pairs sent to KMS.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("service", SERVICE),
            ("purpose", &self.purpose),
            ("user_id", self.user_id.as_str()),
        ]
    }

    /// An unambiguous byte encoding (length-prefixed), used as AES-GCM associated data.
    fn canonical(&self, extra: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in self.pairs() {
            push_field(&mut out, k);
            push_field(&mut out, v);
        }
        for e in extra {
            push_field(&mut out, e);
        }
        out
    }
}

fn push_field(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// A fresh data key: plaintext (for local use, then dropped) and its wrapped form (stored).
pub struct DataKey {
    pub plaintext: SecretBytes,
    pub wrapped: Vec<u8>,
}

/// Port: where data keys come from. One call to `generate` per sealed record, one call to
/// `unwrap` per opened record.
#[async_trait]
pub trait KeyWrapper: Send + Sync {
    async fn generate(&self, context: &EncryptionContext) -> Result<DataKey, SealError>;
    async fn unwrap(
        &self,
        context: &EncryptionContext,
        wrapped: &[u8],
    ) -> Result<SecretBytes, SealError>;
}

/// A sealed record: the wrapped data key and each attribute's `version ‖ nonce ‖ ciphertext ‖
/// tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRecord {
    pub wrapped_key: Vec<u8>,
    pub attributes: BTreeMap<String, Vec<u8>>,
}

/// The plaintext attributes of an opened record.
#[derive(Debug)]
pub struct OpenedRecord(BTreeMap<String, SecretBytes>);

impl OpenedRecord {
    pub fn get(&self, attribute: &str) -> Option<&SecretBytes> {
        self.0.get(attribute)
    }

    /// The attribute as UTF-8 text.
    pub fn text(&self, attribute: &str) -> Option<&str> {
        self.get(attribute)
            .and_then(|b| std::str::from_utf8(b.expose()).ok())
    }
}

/// Identifies what a record is and whose: encryption context plus record identity.
#[derive(Clone, Debug)]
pub struct SealScope {
    pub context: EncryptionContext,
    /// The record's identity in the store (e.g. `USER#u1/CREDENTIALS`).
    pub record: String,
}

impl SealScope {
    pub fn new(purpose: &str, user_id: &UserId, record: impl Into<String>) -> Self {
        Self {
            context: EncryptionContext::new(purpose, user_id),
            record: record.into(),
        }
    }

    fn aad(&self, attribute: &str) -> Vec<u8> {
        self.context
            .canonical(&["tglink-seal-v1", &self.record, attribute])
    }
}

/// Envelope encryption over a [`KeyWrapper`].
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<dyn KeyWrapper>,
}

impl Sealer {
    pub fn new(keys: Arc<dyn KeyWrapper>) -> Self {
        Self { keys }
    }

    /// Seals `attributes` under one new data key.
    pub async fn seal(
        &self,
        scope: &SealScope,
        attributes: &[(&str, &[u8])],
    ) -> Result<SealedRecord, SealError> {
        let key = self.keys.generate(&scope.context).await?;
        let aead = aead_key(key.plaintext.expose())?;
        let mut sealed = BTreeMap::new();
        for (name, plaintext) in attributes {
            let blob = seal_blob(&aead, FORMAT_V1, scope.aad(name), plaintext)?;
            sealed.insert((*name).to_owned(), blob);
        }
        Ok(SealedRecord {
            wrapped_key: key.wrapped,
            attributes: sealed,
        })
    }

    /// Opens every attribute of `record` with one key unwrap.
    pub async fn open(
        &self,
        scope: &SealScope,
        record: &SealedRecord,
    ) -> Result<OpenedRecord, SealError> {
        let plaintext_key = self
            .keys
            .unwrap(&scope.context, &record.wrapped_key)
            .await?;
        let aead = aead_key(plaintext_key.expose())?;
        let mut opened = BTreeMap::new();
        for (name, blob) in &record.attributes {
            opened.insert(
                name.clone(),
                open_blob(&aead, FORMAT_V1, scope.aad(name), blob)?,
            );
        }
        Ok(OpenedRecord(opened))
    }
}

/// AES-256-GCM with a fresh random nonce: `version ‖ nonce ‖ ciphertext ‖ tag`.
pub(crate) fn seal_blob(
    key: &LessSafeKey,
    version: u8,
    aad: Vec<u8>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Unavailable("system random source failed".into()))?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| SealError::Unavailable("AES-GCM seal failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
    out.push(version);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens a [`seal_blob`] output; any mismatch (version, length, tag) is [`SealError::Integrity`].
pub(crate) fn open_blob(
    key: &LessSafeKey,
    version: u8,
    aad: Vec<u8>,
    blob: &[u8],
) -> Result<SecretBytes, SealError> {
    if blob.len() < 1 + NONCE_LEN || blob[0] != version {
        return Err(SealError::Integrity);
    }
    let nonce = Nonce::try_assume_unique_for_key(&blob[1..1 + NONCE_LEN])
        .map_err(|_| SealError::Integrity)?;
    let mut buf = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| SealError::Integrity)?;
    Ok(SecretBytes::new(plain.to_vec()))
}

pub(crate) fn aead_key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Integrity)
}
