//! Sealing: round trip, context binding (another user's context does not open), integrity
//! (a flipped byte does not open), and one key unwrap per record.

use tglink_shared::{
    ids::UserId,
    seal::{SealError, SealScope},
};

use crate::fixtures::Backend;

fn scope(user: &str) -> SealScope {
    let user = UserId::parse(user).unwrap();
    SealScope::new("credentials", &user, format!("USER#{user}/CREDENTIALS"))
}

const ATTRS: &[(&str, &[u8])] = &[
    ("bot_token", b"123456:AAE-secret-bot-token"),
    ("session", b"1AgAOMTQ-mtproto-session-string"),
];

pub async fn round_trip_and_second_client(backend: Backend) {
    let fx = backend.sealer().await;
    let sealed = fx.sealer.seal(&scope("alice"), ATTRS).await.unwrap();
    for (_, plain) in ATTRS {
        for blob in sealed.attributes.values() {
            assert!(
                !blob.windows(plain.len()).any(|w| w == *plain),
                "plaintext must not appear in the sealed record"
            );
        }
    }
    let opened = fx.sealer.open(&scope("alice"), &sealed).await.unwrap();
    assert_eq!(
        opened.text("bot_token"),
        Some("123456:AAE-secret-bot-token")
    );
    assert_eq!(
        opened.text("session"),
        Some("1AgAOMTQ-mtproto-session-string")
    );
    let again = fx
        .second_client()
        .await
        .open(&scope("alice"), &sealed)
        .await
        .unwrap();
    assert_eq!(
        again.text("session"),
        Some("1AgAOMTQ-mtproto-session-string")
    );
}

pub async fn other_users_context_does_not_open(backend: Backend) {
    let fx = backend.sealer().await;
    let sealed = fx.sealer.seal(&scope("alice"), ATTRS).await.unwrap();
    let err = fx.sealer.open(&scope("bob"), &sealed).await.unwrap_err();
    assert!(matches!(err, SealError::Integrity), "got {err:?}");
    // Bob's record with Alice's sealed values (whole record copied) does not open either.
    let bob_sealed = fx.sealer.seal(&scope("bob"), ATTRS).await.unwrap();
    let mut franken = bob_sealed.clone();
    franken.attributes = sealed.attributes.clone();
    assert!(fx.sealer.open(&scope("bob"), &franken).await.is_err());
}

pub async fn flipped_bytes_do_not_open(backend: Backend) {
    let fx = backend.sealer().await;
    let sealed = fx.sealer.seal(&scope("alice"), ATTRS).await.unwrap();
    for attr in ["bot_token", "session"] {
        let blob = &sealed.attributes[attr];
        for index in [0, 1, blob.len() / 2, blob.len() - 1] {
            let mut tampered = sealed.clone();
            tampered.attributes.get_mut(attr).unwrap()[index] ^= 0x01;
            let err = fx
                .sealer
                .open(&scope("alice"), &tampered)
                .await
                .unwrap_err();
            assert!(
                matches!(err, SealError::Integrity),
                "{attr}[{index}]: {err:?}"
            );
        }
    }
    let mut tampered = sealed.clone();
    let last = tampered.wrapped_key.len() - 1;
    tampered.wrapped_key[last] ^= 0x01;
    assert!(fx.sealer.open(&scope("alice"), &tampered).await.is_err());
}

pub async fn moved_attribute_or_record_does_not_open(backend: Backend) {
    let fx = backend.sealer().await;
    let sealed = fx.sealer.seal(&scope("alice"), ATTRS).await.unwrap();
    let mut swapped = sealed.clone();
    let token = swapped.attributes["bot_token"].clone();
    swapped.attributes.insert("session".into(), token);
    assert!(matches!(
        fx.sealer.open(&scope("alice"), &swapped).await,
        Err(SealError::Integrity)
    ));
    let user = UserId::parse("alice").unwrap();
    let other_record = SealScope::new("credentials", &user, "USER#alice/OTHER");
    assert!(fx.sealer.open(&other_record, &sealed).await.is_err());
    let other_purpose = SealScope::new("registration", &user, "USER#alice/CREDENTIALS");
    assert!(fx.sealer.open(&other_purpose, &sealed).await.is_err());
}

pub async fn one_key_unwrap_per_record(backend: Backend) {
    let fx = backend.sealer().await;
    let (sealer, calls) = fx.counting().await;
    let sealed = sealer.seal(&scope("alice"), ATTRS).await.unwrap();
    assert_eq!(calls.calls(), 1, "sealing a record costs one data key");
    let opened = sealer.open(&scope("alice"), &sealed).await.unwrap();
    assert_eq!(
        opened.text("bot_token"),
        Some("123456:AAE-secret-bot-token")
    );
    assert_eq!(
        calls.calls(),
        2,
        "opening a two-attribute record costs one unwrap"
    );
}
