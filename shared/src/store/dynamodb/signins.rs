//! The sign-in record `TGSIGNIN#<id>` / `SIGNIN` (a prefix of its own, so IAM can grant it
//! without the `TGUSER#` link items). Attributes:
//!
//! - `user_id` (S) — mirror of the link: SET by every transaction that writes a link, REMOVEd
//!   by every one that deletes it (with `sids`, ending every session);
//! - `blocked` (BOOL) — mirror of `TGBLOCK#<id>`, SET/REMOVEd by the block/unblock
//!   transactions (which also REMOVE `sids`);
//! - `sids` (SS) — the live sessions' ids. A session is live only while its id is here, so
//!   REMOVE `sids` ends every session in one expression;
//! - `S#<sid>` (M) — one session: `rt` (SHA-256 of the current refresh token), `g` (its
//!   generation), `p0`‥`p15` (hashes of rotated-away tokens, slot = generation mod 16), `amr`,
//!   `client_id`, `auth_time`, `created_at`, `expires_at`, profile (`username`, `first_name`,
//!   `language_code`, `is_premium`), `linked` (the app user it linked), `a` (the attempt id of
//!   its last write, so an SDK retry of a write that landed is recognised);
//! - `I#<fingerprint>` (N) — an initData replay claim, its retention end.
//!
//! Why one attribute per session and per claim instead of two maps: DynamoDB cannot SET a path
//! inside a map that does not exist yet, nor create the map and a key of it in one expression
//! (overlapping paths); top-level attributes and an `ADD` to a string set need neither, so the
//! very first sign-in of a user is one `UpdateItem` like every other.
//!
//! Costs: exchange = one `UpdateItem` (`ReturnValues = ALL_NEW`, `ReturnValuesOnConditionCheckFailure
//! = ALL_OLD`); at the session cap one more (evicting the oldest); when the returned image shows
//! more than [`PRUNE_THRESHOLD`] expired claims or dead sessions, one more `UpdateItem` REMOVEs
//! them (amortised: at most once per [`PRUNE_THRESHOLD`] sign-ins). Refresh = one `UpdateItem`;
//! reuse detected = one more (ending the session). Item size: a session is ≤ ~1.3 KB (16 previous
//! hashes of 43 bytes + fields), so 20 sessions + pruned claims stay far below 400 KB.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::{
    DynamoStore,
    blocks::not_blocked,
    item::{Item, corrupt, n, s},
    keys,
    links::{InTheWay, Replacing, put_link_items},
    tx::{CondHandle, Expr, Tx, TxError, attempt_id, backoff, retry_on_conflict},
    unavailable,
};
use crate::{
    ids::{TelegramUserId, UserId},
    store::{
        Link, LinkSource, StoreError,
        signins::{
            Amr, InitDataLinkOutcome, InitDataStanding, InitDataUse, NewSession, PREVIOUS_SLOTS,
            Profile, RefreshOutcome, RefreshToken, SessionId, SignIns, SignedIn, StartOutcome,
            TokenLinkOutcome,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

/// Expired claims and dead sessions tolerated in a record before a sign-in prunes them.
pub(super) const PRUNE_THRESHOLD: usize = 8;

const SESSION_PREFIX: &str = "S#";
const CLAIM_PREFIX: &str = "I#";

fn session_attr(sid: SessionId) -> String {
    format!("{SESSION_PREFIX}{sid}")
}

fn claim_attr(fingerprint: &TokenHash) -> String {
    format!("{CLAIM_PREFIX}{}", fingerprint.as_str())
}

fn slot(generation: u32) -> String {
    format!("p{}", generation % PREVIOUS_SLOTS)
}

fn sid_set(sids: impl IntoIterator<Item = SessionId>) -> AttributeValue {
    AttributeValue::Ss(sids.into_iter().map(|s| s.to_string()).collect())
}

// ---- transactions of other entities that keep the mirrors ----

/// Adds to `tx` "the Telegram user is linked to `user`" on the sign-in record.
pub(super) fn mirror_link(tx: &mut Tx<'_>, id: TelegramUserId, user: &UserId) -> CondHandle {
    tx.update(
        keys::signin(id),
        Expr::new("SET user_id = :uid").value(":uid", s(user.as_str())),
        None,
    )
}

/// Adds to `tx` "the link is gone and every session with it".
pub(super) fn mirror_unlink(tx: &mut Tx<'_>, id: TelegramUserId) -> CondHandle {
    tx.update(keys::signin(id), Expr::new("REMOVE user_id, sids"), None)
}

/// Adds to `tx` "blocked: no link, no session".
pub(super) fn mirror_block(tx: &mut Tx<'_>, id: TelegramUserId) -> CondHandle {
    tx.update(
        keys::signin(id),
        Expr::new("SET blocked = :true REMOVE user_id, sids")
            .value(":true", AttributeValue::Bool(true)),
        None,
    )
}

/// Adds to `tx` "no longer blocked".
pub(super) fn mirror_unblock(tx: &mut Tx<'_>, id: TelegramUserId) -> CondHandle {
    tx.update(keys::signin(id), Expr::new("REMOVE blocked"), None)
}

// ---- reading the record ----

fn sids_of(item: &Item) -> Vec<SessionId> {
    match item.get("sids") {
        Some(AttributeValue::Ss(set)) => set.iter().filter_map(|s| SessionId::parse(s)).collect(),
        _ => Vec::new(),
    }
}

fn is_blocked(item: &Item) -> bool {
    matches!(item.get("blocked"), Some(AttributeValue::Bool(true)))
}

fn claim_live(item: &Item, fingerprint: &TokenHash, now: UnixTime) -> Result<bool, StoreError> {
    match item.get(&claim_attr(fingerprint)) {
        None => Ok(false),
        Some(AttributeValue::N(v)) => v
            .parse::<u64>()
            .map(|until| until > now.secs())
            .map_err(|_| corrupt("claim is not a number")),
        Some(_) => Err(corrupt("claim is not a number")),
    }
}

fn app_user(item: &Item) -> Result<Option<UserId>, StoreError> {
    match item.get("user_id") {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => UserId::parse(v).map(Some).map_err(corrupt),
        Some(_) => Err(corrupt("user_id is not a string")),
    }
}

type Map = HashMap<String, AttributeValue>;

fn session_map(item: &Item, sid: SessionId) -> Option<&Map> {
    match item.get(&session_attr(sid)) {
        Some(AttributeValue::M(m)) => Some(m),
        _ => None,
    }
}

fn m_s<'a>(m: &'a Map, name: &str) -> Result<Option<&'a str>, StoreError> {
    match m.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(corrupt(format_args!("session {name} is not a string"))),
    }
}

