//! Telegram's OpenID Connect with tglink as the relying party (`shared::telegram::oidc`),
//! against the fake Telegram OpenID provider on loopback (`tests/py/fake_telegram_oidc.py`,
//! PyJWT-signed id_tokens): the whole code + PKCE exchange, every id_token attack refused with
//! its code, discovery and JWKS cached per instance, the one JWKS refetch on an unknown `kid`,
//! an unreachable Telegram as `Unavailable`, and no secret in errors or logs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::Algorithm;
use tglink_shared::{
    oauth::pkce,
    outbound::Outbound,
    telegram::oidc::{
        TelegramIdentity, TelegramOidc, TelegramOidcConfig, UpstreamAuthorization, UpstreamError,
    },
    time::{Clock, UnixTime},
};
use tglink_tests::fake_telegram_oidc::{Endpoint, FakeTelegramOidc, Misbehaviour, Outage};

const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback/telegram";

/// One sign-in's own values, as tglink's authorize step makes them.
struct Attempt {
    state: String,
    nonce: String,
    verifier: String,
}

impl Attempt {
    fn new() -> Self {
        Self {
            state: pkce::new_random_token(),
            nonce: pkce::new_random_token(),
            verifier: pkce::new_code_verifier(),
        }
    }
}

/// The browser's trip: tglink's authorization URL → Telegram approves → the callback's
/// `code` (the `state` checked) → redeemed by tglink.
async fn sign_in(
    fake: &FakeTelegramOidc,
    rp: &TelegramOidc,
) -> Result<TelegramIdentity, UpstreamError> {
    let attempt = Attempt::new();
    let code = authorize(fake, rp, &attempt).await?;
    rp.redeem(&code, &attempt.verifier, REDIRECT_URI, &attempt.nonce)
        .await
}

async fn authorize(
    fake: &FakeTelegramOidc,
    rp: &TelegramOidc,
    attempt: &Attempt,
) -> Result<String, UpstreamError> {
    let challenge = pkce::s256_challenge(&attempt.verifier);
    let url = rp
        .authorization_url(&UpstreamAuthorization {
            redirect_uri: REDIRECT_URI,
            state: &attempt.state,
            nonce: &attempt.nonce,
            code_challenge: &challenge,
            scope: "openid profile",
        })
        .await?;
    let callback = fake.approve(&url).await;
    assert!(callback.location.starts_with(REDIRECT_URI));
    assert_eq!(callback.params["state"], attempt.state);
    Ok(callback.params["code"].clone())
}

/// A clock tests move by hand.
fn test_clock() -> (Clock, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(UnixTime::now().secs()));
    let read = now.clone();
    (
        Clock::new(move || UnixTime(read.load(Ordering::SeqCst))),
        now,
    )
}

#[tokio::test]
async fn signs_in_with_code_and_pkce() {
    let fake = FakeTelegramOidc::start();
    fake.set_user(serde_json::json!({
        "id": 987654321, "first_name": "Grace", "username": "grace", "picture": "https://t.me/i/userpic/320/grace.jpg"
    }))
    .await;
    let rp = fake.relying_party();
    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();

    // What tglink asked Telegram for.
    let sent = fake
        .stats()
        .await
        .last_auth
        .expect("an authorization request");
    assert_eq!(sent["response_type"], "code");
    assert_eq!(sent["client_id"], fake.client_id);
    assert_eq!(sent["redirect_uri"], REDIRECT_URI);
    assert_eq!(sent["scope"], "openid profile");
    assert_eq!(sent["nonce"], attempt.nonce);
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(
        sent["code_challenge"],
        pkce::s256_challenge(&attempt.verifier)
    );

    let who = rp
        .redeem(&code, &attempt.verifier, REDIRECT_URI, &attempt.nonce)
        .await
        .unwrap();
    assert_eq!(who.telegram_user_id.get(), 987654321);
    assert_eq!(who.profile.username.as_deref(), Some("grace"));
    assert_eq!(who.profile.first_name.as_deref(), Some("Grace"));
    assert_eq!(
        who.picture.as_deref(),
        Some("https://t.me/i/userpic/320/grace.jpg")
    );
    // Telegram's `sub` is not the user id.
    assert!(!who.subject.is_empty());
    assert_ne!(who.subject, "987654321");
    let now = UnixTime::now().secs();
    assert!(who.auth_time.secs() <= now && who.auth_time.secs() + 60 > now);
}

