//! `SignIns`: the sign-in record. A token exchange claims the initData and starts a session in
//! one step (refused when replayed or blocked, nothing written); a refresh rotates the token
//! once (32 concurrent refreshes → one success, the rest are reuse and end the session); a
//! rotated-away token ends the session; unlink / block end every session and no session links
//! afterwards; a link is seen by the next refresh; a session links at most once; the cap
//! evicts the oldest session.

use std::sync::Arc;

use tglink_shared::{
    ids::TelegramUserId,
    store::{
        Block, LinkOutcome, LinkSide, Store,
        signins::{
            Amr, InitDataLinkOutcome, InitDataStanding, InitDataUse, NewSession, Profile,
            RefreshKey, RefreshOutcome, RefreshToken, SessionId, SignedIn, StartOutcome,
            TokenLinkOutcome,
        },
    },
    time::UnixTime,
    token::TokenHash,
};

use super::links::{link, tg, uid};
use crate::fixtures::Backend;

const DAY: u64 = 86_400;

fn initdata(id: TelegramUserId, fingerprint: &str, now: UnixTime) -> InitDataUse {
    InitDataUse {
        telegram_user_id: id,
        fingerprint: TokenHash::of(fingerprint.as_bytes()),
        retain_until: now.plus_secs(DAY),
        now,
    }
}

/// A new session of `id` and its first refresh token.
fn new_session(id: TelegramUserId, now: UnixTime) -> (NewSession, RefreshToken) {
    let sid = SessionId::random();
    let token = RefreshToken::mint(RefreshKey {
        telegram_user_id: id,
        sid,
        generation: 0,
    });
    let session = NewSession {
        telegram_user_id: id,
        sid,
        amr: Amr::TelegramMiniApp,
        client_id: "tglink-miniapp".into(),
        profile: Profile {
            username: Some("ann".into()),
            first_name: Some("Ann".into()),
            language_code: Some("en".into()),
            is_premium: Some(true),
        },
        auth_time: now,
        created_at: now,
        expires_at: now.plus_secs(30 * DAY),
        refresh: token.hash(),
    };
    (session, token)
}

/// Signs `id` in with a fresh initData; panics unless started.
async fn signed_in(
    store: &Store,
    id: TelegramUserId,
    fingerprint: &str,
    now: UnixTime,
) -> (SignedIn, RefreshToken) {
    let (session, token) = new_session(id, now);
    match store
        .signins()
        .start(&session, &initdata(id, fingerprint, now), 20)
        .await
        .unwrap()
    {
        StartOutcome::Started { session, .. } => (session, token),
        other => panic!("not started: {other:?}"),
    }
}

/// Refreshes `token`; the new token on success.
async fn refresh(
    store: &Store,
    token: &RefreshToken,
    now: UnixTime,
) -> (RefreshOutcome, RefreshToken) {
    let next = token.next();
    let outcome = store
        .signins()
        .refresh(token, &next.hash(), now)
        .await
        .unwrap();
    (outcome, next)
}

fn block_of(id: TelegramUserId, at: UnixTime) -> Block {
    Block {
        telegram_user_id: id,
        blocked_at: at,
        blocked_by: uid("admin-1"),
    }
}

