//! `WorkerTokens`: per-user listing, lookup by hash, revocation seen at once by every client,
//! retention of revoked tokens, one winner among concurrent revokes.

use std::sync::Arc;

use tglink_shared::{
    ids::UserId,
    store::{
        WorkerTokenRecord, WorkerTokens,
        worker_tokens::{REVOKED_RETENTION_SECS, RevokeOutcome},
    },
    time::UnixTime,
    vault::{WorkerToken, new_worker_token_id},
};

use crate::fixtures::Backend;

fn token(user: &str, name: &str, created_at: UnixTime) -> (WorkerToken, WorkerTokenRecord) {
    let token = WorkerToken::mint();
    let record = WorkerTokenRecord {
        id: new_worker_token_id(),
        hash: token.hash(),
        user_id: UserId::parse(user).unwrap(),
        name: name.to_owned(),
        created_at,
        revoked_at: None,
    };
    (token, record)
}

pub async fn tokens_are_listed_per_user_and_revoked(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.worker_tokens();
    let now = UnixTime(1_000_000);
    let alice = UserId::parse("alice").unwrap();
    let bob = UserId::parse("bob").unwrap();
    let (t1, r1) = token("alice", "render worker", now);
    let (t2, r2) = token("alice", "cloudflare", now.plus_secs(1));
    let (t3, r3) = token("bob", "bob's", now);
    for r in [&r1, &r2, &r3] {
        port.insert(r).await.unwrap();
    }
    assert_eq!(
        port.lookup(&t1.hash(), now).await.unwrap(),
        Some(r1.clone())
    );
    assert_eq!(
        port.lookup(&t3.hash(), now).await.unwrap(),
        Some(r3.clone())
    );
    assert_eq!(
        port.lookup(&WorkerToken::mint().hash(), now).await.unwrap(),
        None
    );
    assert_eq!(
        port.list(&alice, now).await.unwrap(),
        vec![r1.clone(), r2.clone()]
    );
    assert_eq!(port.list(&bob, now).await.unwrap(), vec![r3.clone()]);

    // Bob cannot revoke Alice's token, nor can anyone revoke an unknown id.
    assert_eq!(
        port.revoke(&bob, &r1.id, now).await.unwrap(),
        RevokeOutcome::NotFound
    );
    assert_eq!(
        port.revoke(&alice, &new_worker_token_id(), now)
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
    assert_eq!(
        port.lookup(&t1.hash(), now).await.unwrap(),
        Some(r1.clone())
    );

    let later = now.plus_secs(10);
    assert_eq!(
        port.revoke(&alice, &r1.id, later).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(port.lookup(&t1.hash(), later).await.unwrap(), None);
    assert_eq!(
        port.lookup(&t2.hash(), later).await.unwrap(),
        Some(r2.clone())
    );
    assert_eq!(
        port.revoke(&alice, &r1.id, later).await.unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    let listed = port.list(&alice, later).await.unwrap();
    assert_eq!(
        listed,
        vec![
            WorkerTokenRecord {
                revoked_at: Some(later),
                ..r1.clone()
            },
            r2.clone()
        ]
    );

    // Revoked tokens stay listed for their retention, then disappear.
    let gone = later.plus_secs(REVOKED_RETENTION_SECS);
    assert_eq!(port.list(&alice, gone).await.unwrap(), vec![r2.clone()]);
    assert_eq!(port.lookup(&t1.hash(), gone).await.unwrap(), None);
    assert_eq!(
        port.revoke(&alice, &r1.id, gone).await.unwrap(),
        RevokeOutcome::NotFound
    );
}

pub async fn revocation_is_seen_by_another_client_at_once(backend: Backend) {
    let fx = backend.store().await;
    let a = fx.store.worker_tokens();
    let b = fx.second_client().await.worker_tokens();
    let now = UnixTime(2_000_000);
    let (t, r) = token("carol", "w", now);
    a.insert(&r).await.unwrap();
    assert_eq!(b.lookup(&t.hash(), now).await.unwrap(), Some(r.clone()));
    assert_eq!(
        a.revoke(&r.user_id, &r.id, now).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(b.lookup(&t.hash(), now).await.unwrap(), None);
}

pub async fn concurrent_revokes_have_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.worker_tokens();
    let second = fx.second_client().await.worker_tokens();
    let now = UnixTime(3_000_000);
    let (t, r) = token("dave", "w", now);
    first.insert(&r).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port: Arc<dyn WorkerTokens> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (user, id) = (r.user_id.clone(), r.id.clone());
        tasks.push(tokio::spawn(
            async move { port.revoke(&user, &id, now).await },
        ));
    }
    let mut revoked = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RevokeOutcome::Revoked => revoked += 1,
            RevokeOutcome::AlreadyRevoked => {}
            RevokeOutcome::NotFound => panic!("the token exists"),
        }
    }
    assert_eq!(revoked, 1);
    assert_eq!(first.lookup(&t.hash(), now).await.unwrap(), None);
}
