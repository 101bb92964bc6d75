//! Sign-in records: `signin_sessions` (one row per session), `signin_previous` (the rotated-away
//! refresh-token hashes of a session, slot = generation mod 16) and `signin_initdata` (initData
//! replay claims per Telegram user). The link and the block are read from `telegram_links` and
//! `telegram_blocks` inside the same `IMMEDIATE` transaction, so no mirror is needed here.
//! [`end_all`] runs inside every transaction that removes a link or writes a block.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, blocks, immediate, links, sql_error};
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

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signin_sessions (
    telegram_user_id INTEGER NOT NULL,
    sid              TEXT NOT NULL,
    rt               TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    amr              TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    auth_time        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    username         TEXT,
    first_name       TEXT,
    language_code    TEXT,
    is_premium       INTEGER,
    linked           TEXT,
    PRIMARY KEY (telegram_user_id, sid)
) STRICT;
CREATE TABLE IF NOT EXISTS signin_previous (
    telegram_user_id INTEGER NOT NULL,
    sid              TEXT NOT NULL,
    slot             INTEGER NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (telegram_user_id, sid, slot)
) STRICT;
CREATE TABLE IF NOT EXISTS signin_initdata (
    telegram_user_id INTEGER NOT NULL,
    fingerprint      TEXT NOT NULL,
    expires_at       INTEGER NOT NULL,
    PRIMARY KEY (telegram_user_id, fingerprint)
) STRICT;
";

pub(super) const PURGE: &[&str] = &[
    "DELETE FROM signin_initdata WHERE expires_at <= ?1",
    "DELETE FROM signin_sessions WHERE expires_at <= ?1",
    "DELETE FROM signin_previous WHERE NOT EXISTS (SELECT 1 FROM signin_sessions s \
     WHERE s.telegram_user_id = signin_previous.telegram_user_id AND s.sid = signin_previous.sid) \
     AND ?1 IS NOT NULL",
];

/// Ends every session of the Telegram user (inside the caller's transaction).
pub(super) fn end_all(conn: &Connection, id: TelegramUserId) -> Result<(), StoreError> {
    for table in ["signin_sessions", "signin_previous"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE telegram_user_id = ?1"),
            [id.get()],
        )
        .map_err(sql_error)?;
    }
    Ok(())
}

fn end_one(conn: &Connection, id: TelegramUserId, sid: SessionId) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM signin_previous WHERE telegram_user_id = ?1 AND sid = ?2",
        params![id.get(), sid.to_string()],
    )
    .map_err(sql_error)?;
    let n = conn
        .execute(
            "DELETE FROM signin_sessions WHERE telegram_user_id = ?1 AND sid = ?2",
            params![id.get(), sid.to_string()],
        )
        .map_err(sql_error)?;
    Ok(n > 0)
}

const COLUMNS: &str = "rt, generation, amr, client_id, auth_time, created_at, expires_at, \
                       username, first_name, language_code, is_premium, linked";

struct Row {
    rt: String,
    generation: i64,
    session: SignedIn,
    linked: Option<String>,
}

fn secs(v: i64) -> Result<UnixTime, StoreError> {
    u64::try_from(v)
        .map(UnixTime)
        .map_err(|_| StoreError::Corrupt("negative time in session".into()))
}

/// The stored session `sid` (live or not), with the app user linked now.
fn read(conn: &Connection, id: TelegramUserId, sid: SessionId) -> Result<Option<Row>, StoreError> {
    type Raw = (
        String,
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<bool>,
        Option<String>,
    );
    let raw: Option<Raw> = conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM signin_sessions WHERE telegram_user_id = ?1 AND sid = ?2"
            ),
            params![id.get(), sid.to_string()],
            |row| row.try_into(),
        )
        .optional()
        .map_err(sql_error)?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let app_user_id = links::by_telegram(conn, id)?.map(|l| l.user_id);
    let (
        rt,
        generation,
        amr,
        client_id,
        auth_time,
        created_at,
        expires_at,
        username,
        first_name,
        language_code,
        is_premium,
        linked,
    ) = raw;
    Ok(Some(Row {
        rt,
        generation,
        linked,
        session: SignedIn {
            telegram_user_id: id,
            sid,
            amr: Amr::parse(&amr)?,
            client_id,
            profile: Profile {
                username,
                first_name,
                language_code,
                is_premium,
            },
            auth_time: secs(auth_time)?,
            created_at: secs(created_at)?,
            expires_at: secs(expires_at)?,
            app_user_id,
        },
    }))
}

