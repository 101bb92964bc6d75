//! `Authorizations` (tglink's OpenID provider): a pending authorization request is taken once
//! (one winner under concurrency, across clients; an SDK retry of the winning call is the same
//! taking), expires; an authorization code is redeemed once, and a second redemption names the
//! session the first one started (so the caller can end it), also after the code expired.

use std::sync::Arc;

use tglink_shared::{
    ids::TelegramUserId,
    store::{
        Authorizations,
        authorizations::{IssuedCode, PendingAuthorization, RedeemOutcome},
        signins::{Profile, SessionId},
    },
    time::UnixTime,
    token::OneTimeToken,
};

use crate::fixtures::Backend;

fn pending(now: UnixTime, ttl: u64) -> PendingAuthorization {
    PendingAuthorization {
        client_id: "web".into(),
        redirect_uri: "https://app.example/cb".into(),
        client_state: "client-state".into(),
        client_nonce: Some("client-nonce".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scope: "openid profile".into(),
        upstream_verifier: OneTimeToken::mint().expose().to_owned(),
        upstream_nonce: "upstream-nonce".into(),
        created_at: now,
        expires_at: now.plus_secs(ttl),
    }
}

fn code(now: UnixTime, ttl: u64) -> IssuedCode {
    IssuedCode {
        client_id: "web".into(),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        scope: "openid profile".into(),
        telegram_user_id: TelegramUserId::new(777_000_111).unwrap(),
        profile: Profile {
            username: Some("ann".into()),
            first_name: Some("Ann".into()),
            language_code: Some("en".into()),
            is_premium: None,
        },
        auth_time: now,
        created_at: now,
        expires_at: now.plus_secs(ttl),
    }
}

pub async fn a_request_is_taken_once_by_another_client(backend: Backend) {
    let fx = backend.store().await;
    let a = fx.store.authorizations();
    let b = fx.second_client().await.authorizations();
    let now = UnixTime::now();
    let state = OneTimeToken::mint().hash();
    let request = pending(now, 600);
    a.put_request(&state, &request).await.unwrap();
    // A retried put (the SDK after a lost answer) succeeds and changes nothing.
    a.put_request(&state, &request).await.unwrap();
    let taken = b.take_request(&state, "attempt-1", now).await.unwrap();
    assert_eq!(taken.as_ref(), Some(&request));
    // The same taking again (an SDK retry) still gets it; anyone else does not.
    assert_eq!(
        b.take_request(&state, "attempt-1", now).await.unwrap(),
        Some(request)
    );
    assert_eq!(
        a.take_request(&state, "attempt-2", now).await.unwrap(),
        None
    );
    let unknown = OneTimeToken::mint().hash();
    assert_eq!(
        a.take_request(&unknown, "attempt-3", now).await.unwrap(),
        None
    );
}

pub async fn an_expired_request_cannot_be_taken(backend: Backend) {
    let fx = backend.store().await;
    let store = fx.store.authorizations();
    let now = UnixTime::now();
    let (s1, s2) = (OneTimeToken::mint().hash(), OneTimeToken::mint().hash());
    store.put_request(&s1, &pending(now, 600)).await.unwrap();
    store.put_request(&s2, &pending(now, 600)).await.unwrap();
    assert_eq!(
        store
            .take_request(&s1, "a", now.plus_secs(600))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .take_request(&s2, "b", now.plus_secs(599))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn sixteen_concurrent_takers_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let now = UnixTime::now();
    let state = OneTimeToken::mint().hash();
    fx.store
        .authorizations()
        .put_request(&state, &pending(now, 600))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store: Arc<dyn Authorizations> = if i % 2 == 0 {
            fx.store.authorizations()
        } else {
            fx.second_client().await.authorizations()
        };
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            store
                .take_request(&state, &format!("attempt-{i}"), now)
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn a_code_is_redeemed_once_and_a_replay_names_the_first_session(backend: Backend) {
    let fx = backend.store().await;
    let a = fx.store.authorizations();
    let b = fx.second_client().await.authorizations();
    let now = UnixTime::now();
    let hash = OneTimeToken::mint().hash();
    let record = code(now, 60);
    a.put_code(&hash, &record).await.unwrap();
    let first = SessionId::from_u32(0x0102_0304);
    let second = SessionId::from_u32(0x0506_0708);
    assert_eq!(
        b.redeem_code(&hash, first, now).await.unwrap(),
        RedeemOutcome::Redeemed(Box::new(record.clone()))
    );
    // The same redemption retried is the same redemption.
    assert_eq!(
        a.redeem_code(&hash, first, now).await.unwrap(),
        RedeemOutcome::Redeemed(Box::new(record.clone()))
    );
    let replay = RedeemOutcome::Replayed {
        telegram_user_id: record.telegram_user_id,
        sid: first,
    };
    assert_eq!(a.redeem_code(&hash, second, now).await.unwrap(), replay);
    // After the code expired a replay is still recognised (and still refused).
    assert_eq!(
        a.redeem_code(&hash, second, now.plus_secs(120))
            .await
            .unwrap(),
        replay
    );
    let unknown = OneTimeToken::mint().hash();
    assert_eq!(
        a.redeem_code(&unknown, second, now).await.unwrap(),
        RedeemOutcome::Unknown
    );
}

pub async fn an_expired_code_is_not_redeemed(backend: Backend) {
    let fx = backend.store().await;
    let store = fx.store.authorizations();
    let now = UnixTime::now();
    let hash = OneTimeToken::mint().hash();
    store.put_code(&hash, &code(now, 60)).await.unwrap();
    assert_eq!(
        store
            .redeem_code(&hash, SessionId::from_u32(1), now.plus_secs(60))
            .await
            .unwrap(),
        RedeemOutcome::Unknown
    );
}

pub async fn sixteen_concurrent_redemptions_one_winner(backend: Backend) {
    let fx = backend.store().await;
    let now = UnixTime::now();
    let hash = OneTimeToken::mint().hash();
    fx.store
        .authorizations()
        .put_code(&hash, &code(now, 60))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store: Arc<dyn Authorizations> = if i % 2 == 0 {
            fx.store.authorizations()
        } else {
            fx.second_client().await.authorizations()
        };
        let hash = hash.clone();
        tasks.push(tokio::spawn(async move {
            store
                .redeem_code(&hash, SessionId::from_u32(i + 1), now)
                .await
                .unwrap()
        }));
    }
    let mut redeemed = Vec::new();
    let mut replays = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            RedeemOutcome::Redeemed(_) => redeemed.push(()),
            RedeemOutcome::Replayed { sid, .. } => replays.push(sid),
            RedeemOutcome::Unknown => panic!("the code exists"),
        }
    }
    assert_eq!(redeemed.len(), 1);
    assert_eq!(replays.len(), 15);
    assert!(
        replays.windows(2).all(|w| w[0] == w[1]),
        "one first session"
    );
}
