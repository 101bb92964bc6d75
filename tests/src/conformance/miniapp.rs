//! `MiniAppSessions` and `MiniAppFlow`: a session and its initData claim are written together
//! or not at all; reads honour `expires_at` and `active`; a blocked user gets nothing; linking
//! through initData uses the claim up only when the link is accepted; one winner under
//! concurrency, across two clients.

use std::sync::Arc;

use tglink_shared::{
    store::{
        ClaimStatus, Link, LinkSide, MiniAppFlow, MiniAppLinkOutcome, MiniAppSession,
        MiniAppSessions, ReplayClaim, SessionOutcome, Store,
    },
    time::UnixTime,
    token::{OneTimeToken, TokenHash},
};

use super::{
    blocks::block_of,
    links::{link, tg, uid},
};
use crate::fixtures::Backend;

const WINDOW: u64 = 86_400;
const TTL: u64 = 3_600;

fn session(telegram: i64, fingerprint: &TokenHash, now: UnixTime) -> MiniAppSession {
    MiniAppSession {
        hash: OneTimeToken::mint().hash(),
        telegram_user_id: tg(telegram),
        username: Some(format!("tg_{telegram}")),
        user_id: None,
        initdata_fingerprint: fingerprint.clone(),
        auth_date: UnixTime(now.secs() - 5),
        created_at: now,
        expires_at: now.plus_secs(TTL),
        active: true,
    }
}

fn fingerprint(name: &str) -> TokenHash {
    TokenHash::of(name.as_bytes())
}

fn replay(name: &str, now: UnixTime) -> ReplayClaim {
    ReplayClaim::initdata(&fingerprint(name), WINDOW, now)
}

async fn claim_status(store: &Store, claim: &ReplayClaim) -> Option<ClaimStatus> {
    store.claims().status(&claim.key, claim.now).await.unwrap()
}

pub async fn session_and_claim_are_written_together(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let claim = replay("initdata-1", now);
    let s = session(14_001, &fingerprint("initdata-1"), now);
    assert_eq!(
        store.miniapp_sessions().create(&s, &claim).await.unwrap(),
        SessionOutcome::Created
    );
    // Read back by an independent client, with the claim in place.
    let sessions = other.miniapp_sessions();
    assert_eq!(
        sessions.get_session(&s.hash, now).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        claim_status(&other, &claim).await,
        Some(ClaimStatus::Completed)
    );
    // `expires_at` is checked in the read: valid to its last second, gone at it.
    assert!(
        sessions
            .get_session(&s.hash, UnixTime(s.expires_at.secs() - 1))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        sessions.get_session(&s.hash, s.expires_at).await.unwrap(),
        None
    );
    assert_eq!(
        sessions
            .get_session(&OneTimeToken::mint().hash(), now)
            .await
            .unwrap(),
        None
    );

    // The same initData again, from either client: refused, and no second session.
    let again = session(14_001, &fingerprint("initdata-1"), now);
    for port in [store.miniapp_sessions(), other.miniapp_sessions()] {
        assert_eq!(
            port.create(&again, &claim).await.unwrap(),
            SessionOutcome::Replayed
        );
    }
    assert_eq!(sessions.get_session(&again.hash, now).await.unwrap(), None);
    // Still refused on the window's last second; accepted once it has passed.
    let late = ReplayClaim {
        now: now.plus_secs(WINDOW - 1),
        ..claim.clone()
    };
    assert_eq!(
        sessions.create(&again, &late).await.unwrap(),
        SessionOutcome::Replayed
    );
    let after = ReplayClaim {
        now: now.plus_secs(WINDOW),
        ..claim
    };
    assert_eq!(
        sessions.create(&again, &after).await.unwrap(),
        SessionOutcome::Created
    );
}