fn m_n(m: &Map, name: &str) -> Result<u64, StoreError> {
    match m.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(format_args!("session {name} is not an integer"))),
        _ => Err(corrupt(format_args!("session {name} missing"))),
    }
}

fn required(v: Option<&str>, name: &str) -> Result<String, StoreError> {
    v.map(str::to_owned)
        .ok_or_else(|| corrupt(format_args!("session {name} missing")))
}

fn parse_session(
    id: TelegramUserId,
    sid: SessionId,
    m: &Map,
    app_user_id: Option<UserId>,
) -> Result<SignedIn, StoreError> {
    Ok(SignedIn {
        telegram_user_id: id,
        sid,
        amr: Amr::parse(&required(m_s(m, "amr")?, "amr")?)?,
        client_id: required(m_s(m, "client_id")?, "client_id")?,
        profile: Profile {
            username: m_s(m, "username")?.map(str::to_owned),
            first_name: m_s(m, "first_name")?.map(str::to_owned),
            language_code: m_s(m, "language_code")?.map(str::to_owned),
            is_premium: match m.get("is_premium") {
                Some(AttributeValue::Bool(b)) => Some(*b),
                _ => None,
            },
        },
        auth_time: UnixTime(m_n(m, "auth_time")?),
        created_at: UnixTime(m_n(m, "created_at")?),
        expires_at: UnixTime(m_n(m, "expires_at")?),
        app_user_id,
    })
}

