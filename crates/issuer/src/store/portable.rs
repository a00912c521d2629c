//! What SQLite and PostgreSQL do alike, written once.
//!
//! The schema and nearly every statement are the same on both databases, but
//! sqlx types each query by its database, and code generic over two of them
//! needs a bound for every type it binds or reads. So the shared statements are
//! written here once, as macros that each backend expands in its own `impl`:
//! [`store_helpers!`] among its own functions, [`store_methods!`] in its
//! `impl Store`. A backend brings `async fn conn(&self)` (a connection, or a
//! turn on the store's connection) and `lock_signing_keys` (how a key rotation
//! waits for another); it writes only what must differ: opening, and the two
//! statements of the token endpoint's hot path.

use super::{AuthCode, Client, Grant, StoreError, TokenFamily, User};

/// Reads one typed column of a row, by name; a backend implements it with
/// `Row::get` (which panics on a column the query did not select: a bug).
pub(super) trait Columns {
    /// A `TEXT NOT NULL` column.
    fn text(&self, name: &str) -> String;
    /// A `TEXT` column.
    fn maybe_text(&self, name: &str) -> Option<String>;
    /// A `BIGINT NOT NULL` column.
    fn int(&self, name: &str) -> i64;
    /// A `BIGINT` column.
    fn maybe_int(&self, name: &str) -> Option<i64>;
    /// A `BOOLEAN NOT NULL` column.
    fn flag(&self, name: &str) -> bool;
}

/// Implements [`Columns`] for a backend's row type.
macro_rules! columns_of {
    ($row:ty) => {
        impl super::portable::Columns for $row {
            fn text(&self, name: &str) -> String {
                sqlx::Row::get(self, name)
            }
            fn maybe_text(&self, name: &str) -> Option<String> {
                sqlx::Row::get(self, name)
            }
            fn int(&self, name: &str) -> i64 {
                sqlx::Row::get(self, name)
            }
            fn maybe_int(&self, name: &str) -> Option<i64> {
                sqlx::Row::get(self, name)
            }
            fn flag(&self, name: &str) -> bool {
                sqlx::Row::get(self, name)
            }
        }
    };
}

// Column lists as macros, so statements stay `&'static str` (sqlx refuses SQL
// assembled at run time, a guard against injection).
macro_rules! user_columns {
    () => {
        "id, username, email, name, email_verified, picture, password_hash, created_at"
    };
}
macro_rules! grant_columns {
    () => {
        "user_id, client_id, resource, scopes, created_at, updated_at"
    };
}
macro_rules! client_columns {
    () => {
        "client_id, name, third_party, application_type, secret_hash, redirect_uris, scopes, grant_types, \
         logo_uri, client_uri, policy_uri, tos_uri, created_at, id_token_signed_response_alg, \
         post_logout_redirect_uris, registration, registration_token_hash, token_endpoint_auth_method, jwks, \
         version"
    };
}

macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, redirect_uri, code_challenge, resource, scopes, nonce, auth_time, \
         expires_at, redeemed_at, family_id"
    };
}
/// A code joined with its person, read by [`code_and_person_from_row`]; the
/// code's hash is the placeholder `$param`. The two tables share no column
/// name but `id`, so only the person's is named (`users.id`, NULL once the
/// person is gone).
macro_rules! code_and_person_select {
    ($param:literal) => {
        concat!(
            "SELECT ",
            code_columns!(),
            ", users.id, username, email, name, email_verified, picture, password_hash, created_at \
             FROM auth_codes LEFT JOIN users ON users.id = auth_codes.user_id WHERE code_hash = ",
            $param
        )
    };
}
macro_rules! family_columns {
    () => {
        "id, client_id, user_id, resource, scopes, auth_time, created_at, revoked_at"
    };
}

