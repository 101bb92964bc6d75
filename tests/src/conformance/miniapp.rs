//! `MiniAppSessions` and `MiniAppFlow`: a session and its initData claim are written together
//! or not at all; reads honour `expires_at` and `active`; a blocked user gets nothing; linking
//! through initData uses the claim up only when the link is accepted; one winner under
//! concurrency, across two clients. A session links only the app user it names and dies with
//! the link (unlink, revoke, block — also after an unblock): issue 13.

use std::sync::Arc;

use tglink_shared::{
    store::{
        ClaimStatus, Link, LinkSide, MiniAppFlow, MiniAppLinkOutcome, MiniAppSession,
        MiniAppSessions, ReplayClaim, SessionBasis, SessionLinkOutcome, SessionOutcome, Store,
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
        epoch: 0,
    }
}

/// A session of `telegram` made on the store's current basis (link and epoch), written with a
/// fresh initData claim.
async fn made(store: &Store, telegram: i64, name: &str, now: UnixTime) -> MiniAppSession {
    let basis = store.miniapp_sessions().basis(tg(telegram)).await.unwrap();
    let s = MiniAppSession {
        user_id: basis.user_id,
        epoch: basis.epoch,
        ..session(telegram, &fingerprint(name), now)
    };
    assert_eq!(
        store
            .miniapp_sessions()
            .create(&s, &replay(name, now))
            .await
            .unwrap(),
        SessionOutcome::Created
    );
    s
}

