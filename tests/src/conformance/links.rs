//! `Links`: both ways, atomic, idempotent for the same pair, refusing either side linked
//! elsewhere, consistent across clients and under concurrency.

use std::sync::Arc;

use tglink_shared::{
    ids::{TelegramUserId, UserId},
    store::{
        Link, LinkOutcome, LinkSide, LinkSource, Links, Reachability, Unreachable,
        UnreachableReason,
    },
    time::UnixTime,
};

use crate::fixtures::Backend;

pub fn tg(id: i64) -> TelegramUserId {
    TelegramUserId::new(id).unwrap()
}

pub fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub fn link(telegram: i64, user: &str) -> Link {
    Link {
        telegram_user_id: tg(telegram),
        user_id: uid(user),
        chat_id: Some(telegram),
        username: Some(format!("tg_{telegram}")),
        source: LinkSource::MiniApp,
        linked_at: UnixTime(1_700_000_000),
        unreachable: None,
    }
}

pub async fn link_both_ways_and_unlink(backend: Backend) {
    let fx = backend.store().await;
    let links = fx.store.links();
    let other = fx.second_client().await.links();
    let l = link(1001, "user-a");
    assert_eq!(
        links.link(&l).await.unwrap(),
        LinkOutcome::Linked(l.clone())
    );
    // Both items, read through an independently built client.
    assert_eq!(
        other.get_by_telegram(tg(1001)).await.unwrap(),
        Some(l.clone())
    );
    assert_eq!(
        other.get_by_user(&uid("user-a")).await.unwrap(),
        Some(l.clone())
    );
    assert_eq!(links.get_by_telegram(tg(1002)).await.unwrap(), None);
    assert_eq!(links.get_by_user(&uid("user-b")).await.unwrap(), None);

    // Unlinking by the app user removes both items.
    assert_eq!(
        other.unlink_by_user(&uid("user-a")).await.unwrap(),
        Some(l.clone())
    );
    assert_eq!(links.get_by_telegram(tg(1001)).await.unwrap(), None);
    assert_eq!(links.get_by_user(&uid("user-a")).await.unwrap(), None);
    assert_eq!(links.unlink_by_user(&uid("user-a")).await.unwrap(), None);

    // Unlinking by the Telegram user too; then both sides are free to link anew.
    let bare = Link {
        chat_id: None,
        username: None,
        source: LinkSource::Bot,
        ..link(1001, "user-a")
    };
    assert_eq!(
        links.link(&bare).await.unwrap(),
        LinkOutcome::Linked(bare.clone())
    );
    assert_eq!(
        links.get_by_user(&uid("user-a")).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        links.unlink_by_telegram(tg(1001)).await.unwrap(),
        Some(bare)
    );
    assert_eq!(links.get_by_user(&uid("user-a")).await.unwrap(), None);
    assert_eq!(links.unlink_by_telegram(tg(1001)).await.unwrap(), None);
    let moved = link(1001, "user-b");
    assert_eq!(
        links.link(&moved).await.unwrap(),
        LinkOutcome::Linked(moved)
    );
}

pub async fn same_pair_is_idempotent_other_pairs_conflict(backend: Backend) {
    let fx = backend.store().await;
    let links = fx.store.links();
    let original = link(2001, "user-a");
    links.link(&original).await.unwrap();

    // The same pair again (even with other details) changes nothing.
    let again = Link {
        chat_id: Some(99),
        username: None,
        source: LinkSource::Bot,
        unreachable: None,
        linked_at: UnixTime(1_800_000_000),
        ..original.clone()
    };
    assert_eq!(
        links.link(&again).await.unwrap(),
        LinkOutcome::AlreadyLinked(original.clone())
    );
    assert_eq!(
        links.get_by_user(&uid("user-a")).await.unwrap(),
        Some(original.clone())
    );

    // The Telegram user is taken, or the app user is: refused, nothing written.
    assert_eq!(
        links.link(&link(2001, "user-b")).await.unwrap(),
        LinkOutcome::Conflict(LinkSide::Telegram)
    );
    assert_eq!(
        links.link(&link(2002, "user-a")).await.unwrap(),
        LinkOutcome::Conflict(LinkSide::User)
    );
    links.link(&link(2003, "user-c")).await.unwrap();
    // Both sides taken: the Telegram side is reported.
    assert_eq!(
        links.link(&link(2001, "user-c")).await.unwrap(),
        LinkOutcome::Conflict(LinkSide::Telegram)
    );
    assert_eq!(links.get_by_user(&uid("user-b")).await.unwrap(), None);
    assert_eq!(links.get_by_telegram(tg(2002)).await.unwrap(), None);
    assert_eq!(
        links.get_by_telegram(tg(2001)).await.unwrap(),
        Some(original)
    );
}

