//! `Registrations`: created atomically, read by id and by token hash, finished exactly once by
//! one conditional write (also under concurrency, across clients), expired only after the
//! token's expiry, kept until the end of retention and no longer, the TOTP seed stored sealed.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use tglink_shared::{
    ids::UserId,
    seal::SealError,
    store::{
        Store, StoreError,
        registrations::{
            FinalStatus, Finish, NewRegistration, RETENTION_SECS, RegistrationId,
            RegistrationStatus, Registrations, SEED_ATTRIBUTE, SealedSeed, Transition, seed_scope,
        },
    },
    time::UnixTime,
    token::OneTimeToken,
};

use crate::fixtures::{Backend, TestStore};

fn new_registration(user: &str, now: UnixTime, ttl: u64) -> (OneTimeToken, NewRegistration) {
    let token = OneTimeToken::mint();
    let registration = NewRegistration {
        id: RegistrationId::generate(),
        token_hash: token.hash(),
        user_id: UserId::parse(user).unwrap(),
        service_name: "Legitate".into(),
        email: Some(format!("{user}@example.com")),
        callback_url: Some("https://app.example/2fa/done".into()),
        created_at: now,
        token_expires_at: now.plus_secs(ttl),
    };
    (token, registration)
}

fn completed(owner: &UserId) -> Finish {
    Finish {
        owner: owner.clone(),
        status: FinalStatus::Completed,
        seed_id: Some("seed-1".into()),
        sealed_seed: None,
    }
}

fn rejected(owner: &UserId) -> Finish {
    Finish {
        owner: owner.clone(),
        status: FinalStatus::Rejected,
        seed_id: None,
        sealed_seed: None,
    }
}

fn done(t: Transition) -> tglink_shared::store::registrations::RegistrationRecord {
    match t {
        Transition::Done(r) => r,
        Transition::Refused(r) => panic!("expected the transition to happen, got Refused({r:?})"),
    }
}

pub async fn create_and_read_by_id_and_token(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (token, new) = new_registration("user-1", now, 600);
    regs.create(&new).await.unwrap();

    let by_id = regs
        .get(&new.id, now)
        .await
        .unwrap()
        .expect("readable by id");
    assert_eq!(by_id.id, new.id);
    assert_eq!(by_id.user_id, new.user_id);
    assert_eq!(by_id.service_name, "Legitate");
    assert_eq!(by_id.email.as_deref(), Some("user-1@example.com"));
    assert_eq!(
        by_id.callback_url.as_deref(),
        Some("https://app.example/2fa/done")
    );
    assert_eq!(by_id.status, RegistrationStatus::Pending);
    assert_eq!(by_id.created_at, now);
    assert_eq!(by_id.token_expires_at, now.plus_secs(600));
    assert_eq!(by_id.retain_until, now.plus_secs(600 + RETENTION_SECS));
    assert_eq!(by_id.completed_at, None);
    assert_eq!(by_id.seed_id, None);
    assert_eq!(by_id.sealed_seed, None);

    // Another, independently built client reads the same record through the token's hash.
    let other = fx.second_client().await.registrations();
    let by_token = other
        .find_by_token(&token.hash(), now)
        .await
        .unwrap()
        .expect("readable by token hash");
    assert_eq!(by_token, by_id);

    // Optional fields may be absent.
    let (_, mut bare) = new_registration("user-2", now, 600);
    bare.email = None;
    bare.callback_url = None;
    regs.create(&bare).await.unwrap();
    let read = regs.get(&bare.id, now).await.unwrap().unwrap();
    assert_eq!((read.email, read.callback_url), (None, None));

    assert_eq!(
        regs.get(&RegistrationId::generate(), now).await.unwrap(),
        None
    );
    assert_eq!(
        regs.find_by_token(&OneTimeToken::mint().hash(), now)
            .await
            .unwrap(),
        None
    );
}

