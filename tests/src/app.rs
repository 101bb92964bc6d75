//! `spawn_app`: the real local API, in-process, on a free port, on either adapter.

use std::sync::Arc;

use tempfile::TempDir;
use tglink_shared::{
    config::{Env, MapEnv, Platform},
    runtime::Startup,
    store::Store,
};

use aws_config::SdkConfig;

use crate::{aws_calls::AwsCalls, faults::AwsFaults, fixtures::Backend, http_client::Api};

pub struct TestApp {
    pub backend: Backend,
    pub api: Api,
    /// The environment the app was built from (dev secrets included).
    pub env: Arc<dyn Env>,
    /// The variables describing the store and sealer (to start another instance on them).
    pub vars: MapEnv,
    pub dir: TempDir,
    running: Option<local_api::Running>,
}

/// Starts the local API on `backend` with extra variables `extra` (which win).
pub async fn spawn_app_with(backend: Backend, extra: MapEnv) -> TestApp {
    let dir = TempDir::new().expect("temp dir");
    let vars = backend.app_env(dir.path()).await.merge(extra);
    spawn_in(backend, dir, vars).await
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, MapEnv::new()).await
}

/// Like [`spawn_app_with`], with every AWS call the app makes counted (see [`AwsCalls`]).
pub async fn spawn_app_counting(backend: Backend, extra: MapEnv) -> (TestApp, AwsCalls) {
    let dir = TempDir::new().expect("temp dir");
    let vars = backend.app_env(dir.path()).await.merge(extra);
    let calls = AwsCalls::default();
    let counting = calls.clone();
    let app = spawn_in_with(
        backend,
        dir,
        vars,
        Some(&move |sdk| counting.sdk_config(&sdk)),
    )
    .await;
    (app, calls)
}

/// Like [`spawn_app_with`], with every AWS call the app makes going through a fault injector
/// (see [`AwsFaults`]); `tune` may adjust the SDK configuration after (e.g. its timeouts).
pub async fn spawn_app_faulty(
    backend: Backend,
    extra: MapEnv,
    tune: impl Fn(SdkConfig) -> SdkConfig + Send + Sync,
) -> (TestApp, AwsFaults) {
    let dir = TempDir::new().expect("temp dir");
    let vars = backend.app_env(dir.path()).await.merge(extra);
    let faults = AwsFaults::default();
    let injector = faults.clone();
    let app = spawn_in_with(
        backend,
        dir,
        vars,
        Some(&move |sdk| tune(injector.sdk_config(&sdk))),
    )
    .await;
    (app, faults)
}

async fn spawn_in(backend: Backend, dir: TempDir, vars: MapEnv) -> TestApp {
    spawn_in_with(backend, dir, vars, None).await
}

async fn spawn_in_with(
    backend: Backend,
    dir: TempDir,
    vars: MapEnv,
    wrap: Option<&(dyn Fn(SdkConfig) -> SdkConfig + Send + Sync)>,
) -> TestApp {
    let env = local_api::local_env(Arc::new(vars.clone())).expect("local env");
    let startup = match wrap {
        None => Startup::new(env.clone(), Platform::Local).await,
        Some(wrap) => {
            let sdk = wrap(
                tglink_shared::aws::sdk_config(env.as_ref())
                    .await
                    .expect("valid AWS configuration"),
            );
            Startup::with_sdk_config(env.clone(), Platform::Local, sdk).await
        }
    }
    .expect("startup");
    // A fixed `LISTEN_ADDR` (e.g. so that the default `TGLINK_ISSUER` is this server's URL).
    let listen = vars
        .var("LISTEN_ADDR")
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let running = local_api::start_with(startup, &listen)
        .await
        .expect("local API starts");
    TestApp {
        backend,
        api: Api::new(running.base_url()),
        env,
        vars,
        dir,
        running: Some(running),
    }
}

impl TestApp {
    /// A valid app JWT for `user_id`.
    pub fn jwt(&self, user_id: &str) -> String {
        local_api::dev_jwt(self.env.as_ref(), user_id).expect("HS256 dev secret")
    }

    /// A store client built independently from the app's configuration.
    pub async fn store(&self) -> Store {
        Startup::new(self.env.clone(), Platform::Local)
            .await
            .expect("startup")
            .store()
            .await
            .expect("store")
    }

    /// Stops the server (all its connections and clients are dropped).
    pub async fn stop(mut self) -> (Backend, TempDir, MapEnv) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        (self.backend, self.dir, self.vars)
    }

    /// Stops and starts again on the same data.
    pub async fn restart(self) -> TestApp {
        let (backend, dir, vars) = self.stop().await;
        spawn_in(backend, dir, vars).await
    }
}
