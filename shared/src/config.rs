//! Typed configuration from the environment, with the variable names of the design.
//!
//! Each function reads only what it needs; a missing or malformed variable fails start-up
//! with one [`ConfigError`] line naming it. Values are read through the [`Env`] trait so that
//! tests and the local API can supply them without touching the process environment, and so
//! that secrets fetched from SSM can be layered over plain variables.

use std::{collections::HashMap, fmt, path::PathBuf, str::FromStr};

/// A source of configuration variables.
pub trait Env: Send + Sync {
    /// The raw value, if set. Empty values count as unset.
    fn raw(&self, name: &str) -> Option<String>;

    fn var(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.trim().is_empty())
    }
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// An explicit set of variables (tests, the local API's generated defaults, SSM results).
#[derive(Clone, Debug, Default)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// Adds every variable of `other`, which wins on conflicts.
    pub fn merge(mut self, other: MapEnv) -> Self {
        self.0.extend(other.0);
        self
    }

    /// The variables, for handing to a child process.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Env for MapEnv {
    fn raw(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// `top` wins over `base` for every variable it sets.
pub struct Layered<A, B> {
    pub top: A,
    pub base: B,
}

impl<A: Env, B: Env> Env for Layered<A, B> {
    fn raw(&self, name: &str) -> Option<String> {
        self.top.var(name).or_else(|| self.base.raw(name))
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn raw(&self, name: &str) -> Option<String> {
        (**self).raw(name)
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn raw(&self, name: &str) -> Option<String> {
        (**self).raw(name)
    }
}

impl<E: Env + ?Sized> Env for std::sync::Arc<E> {
    fn raw(&self, name: &str) -> Option<String> {
        (**self).raw(name)
    }
}

/// One line naming the variable and what is wrong with it. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {var} {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl fmt::Display) -> Self {
        Self {
            var: var.to_owned(),
            problem: problem.to_string(),
        }
    }
}

pub fn required(env: &dyn Env, name: &str) -> Result<String, ConfigError> {
    env.var(name)
        .ok_or_else(|| ConfigError::new(name, "is required but not set"))
}

pub fn optional(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name)
}

/// Parses a variable, or returns `default` when it is unset.
pub fn parse_or<T>(env: &dyn Env, name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
{
    match env.var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse::<T>().map_err(|_| {
            ConfigError::new(
                name,
                format_args!("is malformed: expected {}", std::any::type_name::<T>()),
            )
        }),
    }
}

/// The largest number [`positive_or`] accepts: ten years in milliseconds. A time that far after
/// now stays far inside `i64`, so SQLite (INTEGER) and DynamoDB (N) agree on every value.
pub const MAX_NUMBER: u64 = 315_360_000_000;

/// The largest TTL setting [`ttl_secs_or`] accepts: one year, in seconds.
pub const MAX_TTL_SECS: u64 = 31_536_000;

/// A positive integer number of seconds (or milliseconds), at most [`MAX_NUMBER`], defaulting
/// when unset.
pub fn positive_or(env: &dyn Env, name: &str, default: u64) -> Result<u64, ConfigError> {
    let value = parse_or::<u64>(env, name, default)?;
    if value == 0 {
        return Err(ConfigError::new(name, "must be greater than 0"));
    }
    if value > MAX_NUMBER {
        return Err(ConfigError::new(
            name,
            format_args!("must be at most {MAX_NUMBER}"),
        ));
    }
    Ok(value)
}

/// A TTL in seconds: positive and at most [`MAX_TTL_SECS`] (one year), defaulting when unset.
pub fn ttl_secs_or(env: &dyn Env, name: &str, default: u64) -> Result<u64, ConfigError> {
    let value = positive_or(env, name, default)?;
    if value > MAX_TTL_SECS {
        return Err(ConfigError::new(
            name,
            format_args!("must be at most {MAX_TTL_SECS} (one year)"),
        ));
    }
    Ok(value)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn flag(env: &dyn Env, name: &str, default: bool) -> Result<bool, ConfigError> {
    match env.var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                "is malformed: expected true or false",
            )),
        },
    }
}

/// Where a process runs decides the defaults of `TGLINK_STORE` and `TGLINK_SEALER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// AWS Lambda: DynamoDB and KMS unless told otherwise.
    Lambda,
    /// `infra/local-api`: SQLite and a local master key unless told otherwise.
    Local,
}