pub async fn create_is_all_or_nothing(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (token_a, a) = new_registration("user-a", now, 600);
    regs.create(&a).await.unwrap();

    // Same id, fresh token: refused, and the fresh token's pointer was not written either.
    let (token_b, mut b) = new_registration("user-b", now, 600);
    b.id = a.id.clone();
    assert!(matches!(regs.create(&b).await, Err(StoreError::Corrupt(_))));
    assert_eq!(
        regs.find_by_token(&token_b.hash(), now).await.unwrap(),
        None
    );

    // Same token, fresh id: refused, and the fresh id's record was not written either.
    let (_, mut c) = new_registration("user-c", now, 600);
    c.token_hash = token_a.hash();
    assert!(matches!(regs.create(&c).await, Err(StoreError::Corrupt(_))));
    assert_eq!(regs.get(&c.id, now).await.unwrap(), None);

    let still = regs
        .find_by_token(&token_a.hash(), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.id, a.id);
    assert_eq!(still.user_id.as_str(), "user-a");
}

pub async fn finish_is_one_time(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (_, new) = new_registration("user-1", now, 600);
    regs.create(&new).await.unwrap();

    let later = now.plus_secs(5);
    let record = done(
        regs.finish(&new.id, &completed(&new.user_id), later)
            .await
            .unwrap(),
    );
    assert_eq!(record.status, RegistrationStatus::Completed);
    assert_eq!(record.completed_at, Some(later));
    assert_eq!(record.seed_id.as_deref(), Some("seed-1"));
    assert_eq!(
        regs.get(&new.id, later).await.unwrap(),
        Some(record.clone())
    );

    // A second callback, of either kind, is refused and changes nothing.
    for second in [rejected(&new.user_id), completed(&new.user_id)] {
        assert_eq!(
            regs.finish(&new.id, &second, later.plus_secs(1))
                .await
                .unwrap(),
            Transition::Refused(Some(record.clone()))
        );
    }
    // Expiring a finished registration is refused too.
    assert_eq!(
        regs.expire(&new.id, now.plus_secs(600)).await.unwrap(),
        Transition::Refused(Some(record.clone()))
    );

    let (_, other) = new_registration("user-2", now, 600);
    regs.create(&other).await.unwrap();
    let r = done(
        regs.finish(&other.id, &rejected(&other.user_id), now)
            .await
            .unwrap(),
    );
    assert_eq!(r.status, RegistrationStatus::Rejected);
    assert_eq!(r.completed_at, Some(now));

    assert_eq!(
        regs.finish(&RegistrationId::generate(), &completed(&new.user_id), now)
            .await
            .unwrap(),
        Transition::Refused(None)
    );
}

pub async fn expired_token_cannot_finish_and_is_marked_expired(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (_, new) = new_registration("user-1", now, 10);
    regs.create(&new).await.unwrap();
    let expiry = now.plus_secs(10);

    // Before expiry it cannot be expired; at the expiry instant it cannot be finished.
    let pending = regs.get(&new.id, now).await.unwrap().unwrap();
    assert_eq!(
        regs.expire(&new.id, UnixTime(expiry.secs() - 1))
            .await
            .unwrap(),
        Transition::Refused(Some(pending.clone()))
    );
    assert_eq!(
        regs.finish(&new.id, &completed(&new.user_id), expiry)
            .await
            .unwrap(),
        Transition::Refused(Some(pending.clone()))
    );
    assert_eq!(
        pending.effective_status(expiry),
        RegistrationStatus::Expired
    );

    let expired = done(regs.expire(&new.id, expiry).await.unwrap());
    assert_eq!(expired.status, RegistrationStatus::Expired);
    assert_eq!(expired.completed_at, None);
    assert_eq!(
        regs.expire(&new.id, expiry.plus_secs(1)).await.unwrap(),
        Transition::Refused(Some(expired.clone()))
    );
    assert_eq!(
        regs.get(&new.id, expiry.plus_secs(1)).await.unwrap(),
        Some(expired)
    );

    // One second before expiry, a callback still completes.
    let (_, b) = new_registration("user-b", now, 10);
    regs.create(&b).await.unwrap();
    let r = done(
        regs.finish(&b.id, &completed(&b.user_id), now.plus_secs(9))
            .await
            .unwrap(),
    );
    assert_eq!(r.status, RegistrationStatus::Completed);
}

