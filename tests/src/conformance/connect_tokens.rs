//! `ConnectTokens`: one-time, expiring, exactly one winner under concurrency, across clients.

use std::sync::Arc;

use tglink_shared::{
    ids::UserId,
    store::{ConnectTokenRecord, ConnectTokens},
    time::UnixTime,
    token::{OneTimeToken, TokenHash},
};

use crate::fixtures::Backend;

fn record(user: &str, now: UnixTime, ttl: u64) -> (OneTimeToken, ConnectTokenRecord) {
    let token = OneTimeToken::mint();
    let record = ConnectTokenRecord {
        hash: token.hash(),
        user_id: UserId::parse(user).unwrap(),
        created_at: now,
        expires_at: now.plus_secs(ttl),
    };
    (token, record)
}

pub async fn consumed_exactly_once(backend: Backend) {
    let fx = backend.store().await;
    let tokens = fx.store.connect_tokens();
    let now = UnixTime::now();
    let (token, rec) = record("user-1", now, 600);
    tokens.insert(&rec).await.unwrap();
    assert_eq!(
        tokens.consume(&token.hash(), now).await.unwrap(),
        Some(UserId::parse("user-1").unwrap())
    );
    assert_eq!(tokens.consume(&token.hash(), now).await.unwrap(), None);
    let unknown = OneTimeToken::mint();
    assert_eq!(tokens.consume(&unknown.hash(), now).await.unwrap(), None);
}

pub async fn expired_token_is_not_consumable(backend: Backend) {
    let fx = backend.store().await;
    let tokens = fx.store.connect_tokens();
    let now = UnixTime::now();
    let (a, rec_a) = record("user-a", now, 10);
    let (b, rec_b) = record("user-b", now, 10);
    tokens.insert(&rec_a).await.unwrap();
    tokens.insert(&rec_b).await.unwrap();
    // At the expiry instant the token is already expired (expires_at > now is required) …
    assert_eq!(
        tokens.consume(&a.hash(), now.plus_secs(10)).await.unwrap(),
        None
    );
    assert_eq!(
        tokens
            .consume(&a.hash(), now.plus_secs(3600))
            .await
            .unwrap(),
        None
    );
    // … one second before, it is still good.
    assert_eq!(
        tokens.consume(&b.hash(), now.plus_secs(9)).await.unwrap(),
        Some(UserId::parse("user-b").unwrap())
    );
}

pub async fn sixty_four_concurrent_consumers_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.connect_tokens();
    let second = fx.second_client().await.connect_tokens();
    let now = UnixTime::now();
    for round in 0..20 {
        let (token, rec) = record(&format!("user-{round}"), now, 600);
        first.insert(&rec).await.unwrap();
        let hash: Arc<TokenHash> = Arc::new(token.hash());
        let mut tasks = Vec::new();
        for i in 0..64 {
            // Half the consumers go through an independently built client.
            let port: Arc<dyn ConnectTokens> = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let hash = hash.clone();
            tasks.push(tokio::spawn(async move { port.consume(&hash, now).await }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one consumer must win");
    }
}

pub async fn written_by_one_client_consumed_by_another(backend: Backend) {
    let fx = backend.store().await;
    let instance_a = fx.store.connect_tokens();
    let instance_b = fx.second_client().await.connect_tokens();
    let now = UnixTime::now();
    let (token, rec) = record("user-x", now, 600);
    instance_a.insert(&rec).await.unwrap();
    assert_eq!(
        instance_b.consume(&token.hash(), now).await.unwrap(),
        Some(UserId::parse("user-x").unwrap())
    );
    assert_eq!(instance_a.consume(&token.hash(), now).await.unwrap(), None);
}