fn claim_live(conn: &Connection, use_: &InitDataUse) -> Result<bool, StoreError> {
    live_claim(conn, use_.telegram_user_id, &use_.fingerprint, use_.now)
}

fn live_claim(
    conn: &Connection,
    id: TelegramUserId,
    fingerprint: &TokenHash,
    now: UnixTime,
) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM signin_initdata \
         WHERE telegram_user_id = ?1 AND fingerprint = ?2 AND expires_at > ?3",
        params![id.get(), fingerprint.as_str(), now.secs() as i64],
        |row| row.get(0),
    )
    .map_err(sql_error)
}

fn write_claim(conn: &Connection, use_: &InitDataUse) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO signin_initdata (telegram_user_id, fingerprint, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(telegram_user_id, fingerprint) DO UPDATE SET expires_at = excluded.expires_at",
        params![
            use_.telegram_user_id.get(),
            use_.fingerprint.as_str(),
            use_.retain_until.secs() as i64
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

fn start(
    conn: &mut Connection,
    session: &NewSession,
    initdata: &InitDataUse,
    max_sessions: u32,
) -> Result<StartOutcome, StoreError> {
    let id = session.telegram_user_id;
    let now = initdata.now;
    let tx = immediate(conn)?;
    if claim_live(&tx, initdata)? {
        return Ok(StartOutcome::Replayed);
    }
    if blocks::is_blocked(&tx, id)? {
        return Ok(StartOutcome::Blocked);
    }
    // Expired sessions go; then, at the cap, the oldest live ones.
    let expired: Vec<String> = {
        let mut stmt = tx
            .prepare(
                "SELECT sid FROM signin_sessions WHERE telegram_user_id = ?1 AND expires_at <= ?2",
            )
            .map_err(sql_error)?;
        stmt.query_map(params![id.get(), now.secs() as i64], |row| row.get(0))
            .map_err(sql_error)?
            .collect::<Result<_, _>>()
            .map_err(sql_error)?
    };
    for sid in expired.iter().filter_map(|s| SessionId::parse(s)) {
        end_one(&tx, id, sid)?;
    }
    let live: Vec<String> = {
        let mut stmt = tx
            .prepare(
                "SELECT sid FROM signin_sessions WHERE telegram_user_id = ?1 \
                 ORDER BY created_at, sid",
            )
            .map_err(sql_error)?;
        stmt.query_map([id.get()], |row| row.get(0))
            .map_err(sql_error)?
            .collect::<Result<_, _>>()
            .map_err(sql_error)?
    };
    let excess = (live.len() + 1).saturating_sub(max_sessions.max(1) as usize);
    let mut evicted = None;
    for sid in live.iter().take(excess).filter_map(|s| SessionId::parse(s)) {
        end_one(&tx, id, sid)?;
        evicted.get_or_insert(sid);
    }
    write_claim(&tx, initdata)?;
    end_one(&tx, id, session.sid)?;
    let p = &session.profile;
    tx.execute(
        &format!(
            "INSERT INTO signin_sessions (telegram_user_id, sid, {COLUMNS}) \
             VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL)"
        ),
        params![
            id.get(),
            session.sid.to_string(),
            session.refresh.as_str(),
            session.amr.as_str(),
            session.client_id,
            session.auth_time.secs() as i64,
            session.created_at.secs() as i64,
            session.expires_at.secs() as i64,
            p.username,
            p.first_name,
            p.language_code,
            p.is_premium,
        ],
    )
    .map_err(sql_error)?;
    let stored = read(&tx, id, session.sid)?
        .ok_or_else(|| StoreError::Corrupt("written session missing".into()))?;
    tx.commit().map_err(sql_error)?;
    Ok(StartOutcome::Started {
        session: stored.session,
        evicted,
    })
}

fn previous_holds(
    conn: &Connection,
    id: TelegramUserId,
    sid: SessionId,
    hash: &TokenHash,
) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM signin_previous \
         WHERE telegram_user_id = ?1 AND sid = ?2 AND hash = ?3",
        params![id.get(), sid.to_string(), hash.as_str()],
        |row| row.get(0),
    )
    .map_err(sql_error)
}

