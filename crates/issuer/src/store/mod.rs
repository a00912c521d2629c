//! Where the issuer keeps what must survive a restart.
//!
//! One trait, [`Store`], says what the issuer needs; each backend implements it.
//! SQLite (one file, WAL) is the default; PostgreSQL, for several instances, is
//! the next backend. The SQL is written to run unchanged on both: `$1`-style
//! parameters, `BIGINT` seconds for times, base64 `TEXT` instead of blobs, and
//! every change of more than one row in one transaction.

mod migrate;
mod sqlite;

use std::future::Future;

pub use sqlite::SqliteStore;

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key id (`kid`): its RFC 7638 thumbprint.
    pub kid: String,
    /// The JWS algorithm, e.g. `ES256`.
    pub alg: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// The private key (PKCS#8), sealed under the key-encryption key.
    pub sealed_private: String,
    /// When it was made (seconds since the epoch).
    pub created_at: i64,
    /// When it stopped signing; `None` while it is the active key.
    pub retired_at: Option<i64>,
    /// Until when its public key stays in the JWKS after retirement.
    pub publish_until: Option<i64>,
}

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The stable subject identifier (`sub`): random, never reused.
    pub id: String,
    /// The sign-in name, unique, lowercase.
    pub username: String,
    /// The email address, unique when present, lowercase.
    pub email: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// When the account was made.
    pub created_at: i64,
}

/// An OAuth client (an "app").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// The name people see on the consent page.
    pub name: String,
    /// Third-party apps always ask for consent; first-party apps never do.
    pub third_party: bool,
    /// `web` or `native` (RFC 8252): decides which redirect URIs are allowed.
    pub application_type: String,
    /// SHA-256 (hex) of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly (loopback ports excepted for
    /// native apps).
    pub redirect_uris: Vec<String>,
    /// The most this client may ever be granted.
    pub scopes: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Shown on the consent page.
    pub logo_uri: Option<String>,
    /// Shown on the consent page.
    pub client_uri: Option<String>,
    /// Shown on the consent page.
    pub policy_uri: Option<String>,
    /// Shown on the consent page.
    pub tos_uri: Option<String>,
    /// When it was registered.
    pub created_at: i64,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A unique value (username, email, client id) is already taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database URL is not one this build supports.
    #[error("unsupported database URL {0:?} (expected sqlite://PATH)")]
    UnsupportedUrl(String),
}

/// What the issuer needs from its database.
pub trait Store: Send + Sync + 'static {
    /// Every signing key: the active one first, then the others newest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    /// Makes `key` the active signing key: in one transaction, the current active
    /// key (if any) is retired at `key.created_at` and kept published until
    /// `publish_until`, and `key` is added.
    fn rotate_signing_key(
        &self,
        key: &StoredKey,
        publish_until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds a person; [`StoreError::Conflict`] when the username or email is taken.
    fn insert_user(&self, user: &User) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The person whose username or email is `login` (already lowercased).
    fn find_user_by_login(
        &self,
        login: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Every person, by username.
    fn users(&self) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// Replaces a person's password hash; whether the person exists.
    fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes a person; whether they existed.
    fn delete_user(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Registers a client; [`StoreError::Conflict`] when the id is taken.
    fn insert_client(&self, client: &Client) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One client.
    fn client(&self, client_id: &str) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;

    /// Every client, by name.
    fn clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;

    /// Removes a client; whether it existed.
    fn delete_client(&self, client_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
