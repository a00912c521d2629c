//! The SQLite backend: one file, write-ahead logging, one connection.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row};
use tokio::sync::{Mutex, MutexGuard};

use super::portable::{
    bind_client, client_columns, client_from_row, code_columns, code_from_row, columns_of, conflict,
    family_columns, family_from_row, grant_columns, grant_from_row, store_helpers, store_methods,
    user_columns, user_conflict, user_from_row,
};
use super::{
    AuthCode, Client, ClientAndCode, CodeRedemption, Grant, Redemption, RefreshToken, Resource,
    ResourceScope, Session, Store, StoreError, StoredKey, TokenFamily, User, migrate,
};

columns_of!(SqliteRow);

/// A [`Store`] in one SQLite file, through one connection.
///
/// One connection, not a pool: SQLite writes one transaction at a time anyway,
/// and a single connection keeps its page cache warm (with several, each
/// commit makes the others drop and re-read theirs). Every statement is a round
/// trip to the connection's own thread, two context switches on a busy CPU; a
/// pool would add a second trip per query (it pings a connection each time one
/// is given back), so the store takes turns on the connection itself.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) conn: Arc<Mutex<SqliteConnection>>,
}

impl SqliteStore {
    /// The connection, once every earlier caller is done with it.
    async fn conn(&self) -> Result<MutexGuard<'_, SqliteConnection>, StoreError> {
        Ok(self.conn.lock().await)
    }

    /// Nothing to do: a write transaction holds SQLite's one write lock from
    /// its first write (the retiring UPDATE) until it commits, so a second
    /// rotation, in this process or another, starts only after the first.
    async fn lock_signing_keys(_: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    store_helpers!();

    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::unsupported(url));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // The WAL is copied back into the database (and both files synced)
            // every 4,000 pages (16 MiB) instead of SQLite's 1,000: the request
            // that crosses the mark waits for those syncs, and pages written
            // over and over between two checkpoints are copied once.
            .pragma("wal_autocheckpoint", "4000");
        let mut conn = SqliteConnection::connect_with(&options).await?;
        migrate::sqlite(&mut conn).await?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }
}

impl Store for SqliteStore {
    store_methods!();

    async fn client_and_code(&self, client_id: &str, code_hash: &str) -> Result<ClientAndCode, StoreError> {
        // Two SELECTs in one round trip to SQLite's thread: on the token
        // endpoint's hottest path each round trip is two context switches. A
        // row of the second has `code_hash`; one of the first does not. The
        // code and user tables share no column name, so no column needs a prefix.
        let sql = concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1;
             SELECT ",
            code_columns!(),
            ", users.id, username, email, name, password_hash, created_at
             FROM auth_codes LEFT JOIN users ON users.id = auth_codes.user_id WHERE code_hash = $2"
        );
        let rows =
            sqlx::query(sql).bind(client_id).bind(code_hash).fetch_all(&mut *self.conn().await?).await?;
        let mut found = ClientAndCode::default();
        for row in &rows {
            if row.try_column("code_hash").is_ok() {
                found.user = row.get::<Option<String>, _>("id").map(|_| user_from_row(row));
                found.code = Some(code_from_row(row));
            } else {
                found.client = Some(client_from_row(row));
            }
        }
        Ok(found)
    }

    async fn redeem_code(&self, redemption: &CodeRedemption<'_>) -> Result<Redemption, StoreError> {
        // One round trip to SQLite's thread for the whole transaction (the token
        // endpoint's hottest path). The conditional UPDATE is the lock: of two
        // exchanges racing for one code, exactly one changes a row, and only
        // while the app is as the caller read it (its version) and the person
        // still exists. Each INSERT runs only if the statement before it changed
        // a row (`changes()`). The last SELECTs say who holds the code (our
        // family, the first redemption's, or nobody) and read the person.
        const REDEEM: &str = concat!(
            "BEGIN IMMEDIATE;
            UPDATE auth_codes SET redeemed_at = $2, family_id = $3
                WHERE code_hash = $1 AND redeemed_at IS NULL
                AND EXISTS (SELECT 1 FROM clients WHERE client_id = $4 AND ($13 IS NULL OR version = $13))
                AND EXISTS (SELECT 1 FROM users WHERE id = $5);
            INSERT INTO token_families (id, client_id, user_id, resource, scopes, auth_time, created_at, revoked_at)
                SELECT $3, $4, $5, $6, $7, $8, $9, NULL WHERE changes() = 1;
            INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, rotated_at)
                SELECT $10, $3, $11, $12, NULL WHERE changes() = 1 AND $10 IS NOT NULL;
            SELECT family_id FROM auth_codes WHERE code_hash = $1;
            SELECT ",
            user_columns!(),
            " FROM users WHERE id = $5;
            COMMIT;"
        );
        // The statements run one by one as their results are read: were this
        // future dropped halfway (a client hanging up), the transaction would
        // stay open on the shared connection. A task of its own always finishes.
        let family = redemption.family;
        let (conn, code_hash, family_row, refresh) =
            (self.conn.clone(), redemption.code_hash.to_owned(), family.clone(), redemption.refresh.cloned());
        let (now, version) = (redemption.now, redemption.client_version);
        let rows = tokio::spawn(async move {
            let mut conn = conn.lock_owned().await;
            let result = sqlx::query(REDEEM)
                .bind(&code_hash)
                .bind(now)
                .bind(&family_row.id)
                .bind(&family_row.client_id)
                .bind(&family_row.user_id)
                .bind(&family_row.resource)
                .bind(family_row.scopes.join(" "))
                .bind(family_row.auth_time)
                .bind(family_row.created_at)
                .bind(refresh.as_ref().map(|r| r.token_hash.as_str()))
                .bind(refresh.as_ref().map(|r| r.created_at))
                .bind(refresh.as_ref().map(|r| r.expires_at))
                .bind(version)
                .fetch_all(&mut *conn)
                .await;
            if result.is_err() {
                // A statement failed inside the transaction: undo it before the
                // connection serves anyone else (an error if none is open is fine).
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            }
            result
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))??;
        // A row with `family_id` is the code's; one with `username` the person's.
        let holder = rows.iter().find(|row| row.try_column("family_id").is_ok());
        let holder: Option<String> = holder.and_then(|row| row.get("family_id"));
        let user = rows.iter().find(|row| row.try_column("username").is_ok()).map(user_from_row);
        Ok(match (holder, user) {
            (Some(holder), Some(user)) if holder == family.id => Redemption::Won(user),
            (Some(holder), _) => Redemption::AlreadyUsed(holder),
            (None, _) => Redemption::Stale,
        })
    }
}
