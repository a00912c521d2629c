//! The PostgreSQL backend: one database shared by every instance.
//!
//! Several agentgate processes behind a load balancer keep all their state
//! here, and every race between them is settled by the database: a code or a
//! refresh token is used by the one statement whose conditional UPDATE changes
//! its row (PostgreSQL makes a second such UPDATE wait for the first and then
//! re-check its condition), sign-in counts are single upserts, and key
//! rotations take turns on an advisory lock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row};

use super::portable::{
    bind_client, client_columns, client_from_row, code_and_person_from_row, code_and_person_select,
    code_columns, code_from_row, columns_of, conflict, family_columns, family_from_row, grant_columns,
    grant_from_row, store_helpers, store_methods, user_columns, user_conflict, user_from_row,
};
use super::{
    AuthCode, Client, ClientAndCode, CodeRedemption, Grant, Redemption, RefreshToken, Resource,
    ResourceScope, Session, Store, StoreError, StoredKey, TokenFamily, UpstreamSignIn, User, UserLink,
    migrate,
};

columns_of!(PgRow);

/// A row PostgreSQL sent as a JSON object (`row_to_json`).
struct JsonRow(serde_json::Map<String, serde_json::Value>);

impl super::portable::Columns for JsonRow {
    fn text(&self, name: &str) -> String {
        self.maybe_text(name).unwrap_or_default()
    }
    fn maybe_text(&self, name: &str) -> Option<String> {
        self.0.get(name)?.as_str().map(str::to_owned)
    }
    fn int(&self, name: &str) -> i64 {
        self.maybe_int(name).unwrap_or_default()
    }
    fn maybe_int(&self, name: &str) -> Option<i64> {
        self.0.get(name)?.as_i64()
    }
    fn flag(&self, name: &str) -> bool {
        self.0.get(name).and_then(serde_json::Value::as_bool).unwrap_or_default()
    }
}

/// A [`Store`] in a PostgreSQL database, through a pool of connections.
///
/// Open it with a `postgres://` URL. Every instance opening the same database
/// shares everything: people, apps, sessions, codes, grants, tokens, sign-in
/// counts and signing keys.
///
/// ```no_run
/// # async fn example() -> Result<(), agentgate_issuer::store::StoreError> {
/// use agentgate_issuer::store::PgStore;
/// let store = PgStore::open("postgres://agentgate@db.internal/agentgate").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`)
    /// and brings its schema up to date. The schema is the connection's
    /// `search_path` (set it with `?options=-c%20search_path%3DNAME`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, 16).await
    }

    /// [`PgStore::open`] with at most `connections` connections at a time.
    pub async fn open_with(url: &str, connections: u32) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::unsupported(url));
        }
        let options = PgConnectOptions::from_str(url)?;
        // One connection first, for the migrations: a database that does not
        // answer fails here at once, where a pool would keep retrying.
        let mut first = PgConnection::connect_with(&options).await?;
        migrate::postgres(&mut first).await?;
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            // A request waits this long at most for a connection.
            .acquire_timeout(Duration::from_secs(5))
            // A connection given back is trusted; one that broke fails its
            // next statement, which fails that one request.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// A connection from the pool.
    async fn conn(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// Makes a key rotation wait for any other in progress, on any instance:
    /// without it, two rotations at once would each retire the old key (one
    /// of them finding it retired already) and both add theirs as active.
    async fn lock_signing_keys(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(7363543761233419)").execute(tx).await?;
        Ok(())
    }

    store_helpers!(sqlx::Postgres);
}

impl Store for PgStore {
    store_methods!();

    async fn client_and_code(&self, client_id: &str, code_hash: &str) -> Result<ClientAndCode, StoreError> {
        // One round trip (the token endpoint's path for a code another
        // instance issued): each part comes back as a JSON object, read by the
        // same row readers as a table row.
        let sql = concat!(
            "SELECT (SELECT row_to_json(c)::TEXT FROM (SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1) c) AS client,
             (SELECT row_to_json(a)::TEXT FROM (",
            code_and_person_select!("$2"),
            ") a) AS code"
        );
        let row =
            sqlx::query(sql).bind(client_id).bind(code_hash).fetch_one(&mut *self.conn().await?).await?;
        let object = |column: &str| -> Result<Option<JsonRow>, StoreError> {
            let text: Option<String> = row.try_get(column)?;
            text.map(|text| {
                serde_json::from_str(&text).map(JsonRow).map_err(|e| sqlx::Error::Decode(e.into()))
            })
            .transpose()
            .map_err(StoreError::from)
        };
        let (code, user) = object("code")?.as_ref().map(code_and_person_from_row).unzip();
        Ok(ClientAndCode {
            client: object("client")?.as_ref().map(client_from_row),
            code,
            user: user.flatten(),
        })
    }

    async fn redeem_code(&self, redemption: &CodeRedemption<'_>) -> Result<Redemption, StoreError> {
        // One statement, so one transaction with nothing left open if the
        // caller goes away. The conditional UPDATE is the lock: of two
        // exchanges racing for one code, on any instances, the second waits
        // for the first and then finds the code redeemed. The family and its
        // refresh token are inserted only from the row the UPDATE returned,
        // and the person is read with it.
        const REDEEM: &str = concat!(
            "WITH won AS (
                UPDATE auth_codes SET redeemed_at = $2, family_id = $3
                WHERE code_hash = $1 AND redeemed_at IS NULL
                AND EXISTS (SELECT 1 FROM clients WHERE client_id = $4 AND ($13::BIGINT IS NULL OR version = $13))
                AND EXISTS (SELECT 1 FROM users WHERE id = $5)
                RETURNING family_id
            ), family AS (
                INSERT INTO token_families (id, client_id, user_id, resource, scopes, auth_time, created_at, revoked_at)
                SELECT $3, $4, $5, $6, $7, $8, $9, NULL FROM won
                RETURNING id
            ), refresh AS (
                INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, rotated_at)
                SELECT $10, id, $11, $12, NULL FROM family WHERE $10::TEXT IS NOT NULL
            )
            SELECT ",
            user_columns!(),
            " FROM users, won WHERE users.id = $5"
        );
        let family = redemption.family;
        let refresh = redemption.refresh;
        let mut conn = self.conn().await?;
        let won = sqlx::query(REDEEM)
            .bind(redemption.code_hash)
            .bind(redemption.now)
            .bind(&family.id)
            .bind(&family.client_id)
            .bind(&family.user_id)
            .bind(&family.resource)
            .bind(family.scopes.join(" "))
            .bind(family.auth_time)
            .bind(family.created_at)
            .bind(refresh.map(|r| r.token_hash.as_str()))
            .bind(refresh.map(|r| r.created_at))
            .bind(refresh.map(|r| r.expires_at))
            .bind(redemption.client_version)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(person) = won {
            return Ok(Redemption::Won(user_from_row(&person)));
        }
        // Lost, or refused: a second statement sees what the first could not
        // (an exchange that committed while ours waited) and says who holds it.
        let holder: Option<Option<String>> =
            sqlx::query_scalar("SELECT family_id FROM auth_codes WHERE code_hash = $1")
                .bind(redemption.code_hash)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(match holder.flatten() {
            Some(holder) => Redemption::AlreadyUsed(holder),
            None => Redemption::Stale,
        })
    }
}
