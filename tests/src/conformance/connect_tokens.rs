//! `ConnectTokens`: one-time, expiring, across clients. A token is consumed only by the connect
//! flow (`/start <token>`), so that is how these tests consume one; one winner among concurrent
//! consumers is `connect_flow::sixteen_updates_with_one_token_one_winner`.

use std::sync::atomic::{AtomicI64, Ordering};

use tglink_shared::{
    ids::UserId,
    store::{
        ClaimKey, ConnectAttempt, ConnectOutcome, ConnectTokenRecord, Store,
        connect_tokens::new_attempt,
    },
    time::UnixTime,
    token::{OneTimeToken, TokenHash},
};

use super::links::tg;
use crate::fixtures::Backend;

fn record(user: &str, now: UnixTime, ttl: u64) -> (OneTimeToken, ConnectTokenRecord) {
    let token = OneTimeToken::mint();
    let record = ConnectTokenRecord {
        hash: token.hash(),
        user_id: UserId::parse(user).unwrap(),
        created_at: now,
        expires_at: now.plus_secs(ttl),
        attempt: new_attempt(),
        account: None,
    };
    (token, record)
}

/// Consumes the token as the bot does: `/start <token>` in a new update from a Telegram user of
/// its own (no other call uses it). The app user the token named, or `None` when it is unknown,
/// expired or used up. The link it makes is removed again, so that another token of the same
/// app user can be consumed next.
pub async fn consume(store: &Store, hash: &TokenHash, now: UnixTime) -> Option<UserId> {
    static NEXT: AtomicI64 = AtomicI64::new(1);
    let telegram = 900_000_000 + NEXT.fetch_add(1, Ordering::Relaxed);
    let attempt = ConnectAttempt {
        token: hash.clone(),
        claim: ClaimKey::telegram_update("tglink_test_bot", telegram),
        claim_retain_secs: 86_400,
        telegram_user_id: tg(telegram),
        chat_id: telegram,
        username: None,
        now,
    };
    let outcome = store
        .connect_flow()
        .consume_and_link(&attempt)
        .await
        .expect("store reachable");
    match outcome {
        ConnectOutcome::Linked { link, .. } => {
            store.links().unlink_by_user(&link.user_id).await.unwrap();
            Some(link.user_id)
        }
        ConnectOutcome::TokenInvalid => None,
        other => panic!("consuming a connect token: {other:?}"),
    }
}

pub async fn consumed_exactly_once(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let (token, rec) = record("user-1", now, 600);
    store.connect_tokens().insert(&rec).await.unwrap();
    assert_eq!(
        consume(store, &token.hash(), now).await,
        Some(UserId::parse("user-1").unwrap())
    );
    assert_eq!(consume(store, &token.hash(), now).await, None);
    let unknown = OneTimeToken::mint();
    assert_eq!(consume(store, &unknown.hash(), now).await, None);
}

pub async fn expired_token_is_not_consumable(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let (a, rec_a) = record("user-a", now, 10);
    let (b, rec_b) = record("user-b", now, 10);
    store.connect_tokens().insert(&rec_a).await.unwrap();
    store.connect_tokens().insert(&rec_b).await.unwrap();
    // At the expiry instant the token is already expired (expires_at > now is required) …
    assert_eq!(consume(store, &a.hash(), now.plus_secs(10)).await, None);
    assert_eq!(consume(store, &a.hash(), now.plus_secs(3600)).await, None);
    // … one second before, it is still good.
    assert_eq!(
        consume(store, &b.hash(), now.plus_secs(9)).await,
        Some(UserId::parse("user-b").unwrap())
    );
}

pub async fn written_by_one_client_consumed_by_another(backend: Backend) {
    let fx = backend.store().await;
    let instance_a = &fx.store;
    let instance_b = fx.second_client().await;
    let now = UnixTime::now();
    let (token, rec) = record("user-x", now, 600);
    instance_a.connect_tokens().insert(&rec).await.unwrap();
    assert_eq!(
        consume(&instance_b, &token.hash(), now).await,
        Some(UserId::parse("user-x").unwrap())
    );
    assert_eq!(consume(instance_a, &token.hash(), now).await, None);
}

/// The same insert again (the SDK retrying a write whose answer was lost) succeeds and changes
/// nothing; another insert under the same hash (another attempt) is refused and changes nothing.
pub async fn a_retried_insert_succeeds(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let (token, rec) = record("user-r", now, 600);
    store.connect_tokens().insert(&rec).await.unwrap();
    store
        .connect_tokens()
        .insert(&rec)
        .await
        .expect("a retry of the same insert succeeds");
    let other = ConnectTokenRecord {
        user_id: UserId::parse("user-evil").unwrap(),
        attempt: new_attempt(),
        account: None,
        ..rec.clone()
    };
    assert!(store.connect_tokens().insert(&other).await.is_err());
    assert_eq!(
        consume(store, &token.hash(), now).await,
        Some(UserId::parse("user-r").unwrap())
    );
    // A late retry after the token was used does not bring it back.
    store.connect_tokens().insert(&rec).await.ok();
    assert_eq!(consume(store, &token.hash(), now).await, None);
}

/// The account label stored at mint time comes back with the link; a burned token links
/// nobody, and burning is idempotent (unknown or used tokens are not burned again).
pub async fn account_label_round_trips_and_burn_consumes(backend: Backend) {
    let fx = backend.store().await;
    let store = &fx.store;
    let now = UnixTime::now();
    let (token, mut rec) = record("user-l", now, 600);
    rec.account = Some("Ann Lee".into());
    store.connect_tokens().insert(&rec).await.unwrap();
    static NEXT: AtomicI64 = AtomicI64::new(1);
    let telegram = 950_000_000 + NEXT.fetch_add(1, Ordering::Relaxed);
    let attempt = ConnectAttempt {
        token: token.hash(),
        claim: ClaimKey::telegram_update("tglink_test_bot", telegram),
        claim_retain_secs: 86_400,
        telegram_user_id: tg(telegram),
        chat_id: telegram,
        username: None,
        now,
    };
    match store
        .connect_flow()
        .consume_and_link(&attempt)
        .await
        .unwrap()
    {
        ConnectOutcome::Linked { account, .. } => assert_eq!(account.as_deref(), Some("Ann Lee")),
        other => panic!("{other:?}"),
    }
    // Used: not burned again.
    assert!(
        !store
            .connect_tokens()
            .burn(&token.hash(), now)
            .await
            .unwrap()
    );

    let (exposed, rec) = record("user-b", now, 600);
    store.connect_tokens().insert(&rec).await.unwrap();
    assert!(
        store
            .connect_tokens()
            .burn(&exposed.hash(), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .connect_tokens()
            .burn(&exposed.hash(), now)
            .await
            .unwrap()
    );
    assert_eq!(consume(store, &exposed.hash(), now).await, None);
    assert!(
        !store
            .connect_tokens()
            .burn(&OneTimeToken::mint().hash(), now)
            .await
            .unwrap()
    );
}