/// Whether this build has the SQLite adapter (`tglink-shared`'s `sqlite` feature): the local
/// API, the tests and `make watch` have it; the deployed Lambdas do not.
pub const SQLITE_BUILT: bool = cfg!(feature = "sqlite");

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    DynamoDb {
        table: String,
    },
    /// Only with the `sqlite` feature: without it `TGLINK_STORE=sqlite` is a configuration
    /// error (the cold start fails with one line saying so).
    #[cfg(feature = "sqlite")]
    Sqlite {
        path: PathBuf,
    },
}

/// The problem of `TGLINK_STORE=sqlite` in a build without the SQLite adapter.
pub const SQLITE_NOT_BUILT: &str = "is sqlite, but this build has no SQLite adapter \
     (deployed Lambdas are built without tglink-shared's `sqlite` feature): use dynamodb";

impl StoreConfig {
    pub fn from_env(env: &dyn Env, platform: Platform) -> Result<Self, ConfigError> {
        Self::check_built(env, platform, SQLITE_BUILT)?;
        let kind = env.var("TGLINK_STORE").unwrap_or_else(|| {
            match platform {
                Platform::Lambda => "dynamodb",
                Platform::Local => "sqlite",
            }
            .to_owned()
        });
        match kind.as_str() {
            "dynamodb" => Ok(Self::DynamoDb {
                table: required(env, "TGLINK_TABLE")?,
            }),
            #[cfg(feature = "sqlite")]
            "sqlite" => Ok(Self::Sqlite {
                path: env
                    .var("TGLINK_SQLITE_PATH")
                    .unwrap_or_else(|| ".data/tglink.db".to_owned())
                    .into(),
            }),
            _ => Err(ConfigError::new(
                "TGLINK_STORE",
                "is malformed: expected dynamodb or sqlite",
            )),
        }
    }

    /// Refuses SQLite (`TGLINK_STORE=sqlite`, or unset on [`Platform::Local`]) when the build
    /// has no SQLite adapter (`sqlite_built` false): [`from_env`](Self::from_env) passes
    /// [`SQLITE_BUILT`]; a parameter so that tests of either build can check both answers.
    pub fn check_built(
        env: &dyn Env,
        platform: Platform,
        sqlite_built: bool,
    ) -> Result<(), ConfigError> {
        let sqlite = match env.var("TGLINK_STORE") {
            Some(kind) => kind == "sqlite",
            None => platform == Platform::Local,
        };
        if sqlite && !sqlite_built {
            return Err(ConfigError::new("TGLINK_STORE", SQLITE_NOT_BUILT));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealerConfig {
    Kms { key_id: String },
    Local { key_path: PathBuf },
}

impl SealerConfig {
    pub fn from_env(env: &dyn Env, platform: Platform) -> Result<Self, ConfigError> {
        let kind = env.var("TGLINK_SEALER").unwrap_or_else(|| {
            match platform {
                Platform::Lambda => "kms",
                Platform::Local => "local",
            }
            .to_owned()
        });
        match kind.as_str() {
            "kms" => Ok(Self::Kms {
                key_id: required(env, "TGLINK_KMS_KEY_ID")?,
            }),
            "local" => Ok(Self::Local {
                key_path: env
                    .var("TGLINK_LOCAL_KEY_PATH")
                    .unwrap_or_else(|| ".data/master.key".to_owned())
                    .into(),
            }),
            _ => Err(ConfigError::new(
                "TGLINK_SEALER",
                "is malformed: expected kms or local",
            )),
        }
    }
}

/// How app-user JWTs are verified.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// `APP_JWT_SECRET`: HS256.
    Secret(String),
    /// `APP_JWT_PUBLIC_KEY`: a PEM public key; the algorithm follows from the key type
    /// (RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA) unless `APP_JWT_ALGORITHM` pins one.
    PublicKey {
        pem: String,
        algorithm: Option<String>,
    },
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("JwtKey::Secret(<redacted>)"),
            Self::PublicKey { algorithm, .. } => {
                write!(f, "JwtKey::PublicKey {{ algorithm: {algorithm:?} }}")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    pub key: JwtKey,
    pub issuer: String,
    pub audience: String,
    /// `APP_JWT_ADMIN_ROLE`: the role granting the admin endpoints (default `tglink:admin`).
    pub admin_role: String,
    /// `APP_JWT_SERVICE_ROLE`: the role of a host backend acting for a user it names (default
    /// `tglink:service`).
    pub service_role: String,
    /// `APP_JWT_ROLES_CLAIM`: the claim holding the roles (default `roles`).
    pub roles_claim: String,
}

impl JwtConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let key = match (env.var("APP_JWT_SECRET"), env.var("APP_JWT_PUBLIC_KEY")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "APP_JWT_SECRET",
                    "and APP_JWT_PUBLIC_KEY are both set: set exactly one",
                ));
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(ConfigError::new(
                        "APP_JWT_SECRET",
                        "is too short: use at least 32 bytes",
                    ));
                }
                JwtKey::Secret(secret)
            }
            (None, Some(pem)) => JwtKey::PublicKey {
                // Environment variables often carry PEMs with literal "\n".
                pem: pem.replace("\\n", "\n"),
                algorithm: env.var("APP_JWT_ALGORITHM"),
            },
            (None, None) => {
                return Err(ConfigError::new(
                    "APP_JWT_SECRET",
                    "is required (or APP_JWT_PUBLIC_KEY) but neither is set",
                ));
            }
        };
        Ok(Self {
            key,
            issuer: required(env, "APP_JWT_ISSUER")?,
            audience: required(env, "APP_JWT_AUDIENCE")?,
            admin_role: env
                .var("APP_JWT_ADMIN_ROLE")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| crate::auth::DEFAULT_ADMIN_ROLE.to_owned()),
            service_role: env
                .var("APP_JWT_SERVICE_ROLE")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| crate::auth::DEFAULT_SERVICE_ROLE.to_owned()),
            roles_claim: env
                .var("APP_JWT_ROLES_CLAIM")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| crate::auth::DEFAULT_ROLES_CLAIM.to_owned()),
        })
    }
}

