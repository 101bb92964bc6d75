//! Port: registration tokens for a 2FA provider's callback.
//!
//! A registration has a secret one-time token (handed to the user, forwarded to the provider,
//! presented back in the provider's callback) and a separate, non-secret id (for the owner's
//! status reads). DynamoDB items:
//!
//! - `REGISTRATION#<sha256(token)>` / `REGISTRATION`: a pointer `{registration_id, user_id}`;
//! - `REGISTRATIONID#<id>` / `REGISTRATION`: all state (status, timestamps, service name,
//!   email, callback URL, seed id, sealed TOTP seed).
//!
//! Both are written in one transaction at creation and never change afterwards except the
//! by-id item's state, so each transition (pending → completed/rejected, pending → expired) is
//! ONE conditional write and a status read sees it immediately.
//!
//! TOTP verification (`POST /api/auth/2fa/verify`) adds one item per user,
//! `TOTP#<user id>` / `TOTP`: the user's most recent completed registration that carries a seed
//! (its id and a copy of its sealed seed, written by the completing callback's own transaction)
//! and the user's failed-verification count. The last accepted time step of a registration is
//! on its by-id item (`last_step`), written by a conditional write, so a code is accepted once.
//!
//! Two clocks: `token_expires_at` is when the token stops being accepted; `retain_until`
//! (= `token_expires_at` + [`RETENTION_SECS`], the table's TTL attribute `expires_at`) is when
//! the record, finished or not, disappears. Until then it is the audit trail.

use std::{collections::BTreeMap, fmt};

use async_trait::async_trait;
use aws_lc_rs::rand::SecureRandom;

use super::StoreError;
use crate::{
    ids::UserId,
    seal::{SealScope, SealedRecord},
    time::UnixTime,
    token::TokenHash,
};

/// How long a registration stays readable (and in the table) after its token expired.
pub const RETENTION_SECS: u64 = 7 * 24 * 60 * 60;

/// Seal purpose of the TOTP seed (part of the KMS encryption context).
pub const SEED_PURPOSE: &str = "registration";

/// Name of the sealed attribute holding the TOTP seed.
pub const SEED_ATTRIBUTE: &str = "totp_seed";

/// How long a registration completed with a TOTP seed stays: it is the verifier's record for
/// the user's codes, so it outlives the audit retention of the others (ten years, the longest
/// time a setting may name).
pub const COMPLETED_RETENTION_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// The non-secret id of a registration: 16 random bytes, 32 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(String);

impl RegistrationId {
    pub const LEN: usize = 32;

    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("system random source failed");
        Self(hex::encode(bytes))
    }

    /// Accepts exactly the shape [`generate`](Self::generate) produces.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegistrationId({})", self.0)
    }
}

/// The seal scope of a registration's TOTP seed: purpose `registration`, the owner's user id
/// (both in the KMS encryption context) and the record identity.
pub fn seed_scope(user_id: &UserId, id: &RegistrationId) -> SealScope {
    SealScope::new(SEED_PURPOSE, user_id, format!("REGISTRATION#{id}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegistrationStatus {
    Pending,
    Completed,
    Rejected,
    Expired,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "rejected" => Self::Rejected,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// How a provider ends a pending registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalStatus {
    Completed,
    Rejected,
}

impl From<FinalStatus> for RegistrationStatus {
    fn from(s: FinalStatus) -> Self {
        match s {
            FinalStatus::Completed => Self::Completed,
            FinalStatus::Rejected => Self::Rejected,
        }
    }
}

/// A sealed TOTP seed as stored: the wrapped data key and the sealed attribute.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSeed {
    pub wrapped_key: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl SealedSeed {
    /// The seed attribute of a record sealed with [`seed_scope`].
    pub fn from_record(mut record: SealedRecord) -> Option<Self> {
        let sealed = record.attributes.remove(SEED_ATTRIBUTE)?;
        Some(Self {
            wrapped_key: record.wrapped_key,
            sealed,
        })
    }

    /// The form [`Sealer::open`](crate::seal::Sealer::open) takes.
    pub fn to_record(&self) -> SealedRecord {
        SealedRecord {
            wrapped_key: self.wrapped_key.clone(),
            attributes: BTreeMap::from([(SEED_ATTRIBUTE.to_owned(), self.sealed.clone())]),
        }
    }
}

impl fmt::Debug for SealedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSeed(<sealed>)")
    }
}

