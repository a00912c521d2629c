//! A PostgreSQL schema of its own for each test (shared by the issuer's and
//! the CLI's tests).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL schema of its own for one test, dropped afterwards (also when
/// the test fails). The server is `AGENTGATE_TEST_DATABASE_URL`, else the local
/// `postgres://postgres@127.0.0.1:5432/test`; a server that does not answer
/// fails the test (`scripts/test` starts one first).
pub struct PgSchema {
    server: String,
    name: String,
}

impl PgSchema {
    pub async fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let server = std::env::var("AGENTGATE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!(
            "agentgate_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            agentgate_issuer::random_token(6).to_lowercase().replace(['-', '_'], "x")
        );
        let mut conn = connect(&server).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await.unwrap();
        Self { server, name }
    }

    /// The server's URL with this schema as the search path.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.server, self.name)
    }
}

impl PgSchema {
    /// Drops everything in the schema (as a lost or wiped database would),
    /// leaving it empty.
    pub async fn wipe(&self) {
        let mut conn = connect(&self.server).await;
        let name = &self.name;
        let sql = format!("DROP SCHEMA {name} CASCADE; CREATE SCHEMA {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
}

async fn connect(server: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(server).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {server} (AGENTGATE_TEST_DATABASE_URL) does not answer: {e}; scripts/test starts one")
    })
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs outside async code (or while a test unwinds): a thread
        // with a runtime of its own does the dropping.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let mut conn = connect(&server).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                    .execute(&mut conn)
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}
