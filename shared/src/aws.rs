//! AWS SDK configuration, built once per cold start, and service secrets from SSM.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};

use crate::config::{Env, MapEnv};

/// Shared SDK configuration. Explicit variables in `env` win over the default provider chain
/// (so tests and the local API can point at an emulator without touching the process
/// environment). Timeouts are short: a Lambda must answer 503 quickly when a dependency is
/// down rather than hang until its own timeout.
pub async fn sdk_config(env: &dyn Env) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(url) = env.var("AWS_ENDPOINT_URL") {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
    {
        loader = loader.region(Region::new(region));
    }
    if let (Some(id), Some(secret)) = (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            id,
            secret,
            env.var("AWS_SESSION_TOKEN"),
            None,
            "tglink-env",
        ));
    }
    loader.load().await
}

/// Fetches the service secrets named in `names` from SSM Parameter Store, as
/// `<TGLINK_SSM_PREFIX><NAME>` SecureStrings, in one `GetParameters` call. Returns the values
/// found under their variable names; absent parameters are simply not set (the variable's own
/// check then names what is missing).
pub async fn ssm_secrets(
    sdk: &SdkConfig,
    prefix: &str,
    names: &[&str],
) -> Result<MapEnv, aws_sdk_ssm::Error> {
    let client = aws_sdk_ssm::Client::new(sdk);
    let mut out = MapEnv::new();
    // GetParameters takes at most 10 names per call.
    for chunk in names.chunks(10) {
        let resp = client
            .get_parameters()
            .set_names(Some(chunk.iter().map(|n| format!("{prefix}{n}")).collect()))
            .with_decryption(true)
            .send()
            .await
            .map_err(aws_sdk_ssm::Error::from)?;
        for p in resp.parameters() {
            if let (Some(name), Some(value)) = (p.name(), p.value())
                && let Some(var) = name.strip_prefix(prefix)
            {
                out.set(var, value);
            }
        }
    }
    Ok(out)
}