/// The live session `sid` of a record.
fn live_session(
    item: &Item,
    id: TelegramUserId,
    sid: SessionId,
    now: UnixTime,
) -> Result<Option<SignedIn>, StoreError> {
    if !sids_of(item).contains(&sid) {
        return Ok(None);
    }
    let Some(m) = session_map(item, sid) else {
        return Ok(None);
    };
    let session = parse_session(id, sid, m, app_user(item)?)?;
    Ok((session.expires_at > now).then_some(session))
}

fn session_value(session: &NewSession, attempt: &str) -> AttributeValue {
    let mut m: Map = HashMap::from([
        ("rt".to_owned(), s(session.refresh.as_str())),
        ("g".to_owned(), n(0)),
        ("amr".to_owned(), s(session.amr.as_str())),
        ("client_id".to_owned(), s(&session.client_id)),
        ("auth_time".to_owned(), n(session.auth_time.secs())),
        ("created_at".to_owned(), n(session.created_at.secs())),
        ("expires_at".to_owned(), n(session.expires_at.secs())),
        ("a".to_owned(), s(attempt)),
    ]);
    let p = &session.profile;
    for (name, value) in [
        ("username", &p.username),
        ("first_name", &p.first_name),
        ("language_code", &p.language_code),
    ] {
        if let Some(v) = value {
            m.insert(name.to_owned(), s(v));
        }
    }
    if let Some(premium) = p.is_premium {
        m.insert("is_premium".to_owned(), AttributeValue::Bool(premium));
    }
    AttributeValue::M(m)
}

/// Attributes of a record that can go: expired claims, and sessions that are not live
/// (ended, or expired — the expired ones also leave `sids`).
fn prunable(item: &Item, now: UnixTime) -> (Vec<String>, Vec<SessionId>) {
    let live = sids_of(item);
    let mut attrs = Vec::new();
    let mut expired_sids = Vec::new();
    for (name, value) in item {
        if name.starts_with(CLAIM_PREFIX) {
            if matches!(value, AttributeValue::N(v) if v.parse::<u64>().is_ok_and(|t| t <= now.secs()))
            {
                attrs.push(name.clone());
            }
        } else if let Some(raw) = name.strip_prefix(SESSION_PREFIX) {
            let Some(sid) = SessionId::parse(raw) else {
                continue;
            };
            let expired = matches!(value, AttributeValue::M(m) if m_n(m, "expires_at").is_ok_and(|t| t <= now.secs()));
            if !live.contains(&sid) {
                attrs.push(name.clone());
            } else if expired {
                attrs.push(name.clone());
                expired_sids.push(sid);
            }
        }
    }
    (attrs, expired_sids)
}

/// How a single conditional `UpdateItem` ended.
enum Updated {
    /// Written; the item after the write (when asked for).
    Done(Option<Item>),
    /// The condition failed; the item before (as DynamoDB returned it).
    Refused(Option<Item>),
}

