//! The token endpoint's statements on SQLite, run on the caller's own thread.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every statement
//! is a message to that thread and an answer back: on a busy machine, two
//! context switches, the largest single cost of a token exchange once its
//! statements were down to one trip. SQLite itself is a library, and its
//! statements here take microseconds without waiting on the disk (in WAL mode
//! with `synchronous=NORMAL`, the default durability, a commit writes the log
//! and syncs nothing; `FULL` adds one sync), so the
//! two statements of the token endpoint run on a second connection to the same
//! file, called directly, through rusqlite.
//!
//! It takes turns with the sqlx connection (the store's one lock covers both),
//! so the two never meet at SQLite's write lock, where the loser would sleep
//! in SQLite's busy handler. Like the sqlx connection, it checkpoints (copies
//! the log back into the database file) once the log reaches
//! [`CHECKPOINT_PAGES`], so the log stays bounded however the writes are split
//! between the two; by then the store's log-copying thread
//! (`sqlite_checkpoint.rs`) has copied and synced nearly all of it.
//!
//! Each call runs on a runtime worker thread without yielding; that is fine
//! because none waits long: the statements take microseconds, and the only
//! waits are another process's write lock (the CLI changing a running
//! server's data, up to [`BUSY_TIMEOUT`]) and, every few hundred exchanges,
//! the end of a checkpoint.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::portable::{
    client_columns, client_from_row, code_and_person_from_row, code_and_person_select, code_columns,
    user_columns, user_from_row,
};
use super::sqlite::{BUSY_TIMEOUT, CHECKPOINT_PAGES};
use super::{ClientAndCode, CodeRedemption, Durability, Redemption};

/// Reads a rusqlite row by column name, as the shared row readers expect.
impl super::portable::Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> String {
        self.get(name).expect("the query selects this TEXT NOT NULL column")
    }
    fn maybe_text(&self, name: &str) -> Option<String> {
        self.get(name).expect("the query selects this TEXT column")
    }
    fn int(&self, name: &str) -> i64 {
        self.get(name).expect("the query selects this BIGINT NOT NULL column")
    }
    fn maybe_int(&self, name: &str) -> Option<i64> {
        self.get(name).expect("the query selects this BIGINT column")
    }
    fn flag(&self, name: &str) -> bool {
        self.get(name).expect("the query selects this BOOLEAN column")
    }
}

/// A rusqlite connection to `path`, an existing database in WAL mode whose
/// schema the sqlx connection has migrated, with the sqlx connection's
/// settings. Each is used by one thread at a time (the store's turns, or the
/// log-copying thread alone), hence SQLite's own mutex left out.
pub(super) fn open_beside(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", durability.sqlite_synchronous())?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
    Ok(conn)
}

/// A connection whose statements run on the calling thread.
#[derive(Debug)]
pub(super) struct DirectConnection {
    conn: Connection,
}

impl DirectConnection {
    /// Opens `path` ([`open_beside`]).
    pub(super) fn open(path: &Path, durability: Durability) -> rusqlite::Result<Self> {
        Ok(Self { conn: open_beside(path, durability)? })
    }

    /// `PRAGMA synchronous` on this connection.
    pub(super) fn synchronous(&self) -> rusqlite::Result<i64> {
        self.conn.pragma_query_value(None, "synchronous", |row| row.get(0))
    }

    /// [`super::Store::client_and_code`].
    pub(super) fn client_and_code(
        &self,
        client_id: &str,
        code_hash: &str,
    ) -> rusqlite::Result<ClientAndCode> {
        const CLIENT: &str = concat!("SELECT ", client_columns!(), " FROM clients WHERE client_id = ?1");
        const CODE: &str = code_and_person_select!("?1");
        let client = self.conn.prepare_cached(CLIENT)?.query_row([client_id], |row| Ok(client_from_row(row)));
        let code =
            self.conn.prepare_cached(CODE)?.query_row([code_hash], |row| Ok(code_and_person_from_row(row)));
        let (code, user) = code.optional()?.unzip();
        Ok(ClientAndCode { client: client.optional()?, code, user: user.flatten() })
    }

    /// [`super::Store::redeem_code`], in one transaction. The conditional
    /// UPDATE decides: it changes the code's row only if nobody redeemed it,
    /// the app is at the version the caller checked, and the person exists;
    /// only then are the family and its refresh token written.
    pub(super) fn redeem_code(&mut self, redemption: &CodeRedemption<'_>) -> rusqlite::Result<Redemption> {
        const REDEEM: &str = "UPDATE auth_codes SET redeemed_at = ?2, family_id = ?3
            WHERE code_hash = ?1 AND redeemed_at IS NULL
            AND EXISTS (SELECT 1 FROM clients WHERE client_id = ?4 AND (?5 IS NULL OR version = ?5))
            AND EXISTS (SELECT 1 FROM users WHERE id = ?6)";
        const FAMILY: &str = "INSERT INTO token_families
            (id, client_id, user_id, resource, scopes, auth_time, created_at, revoked_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)";
        const REFRESH: &str =
            "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, rotated_at)
            VALUES (?1, ?2, ?3, ?4, NULL)";
        const PERSON: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");
        const HOLDER: &str = "SELECT family_id FROM auth_codes WHERE code_hash = ?1";

        let family = redemption.family;
        // Dropped without a commit (an error, or the code lost), it rolls back.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let won = tx.prepare_cached(REDEEM)?.execute(params![
            redemption.code_hash,
            redemption.now,
            family.id,
            family.client_id,
            redemption.client_version,
            family.user_id,
        ])? == 1;
        if !won {
            let holder: Option<Option<String>> =
                tx.prepare_cached(HOLDER)?.query_row([redemption.code_hash], |row| row.get(0)).optional()?;
            return Ok(match holder.flatten() {
                Some(holder) => Redemption::AlreadyUsed(holder),
                None => Redemption::Stale,
            });
        }
        tx.prepare_cached(FAMILY)?.execute(params![
            family.id,
            family.client_id,
            family.user_id,
            family.resource,
            family.scopes.join(" "),
            family.auth_time,
            family.created_at,
        ])?;
        if let Some(refresh) = redemption.refresh {
            tx.prepare_cached(REFRESH)?.execute(params![
                refresh.token_hash,
                family.id,
                refresh.created_at,
                refresh.expires_at,
            ])?;
        }
        // The UPDATE found the person, in this same transaction.
        let person = tx.prepare_cached(PERSON)?.query_row([&family.user_id], |row| Ok(user_from_row(row)))?;
        tx.commit()?;
        Ok(Redemption::Won(person))
    }
}