#[tokio::test]
async fn every_bad_id_token_is_refused_with_its_code() {
    let fake = FakeTelegramOidc::start();
    let rp = fake.relying_party();
    for how in Misbehaviour::ALL {
        fake.misbehave_next(how).await;
        let err = sign_in(&fake, &rp).await.unwrap_err();
        assert_eq!(
            err,
            UpstreamError::InvalidIdToken(how.expected_code()),
            "{how:?}"
        );
    }
    // Not a JWS at all.
    for garbage in [
        "",
        "abc",
        "a.b.c",
        "e30.e30.",
        "eyJhbGciOiJSUzI1NiJ9.!!.sig",
    ] {
        assert_eq!(
            rp.verify_id_token(garbage, "n").await.unwrap_err(),
            UpstreamError::InvalidIdToken("malformed"),
            "{garbage:?}"
        );
    }
    // The fake behaves again: the refusals were the id_tokens', not tglink's state.
    sign_in(&fake, &rp).await.unwrap();
}

#[tokio::test]
async fn a_bot_signing_in_as_itself_is_refused() {
    let fake = FakeTelegramOidc::start();
    let bot_id: i64 = fake.client_id.parse().unwrap();
    fake.set_user(serde_json::json!({"id": bot_id, "first_name": "Bot"}))
        .await;
    let err = sign_in(&fake, &fake.relying_party()).await.unwrap_err();
    assert_eq!(err, UpstreamError::InvalidIdToken("bot_account"));
}

#[tokio::test]
async fn the_code_is_one_time_and_bound_to_verifier_redirect_and_client() {
    let fake = FakeTelegramOidc::start();
    let rp = fake.relying_party();

    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();
    rp.redeem(&code, &attempt.verifier, REDIRECT_URI, &attempt.nonce)
        .await
        .unwrap();
    let again = rp
        .redeem(&code, &attempt.verifier, REDIRECT_URI, &attempt.nonce)
        .await;
    assert_eq!(again.unwrap_err(), UpstreamError::Refused("invalid_grant"));

    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();
    let other_verifier = pkce::new_code_verifier();
    let err = rp
        .redeem(&code, &other_verifier, REDIRECT_URI, &attempt.nonce)
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Refused("invalid_grant"));

    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();
    let err = rp
        .redeem(
            &code,
            &attempt.verifier,
            "http://127.0.0.1:9/elsewhere",
            &attempt.nonce,
        )
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Refused("invalid_grant"));

    // A wrong client secret: Telegram refuses the client.
    let wrong = TelegramOidc::new(
        TelegramOidcConfig::new(
            &fake.issuer,
            &fake.client_id,
            tglink_shared::secret::SecretString::new("not-the-secret"),
        ),
        Outbound::default(),
        Clock::system(),
    );
    let attempt = Attempt::new();
    let code = authorize(&fake, &wrong, &attempt).await.unwrap();
    let err = wrong
        .redeem(&code, &attempt.verifier, REDIRECT_URI, &attempt.nonce)
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::Refused("invalid_client"));

    // The nonce tglink sent, not another one.
    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();
    let err = rp
        .redeem(&code, &attempt.verifier, REDIRECT_URI, "another-nonce")
        .await
        .unwrap_err();
    assert_eq!(err, UpstreamError::InvalidIdToken("nonce_mismatch"));
}

