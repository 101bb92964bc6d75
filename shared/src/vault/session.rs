//! The state of the Telegram session in a credential record: the one definition of "has a
//! session", "idle-expired" and "reported dead" that `settings` (the status it answers) and
//! `worker-credentials` (whether it serves the session) both decide by.
//!
//! A session is stored when the record holds the sealed session string AND the time it was
//! saved (both are written together and cleared together). It is live while it was active (saved,
//! or read by a worker) within the last `max_idle_secs`, and idle-expired from then on. A
//! record with no stored session that names a reason to re-authenticate (a worker reported the
//! session dead) is reported dead.

use crate::{
    store::{CredentialsRecord, credentials::SEALED_SESSION},
    time::UnixTime,
};

/// The times of a stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSession {
    /// When the session was saved.
    pub saved_at: UnixTime,
    /// The last activity: the save or the last worker read, whichever is later.
    pub last_active_at: UnixTime,
    /// When the session becomes (or became) idle-expired: `last_active_at + max_idle_secs`.
    pub expires_at: UnixTime,
}

/// What a credential record says about its Telegram session at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState<'a> {
    /// No session is stored, and none was reported dead.
    None,
    /// A session is stored and was active within the idle limit: workers may use it.
    Live(StoredSession),
    /// A session is stored but was not active within the idle limit: the user must log in to
    /// Telegram again (a worker read does not revive it).
    IdleExpired(StoredSession),
    /// No session is stored because a worker reported it dead with this MTProto error (e.g.
    /// `AUTH_KEY_UNREGISTERED`): the user must log in to Telegram again.
    ReportedDead { reason: &'a str },
}

impl SessionState<'_> {
    /// Whether workers may use the session.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Live(_))
    }

    /// The stored session, live or idle-expired.
    pub fn stored(&self) -> Option<&StoredSession> {
        match self {
            Self::Live(session) | Self::IdleExpired(session) => Some(session),
            Self::None | Self::ReportedDead { .. } => None,
        }
    }
}

impl CredentialsRecord {
    /// The session's state at `now`, idle-expiring after `max_idle_secs` without activity.
    pub fn session_state(&self, now: UnixTime, max_idle_secs: u64) -> SessionState<'_> {
        let stored = self
            .session_saved_at
            .filter(|_| self.has_sealed(SEALED_SESSION));
        match (stored, &self.reauth) {
            (Some(saved_at), _) => {
                let last_active_at = self
                    .last_used_at
                    .map_or(saved_at, |used| used.max(saved_at));
                let session = StoredSession {
                    saved_at,
                    last_active_at,
                    expires_at: last_active_at.plus_secs(max_idle_secs),
                };
                if session.expires_at > now {
                    SessionState::Live(session)
                } else {
                    SessionState::IdleExpired(session)
                }
            }
            (None, Some(reauth)) => SessionState::ReportedDead {
                reason: &reauth.reason,
            },
            (None, None) => SessionState::None,
        }
    }

    /// Whether any part of a session is stored: the sealed session string or its save time.
    /// Normally both or neither (see [`CredentialsRecord::session_state`]); a record holding
    /// only one of them has no session, but still something for clearing the session to
    /// remove, so clearing and reports decide by this.
    pub fn holds_session_parts(&self) -> bool {
        self.has_sealed(SEALED_SESSION) || self.session_saved_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ids::UserId, seal::SealedRecord, store::credentials::Reauth};

    fn record(sealed: &[&str], saved_at: Option<u64>) -> CredentialsRecord {
        let mut r = CredentialsRecord::empty(UserId::parse("u1").unwrap());
        r.sealed = (!sealed.is_empty()).then(|| SealedRecord {
            wrapped_key: vec![1],
            attributes: sealed.iter().map(|n| ((*n).to_owned(), vec![9])).collect(),
        });
        r.session_saved_at = saved_at.map(UnixTime);
        r
    }

    fn reported(mut r: CredentialsRecord) -> CredentialsRecord {
        r.reauth = Some(Reauth {
            reason: "AUTH_KEY_UNREGISTERED".into(),
            at: UnixTime(1),
        });
        r
    }

    #[test]
    fn live_until_idle_for_max_idle_then_expired() {
        let mut r = record(&[SEALED_SESSION], Some(1_000));
        let session = StoredSession {
            saved_at: UnixTime(1_000),
            last_active_at: UnixTime(1_000),
            expires_at: UnixTime(1_010),
        };
        assert_eq!(
            r.session_state(UnixTime(1_009), 10),
            SessionState::Live(session)
        );
        assert_eq!(
            r.session_state(UnixTime(1_010), 10),
            SessionState::IdleExpired(session)
        );
        // A worker read is activity; one older than the save is not.
        r.last_used_at = Some(UnixTime(1_005));
        let state = r.session_state(UnixTime(1_012), 10);
        assert!(state.is_live());
        assert_eq!(state.stored().unwrap().last_active_at, UnixTime(1_005));
        assert_eq!(state.stored().unwrap().expires_at, UnixTime(1_015));
        r.last_used_at = Some(UnixTime(900));
        assert_eq!(
            r.session_state(UnixTime(1_009), 10)
                .stored()
                .unwrap()
                .expires_at,
            UnixTime(1_010)
        );
    }

    #[test]
    fn a_stored_session_needs_its_string_and_its_save_time() {
        for r in [
            record(&[], None),
            record(&["bot_token"], None),
            record(&[SEALED_SESSION], None),
            record(&["bot_token"], Some(1_000)),
        ] {
            assert_eq!(r.session_state(UnixTime(1_001), 10), SessionState::None);
            assert_eq!(
                reported(r).session_state(UnixTime(1_001), 10),
                SessionState::ReportedDead {
                    reason: "AUTH_KEY_UNREGISTERED"
                }
            );
        }
        assert!(!record(&["bot_token"], None).holds_session_parts());
        assert!(record(&[SEALED_SESSION], None).holds_session_parts());
        assert!(record(&[], Some(1_000)).holds_session_parts());
    }

    #[test]
    fn a_stored_session_outranks_an_old_report() {
        let r = reported(record(&[SEALED_SESSION], Some(1_000)));
        assert!(r.session_state(UnixTime(1_001), 10).is_live());
        assert!(matches!(
            r.session_state(UnixTime(1_010), 10),
            SessionState::IdleExpired(_)
        ));
    }
}
