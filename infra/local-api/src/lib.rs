//! `local-api`: one process that serves every tglink function by route, on the embedded
//! default (SQLite + a local master key under `.data/`), or on DynamoDB/KMS when
//! `TGLINK_STORE=dynamodb` / `TGLINK_SEALER=kms` (e.g. against moto).
//!
//! The handlers are exactly the ones Lambda runs: a request is converted to a
//! `lambda_http::Request`, dispatched to the function owning the route, and the response is
//! converted back. Later functions plug in with one line in [`LocalApi::build`].

pub mod dev_telegram;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, extract::State};
use lambda_http::{Body, Request, Response};
use tglink_shared::{
    auth::{DevClaims, sign_hs256},
    config::{ConfigError, Env, JwtConfig, JwtKey, Layered, MapEnv, Platform},
    files::create_private_once,
    http::{MAX_BODY_BYTES, Problem, cors::Cors, respond, route_path},
    runtime::{Function, Startup, StartupError, serve_request},
    store::{Store, sqlite::SqliteStore},
    time::UnixTime,
    token::OneTimeToken,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";

/// How often a local API on SQLite deletes records past their retention (it also does on open);
/// DynamoDB's TTL does this in the cloud.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Every function, routed by path.
pub struct LocalApi {
    functions: Vec<Arc<dyn Function>>,
    cors: Cors,
}

impl LocalApi {
    pub async fn build(startup: &Startup) -> Result<Self, StartupError> {
        let functions: Vec<Arc<dyn Function>> = vec![
            Arc::new(connect_link::ConnectLink::build(startup).await?),
            Arc::new(webhook::Webhook::build(startup).await?),
            Arc::new(registration::Registration::build(startup).await?),
            Arc::new(settings::Settings::build(startup).await?),
            Arc::new(worker_credentials::WorkerCredentials::build(startup).await?),
            Arc::new(initdata_verify::InitDataVerify::build(startup).await?),
            Arc::new(link::LinkFunction::build(startup).await?),
            Arc::new(oauth::OAuth::build(startup).await?),
            Arc::new(oidc::Oidc::build(startup).await?),
            Arc::new(signing_keys::SigningKeysFunction::build(startup).await?),
            Arc::new(notify::Notify::build(startup).await?),
            Arc::new(authorize::Authorize::build(startup).await?),
        ];
        let cors = Cors::from_env(startup.env())?;
        Ok(Self { functions, cors })
    }

    /// The function whose routes include the request path answers (405 for a wrong method is
    /// its business); an unknown path is a 404 problem.
    pub async fn dispatch(&self, req: Request) -> Response<Body> {
        let path = route_path(&req).to_owned();
        let owner = self
            .functions
            .iter()
            .find(|f| f.routes().iter().any(|r| r.matches_path(&path)));
        match owner {
            Some(function) => serve_request(function.as_ref(), &self.cors, req).await,
            None => {
                let origin = req.headers().get(http::header::ORIGIN).cloned();
                let mut resp = respond(Err(Problem::not_found()));
                self.cors.decorate(origin.as_ref(), &mut resp);
                resp
            }
        }
    }
}

/// The local environment: the process environment first, then development defaults, with
/// development secrets generated once into `<data dir>/dev-secrets.json` (mode 0600). Everything
/// local lives in the data directory (the directory of `TGLINK_SQLITE_PATH`, `.data/` by
/// default): the database, the dev secrets and the master key.
pub fn local_env(process: Arc<dyn Env>) -> Result<Arc<dyn Env>, ConfigError> {
    let data_dir = data_dir(process.as_ref());
    let secrets_path = data_dir.join("dev-secrets.json");
    let fresh = serde_json::json!({
        "APP_JWT_SECRET": OneTimeToken::mint().expose(),
        "TELEGRAM_WEBHOOK_SECRET": OneTimeToken::mint().expose(),
        "REGISTRATION_CALLBACK_SECRET": OneTimeToken::mint().expose(),
        // A well-formed stand-in for a real bot token (`<bot id>:<secret>`), so the Mini App
        // functions start and initData signed with it verifies.
        "TELEGRAM_BOT_TOKEN": format!("{DEV_BOT_ID}:{}", OneTimeToken::mint().expose()),
    });
    let io = |e: std::io::Error| {
        ConfigError::new(
            "TGLINK_SQLITE_PATH",
            format_args!("directory {} is not usable: {e}", data_dir.display()),
        )
    };
    create_private_once(&secrets_path, fresh.to_string().as_bytes()).map_err(io)?;
    let mut stored: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&secrets_path).map_err(io)?).map_err(|_| {
            ConfigError::new(
                "TGLINK_SQLITE_PATH",
                format_args!(
                    "{} is not valid JSON; delete it to regenerate",
                    secrets_path.display()
                ),
            )
        })?;
    add_missing_secrets(&secrets_path, &mut stored, fresh).map_err(io)?;

    let listen = process
        .var("LISTEN_ADDR")
        .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
    let mut defaults = MapEnv::new()
        .with("APP_JWT_ISSUER", "tglink-local")
        .with("APP_JWT_AUDIENCE", "tglink-local")
        .with("TELEGRAM_BOT_USERNAME", "tglink_dev_bot")
        .with("BACKEND_URL", format!("http://{listen}"))
        // The token service: this process issues and verifies the tokens.
        .with("TGLINK_ISSUER", format!("http://{listen}"))
        .with("TGLINK_TOKEN_AUDIENCE", "tglink-local")
        .with(
            "TGLINK_LOCAL_KEY_PATH",
            data_dir.join("master.key").display().to_string(),
        )
        // Placeholders so that worker-credentials starts; set real values from my.telegram.org.
        .with("TELEGRAM_API_ID", "1")
        .with("TELEGRAM_API_HASH", "00000000000000000000000000000000");
    for (name, value) in &stored {
        if let Some(value) = value.as_str() {
            defaults.set(name, value);
        }
    }
    if process.var("APP_JWT_PUBLIC_KEY").is_some() {
        defaults.remove("APP_JWT_SECRET");
    }
    // A bot id given alone is the Lambdas' third-party mode (Ed25519 with Telegram's key, no bot
    // token): the generated dev bot token, whose bot id is not that one, is not imposed.
    if process.var("TELEGRAM_BOT_ID").is_some() {
        defaults.remove("TELEGRAM_BOT_TOKEN");
    }
    Ok(Arc::new(Layered {
        top: process,
        base: defaults,
    }))
}