/// Scopes are kept as one space-separated string.
pub(super) fn scope_list(text: &str) -> Vec<String> {
    text.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub(super) fn user_from_row(row: &impl Columns) -> User {
    User {
        id: row.text("id"),
        username: row.text("username"),
        email: row.maybe_text("email"),
        name: row.maybe_text("name"),
        email_verified: row.flag("email_verified"),
        picture: row.maybe_text("picture"),
        password_hash: row.text("password_hash"),
        created_at: row.int("created_at"),
    }
}

pub(super) fn client_from_row(row: &impl Columns) -> Client {
    let list = |column: &str| serde_json::from_str(&row.text(column)).unwrap_or_default();
    Client {
        client_id: row.text("client_id"),
        name: row.text("name"),
        third_party: row.flag("third_party"),
        application_type: row.text("application_type"),
        secret_hash: row.maybe_text("secret_hash"),
        redirect_uris: list("redirect_uris"),
        scopes: scope_list(&row.text("scopes")),
        grant_types: list("grant_types"),
        logo_uri: row.maybe_text("logo_uri"),
        client_uri: row.maybe_text("client_uri"),
        policy_uri: row.maybe_text("policy_uri"),
        tos_uri: row.maybe_text("tos_uri"),
        created_at: row.int("created_at"),
        id_token_signed_response_alg: row.text("id_token_signed_response_alg"),
        post_logout_redirect_uris: list("post_logout_redirect_uris"),
        registration: row.text("registration"),
        registration_token_hash: row.maybe_text("registration_token_hash"),
        token_endpoint_auth_method: row.text("token_endpoint_auth_method"),
        jwks: row.maybe_text("jwks"),
        version: row.int("version"),
    }
}

/// A row of [`code_and_person_select!`]: the code, and its person if they
/// still exist.
pub(super) fn code_and_person_from_row(row: &impl Columns) -> (AuthCode, Option<User>) {
    let person = row.maybe_text("id").map(|_| user_from_row(row));
    (code_from_row(row), person)
}

pub(super) fn grant_from_row(row: &impl Columns) -> Grant {
    Grant {
        user_id: row.text("user_id"),
        client_id: row.text("client_id"),
        resource: row.text("resource"),
        scopes: scope_list(&row.text("scopes")),
        created_at: row.int("created_at"),
        updated_at: row.int("updated_at"),
    }
}

pub(super) fn code_from_row(row: &impl Columns) -> AuthCode {
    AuthCode {
        code_hash: row.text("code_hash"),
        client_id: row.text("client_id"),
        user_id: row.text("user_id"),
        redirect_uri: row.text("redirect_uri"),
        code_challenge: row.text("code_challenge"),
        resource: row.text("resource"),
        scopes: scope_list(&row.text("scopes")),
        nonce: row.maybe_text("nonce"),
        auth_time: row.int("auth_time"),
        expires_at: row.int("expires_at"),
        redeemed_at: row.maybe_int("redeemed_at"),
        family_id: row.maybe_text("family_id"),
    }
}

pub(super) fn family_from_row(row: &impl Columns) -> TokenFamily {
    TokenFamily {
        id: row.text("id"),
        client_id: row.text("client_id"),
        user_id: row.text("user_id"),
        resource: row.text("resource"),
        scopes: scope_list(&row.text("scopes")),
        auth_time: row.int("auth_time"),
        created_at: row.int("created_at"),
        revoked_at: row.maybe_int("revoked_at"),
    }
}

/// Binds every column of `client` but its version, in the order of
/// `client_columns!`, as $1 to $19.
macro_rules! bind_client {
    ($query:expr, $client:expr) => {{
        let client: &Client = $client;
        let json = |list: &Vec<String>| serde_json::to_string(list).expect("strings serialize");
        $query
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
            .bind(&client.id_token_signed_response_alg)
            .bind(json(&client.post_logout_redirect_uris))
            .bind(&client.registration)
            .bind(&client.registration_token_hash)
            .bind(&client.token_endpoint_auth_method)
            .bind(&client.jwks)
    }};
}

/// A resource row's translations; a value this version cannot read counts as none.
pub(super) fn translations(row: &impl Columns) -> crate::store::Translations {
    serde_json::from_str(&row.text("translations")).unwrap_or_default()
}

/// A unique-constraint violation names what was taken; anything else passes.
pub(super) fn conflict(error: sqlx::Error, what: impl Fn(&str) -> &'static str) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what(db.message())),
        _ => StoreError::Database(error),
    }
}

