//! `WorkerTokens`: per-user listing, activity by hash, revocation seen at once by every client,
//! retention of revoked tokens, one winner among concurrent revokes; and the worker's
//! credentials read authorized by a token in the same call (`WorkerAuth::Token`): valid →
//! record, revoked → invalid at once, another user's (or a tampered) token → invalid, a token
//! made before any credentials → "no record" then the first write and reads work, settings
//! writes keep the tokens; at most `max` active tokens per user, however many are created at
//! once; "revoke all"; a write on behalf of a token checks it in the same write.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tglink_shared::{
    ids::UserId,
    store::{
        Credentials, CredentialsRecord, WorkerTokenRecord, WorkerTokens,
        credentials::{SEALED_BOT_TOKEN, WorkerAuth, WorkerRead, WriteOutcome},
        worker_tokens::{DEFAULT_MAX_ACTIVE, InsertOutcome, REVOKED_RETENTION_SECS, RevokeOutcome},
    },
    time::UnixTime,
    vault::{WorkerToken, worker_token::new_worker_token_id},
};

use super::credentials::{app_read, fake_sealed, full, written};
use crate::fixtures::Backend;

const IDLE: u64 = 100;

/// A worker read authorized by `token`.
async fn token_read(port: &dyn Credentials, token: &WorkerToken, now: UnixTime) -> WorkerRead {
    port.read_for_worker(token.user_id(), now, IDLE, WorkerAuth::Token(&token.hash()))
        .await
        .unwrap()
}

/// `token` with its user-id part replaced by `user` (the secret kept).
fn retarget(token: &WorkerToken, user: &str) -> WorkerToken {
    let secret = token.expose().rsplit_once('.').unwrap().1;
    WorkerToken::parse(&format!("tgw_{}.{secret}", URL_SAFE_NO_PAD.encode(user))).unwrap()
}

fn token(user: &str, name: &str, created_at: UnixTime) -> (WorkerToken, WorkerTokenRecord) {
    let token = WorkerToken::mint(&UserId::parse(user).unwrap());
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
        port.insert(r, DEFAULT_MAX_ACTIVE).await.unwrap();
    }
    assert!(port.is_active(&alice, &t1.hash()).await.unwrap());
    assert!(port.is_active(&bob, &t3.hash()).await.unwrap());
    // A token is active only for its own user.
    assert!(!port.is_active(&bob, &t1.hash()).await.unwrap());
    assert!(
        !port
            .is_active(&alice, &WorkerToken::mint(&alice).hash())
            .await
            .unwrap()
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
    assert!(port.is_active(&alice, &t1.hash()).await.unwrap());

    let later = now.plus_secs(10);
    assert_eq!(
        port.revoke(&alice, &r1.id, later).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert!(!port.is_active(&alice, &t1.hash()).await.unwrap());
    assert!(port.is_active(&alice, &t2.hash()).await.unwrap());
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
    assert!(!port.is_active(&alice, &t1.hash()).await.unwrap());
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
    a.insert(&r, DEFAULT_MAX_ACTIVE).await.unwrap();
    assert!(b.is_active(&r.user_id, &t.hash()).await.unwrap());
    assert_eq!(
        a.revoke(&r.user_id, &r.id, now).await.unwrap(),
        RevokeOutcome::Revoked
    );
    assert!(!b.is_active(&r.user_id, &t.hash()).await.unwrap());
}

pub async fn concurrent_revokes_have_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.worker_tokens();
    let second = fx.second_client().await.worker_tokens();
    let now = UnixTime(3_000_000);
    let (t, r) = token("dave", "w", now);
    first.insert(&r, DEFAULT_MAX_ACTIVE).await.unwrap();
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
    assert!(!first.is_active(&r.user_id, &t.hash()).await.unwrap());
}