pub async fn exchange_starts_a_session_and_uses_the_initdata(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_001);
    let (session, _token) = new_session(id, now);
    let use_ = initdata(id, "init-1", now);
    let StartOutcome::Started {
        session: started,
        evicted: None,
    } = store.signins().start(&session, &use_, 20).await.unwrap()
    else {
        panic!("not started");
    };
    assert_eq!(started.sid, session.sid);
    assert_eq!(started.amr, Amr::TelegramMiniApp);
    assert_eq!(started.profile, session.profile);
    assert_eq!(started.app_user_id, None);
    assert_eq!(started.expires_at, session.expires_at);
    // Seen by another client; the initData is used up for the exchange and for linking.
    assert_eq!(
        other.signins().session(id, session.sid, now).await.unwrap(),
        Some(started.clone())
    );
    assert_eq!(
        other
            .signins()
            .standing(id, &use_.fingerprint, now)
            .await
            .unwrap(),
        InitDataStanding {
            blocked: false,
            used: true
        }
    );
    let (again, _) = new_session(id, now);
    assert_eq!(
        other.signins().start(&again, &use_, 20).await.unwrap(),
        StartOutcome::Replayed
    );
    assert_eq!(
        other.signins().session(id, again.sid, now).await.unwrap(),
        None
    );
    assert_eq!(
        other
            .signins()
            .link_with_initdata(&link(21_001, "user-1"), &use_)
            .await
            .unwrap(),
        InitDataLinkOutcome::Replayed
    );
    assert_eq!(other.links().get_by_telegram(id).await.unwrap(), None);
    // An initData used to link cannot sign in either.
    let linking = initdata(id, "init-2", now);
    assert!(matches!(
        store
            .signins()
            .link_with_initdata(&link(21_001, "user-1"), &linking)
            .await
            .unwrap(),
        InitDataLinkOutcome::Linked(_)
    ));
    assert_eq!(
        store.signins().start(&again, &linking, 20).await.unwrap(),
        StartOutcome::Replayed
    );
    // After its retention the claim no longer counts; an expired session does not read.
    let later = now.plus_secs(DAY + 1);
    let (late, _) = new_session(id, later);
    assert!(matches!(
        store
            .signins()
            .start(&late, &initdata(id, "init-1", later), 20)
            .await
            .unwrap(),
        StartOutcome::Started { .. }
    ));
    assert_eq!(
        store
            .signins()
            .session(id, session.sid, now.plus_secs(30 * DAY))
            .await
            .unwrap(),
        None
    );
}

pub async fn refresh_rotates_and_a_rotated_token_ends_the_session(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_101);
    let (session, t0) = signed_in(store, id, "r-1", now).await;
    // Rotation, on another client (no instance state).
    let (outcome, t1) = refresh(&other, &t0, now.plus_secs(60)).await;
    assert_eq!(outcome, RefreshOutcome::Refreshed(session.clone()));
    let (outcome, t2) = refresh(store, &t1, now.plus_secs(120)).await;
    assert_eq!(outcome, RefreshOutcome::Refreshed(session.clone()));
    // A token never issued is merely refused.
    let forged = RefreshToken::mint(RefreshKey {
        generation: 2,
        ..t2.key()
    });
    assert_eq!(
        refresh(store, &forged, now).await.0,
        RefreshOutcome::Invalid
    );
    assert!(
        store
            .signins()
            .session(id, session.sid, now)
            .await
            .unwrap()
            .is_some()
    );
    // The rotated-away t1 is reuse: the session ends, t2 too.
    assert_eq!(refresh(store, &t1, now).await.0, RefreshOutcome::Reused);
    assert_eq!(refresh(&other, &t2, now).await.0, RefreshOutcome::Invalid);
    assert_eq!(
        other.signins().session(id, session.sid, now).await.unwrap(),
        None
    );
    // Presenting old tokens again after the end changes nothing.
    assert_eq!(refresh(store, &t0, now).await.0, RefreshOutcome::Invalid);

    // Past its absolute expiry a session does not refresh.
    let (_, t) = signed_in(store, id, "r-2", now).await;
    assert_eq!(
        refresh(store, &t, now.plus_secs(30 * DAY)).await.0,
        RefreshOutcome::Invalid
    );
}

pub async fn thirty_two_concurrent_refreshes_one_success(backend: Backend) {
    let fx = backend.store().await;
    let store = fx.store.clone();
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_201);
    let (session, t0) = signed_in(&store, id, "c-1", now).await;
    let t0 = Arc::new(t0);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let t0 = t0.clone();
            tokio::spawn(async move { refresh(&store, &t0, now).await.0 })
        })
        .collect();
    let mut refreshed = 0;
    for task in tasks {
        match task.await.unwrap() {
            RefreshOutcome::Refreshed(s) => {
                assert_eq!(s.sid, session.sid);
                refreshed += 1;
            }
            RefreshOutcome::Reused | RefreshOutcome::Invalid => {}
        }
    }
    assert_eq!(refreshed, 1);
    // The losers were reuse: the session is over.
    assert_eq!(
        store.signins().session(id, session.sid, now).await.unwrap(),
        None
    );
}