/// Which of a person's unique fields a unique violation is about.
pub(super) fn user_conflict(message: &str) -> &'static str {
    if message.contains("email") { super::taken::EMAIL } else { super::taken::USERNAME }
}

/// The store's own helpers, for a backend's inherent `impl`, given its database type.
macro_rules! store_helpers {
    ($db:ty) => {
        /// Adds `resource` with its scopes; with `replace`, a resource stored under
        /// the same URL gets this name and exactly these scopes instead.
        async fn write_resource(&self, resource: &Resource, replace: bool) -> Result<(), StoreError> {
            let sql = if replace {
                "INSERT INTO resources (uri, canonical, name, created_at, translations) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (uri) DO UPDATE SET name = excluded.name, translations = excluded.translations"
            } else {
                "INSERT INTO resources (uri, canonical, name, created_at, translations) VALUES ($1, $2, $3, $4, $5)"
            };
            let translations = serde_json::to_string(&resource.translations).expect("maps of strings serialize");
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query(sql)
                .bind(&resource.uri)
                .bind(&resource.canonical)
                .bind(&resource.name)
                .bind(resource.created_at)
                .bind(translations)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, |_| "the resource URL"))?;
            if replace {
                sqlx::query("DELETE FROM resource_scopes WHERE resource_uri = $1")
                    .bind(&resource.uri)
                    .execute(&mut *tx)
                    .await?;
            }
            for scope in &resource.scopes {
                sqlx::query(
                    "INSERT INTO resource_scopes (resource_uri, name, description) VALUES ($1, $2, $3)",
                )
                .bind(&resource.uri)
                .bind(&scope.name)
                .bind(&scope.description)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, |_| "the scope name"))?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// Inserts a person on `conn` (a connection, or a transaction's).
        async fn insert_person(conn: &mut <$db as sqlx::Database>::Connection, user: &User) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO users (id, username, email, name, email_verified, picture, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.email_verified)
            .bind(&user.picture)
            .bind(&user.password_hash)
            .bind(user.created_at)
            .execute(&mut *conn)
            .await
            .map_err(|e| conflict(e, user_conflict))?;
            Ok(())
        }

        /// Ties an account at a provider to a person, on `conn`.
        async fn insert_link(conn: &mut <$db as sqlx::Database>::Connection, link: &UserLink) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO user_links (issuer, subject, provider, made_at_sign_in, user_id, created_at, signed_in_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&link.issuer)
            .bind(&link.subject)
            .bind(&link.provider)
            .bind(link.made_at_sign_in)
            .bind(&link.user_id)
            .bind(link.created_at)
            .bind(link.signed_in_at)
            .execute(&mut *conn)
            .await
            .map_err(|e| conflict(e, |_| super::taken::PROVIDER_ACCOUNT))?;
            Ok(())
        }

        /// Records in `tx` that `id` (of `kind`) was revoked at `now`.
        async fn record_revocation(
            tx: &mut sqlx::Transaction<'_, $db>,
            kind: crate::revocations::Revoked,
            id: &str,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO revocations (kind, id, revoked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, id) DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Runs `sql` (a DELETE of one row by `$1`) and, when it deleted the
        /// row, records the revocation of `id` with it, in one transaction.
        async fn delete_and_record(
            &self,
            sql: &'static str,
            kind: crate::revocations::Revoked,
            id: &str,
            now: i64,
        ) -> Result<bool, StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let deleted = sqlx::query(sql).bind(id).execute(&mut *tx).await?.rows_affected() == 1;
            if deleted {
                Self::record_revocation(&mut tx, kind, id, now).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }
    };
}

