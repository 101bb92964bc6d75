//! Signing keys: the first key is created once however many instances race for it, a rotation
//! retires the current key in the same write that adds the new one, the write is conditional,
//! the private half is stored sealed, and a token signed by one instance verifies on another.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use tglink_shared::{
    ids::UserId,
    oauth::{
        AccessTokenClaims, AccessTokenVerifier, KEY_ACTIVATION_SECS, TokenConfig, TokenSigner, keys,
    },
    seal::SealScope,
    store::{
        AddOutcome,
        signing_keys::{PRIVATE_KEY_ATTRIBUTE, SIGNING_KEY_OWNER},
    },
    time::UnixTime,
};

use crate::fixtures::Backend;

const T0: u64 = 1_800_000_000;

fn claims(iat: u64) -> AccessTokenClaims {
    let iat = iat as i64;
    AccessTokenClaims {
        iss: "https://issuer.example".into(),
        aud: "app".into(),
        sub: "42".into(),
        client_id: "miniapp".into(),
        app_user_id: Some("u1".into()),
        sid: "s1".into(),
        amr: vec!["telegram_miniapp".into()],
        auth_time: iat,
        iat,
        exp: iat + 300,
        jti: "j1".into(),
        username: None,
        first_name: None,
        language_code: None,
        is_premium: None,
    }
}

fn config() -> TokenConfig {
    TokenConfig {
        issuer: "https://issuer.example".into(),
        audience: "app".into(),
        access_token_ttl: Duration::from_secs(300),
    }
}

fn kid_of(token: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

pub async fn the_first_key_is_created_once_under_concurrency(backend: Backend) {
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = fx.second_client().await;
        let sealer = sealer.second_client().await;
        tasks.push(tokio::spawn(async move {
            TokenSigner::new(store.signing_keys(), sealer)
                .sign(&claims(T0))
                .await
                .unwrap()
        }));
    }
    let mut kids = BTreeSet::new();
    for task in tasks {
        kids.insert(kid_of(&task.await.unwrap()));
    }
    assert_eq!(kids.len(), 1, "{kids:?}");
    let set = fx.store.signing_keys().key_set().await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.current.as_ref(), kids.first());
}

pub async fn a_rotation_retires_the_current_key_and_both_stay_published(backend: Backend) {
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let signing_keys = fx.store.signing_keys();
    let old = TokenSigner::new(signing_keys.clone(), sealer.sealer.clone())
        .sign(&claims(T0))
        .await
        .unwrap();
    let new_kid = keys::rotate(signing_keys.as_ref(), &sealer.sealer, UnixTime(T0 + 10))
        .await
        .unwrap();
    let set = fx
        .second_client()
        .await
        .signing_keys()
        .key_set()
        .await
        .unwrap();
    assert_eq!(set.current.as_deref(), Some(new_kid.as_str()));
    let old_record = set.keys.iter().find(|k| k.kid == kid_of(&old)).unwrap();
    assert_eq!(old_record.retired_at, Some(UnixTime(T0 + 10)));
    assert_eq!(set.current_key().unwrap().retired_at, None);
    let keep = config().keep_retired_secs();
    assert_eq!(set.published(UnixTime(T0 + 11), keep).len(), 2);
    assert_eq!(set.published(UnixTime(T0 + 10 + keep), keep).len(), 1);
    // A fresh instance signs with the old key until the new one has been published for
    // KEY_ACTIVATION_SECS, then with the new one; the old token still verifies there.
    let second = fx.second_client().await;
    let early = TokenSigner::new(second.signing_keys(), sealer.second_client().await)
        .sign(&claims(T0 + 20))
        .await
        .unwrap();
    assert_eq!(kid_of(&early), kid_of(&old));
    let t1 = T0 + 10 + KEY_ACTIVATION_SECS;
    let token = TokenSigner::new(second.signing_keys(), sealer.second_client().await)
        .sign(&claims(t1))
        .await
        .unwrap();
    assert_eq!(kid_of(&token), new_kid);
    let verifier = AccessTokenVerifier::new(config(), second.signing_keys());
    verifier.verify(&old, UnixTime(t1)).await.unwrap();
    verifier.verify(&token, UnixTime(t1)).await.unwrap();
}

pub async fn adding_a_key_is_conditional_on_the_current_one(backend: Backend) {
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let signing_keys = fx.store.signing_keys();
    let first = keys::new_record(&sealer.sealer, UnixTime(T0))
        .await
        .unwrap();
    assert_eq!(
        signing_keys
            .add_current(&first, None, UnixTime(T0))
            .await
            .unwrap(),
        AddOutcome::Added
    );
    // A second "first key" loses, and writes nothing.
    let other = keys::new_record(&sealer.sealer, UnixTime(T0))
        .await
        .unwrap();
    assert_eq!(
        signing_keys
            .add_current(&other, None, UnixTime(T0))
            .await
            .unwrap(),
        AddOutcome::Superseded
    );
    // A rotation from a key that is not current loses too.
    assert_eq!(
        signing_keys
            .add_current(&other, Some("not-the-current-kid"), UnixTime(T0))
            .await
            .unwrap(),
        AddOutcome::Superseded
    );
    // The same kid twice loses.
    assert_eq!(
        signing_keys
            .add_current(&first, Some(&first.kid), UnixTime(T0))
            .await
            .unwrap(),
        AddOutcome::Superseded
    );
    let set = signing_keys.key_set().await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0], first);
    assert_eq!(set.current.as_deref(), Some(first.kid.as_str()));
    // From the current one it wins.
    assert_eq!(
        signing_keys
            .add_current(&other, Some(&first.kid), UnixTime(T0 + 1))
            .await
            .unwrap(),
        AddOutcome::Added
    );
    assert_eq!(signing_keys.key_set().await.unwrap().keys.len(), 2);
}

pub async fn the_private_key_is_stored_sealed_for_its_purpose(backend: Backend) {
    let fx = backend.store().await;
    let sealer = backend.sealer().await;
    let record = keys::new_record(&sealer.sealer, UnixTime(T0))
        .await
        .unwrap();
    fx.store
        .signing_keys()
        .add_current(&record, None, UnixTime(T0))
        .await
        .unwrap();
    let stored = fx.store.signing_keys().key_set().await.unwrap();
    let stored = stored.current_key().unwrap().clone();
    let pkcs8 = keys::open_private(&sealer.second_client().await, &stored)
        .await
        .unwrap();
    let blob = &stored.sealed.attributes[PRIVATE_KEY_ATTRIBUTE];
    // The private scalar (the last 32 bytes of the key's PKCS#8 prefix region) never appears.
    assert!(pkcs8.expose().len() > 64);
    assert!(
        !blob
            .windows(32)
            .any(|w| pkcs8.expose().windows(32).any(|p| p == w)),
        "the private key is stored sealed"
    );
    // Another purpose (or owner) does not open it.
    let owner = UserId::parse(SIGNING_KEY_OWNER).unwrap();
    let wrong = SealScope::new("credentials", &owner, format!("SIGNKEY#{}", stored.kid));
    assert!(sealer.sealer.open(&wrong, &stored.sealed).await.is_err());
    let arc = Arc::new(stored);
    assert_eq!(arc.x.len(), 43);
}
