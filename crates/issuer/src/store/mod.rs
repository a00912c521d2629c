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

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
}
