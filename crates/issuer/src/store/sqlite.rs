//! The SQLite backend: one file, write-ahead logging, two connections taking
//! turns, and a thread that copies the log back into the file.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row};
use std::ops::{Deref, DerefMut};

use tokio::sync::{Mutex, MutexGuard};

use super::portable::{
    bind_client, client_columns, client_from_row, code_columns, code_from_row, columns_of, conflict,
    family_columns, family_from_row, grant_columns, grant_from_row, store_helpers, store_methods,
    user_columns, user_conflict, user_from_row,
};
use super::sqlite_checkpoint::LogCopier;
use super::sqlite_direct::DirectConnection;
use super::{
    AuthCode, Client, ClientAndCode, CodeRedemption, Durability, Grant, Redemption, RefreshToken, Resource,
    ResourceScope, Session, Store, StoreError, StoredKey, TokenFamily, UpstreamSignIn, User, UserLink,
    migrate,
};

columns_of!(SqliteRow);

/// How long a statement waits for another process's write lock (the CLI
/// changing a running server's data) before it fails.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The log's length in pages (of 4 KiB) at which a commit copies what is left
/// of it back into the database file, syncs both, and lets it start over:
/// 4,000 (16 MiB) instead of SQLite's 1,000. The request that crosses the mark
/// waits for that, but by then the store's log-copying thread has copied and
/// synced nearly all of it (see `sqlite_checkpoint.rs`).
pub(super) const CHECKPOINT_PAGES: u32 = 4000;

/// A [`Store`] in one SQLite file.
///
/// ```no_run
/// # async fn example() -> Result<(), agentgate_issuer::store::StoreError> {
/// use agentgate_issuer::store::{SqliteStore, Store};
/// let store = SqliteStore::open("sqlite://.agentgate/agentgate.db").await?;
/// let apps = store.clients().await?;
/// # Ok(()) }
/// ```
///
/// Two connections, not a pool, and they take turns: SQLite writes one
/// transaction at a time anyway, and a connection that waits for another's
/// write lock sleeps in SQLite's busy handler, where a turn in this process
/// costs nothing. Most statements go through sqlx, whose connection lives on a
/// thread of its own (every statement a round trip to it; a pool would add a
/// second trip per query, for the ping it makes when a connection is given
/// back). The token endpoint's two statements run on the caller's thread
/// instead, through the second connection (see `sqlite_direct.rs`). A thread
/// with a third connection copies the log back into the database file as it
/// grows (see `sqlite_checkpoint.rs`); every turn that may have written tells
/// it so when it ends.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connections: Arc<Mutex<Connections>>,
}

/// The store's two connections to its file, and the handle on the thread
/// that copies its log, behind one lock.
#[derive(Debug)]
struct Connections {
    sqlx: SqliteConnection,
    direct: DirectConnection,
    copier: LogCopier,
}

/// The sqlx connection in its turn. Once the turn is over (the value dropped),
/// the copying thread is told that the log may have grown.
pub(super) struct SqlxTurn<'a>(MutexGuard<'a, Connections>);

impl Deref for SqlxTurn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0.sqlx
    }
}

impl DerefMut for SqlxTurn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0.sqlx
    }
}

impl Drop for SqlxTurn<'_> {
    fn drop(&mut self) {
        self.0.copier.wrote();
    }
}

impl SqliteStore {
    /// The sqlx connection, once every earlier caller is done with either.
    pub(super) async fn connection(&self) -> SqlxTurn<'_> {
        SqlxTurn(self.connections.lock().await)
    }

    /// [`SqliteStore::connection`], as the shared statements take it.
    async fn conn(&self) -> Result<SqlxTurn<'_>, StoreError> {
        Ok(self.connection().await)
    }

    /// Nothing to do: a write transaction holds SQLite's one write lock from
    /// its first write (the retiring UPDATE) until it commits, so a second
    /// rotation, in this process or another, starts only after the first.
    async fn lock_signing_keys(_: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    store_helpers!(sqlx::Sqlite);

    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and
    /// brings its schema up to date, with the default [`Durability`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_durable(url, Durability::default()).await
    }

    /// [`SqliteStore::open`], with commits as durable as `durability` says.
    pub async fn open_durable(url: &str, durability: Durability) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::unsupported(url));
        }
        let synchronous = match durability {
            Durability::Crash => SqliteSynchronous::Normal,
            Durability::Power => SqliteSynchronous::Full,
        };
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string());
        let mut sqlx = SqliteConnection::connect_with(&options).await?;
        migrate::sqlite(&mut sqlx).await?;
        let path = Self::file_of(&mut sqlx).await?;
        let direct = DirectConnection::open(&path, durability)?;
        let copier = LogCopier::start(&path, durability)?;
        Ok(Self { connections: Arc::new(Mutex::new(Connections { sqlx, direct, copier })) })
    }

    /// The durability in effect, read back from SQLite (`PRAGMA synchronous`)
    /// on both connections that write; `None` if they disagree or the value
    /// is neither of [`Durability`]'s.
    pub async fn durability(&self) -> Result<Option<Durability>, StoreError> {
        let mut turn = self.connections.lock().await;
        let sqlx_level: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut turn.sqlx).await?;
        let direct_level = turn.direct.synchronous()?;
        Ok(Durability::of_sqlite_synchronous(sqlx_level).filter(|_| sqlx_level == direct_level))
    }

    /// The file `conn` has open, as SQLite resolved it. An in-memory database
    /// has none, and cannot be shared by two connections: it is refused.
    async fn file_of(conn: &mut SqliteConnection) -> Result<PathBuf, StoreError> {
        let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&mut *conn)
            .await?;
        if file.is_empty() {
            return Err(StoreError::InMemory);
        }
        Ok(PathBuf::from(file))
    }
}

impl Store for SqliteStore {
    store_methods!();

    async fn client_and_code(&self, client_id: &str, code_hash: &str) -> Result<ClientAndCode, StoreError> {
        Ok(self.connections.lock().await.direct.client_and_code(client_id, code_hash)?)
    }

    async fn redeem_code(&self, redemption: &CodeRedemption<'_>) -> Result<Redemption, StoreError> {
        // No await from here on: once its turn comes, the redemption runs to its
        // commit or its rollback, even if the request is dropped meanwhile.
        let mut both = self.connections.lock().await;
        let redeemed = both.direct.redeem_code(redemption);
        both.copier.wrote();
        Ok(redeemed?)
    }
}
