//! Counting the AWS calls an app makes, per service and operation.
//!
//! [`AwsCalls::sdk_config`] wraps the HTTP client of an [`SdkConfig`]: every client built from
//! it (the DynamoDB store, the KMS key provider, SSM) sends its requests through a connector
//! that records the `X-Amz-Target` of each request (`DynamoDB_20120810.GetItem`,
//! `TrentService.Decrypt`, …) before passing it on. Given to the app through
//! [`Startup::with_sdk_config`](tglink_shared::runtime::Startup::with_sdk_config), it counts
//! exactly what the functions send to AWS, whatever port or adapter sends it.
//!
//! What is counted is HTTP requests to AWS: what AWS bills and what a request waits for. An SDK
//! retry would count twice (none happens against a healthy emulator).

use std::{
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings,
            SharedHttpClient, SharedHttpConnector,
        },
        orchestrator::HttpRequest,
        runtime_components::{RuntimeComponents, RuntimeComponentsBuilder},
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

/// One request to AWS: the service (`DynamoDB`, `KMS`, `SSM`, …) and the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsCall {
    pub service: String,
    pub operation: String,
}

impl fmt::Display for AwsCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.operation)
    }
}

impl AwsCall {
    pub(crate) fn of(request: &HttpRequest) -> Self {
        match request.headers().get("x-amz-target") {
            // The JSON protocols (DynamoDB, KMS, SSM): `<service prefix>.<operation>`.
            Some(target) => {
                let (prefix, operation) = target.split_once('.').unwrap_or((target, "?"));
                let service = match prefix {
                    p if p.starts_with("DynamoDB_") => "DynamoDB",
                    "TrentService" => "KMS",
                    "AmazonSSM" => "SSM",
                    other => other,
                };
                Self {
                    service: service.to_owned(),
                    operation: operation.to_owned(),
                }
            }
            // Anything else (REST or query protocols): method and URI.
            None => Self {
                service: "other".to_owned(),
                operation: format!("{} {}", request.method(), request.uri()),
            },
        }
    }
}

/// The calls made through one counting [`SdkConfig`], in order.
#[derive(Debug, Clone, Default)]
pub struct AwsCalls(Arc<Mutex<Vec<AwsCall>>>);

impl AwsCalls {
    /// `base` with its HTTP client (or the SDK's default one) wrapped in this counter.
    pub fn sdk_config(&self, base: &SdkConfig) -> SdkConfig {
        Intercept::sdk_config(self, base)
    }

    /// The calls since the last `take`, and forgets them.
    pub fn take(&self) -> Tally {
        Tally(std::mem::take(&mut *self.0.lock().unwrap()))
    }

    fn record(&self, call: AwsCall) {
        self.0.lock().unwrap().push(call);
    }
}

/// The SDK's own default client (hyper 1 + rustls on aws-lc), which `SdkConfig` leaves unset
/// unless one is given.
pub(crate) fn default_http_client() -> SharedHttpClient {
    use aws_smithy_http_client::{Builder, tls};
    Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

/// Calls taken from an [`AwsCalls`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tally(pub Vec<AwsCall>);

impl Tally {
    /// How many calls went to `service`.
    pub fn count(&self, service: &str) -> usize {
        self.0.iter().filter(|c| c.service == service).count()
    }

    /// `Service.Operation` of every call, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The operations of `service`, in order.
    pub fn operations(&self, service: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|c| c.service == service)
            .map(|c| c.operation.as_str())
            .collect()
    }

    pub fn total(&self) -> usize {
        self.0.len()
    }
}

/// What a wrapped connector does with each request to AWS: pass it to `inner` (after
/// recording it, or instead of answering it with an injected fault, …).
pub(crate) trait Intercept: fmt::Debug + Clone + Send + Sync + 'static {
    fn call(&self, inner: &SharedHttpConnector, request: HttpRequest) -> HttpConnectorFuture;

    /// `base` with its HTTP client (or the SDK's default one) wrapped in this interceptor.
    fn sdk_config(&self, base: &SdkConfig) -> SdkConfig {
        let inner = base.http_client().unwrap_or_else(default_http_client);
        base.to_builder()
            .http_client(Intercepting {
                inner,
                with: self.clone(),
            })
            .build()
    }
}

impl Intercept for AwsCalls {
    fn call(&self, inner: &SharedHttpConnector, request: HttpRequest) -> HttpConnectorFuture {
        self.record(AwsCall::of(&request));
        inner.call(request)
    }
}

/// An HTTP client (and its connectors) whose every request goes through `with`.
#[derive(Debug)]
struct Intercepting<I, Inner = SharedHttpClient> {
    inner: Inner,
    with: I,
}

impl<I: Intercept> HttpClient for Intercepting<I> {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Intercepting {
            inner: self.inner.http_connector(settings, components),
            with: self.with.clone(),
        })
    }

    fn validate_base_client_config(
        &self,
        runtime_components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner
            .validate_base_client_config(runtime_components, cfg)
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(runtime_components, cfg)
    }
}

impl<I: Intercept> HttpConnector for Intercepting<I, SharedHttpConnector> {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.with.call(&self.inner, request)
    }
}

/// One measured request for the benchmark report: what it cost and its budget, if the design
/// sets one.
#[derive(Debug, Clone, Serialize)]
pub struct CallsRow {
    pub function: String,
    pub endpoint: String,
    pub case: String,
    pub status: u16,
    pub calls: Vec<String>,
    pub dynamodb: usize,
    pub kms: usize,
    pub other: usize,
    /// Outbound Telegram Bot API calls, where the case counts them.
    pub telegram: Option<usize>,
    pub budget: Option<String>,
    /// Whether the figures meet `budget` (decided by the test that asserted them).
    pub met: Option<bool>,
}

impl CallsRow {
    pub fn new(function: &str, endpoint: &str, case: &str, status: u16, tally: &Tally) -> Self {
        let dynamodb = tally.count("DynamoDB");
        let kms = tally.count("KMS");
        Self {
            function: function.to_owned(),
            endpoint: endpoint.to_owned(),
            case: case.to_owned(),
            status,
            calls: tally.names(),
            dynamodb,
            kms,
            other: tally.total() - dynamodb - kms,
            telegram: None,
            budget: None,
            met: None,
        }
    }

    pub fn telegram(mut self, calls: usize) -> Self {
        self.telegram = Some(calls);
        self
    }

    pub fn budget(mut self, budget: &str, met: bool) -> Self {
        self.budget = Some(budget.to_owned());
        self.met = Some(met);
        self
    }
}

/// Rows of one test, written as `<dir>/aws-calls-<name>.json` when `TGLINK_BENCH_OUT` names a
/// directory (as `make bench` does), so the report shows the figures the tests asserted.
#[derive(Debug, Default)]
pub struct CallsReport(Vec<CallsRow>);

impl CallsReport {
    pub fn push(&mut self, row: CallsRow) {
        self.0.push(row);
    }

    pub fn write(&self, name: &str) {
        let Some(dir) = std::env::var_os("TGLINK_BENCH_OUT").map(PathBuf::from) else {
            return;
        };
        std::fs::create_dir_all(&dir).expect("create TGLINK_BENCH_OUT");
        let path = dir.join(format!("aws-calls-{name}.json"));
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&self.0).expect("rows serialize"),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