/// A registration as created (status `pending`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRegistration {
    pub id: RegistrationId,
    pub token_hash: TokenHash,
    pub user_id: UserId,
    pub service_name: String,
    pub email: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: UnixTime,
    pub token_expires_at: UnixTime,
}

impl NewRegistration {
    /// When the record disappears: [`RETENTION_SECS`] after the token expired.
    pub fn retain_until(&self) -> UnixTime {
        self.token_expires_at.plus_secs(RETENTION_SECS)
    }
}

/// A registration as stored. Holds no token (only its hash is stored, and only on the pointer
/// item) and the TOTP seed only sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRecord {
    pub id: RegistrationId,
    pub user_id: UserId,
    pub service_name: String,
    pub email: Option<String>,
    pub callback_url: Option<String>,
    pub status: RegistrationStatus,
    pub created_at: UnixTime,
    pub token_expires_at: UnixTime,
    pub retain_until: UnixTime,
    pub completed_at: Option<UnixTime>,
    pub seed_id: Option<String>,
    pub sealed_seed: Option<SealedSeed>,
}

impl RegistrationRecord {
    /// The status a reader should see at `now`: a pending registration whose token has
    /// expired reads as `expired` even before a late callback records it.
    pub fn effective_status(&self, now: UnixTime) -> RegistrationStatus {
        match self.status {
            RegistrationStatus::Pending if self.token_expires_at <= now => {
                RegistrationStatus::Expired
            }
            status => status,
        }
    }
}

/// What a provider's callback writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    /// The registration's owner (the write is refused if it is not).
    pub owner: UserId,
    pub status: FinalStatus,
    pub seed_id: Option<String>,
    pub sealed_seed: Option<SealedSeed>,
}

/// The outcome of a conditional transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// This call made the change; the record as it is now.
    Done(RegistrationRecord),
    /// The condition did not hold and nothing was written; the record as it is (`None`: no
    /// such registration, or past its retention).
    Refused(Option<RegistrationRecord>),
}

/// When repeated TOTP failures lock a user's verification: `max_failures` failures within
/// `window_secs` of the first of them lock it until that window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpLockout {
    pub max_failures: u32,
    pub window_secs: u64,
}

/// A user's failed TOTP verifications: `count` since `since` (the first failure of the window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TotpFailures {
    pub count: u32,
    pub since: Option<UnixTime>,
}

impl TotpFailures {
    /// The failures that still count at `now`: none once the window has ended.
    pub fn current(self, lockout: TotpLockout, now: UnixTime) -> Self {
        match self.since {
            Some(since) if since.plus_secs(lockout.window_secs) > now => self,
            _ => Self::default(),
        }
    }

    /// When the lock ends, if the user's verification is locked at `now`.
    pub fn locked_until(self, lockout: TotpLockout, now: UnixTime) -> Option<UnixTime> {
        let current = self.current(lockout, now);
        match current.since {
            Some(since) if current.count >= lockout.max_failures => {
                Some(since.plus_secs(lockout.window_secs))
            }
            _ => None,
        }
    }
}

/// The registration whose seed checks a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpSeed {
    pub id: RegistrationId,
    pub sealed_seed: SealedSeed,
}

/// What one TOTP verification reads (one store call): the seed to check the code with (`None`:
/// the user has no completed registration with a seed, or not the one named) and the user's
/// failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpTarget {
    pub seed: Option<TotpSeed>,
    pub failures: TotpFailures,
}

/// The outcome of accepting a code's time step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpAccept {
    /// This call recorded the step (and reset the user's failures).
    Accepted,
    /// The step is not later than the last accepted one (a code is accepted once), or the
    /// registration can no longer verify. Nothing was written.
    StepUsed,
    /// The user's verification is locked. Nothing was written.
    Locked,
}

#[async_trait]
pub trait Registrations: Send + Sync {
    /// Stores a new pending registration: the by-token pointer and the by-id record, together
    /// or not at all. An id or token hash that already exists is refused
    /// ([`StoreError::Corrupt`]; with 128/256 random bits it does not happen).
    async fn create(&self, registration: &NewRegistration) -> Result<(), StoreError>;

