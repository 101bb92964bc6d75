//! The status of a user's credential record: what `GET /api/telegram/status` answers (and the
//! answer to session changes and reports).

use serde::Serialize;
use tglink_shared::{
    store::{CredentialsRecord, credentials::SEALED_BOT_TOKEN},
    time::UnixTime,
    vault::session::SessionState,
};

/// `GET /api/telegram/status` (also the answer to session changes and reports).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    /// A session is stored and was active within `TELEGRAM_SESSION_MAX_IDLE_SEC`.
    pub user_auth: bool,
    /// The Telegram user id of the stored session.
    pub telegram_user_id: Option<i64>,
    /// Unix seconds the session was saved.
    pub saved_at: Option<u64>,
    /// Unix seconds the session becomes (or became) idle-expired.
    pub expires_at: Option<u64>,
    /// Unix seconds of the last activity (save or worker read).
    pub last_active_at: Option<u64>,
    /// The user must log in to Telegram again (session idle-expired or reported dead).
    pub reauth_required: bool,
    /// `idle_expired` or the reported MTProto error.
    pub reauth_reason: Option<String>,
    pub bot_configured: bool,
    pub bot_username: Option<String>,
    pub channel_id: Option<String>,
}

/// The status of `record` (`None`: the user has no record) at `now`.
pub fn status(record: Option<&CredentialsRecord>, now: UnixTime, max_idle_secs: u64) -> Status {
    let Some(r) = record else {
        return Status {
            user_auth: false,
            telegram_user_id: None,
            saved_at: None,
            expires_at: None,
            last_active_at: None,
            reauth_required: false,
            reauth_reason: None,
            bot_configured: false,
            bot_username: None,
            channel_id: None,
        };
    };
    let state = r.session_state(now, max_idle_secs);
    let reauth_reason = match state {
        SessionState::None | SessionState::Live(_) => None,
        SessionState::IdleExpired(_) => Some("idle_expired".to_owned()),
        SessionState::ReportedDead { reason } => Some(reason.to_owned()),
    };
    let stored = state.stored();
    Status {
        user_auth: state.is_live(),
        telegram_user_id: stored.and(r.telegram_user_id).map(|t| t.get()),
        saved_at: stored.map(|s| s.saved_at.secs()),
        expires_at: stored.map(|s| s.expires_at.secs()),
        last_active_at: stored.map(|s| s.last_active_at.secs()),
        reauth_required: reauth_reason.is_some(),
        reauth_reason,
        bot_configured: r.has_sealed(SEALED_BOT_TOKEN),
        bot_username: r.bot_username.clone(),
        channel_id: r.channel_id.map(|c| c.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tglink_shared::{
        ids::{TelegramUserId, UserId},
        seal::SealedRecord,
        store::credentials::{Reauth, SEALED_SESSION},
    };

    fn record_with(names: &[&str]) -> CredentialsRecord {
        let mut r = CredentialsRecord::empty(UserId::parse("u1").unwrap());
        r.version = 3;
        r.sealed = Some(SealedRecord {
            wrapped_key: vec![1, 2, 3],
            attributes: names.iter().map(|n| ((*n).to_owned(), vec![9])).collect(),
        });
        r
    }

    #[test]
    fn status_without_a_record() {
        let s = status(None, UnixTime(100), 10);
        assert!(!s.user_auth && !s.reauth_required && !s.bot_configured);
        assert_eq!(s.expires_at, None);
    }

    #[test]
    fn status_follows_idle_expiry_and_activity() {
        let mut r = record_with(&[SEALED_SESSION, SEALED_BOT_TOKEN]);
        r.session_saved_at = Some(UnixTime(1_000));
        r.telegram_user_id = Some(TelegramUserId::new(42).unwrap());
        let s = status(Some(&r), UnixTime(1_009), 10);
        assert!(s.user_auth);
        assert_eq!(s.expires_at, Some(1_010));
        assert_eq!(s.telegram_user_id, Some(42));
        assert!(s.bot_configured);
        let s = status(Some(&r), UnixTime(1_010), 10);
        assert!(!s.user_auth && s.reauth_required);
        assert_eq!(s.reauth_reason.as_deref(), Some("idle_expired"));
        // A worker read at 1_005 moves the expiry.
        r.last_used_at = Some(UnixTime(1_005));
        let s = status(Some(&r), UnixTime(1_012), 10);
        assert!(s.user_auth);
        assert_eq!(s.expires_at, Some(1_015));
        assert_eq!(s.last_active_at, Some(1_005));
    }

    #[test]
    fn status_after_a_report() {
        let mut r = record_with(&[SEALED_BOT_TOKEN]);
        r.reauth = Some(Reauth {
            reason: "AUTH_KEY_UNREGISTERED".into(),
            at: UnixTime(5),
        });
        let s = status(Some(&r), UnixTime(6), 10);
        assert!(!s.user_auth && s.reauth_required);
        assert_eq!(s.reauth_reason.as_deref(), Some("AUTH_KEY_UNREGISTERED"));
        assert_eq!(s.telegram_user_id, None);
    }
}
