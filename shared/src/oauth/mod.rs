//! The token service's JOSE side: access tokens (RFC 9068 JWTs, ES256) signed in-process with
//! keys tglink generates and keeps sealed in the store, their verification, the published key
//! set (JWKS, RFC 7517) and key rotation.
//!
//! - [`config`]: issuer, audience, access-token lifetime (`TGLINK_ISSUER`,
//!   `TGLINK_TOKEN_AUDIENCE`, `TGLINK_ACCESS_TOKEN_TTL_SEC`).
//! - [`claims`]: the claims of an access token and of an OpenID Connect ID token.
//! - [`clients`]: the registered OpenID clients (`TGLINK_OIDC_CLIENTS`).
//! - [`keys`]: key generation, `kid` (RFC 7638 thumbprint), the public JWK and JWKS, the
//!   cached published set, rotation.
//! - [`pkce`]: PKCE `S256` (RFC 7636) and random verifiers, states and nonces.
//! - [`signer`]: [`TokenSigner`], which opens the current private key once per cold start
//!   (1 store read + 1 key unwrap) and signs every token in-process.
//! - [`verifier`]: [`AccessTokenVerifier`], pinned to ES256, `typ: at+jwt`, a published `kid`,
//!   the issuer and the audience.
//!
//! Why not KMS `Sign` per token: see docs/design.md ("Access tokens and signing keys").

pub mod claims;
pub mod clients;
pub mod config;
pub mod keys;
pub mod pkce;
pub mod signer;
pub mod verifier;

pub use claims::{AccessTokenClaims, IdTokenClaims, at_hash};
pub use clients::{OidcClient, OidcClients};
pub use config::TokenConfig;
pub use keys::PublishedKeys;
pub use signer::{SigningError, TokenSigner};
pub use verifier::{AccessTokenError, AccessTokenVerifier};

/// Clock skew tolerated on an access token's `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// How long a cached key set (the signer's current key, the verifier's and the discovery
/// function's published keys) is used before the store is read again: a rotation is seen by
/// every warm instance within this interval.
pub const KEY_REFRESH_SECS: u64 = 60;

/// How long a new key is published before it signs: every warm verifier and discovery
/// instance has re-read the key set by then, so no token carries a `kid` tglink does not
/// serve. A retired key therefore still signs for up to this long.
pub const KEY_ACTIVATION_SECS: u64 = KEY_REFRESH_SECS;

/// The shortest interval between two reads of the key set forced by an unknown `kid` (a
/// forged `kid` must not turn every request into a store read).
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 10;

/// The `typ` header of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The `typ` header of an ID token (OIDC Core leaves it open; `JWT` is what clients expect).
pub const ID_TOKEN_TYP: &str = "JWT";

#[cfg(test)]
mod tests;