    /// The registration with this id, unless it is past its retention.
    async fn get(
        &self,
        id: &RegistrationId,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError>;

    /// The registration whose token has this hash, unless it is past its retention.
    async fn find_by_token(
        &self,
        hash: &TokenHash,
        now: UnixTime,
    ) -> Result<Option<RegistrationRecord>, StoreError>;

    /// pending → completed/rejected, by one conditional write that requires status `pending`
    /// and `token_expires_at > now`; sets `completed_at = now`. Of any number of concurrent
    /// callers at most one gets [`Transition::Done`].
    async fn finish(
        &self,
        id: &RegistrationId,
        finish: &Finish,
        now: UnixTime,
    ) -> Result<Transition, StoreError>;

    /// pending → expired, by one conditional write that requires status `pending` and
    /// `token_expires_at <= now`.
    async fn expire(&self, id: &RegistrationId, now: UnixTime) -> Result<Transition, StoreError>;

    /// What a TOTP verification of `user` reads, in one call: the seed of the registration
    /// `id` (when named; it must be `user`'s, completed, with a seed, within its retention),
    /// else of `user`'s most recent registration completed with a seed; and `user`'s failures.
    async fn totp_target(
        &self,
        user: &UserId,
        id: Option<&RegistrationId>,
        now: UnixTime,
    ) -> Result<TotpTarget, StoreError>;

    /// Accepts time step `step` of registration `id` for `user`, by one conditional write:
    /// only if `step` is later than the registration's last accepted step, the registration is
    /// `user`'s, completed and within its retention, and the user is not locked; it records the
    /// step and resets the user's failures. Of any number of concurrent callers with one step,
    /// at most one gets [`TotpAccept::Accepted`].
    async fn totp_accept(
        &self,
        user: &UserId,
        id: &RegistrationId,
        step: u64,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpAccept, StoreError>;

    /// Counts one failed verification of `user` (a new window when the last one has ended),
    /// by one atomic write as a rule (`seen` is what [`totp_target`](Self::totp_target) read);
    /// returns the failures as they are now.
    async fn totp_fail(
        &self,
        user: &UserId,
        seen: TotpFailures,
        lockout: TotpLockout,
        now: UnixTime,
    ) -> Result<TotpFailures, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_and_parse_strictly() {
        let a = RegistrationId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, RegistrationId::generate());
        assert_eq!(RegistrationId::parse(a.as_str()), Some(a));
        assert_eq!(RegistrationId::parse("callback"), None);
        assert_eq!(RegistrationId::parse(&"A".repeat(32)), None);
        assert_eq!(RegistrationId::parse(&"a".repeat(33)), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            RegistrationStatus::Pending,
            RegistrationStatus::Completed,
            RegistrationStatus::Rejected,
            RegistrationStatus::Expired,
        ] {
            assert_eq!(RegistrationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RegistrationStatus::parse("done"), None);
    }

    #[test]
    fn failures_lock_until_their_window_ends() {
        let lockout = TotpLockout {
            max_failures: 3,
            window_secs: 100,
        };
        let t = UnixTime(1_000);
        let two = TotpFailures {
            count: 2,
            since: Some(t),
        };
        assert_eq!(two.locked_until(lockout, t.plus_secs(10)), None);
        let three = TotpFailures { count: 3, ..two };
        assert_eq!(
            three.locked_until(lockout, t.plus_secs(99)),
            Some(t.plus_secs(100))
        );
        assert_eq!(three.locked_until(lockout, t.plus_secs(100)), None);
        assert_eq!(
            three.current(lockout, t.plus_secs(100)),
            TotpFailures::default()
        );
        assert_eq!(three.current(lockout, t.plus_secs(99)), three);
        assert_eq!(
            TotpFailures::default().locked_until(lockout, t),
            None,
            "no failures, no lock"
        );
    }

    #[test]
    fn sealed_seed_debug_is_opaque() {
        let seed = SealedSeed {
            wrapped_key: vec![1, 2, 3],
            sealed: b"visible?".to_vec(),
        };
        assert_eq!(format!("{seed:?}"), "SealedSeed(<sealed>)");
        assert_eq!(
            SealedSeed::from_record(seed.to_record()).as_ref(),
            Some(&seed)
        );
    }
}
