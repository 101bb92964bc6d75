//! `RateLimits`: token buckets shared by every client, taken all-or-nothing with the notify claim
//! (its digest and first result kept by `Claims::complete_with_result`).

use std::sync::Arc;

use tglink_shared::{
    store::{
        Admission, Bucket, BucketKey, ClaimKey, ClaimLease, ClaimRecord, ClaimStatus, ClaimTimes,
        RateLimits,
    },
    time::UnixTime,
};

use crate::fixtures::Backend;

const TIMES: ClaimTimes = ClaimTimes {
    in_progress_secs: 30,
    retain_secs: 86_400,
};

fn chat(id: i64, rate: u32, burst: u32) -> Bucket {
    Bucket {
        key: BucketKey::chat(id),
        rate,
        burst,
    }
}

fn bot(id: i64, rate: u32) -> Bucket {
    Bucket {
        key: BucketKey::bot(id),
        rate,
        burst: rate,
    }
}

fn key(name: &str) -> ClaimKey {
    ClaimKey::new("notify", name)
}

fn admitted(a: Admission) -> ClaimLease {
    match a {
        Admission::Admitted(lease) => lease,
        other => panic!("expected Admitted, got {other:?}"),
    }
}

/// A chat's burst is admitted, the next is refused with a wait and writes nothing (its key stays
/// free), and a second later one more is admitted; the bot bucket is shared by every chat.
pub async fn buckets_admit_their_burst_then_their_rate(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.rate_limits();
    let second = fx.second_client().await.rate_limits();
    let now = UnixTime::now();
    let (c, b) = (chat(501, 1, 3), bot(9_001, 5));
    for i in 0..3 {
        let port = if i % 2 == 0 { &first } else { &second };
        admitted(
            port.admit(&key(&format!("burst-{i}")), "d", TIMES, &c, &b, now)
                .await
                .unwrap(),
        );
    }
    let refused = second
        .admit(&key("burst-3"), "d", TIMES, &c, &b, now)
        .await
        .unwrap();
    assert_eq!(
        refused,
        Admission::RateLimited {
            retry_after_secs: 1
        }
    );
    // Refused means nothing written: the key is free a second later.
    let later = now.plus_secs(1);
    admitted(
        first
            .admit(&key("burst-3"), "d", TIMES, &c, &b, later)
            .await
            .unwrap(),
    );
    // The bot bucket (5/s, burst 5, full again after a second) counts every chat: four more
    // chats, then it is empty.
    for i in 0..4 {
        let other_chat = chat(510 + i, 1, 3);
        let port = if i % 2 == 0 { &first } else { &second };
        admitted(
            port.admit(
                &key(&format!("bot-{i}")),
                "d",
                TIMES,
                &other_chat,
                &b,
                later,
            )
            .await
            .unwrap(),
        );
    }
    assert!(matches!(
        first
            .admit(&key("bot-4"), "d", TIMES, &chat(520, 1, 3), &b, later)
            .await
            .unwrap(),
        Admission::RateLimited { .. }
    ));
}

/// An admitted key is `InProgress` for everyone with its digest; completed, its result is what
/// every client reads back; released, it can be admitted again at once.
pub async fn the_claim_keeps_the_digest_and_the_first_result(backend: Backend) {
    let fx = backend.store().await;
    let limits = fx.store.rate_limits();
    let claims = fx.store.claims();
    let other = fx.second_client().await.rate_limits();
    let now = UnixTime::now();
    let (c, b) = (chat(601, 10, 10), bot(9_002, 30));
    let lease = admitted(
        limits
            .admit(&key("k1"), "digest-1", TIMES, &c, &b, now)
            .await
            .unwrap(),
    );
    match other
        .admit(&key("k1"), "digest-2", TIMES, &c, &b, now)
        .await
        .unwrap()
    {
        Admission::Claimed(ClaimRecord {
            status: ClaimStatus::InProgress { .. },
            digest,
            result: None,
        }) => assert_eq!(digest.as_deref(), Some("digest-1")),
        other => panic!("expected an in-progress claim, got {other:?}"),
    }
    claims
        .complete_with_result(
            &lease,
            now,
            TIMES.retain_secs,
            "digest-1",
            r#"{"message_id":7}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        other
            .admit(&key("k1"), "digest-1", TIMES, &c, &b, now)
            .await
            .unwrap(),
        Admission::Claimed(ClaimRecord {
            status: ClaimStatus::Completed,
            digest: Some("digest-1".into()),
            result: Some(r#"{"message_id":7}"#.into()),
        })
    );
    // Released: admitted again at once, by another client.
    let lease = admitted(
        limits
            .admit(&key("k2"), "d", TIMES, &c, &b, now)
            .await
            .unwrap(),
    );
    claims.release(&lease).await.unwrap();
    admitted(
        other
            .admit(&key("k2"), "d", TIMES, &c, &b, now)
            .await
            .unwrap(),
    );
    // Past its retention the key is free again.
    let after = now.plus_secs(TIMES.retain_secs + 1);
    admitted(
        other
            .admit(&key("k1"), "digest-9", TIMES, &c, &b, after)
            .await
            .unwrap(),
    );
}

/// Sixteen concurrent admissions of one key from two clients: exactly one is admitted; and
/// sixteen of distinct keys to one chat: exactly its burst is admitted.
pub async fn concurrent_admissions_keep_the_limits(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.rate_limits();
    let second = fx.second_client().await.rate_limits();
    let now = UnixTime::now();
    for (same_key, chat_id, expected) in [(true, 701, 1), (false, 702, 3)] {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let port: Arc<dyn RateLimits> = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let name = if same_key {
                "same".to_owned()
            } else {
                format!("distinct-{i}")
            };
            tasks.push(tokio::spawn(async move {
                port.admit(
                    &key(&format!("{chat_id}-{name}")),
                    "d",
                    TIMES,
                    &chat(chat_id, 1, 3),
                    &bot(9_003 + chat_id, 100),
                    now,
                )
                .await
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            if matches!(task.await.unwrap().unwrap(), Admission::Admitted(_)) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, expected, "same key: {same_key}");
    }
}
