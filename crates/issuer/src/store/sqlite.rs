//! The SQLite backend: one file, write-ahead logging, a small pool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{Client, Store, StoreError, StoredKey, User, migrate};

// Column lists as macros, so statements stay `&'static str` (sqlx refuses SQL
// assembled at run time, a guard against injection).
macro_rules! user_columns {
    () => {
        "id, username, email, name, password_hash, created_at"
    };
}
macro_rules! client_columns {
    () => {
        "client_id, name, third_party, application_type, secret_hash, redirect_uris, scopes, grant_types, \
         logo_uri, client_uri, policy_uri, tos_uri, created_at"
    };
}

fn user_from_row(row: &SqliteRow) -> User {
    User {
        id: row.get("id"),
        username: row.get("username"),
        email: row.get("email"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        created_at: row.get("created_at"),
    }
}

fn client_from_row(row: &SqliteRow) -> Client {
    let list = |column: &str| serde_json::from_str(row.get::<&str, _>(column)).unwrap_or_default();
    Client {
        client_id: row.get("client_id"),
        name: row.get("name"),
        third_party: row.get("third_party"),
        application_type: row.get("application_type"),
        secret_hash: row.get("secret_hash"),
        redirect_uris: list("redirect_uris"),
        scopes: row
            .get::<&str, _>("scopes")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        grant_types: list("grant_types"),
        logo_uri: row.get("logo_uri"),
        client_uri: row.get("client_uri"),
        policy_uri: row.get("policy_uri"),
        tos_uri: row.get("tos_uri"),
        created_at: row.get("created_at"),
    }
}

/// A unique-constraint violation names what was taken; anything else passes.
fn conflict(error: sqlx::Error, what: impl Fn(&str) -> &'static str) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what(db.message())),
        _ => StoreError::Database(error),
    }
}

/// A [`Store`] in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        migrate::run(&pool).await?;
        Ok(Self { pool })
    }
}

impl Store for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until
             FROM signing_keys ORDER BY (retired_at IS NULL) DESC, created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredKey {
                kid: row.get("kid"),
                alg: row.get("alg"),
                public_jwk: row.get("public_jwk"),
                sealed_private: row.get("sealed_private"),
                created_at: row.get("created_at"),
                retired_at: row.get("retired_at"),
                publish_until: row.get("publish_until"),
            })
            .collect())
    }

    async fn rotate_signing_key(&self, key: &StoredKey, publish_until: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .bind(publish_until)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until)
             VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.public_jwk)
        .bind(&key.sealed_private)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, email, name, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, |m| if m.contains("email") { "the email" } else { "the username" }))?;
        Ok(())
    }

    async fn find_user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1 OR email = $1");
        Ok(sqlx::query(sql).bind(login).fetch_optional(&self.pool).await?.as_ref().map(user_from_row))
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
        Ok(sqlx::query(sql).fetch_all(&self.pool).await?.iter().map(user_from_row).collect())
    }

    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let json = |list: &Vec<String>| serde_json::to_string(list).expect("strings serialize");
        let sql = concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        sqlx::query(sql)
            .bind(&client.client_id)
            .bind(&client.name)
            .bind(client.third_party)
            .bind(&client.application_type)
            .bind(&client.secret_hash)
            .bind(json(&client.redirect_uris))
            .bind(client.scopes.join(" "))
            .bind(json(&client.grant_types))
            .bind(&client.logo_uri)
            .bind(&client.client_uri)
            .bind(&client.policy_uri)
            .bind(&client.tos_uri)
            .bind(client.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, |_| "the client id"))?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE client_id = $1");
        Ok(sqlx::query(sql).bind(client_id).fetch_optional(&self.pool).await?.as_ref().map(client_from_row))
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY name, client_id");
        Ok(sqlx::query(sql).fetch_all(&self.pool).await?.iter().map(client_from_row).collect())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
