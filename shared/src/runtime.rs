//! Start-up and the Lambda entry point.
//!
//! [`Startup`] is built once per cold start: configuration (with SSM secrets layered over the
//! environment when `TGLINK_SSM_PREFIX` is set), the AWS SDK configuration, the store and the
//! sealer, each created on first use and shared. A [`Function`] builds its dependencies from it
//! and handles requests; `main.rs` of every function is one call to [`run_lambda`].

use std::{convert::Infallible, sync::Arc};

use async_trait::async_trait;
use aws_config::SdkConfig;
use lambda_http::{Body, Request, Response, service_fn};
use tokio::sync::OnceCell;

use crate::{
    auth::JwtVerifier,
    aws::AwsTrustStore,
    config::{
        ConfigError, Env, Layered, Platform, ProcessEnv, SECRET_VARS, SealerConfig, StoreConfig,
    },
    routes::Route,
    seal::{Sealer, kms::KmsKeys, local::LocalKeys},
    store::{Store, StoreError, dynamodb::DynamoStore},
};

/// Why a process could not start. Printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("startup error: store: {0}")]
    Store(#[from] StoreError),
    #[error("startup error: sealing key: {0}")]
    Keys(String),
    #[error("startup error: cannot read secrets from SSM: {0}")]
    Secrets(String),
}

/// Everything a function may need to build its dependencies, created lazily and once.
pub struct Startup {
    env: Arc<dyn Env>,
    platform: Platform,
    trust: AwsTrustStore,
    sdk: OnceCell<SdkConfig>,
    store: OnceCell<Store>,
    sealer: OnceCell<Sealer>,
}

impl Startup {
    /// Reads every service secret ([`SECRET_VARS`]) from SSM (one `GetParameters` call) when
    /// `TGLINK_SSM_PREFIX` is set: what the local API, which serves every function, needs.
    pub async fn new(env: Arc<dyn Env>, platform: Platform) -> Result<Self, StartupError> {
        Self::init(env, platform, OnceCell::new(), SECRET_VARS).await
    }

    /// Reads only `secrets` (a function's [`Function::secrets`]) from SSM when
    /// `TGLINK_SSM_PREFIX` is set: a function's role may read no other parameter, and one
    /// `GetParameters` call naming a parameter it may not read is denied as a whole.
    pub async fn with_secrets(
        env: Arc<dyn Env>,
        platform: Platform,
        secrets: &'static [&'static str],
    ) -> Result<Self, StartupError> {
        Self::init(env, platform, OnceCell::new(), secrets).await
    }

    /// Like [`new`](Self::new), with the AWS SDK configuration given instead of loaded from
    /// `env`: how tests observe every AWS call a function makes (e.g. a counting HTTP client).
    pub async fn with_sdk_config(
        env: Arc<dyn Env>,
        platform: Platform,
        sdk: SdkConfig,
    ) -> Result<Self, StartupError> {
        Self::init(env, platform, OnceCell::new_with(Some(sdk)), SECRET_VARS).await
    }

    async fn init(
        env: Arc<dyn Env>,
        platform: Platform,
        sdk: OnceCell<SdkConfig>,
        secrets: &[&str],
    ) -> Result<Self, StartupError> {
        debug_assert!(
            secrets.iter().all(|name| SECRET_VARS.contains(name)),
            "every secret is one of SECRET_VARS"
        );
        let startup = Self {
            trust: AwsTrustStore::from_env(env.as_ref())?,
            env,
            platform,
            sdk,
            store: OnceCell::new(),
            sealer: OnceCell::new(),
        };
        let Some(prefix) = startup
            .env
            .var("TGLINK_SSM_PREFIX")
            .filter(|_| !secrets.is_empty())
        else {
            return Ok(startup);
        };
        let secrets = crate::aws::ssm_secrets(startup.sdk().await, &prefix, secrets)
            .await
            .map_err(|e| {
                StartupError::Secrets(aws_sdk_ssm::error::DisplayErrorContext(&e).to_string())
            })?;
        Ok(Self {
            env: Arc::new(Layered {
                top: secrets,
                base: startup.env.clone(),
            }),
            ..startup
        })
    }

    pub fn env(&self) -> &dyn Env {
        self.env.as_ref()
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| crate::aws::sdk_config_with(self.env.as_ref(), self.trust))
            .await
    }

    pub async fn store(&self) -> Result<Store, StartupError> {
        self.store
            .get_or_try_init(|| async {
                Ok(match StoreConfig::from_env(self.env(), self.platform)? {
                    StoreConfig::DynamoDb { table } => {
                        Store::DynamoDb(Arc::new(DynamoStore::from_sdk(self.sdk().await, table)))
                    }
                    #[cfg(feature = "sqlite")]
                    StoreConfig::Sqlite { path } => {
                        Store::Sqlite(Arc::new(crate::store::sqlite::SqliteStore::open(path)?))
                    }
                })
            })
            .await
            .cloned()
    }

    pub async fn sealer(&self) -> Result<Sealer, StartupError> {
        self.sealer
            .get_or_try_init(|| async {
                Ok(match SealerConfig::from_env(self.env(), self.platform)? {
                    SealerConfig::Kms { key_id } => {
                        Sealer::new(Arc::new(KmsKeys::from_sdk(self.sdk().await, key_id)))
                    }
                    SealerConfig::Local { key_path } => Sealer::new(Arc::new(
                        LocalKeys::open_or_create(key_path)
                            .map_err(|e| StartupError::Keys(e.to_string()))?,
                    )),
                })
            })
            .await
            .cloned()
    }

    pub fn jwt(&self) -> Result<JwtVerifier, StartupError> {
        Ok(JwtVerifier::new(&crate::config::JwtConfig::from_env(
            self.env(),
        )?)?)
    }
}

/// A Lambda function: its routes, how it builds itself, how it answers.
#[async_trait]
pub trait Function: Send + Sync + 'static {
    /// The service secrets (names of [`SECRET_VARS`]) this function reads: at its cold start
    /// only these are fetched from SSM, and its role in `template.yaml` may read only these
    /// (`tests/tests/deploy/iam.rs` holds the two together).
    fn secrets() -> &'static [&'static str]
    where
        Self: Sized;

    /// Builds the function's dependencies once per cold start.
    async fn build(startup: &Startup) -> Result<Self, StartupError>
    where
        Self: Sized;

    /// The routes this function serves: its `ROUTES`, derived from its operations (see
    /// [`crate::routes`]); also the API Gateway routes in `template.yaml`.
    fn routes(&self) -> &'static [Route];

    /// Answers one request, through [`crate::routes::dispatch`]. Never panics; every failure
    /// is a problem+json response.
    async fn handle(&self, req: Request) -> Response<Body>;
}

/// The whole of a function's `main`: JSON logs, build once, serve Lambda invocations. A
/// configuration problem ends the cold start with one line naming it.
pub async fn run_lambda<F: Function>() -> Result<(), lambda_http::Error> {
    crate::logging::init();
    let function = match build::<F>(Arc::new(ProcessEnv), Platform::Lambda).await {
        Ok(f) => Arc::new(f),
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    lambda_http::run(service_fn(move |req: Request| {
        let function = function.clone();
        async move { Ok::<_, Infallible>(function.handle(req).await) }
    }))
    .await
}

async fn build<F: Function>(env: Arc<dyn Env>, platform: Platform) -> Result<F, StartupError> {
    let startup = Startup::with_secrets(env, platform, F::secrets()).await?;
    F::build(&startup).await
}
