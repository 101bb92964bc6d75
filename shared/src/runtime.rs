//! Start-up and the Lambda entry point.
//!
//! [`Startup`] is built once per cold start: configuration (with SSM secrets layered over the
//! environment when `TGLINK_SSM_PREFIX` is set), the AWS SDK configuration, the store and the
//! sealer, each created on first use and shared. A [`Function`] builds its dependencies from it
//! and handles requests; `main.rs` of every function is one call to [`run_lambda`].

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

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
    http::{cors::Cors, route_path},
    oauth::{AccessTokenVerifier, PublishedKeys, TokenConfig, TokenSigner},
    routes::Route,
    seal::{Sealer, kms::KmsKeys, local::LocalKeys},
    store::{Store, StoreError, dynamodb::DynamoStore},
};

/// Every request is answered within this: a handler still running then (its dependencies
/// slow, each call within its own timeouts) is dropped and the request answered 503 with
/// `Retry-After`. Below every function's Lambda `Timeout` in `template.yaml` by at least
/// [`DEADLINE_MARGIN`] (tested), so a slow dependency never becomes a Lambda timeout with no
/// answer. A handler dropped mid-write leaves what a lost response leaves: every write is
/// idempotent or one-time by design, and the client's retry converges.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(8);

/// Time left, after [`REQUEST_DEADLINE`], before the Lambda timeout: for the answer to be
/// written and the runtime to return it.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// `handling`'s response, or, past `deadline`, a 503 with `Retry-After` (logged once).
pub async fn answer_within(
    deadline: Duration,
    handling: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    match tokio::time::timeout(deadline, handling).await {
        Ok(response) => response,
        Err(_) => crate::http::respond(Err(crate::http::Problem::unavailable("a dependency")
            .detail("the request did not finish in time; retry later")
            .cause(format!("request deadline of {deadline:?} passed")))),
    }
}

/// [`Function::handle`] within [`REQUEST_DEADLINE`]: how the Lambda runtime and the local API
/// call a function.
pub async fn handle_within_deadline<F: Function + ?Sized>(
    function: &F,
    req: Request,
) -> Response<Body> {
    answer_within(REQUEST_DEADLINE, function.handle(req)).await
}

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
    token_signer: OnceCell<TokenSigner>,
    published_keys: OnceCell<PublishedKeys>,
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
            token_signer: OnceCell::new(),
            published_keys: OnceCell::new(),
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

    /// The token service's issuer, audience and access-token lifetime.
    pub fn token_config(&self) -> Result<TokenConfig, StartupError> {
        Ok(TokenConfig::from_env(self.env())?)
    }

    /// The access-token signer (one per process: functions served by one process share its
    /// cached key). Nothing is read until the first token.
    pub async fn token_signer(&self) -> Result<TokenSigner, StartupError> {
        let store = self.store().await?;
        let sealer = self.sealer().await?;
        Ok(self
            .token_signer
            .get_or_init(|| async { TokenSigner::new(store.signing_keys(), sealer) })
            .await
            .clone())
    }

    /// The cached published key set (one per process), read lazily.
    pub async fn published_keys(&self) -> Result<PublishedKeys, StartupError> {
        let store = self.store().await?;
        Ok(self
            .published_keys
            .get_or_init(|| async { PublishedKeys::new(store.signing_keys()) })
            .await
            .clone())
    }

    /// The access-token verifier, over [`published_keys`](Self::published_keys).
    pub async fn access_token_verifier(&self) -> Result<AccessTokenVerifier, StartupError> {
        Ok(AccessTokenVerifier::with_published(
            self.token_config()?,
            self.published_keys().await?,
        ))
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
        async move {
            let (function, cors) = function.as_ref();
            Ok::<_, Infallible>(serve_request(function, cors, req).await)
        }
    }))
    .await
}

async fn build<F: Function>(
    env: Arc<dyn Env>,
    platform: Platform,
) -> Result<(F, Cors), StartupError> {
    let startup = Startup::with_secrets(env, platform, F::secrets()).await?;
    let cors = Cors::from_env(startup.env())?;
    Ok((F::build(&startup).await?, cors))
}

