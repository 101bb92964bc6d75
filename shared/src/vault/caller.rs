//! Who is calling the vault: the user with an app JWT, or one of the user's workers with a
//! worker token. The user id comes only from the token; a worker token's user id is trusted
//! only once the store has found the token's hash among that user's active tokens.

use lambda_http::Request;

use super::worker_token::{WORKER_TOKEN_PREFIX, WorkerToken};
use crate::{
    auth::{AppUser, AuthError, JwtVerifier},
    http::{Problem, bearer_token},
    ids::UserId,
    store::WorkerTokens,
};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The user, with an app JWT.
    App(AppUser),
    /// One of the user's workers, with an active worker token.
    Worker { user_id: UserId },
}

impl Caller {
    /// The user id: always from a verified token, never from the request otherwise.
    pub fn user_id(&self) -> &UserId {
        match self {
            Self::App(user) => &user.user_id,
            Self::Worker { user_id } => user_id,
        }
    }

    /// `jwt` or `worker_token`, for logs.
    pub fn via(&self) -> &'static str {
        match self {
            Self::App(_) => "jwt",
            Self::Worker { .. } => "worker_token",
        }
    }
}

/// The bearer credential of a request, before the store has been asked about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// A verified app JWT: authenticated.
    App(AppUser),
    /// A well-formed worker token: NOT yet authenticated. It only names the user whose
    /// record to read; the read itself checks that the token is one of that user's active
    /// tokens (`WorkerAuth::Token`) and answers [`worker_token_invalid`] otherwise.
    Worker(WorkerToken),
}

impl Presented {
    /// The user the credential names (for a worker token: to be checked by the store).
    pub fn user_id(&self) -> &UserId {
        match self {
            Self::App(user) => &user.user_id,
            Self::Worker(token) => token.user_id(),
        }
    }

    /// `jwt` or `worker_token`, for logs.
    pub fn via(&self) -> &'static str {
        match self {
            Self::App(_) => "jwt",
            Self::Worker(_) => "worker_token",
        }
    }
}

/// The 401 of a worker token that is malformed, unknown, revoked, or not the named user's.
pub fn worker_token_invalid() -> Problem {
    Problem::unauthorized(
        "worker_token_invalid",
        "the worker token is unknown or revoked",
    )
}

/// Reads `Authorization: Bearer <app JWT or worker token>` without any store call. A JWT
/// (three dot-separated parts) is verified by `jwt`; a `tgw_` token must have the exact shape
/// of [`WorkerToken`] and is returned unchecked ([`Presented::Worker`]): the caller must
/// check it in the store. 401 otherwise.
pub fn present_app_or_worker(jwt: &JwtVerifier, req: &Request) -> Result<Presented, Problem> {
    let token = bearer_token(req).ok_or(AuthError::Missing)?;
    if token.starts_with(WORKER_TOKEN_PREFIX) {
        return WorkerToken::parse(token)
            .map(Presented::Worker)
            .ok_or_else(worker_token_invalid);
    }
    if token.split('.').count() == 3 {
        return Ok(Presented::App(jwt.verify(token)?));
    }
    Err(AuthError::Invalid("neither an app JWT nor a worker token").into())
}

/// Authenticates `Authorization: Bearer <app JWT or worker token>`: a worker token must be one
/// of its named user's active tokens (one strongly consistent read). 401 otherwise, 503 if the
/// store is down. (`worker-credentials` does not use this: its credentials read checks the
/// token in the same store call.)
pub async fn authenticate_app_or_worker(
    jwt: &JwtVerifier,
    tokens: &dyn WorkerTokens,
    req: &Request,
) -> Result<Caller, Problem> {
    match present_app_or_worker(jwt, req)? {
        Presented::App(user) => Ok(Caller::App(user)),
        Presented::Worker(token) => {
            if tokens.is_active(token.user_id(), &token.hash()).await? {
                Ok(Caller::Worker {
                    user_id: token.user_id().clone(),
                })
            } else {
                Err(worker_token_invalid())
            }
        }
    }
}