/// Every [`super::Store`] method both backends run alike, for their `impl Store`.
macro_rules! store_methods {
    () => {
        async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
            let rows = sqlx::query(
                "SELECT kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until
                 FROM signing_keys ORDER BY (retired_at IS NULL) DESC, created_at DESC, kid",
            )
            .fetch_all(&mut *self.conn().await?)
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
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            // Two rotations at once must not both find the old key active.
            Self::lock_signing_keys(&mut tx).await?;
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL AND alg = $3",
            )
            .bind(key.created_at)
            .bind(publish_until)
            .bind(&key.alg)
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
            Self::insert_person(&mut *self.conn().await?, user).await
        }

        async fn find_user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1 OR email = $1");
            Ok(sqlx::query(sql)
                .bind(login)
                .fetch_optional(&mut *self.conn().await?)
                .await?
                .as_ref()
                .map(user_from_row))
        }

        async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
            Ok(sqlx::query(sql)
                .bind(id)
                .fetch_optional(&mut *self.conn().await?)
                .await?
                .as_ref()
                .map(user_from_row))
        }

        async fn users(&self) -> Result<Vec<User>, StoreError> {
            let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
            Ok(sqlx::query(sql).fetch_all(&mut *self.conn().await?).await?.iter().map(user_from_row).collect())
        }

        async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
                        let done = sqlx::query(
                "UPDATE users SET username = $2, email = $3, name = $4, email_verified = $5 WHERE id = $1",
            )
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.email_verified)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(|e| conflict(e, user_conflict))?;
            Ok(done.rows_affected() == 1)
        }

        async fn delete_user(&self, id: &str, now: i64) -> Result<bool, StoreError> {
            self.delete_and_record("DELETE FROM users WHERE id = $1", crate::revocations::Revoked::Person, id, now)
                .await
        }

        async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
            let sql = concat!(
                "INSERT INTO clients (",
                client_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            );
            bind_client!(sqlx::query(sql), client)
                .bind(client.version)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(|e| conflict(e, |_| "the client id"))?;
            Ok(())
        }

        async fn update_client(&self, client: &Client) -> Result<Option<i64>, StoreError> {
            // The parameters of `bind_client`; the id ($1) and created_at ($13) stay.
            let sql = "UPDATE clients SET name = $2, third_party = $3, application_type = $4, secret_hash = $5,
                     redirect_uris = $6, scopes = $7, grant_types = $8, logo_uri = $9, client_uri = $10,
                     policy_uri = $11, tos_uri = $12, id_token_signed_response_alg = $14,
                     post_logout_redirect_uris = $15, registration = $16, registration_token_hash = $17,
                     token_endpoint_auth_method = $18, jwks = $19, version = version + 1
                 WHERE client_id = $1 RETURNING version";
            let row = bind_client!(sqlx::query(sql), client).fetch_optional(&mut *self.conn().await?).await?;
            Ok(row.map(|row| row.get("version")))
        }

        async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
            let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE client_id = $1");
            Ok(sqlx::query(sql)
                .bind(client_id)
                .fetch_optional(&mut *self.conn().await?)
                .await?
                .as_ref()
                .map(client_from_row))
        }

        async fn clients(&self) -> Result<Vec<Client>, StoreError> {
            let sql = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY name, client_id");
            Ok(sqlx::query(sql).fetch_all(&mut *self.conn().await?).await?.iter().map(client_from_row).collect())
        }

        async fn delete_client(&self, client_id: &str, now: i64) -> Result<bool, StoreError> {
            let sql = "DELETE FROM clients WHERE client_id = $1";
            self.delete_and_record(sql, crate::revocations::Revoked::App, client_id, now).await
        }

        async fn insert_resource(&self, resource: &Resource) -> Result<(), StoreError> {
            self.write_resource(resource, false).await
        }

        async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
            self.write_resource(resource, true).await
        }

        async fn resources(&self) -> Result<Vec<Resource>, StoreError> {
            let rows = sqlx::query("SELECT uri, canonical, name, created_at, translations FROM resources ORDER BY uri")
                .fetch_all(&mut *self.conn().await?)
                .await?;
            let scopes = sqlx::query("SELECT resource_uri, name, description FROM resource_scopes ORDER BY name")
                .fetch_all(&mut *self.conn().await?)
                .await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let uri: String = row.get("uri");
                    let scopes = scopes
                        .iter()
                        .filter(|s| s.get::<&str, _>("resource_uri") == uri)
                        .map(|s| ResourceScope { name: s.get("name"), description: s.get("description") })
                        .collect();
                    Resource {
                        canonical: row.get("canonical"),
                        name: row.get("name"),
                        created_at: row.get("created_at"),
                        translations: super::portable::translations(row),
                        scopes,
                        uri,
                    }
                })
                .collect())
        }

        async fn resource_by_canonical(&self, canonical: &str) -> Result<Option<Resource>, StoreError> {
            let Some(row) =
                sqlx::query("SELECT uri, canonical, name, created_at, translations FROM resources WHERE canonical = $1")
                    .bind(canonical)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?
            else {
                return Ok(None);
            };
            let uri: String = row.get("uri");
            let scopes = sqlx::query(
                "SELECT name, description FROM resource_scopes WHERE resource_uri = $1 ORDER BY name",
            )
            .bind(&uri)
            .fetch_all(&mut *self.conn().await?)
            .await?
            .iter()
            .map(|s| ResourceScope { name: s.get("name"), description: s.get("description") })
            .collect();
            Ok(Some(Resource {
                canonical: row.get("canonical"),
                name: row.get("name"),
                created_at: row.get("created_at"),
                translations: super::portable::translations(&row),
                scopes,
                uri,
            }))
        }

        async fn delete_resource(&self, uri: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM resources WHERE uri = $1")
                .bind(uri)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn grant(
            &self,
            user_id: &str,
            client_id: &str,
            resource: &str,
        ) -> Result<Option<Grant>, StoreError> {
            let sql = concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE user_id = $1 AND client_id = $2 AND resource = $3"
            );
            let row = sqlx::query(sql)
                .bind(user_id)
                .bind(client_id)
                .bind(resource)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
            Ok(row.as_ref().map(grant_from_row))
        }

        async fn save_grant(&self, grant: &Grant) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO grants (user_id, client_id, resource, scopes, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = $4, updated_at = $6",
            )
            .bind(&grant.user_id)
            .bind(&grant.client_id)
            .bind(&grant.resource)
            .bind(grant.scopes.join(" "))
            .bind(grant.created_at)
            .bind(grant.updated_at)
            .execute(&mut *self.conn().await?)
            .await?;
            Ok(())
        }

        async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, StoreError> {
            let sql = concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE user_id = $1 ORDER BY client_id, resource"
            );
            Ok(sqlx::query(sql)
                .bind(user_id)
                .fetch_all(&mut *self.conn().await?)
                .await?
                .iter()
                .map(grant_from_row)
                .collect())
        }

        async fn grants_of_client(&self, client_id: &str) -> Result<Vec<Grant>, StoreError> {
            let sql = concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE client_id = $1 ORDER BY user_id, resource"
            );
            Ok(sqlx::query(sql)
                .bind(client_id)
                .fetch_all(&mut *self.conn().await?)
                .await?
                .iter()
                .map(grant_from_row)
                .collect())
        }

        async fn revoke_grants(&self, user_id: &str, client_id: &str, now: i64) -> Result<bool, StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let deleted = sqlx::query("DELETE FROM grants WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The codes not exchanged yet first: an exchange racing this one
            // either finds its code gone, or has made its family, which the
            // next statement (a later snapshot, on PostgreSQL) then revokes.
            sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND client_id = $2 AND redeemed_at IS NULL")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            let revoked = sqlx::query(
                "UPDATE token_families SET revoked_at = $3
                 WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The families this statement revoked (and any revoked in the same
            // second before, already recorded): each is announced.
            sqlx::query(
                "INSERT INTO revocations (kind, id, revoked_at)
                 SELECT 'family', id, revoked_at FROM token_families
                 WHERE user_id = $1 AND client_id = $2 AND revoked_at = $3
                 ON CONFLICT (kind, id) DO NOTHING",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(deleted + revoked > 0)
        }

        async fn insert_code(&self, code: &AuthCode) -> Result<(), StoreError> {
            let sql = concat!(
                "INSERT INTO auth_codes (",
                code_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            );
            sqlx::query(sql)
                .bind(&code.code_hash)
                .bind(&code.client_id)
                .bind(&code.user_id)
                .bind(&code.redirect_uri)
                .bind(&code.code_challenge)
                .bind(&code.resource)
                .bind(code.scopes.join(" "))
                .bind(&code.nonce)
                .bind(code.auth_time)
                .bind(code.expires_at)
                .bind(code.redeemed_at)
                .bind(&code.family_id)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(())
        }

        async fn code(&self, code_hash: &str) -> Result<Option<AuthCode>, StoreError> {
            let sql = concat!("SELECT ", code_columns!(), " FROM auth_codes WHERE code_hash = $1");
            Ok(sqlx::query(sql)
                .bind(code_hash)
                .fetch_optional(&mut *self.conn().await?)
                .await?
                .as_ref()
                .map(code_from_row))
        }
        async fn last_used(&self, user_id: &str, client_id: &str) -> Result<Option<i64>, StoreError> {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(at) FROM (
                     SELECT created_at AS at FROM token_families WHERE user_id = $1 AND client_id = $2
                     UNION ALL
                     SELECT r.created_at FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id
                     WHERE f.user_id = $1 AND f.client_id = $2
                 ) AS uses",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
            Ok(last)
        }

        async fn family(&self, id: &str) -> Result<Option<TokenFamily>, StoreError> {
            let sql = concat!("SELECT ", family_columns!(), " FROM token_families WHERE id = $1");
            Ok(sqlx::query(sql)
                .bind(id)
                .fetch_optional(&mut *self.conn().await?)
                .await?
                .as_ref()
                .map(family_from_row))
        }

        async fn revoke_family(&self, id: &str, now: i64) -> Result<(), StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let revoked =
                sqlx::query("UPDATE token_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if revoked == 1 {
                Self::record_revocation(&mut tx, crate::revocations::Revoked::Family, id, now).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn refresh_token(
            &self,
            token_hash: &str,
        ) -> Result<Option<(RefreshToken, TokenFamily)>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT token_hash, family_id, created_at, expires_at, rotated_at FROM refresh_tokens
                 WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *self.conn().await?)
            .await?
            else {
                return Ok(None);
            };
            let token = RefreshToken {
                token_hash: row.get("token_hash"),
                family_id: row.get("family_id"),
                created_at: row.get("created_at"),
                expires_at: row.get("expires_at"),
                rotated_at: row.get("rotated_at"),
            };
            Ok(self.family(&token.family_id).await?.map(|family| (token, family)))
        }

        async fn rotate_refresh_token(
            &self,
            old_hash: &str,
            now: i64,
            new: &RefreshToken,
        ) -> Result<bool, StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let won = sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL",
            )
            .bind(old_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, rotated_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&new.token_hash)
            .bind(&new.family_id)
            .bind(new.created_at)
            .bind(new.expires_at)
            .bind(new.rotated_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn revoke_access_token(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            Self::record_revocation(&mut tx, crate::revocations::Revoked::Token, jti, now).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn revocations_since(
            &self,
            since: i64,
        ) -> Result<Vec<crate::revocations::Revocation>, StoreError> {
            let rows = sqlx::query(
                "SELECT kind, id, revoked_at FROM revocations WHERE revoked_at >= $1 ORDER BY revoked_at",
            )
            .bind(since)
            .fetch_all(&mut *self.conn().await?)
            .await?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    Some(crate::revocations::Revocation {
                        kind: crate::revocations::Revoked::parse(row.get("kind"))?,
                        id: row.get("id"),
                        revoked_at: row.get("revoked_at"),
                    })
                })
                .collect())
        }

        async fn first_use(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "INSERT INTO used_assertions (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(expires_at)
            .execute(&mut *self.conn().await?)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
            let found: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM revoked_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
            Ok(found.is_some())
        }

        async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO sessions (id_hash, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(&session.id_hash)
                .bind(&session.user_id)
                .bind(session.auth_time)
                .bind(session.expires_at)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(())
        }

        async fn insert_upstream_sign_in(&self, sign_in: &UpstreamSignIn) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO upstream_sign_ins (state_hash, provider, browser_hash, request, link_user, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&sign_in.state_hash)
            .bind(&sign_in.provider)
            .bind(&sign_in.browser_hash)
            .bind(&sign_in.request)
            .bind(&sign_in.link_user)
            .bind(sign_in.expires_at)
            .execute(&mut *self.conn().await?)
            .await?;
            Ok(())
        }

        async fn take_upstream_sign_in(
            &self,
            state_hash: &str,
            now: i64,
        ) -> Result<Option<UpstreamSignIn>, StoreError> {
            // One statement: of two answers racing with one state, one gets the row.
            let row = sqlx::query(
                "DELETE FROM upstream_sign_ins WHERE state_hash = $1
                 RETURNING state_hash, provider, browser_hash, request, link_user, expires_at",
            )
            .bind(state_hash)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
            Ok(row
                .map(|row| UpstreamSignIn {
                    state_hash: row.get("state_hash"),
                    provider: row.get("provider"),
                    browser_hash: row.get("browser_hash"),
                    request: row.get("request"),
                    link_user: row.get("link_user"),
                    expires_at: row.get("expires_at"),
                })
                .filter(|sign_in| sign_in.expires_at > now))
        }

        async fn user_by_link(&self, issuer: &str, subject: &str) -> Result<Option<(User, UserLink)>, StoreError> {
            let sql = concat!(
                "SELECT ",
                user_columns!(),
                ", link_issuer, link_subject, link_provider, link_made_at_sign_in, link_created_at, link_signed_in_at
                 FROM users JOIN (SELECT issuer AS link_issuer, subject AS link_subject, provider AS link_provider,
                     made_at_sign_in AS link_made_at_sign_in, created_at AS link_created_at,
                     signed_in_at AS link_signed_in_at, user_id AS link_user FROM user_links) l
                 ON users.id = l.link_user WHERE link_issuer = $1 AND link_subject = $2"
            );
            let row = sqlx::query(sql).bind(issuer).bind(subject).fetch_optional(&mut *self.conn().await?).await?;
            Ok(row.map(|row| {
                let user = user_from_row(&row);
                let link = UserLink {
                    issuer: row.get("link_issuer"),
                    subject: row.get("link_subject"),
                    provider: row.get("link_provider"),
                    made_at_sign_in: row.get("link_made_at_sign_in"),
                    user_id: user.id.clone(),
                    created_at: row.get("link_created_at"),
                    signed_in_at: row.get("link_signed_in_at"),
                };
                (user, link)
            }))
        }

        async fn insert_user_link(&self, link: &UserLink) -> Result<(), StoreError> {
            Self::insert_link(&mut *self.conn().await?, link).await
        }

        async fn insert_user_with_link(&self, user: &User, link: &UserLink) -> Result<(), StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            Self::insert_person(&mut *tx, user).await?;
            Self::insert_link(&mut *tx, link).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn user_links(&self, user_id: &str) -> Result<Vec<UserLink>, StoreError> {
            let rows = sqlx::query(
                "SELECT issuer, subject, provider, made_at_sign_in, user_id, created_at, signed_in_at FROM user_links
                 WHERE user_id = $1 ORDER BY provider, subject",
            )
            .bind(user_id)
            .fetch_all(&mut *self.conn().await?)
            .await?;
            Ok(rows
                .iter()
                .map(|row| UserLink {
                    issuer: row.get("issuer"),
                    subject: row.get("subject"),
                    provider: row.get("provider"),
                    made_at_sign_in: row.get("made_at_sign_in"),
                    user_id: row.get("user_id"),
                    created_at: row.get("created_at"),
                    signed_in_at: row.get("signed_in_at"),
                })
                .collect())
        }

        async fn delete_user_link(&self, user_id: &str, issuer: &str, subject: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM user_links WHERE user_id = $1 AND issuer = $2 AND subject = $3")
                .bind(user_id)
                .bind(issuer)
                .bind(subject)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn kept_refresh_token(&self, user_id: &str, issuer: &str) -> Result<Option<(String, String)>, StoreError> {
            let row = sqlx::query(
                "SELECT subject, refresh_token FROM user_links
                 WHERE user_id = $1 AND issuer = $2 AND refresh_token IS NOT NULL
                 ORDER BY COALESCE(signed_in_at, 0) DESC, subject LIMIT 1",
            )
            .bind(user_id)
            .bind(issuer)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
            Ok(row.map(|row| (row.get("subject"), row.get("refresh_token"))))
        }

        async fn keep_refresh_token(
            &self,
            issuer: &str,
            subject: &str,
            sealed: Option<&str>,
            replacing: Option<&str>,
        ) -> Result<bool, StoreError> {
                        let set = "UPDATE user_links SET refresh_token = $3 WHERE issuer = $1 AND subject = $2";
            let query = match replacing {
                None => sqlx::query(set).bind(issuer).bind(subject).bind(sealed),
                Some(old) => sqlx::query(
                    "UPDATE user_links SET refresh_token = $3 WHERE issuer = $1 AND subject = $2 AND refresh_token = $4",
                )
                .bind(issuer)
                .bind(subject)
                .bind(sealed)
                .bind(old),
            };
            let done = query.execute(&mut *self.conn().await?).await?;
            Ok(done.rows_affected() == 1)
        }

        async fn refresh_profile(&self, user: &User, issuer: &str, subject: &str, now: i64) -> Result<(), StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("UPDATE users SET email = $2, name = $3, email_verified = $4, picture = $5 WHERE id = $1")
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.email_verified)
                .bind(&user.picture)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, user_conflict))?;
            sqlx::query("UPDATE user_links SET signed_in_at = $3 WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn session(&self, id_hash: &str) -> Result<Option<Session>, StoreError> {
            let row =
                sqlx::query("SELECT id_hash, user_id, auth_time, expires_at FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
            Ok(row.map(|row| Session {
                id_hash: row.get("id_hash"),
                user_id: row.get("user_id"),
                auth_time: row.get("auth_time"),
                expires_at: row.get("expires_at"),
            }))
        }

        async fn delete_sessions_of(&self, user_id: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(())
        }

        async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(())
        }

        async fn count_attempt(&self, bucket: &str, now: i64, window: i64) -> Result<i64, StoreError> {
            // One statement, so concurrent failures cannot both read the old count.
            let count = sqlx::query_scalar(
                "INSERT INTO sign_in_failures (bucket, window_start, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (bucket) DO UPDATE SET
                     failures = CASE WHEN sign_in_failures.window_start <= $2 - $3 THEN 1
                                     ELSE sign_in_failures.failures + 1 END,
                     window_start = CASE WHEN sign_in_failures.window_start <= $2 - $3 THEN $2
                                         ELSE sign_in_failures.window_start END
                 RETURNING failures",
            )
            .bind(bucket)
            .bind(now)
            .bind(window)
            .fetch_one(&mut *self.conn().await?)
            .await?;
            Ok(count)
        }

        async fn attempts(&self, bucket: &str, now: i64, window: i64) -> Result<(i64, i64), StoreError> {
            let row = sqlx::query("SELECT window_start, failures FROM sign_in_failures WHERE bucket = $1")
                .bind(bucket)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
            Ok(match row {
                Some(row) if row.get::<i64, _>("window_start") > now - window => {
                    (row.get("failures"), row.get("window_start"))
                }
                _ => (0, now),
            })
        }

        async fn clear_attempts(&self, bucket: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM sign_in_failures WHERE bucket = $1")
                .bind(bucket)
                .execute(&mut *self.conn().await?)
                .await?;
            Ok(())
        }

        async fn purge_expired(&self, now: i64, keep: i64) -> Result<(), StoreError> {
            let mut conn = self.conn().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for sql in [
                "DELETE FROM auth_codes WHERE expires_at < $1 - $2",
                "DELETE FROM refresh_tokens WHERE expires_at < $1",
                "DELETE FROM revoked_tokens WHERE expires_at < $1",
                "DELETE FROM used_assertions WHERE expires_at < $1",
                "DELETE FROM sessions WHERE expires_at < $1",
                "DELETE FROM upstream_sign_ins WHERE expires_at < $1",
                "DELETE FROM sign_in_failures WHERE window_start < $1 - $2",
                "DELETE FROM revocations WHERE revoked_at < $1 - $2",
                "DELETE FROM token_families WHERE created_at < $1 - $2
                     AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id)",
            ] {
                sqlx::query(sql).bind(now).bind(keep).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }
    };
}

pub(super) use {
    bind_client, client_columns, code_and_person_select, code_columns, columns_of, family_columns,
    grant_columns, store_helpers, store_methods, user_columns,
};
