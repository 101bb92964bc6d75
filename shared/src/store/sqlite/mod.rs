//! SQLite adapter (the embedded default): one file in WAL mode, so two local processes can
//! share it; every multi-statement operation runs in an `IMMEDIATE` transaction, every single
//! conditional write is one statement.

mod authorizations;
mod blocks;
mod claims;
mod connect_flow;
mod connect_tokens;
mod credentials;
mod links;
mod rate_limits;
mod registrations;
mod signing_keys;
mod signins;
mod worker_tokens;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::StoreError;
use crate::time::UnixTime;

/// Schema of every port; each statement is idempotent (`IF NOT EXISTS`).
const SCHEMA: &[&str] = &[
    connect_tokens::SCHEMA,
    registrations::SCHEMA,
    claims::SCHEMA,
    links::SCHEMA,
    credentials::SCHEMA,
    worker_tokens::SCHEMA,
    blocks::SCHEMA,
    signins::SCHEMA,
    signing_keys::SCHEMA,
    rate_limits::SCHEMA,
    authorizations::SCHEMA,
];

/// Statements that delete records whose retention has passed (`?1` = now). DynamoDB's TTL does
/// this in the cloud; here it runs on open and from [`SqliteStore::purge_expired`].
const PURGE: &[&str] = &[
    connect_tokens::PURGE,
    registrations::PURGE,
    claims::PURGE,
    rate_limits::PURGE,
    worker_tokens::PURGE,
    signins::PURGE[0],
    signins::PURGE[1],
    signins::PURGE[2],
    authorizations::PURGE,
];

/// How long a writer waits for another process's lock before the store counts as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. Cheap to clone; one connection per store value, used from blocking tasks.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory. A directory it
    /// creates is 0700; a database file it creates is 0600 (no symlink followed), and SQLite
    /// gives the `-wal` and `-shm` files the database file's mode.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let in_memory = path.as_os_str() == ":memory:" || path.as_os_str().is_empty();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_private_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        if !in_memory {
            match crate::files::create_private_new(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        let conn = Connection::open(&path).map_err(sql_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_error)?;
        for statement in SCHEMA {
            conn.execute_batch(statement).map_err(sql_error)?;
        }
        // The Mini App sessions and session epochs of before issue 14 (replaced by the
        // sign-in record): their sessions cannot be used any more.
        conn.execute_batch(
            "DROP TABLE IF EXISTS miniapp_sessions; DROP TABLE IF EXISTS telegram_session_epochs;",
        )
        .map_err(sql_error)?;
        for statement in connect_tokens::MIGRATIONS
            .iter()
            .chain(registrations::MIGRATIONS)
            .chain(links::MIGRATIONS)
            .chain(claims::MIGRATIONS)
        {
            match conn.execute_batch(statement) {
                Err(e) if e.to_string().contains("duplicate column name") => {}
                other => other.map_err(sql_error)?,
            }
        }
        let store = Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        };
        store.purge_expired_blocking(UnixTime::now())?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes every record whose retention ended before `now`.
    pub async fn purge_expired(&self, now: UnixTime) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.purge_expired_blocking(now))
            .await
            .map_err(|e| StoreError::Unavailable(format!("sqlite task failed: {e}")))?
    }

    fn purge_expired_blocking(&self, now: UnixTime) -> Result<(), StoreError> {
        let conn = self.lock()?;
        for statement in PURGE {
            conn.execute(statement, [now.secs() as i64])
                .map_err(sql_error)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Unavailable("sqlite connection poisoned".into()))
    }

    /// Runs `f` with the connection on a blocking thread.
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.lock()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task failed: {e}")))?
    }
}

/// Starts an `IMMEDIATE` transaction: it takes the write lock at once, so its reads and its
/// writes are one step that no other writer interleaves with. Dropped without `commit`, it
/// rolls back.
pub(crate) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)
}

/// Lock contention past the busy timeout, I/O and "cannot open" errors are retryable
/// unavailability; anything else means our SQL or the file's content is wrong.
pub(crate) fn sql_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied,
        ) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Corrupt(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database and its `-wal` / `-shm` files are private (0600), and a data directory
    /// the store creates is 0700.
    #[cfg(unix)]
    #[test]
    fn the_database_files_and_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("tglink-sqlite-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let path = root.join(".data/tglink.db");
        let store = SqliteStore::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join(".data")), 0o700);
        for name in ["tglink.db", "tglink.db-wal", "tglink.db-shm"] {
            assert_eq!(mode(&root.join(".data").join(name)), 0o600, "{name}");
        }
        drop(store);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