/// The link `session` makes for `user` at `now`.
fn session_link(session: &MiniAppSession, user: &str, now: UnixTime) -> Link {
    Link {
        chat_id: None,
        username: session.username.clone(),
        linked_at: now,
        ..link(session.telegram_user_id.get(), user)
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

pub async fn only_active_unexpired_sessions_link(backend: Backend) {
    let fx = backend.store().await;
    let sessions = fx.store.miniapp_sessions();
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let s = session(14_201, &fingerprint("initdata-attach"), now);
    sessions
        .create(&s, &replay("initdata-attach", now))
        .await
        .unwrap();
    // Not on its expiry second, nor with an unknown hash: nothing written.
    let flow = fx.store.miniapp_flow();
    assert_eq!(
        flow.link_session(&s.hash, &uid("user-1"), s.expires_at)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    assert_eq!(
        flow.link_session(&OneTimeToken::mint().hash(), &uid("user-1"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    assert_eq!(
        fx.store.links().get_by_user(&uid("user-1")).await.unwrap(),
        None
    );
    // Live: links, from another client, and the session then names the app user.
    assert_eq!(
        other
            .miniapp_flow()
            .link_session(&s.hash, &uid("user-1"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Linked(session_link(&s, "user-1", now))
    );
    let read = sessions.get_session(&s.hash, now).await.unwrap().unwrap();
    assert_eq!(read.user_id, Some(uid("user-1")));
    assert_eq!(read.telegram_user_id, tg(14_201));
    // An inactive session: not readable, and it links nobody.
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
    assert_eq!(
        other
            .miniapp_sessions()
            .get_session(&inactive.hash, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        flow.link_session(&inactive.hash, &uid("user-2"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    assert_eq!(
        fx.store.links().get_by_telegram(tg(14_202)).await.unwrap(),
        None
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

/// Issue 13: a session links at most the app user it first linked, and only until that link
/// is removed — by the user or by an admin — whichever client removes it.
pub async fn a_session_links_one_user_and_dies_with_the_link(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let flow = store.miniapp_flow();
    let now = UnixTime::now();
    let tg_id = 16_001;
    assert_eq!(
        store.miniapp_sessions().basis(tg(tg_id)).await.unwrap(),
        SessionBasis::default()
    );
    let s = made(store, tg_id, "epoch-1", now).await;
    let linked = session_link(&s, "user-1", now);
    assert_eq!(
        flow.link_session(&s.hash, &uid("user-1"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Linked(linked.clone())
    );
    assert_eq!(
        other.links().get_by_telegram(tg(tg_id)).await.unwrap(),
        Some(linked.clone())
    );
    // The session now names user-1: a retry by user-1 is idempotent, user-2 is refused.
    let read = other
        .miniapp_sessions()
        .get_session(&s.hash, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.user_id, Some(uid("user-1")));
    assert_eq!(
        other
            .miniapp_flow()
            .link_session(&s.hash, &uid("user-1"), now.plus_secs(1))
            .await
            .unwrap(),
        SessionLinkOutcome::AlreadyLinked(linked.clone())
    );
    assert_eq!(
        flow.link_session(&s.hash, &uid("user-2"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    // A session made before the unlink, not used yet, made on a basis read before it.
    let unused = made(store, tg_id, "epoch-2", now).await;
    assert_eq!(unused.user_id, Some(uid("user-1")));
    let stale_basis = store.miniapp_sessions().basis(tg(tg_id)).await.unwrap();

    // user-1 unlinks (another client): every session of the Telegram user is dead.
    other.links().unlink_by_user(&uid("user-1")).await.unwrap();
    for (session, user) in [(&s, "user-2"), (&s, "user-1"), (&unused, "user-1")] {
        assert_eq!(
            flow.link_session(&session.hash, &uid(user), now)
                .await
                .unwrap(),
            SessionLinkOutcome::Invalid,
            "{user}"
        );
    }
    // Born on the basis read before the unlink: refused too.
    let late = MiniAppSession {
        user_id: None,
        epoch: stale_basis.epoch,
        ..session(tg_id, &fingerprint("epoch-3"), now)
    };
    store
        .miniapp_sessions()
        .create(&late, &replay("epoch-3", now))
        .await
        .unwrap();
    assert_eq!(
        flow.link_session(&late.hash, &uid("user-2"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    assert_eq!(
        store.links().get_by_telegram(tg(tg_id)).await.unwrap(),
        None
    );

    // A fresh session links user-2; an admin revoke ends it as well.
    let fresh = made(&other, tg_id, "epoch-4", now).await;
    assert!(fresh.epoch > s.epoch);
    assert_eq!(
        flow.link_session(&fresh.hash, &uid("user-2"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Linked(session_link(&fresh, "user-2", now))
    );
    store.links().unlink_by_telegram(tg(tg_id)).await.unwrap();
    for user in ["user-2", "user-3"] {
        assert_eq!(
            other
                .miniapp_flow()
                .link_session(&fresh.hash, &uid(user), now)
                .await
                .unwrap(),
            SessionLinkOutcome::Invalid
        );
    }
    // Unknown or expired sessions are invalid; refusals write nothing.
    assert_eq!(
        flow.link_session(&OneTimeToken::mint().hash(), &uid("user-3"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    let current = made(store, tg_id, "epoch-5", now).await;
    assert_eq!(
        flow.link_session(&current.hash, &uid("user-3"), current.expires_at)
            .await
            .unwrap(),
        SessionLinkOutcome::Invalid
    );
    assert_eq!(
        store.links().get_by_telegram(tg(tg_id)).await.unwrap(),
        None
    );
    assert_eq!(
        store.links().get_by_user(&uid("user-3")).await.unwrap(),
        None
    );
    // Conflicts are reported, write nothing, and do not use the session up.
    store.links().link(&link(16_002, "user-3")).await.unwrap();
    store.links().link(&link(tg_id, "user-4")).await.unwrap();
    let taken = made(store, tg_id, "epoch-6", now).await;
    assert_eq!(taken.user_id, Some(uid("user-4")));
    assert_eq!(
        flow.link_session(&taken.hash, &uid("user-4"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::AlreadyLinked(link(tg_id, "user-4"))
    );
    let free = made(store, 16_003, "epoch-7", now).await;
    assert_eq!(
        flow.link_session(&free.hash, &uid("user-3"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Conflict(LinkSide::User)
    );
    store.links().unlink_by_user(&uid("user-3")).await.unwrap();
    assert_eq!(
        flow.link_session(&free.hash, &uid("user-3"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Linked(session_link(&free, "user-3", now))
    );
}

/// Issue 13: a block ends every session of the Telegram user — linked or not — and they stay
/// dead after the unblock; sessions made after the unblock work.
pub async fn a_block_ends_every_session_even_after_the_unblock(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let tg_id = 16_101;
    let unlinked = made(store, tg_id, "block-1", now).await;
    let linked_too = made(store, 16_102, "block-2", now).await;
    store
        .miniapp_flow()
        .link_session(&linked_too.hash, &uid("user-b"), now)
        .await
        .unwrap();
    for id in [tg_id, 16_102] {
        other
            .blocks()
            .block(&block_of(id, "admin", now.secs()))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .miniapp_flow()
            .link_session(&unlinked.hash, &uid("user-a"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Blocked
    );
    for id in [tg_id, 16_102] {
        other.blocks().unblock(tg(id)).await.unwrap();
    }
    for (s, user) in [(&unlinked, "user-a"), (&linked_too, "user-b")] {
        assert_eq!(
            store
                .miniapp_flow()
                .link_session(&s.hash, &uid(user), now)
                .await
                .unwrap(),
            SessionLinkOutcome::Invalid
        );
    }
    assert_eq!(
        store.links().get_by_user(&uid("user-a")).await.unwrap(),
        None
    );
    let after = made(&other, tg_id, "block-3", now).await;
    assert_eq!(
        store
            .miniapp_flow()
            .link_session(&after.hash, &uid("user-a"), now)
            .await
            .unwrap(),
        SessionLinkOutcome::Linked(session_link(&after, "user-a", now))
    );
}

/// `verify`'s one read: the block and whether the initData's claim is live, writing nothing.
pub async fn initdata_standing_reads_block_and_claim(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let sessions = other.miniapp_sessions();
    let now = UnixTime::now();
    let claim = replay("standing-1", now);
    let standing = |blocked, used| tglink_shared::store::InitDataStanding { blocked, used };
    assert_eq!(
        sessions
            .initdata_standing(tg(16_201), &claim.key, now)
            .await
            .unwrap(),
        standing(false, false)
    );
    // Asking wrote nothing: the initData still makes its session.
    made(store, 16_201, "standing-1", now).await;
    assert_eq!(
        sessions
            .initdata_standing(tg(16_201), &claim.key, now)
            .await
            .unwrap(),
        standing(false, true)
    );
    // Past the claim's retention, no longer used.
    assert_eq!(
        sessions
            .initdata_standing(tg(16_201), &claim.key, now.plus_secs(WINDOW))
            .await
            .unwrap(),
        standing(false, false)
    );
    store
        .blocks()
        .block(&block_of(16_201, "admin", now.secs()))
        .await
        .unwrap();
    assert_eq!(
        sessions
            .initdata_standing(tg(16_201), &claim.key, now)
            .await
            .unwrap(),
        standing(true, true)
    );
}