/// Names of variables that are service secrets: in the cloud they come from SSM Parameter
/// Store (`TGLINK_SSM_PREFIX`), locally from the environment.
pub const SECRET_VARS: &[&str] = &[
    "APP_JWT_SECRET",
    "APP_JWT_PUBLIC_KEY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_API_HASH",
    "REGISTRATION_CALLBACK_SECRET",
    "TGLINK_FORWARD_SECRET",
    "TELEGRAM_OIDC_CLIENT_SECRET",
    "TGLINK_OIDC_CLIENTS",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number setting is bounded (a time after it stays far inside `i64`, so SQLite's
    /// INTEGER and DynamoDB's N agree on it), and TTL settings are at most a year.
    #[test]
    fn numbers_and_ttls_have_an_upper_bound() {
        let env = MapEnv::new().with("X_MS", u64::MAX.to_string());
        let err = positive_or(&env, "X_MS", 1).unwrap_err();
        assert_eq!(err.var, "X_MS");
        assert!(err.problem.contains("at most"), "{err}");
        let env = MapEnv::new().with("X_MS", MAX_NUMBER.to_string());
        assert_eq!(positive_or(&env, "X_MS", 1).unwrap(), MAX_NUMBER);
        assert!(crate::time::UnixTime::now().plus_secs(MAX_NUMBER).secs() < i64::MAX as u64 / 2);

        let at = |v: u64| MapEnv::new().with("CONNECT_TOKEN_TTL_SEC", v.to_string());
        assert_eq!(
            ttl_secs_or(&at(MAX_TTL_SECS), "CONNECT_TOKEN_TTL_SEC", 600).unwrap(),
            31_536_000
        );
        let err = ttl_secs_or(&at(MAX_TTL_SECS + 1), "CONNECT_TOKEN_TTL_SEC", 600).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: CONNECT_TOKEN_TTL_SEC must be at most 31536000 (one year)"
        );
        assert!(ttl_secs_or(&at(0), "CONNECT_TOKEN_TTL_SEC", 600).is_err());
        assert_eq!(
            ttl_secs_or(&MapEnv::new(), "CONNECT_TOKEN_TTL_SEC", 600).unwrap(),
            600
        );
    }

    #[test]
    fn missing_required_names_the_variable() {
        let err = required(&MapEnv::new(), "TGLINK_TABLE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: TGLINK_TABLE is required but not set"
        );
    }

    #[test]
    fn malformed_number_names_the_variable_not_the_value() {
        let env = MapEnv::new().with("CONNECT_TOKEN_TTL_SEC", "ten");
        let err = positive_or(&env, "CONNECT_TOKEN_TTL_SEC", 600).unwrap_err();
        assert!(
            err.to_string()
                .contains("CONNECT_TOKEN_TTL_SEC is malformed")
        );
        assert!(!err.to_string().contains("ten"));
        let zero = MapEnv::new().with("CONNECT_TOKEN_TTL_SEC", "0");
        assert!(positive_or(&zero, "CONNECT_TOKEN_TTL_SEC", 600).is_err());
        assert_eq!(
            positive_or(&MapEnv::new(), "CONNECT_TOKEN_TTL_SEC", 600).unwrap(),
            600
        );
    }

    #[test]
    fn store_defaults_follow_the_platform() {
        let env = MapEnv::new().with("TGLINK_TABLE", "t");
        assert_eq!(
            StoreConfig::from_env(&env, Platform::Lambda).unwrap(),
            StoreConfig::DynamoDb { table: "t".into() }
        );
        #[cfg(feature = "sqlite")]
        assert_eq!(
            StoreConfig::from_env(&env, Platform::Local).unwrap(),
            StoreConfig::Sqlite {
                path: ".data/tglink.db".into()
            }
        );
        let bad = MapEnv::new().with("TGLINK_STORE", "redis");
        assert_eq!(
            StoreConfig::from_env(&bad, Platform::Local)
                .unwrap_err()
                .var,
            "TGLINK_STORE"
        );
        assert_eq!(
            StoreConfig::from_env(&MapEnv::new(), Platform::Lambda)
                .unwrap_err()
                .var,
            "TGLINK_TABLE"
        );
    }

    #[test]
    fn sqlite_is_refused_in_one_line_by_a_build_without_it() {
        let sqlite = MapEnv::new().with("TGLINK_STORE", "sqlite");
        for (env, platform) in [
            (&sqlite, Platform::Lambda),
            (&sqlite, Platform::Local),
            (&MapEnv::new(), Platform::Local),
        ] {
            let err = StoreConfig::check_built(env, platform, false).unwrap_err();
            assert_eq!(err.var, "TGLINK_STORE");
            let line = err.to_string();
            assert_eq!(
                line,
                "configuration error: TGLINK_STORE is sqlite, but this build has no SQLite \
                 adapter (deployed Lambdas are built without tglink-shared's `sqlite` feature): \
                 use dynamodb"
            );
            assert!(!line.contains('\n'));
            assert!(StoreConfig::check_built(env, platform, true).is_ok());
        }
        let dynamodb = MapEnv::new()
            .with("TGLINK_STORE", "dynamodb")
            .with("TGLINK_TABLE", "t");
        for platform in [Platform::Lambda, Platform::Local] {
            assert!(StoreConfig::check_built(&dynamodb, platform, false).is_ok());
        }
        assert!(StoreConfig::check_built(&MapEnv::new(), Platform::Lambda, false).is_ok());
        // This build's answer is the feature's.
        assert_eq!(
            StoreConfig::from_env(&sqlite, Platform::Lambda).is_ok(),
            cfg!(feature = "sqlite")
        );
    }

    #[test]
    fn sealer_defaults_follow_the_platform() {
        assert_eq!(
            SealerConfig::from_env(&MapEnv::new(), Platform::Lambda)
                .unwrap_err()
                .var,
            "TGLINK_KMS_KEY_ID"
        );
        assert_eq!(
            SealerConfig::from_env(&MapEnv::new(), Platform::Local).unwrap(),
            SealerConfig::Local {
                key_path: ".data/master.key".into()
            }
        );
    }

    #[test]
    fn jwt_config_requires_exactly_one_key() {
        let base = MapEnv::new()
            .with("APP_JWT_ISSUER", "iss")
            .with("APP_JWT_AUDIENCE", "aud");
        assert_eq!(
            JwtConfig::from_env(&base).unwrap_err().var,
            "APP_JWT_SECRET"
        );
        let both = base
            .clone()
            .with("APP_JWT_SECRET", "x".repeat(32))
            .with("APP_JWT_PUBLIC_KEY", "pem");
        assert!(JwtConfig::from_env(&both).is_err());
        let short = base.clone().with("APP_JWT_SECRET", "short");
        assert!(JwtConfig::from_env(&short).is_err());
        let ok = base.with("APP_JWT_SECRET", "x".repeat(32));
        let cfg = JwtConfig::from_env(&ok).unwrap();
        assert!(!format!("{cfg:?}").contains("xxxx"));
    }

    #[test]
    fn flags_and_layering() {
        let env = MapEnv::new().with("F", "off");
        assert!(!flag(&env, "F", true).unwrap());
        assert!(flag(&env, "G", true).unwrap());
        assert!(flag(&MapEnv::new().with("F", "maybe"), "F", true).is_err());
        let layered = Layered {
            top: MapEnv::new().with("A", "top"),
            base: MapEnv::new().with("A", "base").with("B", "base"),
        };
        assert_eq!(layered.var("A").as_deref(), Some("top"));
        assert_eq!(layered.var("B").as_deref(), Some("base"));
    }
}
