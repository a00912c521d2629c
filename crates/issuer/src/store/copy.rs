//! Copying everything from one store to another (`agentgate db copy`): from
//! the SQLite file a single instance started with to the PostgreSQL database
//! several instances will share, or back.
//!
//! Rows are copied as they are, table by table, parents before children:
//! hashes stay hashes and sealed keys stay sealed (the instances that use the
//! copy need the same key-encryption key), so every session, code, grant and
//! refresh token issued before the copy still works after it. The columns
//! come from the databases' own catalogs, so a column a later migration adds
//! is copied without a change here; both stores are opened (and so brought to
//! the same schema) first, and the copy checks that their columns agree.

use sqlx::{AssertSqlSafe, Connection, Row};

use super::{AnyStore, StoreError};

/// Every table of the schema, parents before children (foreign keys).
/// `tests/store.rs` checks that no table is missing.
pub const TABLES: &[&str] = &[
    "signing_keys",
    "users",
    "clients",
    "resources",
    "resource_scopes",
    "grants",
    "token_families",
    "auth_codes",
    "refresh_tokens",
    "revoked_tokens",
    "revocations",
    "sessions",
    "sign_in_failures",
    "used_assertions",
    "user_links",
    "upstream_sign_ins",
];

/// Why a copy did not happen. Nothing was written to the destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The destination holds data already; a copy goes into an empty database.
    #[error("the destination is not empty ({rows} rows in {table}); copy into an empty database")]
    NotEmpty {
        /// The first table found with rows.
        table: &'static str,
        /// How many.
        rows: i64,
    },
    /// The two schemas differ (one store is of another agentgate version).
    #[error("the table {table} has columns [{from}] in the source but [{to}] in the destination")]
    SchemaMismatch {
        /// The table.
        table: &'static str,
        /// Its columns in the source.
        from: String,
        /// Its columns in the destination.
        to: String,
    },
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// How many rows of one table were copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: usize,
}

/// What a column holds, as the schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Flag,
}

impl Kind {
    fn of_declared(declared: &str) -> Self {
        let declared = declared.to_ascii_lowercase();
        if declared.contains("bool") {
            Kind::Flag
        } else if declared.contains("int") {
            Kind::Int
        } else {
            Kind::Text
        }
    }
}

/// One value of a row, any column's.
#[derive(Debug, Clone)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Flag(Option<bool>),
}

/// Copies every row of `from` into `to`, in one transaction on `to`: all of
/// it or, on any error, nothing. `to` must be empty.
pub async fn copy_all(from: &AnyStore, to: &AnyStore) -> Result<Vec<Copied>, CopyError> {
    let mut layout = Vec::new();
    for &table in TABLES {
        let columns = to.columns(table).await?;
        let source_columns = from.columns(table).await?;
        let names = |columns: &[(String, Kind)]| {
            let mut names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
            names.sort_unstable();
            names.join(", ")
        };
        if names(&columns) != names(&source_columns) {
            return Err(CopyError::SchemaMismatch {
                table,
                from: names(&source_columns),
                to: names(&columns),
            });
        }
        layout.push((table, columns));
    }
    let rows = from.snapshot(&layout).await?;
    let tables: Vec<Table> =
        layout.into_iter().zip(rows).map(|((table, columns), rows)| (table, columns, rows)).collect();
    to.insert_all(&tables).await?;
    Ok(tables.iter().map(|(table, _, rows)| Copied { table, rows: rows.len() }).collect())
}

type Table = (&'static str, Vec<(String, Kind)>, Vec<Vec<Value>>);

/// The column list of `table` for a SELECT or an INSERT, each name quoted.
fn column_list(columns: &[(String, Kind)]) -> String {
    columns.iter().map(|(name, _)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ")
}

// The three helpers below differ only in the connection and row types, so
// each is written once as a macro expanded for both backends.

/// Reads every row of `$table` through `$conn`, each column as `$columns` says.
macro_rules! read_rows {
    ($conn:expr, $table:expr, $columns:expr) => {{
        let sql = format!("SELECT {} FROM \"{}\"", column_list($columns), $table);
        let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all($conn).await?;
        rows.iter()
            .map(|row| {
                $columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| match kind {
                        Kind::Text => Value::Text(row.get(i)),
                        Kind::Int => Value::Int(row.get(i)),
                        Kind::Flag => Value::Flag(row.get(i)),
                    })
                    .collect()
            })
            .collect::<Vec<Vec<Value>>>()
    }};
}

/// In one transaction on `$conn`: checks every table is empty, then inserts.
macro_rules! insert_tables {
    ($conn:expr, $tables:expr) => {{
        let mut conn = $conn;
        let mut tx = conn.begin().await?;
        for &(table, _, _) in $tables {
            let sql = format!("SELECT COUNT(*) FROM \"{table}\"");
            let rows: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *tx).await?;
            if rows > 0 {
                return Err(CopyError::NotEmpty { table, rows });
            }
        }
        for (table, columns, rows) in $tables {
            let parameters: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({})",
                column_list(columns),
                parameters.join(", ")
            );
            for row in rows {
                let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
                for value in row {
                    query = match value {
                        Value::Text(v) => query.bind(v.clone()),
                        Value::Int(v) => query.bind(*v),
                        Value::Flag(v) => query.bind(*v),
                    };
                }
                query.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }};
}

impl AnyStore {
    /// The columns of `table` and what each holds, from the database's catalog.
    async fn columns(&self, table: &'static str) -> Result<Vec<(String, Kind)>, sqlx::Error> {
        let named: Vec<(String, String)> = match self {
            Self::Sqlite(store) => {
                let mut conn = store.connection().await;
                sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?
            }
            Self::Postgres(store) => {
                sqlx::query_as(
                    "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&store.pool)
                .await?
            }
        };
        Ok(named.into_iter().map(|(name, declared)| (name, Kind::of_declared(&declared))).collect())
    }

    /// Every row of every table in `layout`, read in one transaction, so the
    /// copy is of one moment even if something writes meanwhile.
    async fn snapshot(
        &self,
        layout: &[(&'static str, Vec<(String, Kind)>)],
    ) -> Result<Vec<Vec<Vec<Value>>>, sqlx::Error> {
        let mut tables = Vec::new();
        match self {
            Self::Sqlite(store) => {
                let mut conn = store.connection().await;
                let mut tx = conn.begin().await?;
                for (table, columns) in layout {
                    tables.push(read_rows!(&mut *tx, table, columns));
                }
            }
            Self::Postgres(store) => {
                let mut conn = store.pool.acquire().await?;
                let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
                for (table, columns) in layout {
                    tables.push(read_rows!(&mut *tx, table, columns));
                }
            }
        }
        Ok(tables)
    }

    async fn insert_all(&self, tables: &[Table]) -> Result<(), CopyError> {
        match self {
            Self::Sqlite(store) => insert_tables!(store.connection().await, tables),
            Self::Postgres(store) => insert_tables!(store.pool.acquire().await?, tables),
        }
    }
}