impl DynamoStore {
    async fn update_signin(
        &self,
        id: TelegramUserId,
        update: Expr,
        condition: Option<Expr>,
        return_new: bool,
    ) -> Result<Updated, StoreError> {
        let (update, mut names, mut values) = update.into_parts();
        let condition = condition.map(|c| {
            let (text, n2, v2) = c.into_parts();
            if let Some(n2) = n2 {
                names.get_or_insert_with(HashMap::new).extend(n2);
            }
            if let Some(v2) = v2 {
                values.get_or_insert_with(HashMap::new).extend(v2);
            }
            text
        });
        let request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::signin(id).attributes()))
            .update_expression(update)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values(if return_new {
                ReturnValue::AllNew
            } else {
                ReturnValue::None
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // A transaction on the same item in flight (a link, an unlink, a block) refuses a
        // single-item write with `TransactionConflictException`: the write did not happen, so
        // it is sent again (the same request: its attempt id makes a landed retry recognisable);
        // after the last attempt it is a transient failure (503), never a 500.
        let mut attempt = 0;
        loop {
            match request.clone().send().await {
                Ok(out) => return Ok(Updated::Done(out.attributes)),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                        return Ok(Updated::Refused(refused.item().cloned()));
                    }
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        attempt += 1;
                        if attempt >= 4 {
                            return Err(StoreError::Unavailable(
                                "the sign-in record is in a transaction".into(),
                            ));
                        }
                        backoff(attempt).await;
                    }
                    _ => return Err(unavailable(e)),
                },
            }
        }
    }

    /// Removes what `item` shows can go, when it is more than [`PRUNE_THRESHOLD`]. Best
    /// effort: housekeeping never fails a sign-in.
    async fn prune(&self, id: TelegramUserId, item: &Item, now: UnixTime) {
        let (attrs, expired_sids) = prunable(item, now);
        if attrs.len() <= PRUNE_THRESHOLD {
            return;
        }
        let mut expr = String::from("REMOVE ");
        let mut update = Expr::new("");
        for (i, attr) in attrs.iter().enumerate() {
            if i > 0 {
                expr.push_str(", ");
            }
            expr.push_str(&format!("#r{i}"));
            update = update.name(&format!("#r{i}"), attr);
        }
        if !expired_sids.is_empty() {
            expr.push_str(" DELETE sids :expired");
            update = update.value(":expired", sid_set(expired_sids));
        }
        let update = update.with_text(expr);
        let _ = self.update_signin(id, update, None, false).await;
    }

    async fn start_once(
        &self,
        session: &NewSession,
        initdata: &InitDataUse,
        max_sessions: u32,
        attempt: &str,
    ) -> Result<Option<StartOutcome>, StoreError> {
        let id = session.telegram_user_id;
        let now = initdata.now;
        let update = Expr::new("SET #s = :session, #i = :claim ADD sids :sid")
            .name("#s", &session_attr(session.sid))
            .name("#i", &claim_attr(&initdata.fingerprint))
            .value(":session", session_value(session, attempt))
            .value(":claim", n(initdata.retain_until.secs()))
            .value(":sid", sid_set([session.sid]));
        let condition = Expr::new(
            "(attribute_not_exists(blocked) AND (attribute_not_exists(#i) OR #i <= :now) \
             AND (attribute_not_exists(sids) OR size(sids) < :max)) OR #s.a = :attempt",
        )
        .value(":now", n(now.secs()))
        .value(":max", n(max_sessions))
        .value(":attempt", s(attempt));
        let old = match self
            .update_signin(id, update, Some(condition), true)
            .await?
        {
            Updated::Done(item) => {
                let item = item.ok_or_else(|| corrupt("update returned no item"))?;
                self.prune(id, &item, now).await;
                return Ok(Some(StartOutcome::Started {
                    session: started(&item, session)?,
                    evicted: None,
                }));
            }
            Updated::Refused(old) => old.unwrap_or_default(),
        };
        if claim_live(&old, &initdata.fingerprint, now)? {
            return Ok(Some(StartOutcome::Replayed));
        }
        if is_blocked(&old) {
            return Ok(Some(StartOutcome::Blocked));
        }
        // At the cap: end the expired sessions and the oldest live ones to make room, in one
        // write conditioned on `sids` being what was read.
        let live = sids_of(&old);
        let mut by_age: Vec<(u64, bool, SessionId)> = live
            .iter()
            .map(|&sid| {
                let m = session_map(&old, sid);
                let created = m.and_then(|m| m_n(m, "created_at").ok()).unwrap_or(0);
                let expired = m
                    .and_then(|m| m_n(m, "expires_at").ok())
                    .is_none_or(|t| t <= now.secs());
                (created, expired, sid)
            })
            .collect();
        // Expired (or unreadable) first, then the oldest.
        by_age.sort_by_key(|&(created, expired, _)| (!expired, created));
        let excess = (live.len() + 1)
            .saturating_sub(max_sessions.max(1) as usize)
            .max(1);
        let removed: Vec<(bool, SessionId)> = by_age
            .iter()
            .take(excess)
            .map(|&(_, expired, sid)| (expired, sid))
            .collect();
        let kept: Vec<SessionId> = live
            .iter()
            .copied()
            .filter(|sid| !removed.iter().any(|(_, r)| r == sid))
            .chain([session.sid])
            .collect();
        let mut text = String::from("SET #s = :session, #i = :claim, sids = :kept REMOVE ");
        let mut update = Expr::new("")
            .name("#s", &session_attr(session.sid))
            .name("#i", &claim_attr(&initdata.fingerprint))
            .value(":session", session_value(session, attempt))
            .value(":claim", n(initdata.retain_until.secs()))
            .value(":kept", sid_set(kept));
        for (i, (_, sid)) in removed.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("#r{i}"));
            update = update.name(&format!("#r{i}"), &session_attr(*sid));
        }
        let update = update.with_text(text);
        let mut cond = String::from(
            "attribute_not_exists(blocked) AND (attribute_not_exists(#i) OR #i <= :now) \
             AND size(sids) = :count",
        );
        let mut condition = Expr::new("")
            .value(":now", n(now.secs()))
            .value(":count", n(live.len()));
        for (i, sid) in live.iter().enumerate() {
            cond.push_str(&format!(" AND contains(sids, :l{i})"));
            condition = condition.value(&format!(":l{i}"), s(sid.to_string()));
        }
        let condition = condition.with_text(cond);
        match self
            .update_signin(id, update, Some(condition), true)
            .await?
        {
            Updated::Done(item) => {
                let item = item.ok_or_else(|| corrupt("update returned no item"))?;
                Ok(Some(StartOutcome::Started {
                    session: started(&item, session)?,
                    evicted: removed
                        .iter()
                        .find(|(expired, _)| !expired)
                        .map(|&(_, sid)| sid),
                }))
            }
            // The record changed since it was read: look again.
            Updated::Refused(_) => Ok(None),
        }
    }

    async fn end_if(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        condition: Expr,
    ) -> Result<bool, StoreError> {
        let update = Expr::new("DELETE sids :sid REMOVE #s")
            .name("#s", &session_attr(sid))
            .value(":sid", sid_set([sid]));
        Ok(matches!(
            self.update_signin(id, update, Some(condition), false)
                .await?,
            Updated::Done(_)
        ))
    }

    async fn link_with_session_once(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        user: &UserId,
        username: Option<String>,
        now: UnixTime,
    ) -> Result<TokenLinkOutcome, TxError> {
        let link = Link {
            telegram_user_id: id,
            user_id: user.clone(),
            chat_id: None,
            username,
            source: LinkSource::MiniApp,
            linked_at: now,
            unreachable: None,
        };
        let mut tx = Tx::new(self);
        put_link_items(&mut tx, &link, Replacing::Nothing);
        let blocked = not_blocked(&mut tx, id);
        let session = tx.update(
            keys::signin(id),
            Expr::new("SET user_id = :uid, #s.linked = :uid")
                .name("#s", &session_attr(sid))
                .value(":uid", s(user.as_str())),
            Some(
                Expr::new(
                    "contains(sids, :sid) AND #s.expires_at > :now \
                     AND (attribute_not_exists(#s.linked) OR #s.linked = :uid) \
                     AND attribute_not_exists(blocked)",
                )
                .value(":sid", s(sid.to_string()))
                .value(":now", n(now.secs())),
            ),
        );
        match tx.run().await {
            Ok(()) => Ok(TokenLinkOutcome::Linked(link)),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(TokenLinkOutcome::Blocked),
            Err(TxError::Failed(f)) if f.failed(session) => Ok(TokenLinkOutcome::Invalid),
            Err(TxError::Failed(f)) => match self.in_the_way(&link).await? {
                Some(InTheWay::Conflict(side)) => Ok(TokenLinkOutcome::Conflict(side)),
                Some(InTheWay::SamePair(existing)) => Ok(TokenLinkOutcome::AlreadyLinked(existing)),
                Some(InTheWay::Blocked) => Ok(TokenLinkOutcome::Blocked),
                None => Err(TxError::Failed(f)),
            },
            Err(other) => Err(other),
        }
    }

    /// The initData's claim alone (for a pair linked already): one conditional write.
    async fn claim_initdata(&self, initdata: &InitDataUse) -> Result<bool, StoreError> {
        let update = Expr::new("SET #i = :claim")
            .name("#i", &claim_attr(&initdata.fingerprint))
            .value(":claim", n(initdata.retain_until.secs()));
        let condition = Expr::new("attribute_not_exists(#i) OR #i <= :now")
            .value(":now", n(initdata.now.secs()));
        Ok(matches!(
            self.update_signin(initdata.telegram_user_id, update, Some(condition), false)
                .await?,
            Updated::Done(_)
        ))
    }

    async fn link_with_initdata_once(
        &self,
        link: &Link,
        initdata: &InitDataUse,
    ) -> Result<InitDataLinkOutcome, TxError> {
        let mut tx = Tx::new(self);
        put_link_items(&mut tx, link, Replacing::Nothing);
        let blocked = not_blocked(&mut tx, link.telegram_user_id);
        let claimed = tx.update(
            keys::signin(link.telegram_user_id),
            Expr::new("SET user_id = :uid, #i = :claim")
                .name("#i", &claim_attr(&initdata.fingerprint))
                .value(":uid", s(link.user_id.as_str()))
                .value(":claim", n(initdata.retain_until.secs())),
            Some(
                Expr::new("attribute_not_exists(#i) OR #i <= :now")
                    .value(":now", n(initdata.now.secs())),
            ),
        );
        match tx.run().await {
            Ok(()) => Ok(InitDataLinkOutcome::Linked(link.clone())),
            Err(TxError::Failed(f)) if f.failed(claimed) => Ok(InitDataLinkOutcome::Replayed),
            Err(TxError::Failed(f)) if f.failed(blocked) => Ok(InitDataLinkOutcome::Blocked),
            Err(TxError::Failed(f)) => match self.in_the_way(link).await? {
                Some(InTheWay::Conflict(side)) => Ok(InitDataLinkOutcome::Conflict(side)),
                Some(InTheWay::SamePair(existing)) => Ok(if self.claim_initdata(initdata).await? {
                    InitDataLinkOutcome::AlreadyLinked(existing)
                } else {
                    InitDataLinkOutcome::Replayed
                }),
                Some(InTheWay::Blocked) => Ok(InitDataLinkOutcome::Blocked),
                None => Err(TxError::Failed(f)),
            },
            Err(other) => Err(other),
        }
    }
}

