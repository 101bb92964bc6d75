//! Changing a user's credential record: the vault's write side, without HTTP.
//!
//! Every change is read–modify–write of one record conditional on its version, retried on a
//! conflict. All secrets of a record are sealed under one data key: a change that adds or
//! replaces a secret opens the record (one KMS `Decrypt`, only if other secrets are kept) and
//! seals the whole set anew (one `GenerateDataKey`); a change that only removes secrets needs
//! no KMS call. Nothing is written unless every step before the write succeeded, and the write
//! is one conditional store call, so a failure never leaves a half-written record.

use tglink_shared::{
    ids::{TelegramUserId, UserId},
    seal::{SealError, SealedRecord, Sealer, SecretBytes},
    secret::SecretString,
    store::{
        Credentials, CredentialsRecord, StoreError,
        credentials::{
            Reauth, SEALED_BOT_TOKEN, SEALED_CHANNEL_INVITE, SEALED_PHONE, SEALED_SESSION,
            WorkerAuth, WriteOutcome,
        },
    },
    telegram::bot_api::{BotToken, BotUser},
    time::Clock,
    vault,
};

/// How often a change is retried when another change won the race.
pub const MAX_ATTEMPTS: usize = 5;

/// Why a change to the credential record failed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("concurrent changes kept winning the race")]
    Contended,
    #[error("the report is about a session version that is no longer current")]
    StaleReport,
    #[error("the worker token is no longer active")]
    TokenInvalid,
}

/// What [`Vault::apply_as`] did.
pub struct Applied {
    /// The record as stored.
    pub record: CredentialsRecord,
    /// Whether the change was written (`false`: there was nothing to do).
    pub written: bool,
}

/// A validated session as sent by the host application.
pub struct SessionInput {
    pub session: SecretString,
    pub telegram_user_id: TelegramUserId,
    pub channel_id: i64,
    pub channel_invite: Option<SecretString>,
    pub phone: Option<SecretString>,
}

pub enum Change {
    BotToken {
        token: BotToken,
        bot: BotUser,
    },
    Session(SessionInput),
    ClearSession,
    /// A worker reported the session dead; `version` is the record version it was using.
    Report {
        reason: String,
        version: Option<u64>,
    },
}

/// The credential records of every user, changed through the store and the sealer.
pub struct Vault<'a> {
    pub credentials: &'a dyn Credentials,
    pub sealer: &'a Sealer,
    pub clock: &'a Clock,
}

impl Vault<'_> {
    /// Reads the user's record, applies `change` and writes it conditionally on the version
    /// read, retrying when another change won. Returns the record as stored (unchanged when
    /// there was nothing to do).
    pub async fn apply(
        &self,
        user: &UserId,
        change: &Change,
    ) -> Result<CredentialsRecord, VaultError> {
        Ok(self.apply_as(user, change, WorkerAuth::App).await?.record)
    }

    /// [`Vault::apply`] on behalf of `auth`: with a worker token, the write is conditional on
    /// the token still being active (checked in the same store write), and a token revoked
    /// since its check changes nothing ([`VaultError::TokenInvalid`]).
    pub async fn apply_as(
        &self,
        user: &UserId,
        change: &Change,
        auth: WorkerAuth<'_>,
    ) -> Result<Applied, VaultError> {
        let unchanged = |record| {
            Ok(Applied {
                record,
                written: false,
            })
        };
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let current = self
                .credentials
                .get(user)
                .await?
                .unwrap_or_else(|| CredentialsRecord::empty(user.clone()));
            let mut next = current.clone();
            next.updated_at = now;
            let mut set: Vec<(&str, &[u8])> = Vec::new();
            let mut remove: Vec<&str> = Vec::new();
            match change {
                Change::BotToken { token, bot } => {
                    set.push((SEALED_BOT_TOKEN, token.expose().as_bytes()));
                    next.bot_username = bot.username.clone();
                    next.bot_id = Some(bot.id);
                }
                Change::Session(input) => {
                    set.push((SEALED_SESSION, input.session.expose().as_bytes()));
                    match &input.phone {
                        Some(phone) => set.push((SEALED_PHONE, phone.expose().as_bytes())),
                        None => remove.push(SEALED_PHONE),
                    }
                    match &input.channel_invite {
                        Some(invite) => {
                            set.push((SEALED_CHANNEL_INVITE, invite.expose().as_bytes()));
                        }
                        None => remove.push(SEALED_CHANNEL_INVITE),
                    }
                    next.telegram_user_id = Some(input.telegram_user_id);
                    next.channel_id = Some(input.channel_id);
                    next.session_saved_at = Some(now);
                    next.reauth = None;
                }
                Change::ClearSession | Change::Report { .. } => {
                    if let Change::Report {
                        version: Some(v), ..
                    } = change
                        && *v != current.version
                    {
                        return Err(VaultError::StaleReport);
                    }
                    let has_session = current.holds_session_parts();
                    match change {
                        Change::Report { .. } if !has_session => return unchanged(current),
                        Change::ClearSession if !has_session && current.reauth.is_none() => {
                            return unchanged(current);
                        }
                        _ => {}
                    }
                    remove.extend([SEALED_SESSION, SEALED_PHONE, SEALED_CHANNEL_INVITE]);
                    next.telegram_user_id = None;
                    next.channel_id = None;
                    next.session_saved_at = None;
                    next.reauth = match change {
                        Change::Report { reason, .. } => Some(Reauth {
                            reason: reason.clone(),
                            at: now,
                        }),
                        _ => None,
                    };
                }
            }
            next.sealed = self
                .reseal(user, current.sealed.as_ref(), &set, &remove)
                .await?;
            match self.credentials.write_as(&next, auth).await? {
                WriteOutcome::Written { version } => {
                    next.version = version;
                    return Ok(Applied {
                        record: next,
                        written: true,
                    });
                }
                WriteOutcome::Conflict => continue,
                WriteOutcome::TokenInvalid => return Err(VaultError::TokenInvalid),
            }
        }
        Err(VaultError::Contended)
    }

    /// The sealed secrets after setting `set` and removing `remove`. Removing only needs no
    /// key; setting seals the whole kept set anew under one new data key, opening the current
    /// record first only if it holds secrets that are kept.
    async fn reseal(
        &self,
        user: &UserId,
        current: Option<&SealedRecord>,
        set: &[(&str, &[u8])],
        remove: &[&str],
    ) -> Result<Option<SealedRecord>, SealError> {
        let kept: Vec<&str> = current
            .map(|c| {
                c.attributes
                    .keys()
                    .map(String::as_str)
                    .filter(|name| !remove.contains(name) && !set.iter().any(|(n, _)| n == name))
                    .collect()
            })
            .unwrap_or_default();
        if set.is_empty() {
            let Some(current) = current else {
                return Ok(None);
            };
            let mut sealed = current.clone();
            sealed
                .attributes
                .retain(|name, _| kept.contains(&name.as_str()));
            return Ok((!sealed.attributes.is_empty()).then_some(sealed));
        }
        let scope = vault::scope(user);
        let mut plain: Vec<(String, SecretBytes)> = Vec::new();
        if let (Some(current), false) = (current, kept.is_empty()) {
            let opened = self.sealer.open(&scope, current).await?;
            for name in &kept {
                let value = opened.get(name).ok_or(SealError::Integrity)?;
                plain.push(((*name).to_owned(), value.clone()));
            }
        }
        let mut attributes: Vec<(&str, &[u8])> = plain
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
            .collect();
        attributes.extend_from_slice(set);
        Ok(Some(self.sealer.seal(&scope, &attributes).await?))
    }
}
