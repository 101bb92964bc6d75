//! A cloud-like deployment on loopback: a fresh DynamoDB table and KMS key on moto, the service
//! secrets as SSM SecureStrings under a fresh `/tglink/<stage>/` (written by the documented
//! `infra/ssm_secrets.py put`), the fake Bot API, and a recording proxy in front of moto — with
//! the environment the template gives the functions (`TGLINK_SSM_PREFIX` instead of secrets).

use std::process::Command;

use tglink_shared::config::MapEnv;

use crate::{
    aws_recorder::{AwsRecorder, key_arn},
    fake_telegram::FakeTelegram,
    fake_telegram_oidc::FakeTelegramOidc,
    lambda_events::{DEV_BOT_TOKEN, dev_config, dev_secrets, dev_var},
    moto::{Moto, moto},
    template::Deployment,
};

pub struct CloudLike {
    pub recorder: AwsRecorder,
    pub telegram: FakeTelegram,
    /// Telegram's OpenID provider for `dev.env`'s bot (`authorize` signs in through it).
    pub telegram_oidc: FakeTelegramOidc,
    pub deployment: Deployment,
    /// What each function gets as its environment.
    pub env: MapEnv,
}

impl CloudLike {
    pub async fn start() -> Self {
        let moto = moto();
        let table = moto.new_table().await.table().to_owned();
        let key_id = moto.new_kms_key().await;
        let stage = Moto::unique("t").replace('-', "");
        let prefix = format!("/tglink/{stage}/");
        put_secrets(&prefix, &dev_secrets());
        let recorder = AwsRecorder::start(&moto.endpoint).await;
        let telegram = FakeTelegram::start().await;
        telegram.add_bot(DEV_BOT_TOKEN, "dev_uploads_bot");
        // The deployment's own bot (notify sends with it).
        telegram.add_bot(&dev_var("TELEGRAM_BOT_TOKEN"), "tglink_dev_bot");
        let bot_id = dev_var("TELEGRAM_BOT_TOKEN")
            .split(':')
            .next()
            .expect("a bot token")
            .to_owned();
        let telegram_oidc =
            FakeTelegramOidc::start_with(&bot_id, &dev_var("TELEGRAM_OIDC_CLIENT_SECRET"));
        let env = dev_config()
            .merge(moto.env())
            .with("AWS_ENDPOINT_URL", recorder.endpoint())
            .with("TGLINK_STORE", "dynamodb")
            .with("TGLINK_TABLE", &table)
            .with("TGLINK_SEALER", "kms")
            .with("TGLINK_KMS_KEY_ID", key_arn(&key_id))
            .with("TGLINK_SSM_PREFIX", &prefix)
            .with("TELEGRAM_API_BASE", telegram.base_url())
            .with("TELEGRAM_OIDC_ISSUER", &telegram_oidc.issuer);
        Self {
            recorder,
            telegram,
            telegram_oidc,
            deployment: Deployment {
                stack: "tglink-test".into(),
                stage,
                table,
                key_arn: key_arn(&key_id),
            },
            env,
        }
    }
}

/// The Python of the pinned venv (which has boto3, as a dependency of moto).
pub fn venv_python() -> std::path::PathBuf {
    std::env::var("MOTO_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|_| crate::workspace_root().join(".venv/bin/python"))
}

/// Runs `infra/ssm_secrets.py put --prefix <prefix> --non-interactive` against moto with
/// `secrets` as its environment: the documented way to store the service secrets.
pub fn put_secrets(prefix: &str, secrets: &[(String, String)]) {
    let mut cmd = Command::new(venv_python());
    cmd.arg(crate::workspace_root().join("infra/ssm_secrets.py"))
        .args(["put", "--prefix", prefix, "--non-interactive"]);
    isolated_aws_env(&mut cmd, &moto().endpoint);
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run infra/ssm_secrets.py");
    assert!(
        out.status.success(),
        "ssm_secrets.py put failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for (name, value) in secrets {
        assert!(
            printed.contains(&format!("wrote {prefix}{name}")),
            "{printed}"
        );
        assert!(
            !printed.contains(value.as_str()),
            "a secret value was printed"
        );
    }
}

/// Clears the environment of `cmd` but for `PATH` and points boto3 at `endpoint` with moto's
/// credentials (no profile or config file of the developer is read).
pub fn isolated_aws_env(cmd: &mut Command, endpoint: &str) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}
