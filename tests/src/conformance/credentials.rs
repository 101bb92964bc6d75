//! `Credentials`: versioned conditional writes that never lose a concurrent change, worker
//! reads that record activity in the same call without reviving an idle session, and sealed
//! values that survive the store but do not open in another user's record or when flipped.

use std::{collections::BTreeMap, sync::Arc};

use tglink_shared::{
    ids::{TelegramUserId, UserId},
    seal::{SealError, SealedRecord},
    store::{
        Credentials, CredentialsRecord,
        credentials::{
            Reauth, SEALED_BOT_TOKEN, SEALED_PHONE, SEALED_SESSION, WorkerAuth, WorkerRead,
            WriteOutcome,
        },
    },
    time::UnixTime,
    vault,
};

use crate::fixtures::Backend;

const IDLE: u64 = 100;

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub(crate) fn fake_sealed(names: &[&str]) -> SealedRecord {
    SealedRecord {
        wrapped_key: vec![7; 40],
        attributes: names
            .iter()
            .map(|n| ((*n).to_owned(), n.as_bytes().to_vec()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A record with every field set and a stored session saved at `saved_at`.
pub(crate) fn full(user_id: &UserId, saved_at: UnixTime) -> CredentialsRecord {
    CredentialsRecord {
        user_id: user_id.clone(),
        version: 0,
        sealed: Some(fake_sealed(&[
            SEALED_BOT_TOKEN,
            SEALED_SESSION,
            SEALED_PHONE,
        ])),
        bot_username: Some("my_bot".into()),
        bot_id: Some(123456),
        channel_id: Some(-1001234567890),
        telegram_user_id: Some(TelegramUserId::new(42).unwrap()),
        session_saved_at: Some(saved_at),
        last_used_at: None,
        reauth: None,
        updated_at: saved_at,
    }
}

/// A worker read with the user's app JWT (authorized).
pub(crate) async fn app_read(
    port: &dyn Credentials,
    u: &UserId,
    now: UnixTime,
    idle: u64,
) -> Option<CredentialsRecord> {
    match port
        .read_for_worker(u, now, idle, WorkerAuth::App)
        .await
        .unwrap()
    {
        WorkerRead::Record(record) => record,
        WorkerRead::TokenInvalid => panic!("an app read has no token to be invalid"),
    }
}

pub(crate) async fn written(port: &dyn Credentials, record: &CredentialsRecord) -> u64 {
    match port.write(record).await.unwrap() {
        WriteOutcome::Written { version } => version,
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn absent_record_reads_as_none(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.credentials();
    let u = user("nobody");
    assert_eq!(port.get(&u).await.unwrap(), None);
    assert_eq!(
        app_read(port.as_ref(), &u, UnixTime(1_000), IDLE).await,
        None
    );
    // The worker read did not create anything.
    assert_eq!(port.get(&u).await.unwrap(), None);
}

pub async fn versioned_writes_round_trip_and_conflict(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.credentials();
    let u = user("alice");
    let record = full(&u, UnixTime(1_000));
    assert_eq!(written(port.as_ref(), &record).await, 1);
    let stored = port.get(&u).await.unwrap().unwrap();
    assert_eq!(
        stored,
        CredentialsRecord {
            version: 1,
            ..record.clone()
        }
    );
    // Creating again (version 0) conflicts; so does writing at a stale version.
    assert_eq!(port.write(&record).await.unwrap(), WriteOutcome::Conflict);
    let mut second = stored.clone();
    second.bot_username = Some("other_bot".into());
    assert_eq!(written(port.as_ref(), &second).await, 2);
    let mut stale = stored.clone();
    stale.bot_username = Some("stale_bot".into());
    assert_eq!(port.write(&stale).await.unwrap(), WriteOutcome::Conflict);
    let now = port.get(&u).await.unwrap().unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(now.bot_username.as_deref(), Some("other_bot"));
    // Another, independently built client sees the same record.
    let other = fx.second_client().await.credentials();
    assert_eq!(other.get(&u).await.unwrap(), Some(now));
}

pub async fn absent_fields_are_removed(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.credentials();
    let u = user("bob");
    written(port.as_ref(), &full(&u, UnixTime(1_000))).await;
    let mut cleared = port.get(&u).await.unwrap().unwrap();
    cleared.sealed = Some(fake_sealed(&[SEALED_BOT_TOKEN]));
    cleared.telegram_user_id = None;
    cleared.channel_id = None;
    cleared.session_saved_at = None;
    cleared.reauth = Some(Reauth {
        reason: "AUTH_KEY_UNREGISTERED".into(),
        at: UnixTime(1_500),
    });
    written(port.as_ref(), &cleared).await;
    let stored = port.get(&u).await.unwrap().unwrap();
    assert_eq!(
        stored,
        CredentialsRecord {
            version: 2,
            ..cleared.clone()
        }
    );
    assert!(!stored.has_sealed(SEALED_SESSION) && stored.has_sealed(SEALED_BOT_TOKEN));
    let mut empty = stored.clone();
    empty.sealed = None;
    empty.bot_username = None;
    empty.bot_id = None;
    empty.reauth = None;
    written(port.as_ref(), &empty).await;
    assert_eq!(
        port.get(&u).await.unwrap().unwrap(),
        CredentialsRecord {
            version: 3,
            ..empty
        }
    );
}

/// 16 writers on two clients each add one to `channel_id` by read–modify–write with retry:
/// every increment survives.
pub async fn concurrent_changes_are_never_lost(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.credentials();
    let second = fx.second_client().await.credentials();
    let u = user("carol");
    let mut start = full(&u, UnixTime(1_000));
    start.channel_id = Some(1);
    written(first.as_ref(), &start).await;
    let writers = 16;
    let mut tasks = Vec::new();
    for i in 0..writers {
        let port: Arc<dyn Credentials> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let u = u.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let mut r = port.get(&u).await.unwrap().unwrap();
                r.channel_id = Some(r.channel_id.unwrap() + 1);
                match port.write(&r).await.unwrap() {
                    WriteOutcome::Written { .. } => return conflicts,
                    WriteOutcome::Conflict => conflicts += 1,
                    WriteOutcome::TokenInvalid => panic!("an app write has no token"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let end = first.get(&u).await.unwrap().unwrap();
    assert_eq!(end.channel_id, Some(1 + writers));
    assert_eq!(end.version, 1 + writers as u64);
}

pub async fn worker_read_records_activity_without_a_new_version(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.credentials();
    let u = user("dave");
    let t0 = UnixTime(10_000);
    written(port.as_ref(), &full(&u, t0)).await;
    let read = app_read(port.as_ref(), &u, t0.plus_secs(5), IDLE)
        .await
        .unwrap();
    assert_eq!(read.last_used_at, Some(t0.plus_secs(5)));
    assert_eq!(read.version, 1);
    let state = read.session_state(t0.plus_secs(5), IDLE);
    assert!(state.is_live());
    assert_eq!(state.stored().unwrap().expires_at, t0.plus_secs(105));
    // Activity extends the session: at t0+150 it is live only thanks to a read at t0+90.
    app_read(port.as_ref(), &u, t0.plus_secs(90), IDLE).await;
    let stored = port.get(&u).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(t0.plus_secs(90)));
    assert_eq!(stored.version, 1);
    assert!(stored.session_state(t0.plus_secs(150), IDLE).is_live());
    // A settings write made from an older read does not undo the activity.
    let mut old = full(&u, t0);
    old.version = 1;
    old.bot_username = Some("renamed_bot".into());
    written(port.as_ref(), &old).await;
    let stored = port.get(&u).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(t0.plus_secs(90)));
    assert_eq!(stored.bot_username.as_deref(), Some("renamed_bot"));
}

pub async fn worker_read_does_not_revive_an_idle_session(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.credentials();
    let u = user("erin");
    let t0 = UnixTime(10_000);
    written(port.as_ref(), &full(&u, t0)).await;
    // Exactly at the idle limit the session is expired: the read returns the record as it is.
    let read = app_read(port.as_ref(), &u, t0.plus_secs(IDLE), IDLE)
        .await
        .unwrap();
    assert_eq!(read.last_used_at, None);
    assert!(!read.session_state(t0.plus_secs(IDLE), IDLE).is_live());
    assert_eq!(port.get(&u).await.unwrap().unwrap().last_used_at, None);
    // A record without a session is returned but never touched.
    let v = user("frank");
    let mut bot_only = full(&v, t0);
    bot_only.sealed = Some(fake_sealed(&[SEALED_BOT_TOKEN]));
    bot_only.session_saved_at = None;
    written(port.as_ref(), &bot_only).await;
    let read = app_read(port.as_ref(), &v, t0.plus_secs(1), IDLE)
        .await
        .unwrap();
    assert_eq!(read.last_used_at, None);
    assert!(read.has_sealed(SEALED_BOT_TOKEN));
    assert_eq!(port.get(&v).await.unwrap().unwrap().last_used_at, None);
}

/// Real sealing through the store: round trip; another user's record with the copied blob
/// does not open; a flipped byte does not open.
pub async fn sealed_values_are_bound_to_their_user(backend: Backend) {
    let fx = backend.store().await;
    let keys = backend.sealer().await;
    let port = fx.store.credentials();
    let (alice, bob) = (user("alice"), user("bob"));
    let attrs: &[(&str, &[u8])] = &[
        (SEALED_BOT_TOKEN, b"123456:AAE-alice-bot-token-000000000000"),
        (SEALED_SESSION, b"1AgAOMTQ-alice-session"),
    ];
    for u in [&alice, &bob] {
        let mut r = full(u, UnixTime(1_000));
        r.sealed = Some(keys.sealer.seal(&vault::scope(u), attrs).await.unwrap());
        written(port.as_ref(), &r).await;
    }
    let a = port.get(&alice).await.unwrap().unwrap();
    let opened = keys
        .sealer
        .open(&vault::scope(&alice), a.sealed.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(opened.text(SEALED_SESSION), Some("1AgAOMTQ-alice-session"));

    // Alice's sealed blob copied into Bob's record (keeping Bob's data key) …
    let mut b = port.get(&bob).await.unwrap().unwrap();
    let mut franken = b.sealed.clone().unwrap();
    franken.attributes.insert(
        SEALED_SESSION.into(),
        a.sealed.as_ref().unwrap().attributes[SEALED_SESSION].clone(),
    );
    b.sealed = Some(franken);
    written(port.as_ref(), &b).await;
    let b = port.get(&bob).await.unwrap().unwrap();
    let err = keys
        .sealer
        .open(&vault::scope(&bob), b.sealed.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, SealError::Integrity), "{err:?}");
    // … and Alice's whole sealed set (data key included) copied into Bob's record.
    let mut b = b;
    b.sealed = a.sealed.clone();
    written(port.as_ref(), &b).await;
    let b = port.get(&bob).await.unwrap().unwrap();
    assert!(
        keys.sealer
            .open(&vault::scope(&bob), b.sealed.as_ref().unwrap())
            .await
            .is_err()
    );

    // A flipped byte in the stored blob.
    let mut a2 = a.clone();
    let blob = a2
        .sealed
        .as_mut()
        .unwrap()
        .attributes
        .get_mut(SEALED_BOT_TOKEN)
        .unwrap();
    let middle = blob.len() / 2;
    blob[middle] ^= 0x01;
    written(port.as_ref(), &a2).await;
    let a2 = port.get(&alice).await.unwrap().unwrap();
    let err = keys
        .sealer
        .open(&vault::scope(&alice), a2.sealed.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, SealError::Integrity), "{err:?}");
}