/// A worker read with a token: valid → the record (activity recorded); unknown, another
/// user's, tampered or revoked → `TokenInvalid` at once (also for another client), nothing
/// touched; the user's other tokens and app reads unaffected.
pub async fn worker_read_checks_the_token(backend: Backend) {
    let fx = backend.store().await;
    let creds = fx.store.credentials();
    let tokens = fx.store.worker_tokens();
    let other_creds = fx.second_client().await.credentials();
    let t0 = UnixTime(5_000_000);
    let (alice, bob) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    written(creds.as_ref(), &full(&alice, t0)).await;
    written(creds.as_ref(), &full(&bob, t0)).await;
    let (ta, ra) = token("alice", "a", t0);
    let (ta2, ra2) = token("alice", "a2", t0);
    let (tb, rb) = token("bob", "b", t0);
    for r in [&ra, &ra2, &rb] {
        tokens.insert(r, DEFAULT_MAX_ACTIVE).await.unwrap();
    }

    let WorkerRead::Record(Some(read)) = token_read(creds.as_ref(), &ta, t0.plus_secs(5)).await
    else {
        panic!("alice's token reads alice's record");
    };
    assert_eq!(read.user_id, alice);
    assert_eq!(read.version, 1);
    assert_eq!(read.last_used_at, Some(t0.plus_secs(5)));
    let WorkerRead::Record(Some(read)) = token_read(creds.as_ref(), &tb, t0.plus_secs(5)).await
    else {
        panic!("bob's token reads bob's record");
    };
    assert_eq!(read.user_id, bob);

    // Alice's token can never read Bob's record: not by asking for Bob with its hash, not by
    // rewriting its user-id part (another token, another hash); nor can an unknown token.
    let stolen = creds
        .read_for_worker(&bob, t0.plus_secs(6), IDLE, WorkerAuth::Token(&ta.hash()))
        .await
        .unwrap();
    assert_eq!(stolen, WorkerRead::TokenInvalid);
    let tampered = retarget(&ta, "bob");
    assert_eq!(tampered.user_id(), &bob);
    assert_eq!(
        token_read(creds.as_ref(), &tampered, t0.plus_secs(6)).await,
        WorkerRead::TokenInvalid
    );
    assert_eq!(
        token_read(creds.as_ref(), &WorkerToken::mint(&alice), t0.plus_secs(6)).await,
        WorkerRead::TokenInvalid
    );
    // A token for a user with no item at all.
    let (tc, _) = token("carol", "never stored", t0);
    assert_eq!(
        token_read(creds.as_ref(), &tc, t0.plus_secs(6)).await,
        WorkerRead::TokenInvalid
    );
    assert_eq!(
        creds.get(&UserId::parse("carol").unwrap()).await.unwrap(),
        None
    );
    // The invalid reads touched nothing.
    assert_eq!(
        creds.get(&bob).await.unwrap().unwrap().last_used_at,
        Some(t0.plus_secs(5))
    );

    // Revoked: invalid at once, for every client; the other token still works.
    assert_eq!(
        tokens
            .revoke(&alice, &ra.id, t0.plus_secs(10))
            .await
            .unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        token_read(other_creds.as_ref(), &ta, t0.plus_secs(11)).await,
        WorkerRead::TokenInvalid
    );
    assert_eq!(
        token_read(creds.as_ref(), &ta, t0.plus_secs(11)).await,
        WorkerRead::TokenInvalid
    );
    assert!(matches!(
        token_read(other_creds.as_ref(), &ta2, t0.plus_secs(12)).await,
        WorkerRead::Record(Some(r)) if r.last_used_at == Some(t0.plus_secs(12))
    ));
    assert_eq!(
        creds.get(&alice).await.unwrap().unwrap().last_used_at,
        Some(t0.plus_secs(12))
    );
    // Revoking the last token leaves the record as it was.
    tokens
        .revoke(&alice, &ra2.id, t0.plus_secs(13))
        .await
        .unwrap();
    assert_eq!(
        token_read(creds.as_ref(), &ta2, t0.plus_secs(14)).await,
        WorkerRead::TokenInvalid
    );
    let stored = creds.get(&alice).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        app_read(creds.as_ref(), &alice, t0.plus_secs(15), IDLE)
            .await
            .unwrap()
            .last_used_at,
        Some(t0.plus_secs(15))
    );
}