pub async fn concurrent_finishers_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.registrations();
    let second = fx.second_client().await.registrations();
    let now = UnixTime::now();
    for round in 0..10 {
        let (_, new) = new_registration(&format!("user-{round}"), now, 600);
        first.create(&new).await.unwrap();
        let id = Arc::new(new.id.clone());
        let mut tasks = Vec::new();
        for i in 0..16 {
            let port: Arc<dyn Registrations> = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let finish = if i % 4 < 2 {
                completed(&new.user_id)
            } else {
                rejected(&new.user_id)
            };
            let id = id.clone();
            tasks.push(tokio::spawn(
                async move { port.finish(&id, &finish, now).await },
            ));
        }
        let mut winners = Vec::new();
        let mut refusals = Vec::new();
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Transition::Done(r) => winners.push(r),
                Transition::Refused(r) => refusals.push(r.expect("the record exists")),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one callback wins");
        let winner = &winners[0];
        let stored = first.get(&new.id, now).await.unwrap().unwrap();
        assert_eq!(
            &stored, winner,
            "round {round}: the record shows the winner"
        );
        for refused in refusals {
            // Refusals saw either the winner's result or (before it) a pending record.
            assert!(
                refused == stored || refused.status == RegistrationStatus::Pending,
                "round {round}: {refused:?}"
            );
        }
    }
}

/// The TTL attribute (`expires_at`) of a registration's two DynamoDB items, read raw.
async fn raw_expires_at(fx: &TestStore, id: &RegistrationId, token: &OneTimeToken) -> Vec<String> {
    let Store::DynamoDb(dynamo) = &fx.store else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pk in [
        format!("REGISTRATIONID#{id}"),
        format!("REGISTRATION#{}", token.hash().as_str()),
    ] {
        let item = dynamo
            .client()
            .get_item()
            .table_name(dynamo.table())
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S("REGISTRATION".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("{pk} exists"));
        let expires_at = match item.get("expires_at") {
            Some(AttributeValue::N(n)) => n.clone(),
            other => panic!("{pk}: expires_at is {other:?}"),
        };
        out.push(expires_at);
    }
    out
}

