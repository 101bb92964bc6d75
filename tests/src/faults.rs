//! Injecting faults into the AWS calls an app makes (beside the call counter,
//! [`crate::aws_calls`]).
//!
//! [`AwsFaults::sdk_config`] wraps the HTTP client of an [`SdkConfig`] like
//! [`AwsCalls`](crate::aws_calls::AwsCalls) does; every client built from it (the DynamoDB
//! store, the KMS key provider) sends its requests through a connector that, for a call chosen
//! by a [`Rule`] (the N-th call, a call of an operation, or at random with a seeded rate),
//! injects an [`AwsFault`] instead of the plain exchange:
//!
//! - [`AwsFault::LoseResponse`]: the request is forwarded and answered, then the answer is
//!   dropped: the write committed, the caller sees a connection error (and the SDK retries);
//! - [`AwsFault::Error`]: answered at once, without forwarding, with a real AWS JSON error
//!   (the status and `__type` DynamoDB or KMS send);
//! - [`AwsFault::Hang`]: never answered (only the SDK's timeouts end the wait).
//!
//! Every call is recorded (`Service.Operation`), with the faults injected, so a test can find
//! the AWS call positions of a request in a fault-free run and replay it with a fault at each.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::{
    client::{
        http::{HttpConnector, HttpConnectorFuture, SharedHttpConnector},
        orchestrator::{HttpRequest, HttpResponse},
        result::ConnectorError,
    },
    http::StatusCode,
};
use aws_smithy_types::{body::SdkBody, byte_stream::ByteStream};

use crate::aws_calls::{AwsCall, Intercept};

/// A real AWS error answer: what DynamoDB or KMS sends for a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    ProvisionedThroughputExceeded,
    Throttling,
    TransactionConflict,
    InternalServerError,
    RequestLimitExceeded,
    KmsInternal,
    KmsThrottling,
}

impl AwsErrorKind {
    /// The DynamoDB errors, in the order of the issue.
    pub const DYNAMODB: [AwsErrorKind; 5] = [
        Self::ProvisionedThroughputExceeded,
        Self::Throttling,
        Self::TransactionConflict,
        Self::InternalServerError,
        Self::RequestLimitExceeded,
    ];
    pub const KMS: [AwsErrorKind; 2] = [Self::KmsInternal, Self::KmsThrottling];

    /// The errors `service` (`DynamoDB`, `KMS`) can answer.
    pub fn of_service(service: &str) -> &'static [AwsErrorKind] {
        match service {
            "DynamoDB" => &Self::DYNAMODB,
            "KMS" => &Self::KMS,
            _ => &[],
        }
    }

    /// HTTP status and `__type`, as the service sends them.
    fn wire(self) -> (u16, &'static str) {
        match self {
            Self::ProvisionedThroughputExceeded => (
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ),
            Self::Throttling => (400, "com.amazon.coral.availability#ThrottlingException"),
            Self::TransactionConflict => (
                400,
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
            ),
            Self::InternalServerError => {
                (500, "com.amazonaws.dynamodb.v20120810#InternalServerError")
            }
            Self::RequestLimitExceeded => {
                (400, "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded")
            }
            Self::KmsInternal => (500, "KMSInternalException"),
            Self::KmsThrottling => (400, "ThrottlingException"),
        }
    }

    fn response(self) -> HttpResponse {
        let (status, kind) = self.wire();
        let body = serde_json::json!({"__type": kind, "message": format!("injected {self:?}")});
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("a valid status"),
            SdkBody::from(body.to_string()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        response
            .headers_mut()
            .insert("x-amzn-requestid", "injected-fault");
        response
    }
}

/// What happens to a chosen call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFault {
    /// Forwarded and answered; the answer is dropped and the caller sees a connection error.
    LoseResponse,
    /// Answered without forwarding, with this AWS error.
    Error(AwsErrorKind),
    /// Never answered.
    Hang,
}

impl AwsFault {
    /// Every fault a call of `service` can meet.
    pub fn all_for(service: &str) -> Vec<AwsFault> {
        let mut all = vec![Self::LoseResponse];
        all.extend(
            AwsErrorKind::of_service(service)
                .iter()
                .map(|&e| Self::Error(e)),
        );
        all.push(Self::Hang);
        all
    }
}

impl fmt::Display for AwsFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LoseResponse => f.write_str("lose-response"),
            Self::Error(e) => write!(f, "{e:?}"),
            Self::Hang => f.write_str("hang"),
        }
    }
}

/// Which calls a rule chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The N-th call (1-based) since the rules were last set.
    Nth(usize),
    /// The N-th call and every call after it.
    From(usize),
    /// Calls of `Service.Operation` (e.g. `DynamoDB.PutItem`).
    Operation(String),
    /// Every call.
    Any,
}

/// A fault for the calls `when` chooses, at most `times` times (`None`: every time).
#[derive(Debug, Clone)]
pub struct Rule {
    pub when: Match,
    pub fault: AwsFault,
    pub times: Option<usize>,
}

