//! Criterion benchmarks of tglink's hot paths, on realistic inputs, built with the release
//! profile (`make bench` builds and runs it; `CRITERION_HOME` says where results go):
//!
//! - initData validation: bot-token HMAC, and Telegram's Ed25519 third-party signature; and
//!   HMAC authentication alone (signature and age, fields decoded but not typed);
//! - app JWT verification (HS256, `iss`/`aud`/`exp`/`sub` required);
//! - one-time token mint, hash, and both;
//! - envelope seal and open with the local key (two attributes: bot token and session);
//! - for scale, the pieces a validation cannot avoid: parsing the initData fields, and one
//!   HMAC-SHA256 (aws-lc) over the initData data-check-string and over the JWT signing input.
//!
//! With `HOT_PATHS_INPUTS=<file>`, the initData and JWT inputs (and what verifies them) are
//! written there first, so that the peer libraries are measured on exactly the same strings.

use std::{hint::black_box, sync::Arc, time::Duration};

use aws_lc_rs::hmac;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tglink_shared::{
    auth::{DevClaims, JwtVerifier},
    config::{JwtConfig, JwtKey},
    ids::UserId,
    seal::{SealScope, Sealer, local::LocalKeys},
    telegram::initdata::{
        Scheme, Validator, WebAppSecret, parse,
        signing::{TestKeyPair, sign_ed25519},
    },
    time::UnixTime,
    token::OneTimeToken,
};

const BOT_TOKEN: &str = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
const BOT_ID: i64 = 7_000_000_001;
const JWT_SECRET: &str = "an-hs256-secret-of-at-least-32-bytes-for-bench";
const ISSUER: &str = "https://app.example";
const AUDIENCE: &str = "tglink";

struct Inputs {
    now: UnixTime,
    init_data: String,
    key_pair: TestKeyPair,
    jwt: String,
    jwt_config: JwtConfig,
}

impl Inputs {
    fn new() -> Self {
        let now = UnixTime::now();
        let user = json!({
            "id": 279_058_397,
            "first_name": "Vladislav",
            "last_name": "Kibenko",
            "username": "vdkfrost",
            "language_code": "ru",
            "is_premium": true,
            "allows_write_to_pm": true,
            "photo_url": "https://t.me/i/userpic/320/4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg"
        })
        .to_string();
        let key_pair = TestKeyPair::generate();
        // What a current Telegram client sends: `signature` (Ed25519) and `hash` (HMAC over
        // everything, `signature` included).
        let init_data = sign_ed25519(
            &[
                ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
                ("user", &user),
                ("auth_date", &now.secs().to_string()),
                ("chat_instance", "-8134722200314281151"),
                ("chat_type", "private"),
            ],
            BOT_ID,
            &key_pair,
            BOT_TOKEN,
        );
        let jwt_config = JwtConfig {
            key: JwtKey::Secret(JWT_SECRET.into()),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            admin_role: tglink_shared::auth::DEFAULT_ADMIN_ROLE.into(),
            service_role: tglink_shared::auth::DEFAULT_SERVICE_ROLE.into(),
            roles_claim: tglink_shared::auth::DEFAULT_ROLES_CLAIM.into(),
        };
        let mut claims = DevClaims::new("user-0f6c2a9e", &jwt_config, 86_400);
        claims.email = Some("ann@example.com".into());
        let jwt = tglink_shared::auth::sign_hs256(JWT_SECRET, &claims);
        Self {
            now,
            init_data,
            key_pair,
            jwt,
            jwt_config,
        }
    }