/// The session `session` as the record written for it shows it.
fn started(item: &Item, session: &NewSession) -> Result<SignedIn, StoreError> {
    let m = session_map(item, session.sid).ok_or_else(|| corrupt("written session missing"))?;
    parse_session(session.telegram_user_id, session.sid, m, app_user(item)?)
}

#[async_trait]
impl SignIns for DynamoStore {
    async fn start(
        &self,
        session: &NewSession,
        initdata: &InitDataUse,
        max_sessions: u32,
    ) -> Result<StartOutcome, StoreError> {
        let attempt = attempt_id();
        for _ in 0..5 {
            if let Some(outcome) = self
                .start_once(session, initdata, max_sessions, &attempt)
                .await?
            {
                return Ok(outcome);
            }
        }
        Err(StoreError::Unavailable(
            "sign-in record kept changing".into(),
        ))
    }

    async fn refresh(
        &self,
        presented: &RefreshToken,
        next: &TokenHash,
        now: UnixTime,
    ) -> Result<RefreshOutcome, StoreError> {
        let key = presented.key();
        let id = key.telegram_user_id;
        let old_hash = presented.hash();
        let attempt = attempt_id();
        let update = Expr::new("SET #s.rt = :next, #s.g = :g, #s.#slot = :old, #s.a = :attempt")
            .name("#s", &session_attr(key.sid))
            .name("#slot", &slot(key.generation))
            .value(":next", s(next.as_str()))
            .value(":g", n(u64::from(key.generation) + 1))
            .value(":old", s(old_hash.as_str()))
            .value(":attempt", s(&attempt));
        let condition = Expr::new(
            "(contains(sids, :sid) AND #s.rt = :old AND #s.expires_at > :now \
             AND attribute_not_exists(blocked)) OR #s.a = :attempt",
        )
        .value(":sid", s(key.sid.to_string()))
        .value(":now", n(now.secs()));
        let old = match self
            .update_signin(id, update, Some(condition), true)
            .await?
        {
            Updated::Done(item) => {
                let item = item.ok_or_else(|| corrupt("update returned no item"))?;
                let m =
                    session_map(&item, key.sid).ok_or_else(|| corrupt("refreshed session gone"))?;
                return Ok(RefreshOutcome::Refreshed(parse_session(
                    id,
                    key.sid,
                    m,
                    app_user(&item)?,
                )?));
            }
            Updated::Refused(old) => old.unwrap_or_default(),
        };
        // Reuse: a live session that remembers this token as rotated away.
        let Some(m) = session_map(&old, key.sid) else {
            return Ok(RefreshOutcome::Invalid);
        };
        let remembered = (0..PREVIOUS_SLOTS)
            .any(|i| m_s(m, &format!("p{i}")).ok().flatten() == Some(old_hash.as_str()));
        if !remembered || !sids_of(&old).contains(&key.sid) {
            return Ok(RefreshOutcome::Invalid);
        }
        let created = m_n(m, "created_at")?;
        self.end_if(
            id,
            key.sid,
            Expr::new("#s.created_at = :created").value(":created", n(created)),
        )
        .await?;
        Ok(RefreshOutcome::Reused)
    }

