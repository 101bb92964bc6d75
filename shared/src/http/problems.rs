//! The problems of the shared domain's errors: store, sealing, app JWT and Mini App failures
//! mapped to HTTP here, at the edge, so that the ports and the domain know nothing of HTTP. A
//! function's own error enum maps beside itself, in the function, delegating to these for the
//! shared errors it wraps.
//!
//! Nothing here logs: [`super::respond`] logs each problem once, with the [`cause`] set here
//! (the error's own text, which never holds a secret).
//!
//! [`cause`]: Problem::cause

use http::StatusCode;

use super::Problem;
use crate::{
    auth::AuthError,
    oauth::{AccessTokenError, SigningError},
    seal::SealError,
    store::StoreError,
    telegram::miniapp::MiniAppError,
};

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        let problem = match err {
            StoreError::Unavailable(_) => Problem::unavailable("the store"),
            StoreError::Corrupt(_) | StoreError::Failed(_) => Problem::internal(),
        };
        problem.cause(err.to_string())
    }
}

impl From<SealError> for Problem {
    fn from(err: SealError) -> Self {
        let problem = match err {
            SealError::Unavailable(_) => Problem::unavailable("the key service"),
            SealError::Integrity | SealError::Failed(_) => Problem::internal(),
        };
        problem.cause(err.to_string())
    }
}

impl From<AuthError> for Problem {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => Problem::unauthorized(
                "auth_required",
                "send an app JWT as Authorization: Bearer <token>",
            ),
            AuthError::Expired => Problem::unauthorized("token_expired", "the app JWT has expired"),
            AuthError::Invalid(why) => {
                Problem::unauthorized("token_invalid", format!("the app JWT is not valid: {why}"))
            }
            AuthError::Forbidden => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                .detail("this endpoint needs the admin role"),
        }
    }
}

impl From<MiniAppError> for Problem {
    /// `401` without `WWW-Authenticate`: the Telegram proof was refused, not the app JWT.
    fn from(err: MiniAppError) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, err.code(), "Unauthorized").detail(err.to_string())
    }
}

impl From<SigningError> for Problem {
    fn from(err: SigningError) -> Self {
        match err {
            SigningError::Store(e) => e.into(),
            SigningError::Seal(e) => e.into(),
            SigningError::Key(_) => Problem::internal().cause(err.to_string()),
        }
    }
}

impl From<AccessTokenError> for Problem {
    /// `401 access_token_invalid`; the detail never quotes the token.
    fn from(err: AccessTokenError) -> Self {
        match err {
            AccessTokenError::Invalid(why) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "access_token_invalid",
                "Unauthorized",
            )
            .detail(format!("the access token is not valid: {why}")),
            AccessTokenError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_failures_are_503_with_their_cause_kept_out_of_the_body() {
        let problem = Problem::from(StoreError::Unavailable("throttled".into()));
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.code, "service_unavailable");
        assert_eq!(problem.retry_after, Some(super::super::RETRY_AFTER_SECS));
        assert_eq!(
            problem.cause.as_deref(),
            Some("store unavailable: throttled")
        );
        assert!(!problem.detail.as_deref().unwrap().contains("throttled"));
        let problem = Problem::from(SealError::Unavailable("kms down".into()));
        assert_eq!(problem.code, "service_unavailable");
        assert!(problem.detail.as_deref().unwrap().contains("key service"));
        assert_eq!(
            Problem::from(StoreError::Corrupt("x".into())).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(Problem::from(SealError::Integrity).code, "internal_error");
    }

    #[test]
    fn permanent_failures_are_500_without_retry_after() {
        for problem in [
            Problem::from(StoreError::Failed("ValidationException".into())),
            Problem::from(SealError::Failed("DisabledException".into())),
        ] {
            assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(problem.code, "internal_error");
            assert_eq!(problem.retry_after, None);
            assert!(problem.cause.as_deref().unwrap().contains("Exception"));
            assert_eq!(problem.detail, None, "the cause stays out of the body");
        }
    }

    #[test]
    fn auth_problems() {
        for (err, status, code) in [
            (AuthError::Missing, 401, "auth_required"),
            (AuthError::Expired, 401, "token_expired"),
            (AuthError::Invalid("bad signature"), 401, "token_invalid"),
            (AuthError::Forbidden, 403, "forbidden"),
        ] {
            let problem = Problem::from(err);
            assert_eq!((problem.status.as_u16(), problem.code), (status, code));
            assert_eq!(
                problem.headers.is_empty(),
                status == 403,
                "WWW-Authenticate on 401 only"
            );
        }
    }

    #[test]
    fn miniapp_refusals_are_401_without_www_authenticate() {
        let problem = Problem::from(MiniAppError::Replayed);
        assert_eq!(problem.status, StatusCode::UNAUTHORIZED);
        assert_eq!(problem.code, "initdata_replayed");
        assert!(problem.headers.is_empty(), "no WWW-Authenticate");
        assert_eq!(
            Problem::from(MiniAppError::Blocked).code,
            "telegram_user_blocked"
        );
    }
}