    fn write(&self, path: &str) {
        let doc = json!({
            "init_data": self.init_data,
            "bot_token": BOT_TOKEN,
            "bot_id": BOT_ID,
            "max_age_secs": 86_400,
            "jwt": self.jwt,
            "jwt_secret": JWT_SECRET,
            "issuer": ISSUER,
            "audience": AUDIENCE,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json"))
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

fn hot_paths(c: &mut Criterion) {
    let inputs = Inputs::new();
    if let Ok(path) = std::env::var("HOT_PATHS_INPUTS") {
        inputs.write(&path);
    }

    let mut g = c.benchmark_group("initdata");
    g.throughput(Throughput::Elements(1));
    let hmac = Validator {
        scheme: Scheme::Hmac(WebAppSecret::from_bot_token(BOT_TOKEN)),
        max_age_secs: 86_400,
    };
    let ed25519 = Validator {
        scheme: Scheme::ThirdParty {
            bot_id: BOT_ID,
            public_key: inputs.key_pair.public_key(),
        },
        max_age_secs: 86_400,
    };
    hmac.validate(&inputs.init_data, inputs.now)
        .expect("valid under HMAC");
    ed25519
        .validate(&inputs.init_data, inputs.now)
        .expect("valid under Ed25519");
    g.bench_function("hmac_validate", |b| {
        b.iter(|| hmac.validate(black_box(&inputs.init_data), inputs.now))
    });
    g.bench_function("ed25519_validate", |b| {
        b.iter(|| ed25519.validate(black_box(&inputs.init_data), inputs.now))
    });
    // Signature and age only, fields decoded but not typed: the work of the peers' `validate`.
    hmac.authenticate(&inputs.init_data, inputs.now)
        .expect("authentic under HMAC");
    g.bench_function("hmac_authenticate", |b| {
        b.iter(|| hmac.authenticate(black_box(&inputs.init_data), inputs.now))
    });
    // The unavoidable pieces, for scale: splitting and decoding the fields, and the HMAC.
    g.bench_function("parse_only", |b| {
        b.iter(|| parse(black_box(&inputs.init_data)))
    });
    let check_string = parse(&inputs.init_data)
        .expect("parses")
        .data_check_string();
    let secret_key = hmac::Key::new(
        hmac::HMAC_SHA256,
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"WebAppData"),
            BOT_TOKEN.as_bytes(),
        )
        .as_ref(),
    );
    g.bench_function("hmac_sha256_only", |b| {
        b.iter(|| hmac::sign(&secret_key, black_box(check_string.as_bytes())))
    });
    g.finish();

    let mut g = c.benchmark_group("jwt");
    g.throughput(Throughput::Elements(1));
    let verifier = JwtVerifier::new(&inputs.jwt_config).expect("verifier");
    verifier.verify(&inputs.jwt).expect("valid JWT");
    g.bench_function("hs256_verify", |b| {
        b.iter(|| verifier.verify(black_box(&inputs.jwt)))
    });
    let signing_input = inputs.jwt.rsplit_once('.').expect("a JWT").0.to_owned();
    let jwt_key = hmac::Key::new(hmac::HMAC_SHA256, JWT_SECRET.as_bytes());
    g.bench_function("hmac_sha256_only", |b| {
        b.iter(|| hmac::sign(&jwt_key, black_box(signing_input.as_bytes())))
    });
    g.finish();

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    let token = OneTimeToken::mint();
    g.bench_function("mint", |b| b.iter(OneTimeToken::mint));
    g.bench_function("hash", |b| b.iter(|| black_box(&token).hash()));
    g.bench_function("mint_and_hash", |b| b.iter(|| OneTimeToken::mint().hash()));
    g.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sealer = Sealer::new(Arc::new(
        LocalKeys::from_bytes(&[7u8; 32]).expect("a 32-byte key"),
    ));
    let scope = SealScope::new(
        "bench",
        &UserId::parse("user-0f6c2a9e").expect("user id"),
        "USER#user-0f6c2a9e",
    );
    let session = "1BVtsOKABu".to_owned() + &"Ab3_".repeat(88);
    let attributes: [(&str, &[u8]); 2] = [
        ("bot_token", BOT_TOKEN.as_bytes()),
        ("telegram_session", session.as_bytes()),
    ];
    let plaintext = (BOT_TOKEN.len() + session.len()) as u64;
    let sealed = runtime
        .block_on(sealer.seal(&scope, &attributes))
        .expect("seal");
    let mut g = c.benchmark_group("seal_local");
    g.throughput(Throughput::Bytes(plaintext));
    g.bench_function("seal", |b| {
        b.to_async(&runtime)
            .iter(|| sealer.seal(&scope, black_box(&attributes)))
    });
    g.bench_function("open", |b| {
        b.to_async(&runtime)
            .iter(|| sealer.open(&scope, black_box(&sealed)))
    });
    g.finish();

    access_tokens(c, &runtime, &sealer);
}

/// Local ES256 signing and verification of an access token (the signer's key and the
/// verifier's key set cached, as on a warm instance: no store or KMS call per token).
fn access_tokens(c: &mut Criterion, runtime: &tokio::runtime::Runtime, sealer: &Sealer) {
    use tglink_shared::{
        oauth::{AccessTokenClaims, AccessTokenVerifier, TokenConfig, TokenSigner},
        store::{SigningKeys, sqlite::SqliteStore},
    };
    let dir = std::env::temp_dir().join(format!("tglink-bench-{}", std::process::id()));
    let store = Arc::new(SqliteStore::open(dir.join("bench.db")).expect("sqlite store"));
    let keys: Arc<dyn SigningKeys> = store;
    let config = TokenConfig {
        issuer: "https://auth.example".into(),
        audience: "app".into(),
        access_token_ttl: Duration::from_secs(300),
    };
    let iat = UnixTime::now().secs() as i64;
    let claims = AccessTokenClaims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: "279058397".into(),
        client_id: "tglink-miniapp".into(),
        app_user_id: Some("user-0f6c2a9e".into()),
        sid: "3q2-7wE9rLQ8xVZ4b1YkTn5mA0cJdHfP6uGsXoIiKlM".into(),
        amr: vec!["telegram_miniapp".into()],
        auth_time: iat,
        iat,
        exp: iat + 300,
        jti: "b5b7f1c0e2d94a7c8e6f3a1d2c4b6a8e".into(),
        username: Some("vdkfrost".into()),
        first_name: Some("Vladislav".into()),
        language_code: Some("en".into()),
        is_premium: Some(true),
    };
    let signer = TokenSigner::new(keys.clone(), sealer.clone());
    let verifier = AccessTokenVerifier::new(config, keys);
    let now = UnixTime(iat as u64);
    let token = runtime.block_on(signer.sign(&claims)).expect("sign");
    runtime
        .block_on(verifier.verify(&token, now))
        .expect("verify");
    let mut g = c.benchmark_group("access_token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("es256_sign", |b| {
        b.to_async(runtime).iter(|| signer.sign(black_box(&claims)))
    });
    g.bench_function("es256_verify", |b| {
        b.to_async(runtime)
            .iter(|| verifier.verify(black_box(&token), now))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hot_paths
}
criterion_main!(benches);