#[tokio::test]
async fn discovery_and_jwks_are_fetched_once_per_instance() {
    let fake = FakeTelegramOidc::start();
    let rp = fake.relying_party();
    for _ in 0..3 {
        sign_in(&fake, &rp).await.unwrap();
    }
    let clone = rp.clone();
    sign_in(&fake, &clone).await.unwrap();
    let stats = fake.stats().await;
    assert_eq!((stats.discovery, stats.jwks, stats.token), (1, 1, 4));

    // A new instance (a cold start) fetches them again.
    sign_in(&fake, &fake.relying_party()).await.unwrap();
    let stats = fake.stats().await;
    assert_eq!((stats.discovery, stats.jwks), (2, 2));
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once() {
    let fake = FakeTelegramOidc::start();
    let (clock, now) = test_clock();
    let rp = TelegramOidc::new(fake.config(), Outbound::default(), clock);
    let nonce = "n-1";
    rp.verify_id_token(&fake.mint(nonce, None).await, nonce)
        .await
        .unwrap();
    assert_eq!(fake.stats().await.jwks, 1);

    // Telegram rotates its key: the new kid is unknown to the cached set, fetched once, found.
    fake.rotate_key(false).await;
    let rotated = fake.mint(nonce, None).await;
    now.fetch_add(61, Ordering::SeqCst);
    rp.verify_id_token(&rotated, nonce).await.unwrap();
    assert_eq!(fake.stats().await.jwks, 2);
    // ... and then known: no more fetches.
    rp.verify_id_token(&fake.mint(nonce, None).await, nonce)
        .await
        .unwrap();
    assert_eq!(fake.stats().await.jwks, 2);

    // A kid Telegram never published: refused; within a minute of the last fetch, not even
    // fetched again, however many arrive.
    for _ in 0..5 {
        let forged = fake.mint(nonce, Some(Misbehaviour::UnknownKid)).await;
        let err = rp.verify_id_token(&forged, nonce).await.unwrap_err();
        assert_eq!(err, UpstreamError::InvalidIdToken("unknown_kid"));
    }
    assert_eq!(fake.stats().await.jwks, 2);
    // A minute later: one refetch, still unknown, refused; the next is not fetched again.
    now.fetch_add(61, Ordering::SeqCst);
    for _ in 0..3 {
        let forged = fake.mint(nonce, Some(Misbehaviour::UnknownKid)).await;
        let err = rp.verify_id_token(&forged, nonce).await.unwrap_err();
        assert_eq!(err, UpstreamError::InvalidIdToken("unknown_kid"));
    }
    assert_eq!(fake.stats().await.jwks, 3);
}

#[tokio::test]
async fn a_rotation_right_after_a_fetch_is_seen_a_minute_later() {
    let fake = FakeTelegramOidc::start();
    let (clock, now) = test_clock();
    let rp = TelegramOidc::new(fake.config(), Outbound::default(), clock);
    rp.verify_id_token(&fake.mint("n", None).await, "n")
        .await
        .unwrap();
    fake.rotate_key(true).await;
    let rotated = fake.mint("n", None).await;
    // Within the refetch interval the new kid is refused without a call to Telegram...
    assert_eq!(
        rp.verify_id_token(&rotated, "n").await.unwrap_err(),
        UpstreamError::InvalidIdToken("unknown_kid")
    );
    assert_eq!(fake.stats().await.jwks, 1);
    // ... and accepted once it has passed.
    now.fetch_add(60, Ordering::SeqCst);
    rp.verify_id_token(&rotated, "n").await.unwrap();
    assert_eq!(fake.stats().await.jwks, 2);
}

#[tokio::test]
async fn algorithms_outside_the_allow_list_are_refused() {
    let fake = FakeTelegramOidc::start();
    let rs256_only = fake.relying_party();
    for alg in ["ES256", "EdDSA"] {
        fake.set_alg(alg).await;
        let token = fake.mint("n", None).await;
        assert_eq!(
            rs256_only.verify_id_token(&token, "n").await.unwrap_err(),
            UpstreamError::InvalidIdToken("alg_not_allowed"),
            "{alg}"
        );
    }
    // Allowed by configuration (what BotFather lets a bot select), they verify.
    let all = TelegramOidc::new(
        fake.config()
            .with_algorithms(vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]),
        Outbound::default(),
        Clock::system(),
    );
    for alg in ["ES256", "EdDSA", "RS256"] {
        fake.set_alg(alg).await;
        let token = fake.mint("n", None).await;
        let who = all.verify_id_token(&token, "n").await.unwrap();
        assert_eq!(who.telegram_user_id.get(), 424242, "{alg}");
    }
    // The attacks stay refused with every algorithm allowed.
    for how in [Misbehaviour::AlgNone, Misbehaviour::Hs256PublicKey] {
        let token = fake.mint("n", Some(how)).await;
        assert_eq!(
            all.verify_id_token(&token, "n").await.unwrap_err(),
            UpstreamError::InvalidIdToken("alg_not_allowed"),
            "{how:?}"
        );
    }
}