/// A token made before any credentials exist: the user still has no record (to `get`, app
/// reads and token reads alike, which say "no record", not "invalid token"); the first
/// settings write (version 0) succeeds, once, and the token then reads it.
pub async fn token_before_any_credentials(backend: Backend) {
    let fx = backend.store().await;
    let creds = fx.store.credentials();
    let tokens = fx.store.worker_tokens();
    let t0 = UnixTime(6_000_000);
    let dana = UserId::parse("dana").unwrap();
    let (t, r) = token("dana", "early", t0);
    tokens.insert(&r, DEFAULT_MAX_ACTIVE).await.unwrap();
    assert!(tokens.is_active(&dana, &t.hash()).await.unwrap());
    assert_eq!(creds.get(&dana).await.unwrap(), None);
    assert_eq!(app_read(creds.as_ref(), &dana, t0, IDLE).await, None);
    assert_eq!(
        token_read(creds.as_ref(), &t, t0).await,
        WorkerRead::Record(None)
    );
    assert_eq!(creds.get(&dana).await.unwrap(), None);

    let mut first = CredentialsRecord::empty(dana.clone());
    first.sealed = Some(fake_sealed(&[SEALED_BOT_TOKEN]));
    first.bot_username = Some("dana_bot".into());
    first.updated_at = t0.plus_secs(1);
    assert_eq!(written(creds.as_ref(), &first).await, 1);
    // Version 0 again is a conflict: the record exists now.
    assert_eq!(creds.write(&first).await.unwrap(), WriteOutcome::Conflict);
    let WorkerRead::Record(Some(read)) = token_read(creds.as_ref(), &t, t0.plus_secs(2)).await
    else {
        panic!("the early token reads the first record");
    };
    assert_eq!(read.version, 1);
    assert_eq!(read.bot_username.as_deref(), Some("dana_bot"));
    assert!(tokens.is_active(&dana, &t.hash()).await.unwrap());

    // Revoked before any credentials: invalid, and the user still has no record.
    let erin = UserId::parse("erin").unwrap();
    let (te, re) = token("erin", "early", t0);
    tokens.insert(&re, DEFAULT_MAX_ACTIVE).await.unwrap();
    tokens.revoke(&erin, &re.id, t0.plus_secs(1)).await.unwrap();
    assert_eq!(
        token_read(creds.as_ref(), &te, t0.plus_secs(2)).await,
        WorkerRead::TokenInvalid
    );
    assert_eq!(creds.get(&erin).await.unwrap(), None);
    assert_eq!(
        app_read(creds.as_ref(), &erin, t0.plus_secs(2), IDLE).await,
        None
    );
}

