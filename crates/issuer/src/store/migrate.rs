//! Schema migrations, embedded in the binary and applied in order on open.
//!
//! Each migration runs in its own transaction together with the row recording it,
//! so a failed migration leaves the schema as it was.

use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};

/// (version, name, SQL), in order. Append only: never edit an applied migration.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "signing keys", include_str!("../../migrations/0001_signing_keys.sql")),
    (2, "users and clients", include_str!("../../migrations/0002_users_clients.sql")),
    (3, "grants and tokens", include_str!("../../migrations/0003_grants_tokens.sql")),
    (4, "client signing and logout", include_str!("../../migrations/0004_client_signing_and_logout.sql")),
    (5, "client registration", include_str!("../../migrations/0005_client_registration.sql")),
    (6, "client keys", include_str!("../../migrations/0006_client_keys.sql")),
    (7, "client version", include_str!("../../migrations/0007_client_version.sql")),
];

pub(super) async fn run(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS agentgate_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for &(version, name, sql) in MIGRATIONS {
        let mut tx: Transaction<'_, Sqlite> = conn.begin().await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT version FROM agentgate_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if applied.is_some() {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO agentgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}