    async fn end_by_refresh(&self, presented: &RefreshToken) -> Result<bool, StoreError> {
        let key = presented.key();
        self.end_if(
            key.telegram_user_id,
            key.sid,
            Expr::new("#s.rt = :h OR #s.#slot = :h")
                .name("#slot", &slot(key.generation))
                .value(":h", s(presented.hash().as_str())),
        )
        .await
    }

    async fn end_session(&self, id: TelegramUserId, sid: SessionId) -> Result<bool, StoreError> {
        self.end_if(
            id,
            sid,
            Expr::new("contains(sids, :live)").value(":live", s(sid.to_string())),
        )
        .await
    }

    async fn session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<Option<SignedIn>, StoreError> {
        self.get_with(keys::signin(id), |item| live_session(item, id, sid, now))
            .await
    }

    async fn standing(
        &self,
        id: TelegramUserId,
        fingerprint: &TokenHash,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError> {
        Ok(match self.get_consistent(keys::signin(id)).await? {
            Some(item) => InitDataStanding {
                blocked: is_blocked(&item),
                used: claim_live(&item, fingerprint, now)?,
            },
            None => InitDataStanding {
                blocked: false,
                used: false,
            },
        })
    }

    async fn link_with_session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        user: &UserId,
        username: Option<String>,
        now: UnixTime,
    ) -> Result<TokenLinkOutcome, StoreError> {
        retry_on_conflict(move || self.link_with_session_once(id, sid, user, username.clone(), now))
            .await
    }

    async fn link_with_initdata(
        &self,
        link: &Link,
        initdata: &InitDataUse,
    ) -> Result<InitDataLinkOutcome, StoreError> {
        retry_on_conflict(move || self.link_with_initdata_once(link, initdata)).await
    }
}