/// Settings writes (every field replaced, every field removed) keep the user's tokens working,
/// and tokens created or revoked between a settings read and its write do not make the write
/// conflict.
pub async fn settings_writes_keep_tokens(backend: Backend) {
    let fx = backend.store().await;
    let creds = fx.store.credentials();
    let tokens = fx.store.worker_tokens();
    let t0 = UnixTime(7_000_000);
    let fay = UserId::parse("fay").unwrap();
    written(creds.as_ref(), &full(&fay, t0)).await;
    let before = creds.get(&fay).await.unwrap().unwrap();
    let (t, r) = token("fay", "w", t0);
    tokens.insert(&r, DEFAULT_MAX_ACTIVE).await.unwrap();

    // A write from a read made before the token existed.
    let mut cleared = CredentialsRecord::empty(fay.clone());
    cleared.version = before.version;
    cleared.updated_at = t0.plus_secs(1);
    assert_eq!(written(creds.as_ref(), &cleared).await, 2);
    let WorkerRead::Record(Some(read)) = token_read(creds.as_ref(), &t, t0.plus_secs(2)).await
    else {
        panic!("the token survives a write that removes every field");
    };
    assert_eq!(read.version, 2);
    assert_eq!(read.sealed, None);

    let mut again = full(&fay, t0.plus_secs(3));
    again.version = 2;
    assert_eq!(written(creds.as_ref(), &again).await, 3);
    let (t2, r2) = token("fay", "w2", t0);
    tokens.insert(&r2, DEFAULT_MAX_ACTIVE).await.unwrap();
    tokens.revoke(&fay, &r.id, t0.plus_secs(4)).await.unwrap();
    let mut fourth = creds.get(&fay).await.unwrap().unwrap();
    assert_eq!(fourth.version, 3);
    fourth.bot_username = Some("fourth_bot".into());
    assert_eq!(written(creds.as_ref(), &fourth).await, 4);
    assert_eq!(
        token_read(creds.as_ref(), &t, t0.plus_secs(5)).await,
        WorkerRead::TokenInvalid
    );
    let WorkerRead::Record(Some(read)) = token_read(creds.as_ref(), &t2, t0.plus_secs(5)).await
    else {
        panic!("the second token reads the record");
    };
    assert_eq!(read.version, 4);
    assert_eq!(read.bot_username.as_deref(), Some("fourth_bot"));
    assert_eq!(read.last_used_at, Some(t0.plus_secs(5)));
}

/// At most `max` active tokens per user, also when many are created at once from two
/// clients; a revoked one frees its place; other users have their own places.
pub async fn the_limit_holds_under_concurrent_creation(backend: Backend) {
    let fx = backend.store().await;
    let first = fx.store.worker_tokens();
    let second = fx.second_client().await.worker_tokens();
    let now = UnixTime(8_000_000);
    let gil = UserId::parse("gil").unwrap();
    let max = 3;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let port: Arc<dyn WorkerTokens> = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (_, r) = token("gil", &format!("w{i}"), now);
        tasks.push(tokio::spawn(async move { port.insert(&r, max).await }));
    }
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            InsertOutcome::Inserted => inserted += 1,
            InsertOutcome::LimitReached => {}
        }
    }
    assert_eq!(inserted, max);
    let listed = first.list(&gil, now).await.unwrap();
    assert_eq!(listed.len(), max);
    let (_, extra) = token("gil", "extra", now);
    assert_eq!(
        first.insert(&extra, max).await.unwrap(),
        InsertOutcome::LimitReached
    );
    assert_eq!(first.list(&gil, now).await.unwrap(), listed);
    // Another user is not limited by gil's tokens.
    let (_, theirs) = token("hal", "w", now);
    assert_eq!(
        first.insert(&theirs, max).await.unwrap(),
        InsertOutcome::Inserted
    );
    // A revoked token frees its place (though it stays listed).
    assert_eq!(
        first.revoke(&gil, &listed[0].id, now).await.unwrap(),
        RevokeOutcome::Revoked
    );
    let (t, again) = token("gil", "again", now);
    assert_eq!(
        second.insert(&again, max).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert!(first.is_active(&gil, &t.hash()).await.unwrap());
    let (_, more) = token("gil", "more", now);
    assert_eq!(
        first.insert(&more, max).await.unwrap(),
        InsertOutcome::LimitReached
    );
}

