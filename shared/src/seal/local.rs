//! Local master key: 32 random bytes in a file created with mode 0600. Data keys are random
//! and wrapped with AES-256-GCM under the master key, the encryption context as associated
//! data (the local stand-in for KMS).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::{
    aead::{AES_256_GCM, LessSafeKey, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

use super::{DataKey, EncryptionContext, KeyWrapper, SealError, SecretBytes, open_blob, seal_blob};

const KEY_LEN: usize = 32;
const WRAP_V1: u8 = 1;

pub struct LocalKeys {
    master: LessSafeKey,
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeys(<master key>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot use master key file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

impl LocalKeys {
    /// Loads the master key, creating it (mode 0600, atomically) if the file does not exist.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        let err = |reason: String| KeyFileError::Io {
            path: path.to_path_buf(),
            reason,
        };
        if !path.exists() {
            create_key_file(path).map_err(|e| err(e.to_string()))?;
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| err(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "permissions {:o} are too open; run chmod 600 on it",
                    mode & 0o777
                )));
            }
        }
        if bytes.len() != KEY_LEN {
            return Err(err(format!(
                "expected {KEY_LEN} bytes, found {}",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes).map_err(|_| err("not an AES-256 key".into()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::Integrity)?;
        Ok(Self {
            master: LessSafeKey::new(key),
        })
    }
}

/// Writes a new random master key (mode 0600) unless another process just did.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(key.as_mut())
        .map_err(|_| std::io::Error::other("system random source failed"))?;
    crate::files::create_private_once(path, key.as_ref()).map(|_| ())
}

#[async_trait]
impl KeyWrapper for LocalKeys {
    async fn generate(&self, context: &EncryptionContext) -> Result<DataKey, SealError> {
        let mut plaintext = vec![0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut plaintext)
            .map_err(|_| SealError::Unavailable("system random source failed".into()))?;
        let plaintext = SecretBytes::new(plaintext);
        let wrapped = seal_blob(&self.master, WRAP_V1, wrap_aad(context), plaintext.expose())?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(
        &self,
        context: &EncryptionContext,
        wrapped: &[u8],
    ) -> Result<SecretBytes, SealError> {
        open_blob(&self.master, WRAP_V1, wrap_aad(context), wrapped)
    }
}

fn wrap_aad(context: &EncryptionContext) -> Vec<u8> {
    context.canonical(&["tglink-datakey-v1"])
}