fn refresh(
    conn: &mut Connection,
    presented: &RefreshToken,
    next: &TokenHash,
    now: UnixTime,
) -> Result<RefreshOutcome, StoreError> {
    let key = presented.key();
    let (id, sid) = (key.telegram_user_id, key.sid);
    let hash = presented.hash();
    let tx = immediate(conn)?;
    let Some(row) = read(&tx, id, sid)? else {
        return Ok(RefreshOutcome::Invalid);
    };
    let live = row.session.expires_at > now && !blocks::is_blocked(&tx, id)?;
    if !live {
        return Ok(RefreshOutcome::Invalid);
    }
    if row.rt != hash.as_str() {
        if previous_holds(&tx, id, sid, &hash)? {
            end_one(&tx, id, sid)?;
            tx.commit().map_err(sql_error)?;
            return Ok(RefreshOutcome::Reused);
        }
        return Ok(RefreshOutcome::Invalid);
    }
    let _ = row.generation;
    tx.execute(
        "UPDATE signin_sessions SET rt = ?3, generation = ?4 WHERE telegram_user_id = ?1 AND sid = ?2",
        params![
            id.get(),
            sid.to_string(),
            next.as_str(),
            i64::from(key.generation) + 1
        ],
    )
    .map_err(sql_error)?;
    tx.execute(
        "INSERT INTO signin_previous (telegram_user_id, sid, slot, hash) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(telegram_user_id, sid, slot) DO UPDATE SET hash = excluded.hash",
        params![
            id.get(),
            sid.to_string(),
            i64::from(key.generation % PREVIOUS_SLOTS),
            hash.as_str()
        ],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)?;
    Ok(RefreshOutcome::Refreshed(row.session))
}

fn link_with_session(
    conn: &mut Connection,
    id: TelegramUserId,
    sid: SessionId,
    user: &UserId,
    username: Option<String>,
    now: UnixTime,
) -> Result<TokenLinkOutcome, StoreError> {
    let tx = immediate(conn)?;
    if blocks::is_blocked(&tx, id)? {
        return Ok(TokenLinkOutcome::Blocked);
    }
    let live = read(&tx, id, sid)?.is_some_and(|row| {
        row.session.expires_at > now
            && row
                .linked
                .as_deref()
                .is_none_or(|linked| linked == user.as_str())
    });
    if !live {
        return Ok(TokenLinkOutcome::Invalid);
    }
    let link = Link {
        telegram_user_id: id,
        user_id: user.clone(),
        chat_id: None,
        username,
        source: LinkSource::MiniApp,
        linked_at: now,
        unreachable: None,
    };
    let by_telegram = links::by_telegram(&tx, id)?;
    let by_user = links::by_user(&tx, user)?;
    if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
        return Ok(TokenLinkOutcome::Conflict(side));
    }
    if let Some(existing) = by_telegram {
        return Ok(TokenLinkOutcome::AlreadyLinked(existing));
    }
    links::upsert(&tx, &link)?;
    tx.execute(
        "UPDATE signin_sessions SET linked = ?3 WHERE telegram_user_id = ?1 AND sid = ?2",
        params![id.get(), sid.to_string(), user.as_str()],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)?;
    Ok(TokenLinkOutcome::Linked(link))
}