/// One request through `function`, as Lambda and the local API both serve it: a CORS preflight
/// is answered by `cors` ([`crate::http::cors`]), any other request by the function within
/// [`REQUEST_DEADLINE`] ([`handle_within_deadline`]), with the CORS headers its origin earns.
pub async fn serve_request(function: &dyn Function, cors: &Cors, req: Request) -> Response<Body> {
    let methods = crate::routes::methods_of(function.routes(), route_path(&req));
    if let Some(resp) = cors.preflight(&req, &methods) {
        return resp;
    }
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    let mut resp = handle_within_deadline(function, req).await;
    cors.decorate(origin.as_ref(), &mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler still running at the deadline is answered 503 with `Retry-After`, then; one
    /// that finishes in time keeps its own answer.
    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_503_with_retry_after() {
        let deadline = Duration::from_millis(50);
        let started = std::time::Instant::now();
        let resp = answer_within(deadline, std::future::pending()).await;
        assert!(started.elapsed() < deadline * 20, "{:?}", started.elapsed());
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let ok = answer_within(deadline, async { Response::new(Body::Empty) }).await;
        assert_eq!(ok.status(), 200);
    }
}

/// The top-level key of a scheduled invocation's payload: `{"tglink_scheduled": "<job>"}`.
/// `template.yaml`'s schedules send it as their target input. An API Gateway event never has
/// this key (API Gateway builds its events), so only a principal allowed to invoke the function
/// directly (the schedule's role) can send one.
pub const SCHEDULED_KEY: &str = "tglink_scheduled";

/// A function that also runs jobs on a schedule (EventBridge Scheduler invoking it with
/// `{"tglink_scheduled": "<job>"}`).
#[async_trait]
pub trait ScheduledFunction: Function {
    /// Runs `job`; the result is the invocation's answer (an error fails the invocation, so the
    /// scheduler's retry policy applies).
    async fn scheduled(&self, job: &str) -> Result<serde_json::Value, String>;
}

/// What a raw Lambda payload is.
#[derive(Debug)]
pub enum Invocation {
    /// An HTTP event (API Gateway HTTP API, payload 2.0).
    Http(Box<lambda_http::request::LambdaRequest>),
    /// A scheduled job.
    Scheduled(String),
    /// Neither: refused.
    Unknown,
}

impl Invocation {
    pub fn classify(payload: serde_json::Value) -> Self {
        if let Some(job) = payload.get(SCHEDULED_KEY) {
            return match job.as_str() {
                Some(job) if payload.as_object().is_some_and(|o| o.len() == 1) => {
                    Self::Scheduled(job.to_owned())
                }
                _ => Self::Unknown,
            };
        }
        match serde_json::from_value::<lambda_http::request::LambdaRequest>(payload) {
            Ok(request) => Self::Http(Box::new(request)),
            Err(_) => Self::Unknown,
        }
    }
}

/// Answers one raw invocation of `function`: an HTTP event through [`Function::handle`] (the
/// answer as API Gateway expects it), a scheduled job through
/// [`ScheduledFunction::scheduled`].
pub async fn invoke<F: ScheduledFunction>(
    function: Arc<F>,
    cors: Arc<Cors>,
    event: lambda_http::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_http::Error> {
    use lambda_http::Service;
    let lambda_http::LambdaEvent { payload, context } = event;
    match Invocation::classify(payload) {
        Invocation::Scheduled(job) => {
            let result = function.scheduled(&job).await;
            match &result {
                Ok(_) => tracing::info!(job = %job, outcome = "done", "scheduled job"),
                Err(e) => tracing::error!(job = %job, error = %e, "scheduled job failed"),
            }
            result.map_err(Into::into)
        }
        Invocation::Http(request) => {
            let mut adapter = lambda_http::Adapter::from(service_fn(move |req: Request| {
                let (function, cors) = (function.clone(), cors.clone());
                async move { Ok::<_, Infallible>(serve_request(function.as_ref(), &cors, req).await) }
            }));
            let response = adapter
                .call(lambda_http::LambdaEvent::new(*request, context))
                .await
                .map_err(|e| match e {})?;
            Ok(serde_json::to_value(response)?)
        }
        Invocation::Unknown => {
            tracing::error!("refused an invocation that is neither an HTTP event nor a job");
            Err("unknown invocation payload".into())
        }
    }
}

/// [`run_lambda`] for a [`ScheduledFunction`]: HTTP events and scheduled jobs.
pub async fn run_scheduled_lambda<F: ScheduledFunction>() -> Result<(), lambda_http::Error> {
    crate::logging::init();
    let (function, cors) = match build::<F>(Arc::new(ProcessEnv), Platform::Lambda).await {
        Ok((function, cors)) => (Arc::new(function), Arc::new(cors)),
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    lambda_http::lambda_runtime::run(service_fn(
        move |event: lambda_http::LambdaEvent<serde_json::Value>| {
            invoke(function.clone(), cors.clone(), event)
        },
    ))
    .await
}
