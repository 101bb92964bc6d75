//! Transient or permanent: what an AWS SDK failure means for the caller.
//!
//! A request the SDK could not complete (after its own retries) is either *transient*, worth
//! retrying later (`503` with `Retry-After`): throttling (`ThrottlingException`,
//! `ProvisionedThroughputExceededException`, `RequestLimitExceeded`, …), a timeout, a `5xx`
//! or an internal error of the service, a connection that failed; or *permanent*, which no
//! retry fixes (`500 internal_error`): KMS `AccessDeniedException`, `DisabledException`,
//! `NotFoundException`, `InvalidCiphertextException`, DynamoDB `ValidationException`,
//! `ResourceNotFoundException`, any other `4xx` refusal, a request the SDK could not build. A
//! client told "try again" about a permanent failure would loop forever.
//!
//! The store and the key service adapters classify their SDK errors here
//! ([`crate::store::StoreError::Failed`], [`crate::seal::SealError::Failed`]).

use aws_sdk_dynamodb::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};

/// Error codes that mean "too many requests right now" or "the service failed inside":
/// transient whatever the status says.
const TRANSIENT_CODES: &[&str] = &[
    // Throttling.
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    // A single-item write or read that met a transaction on its item (DynamoDB answers it for
    // PutItem/UpdateItem/DeleteItem/GetItem); the SDK does not retry it, the caller may.
    "TransactionConflictException",
    // The service's own failures and timeouts.
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether a service error with this `code` and HTTP `status` is worth retrying later:
/// throttling and the service's own failures (a `5xx`, `429`) are; every other refusal is not.
pub fn is_transient_code(code: Option<&str>, status: Option<u16>) -> bool {
    code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
        || status.is_some_and(|s| s >= 500 || s == 429)
}

/// An SDK failure classified, with its text (the SDK's, which names the operation, code and
/// message, never a request's payload).
pub enum AwsFailure {
    /// Retry later: nothing was done.
    Transient(String),
    /// No retry will help.
    Permanent(String),
}

/// Classifies `err`: a timeout or a request that never got an answer is transient; a service
/// error by [`is_transient_code`]; an unreadable response by its status; a request that could
/// not be built is permanent.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let text = DisplayErrorContext(err).to_string();
    let transient = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(e) => {
            is_transient_code(e.err().code(), Some(e.raw().status().as_u16()))
        }
        SdkError::ResponseError(e) => is_transient_code(None, Some(e.raw().status().as_u16())),
        // Future kinds: assume the service may recover.
        _ => true,
    };
    if transient {
        AwsFailure::Transient(text)
    } else {
        AwsFailure::Permanent(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_timeouts_and_5xx_are_transient() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "KMSInternalException",
            "TransactionConflictException",
            "DependencyTimeoutException",
            "KeyUnavailableException",
            "InternalServerError",
        ] {
            assert!(is_transient_code(Some(code), Some(400)), "{code}");
        }
        assert!(is_transient_code(None, Some(500)));
        assert!(is_transient_code(Some("Whatever"), Some(503)));
        assert!(is_transient_code(None, Some(429)));
    }

    #[test]
    fn refusals_no_retry_fixes_are_permanent() {
        for code in [
            // KMS
            "AccessDeniedException",
            "DisabledException",
            "NotFoundException",
            "InvalidCiphertextException",
            "IncorrectKeyException",
            "KMSInvalidStateException",
            "InvalidKeyUsageException",
            // DynamoDB
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ItemCollectionSizeLimitExceededException",
        ] {
            assert!(!is_transient_code(Some(code), Some(400)), "{code}");
        }
        assert!(!is_transient_code(None, Some(403)));
        assert!(!is_transient_code(None, None));
    }
}