pub async fn blocked_users_get_no_session_and_burn_nothing(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    store
        .blocks()
        .block(&block_of(14_101, "admin", now.secs()))
        .await
        .unwrap();
    let claim = replay("initdata-blocked", now);
    let s = session(14_101, &fingerprint("initdata-blocked"), now);
    assert_eq!(
        store.miniapp_sessions().create(&s, &claim).await.unwrap(),
        SessionOutcome::Blocked
    );
    assert_eq!(claim_status(store, &claim).await, None);
    assert_eq!(
        store
            .miniapp_sessions()
            .get_session(&s.hash, now)
            .await
            .unwrap(),
        None
    );
    // A replayed initData of a blocked user is reported as replayed.
    let used = replay("initdata-used", now);
    store
        .claims()
        .claim_once(&used.key, now, WINDOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .miniapp_sessions()
            .create(&session(14_101, &fingerprint("initdata-used"), now), &used)
            .await
            .unwrap(),
        SessionOutcome::Replayed
    );
    // Unblocked: the very same initData gets its session.
    store.blocks().unblock(tg(14_101)).await.unwrap();
    assert_eq!(
        store.miniapp_sessions().create(&s, &claim).await.unwrap(),
        SessionOutcome::Created
    );
}

pub async fn attach_user_only_to_active_sessions(backend: Backend) {
    let fx = backend.store().await;
    let sessions = fx.store.miniapp_sessions();
    let other = fx.second_client().await.miniapp_sessions();
    let now = UnixTime::now();
    let s = session(14_201, &fingerprint("initdata-attach"), now);
    sessions
        .create(&s, &replay("initdata-attach", now))
        .await
        .unwrap();
    assert!(
        other
            .attach_user(&s.hash, &uid("user-1"), now)
            .await
            .unwrap()
    );
    let read = sessions.get_session(&s.hash, now).await.unwrap().unwrap();
    assert_eq!(read.user_id, Some(uid("user-1")));
    assert_eq!(read.telegram_user_id, tg(14_201));
    // Not on an expired session, nor on an unknown one.
    assert!(
        !sessions
            .attach_user(&s.hash, &uid("user-2"), s.expires_at)
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .attach_user(&OneTimeToken::mint().hash(), &uid("user-2"), now)
            .await
            .unwrap()
    );
    // An inactive session: not readable, nothing to attach to.
    let inactive = MiniAppSession {
        active: false,
        ..session(14_202, &fingerprint("initdata-inactive"), now)
    };
    assert_eq!(
        sessions
            .create(&inactive, &replay("initdata-inactive", now))
            .await
            .unwrap(),
        SessionOutcome::Created
    );
    assert_eq!(other.get_session(&inactive.hash, now).await.unwrap(), None);
    assert!(
        !other
            .attach_user(&inactive.hash, &uid("user-2"), now)
            .await
            .unwrap()
    );
}