pub async fn concurrent_links_of_one_user_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.links();
    let second = fx.second_client().await.links();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port: Arc<dyn Links> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            port.link(&link(3000 + i, "user-one")).await
        }));
    }
    let mut winner = None;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            LinkOutcome::Linked(l) => {
                assert!(winner.is_none(), "two links for one user");
                winner = Some(l);
            }
            LinkOutcome::Conflict(LinkSide::User) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let winner = winner.expect("one link wins");
    assert_eq!(
        first.get_by_user(&uid("user-one")).await.unwrap(),
        Some(winner.clone())
    );
    for i in 0..16 {
        let found = first.get_by_telegram(tg(3000 + i)).await.unwrap();
        assert_eq!(found.is_some(), winner.telegram_user_id == tg(3000 + i));
    }
}

pub async fn concurrent_unlinks_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.links();
    let second = fx.second_client().await.links();
    first.link(&link(4001, "user-u")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let port: Arc<dyn Links> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            if i % 4 < 2 {
                port.unlink_by_user(&uid("user-u")).await
            } else {
                port.unlink_by_telegram(tg(4001)).await
            }
        }));
    }
    let mut removed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_some() {
            removed += 1;
        }
    }
    assert_eq!(removed, 1);
    assert_eq!(first.get_by_user(&uid("user-u")).await.unwrap(), None);
    assert_eq!(first.get_by_telegram(tg(4001)).await.unwrap(), None);
}

/// Unreachable and reachable again, seen through both items by another client; the first
/// `since` is kept; a relink of the same pair resets it; an unlinked user is `None`.
pub async fn reachability_is_recorded_on_both_sides(backend: Backend) {
    let fx = backend.store().await;
    let links = fx.store.links();
    let other = fx.second_client().await.links();
    let mut l = link(3001, "user-reach");
    l.chat_id = None;
    links.link(&l).await.unwrap();
    let blocked = Reachability::Unreachable {
        reason: UnreachableReason::BotBlocked,
        now: UnixTime(100),
    };
    let marked = links
        .set_reachability(tg(3001), blocked)
        .await
        .unwrap()
        .unwrap();
    let expected = Some(Unreachable {
        reason: UnreachableReason::BotBlocked,
        since: UnixTime(100),
    });
    assert_eq!(marked.unreachable, expected);
    let gone = Reachability::Unreachable {
        reason: UnreachableReason::ChatNotFound,
        now: UnixTime(200),
    };
    other.set_reachability(tg(3001), gone).await.unwrap();
    let by_user = other
        .get_by_user(&uid("user-reach"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        by_user.unreachable,
        Some(Unreachable {
            reason: UnreachableReason::ChatNotFound,
            since: UnixTime(100),
        })
    );
    assert_eq!(
        other.get_by_telegram(tg(3001)).await.unwrap().unwrap(),
        by_user
    );
    // Reachable again, with the chat recorded (a Mini App link learns its chat).
    let back = Reachability::Reachable {
        chat_id: Some(3001),
    };
    links.set_reachability(tg(3001), back).await.unwrap();
    let read = other
        .get_by_user(&uid("user-reach"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&read.unreachable, read.chat_id), (&None, Some(3001)));
    assert_eq!(
        other.get_by_telegram(tg(3001)).await.unwrap().unwrap(),
        read
    );
    // Not linked: nothing to mark.
    assert_eq!(links.set_reachability(tg(3999), back).await.unwrap(), None);
}