#[tokio::test]
async fn telegram_unreachable_is_unavailable_and_not_cached() {
    let fake = FakeTelegramOidc::start();
    let rp = fake.relying_party();
    fake.outage(Endpoint::Discovery, Outage::Down).await;
    assert!(matches!(
        sign_in(&fake, &rp).await.unwrap_err(),
        UpstreamError::Unavailable
    ));
    fake.outage(Endpoint::Discovery, Outage::Ok).await;

    // JWKS down on the first verification: unavailable, then fetched when it is back.
    fake.outage(Endpoint::Jwks, Outage::Down).await;
    assert!(matches!(
        sign_in(&fake, &rp).await.unwrap_err(),
        UpstreamError::Unavailable
    ));
    fake.outage(Endpoint::Jwks, Outage::Ok).await;
    sign_in(&fake, &rp).await.unwrap();

    fake.outage(Endpoint::Token, Outage::Down).await;
    assert!(matches!(
        sign_in(&fake, &rp).await.unwrap_err(),
        UpstreamError::Unavailable
    ));
    fake.outage(Endpoint::Token, Outage::Ok).await;
    sign_in(&fake, &rp).await.unwrap();
}

#[tokio::test]
async fn a_hanging_telegram_times_out_as_unavailable() {
    let fake = FakeTelegramOidc::start();
    fake.outage(Endpoint::Discovery, Outage::Hang).await;
    let rp = fake.relying_party();
    let started = Instant::now();
    let err = sign_in(&fake, &rp).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn no_secret_code_or_token_in_errors_or_logs() {
    let logs = tglink_tests::logs::capture();
    let fake = FakeTelegramOidc::start();
    let rp = fake.relying_party();
    let mut errors = Vec::new();
    // The secret as it travels too: in the `Authorization: Basic` credentials.
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", fake.client_id, fake.client_secret))
    };
    let mut secrets = vec![fake.client_secret.clone(), basic];
    for how in [Misbehaviour::BadSignature, Misbehaviour::WrongAud] {
        let token = fake.mint("n", Some(how)).await;
        errors.push(rp.verify_id_token(&token, "n").await.unwrap_err());
        secrets.push(token);
    }
    let attempt = Attempt::new();
    let code = authorize(&fake, &rp, &attempt).await.unwrap();
    errors.push(
        rp.redeem(
            &code,
            &pkce::new_code_verifier(),
            REDIRECT_URI,
            &attempt.nonce,
        )
        .await
        .unwrap_err(),
    );
    secrets.extend([code, attempt.verifier.clone()]);
    tracing::info!(test = "telegram_oidc", "secrets check");
    for err in &errors {
        let text = format!("{err} {err:?}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
    }
    assert!(!format!("{rp:?} {:?}", fake.config()).contains(&fake.client_secret));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    logs.assert_free_of(&secrets);
}