pub async fn unlink_and_block_end_every_session(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();

    // Unlink by the app user, unlink by the Telegram user (the bot's /disconnect, an admin
    // revoke), block: every session of that Telegram user ends.
    for (n, how) in ["unlink_by_user", "unlink_by_telegram", "block"]
        .iter()
        .enumerate()
    {
        let id = tg(21_300 + n as i64);
        let user = format!("user-{how}");
        store.links().link(&link(id.get(), &user)).await.unwrap();
        let (a, ta) = signed_in(store, id, &format!("{how}-a"), now).await;
        let (b, tb) = signed_in(store, id, &format!("{how}-b"), now).await;
        assert_eq!(a.app_user_id, Some(uid(&user)));
        match *how {
            "unlink_by_user" => {
                other.links().unlink_by_user(&uid(&user)).await.unwrap();
            }
            "unlink_by_telegram" => {
                other.links().unlink_by_telegram(id).await.unwrap();
            }
            _ => {
                other.blocks().block(&block_of(id, now)).await.unwrap();
            }
        }
        for (s, t) in [(&a, &ta), (&b, &tb)] {
            assert_eq!(
                refresh(store, t, now).await.0,
                RefreshOutcome::Invalid,
                "{how}"
            );
            assert_eq!(
                store
                    .signins()
                    .link_with_session(id, s.sid, &uid("user-x"), None, now)
                    .await
                    .unwrap(),
                if *how == "block" {
                    TokenLinkOutcome::Blocked
                } else {
                    TokenLinkOutcome::Invalid
                },
                "{how}"
            );
        }
        assert_eq!(store.links().get_by_telegram(id).await.unwrap(), None);
    }
    // A blocked user gets no session; after the unblock the old sessions stay dead and a new
    // sign-in works.
    let id = tg(21_302);
    let (s, _) = new_session(id, now);
    assert_eq!(
        store
            .signins()
            .start(&s, &initdata(id, "blocked-1", now), 20)
            .await
            .unwrap(),
        StartOutcome::Blocked
    );
    assert_eq!(
        store
            .signins()
            .standing(id, &TokenHash::of(b"blocked-1"), now)
            .await
            .unwrap(),
        InitDataStanding {
            blocked: true,
            used: false
        }
    );
    other.blocks().unblock(id).await.unwrap();
    assert_eq!(
        store
            .signins()
            .standing(id, &TokenHash::of(b"blocked-1"), now)
            .await
            .unwrap(),
        InitDataStanding {
            blocked: false,
            used: false
        }
    );
    let (fresh, t) = signed_in(store, id, "blocked-1", now).await;
    assert_eq!(fresh.app_user_id, None);
    assert!(matches!(
        refresh(store, &t, now).await.0,
        RefreshOutcome::Refreshed(_)
    ));
}

pub async fn a_link_is_seen_by_the_next_refresh_and_a_session_links_once(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_401);
    let (s, t0) = signed_in(store, id, "l-1", now).await;
    assert_eq!(s.app_user_id, None);
    // Linking with the session (another client), recorded on the record.
    let linked = match other
        .signins()
        .link_with_session(id, s.sid, &uid("user-1"), Some("ann".into()), now)
        .await
        .unwrap()
    {
        TokenLinkOutcome::Linked(l) => l,
        other => panic!("not linked: {other:?}"),
    };
    assert_eq!(linked.user_id, uid("user-1"));
    assert_eq!(
        store.links().get_by_telegram(id).await.unwrap(),
        Some(linked.clone())
    );
    let (outcome, t1) = refresh(store, &t0, now).await;
    let RefreshOutcome::Refreshed(after) = outcome else {
        panic!("not refreshed: {outcome:?}");
    };
    assert_eq!(after.app_user_id, Some(uid("user-1")));
    // At most once per session: even after an unlink elsewhere... (the unlink ends it), and
    // while linked, the same session cannot link again (another user: refused).
    assert_eq!(
        store
            .signins()
            .link_with_session(id, s.sid, &uid("user-2"), None, now)
            .await
            .unwrap(),
        TokenLinkOutcome::Invalid
    );
    // Another session of the same user sees the same pair linked; another app user conflicts.
    let (s2, _) = signed_in(store, id, "l-2", now).await;
    assert_eq!(
        store
            .signins()
            .link_with_session(id, s2.sid, &uid("user-1"), None, now)
            .await
            .unwrap(),
        TokenLinkOutcome::AlreadyLinked(linked.clone())
    );
    assert_eq!(
        store
            .signins()
            .link_with_session(id, s2.sid, &uid("user-2"), None, now)
            .await
            .unwrap(),
        TokenLinkOutcome::Conflict(LinkSide::Telegram)
    );
    // A bot link (Links::link) is mirrored too.
    let id3 = tg(21_402);
    let (_, t) = signed_in(store, id3, "l-3", now).await;
    assert_eq!(
        store.links().link(&link(21_402, "user-3")).await.unwrap(),
        LinkOutcome::Linked(link(21_402, "user-3"))
    );
    let RefreshOutcome::Refreshed(after) = refresh(&other, &t, now).await.0 else {
        panic!("not refreshed");
    };
    assert_eq!(after.app_user_id, Some(uid("user-3")));
    // Unlink: sessions end, t1 is dead.
    store.links().unlink_by_user(&uid("user-1")).await.unwrap();
    assert_eq!(refresh(store, &t1, now).await.0, RefreshOutcome::Invalid);
}