pub async fn one_initdata_one_session_under_concurrency(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.miniapp_sessions();
    let second = fx.second_client().await.miniapp_sessions();
    let now = UnixTime::now();
    let claim = Arc::new(replay("initdata-race", now));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port: Arc<dyn MiniAppSessions> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let s = session(14_301, &fingerprint("initdata-race"), now);
        let claim = claim.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = port.create(&s, &claim).await;
            (s, outcome)
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        let (s, outcome) = task.await.unwrap();
        match outcome.unwrap() {
            SessionOutcome::Created => created.push(s),
            SessionOutcome::Replayed => {
                assert_eq!(first.get_session(&s.hash, now).await.unwrap(), None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one session per initData");
    assert_eq!(
        first.get_session(&created[0].hash, now).await.unwrap(),
        Some(created[0].clone())
    );
}

pub async fn claim_and_link_outcomes(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let flow = store.miniapp_flow();
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let original = link(15_001, "user-1");

    let a = replay("link-a", now);
    assert_eq!(
        flow.claim_and_link(&original, &a).await.unwrap(),
        MiniAppLinkOutcome::Linked(original.clone())
    );
    assert_eq!(claim_status(&other, &a).await, Some(ClaimStatus::Completed));
    assert_eq!(
        other.links().get_by_user(&uid("user-1")).await.unwrap(),
        Some(original.clone())
    );
    // The same initData again: replayed, whatever it would link.
    assert_eq!(
        other
            .miniapp_flow()
            .claim_and_link(&original, &a)
            .await
            .unwrap(),
        MiniAppLinkOutcome::Replayed
    );
    // Fresh initData for the same pair: accepted (claim used up), link unchanged.
    let b = replay("link-b", now);
    let newer = Link {
        linked_at: UnixTime(1_800_000_000),
        username: None,
        ..original.clone()
    };
    assert_eq!(
        flow.claim_and_link(&newer, &b).await.unwrap(),
        MiniAppLinkOutcome::AlreadyLinked(original.clone())
    );
    assert_eq!(claim_status(store, &b).await, Some(ClaimStatus::Completed));
    assert_eq!(
        store.links().get_by_telegram(tg(15_001)).await.unwrap(),
        Some(original.clone())
    );

    // Conflicts on either side write nothing, the claim included.
    let c = replay("link-c", now);
    assert_eq!(
        flow.claim_and_link(&link(15_001, "user-2"), &c)
            .await
            .unwrap(),
        MiniAppLinkOutcome::Conflict(LinkSide::Telegram)
    );
    let d = replay("link-d", now);
    assert_eq!(
        flow.claim_and_link(&link(15_002, "user-1"), &d)
            .await
            .unwrap(),
        MiniAppLinkOutcome::Conflict(LinkSide::User)
    );
    for claim in [&c, &d] {
        assert_eq!(claim_status(store, claim).await, None);
    }
    assert_eq!(
        store.links().get_by_user(&uid("user-2")).await.unwrap(),
        None
    );
    assert_eq!(
        store.links().get_by_telegram(tg(15_002)).await.unwrap(),
        None
    );

    // A blocked user: refused, nothing written; replay is reported before the block.
    store
        .blocks()
        .block(&block_of(15_003, "admin", now.secs()))
        .await
        .unwrap();
    let e = replay("link-e", now);
    assert_eq!(
        flow.claim_and_link(&link(15_003, "user-3"), &e)
            .await
            .unwrap(),
        MiniAppLinkOutcome::Blocked
    );
    assert_eq!(claim_status(store, &e).await, None);
    assert_eq!(
        store.links().get_by_user(&uid("user-3")).await.unwrap(),
        None
    );
    assert_eq!(
        flow.claim_and_link(&link(15_003, "user-3"), &a)
            .await
            .unwrap(),
        MiniAppLinkOutcome::Replayed
    );
    // Once unblocked, and once the conflicts are gone, the same initData works.
    store.blocks().unblock(tg(15_003)).await.unwrap();
    let l3 = link(15_003, "user-3");
    assert_eq!(
        flow.claim_and_link(&l3, &e).await.unwrap(),
        MiniAppLinkOutcome::Linked(l3)
    );
    store.links().unlink_by_user(&uid("user-1")).await.unwrap();
    let l2 = link(15_001, "user-2");
    assert_eq!(
        other.miniapp_flow().claim_and_link(&l2, &c).await.unwrap(),
        MiniAppLinkOutcome::Linked(l2)
    );
}

pub async fn claim_and_link_one_winner_of_sixteen(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.miniapp_flow();
    let second = fx.second_client().await.miniapp_flow();
    let now = UnixTime::now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port: Arc<dyn MiniAppFlow> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        // One Telegram user, sixteen app users, each with fresh initData.
        let l = link(15_100, &format!("user-w{i}"));
        let claim = replay(&format!("race-{i}"), now);
        tasks.push(tokio::spawn(async move {
            let outcome = port.claim_and_link(&l, &claim).await;
            (i, claim, outcome)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, claim, outcome) = task.await.unwrap();
        match outcome.unwrap() {
            MiniAppLinkOutcome::Linked(l) => {
                assert_eq!(
                    claim_status(&fx.store, &claim).await,
                    Some(ClaimStatus::Completed)
                );
                winners.push((i, l));
            }
            MiniAppLinkOutcome::Conflict(LinkSide::Telegram) => {
                assert_eq!(claim_status(&fx.store, &claim).await, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let (winner, l) = &winners[0];
    let links = fx.store.links();
    assert_eq!(
        links.get_by_telegram(tg(15_100)).await.unwrap(),
        Some(l.clone())
    );
    for i in 0..16 {
        let found = links
            .get_by_user(&uid(&format!("user-w{i}")))
            .await
            .unwrap();
        assert_eq!(found.is_some(), i == *winner);
    }
}
