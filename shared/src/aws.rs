//! AWS SDK configuration, built once per cold start, and service secrets from SSM.
//!
//! ## Trust store
//!
//! The SDK's HTTPS client (hyper + rustls on aws-lc) trusts, by default, only the roots that
//! AWS service endpoints chain to: the Amazon Trust Services roots (Amazon Root CA 1–4 and the
//! Starfield Services Root G2 that cross-signs them), embedded from
//! `shared/certs/amazon-trust-services.pem`. The SDK's own default reads and parses the whole
//! platform trust store when a client is built, at every cold start: on Debian 436 files,
//! ~140 certificates on Lambda's `provided.al2023`; measured, that was most of our init time
//! over a hello-world function (BENCHMARKS.md, "Cold start"). Five certificates parse in
//! microseconds. `TGLINK_AWS_TRUST_STORE=platform` restores the platform store, for endpoints
//! whose certificates chain elsewhere (a TLS-intercepting proxy, an emulator over HTTPS, a
//! partition whose endpoints use other roots). The Telegram Bot API client
//! ([`crate::telegram::bot_api`]) uses the same connector but trusts the platform store.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::{
    Builder, ConnectorBuilder,
    proxy::ProxyConfig,
    tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode},
};

use crate::config::{self, ConfigError, Env, MapEnv};

/// Connecting to an AWS endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of an AWS call (sending, waiting, reading the answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// One AWS call, its retries and backoff included: a hung dependency becomes a transient
/// error (503 + `Retry-After`) within this, well inside
/// [`REQUEST_DEADLINE`](crate::runtime::REQUEST_DEADLINE).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);
/// Attempts per AWS call (the first and two retries; the SDK's standard retry mode, whose
/// token bucket is the retry budget of a warm instance).
pub const MAX_ATTEMPTS: u32 = 3;

/// The Amazon Trust Services root certificates (PEM; see the module docs).
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which root certificates the AWS SDK's HTTPS client trusts (`TGLINK_AWS_TRUST_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AwsTrustStore {
    /// The Amazon Trust Services roots only (default).
    #[default]
    Amazon,
    /// The platform's trust store (what `rustls-native-certs` finds, `SSL_CERT_FILE` included).
    Platform,
}

impl AwsTrustStore {
    pub const VAR: &'static str = "TGLINK_AWS_TRUST_STORE";

    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        match config::optional(env, Self::VAR).as_deref().map(str::trim) {
            None | Some("amazon") => Ok(Self::Amazon),
            Some("platform") => Ok(Self::Platform),
            Some(_) => Err(ConfigError::new(
                Self::VAR,
                "is malformed: expected amazon or platform",
            )),
        }
    }

    fn tls_context(self) -> TlsContext {
        let store = match self {
            Self::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM),
            Self::Platform => TrustStore::default(),
        };
        TlsContext::builder()
            .with_trust_store(store)
            .build()
            .expect("a TLS context with a trust store only always builds")
    }
}

/// The SDK's default HTTPS client (rustls on aws-lc, proxy settings from the environment,
/// the SDK's connector settings and sleep), with `trust` as its trust store.
pub fn https_client(trust: AwsTrustStore) -> SharedHttpClient {
    let context = trust.tls_context();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// Shared SDK configuration. Explicit variables in `env` win over the default provider chain
/// (so tests and the local API can point at an emulator without touching the process
/// environment). Timeouts are short: a Lambda must answer 503 quickly when a dependency is
/// down rather than hang until its own timeout. Fails only on a malformed
/// `TGLINK_AWS_TRUST_STORE`.
pub async fn sdk_config(env: &dyn Env) -> Result<SdkConfig, ConfigError> {
    Ok(sdk_config_with(env, AwsTrustStore::from_env(env)?).await)
}

/// [`sdk_config`] with the trust store already chosen.
pub async fn sdk_config_with(env: &dyn Env, trust: AwsTrustStore) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(trust))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
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

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest;
    use rustls_pki_types::{CertificateDer, pem::PemObject};

    use super::*;

    /// SHA-256 fingerprints of the Amazon Trust Services roots, as published on
    /// <https://www.amazontrust.com/repository/>.
    const PUBLISHED: [(&str, &str); 5] = [
        (
            "Amazon Root CA 1",
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        ),
        (
            "Amazon Root CA 2",
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        ),
        (
            "Amazon Root CA 3",
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        ),
        (
            "Amazon Root CA 4",
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        ),
        (
            "Starfield Services Root Certificate Authority - G2",
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
        ),
    ];

    #[test]
    fn embedded_roots_are_exactly_the_published_amazon_trust_services_roots() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("the embedded PEM parses (the SDK panics on a bad one)");
        let fingerprints: Vec<String> = certs
            .iter()
            .map(|c| hex::encode(digest::digest(&digest::SHA256, c.as_ref())))
            .collect();
        let published: Vec<String> = PUBLISHED.iter().map(|(_, f)| f.to_string()).collect();
        assert_eq!(fingerprints, published);
    }

    #[test]
    fn trust_store_defaults_to_amazon_and_rejects_unknown_values() {
        let env = |v: Option<&str>| {
            let mut env = MapEnv::new();
            if let Some(v) = v {
                env.set(AwsTrustStore::VAR, v);
            }
            env
        };
        assert_eq!(
            AwsTrustStore::from_env(&env(None)).unwrap(),
            AwsTrustStore::Amazon
        );
        assert_eq!(
            AwsTrustStore::from_env(&env(Some("amazon"))).unwrap(),
            AwsTrustStore::Amazon
        );
        assert_eq!(
            AwsTrustStore::from_env(&env(Some(" platform "))).unwrap(),
            AwsTrustStore::Platform
        );
        let err = AwsTrustStore::from_env(&env(Some("system"))).unwrap_err();
        assert!(err.to_string().contains("TGLINK_AWS_TRUST_STORE"), "{err}");
    }
}