pub async fn concurrent_links_with_one_session_link_once(backend: Backend) {
    let fx = backend.store().await;
    let store = fx.store.clone();
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_501);
    let (s, _) = signed_in(&store, id, "once-1", now).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                store
                    .signins()
                    .link_with_session(id, s.sid, &uid(&format!("user-{i}")), None, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut linked = 0;
    for task in tasks {
        if let TokenLinkOutcome::Linked(_) = task.await.unwrap() {
            linked += 1;
        }
    }
    assert_eq!(linked, 1);
}

pub async fn exchange_racing_block_ends_blocked_without_sessions(backend: Backend) {
    let fx = backend.store().await;
    let store = fx.store.clone();
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_601);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let (session, token) = new_session(id, now);
                let outcome = store
                    .signins()
                    .start(&session, &initdata(id, &format!("race-{i}"), now), 20)
                    .await
                    .unwrap();
                (outcome, token)
            })
        })
        .collect();
    other.blocks().block(&block_of(id, now)).await.unwrap();
    for task in tasks {
        let (outcome, token) = task.await.unwrap();
        match outcome {
            StartOutcome::Started { .. } | StartOutcome::Blocked => {}
            StartOutcome::Replayed => panic!("distinct initData"),
        }
        // Whichever landed first, no session survives the block.
        assert_eq!(
            refresh(&store, &token, now).await.0,
            RefreshOutcome::Invalid
        );
    }
}

pub async fn revoke_by_refresh_token_or_session(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let id = tg(21_701);
    let (a, ta) = signed_in(store, id, "rv-1", now).await;
    let (b, tb) = signed_in(store, id, "rv-2", now).await;
    // An unknown token ends nothing.
    let unknown = RefreshToken::mint(ta.key());
    assert!(!other.signins().end_by_refresh(&unknown).await.unwrap());
    assert!(other.signins().end_by_refresh(&ta).await.unwrap());
    assert!(!other.signins().end_by_refresh(&ta).await.unwrap());
    assert_eq!(refresh(store, &ta, now).await.0, RefreshOutcome::Invalid);
    assert_eq!(store.signins().session(id, a.sid, now).await.unwrap(), None);
    // The other session lives on; ending it by id (a verified access token).
    assert!(
        store
            .signins()
            .session(id, b.sid, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.signins().end_session(id, b.sid).await.unwrap());
    assert!(!store.signins().end_session(id, b.sid).await.unwrap());
    assert_eq!(refresh(store, &tb, now).await.0, RefreshOutcome::Invalid);
}

pub async fn the_session_cap_evicts_the_oldest(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let id = tg(21_801);
    let mut tokens = Vec::new();
    for i in 0..3u64 {
        let at = now.plus_secs(i);
        let (session, token) = new_session(id, at);
        let outcome = store
            .signins()
            .start(&session, &initdata(id, &format!("cap-{i}"), at), 3)
            .await
            .unwrap();
        assert!(
            matches!(outcome, StartOutcome::Started { evicted: None, .. }),
            "{outcome:?}"
        );
        tokens.push((session.sid, token));
    }
    let at = now.plus_secs(10);
    let (session, token) = new_session(id, at);
    let outcome = store
        .signins()
        .start(&session, &initdata(id, "cap-3", at), 3)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, StartOutcome::Started { evicted: Some(sid), .. } if *sid == tokens[0].0),
        "{outcome:?}"
    );
    assert_eq!(
        refresh(store, &tokens[0].1, at).await.0,
        RefreshOutcome::Invalid
    );
    for (_, t) in tokens.iter().skip(1).chain([&(session.sid, token)]) {
        assert!(matches!(
            refresh(store, t, at).await.0,
            RefreshOutcome::Refreshed(_)
        ));
    }
}
