//! The deployment helpers a user runs by hand: `infra/ssm_secrets.py` (make put-secrets) against
//! SSM on moto, and `infra/set-webhook.sh` (make set-webhook) against the fake Bot API, with the
//! secrets from the environment or from SSM.

use std::process::{Command, Output};

use serde_json::json;
use tglink_shared::{
    auth::JwtVerifier,
    config::{JwtConfig, MapEnv},
};
use tglink_tests::{
    cloud::{isolated_aws_env, put_secrets, venv_python},
    fake_telegram::FakeTelegram,
    lambda_events::DEV_BOT_TOKEN,
    moto::{Moto, moto},
    workspace_root,
};

const URL: &str =
    "https://abc123example.execute-api.eu-central-1.amazonaws.com/api/telegram/webhook";
const SECRET: &str = "webhook-secret-from-the-test_0123";

fn set_webhook(url: &str, vars: &[(&str, &str)], stage_from_ssm: Option<&str>) -> Output {
    let mut cmd = Command::new(workspace_root().join("infra/set-webhook.sh"));
    cmd.arg(url);
    isolated_aws_env(&mut cmd, &moto().endpoint);
    if let Some(stage) = stage_from_ssm {
        cmd.env("STAGE", stage).env("PYTHON", venv_python());
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run infra/set-webhook.sh")
}

fn ssm_secrets(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(venv_python());
    cmd.arg(workspace_root().join("infra/ssm_secrets.py"))
        .args(args);
    isolated_aws_env(&mut cmd, &moto().endpoint);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run infra/ssm_secrets.py")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_registered(telegram: &FakeTelegram, secret: &str) {
    let calls = telegram.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(methods, ["setWebhook", "getWebhookInfo"]);
    assert_eq!(calls[0].token, DEV_BOT_TOKEN);
    assert_eq!(
        calls[0].body,
        json!({"url": URL, "secret_token": secret, "allowed_updates": ["message"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_webhook_with_secrets_from_the_environment() {
    let telegram = FakeTelegram::start().await;
    telegram.add_bot(DEV_BOT_TOKEN, "dev_uploads_bot");
    let base = telegram.base_url();
    let out = tokio::task::spawn_blocking(move || {
        set_webhook(
            URL,
            &[
                ("TELEGRAM_API_BASE", &base),
                ("TELEGRAM_BOT_TOKEN", DEV_BOT_TOKEN),
                ("TELEGRAM_WEBHOOK_SECRET", SECRET),
            ],
            None,
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_registered(&telegram, SECRET);
    let printed = stdout(&out);
    assert!(printed.contains("\"ok\":true"), "{printed}");
    assert!(!printed.contains(DEV_BOT_TOKEN) && !printed.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_webhook_with_secrets_from_ssm() {
    let telegram = FakeTelegram::start().await;
    telegram.add_bot(DEV_BOT_TOKEN, "dev_uploads_bot");
    let stage = Moto::unique("w").replace('-', "");
    put_secrets(
        &format!("/tglink/{stage}/"),
        &[
            ("TELEGRAM_BOT_TOKEN".into(), DEV_BOT_TOKEN.into()),
            ("TELEGRAM_WEBHOOK_SECRET".into(), SECRET.into()),
        ],
    );
    let base = telegram.base_url();
    let out = tokio::task::spawn_blocking(move || {
        set_webhook(URL, &[("TELEGRAM_API_BASE", &base)], Some(&stage))
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_registered(&telegram, SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_webhook_refuses_what_telegram_would_refuse() {
    let telegram = FakeTelegram::start().await;
    telegram.add_bot(DEV_BOT_TOKEN, "dev_uploads_bot");
    let base = telegram.base_url();
    for (url, secret) in [
        ("http://example.com/api/telegram/webhook", SECRET),
        ("https://example.com:9000/api/telegram/webhook", SECRET),
        ("https://example.com/a\"b", SECRET),
        (URL, "has space"),
        (URL, "quote\"d"),
    ] {
        let base = base.clone();
        let (url, secret) = (url.to_owned(), secret.to_owned());
        let out = tokio::task::spawn_blocking(move || {
            set_webhook(
                &url,
                &[
                    ("TELEGRAM_API_BASE", &base),
                    ("TELEGRAM_BOT_TOKEN", DEV_BOT_TOKEN),
                    ("TELEGRAM_WEBHOOK_SECRET", &secret),
                ],
                None,
            )
        })
        .await
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(telegram.calls().is_empty(), "nothing was sent");
}

/// Telegram's OpenID Connect client secret (issue 15) is stored like the others, checked for
/// its form first, and never printed.
#[test]
fn put_secrets_stores_the_telegram_oidc_client_secret() {
    let prefix = format!("/tglink/{}/", Moto::unique("o").replace('-', ""));
    let value = "tg-oidc-Client_Secret.0123456789";
    let out = ssm_secrets(
        &["put", "--prefix", &prefix, "--non-interactive"],
        &[("TELEGRAM_OIDC_CLIENT_SECRET", value)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("wrote {prefix}TELEGRAM_OIDC_CLIENT_SECRET")),
        "{printed}"
    );
    assert!(!printed.contains(value));
    let out = ssm_secrets(
        &["get", "--prefix", &prefix, "TELEGRAM_OIDC_CLIENT_SECRET"],
        &[],
    );
    assert_eq!(stdout(&out), value);

    let bad = "has a space in it";
    let out = ssm_secrets(
        &["put", "--prefix", &prefix, "--non-interactive"],
        &[("TELEGRAM_OIDC_CLIENT_SECRET", bad)],
    );
    assert_eq!(out.status.code(), Some(2));
    let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains("TELEGRAM_OIDC_CLIENT_SECRET is malformed"),
        "{said}"
    );
    assert!(!said.contains(bad));
}

#[test]
fn put_secrets_generates_missing_ones_once_and_never_prints_values() {
    let prefix = format!("/tglink/{}/", Moto::unique("s").replace('-', ""));
    let jwt = "a-jwt-secret-of-at-least-32-bytes-0123456789";
    let out = ssm_secrets(
        &[
            "put",
            "--prefix",
            &prefix,
            "--non-interactive",
            "--generate-missing",
        ],
        &[("APP_JWT_SECRET", jwt)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("wrote {prefix}APP_JWT_SECRET")),
        "{printed}"
    );
    assert!(
        printed.contains("generated TELEGRAM_WEBHOOK_SECRET"),
        "{printed}"
    );
    assert!(
        printed.contains("generated REGISTRATION_CALLBACK_SECRET"),
        "{printed}"
    );
    assert!(!printed.contains(jwt));

    let get = |name: &str| {
        let out = ssm_secrets(&["get", "--prefix", &prefix, name], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    assert_eq!(get("APP_JWT_SECRET"), jwt);
    let webhook = get("TELEGRAM_WEBHOOK_SECRET");
    assert!(!printed.contains(&webhook), "a generated value was printed");
    assert!(
        webhook.len() >= 40
            && webhook
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "a valid webhook secret"
    );

    // A second run keeps the generated secrets; a PEM key replaces the HS256 secret.
    let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----";
    let out = ssm_secrets(
        &[
            "put",
            "--prefix",
            &prefix,
            "--non-interactive",
            "--generate-missing",
        ],
        &[("APP_JWT_PUBLIC_KEY", pem)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout(&out).contains("generated"), "{}", stdout(&out));
    assert_eq!(get("TELEGRAM_WEBHOOK_SECRET"), webhook);
    assert_eq!(get("APP_JWT_PUBLIC_KEY"), pem);
    let gone = ssm_secrets(&["get", "--prefix", &prefix, "APP_JWT_SECRET"], &[]);
    assert_eq!(gone.status.code(), Some(2), "the HS256 secret was removed");

    // Malformed values are refused before anything is written.
    let out = ssm_secrets(
        &["put", "--prefix", &prefix, "--non-interactive"],
        &[
            ("APP_JWT_SECRET", "short"),
            ("TELEGRAM_BOT_TOKEN", DEV_BOT_TOKEN),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let missing = ssm_secrets(&["get", "--prefix", &prefix, "TELEGRAM_BOT_TOKEN"], &[]);
    assert_eq!(missing.status.code(), Some(2), "nothing was written");
}

/// `infra/dev_jwt.py` (`docs/deploy.md`: "Try it") signs JWTs the functions accept.
#[test]
fn dev_jwt_signs_tokens_the_functions_accept() {
    let secret = "a-jwt-secret-of-at-least-32-bytes-0123456789";
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut cmd = Command::new(venv_python());
        cmd.arg(workspace_root().join("infra/dev_jwt.py"))
            .args(args);
        cmd.env_clear();
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("run infra/dev_jwt.py")
    };
    let out = run(
        &[
            "--sub",
            "alice",
            "--iss",
            "my-app",
            "--aud",
            "tglink",
            "--roles",
            "tglink:admin",
        ],
        &[("APP_JWT_SECRET", secret)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwt = stdout(&out).trim().to_owned();
    let config = MapEnv::new()
        .with("APP_JWT_SECRET", secret)
        .with("APP_JWT_ISSUER", "my-app")
        .with("APP_JWT_AUDIENCE", "tglink");
    let verifier = JwtVerifier::new(&JwtConfig::from_env(&config).unwrap()).unwrap();
    let user = verifier.verify(&jwt).expect("a valid JWT");
    assert_eq!(user.user_id.as_str(), "alice");
    assert!(user.is_admin());
    let wrong = MapEnv::new()
        .with(
            "APP_JWT_SECRET",
            "another-secret-of-at-least-32-bytes-000000",
        )
        .with("APP_JWT_ISSUER", "my-app")
        .with("APP_JWT_AUDIENCE", "tglink");
    assert!(
        JwtVerifier::new(&JwtConfig::from_env(&wrong).unwrap())
            .unwrap()
            .verify(&jwt)
            .is_err()
    );
    let refused = run(
        &["--sub", "alice", "--iss", "a", "--aud", "b"],
        &[("APP_JWT_SECRET", "short")],
    );
    assert!(!refused.status.success(), "a short secret is refused");
}