impl Rule {
    pub fn new(when: Match, fault: AwsFault) -> Self {
        Self {
            when,
            fault,
            times: None,
        }
    }

    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// One call seen by the injector, and the fault it met, if any.
#[derive(Debug, Clone)]
pub struct SeenCall {
    pub call: AwsCall,
    pub fault: Option<AwsFault>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Calls since the rules were last set (what `Match::Nth` counts).
    count: usize,
    seen: Vec<SeenCall>,
    /// `(rate, rng state, faults)`: each call meets one of `faults` with probability `rate`.
    random: Option<(f64, u64, Vec<AwsFault>)>,
}

/// The fault injector: cheap to clone, shared by the app's clients and the test.
#[derive(Debug, Clone, Default)]
pub struct AwsFaults(Arc<Mutex<State>>);

impl AwsFaults {
    /// `base` with its HTTP client (or the SDK's default one) wrapped in this injector.
    pub fn sdk_config(&self, base: &SdkConfig) -> SdkConfig {
        Intercept::sdk_config(self, base)
    }

    /// Replaces the rules (and restarts the call count `Match::Nth` uses).
    pub fn set(&self, rules: Vec<Rule>) {
        let mut state = self.lock();
        state.rules = rules;
        state.count = 0;
    }

    /// No more faults (and no random ones).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.random = None;
        state.count = 0;
    }

    /// From now on, each call meets one of `faults` (chosen at random) with probability `rate`,
    /// from a generator seeded with `seed` (the same seed and calls replay the same faults).
    pub fn random(&self, rate: f64, seed: u64, faults: Vec<AwsFault>) {
        self.lock().random = Some((rate, seed, faults));
    }

    /// The calls since the last `take`, and forgets them.
    pub fn take(&self) -> Vec<SeenCall> {
        std::mem::take(&mut self.lock().seen)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("fault injector state")
    }

    fn choose(&self, call: &AwsCall) -> Option<AwsFault> {
        let mut state = self.lock();
        state.count += 1;
        let n = state.count;
        let name = call.to_string();
        let mut fault = None;
        for rule in &mut state.rules {
            let hit = match &rule.when {
                Match::Nth(k) => n == *k,
                Match::From(k) => n >= *k,
                Match::Operation(op) => *op == name,
                Match::Any => true,
            };
            if hit && rule.times != Some(0) {
                if let Some(t) = rule.times.as_mut() {
                    *t -= 1;
                }
                fault = Some(rule.fault);
                break;
            }
        }
        if fault.is_none()
            && let Some((rate, rng, faults)) = state.random.as_mut()
            && !faults.is_empty()
        {
            let roll = splitmix(rng);
            let unit = (roll >> 11) as f64 / (1u64 << 53) as f64;
            if unit < *rate {
                let pick = splitmix(rng) as usize % faults.len();
                fault = Some(faults[pick]);
            }
        }
        state.seen.push(SeenCall {
            call: call.clone(),
            fault,
        });
        fault
    }
}

/// SplitMix64: a small, seeded generator (replayable soaks need no more).
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Intercept for AwsFaults {
    fn call(&self, inner: &SharedHttpConnector, request: HttpRequest) -> HttpConnectorFuture {
        match self.choose(&AwsCall::of(&request)) {
            None => inner.call(request),
            Some(AwsFault::Error(kind)) => HttpConnectorFuture::ready(Ok(kind.response())),
            Some(AwsFault::Hang) => HttpConnectorFuture::new(std::future::pending()),
            Some(AwsFault::LoseResponse) => {
                let exchange = inner.call(request);
                HttpConnectorFuture::new(async move {
                    let response = exchange.await?;
                    // Read the whole answer: the service has done its work.
                    let _ = ByteStream::new(response.into_body()).collect().await;
                    Err(ConnectorError::io(
                        "injected fault: the connection was lost before the response".into(),
                    ))
                })
            }
        }
    }
}

/// A bounded soak's knobs: how long it runs (`<PREFIX>_SECS`, default 30) and the seed of its
/// randomness (`<PREFIX>_SEED`, default from the clock). Printed, so a failure can be replayed.
#[derive(Debug, Clone, Copy)]
pub struct SoakKnobs {
    pub secs: u64,
    pub seed: u64,
}

impl SoakKnobs {
    /// Reads `<prefix>_SECS` / `<prefix>_SEED` and prints the line that replays this run.
    pub fn from_env(name: &str, prefix: &str) -> Self {
        let var = |suffix: &str| {
            std::env::var(format!("{prefix}_{suffix}"))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        let secs = var("SECS").unwrap_or(30);
        let seed = var("SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
        });
        eprintln!("{name}: seed {seed} ({prefix}_SEED={seed} {prefix}_SECS={secs} replays)");
        Self { secs, seed }
    }
}
