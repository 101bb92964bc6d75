//! `Blocks`: a block removes the link atomically and refuses every later link (direct, through
//! the bot's `/start`), blocking twice keeps the first block, unblocking frees the user, and a
//! block racing links ends blocked with no link, never a half-written one.

use std::sync::Arc;

use tglink_shared::{
    ids::{TelegramUserId, UserId},
    store::{
        Block, BlockOutcome, ConnectAttempt, ConnectOutcome, ConnectTokenRecord, LinkOutcome,
        Links, Store,
    },
    time::UnixTime,
    token::OneTimeToken,
};

use super::links::{link, tg, uid};
use crate::fixtures::Backend;

pub fn block_of(telegram: i64, admin: &str, at: u64) -> Block {
    Block {
        telegram_user_id: tg(telegram),
        blocked_at: UnixTime(at),
        blocked_by: uid(admin),
    }
}

async fn assert_unlinked(store: &Store, telegram: TelegramUserId, user: &UserId) {
    assert_eq!(store.links().get_by_telegram(telegram).await.unwrap(), None);
    assert_eq!(store.links().get_by_user(user).await.unwrap(), None);
}

pub async fn block_revokes_the_link_and_refuses_links(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let other = fx.second_client().await;
    let l = link(12_001, "user-a");
    store.links().link(&l).await.unwrap();

    let first = block_of(12_001, "admin-1", 1_700_000_000);
    assert_eq!(
        store.blocks().block(&first).await.unwrap(),
        BlockOutcome {
            block: first.clone(),
            already: false,
            revoked: Some(l.clone()),
        }
    );
    // Both link items are gone and the block is there, seen by an independent client.
    assert_unlinked(&other, tg(12_001), &uid("user-a")).await;
    assert_eq!(
        other.blocks().get_block(tg(12_001)).await.unwrap(),
        Some(first.clone())
    );
    // Nobody can be linked to the blocked user; the app user is free for others.
    assert_eq!(
        other.links().link(&link(12_001, "user-b")).await.unwrap(),
        LinkOutcome::Blocked
    );
    assert_eq!(
        store.links().link(&link(12_001, "user-a")).await.unwrap(),
        LinkOutcome::Blocked
    );
    assert_unlinked(store, tg(12_001), &uid("user-b")).await;
    let free = link(12_002, "user-a");
    assert_eq!(
        store.links().link(&free).await.unwrap(),
        LinkOutcome::Linked(free)
    );

    // Blocking again keeps the first block and removes nothing.
    assert_eq!(
        other
            .blocks()
            .block(&block_of(12_001, "admin-2", 1_800_000_000))
            .await
            .unwrap(),
        BlockOutcome {
            block: first.clone(),
            already: true,
            revoked: None,
        }
    );
    // A user without a link is blocked all the same.
    let bare = block_of(12_003, "admin-1", 1_700_000_001);
    assert_eq!(
        store.blocks().block(&bare).await.unwrap(),
        BlockOutcome {
            block: bare,
            already: false,
            revoked: None,
        }
    );
    assert_eq!(store.blocks().get_block(tg(12_004)).await.unwrap(), None);

    // Unblocking returns the block once; then links work again.
    assert_eq!(
        store.blocks().unblock(tg(12_001)).await.unwrap(),
        Some(first)
    );
    assert_eq!(other.blocks().unblock(tg(12_001)).await.unwrap(), None);
    assert_eq!(other.blocks().get_block(tg(12_001)).await.unwrap(), None);
    let again = link(12_001, "user-b");
    assert_eq!(
        other.links().link(&again).await.unwrap(),
        LinkOutcome::Linked(again)
    );
}

pub async fn blocked_users_cannot_connect_through_the_bot(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let token = OneTimeToken::mint();
    store
        .connect_tokens()
        .insert(&ConnectTokenRecord {
            hash: token.hash(),
            user_id: uid("user-x"),
            created_at: now,
            expires_at: now.plus_secs(600),
            attempt: tglink_shared::store::connect_tokens::new_attempt(),
            account: None,
        })
        .await
        .unwrap();
    store
        .blocks()
        .block(&block_of(12_101, "admin", now.secs()))
        .await
        .unwrap();
    let attempt = ConnectAttempt {
        token: token.hash(),
        claim: tglink_shared::store::ClaimKey::telegram_update("tglink_test_bot", 4242),
        claim_retain_secs: 86_400,
        telegram_user_id: tg(12_101),
        chat_id: 12_101,
        username: None,
        now,
    };
    assert_eq!(
        store
            .connect_flow()
            .consume_and_link(&attempt)
            .await
            .unwrap(),
        ConnectOutcome::Blocked
    );
    // Nothing written: no claim, no link, the token unconsumed.
    assert_eq!(
        store.claims().status(&attempt.claim, now).await.unwrap(),
        None
    );
    assert_unlinked(store, tg(12_101), &uid("user-x")).await;
    // Once unblocked, the very same update links.
    store.blocks().unblock(tg(12_101)).await.unwrap();
    assert!(matches!(
        store
            .connect_flow()
            .consume_and_link(&attempt)
            .await
            .unwrap(),
        ConnectOutcome::Linked { .. }
    ));
}

pub async fn block_racing_links_ends_blocked_and_unlinked(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.links();
    let second = fx.second_client().await;
    for round in 0..4_i64 {
        let telegram = 12_200 + round;
        let mut tasks = Vec::new();
        for i in 0..16_i64 {
            let port: Arc<dyn Links> = if i % 2 == 0 {
                first.clone()
            } else {
                second.links()
            };
            let l = link(telegram, &format!("user-r{round}-{i}"));
            tasks.push(tokio::spawn(async move { port.link(&l).await }));
        }
        let blocks = second.blocks();
        let blocker = tokio::spawn(async move {
            blocks
                .block(&block_of(telegram, "admin", 1_700_000_000))
                .await
        });
        let mut linked = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                LinkOutcome::Linked(_) => linked += 1,
                LinkOutcome::Conflict(_) | LinkOutcome::Blocked => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(linked <= 1);
        let outcome = blocker.await.unwrap().unwrap();
        assert!(!outcome.already);
        // Whatever the order, the user ends blocked with no link on either side.
        assert!(
            fx.store
                .blocks()
                .get_block(tg(telegram))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(first.get_by_telegram(tg(telegram)).await.unwrap(), None);
        for i in 0..16 {
            assert_eq!(
                first
                    .get_by_user(&uid(&format!("user-r{round}-{i}")))
                    .await
                    .unwrap(),
                None,
                "round {round}: no half-written link"
            );
        }
        // A link that won landed before the block, which revoked it.
        assert_eq!(outcome.revoked.is_some(), linked == 1, "round {round}");
    }
}

pub async fn concurrent_unblocks_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.blocks();
    let second = fx.second_client().await.blocks();
    let block = block_of(12_301, "admin", 1_700_000_000);
    first.block(&block).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let port = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move { port.unblock(tg(12_301)).await }));
    }
    let mut removed = Vec::new();
    for task in tasks {
        if let Some(b) = task.await.unwrap().unwrap() {
            removed.push(b);
        }
    }
    assert_eq!(removed, [block], "exactly one unblock removes the block");
    assert_eq!(first.get_block(tg(12_301)).await.unwrap(), None);
}
