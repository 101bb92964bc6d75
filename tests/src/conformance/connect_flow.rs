//! `ConnectFlow`: token consumed, link written and update claimed in one atomic step; a
//! redelivered update is a no-op; refusals write nothing; one winner under concurrency.

use std::sync::Arc;

use tglink_shared::{
    ids::UserId,
    store::{
        ClaimKey, ClaimOutcome, ClaimStatus, ClaimTimes, ConnectAttempt, ConnectFlow,
        ConnectOutcome, ConnectTokenRecord, Link, LinkOutcome, LinkSide, LinkSource, Store,
    },
    time::UnixTime,
    token::{OneTimeToken, TokenHash},
};

use super::{
    connect_tokens::consume,
    links::{link, tg, uid},
};
use crate::fixtures::Backend;

const RETAIN: u64 = 86_400;

async fn mint(store: &Store, user: &str, now: UnixTime, ttl: u64) -> TokenHash {
    let token = OneTimeToken::mint();
    store
        .connect_tokens()
        .insert(&ConnectTokenRecord {
            hash: token.hash(),
            user_id: UserId::parse(user).unwrap(),
            created_at: now,
            expires_at: now.plus_secs(ttl),
            attempt: tglink_shared::store::connect_tokens::new_attempt(),
            account: None,
        })
        .await
        .unwrap();
    token.hash()
}

fn attempt(token: &TokenHash, update_id: i64, telegram: i64, now: UnixTime) -> ConnectAttempt {
    ConnectAttempt {
        token: token.clone(),
        claim: ClaimKey::telegram_update("tglink_test_bot", update_id),
        claim_retain_secs: RETAIN,
        telegram_user_id: tg(telegram),
        chat_id: telegram,
        username: Some(format!("user{telegram}")),
        now,
    }
}

fn linked(outcome: ConnectOutcome) -> (Link, bool) {
    match outcome {
        ConnectOutcome::Linked { link, already, .. } => (link, already),
        other => panic!("expected a link, got {other:?}"),
    }
}

