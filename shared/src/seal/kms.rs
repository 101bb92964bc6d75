//! AWS KMS data keys: `GenerateDataKey` (AES-256) to seal, `Decrypt` to open, both with the
//! encryption context `{service, purpose, user_id}` that KMS enforces and IAM can condition on.

use async_trait::async_trait;
use aws_sdk_kms::{
    Client,
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::DataKeySpec,
};

use super::{DataKey, EncryptionContext, KeyWrapper, SealError, SecretBytes};
use crate::aws_error::{AwsFailure, classify};

/// A KMS failure, classified: throttling, timeouts, `5xx`, no connection → unavailable (retry
/// later); access denied, key disabled or not found, … → failed (see [`crate::aws_error`]).
fn kms_error<E>(err: &SdkError<E, HttpResponse>) -> SealError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match classify(err) {
        AwsFailure::Transient(why) => SealError::Unavailable(why),
        AwsFailure::Permanent(why) => SealError::Failed(why),
    }
}

#[derive(Clone, Debug)]
pub struct KmsKeys {
    client: Client,
    key_id: String,
}

impl KmsKeys {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), key_id)
    }
}

fn context_map(context: &EncryptionContext) -> std::collections::HashMap<String, String> {
    context
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[async_trait]
impl KeyWrapper for KmsKeys {
    async fn generate(&self, context: &EncryptionContext) -> Result<DataKey, SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| kms_error(&e))?;
        match (out.plaintext, out.ciphertext_blob) {
            (Some(plain), Some(wrapped)) => Ok(DataKey {
                plaintext: SecretBytes::new(plain.into_inner()),
                wrapped: wrapped.into_inner(),
            }),
            _ => Err(SealError::Failed("GenerateDataKey returned no key".into())),
        }
    }

    async fn unwrap(
        &self,
        context: &EncryptionContext,
        wrapped: &[u8],
    ) -> Result<SecretBytes, SealError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| {
                let integrity = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                });
                if integrity {
                    SealError::Integrity
                } else {
                    kms_error(&e)
                }
            })?;
        out.plaintext
            .map(|p| SecretBytes::new(p.into_inner()))
            .ok_or_else(|| SealError::Failed("Decrypt returned no plaintext".into()))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::{error::ErrorMetadata, operation::generate_data_key::GenerateDataKeyError};

    use super::*;

    fn service_error(code: &str, status: u16) -> SdkError<GenerateDataKeyError, HttpResponse> {
        SdkError::service_error(
            GenerateDataKeyError::generic(ErrorMetadata::builder().code(code).build()),
            HttpResponse::new(status.try_into().unwrap(), "".into()),
        )
    }

    #[test]
    fn kms_refusals_are_permanent_throttling_and_outages_transient() {
        for code in [
            "AccessDeniedException",
            "DisabledException",
            "NotFoundException",
            "InvalidCiphertextException",
            "KMSInvalidStateException",
        ] {
            let err = kms_error(&service_error(code, 400));
            assert!(
                matches!(&err, SealError::Failed(why) if why.contains(code)),
                "{code}: {err:?}"
            );
        }
        for (code, status) in [
            ("ThrottlingException", 400),
            ("KMSInternalException", 500),
            ("DependencyTimeoutException", 503),
            ("Anything", 502),
        ] {
            let err = kms_error(&service_error(code, status));
            assert!(matches!(err, SealError::Unavailable(_)), "{code}: {err:?}");
        }
    }
}