/// "Revoke all": every active token of the user (more than one transaction's worth), none of
/// another user's; each stays listed, revoked; a second call revokes none.
pub async fn revoke_all_revokes_every_active_token(backend: Backend) {
    let fx = backend.store().await;
    let port = fx.store.worker_tokens();
    let creds = fx.store.credentials();
    let now = UnixTime(9_000_000);
    let ida = UserId::parse("ida").unwrap();
    written(creds.as_ref(), &full(&ida, now)).await;
    let mut tokens = Vec::new();
    for i in 0..105 {
        let (t, r) = token("ida", &format!("w{i}"), now.plus_secs(i));
        assert_eq!(port.insert(&r, 200).await.unwrap(), InsertOutcome::Inserted);
        tokens.push((t, r));
    }
    assert_eq!(
        port.revoke(&ida, &tokens[0].1.id, now).await.unwrap(),
        RevokeOutcome::Revoked
    );
    let (other, other_r) = token("jon", "w", now);
    port.insert(&other_r, 200).await.unwrap();

    let later = now.plus_secs(1_000);
    assert_eq!(port.revoke_all(&ida, later).await.unwrap(), 104);
    for (t, _) in &tokens {
        assert!(!port.is_active(&ida, &t.hash()).await.unwrap());
        assert_eq!(
            token_read(creds.as_ref(), t, later).await,
            WorkerRead::TokenInvalid
        );
    }
    let listed = port.list(&ida, later).await.unwrap();
    assert_eq!(listed.len(), 105);
    assert_eq!(listed[0].revoked_at, Some(now));
    assert!(listed[1..].iter().all(|t| t.revoked_at == Some(later)));
    assert!(
        port.is_active(&other_r.user_id, &other.hash())
            .await
            .unwrap()
    );
    assert_eq!(port.revoke_all(&ida, later).await.unwrap(), 0);
    // The record itself is untouched.
    assert_eq!(creds.get(&ida).await.unwrap().unwrap().version, 1);
}

/// A write on behalf of a worker token checks the token in the same write: active → written;
/// revoked (after the caller's own check), another user's or unknown → `TokenInvalid` and the
/// record unchanged; a stale version with an active token → `Conflict`.
pub async fn writes_on_behalf_of_a_token_check_it(backend: Backend) {
    let fx = backend.store().await;
    let creds = fx.store.credentials();
    let tokens = fx.store.worker_tokens();
    let now = UnixTime(10_000_000);
    let kim = UserId::parse("kim").unwrap();
    written(creds.as_ref(), &full(&kim, now)).await;
    let (t, r) = token("kim", "w", now);
    tokens.insert(&r, DEFAULT_MAX_ACTIVE).await.unwrap();
    let (theirs, theirs_r) = token("lea", "w", now);
    tokens.insert(&theirs_r, DEFAULT_MAX_ACTIVE).await.unwrap();

    let mut next = creds.get(&kim).await.unwrap().unwrap();
    next.session_saved_at = None;
    next.updated_at = now.plus_secs(1);
    let hash = t.hash();
    assert_eq!(
        creds
            .write_as(&next, WorkerAuth::Token(&hash))
            .await
            .unwrap(),
        WriteOutcome::Written { version: 2 }
    );
    // A stale version: a conflict, whatever the token.
    assert_eq!(
        creds
            .write_as(&next, WorkerAuth::Token(&hash))
            .await
            .unwrap(),
        WriteOutcome::Conflict
    );
    let current = creds.get(&kim).await.unwrap().unwrap();
    let mut next = current.clone();
    next.bot_username = Some("changed_bot".into());
    // Another user's token, and one that names kim but is unknown.
    for invalid in [theirs.hash(), WorkerToken::mint(&kim).hash()] {
        assert_eq!(
            creds
                .write_as(&next, WorkerAuth::Token(&invalid))
                .await
                .unwrap(),
            WriteOutcome::TokenInvalid
        );
    }
    // Revoked after the caller checked it.
    assert!(tokens.is_active(&kim, &hash).await.unwrap());
    tokens.revoke(&kim, &r.id, now).await.unwrap();
    assert_eq!(
        creds
            .write_as(&next, WorkerAuth::Token(&hash))
            .await
            .unwrap(),
        WriteOutcome::TokenInvalid
    );
    assert_eq!(creds.get(&kim).await.unwrap().unwrap(), current);
    // The app itself still writes.
    assert_eq!(
        creds.write_as(&next, WorkerAuth::App).await.unwrap(),
        WriteOutcome::Written { version: 3 }
    );
}