/// The bot id of the generated development `TELEGRAM_BOT_TOKEN`.
pub const DEV_BOT_ID: u64 = 7_000_000_001;

/// A dev-secrets file written by an older version lacks secrets added since: they are
/// generated and the file is rewritten (0600, atomically replaced), keeping every stored value.
fn add_missing_secrets(
    path: &std::path::Path,
    stored: &mut serde_json::Map<String, serde_json::Value>,
    fresh: serde_json::Value,
) -> std::io::Result<()> {
    let serde_json::Value::Object(fresh) = fresh else {
        return Ok(());
    };
    let mut changed = false;
    for (name, value) in fresh {
        if !stored.contains_key(&name) {
            stored.insert(name, value);
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    let tmp = path.with_extension(format!("upgrade{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    create_private_once(
        &tmp,
        serde_json::Value::Object(stored.clone())
            .to_string()
            .as_bytes(),
    )?;
    std::fs::rename(&tmp, path)
}

/// `.data/` by default: the directory of `TGLINK_SQLITE_PATH`.
pub fn data_dir(env: &dyn Env) -> PathBuf {
    let db: PathBuf = env
        .var("TGLINK_SQLITE_PATH")
        .unwrap_or_else(|| ".data/tglink.db".to_owned())
        .into();
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The OpenAPI 3.1 description of every route (the repository's `openapi.yaml`).
pub const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

/// The axum router: `GET /openapi.yaml` serves [`OPENAPI_YAML`]; every other request goes
/// through [`LocalApi::dispatch`].
pub fn router(api: Arc<LocalApi>) -> Router {
    Router::new()
        .route("/openapi.yaml", axum::routing::get(openapi))
        .fallback(serve_one)
        .with_state(api)
}

async fn openapi() -> axum::response::Response {
    axum::response::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/yaml")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from(OPENAPI_YAML))
        .expect("static response parts are valid")
}

async fn serve_one(
    State(api): State<Arc<LocalApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            let body = if bytes.is_empty() {
                Body::Empty
            } else {
                Body::Binary(bytes.to_vec())
            };
            api.dispatch(http::Request::from_parts(parts, body)).await
        }
        Err(_) => respond(Err(Problem::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
        )
        .detail(format!(
            "request bodies are limited to {MAX_BODY_BYTES} bytes"
        )))),
    };
    // Path only: query strings may carry secrets.
    tracing::info!(%method, path = %path, status = response.status().as_u16(), "request");
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A running local API (used by `main` and by in-process tests).
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    purge: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(purge) = self.purge.take() {
            purge.abort();
        }
        let _ = (&mut self.task).await;
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
}

/// Builds every function from `env` and serves them on `listen` (port 0 picks a free port).
pub async fn start(env: Arc<dyn Env>, listen: &str) -> Result<Running, StartError> {
    start_with(Startup::new(env, Platform::Local).await?, listen).await
}

/// Like [`start`], from a [`Startup`] built by the caller (tests give it an SDK configuration
/// that counts AWS calls).
pub async fn start_with(startup: Startup, listen: &str) -> Result<Running, StartError> {
    let api = Arc::new(LocalApi::build(&startup).await?);
    let purge = match startup.store().await? {
        Store::Sqlite(store) => Some(tokio::spawn(purge_periodically(store))),
        Store::DynamoDb(_) => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| StartError::Listen {
            addr: listen.to_owned(),
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| StartError::Listen {
        addr: listen.to_owned(),
        error,
    })?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, api, async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
        purge,
    })
}

async fn purge_periodically(store: Arc<SqliteStore>) {
    let start = tokio::time::Instant::now() + PURGE_INTERVAL;
    let mut every = tokio::time::interval_at(start, PURGE_INTERVAL);
    loop {
        every.tick().await;
        match store.purge_expired(UnixTime::now()).await {
            Ok(()) => tracing::debug!("purged records past their retention"),
            Err(e) => tracing::warn!(error = %e, "purge of records past their retention failed"),
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    api: Arc<LocalApi>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A development JWT for `user_id` (24 hours), when the app JWT key is an HS256 secret.
pub fn dev_jwt(env: &dyn Env, user_id: &str) -> Option<String> {
    dev_jwt_with_roles(env, user_id, &[])
}

/// A development JWT for `user_id` holding `roles` (in the configured roles claim), valid 24 h;
/// `None` when `APP_JWT_PUBLIC_KEY` is set (the host's identity provider issues them then).
pub fn dev_jwt_with_roles(env: &dyn Env, user_id: &str, roles: &[String]) -> Option<String> {
    let config = JwtConfig::from_env(env).ok()?;
    match &config.key {
        JwtKey::Secret(secret) => {
            let claims = DevClaims {
                roles: roles.to_vec(),
                ..DevClaims::new(user_id, &config, 86_400)
            };
            let mut claims = serde_json::to_value(&claims).ok()?;
            // `DevClaims` names the claim `roles`; a configured APP_JWT_ROLES_CLAIM is honoured.
            if config.roles_claim != "roles"
                && let Some(roles) = claims.as_object_mut()?.remove("roles")
            {
                claims[config.roles_claim.as_str()] = roles;
            }
            Some(sign_hs256(secret, &claims))
        }
        JwtKey::PublicKey { .. } => None,
    }
}

/// The admin role's JWT: `dev-admin` holding `APP_JWT_ADMIN_ROLE`.
fn dev_admin_jwt(env: &dyn Env) -> Option<String> {
    let role = JwtConfig::from_env(env).ok()?.admin_role;
    dev_jwt_with_roles(env, "dev-admin", &[role])
}

/// What `make run` prints: where it listens, a dev JWT and a working `curl`.
pub fn banner(env: &dyn Env, running: &Running) -> String {
    let base = running.base_url();
    let mut out = format!("tglink local API listening on {base}\n");
    out.push_str(&format!("data directory: {}\n", data_dir(env).display()));
    match dev_jwt(env, "dev-user") {
        Some(jwt) => {
            out.push_str("\nDev JWTs (valid 24 h): user \"dev-user\", a second user \"dev-user-2\", and \"dev-admin\" with the admin role:\n");
            out.push_str(&format!("export TGLINK_JWT={jwt}\n"));
            if let Some(second) = dev_jwt(env, "dev-user-2") {
                out.push_str(&format!("export TGLINK_JWT2={second}\n"));
            }
            if let Some(admin) = dev_admin_jwt(env) {
                out.push_str(&format!("export TGLINK_ADMIN_JWT={admin}\n"));
            }
            out.push_str("(others: make dev-jwt SUB=alice ROLES=\"tglink:admin\")\n");
            out.push_str("\nMint a connect link:\n");
            out.push_str(&format!(
                "curl -s -X POST {base}/api/telegram/connect-link -H \"Authorization: Bearer $TGLINK_JWT\"\n"
            ));
        }
        None => out.push_str("APP_JWT_PUBLIC_KEY is set: use a JWT from your identity provider.\n"),
    }
    out
}
