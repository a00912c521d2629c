//! Schema migrations, embedded in the binary and applied in order on open.
//!
//! Each migration runs in its own transaction together with the row recording it,
//! so a failed migration leaves the schema as it was. On PostgreSQL, several
//! instances may start at once on one database: each transaction first takes
//! an advisory lock, so one instance applies a migration and the others then
//! find it applied.

use sqlx::{
    Connection, Database, Decode, Encode, Executor, IntoArguments, PgConnection, SqliteConnection, Type,
};

/// One step of the schema.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// What PostgreSQL runs instead, where the SQL must differ.
    postgres: Option<&'static str>,
}

const fn step(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration { version, name, sql, postgres: None }
}

/// In order. Append only: never edit an applied migration.
const MIGRATIONS: &[Migration] = &[
    step(1, "signing keys", include_str!("../../migrations/0001_signing_keys.sql")),
    step(2, "users and clients", include_str!("../../migrations/0002_users_clients.sql")),
    step(3, "grants and tokens", include_str!("../../migrations/0003_grants_tokens.sql")),
    step(4, "client signing and logout", include_str!("../../migrations/0004_client_signing_and_logout.sql")),
    step(5, "client registration", include_str!("../../migrations/0005_client_registration.sql")),
    Migration {
        // SQLite's INTEGER is 64 bits; PostgreSQL's is 32 and would end in 2038.
        postgres: Some(include_str!("../../migrations/0006_client_keys.postgres.sql")),
        ..step(6, "client keys", include_str!("../../migrations/0006_client_keys.sql"))
    },
    step(7, "client version", include_str!("../../migrations/0007_client_version.sql")),
    step(8, "revocations", include_str!("../../migrations/0008_revocations.sql")),
    step(9, "resource translations", include_str!("../../migrations/0009_resource_translations.sql")),
    step(10, "upstream sign-in", include_str!("../../migrations/0010_upstream_sign_in.sql")),
    step(11, "kept refresh tokens", include_str!("../../migrations/0011_kept_refresh_tokens.sql")),
];

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS agentgate_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Brings a SQLite database up to date. SQLite lets one writer in at a time,
/// so no lock is needed beyond the transaction's own.
pub(super) async fn sqlite(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    apply::<sqlx::Sqlite>(conn, None, |m| m.sql).await
}

/// Brings a PostgreSQL schema up to date, one instance at a time.
pub(super) async fn postgres(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Any constant both sides agree on; transaction-scoped, so a crashed
    // instance never leaves it held.
    const LOCK: &str = "SELECT pg_advisory_xact_lock(7363543761233418)";
    apply::<sqlx::Postgres>(conn, Some(LOCK), |m| m.postgres.unwrap_or(m.sql)).await
}

async fn apply<DB>(
    conn: &mut DB::Connection,
    lock: Option<&'static str>,
    sql_of: fn(&Migration) -> &'static str,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    for migration in std::iter::once(None).chain(MIGRATIONS.iter().map(Some)) {
        let mut tx = conn.begin().await?;
        if let Some(lock) = lock {
            sqlx::raw_sql(lock).execute(&mut *tx).await?;
        }
        let Some(migration) = migration else {
            // The ledger itself, under the same lock.
            sqlx::raw_sql(CREATE_LEDGER).execute(&mut *tx).await?;
            tx.commit().await?;
            continue;
        };
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM agentgate_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_some() {
            continue;
        }
        sqlx::raw_sql(sql_of(migration)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO agentgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "applied database migration");
    }
    Ok(())
}