/// Everything the store holds, as bytes: the SQLite file and its WAL, or every attribute of
/// every item of the DynamoDB table.
async fn raw_storage(fx: &TestStore) -> Vec<u8> {
    match &fx.store {
        Store::Sqlite(sqlite) => {
            let path = sqlite.path().to_path_buf();
            let mut bytes = std::fs::read(&path).unwrap();
            let mut wal = path.into_os_string();
            wal.push("-wal");
            bytes.extend(std::fs::read(wal).unwrap_or_default());
            bytes
        }
        Store::DynamoDb(dynamo) => {
            fn flatten(value: &AttributeValue, out: &mut Vec<u8>) {
                match value {
                    AttributeValue::S(s) | AttributeValue::N(s) => out.extend(s.as_bytes()),
                    AttributeValue::B(b) => out.extend(b.as_ref()),
                    AttributeValue::M(m) => m.values().for_each(|v| flatten(v, out)),
                    AttributeValue::L(l) => l.iter().for_each(|v| flatten(v, out)),
                    _ => {}
                }
                out.push(0);
            }
            let scan = dynamo
                .client()
                .scan()
                .table_name(dynamo.table())
                .send()
                .await
                .unwrap();
            let mut out = Vec::new();
            for item in scan.items() {
                for (name, value) in item {
                    out.extend(name.as_bytes());
                    flatten(value, &mut out);
                }
            }
            assert!(!out.is_empty(), "the table has items");
            out
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn retention_boundary_and_purge(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (token, new) = new_registration("user-1", now, 600);
    regs.create(&new).await.unwrap();
    let (keep_token, keep) = new_registration("user-2", now, 6000);
    regs.create(&keep).await.unwrap();
    // A finished record is kept just as long.
    done(
        regs.finish(&new.id, &completed(&new.user_id), now)
            .await
            .unwrap(),
    );
    let end = new.retain_until();
    assert_eq!(end, now.plus_secs(600 + RETENTION_SECS));
    let before_end = UnixTime(end.secs() - 1);

    assert!(regs.get(&new.id, before_end).await.unwrap().is_some());
    assert!(
        regs.find_by_token(&token.hash(), before_end)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(regs.get(&new.id, end).await.unwrap(), None);
    assert_eq!(regs.find_by_token(&token.hash(), end).await.unwrap(), None);
    assert_eq!(
        regs.expire(&new.id, end).await.unwrap(),
        Transition::Refused(None)
    );

    match &fx.store {
        Store::Sqlite(sqlite) => {
            sqlite.purge_expired(before_end).await.unwrap();
            assert!(regs.get(&new.id, now).await.unwrap().is_some(), "kept");
            sqlite.purge_expired(end).await.unwrap();
            assert_eq!(regs.get(&new.id, now).await.unwrap(), None, "purged");
            assert_eq!(regs.find_by_token(&token.hash(), now).await.unwrap(), None);
            assert!(regs.get(&keep.id, now).await.unwrap().is_some());
            assert!(
                regs.find_by_token(&keep_token.hash(), now)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        Store::DynamoDb(_) => {
            // DynamoDB's TTL deletes both items after `expires_at` = end of retention.
            let expected = end.secs().to_string();
            assert_eq!(
                raw_expires_at(&fx, &new.id, &token).await,
                [expected.clone(), expected]
            );
        }
    }
}

pub async fn seed_is_stored_sealed_for_its_owner(backend: Backend) {
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let (_, new) = new_registration("alice", now, 600);
    regs.create(&new).await.unwrap();
    let seed = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let scope = seed_scope(&new.user_id, &new.id);
    let sealed = sealer
        .sealer
        .seal(&scope, &[(SEED_ATTRIBUTE, seed)])
        .await
        .unwrap();
    let finish = Finish {
        owner: new.user_id.clone(),
        status: FinalStatus::Completed,
        seed_id: Some("seed-42".into()),
        sealed_seed: SealedSeed::from_record(sealed),
    };
    done(regs.finish(&new.id, &finish, now).await.unwrap());

    let raw = raw_storage(&fx).await;
    assert!(
        contains(&raw, b"seed-42"),
        "the check can see stored values"
    );
    assert!(!contains(&raw, seed), "the TOTP seed must be stored sealed");

    let stored = regs.get(&new.id, now).await.unwrap().unwrap();
    let stored_seed = stored.sealed_seed.expect("a sealed seed is stored");
    let opened = sealer
        .second_client()
        .await
        .open(&scope, &stored_seed.to_record())
        .await
        .unwrap();
    assert_eq!(opened.get(SEED_ATTRIBUTE).unwrap().expose(), seed);
    // Bound to its owner and its record.
    let bob = UserId::parse("bob").unwrap();
    assert!(matches!(
        sealer
            .sealer
            .open(&seed_scope(&bob, &new.id), &stored_seed.to_record())
            .await,
        Err(SealError::Integrity)
    ));
    assert!(
        sealer
            .sealer
            .open(
                &seed_scope(&new.user_id, &RegistrationId::generate()),
                &stored_seed.to_record()
            )
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// TOTP verification state.

use tglink_shared::store::registrations::{TotpAccept, TotpFailures, TotpLockout};

fn fake_seed(tag: u8) -> SealedSeed {
    SealedSeed {
        wrapped_key: vec![tag; 8],
        sealed: vec![tag; 16],
    }
}

fn with_seed(owner: &UserId, tag: u8) -> Finish {
    Finish {
        owner: owner.clone(),
        status: FinalStatus::Completed,
        seed_id: None,
        sealed_seed: Some(fake_seed(tag)),
    }
}

/// A registration of `user` created at `now` and finished with `finish(owner)`.
async fn finished(
    regs: &Arc<dyn Registrations>,
    user: &str,
    now: UnixTime,
    finish: impl Fn(&UserId) -> Finish,
) -> NewRegistration {
    let (_, new) = new_registration(user, now, 600);
    regs.create(&new).await.unwrap();
    done(
        regs.finish(&new.id, &finish(&new.user_id), now)
            .await
            .unwrap(),
    );
    new
}

const LOCKOUT: TotpLockout = TotpLockout {
    max_failures: 3,
    window_secs: 100,
};

/// The most recent registration completed with a seed is the user's; a named one is used when
/// it is the user's, completed, with a seed; rejected, pending, seedless or another user's
/// registrations never are. A completed registration with a seed outlives the audit retention.
pub async fn totp_target_is_the_latest_or_the_named_completed_seed(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let alice = UserId::parse("totp-alice").unwrap();
    let none = regs.totp_target(&alice, None, now).await.unwrap();
    assert_eq!((none.seed, none.failures), (None, TotpFailures::default()));

    let first = finished(&regs, "totp-alice", now, |o| with_seed(o, 1)).await;
    let second = finished(&regs, "totp-alice", now.plus_secs(1), |o| with_seed(o, 2)).await;
    let seedless = finished(&regs, "totp-alice", now.plus_secs(2), completed).await;
    let rejected_one = finished(&regs, "totp-alice", now.plus_secs(3), rejected).await;
    let (_, pending) = new_registration("totp-alice", now, 600);
    regs.create(&pending).await.unwrap();
    let bobs = finished(&regs, "totp-bob", now, |o| with_seed(o, 3)).await;

    let at = now.plus_secs(5);
    let current = regs.totp_target(&alice, None, at).await.unwrap();
    let seed = current.seed.expect("the latest seed");
    assert_eq!(
        (seed.id, seed.sealed_seed),
        (second.id.clone(), fake_seed(2))
    );
    let named = regs.totp_target(&alice, Some(&first.id), at).await.unwrap();
    assert_eq!(named.seed.map(|s| s.id), Some(first.id.clone()));
    for other in [&seedless.id, &rejected_one.id, &pending.id, &bobs.id] {
        let target = regs.totp_target(&alice, Some(other), at).await.unwrap();
        assert_eq!(target.seed, None, "{other}");
    }
    // Kept long after the audit retention of other registrations ends.
    let later = now.plus_secs(3600 + RETENTION_SECS);
    assert!(regs.get(&rejected_one.id, later).await.unwrap().is_none());
    let kept = regs.totp_target(&alice, None, later).await.unwrap();
    assert_eq!(kept.seed.map(|s| s.id), Some(second.id.clone()));
    assert_eq!(
        regs.totp_accept(&alice, &second.id, 1, LOCKOUT, later)
            .await
            .unwrap(),
        TotpAccept::Accepted
    );
}

/// A step is accepted once, and only a later one after it; never for another user, a
/// rejected or a pending registration.
pub async fn totp_step_is_accepted_once(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let now = UnixTime::now();
    let reg = finished(&regs, "totp-carol", now, |o| with_seed(o, 4)).await;
    let carol = reg.user_id.clone();
    let accept = |step: u64| {
        let regs = regs.clone();
        let carol = carol.clone();
        let id = reg.id.clone();
        async move {
            regs.totp_accept(&carol, &id, step, LOCKOUT, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(accept(1000).await, TotpAccept::Accepted);
    assert_eq!(accept(1000).await, TotpAccept::StepUsed);
    assert_eq!(accept(999).await, TotpAccept::StepUsed);
    assert_eq!(accept(1001).await, TotpAccept::Accepted);
    // Seen by another client at once.
    let other = fx.second_client().await.registrations();
    assert_eq!(
        other
            .totp_accept(&carol, &reg.id, 1001, LOCKOUT, now)
            .await
            .unwrap(),
        TotpAccept::StepUsed
    );
    let dave = UserId::parse("totp-dave").unwrap();
    assert_eq!(
        regs.totp_accept(&dave, &reg.id, 2000, LOCKOUT, now)
            .await
            .unwrap(),
        TotpAccept::StepUsed
    );
    let refused = finished(&regs, "totp-carol", now, rejected).await;
    let (_, pending) = new_registration("totp-carol", now, 600);
    regs.create(&pending).await.unwrap();
    for id in [&refused.id, &pending.id, &RegistrationId::generate()] {
        assert_eq!(
            regs.totp_accept(&carol, id, 3000, LOCKOUT, now)
                .await
                .unwrap(),
            TotpAccept::StepUsed,
            "{id}"
        );
    }
}

/// 16 concurrent acceptances of one step, over two clients: exactly one is accepted.
pub async fn totp_concurrent_accepts_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.registrations();
    let second = fx.second_client().await.registrations();
    let now = UnixTime::now();
    for round in 0..3u8 {
        let reg = finished(&first, &format!("totp-race-{round}"), now, |o| {
            with_seed(o, round)
        })
        .await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let port = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let (user, id) = (reg.user_id.clone(), reg.id.clone());
            tasks.push(tokio::spawn(async move {
                port.totp_accept(&user, &id, 77, LOCKOUT, now).await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                TotpAccept::Accepted => accepted += 1,
                TotpAccept::StepUsed => {}
                TotpAccept::Locked => panic!("nobody failed"),
            }
        }
        assert_eq!(accepted, 1, "round {round}");
    }
}

/// Failures count within a window from the first; `max_failures` of them lock acceptance until
/// the window ends; a new window starts after it; an acceptance resets the count. Concurrent
/// failures over two clients are all counted.
pub async fn totp_failures_lock_and_reset(backend: Backend) {
    let fx = backend.store().await;
    let regs = fx.store.registrations();
    let other = fx.second_client().await.registrations();
    let t = UnixTime::now();
    let reg = finished(&regs, "totp-erin", t, |o| with_seed(o, 5)).await;
    let erin = reg.user_id.clone();

    let mut seen = TotpFailures::default();
    for (i, port) in [&regs, &other, &regs].into_iter().enumerate() {
        seen = port
            .totp_fail(&erin, seen, LOCKOUT, t.plus_secs(i as u64))
            .await
            .unwrap();
        assert_eq!(seen.count, i as u32 + 1);
        assert_eq!(seen.since, Some(t));
    }
    let read = regs.totp_target(&erin, None, t.plus_secs(5)).await.unwrap();
    assert_eq!(read.failures, seen);
    assert_eq!(
        read.failures.locked_until(LOCKOUT, t.plus_secs(5)),
        Some(t.plus_secs(100))
    );
    assert_eq!(
        other
            .totp_accept(&erin, &reg.id, 1, LOCKOUT, t.plus_secs(99))
            .await
            .unwrap(),
        TotpAccept::Locked
    );
    // The window has ended: not locked, and the next failure starts a new window.
    assert_eq!(read.failures.locked_until(LOCKOUT, t.plus_secs(100)), None);
    let fresh = regs
        .totp_fail(&erin, read.failures, LOCKOUT, t.plus_secs(100))
        .await
        .unwrap();
    assert_eq!((fresh.count, fresh.since), (1, Some(t.plus_secs(100))));
    // An acceptance resets the count.
    assert_eq!(
        regs.totp_accept(&erin, &reg.id, 1, LOCKOUT, t.plus_secs(101))
            .await
            .unwrap(),
        TotpAccept::Accepted
    );
    let after = other
        .totp_target(&erin, None, t.plus_secs(101))
        .await
        .unwrap();
    assert_eq!(after.failures.current(LOCKOUT, t.plus_secs(101)).count, 0);

    // 16 concurrent failures, on two clients, of a user with none yet: all counted.
    let frank = UserId::parse("totp-frank").unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let port = if i % 2 == 0 {
            regs.clone()
        } else {
            other.clone()
        };
        let frank = frank.clone();
        tasks.push(tokio::spawn(async move {
            port.totp_fail(&frank, TotpFailures::default(), LOCKOUT, t)
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let counted = regs.totp_target(&frank, None, t).await.unwrap();
    assert_eq!(counted.failures.count, 16);
}