fn link_with_initdata(
    conn: &mut Connection,
    link: &Link,
    initdata: &InitDataUse,
) -> Result<InitDataLinkOutcome, StoreError> {
    let tx = immediate(conn)?;
    if claim_live(&tx, initdata)? {
        return Ok(InitDataLinkOutcome::Replayed);
    }
    if blocks::is_blocked(&tx, link.telegram_user_id)? {
        return Ok(InitDataLinkOutcome::Blocked);
    }
    let by_telegram = links::by_telegram(&tx, link.telegram_user_id)?;
    let by_user = links::by_user(&tx, &link.user_id)?;
    if let Some(side) = link.conflict(by_telegram.as_ref(), by_user.as_ref()) {
        return Ok(InitDataLinkOutcome::Conflict(side));
    }
    write_claim(&tx, initdata)?;
    let outcome = match by_telegram {
        Some(existing) => InitDataLinkOutcome::AlreadyLinked(existing),
        None => {
            links::upsert(&tx, link)?;
            InitDataLinkOutcome::Linked(link.clone())
        }
    };
    tx.commit().map_err(sql_error)?;
    Ok(outcome)
}

#[async_trait]
impl SignIns for SqliteStore {
    async fn start(
        &self,
        session: &NewSession,
        initdata: &InitDataUse,
        max_sessions: u32,
    ) -> Result<StartOutcome, StoreError> {
        let (session, initdata) = (session.clone(), initdata.clone());
        self.with_conn(move |conn| start(conn, &session, &initdata, max_sessions))
            .await
    }

    async fn refresh(
        &self,
        presented: &RefreshToken,
        next: &TokenHash,
        now: UnixTime,
    ) -> Result<RefreshOutcome, StoreError> {
        let (presented, next) = (presented.clone(), next.clone());
        self.with_conn(move |conn| refresh(conn, &presented, &next, now))
            .await
    }

    async fn end_by_refresh(&self, presented: &RefreshToken) -> Result<bool, StoreError> {
        let presented = presented.clone();
        self.with_conn(move |conn| {
            let key = presented.key();
            let hash = presented.hash();
            let tx = immediate(conn)?;
            let Some(row) = read(&tx, key.telegram_user_id, key.sid)? else {
                return Ok(false);
            };
            if row.rt != hash.as_str()
                && !previous_holds(&tx, key.telegram_user_id, key.sid, &hash)?
            {
                return Ok(false);
            }
            end_one(&tx, key.telegram_user_id, key.sid)?;
            tx.commit().map_err(sql_error)?;
            Ok(true)
        })
        .await
    }

    async fn end_session(&self, id: TelegramUserId, sid: SessionId) -> Result<bool, StoreError> {
        self.with_conn(move |conn| {
            let tx = immediate(conn)?;
            let ended = end_one(&tx, id, sid)?;
            tx.commit().map_err(sql_error)?;
            Ok(ended)
        })
        .await
    }

    async fn session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        now: UnixTime,
    ) -> Result<Option<SignedIn>, StoreError> {
        self.with_conn(move |conn| {
            Ok(read(conn, id, sid)?
                .map(|row| row.session)
                .filter(|s| s.expires_at > now))
        })
        .await
    }

    async fn standing(
        &self,
        id: TelegramUserId,
        fingerprint: &TokenHash,
        now: UnixTime,
    ) -> Result<InitDataStanding, StoreError> {
        let fingerprint = fingerprint.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(sql_error)?;
            Ok(InitDataStanding {
                blocked: blocks::is_blocked(&tx, id)?,
                used: live_claim(&tx, id, &fingerprint, now)?,
            })
        })
        .await
    }

    async fn link_with_session(
        &self,
        id: TelegramUserId,
        sid: SessionId,
        user: &UserId,
        username: Option<String>,
        now: UnixTime,
    ) -> Result<TokenLinkOutcome, StoreError> {
        let user = user.clone();
        self.with_conn(move |conn| link_with_session(conn, id, sid, &user, username, now))
            .await
    }

    async fn link_with_initdata(
        &self,
        link: &Link,
        initdata: &InitDataUse,
    ) -> Result<InitDataLinkOutcome, StoreError> {
        let (link, initdata) = (link.clone(), initdata.clone());
        self.with_conn(move |conn| link_with_initdata(conn, &link, &initdata))
            .await
    }
}
