//! `Claims`: Powertools-style IN_PROGRESS → COMPLETED, takeover after a dead attempt, release,
//! retention, one-write claims, one winner under concurrency.

use std::sync::Arc;

use tglink_shared::{
    store::{ClaimKey, ClaimOnce, ClaimOutcome, ClaimStatus, ClaimTimes, Claims},
    time::UnixTime,
};

use crate::fixtures::Backend;

const TIMES: ClaimTimes = ClaimTimes {
    in_progress_secs: 30,
    retain_secs: 3600,
};

fn acquired(outcome: ClaimOutcome) -> tglink_shared::store::ClaimLease {
    match outcome {
        ClaimOutcome::Acquired(lease) => lease,
        other => panic!("expected the claim, got {other:?}"),
    }
}

pub async fn begin_complete_then_duplicate(backend: Backend) {
    let fx = backend.store().await;
    let claims = fx.store.claims();
    let other = fx.second_client().await.claims();
    let now = UnixTime::now();
    let key = ClaimKey::telegram_update("Some_Bot", 77);
    assert_eq!(key.as_str(), "update#some_bot:77");
    assert_eq!(claims.status(&key, now).await.unwrap(), None);

    let lease = acquired(claims.begin(&key, now, TIMES).await.unwrap());
    assert_eq!(lease.in_progress_until, now.plus_secs(30));
    assert_eq!(
        other.status(&key, now).await.unwrap(),
        Some(ClaimStatus::InProgress {
            until: now.plus_secs(30)
        })
    );
    assert_eq!(
        other.begin(&key, now, TIMES).await.unwrap(),
        ClaimOutcome::InProgress
    );

    claims.complete(&lease, now, 3600).await.unwrap();
    assert_eq!(
        other.status(&key, now).await.unwrap(),
        Some(ClaimStatus::Completed)
    );
    assert_eq!(
        other.begin(&key, now, TIMES).await.unwrap(),
        ClaimOutcome::Completed
    );
    // Long after the in-progress window, a completed claim still holds.
    assert_eq!(
        other.begin(&key, now.plus_secs(3599), TIMES).await.unwrap(),
        ClaimOutcome::Completed
    );
    // Releasing a completed claim does nothing.
    claims.release(&lease).await.unwrap();
    assert_eq!(
        claims.status(&key, now).await.unwrap(),
        Some(ClaimStatus::Completed)
    );

    // Other keys (same update id of another bot, other kinds) are independent.
    let other_bot = ClaimKey::telegram_update("other_bot", 77);
    acquired(claims.begin(&other_bot, now, TIMES).await.unwrap());
    acquired(
        claims
            .begin(&ClaimKey::new("initdata", "77"), now, TIMES)
            .await
            .unwrap(),
    );
}

pub async fn dead_attempt_is_taken_over_after_in_progress_expiry(backend: Backend) {
    let fx = backend.store().await;
    let claims = fx.store.claims();
    let now = UnixTime::now();
    let key = ClaimKey::new("update", "bot:1");
    let crashed = acquired(claims.begin(&key, now, TIMES).await.unwrap());
    assert_eq!(
        claims.begin(&key, now.plus_secs(29), TIMES).await.unwrap(),
        ClaimOutcome::InProgress
    );
    let later = now.plus_secs(30);
    let retry = acquired(claims.begin(&key, later, TIMES).await.unwrap());
    assert!(retry.in_progress_until > crashed.in_progress_until);
    // The crashed attempt waking up cannot release the new holder's claim.
    claims.release(&crashed).await.unwrap();
    assert_eq!(
        claims.status(&key, later).await.unwrap(),
        Some(ClaimStatus::InProgress {
            until: retry.in_progress_until
        })
    );
    claims.complete(&retry, later, 3600).await.unwrap();
    assert_eq!(
        claims.begin(&key, later, TIMES).await.unwrap(),
        ClaimOutcome::Completed
    );
}

pub async fn released_claim_can_be_retried_at_once(backend: Backend) {
    let fx = backend.store().await;
    let claims = fx.store.claims();
    let now = UnixTime::now();
    let key = ClaimKey::new("update", "bot:2");
    let lease = acquired(claims.begin(&key, now, TIMES).await.unwrap());
    claims.release(&lease).await.unwrap();
    assert_eq!(claims.status(&key, now).await.unwrap(), None);
    acquired(claims.begin(&key, now, TIMES).await.unwrap());
}

pub async fn claims_end_with_their_retention(backend: Backend) {
    let fx = backend.store().await;
    let claims = fx.store.claims();
    let now = UnixTime::now();
    let key = ClaimKey::new("update", "bot:3");
    let lease = acquired(claims.begin(&key, now, TIMES).await.unwrap());
    claims.complete(&lease, now, 100).await.unwrap();
    assert_eq!(
        claims.begin(&key, now.plus_secs(99), TIMES).await.unwrap(),
        ClaimOutcome::Completed
    );
    // At `expires_at` the claim is gone even if TTL has not deleted the item yet.
    let end = now.plus_secs(100);
    assert_eq!(claims.status(&key, end).await.unwrap(), None);
    acquired(claims.begin(&key, end, TIMES).await.unwrap());
}

pub async fn claim_once_is_one_write_and_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.claims();
    let second = fx.second_client().await.claims();
    let now = UnixTime::now();
    let key = ClaimKey::new("initdata", "fingerprint-1");
    assert_eq!(
        first.claim_once(&key, now, 60).await.unwrap(),
        ClaimOnce::Claimed
    );
    assert_eq!(
        second
            .claim_once(&key, now.plus_secs(59), 60)
            .await
            .unwrap(),
        ClaimOnce::AlreadyClaimed
    );
    assert_eq!(
        second.status(&key, now).await.unwrap(),
        Some(ClaimStatus::Completed)
    );
    assert_eq!(
        second
            .claim_once(&key, now.plus_secs(60), 60)
            .await
            .unwrap(),
        ClaimOnce::Claimed
    );
    // An in-progress claim also counts as claimed.
    let busy = ClaimKey::new("initdata", "fingerprint-2");
    acquired(first.begin(&busy, now, TIMES).await.unwrap());
    assert_eq!(
        second.claim_once(&busy, now, 60).await.unwrap(),
        ClaimOnce::AlreadyClaimed
    );
}

pub async fn concurrent_begins_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.claims();
    let second = fx.second_client().await.claims();
    let now = UnixTime::now();
    for round in 0..5 {
        let key = Arc::new(ClaimKey::new("update", &format!("bot:concurrent-{round}")));
        let mut tasks = Vec::new();
        for i in 0..32 {
            let port: Arc<dyn Claims> = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    port.claim_once(&key, now, 60)
                        .await
                        .map(|o| o == ClaimOnce::Claimed)
                } else {
                    port.begin(&key, now, TIMES)
                        .await
                        .map(|o| matches!(o, ClaimOutcome::Acquired(_)))
                }
            }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one claimant must win");
    }
}
