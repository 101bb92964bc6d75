//! The credential vault's shared domain: what both `settings` (which seals and writes) and
//! `worker-credentials` (which only reads and opens) need.
//!
//! - here: the sealing scope of a user's credential record (purpose `credentials`, record
//!   `USER#<id>/CREDENTIALS`), so a sealed value copied into another user's record does not
//!   open, and the idle limit of a Telegram session (`TELEGRAM_SESSION_MAX_IDLE_SEC`);
//! - [`session`]: the state of the record's Telegram session (none, live, idle-expired,
//!   reported dead);
//! - [`worker_token`]: worker tokens (`tgw_<base64url(user id)>.<43-character secret>`) and
//!   their public ids;
//! - [`caller`]: authentication by app JWT or worker token, the user id coming only from the
//!   token;
//! - [`etag`]: the entity tags of the credentials served to workers.
//!
//! Sealing itself happens only in `settings`; this module never calls [`crate::seal::Sealer::seal`].

pub mod caller;
pub mod etag;
pub mod session;
pub mod worker_token;

pub use worker_token::WorkerToken;

use crate::{
    config::{ConfigError, Env, positive_or},
    ids::UserId,
    seal::SealScope,
    store::credentials::record_key,
};

/// The encryption-context purpose of credential records.
pub const PURPOSE: &str = "credentials";

/// Default `TELEGRAM_SESSION_MAX_IDLE_SEC`: 7 days.
pub const DEFAULT_MAX_IDLE_SECS: u64 = 604_800;

/// `TELEGRAM_SESSION_MAX_IDLE_SEC`.
pub fn max_idle_from_env(env: &dyn Env) -> Result<u64, ConfigError> {
    positive_or(env, "TELEGRAM_SESSION_MAX_IDLE_SEC", DEFAULT_MAX_IDLE_SECS)
}

/// The sealing scope of `user`'s credential record.
pub fn scope(user: &UserId) -> SealScope {
    SealScope::new(PURPOSE, user, record_key(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_binds_purpose_user_and_record() {
        let user = UserId::parse("u1").unwrap();
        let s = scope(&user);
        assert_eq!(s.record, "USER#u1/CREDENTIALS");
        assert_eq!(s.context.purpose, "credentials");
        assert_eq!(s.context.user_id, user);
    }
}