pub async fn consumes_links_and_claims_in_one_step(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let now = UnixTime::now();
    let token = mint(store, "user-1", now, 600).await;
    let first = attempt(&token, 100, 5001, now);

    let (l, already) = linked(store.connect_flow().consume_and_link(&first).await.unwrap());
    assert!(!already);
    let expected = Link {
        telegram_user_id: tg(5001),
        user_id: uid("user-1"),
        chat_id: Some(5001),
        username: Some("user5001".into()),
        source: LinkSource::Bot,
        linked_at: now,
        unreachable: None,
    };
    assert_eq!(l, expected);
    // Both link items, the consumed token and the completed claim, seen by another client.
    assert_eq!(
        other.links().get_by_telegram(tg(5001)).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        other.links().get_by_user(&uid("user-1")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(consume(&other, &token, now).await, None);
    assert_eq!(
        other.claims().status(&first.claim, now).await.unwrap(),
        Some(ClaimStatus::Completed)
    );

    // The same update again, even the next day but within retention: a no-op.
    assert_eq!(
        other.connect_flow().consume_and_link(&first).await.unwrap(),
        ConnectOutcome::Duplicate
    );
    let later = ConnectAttempt {
        now: now.plus_secs(RETAIN - 1),
        ..first.clone()
    };
    assert_eq!(
        other.connect_flow().consume_and_link(&later).await.unwrap(),
        ConnectOutcome::Duplicate
    );
    // Another update with the consumed token: invalid, and it claims nothing.
    let second = attempt(&token, 101, 5001, now);
    assert_eq!(
        store
            .connect_flow()
            .consume_and_link(&second)
            .await
            .unwrap(),
        ConnectOutcome::TokenInvalid
    );
    assert_eq!(
        store.claims().status(&second.claim, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.links().get_by_telegram(tg(5001)).await.unwrap(),
        Some(expected)
    );
}

pub async fn unknown_and_expired_tokens_write_nothing(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let unknown = OneTimeToken::mint().hash();
    let a = attempt(&unknown, 200, 6001, now);
    assert_eq!(
        store.connect_flow().consume_and_link(&a).await.unwrap(),
        ConnectOutcome::TokenInvalid
    );
    let token = mint(store, "user-2", now, 10).await;
    // At the expiry instant the token is expired.
    let b = attempt(&token, 201, 6001, now.plus_secs(10));
    assert_eq!(
        store.connect_flow().consume_and_link(&b).await.unwrap(),
        ConnectOutcome::TokenInvalid
    );
    for claim in [&a.claim, &b.claim] {
        assert_eq!(store.claims().status(claim, now).await.unwrap(), None);
    }
    assert_eq!(store.links().get_by_telegram(tg(6001)).await.unwrap(), None);
    assert_eq!(
        store.links().get_by_user(&uid("user-2")).await.unwrap(),
        None
    );
    // One second before expiry it works.
    let c = attempt(&token, 202, 6001, now.plus_secs(9));
    linked(store.connect_flow().consume_and_link(&c).await.unwrap());
}

pub async fn conflicts_leave_the_token_unconsumed(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    // The Telegram user is linked to someone else.
    store
        .links()
        .link(&link(7001, "someone-else"))
        .await
        .unwrap();
    let token = mint(store, "user-3", now, 600).await;
    let a = attempt(&token, 300, 7001, now);
    assert_eq!(
        store.connect_flow().consume_and_link(&a).await.unwrap(),
        ConnectOutcome::Conflict(LinkSide::Telegram)
    );
    assert_eq!(store.claims().status(&a.claim, now).await.unwrap(), None);
    assert_eq!(
        store.links().get_by_user(&uid("user-3")).await.unwrap(),
        None
    );

    // The app user is linked to another Telegram user.
    store.links().link(&link(7002, "user-4")).await.unwrap();
    let token4 = mint(store, "user-4", now, 600).await;
    let b = attempt(&token4, 301, 7003, now);
    assert_eq!(
        store.connect_flow().consume_and_link(&b).await.unwrap(),
        ConnectOutcome::Conflict(LinkSide::User)
    );
    assert_eq!(store.links().get_by_telegram(tg(7003)).await.unwrap(), None);

    // After the old link is removed, the very same update and token succeed: nothing was
    // consumed or claimed by the refusal.
    store.links().unlink_by_telegram(tg(7001)).await.unwrap();
    let (l, already) = linked(store.connect_flow().consume_and_link(&a).await.unwrap());
    assert_eq!((l.user_id, already), (uid("user-3"), false));
    store.links().unlink_by_user(&uid("user-4")).await.unwrap();
    let (l, _) = linked(store.connect_flow().consume_and_link(&b).await.unwrap());
    assert_eq!(l.telegram_user_id, tg(7003));
}

pub async fn relinking_the_same_pair_keeps_the_original_link(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let original = link(8001, "user-5");
    assert_eq!(
        store.links().link(&original).await.unwrap(),
        LinkOutcome::Linked(original.clone())
    );
    let token = mint(store, "user-5", now, 600).await;
    let mut a = attempt(&token, 400, 8001, now);
    a.chat_id = 123_456;
    a.username = None;
    let (l, already) = linked(store.connect_flow().consume_and_link(&a).await.unwrap());
    assert!(already);
    let expected = Link {
        chat_id: Some(123_456),
        username: None,
        ..original
    };
    assert_eq!(l, expected);
    assert_eq!(
        store.links().get_by_user(&uid("user-5")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.links().get_by_telegram(tg(8001)).await.unwrap(),
        Some(expected)
    );
    assert_eq!(consume(store, &token, now).await, None);
}

pub async fn a_dead_attempts_claim_does_not_block_a_retry(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let token = mint(store, "user-6", now, 600).await;
    let a = attempt(&token, 500, 9001, now);
    // A live IN_PROGRESS claim of this update (another attempt at work): not ours to redo.
    let times = ClaimTimes {
        in_progress_secs: 30,
        retain_secs: RETAIN,
    };
    let ClaimOutcome::Acquired(_) = store.claims().begin(&a.claim, now, times).await.unwrap()
    else {
        panic!("claim")
    };
    assert_eq!(
        store.connect_flow().consume_and_link(&a).await.unwrap(),
        ConnectOutcome::Duplicate
    );
    // Once that attempt is past its in-progress expiry, the update is handled.
    let retry = ConnectAttempt {
        now: now.plus_secs(30),
        ..a
    };
    linked(store.connect_flow().consume_and_link(&retry).await.unwrap());
    assert_eq!(
        store
            .claims()
            .status(&retry.claim, retry.now)
            .await
            .unwrap(),
        Some(ClaimStatus::Completed)
    );
}

pub async fn sixteen_updates_with_one_token_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.connect_flow();
    let second = fx.second_client().await.connect_flow();
    let now = UnixTime::now();
    for round in 0..4_i64 {
        let user = format!("user-c{round}");
        let token = mint(&fx.store, &user, now, 600).await;
        let mut tasks = Vec::new();
        for i in 0..16_i64 {
            let port: Arc<dyn ConnectFlow> = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            // Different updates from different Telegram users, one token.
            let a = attempt(&token, 1000 * round + i, 10_000 * (round + 1) + i, now);
            tasks.push(tokio::spawn(async move { port.consume_and_link(&a).await }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap().unwrap() {
                ConnectOutcome::Linked { link, .. } => winners.push(link),
                ConnectOutcome::TokenInvalid => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one update links");
        let links = fx.store.links();
        assert_eq!(
            links.get_by_user(&uid(&user)).await.unwrap(),
            Some(winners[0].clone())
        );
        for i in 0..16 {
            let found = links
                .get_by_telegram(tg(10_000 * (round + 1) + i))
                .await
                .unwrap();
            assert_eq!(
                found.is_some(),
                winners[0].telegram_user_id == tg(10_000 * (round + 1) + i)
            );
        }
    }
}

pub async fn one_update_delivered_concurrently_links_once(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.connect_flow();
    let second = fx.second_client().await.connect_flow();
    let now = UnixTime::now();
    let token = mint(&fx.store, "user-d", now, 600).await;
    let a = Arc::new(attempt(&token, 77_777, 11_001, now));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port: Arc<dyn ConnectFlow> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let a = a.clone();
        tasks.push(tokio::spawn(async move { port.consume_and_link(&a).await }));
    }
    let mut linked_count = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            ConnectOutcome::Linked { .. } => linked_count += 1,
            ConnectOutcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(linked_count, 1);
}
