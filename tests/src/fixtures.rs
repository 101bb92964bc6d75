//! Store and sealer fixtures for both adapters. Every fixture is built through the same
//! `Startup` path the functions use, from a set of configuration variables, so "a second,
//! independently built client" is literally a second build from the same variables.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use tempfile::TempDir;
use tglink_shared::{
    config::{MapEnv, Platform},
    runtime::Startup,
    seal::{DataKey, EncryptionContext, KeyWrapper, SealError, Sealer, SecretBytes, kms::KmsKeys},
    store::Store,
};

use crate::moto::{Moto, moto};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + local master key (the embedded default).
    Sqlite,
    /// DynamoDB + KMS on moto_server.
    DynamoDb,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::DynamoDb];

    /// Configuration for a fresh, isolated store (new SQLite file or new table).
    pub async fn store_env(self, dir: &Path) -> MapEnv {
        match self {
            Backend::Sqlite => MapEnv::new().with("TGLINK_STORE", "sqlite").with(
                "TGLINK_SQLITE_PATH",
                dir.join("tglink.db").display().to_string(),
            ),
            Backend::DynamoDb => {
                let table = moto().new_table().await;
                moto()
                    .env()
                    .with("TGLINK_STORE", "dynamodb")
                    .with("TGLINK_TABLE", table.table())
                    // Dev secrets of the local API still live in a data directory.
                    .with(
                        "TGLINK_SQLITE_PATH",
                        dir.join("tglink.db").display().to_string(),
                    )
            }
        }
    }

    /// Configuration for a fresh sealer (new master key file or new KMS key).
    pub async fn sealer_env(self, dir: &Path) -> MapEnv {
        match self {
            Backend::Sqlite => MapEnv::new().with("TGLINK_SEALER", "local").with(
                "TGLINK_LOCAL_KEY_PATH",
                dir.join("master.key").display().to_string(),
            ),
            Backend::DynamoDb => moto()
                .env()
                .with("TGLINK_SEALER", "kms")
                .with("TGLINK_KMS_KEY_ID", moto().new_kms_key().await),
        }
    }

    /// Store and sealer configuration for a whole app (local API) in `dir`.
    pub async fn app_env(self, dir: &Path) -> MapEnv {
        self.store_env(dir).await.merge(self.sealer_env(dir).await)
    }

    pub async fn store(self) -> TestStore {
        let dir = Arc::new(TempDir::new().expect("temp dir"));
        let env = self.store_env(dir.path()).await;
        let store = build_store(&env).await;
        TestStore {
            backend: self,
            store,
            env,
            dir,
        }
    }

    pub async fn sealer(self) -> TestSealer {
        let dir = Arc::new(TempDir::new().expect("temp dir"));
        let env = self.sealer_env(dir.path()).await;
        TestSealer {
            sealer: build_sealer(&env).await,
            env,
            _dir: dir,
        }
    }
}

async fn startup(env: &MapEnv) -> Startup {
    Startup::new(Arc::new(env.clone()), Platform::Local)
        .await
        .expect("startup from fixture env")
}

async fn build_store(env: &MapEnv) -> Store {
    startup(env)
        .await
        .store()
        .await
        .expect("store from fixture env")
}

async fn build_sealer(env: &MapEnv) -> Sealer {
    startup(env)
        .await
        .sealer()
        .await
        .expect("sealer from fixture env")
}

/// A fresh store on one adapter.
pub struct TestStore {
    pub backend: Backend,
    pub store: Store,
    /// The configuration variables that reach this store.
    pub env: MapEnv,
    dir: Arc<TempDir>,
}

impl TestStore {
    /// A second client on the same data, built independently (another "instance").
    pub async fn second_client(&self) -> Store {
        build_store(&self.env).await
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A fresh sealer on one adapter.
pub struct TestSealer {
    pub sealer: Sealer,
    pub env: MapEnv,
    _dir: Arc<TempDir>,
}

impl TestSealer {
    pub async fn second_client(&self) -> Sealer {
        build_sealer(&self.env).await
    }

    /// A sealer on the same keys whose key provider counts its calls.
    pub async fn counting(&self) -> (Sealer, Arc<CountingKeys>) {
        use tglink_shared::config::Env;
        let inner: Arc<dyn KeyWrapper> = match self.env.var("TGLINK_SEALER").as_deref() {
            Some("kms") => Arc::new(KmsKeys::from_sdk(
                &moto().sdk().await,
                self.env.var("TGLINK_KMS_KEY_ID").expect("kms key id"),
            )),
            _ => Arc::new(
                tglink_shared::seal::local::LocalKeys::open_or_create(
                    self.env.var("TGLINK_LOCAL_KEY_PATH").expect("key path"),
                )
                .expect("local key"),
            ),
        };
        let counting = CountingKeys::new(inner);
        (Sealer::new(counting.clone()), counting)
    }
}

/// Wraps a key provider and counts its calls (KMS calls, when it wraps [`KmsKeys`]).
pub struct CountingKeys {
    inner: Arc<dyn KeyWrapper>,
    pub generated: AtomicUsize,
    pub unwrapped: AtomicUsize,
}

impl CountingKeys {
    pub fn new(inner: Arc<dyn KeyWrapper>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            generated: AtomicUsize::new(0),
            unwrapped: AtomicUsize::new(0),
        })
    }

    pub async fn kms(key_id: &str) -> Arc<Self> {
        Self::new(Arc::new(KmsKeys::from_sdk(&moto().sdk().await, key_id)))
    }

    pub fn calls(&self) -> usize {
        self.generated.load(Ordering::SeqCst) + self.unwrapped.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyWrapper for CountingKeys {
    async fn generate(&self, context: &EncryptionContext) -> Result<DataKey, SealError> {
        self.generated.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(context).await
    }

    async fn unwrap(
        &self,
        context: &EncryptionContext,
        wrapped: &[u8],
    ) -> Result<SecretBytes, SealError> {
        self.unwrapped.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(context, wrapped).await
    }
}

/// The moto instance, for tests that need it directly.
pub fn emulator() -> &'static Moto {
    moto()
}

/// A loopback port nothing listens on (bound, read, closed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// AWS configuration pointing every SDK client at a closed loopback port: "the store (or KMS)
/// is unreachable".
pub fn unreachable_aws() -> MapEnv {
    MapEnv::new()
        .with(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", closed_port()),
        )
        .with("AWS_REGION", "us-east-1")
        .with("AWS_ACCESS_KEY_ID", "testing")
        .with("AWS_SECRET_ACCESS_KEY", "testing")
}

/// A DynamoDB store configuration whose endpoint is unreachable.
pub fn unreachable_dynamodb() -> MapEnv {
    unreachable_aws()
        .with("TGLINK_STORE", "dynamodb")
        .with("TGLINK_TABLE", "tglink-unreachable")
}
