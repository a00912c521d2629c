//! A store chosen at run time by its URL.

use super::{
    AuthCode, Client, ClientAndCode, CodeRedemption, Durability, Grant, PgStore, Redemption, RefreshToken,
    Resource, Session, SqliteStore, Store, StoreError, StoredKey, TokenFamily, UpstreamSignIn, User,
    UserLink,
};

/// Whichever store a database URL names: `sqlite://PATH` or `postgres://…`.
///
/// A program that lets its operator choose (as `agentgate serve
/// --database-url` does) opens this one; it passes every call to the store
/// inside.
///
/// ```no_run
/// # async fn example() -> Result<(), agentgate_issuer::store::StoreError> {
/// use agentgate_issuer::store::{AnyStore, Store};
/// let store = AnyStore::open("postgres://agentgate@db.internal/agentgate").await?;
/// let people = store.users().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// One SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the database at `url`: `sqlite://PATH` (created if missing) or
    /// `postgres://…` / `postgresql://…`, its schema brought up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_durable(url, Durability::default()).await
    }

    /// [`AnyStore::open`], SQLite's commits as durable as `durability` says
    /// (PostgreSQL's are the server's business).
    pub async fn open_durable(url: &str, durability: Durability) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::open_durable(url, durability).await?))
        } else {
            Ok(Self::Postgres(PgStore::open(url).await?))
        }
    }
}

/// Writes each method once: its name, parameters and what it returns.
macro_rules! pass_on {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $out:ty;)*) => {
        $(
            async fn $name(&self $(, $arg: $ty)*) -> Result<$out, StoreError> {
                match self {
                    Self::Sqlite(store) => store.$name($($arg),*).await,
                    Self::Postgres(store) => store.$name($($arg),*).await,
                }
            }
        )*
    };
}

impl Store for AnyStore {
    pass_on! {
        fn signing_keys(&self) -> Vec<StoredKey>;
        fn rotate_signing_key(&self, key: &StoredKey, publish_until: i64) -> ();
        fn insert_user(&self, user: &User) -> ();
        fn find_user_by_login(&self, login: &str) -> Option<User>;
        fn user(&self, id: &str) -> Option<User>;
        fn insert_upstream_sign_in(&self, sign_in: &UpstreamSignIn) -> ();
        fn take_upstream_sign_in(&self, state_hash: &str, now: i64) -> Option<UpstreamSignIn>;
        fn user_by_link(&self, issuer: &str, subject: &str) -> Option<(User, UserLink)>;
        fn insert_user_link(&self, link: &UserLink) -> ();
        fn insert_user_with_link(&self, user: &User, link: &UserLink) -> ();
        fn user_links(&self, user_id: &str) -> Vec<UserLink>;
        fn delete_user_link(&self, user_id: &str, issuer: &str, subject: &str) -> bool;
        fn kept_refresh_token(&self, user_id: &str, issuer: &str) -> Option<(String, String)>;
        fn keep_refresh_token(&self, issuer: &str, subject: &str, sealed: Option<&str>, replacing: Option<&str>) -> bool;
        fn refresh_profile(&self, user: &User, issuer: &str, subject: &str, now: i64) -> ();
        fn users(&self) -> Vec<User>;
        fn set_password_hash(&self, id: &str, hash: &str) -> bool;
        fn update_user(&self, user: &User) -> bool;
        fn delete_sessions_of(&self, user_id: &str) -> ();
        fn delete_user(&self, id: &str, now: i64) -> bool;
        fn insert_client(&self, client: &Client) -> ();
        fn client(&self, client_id: &str) -> Option<Client>;
        fn update_client(&self, client: &Client) -> Option<i64>;
        fn clients(&self) -> Vec<Client>;
        fn delete_client(&self, client_id: &str, now: i64) -> bool;
        fn insert_resource(&self, resource: &Resource) -> ();
        fn put_resource(&self, resource: &Resource) -> ();
        fn resources(&self) -> Vec<Resource>;
        fn resource_by_canonical(&self, canonical: &str) -> Option<Resource>;
        fn delete_resource(&self, uri: &str) -> bool;
        fn grant(&self, user_id: &str, client_id: &str, resource: &str) -> Option<Grant>;
        fn save_grant(&self, grant: &Grant) -> ();
        fn grants_of_user(&self, user_id: &str) -> Vec<Grant>;
        fn grants_of_client(&self, client_id: &str) -> Vec<Grant>;
        fn revoke_grants(&self, user_id: &str, client_id: &str, now: i64) -> bool;
        fn first_use(&self, id: &str, expires_at: i64) -> bool;
        fn insert_code(&self, code: &AuthCode) -> ();
        fn code(&self, code_hash: &str) -> Option<AuthCode>;
        fn client_and_code(&self, client_id: &str, code_hash: &str) -> ClientAndCode;
        fn redeem_code(&self, redemption: &CodeRedemption<'_>) -> Redemption;
        fn last_used(&self, user_id: &str, client_id: &str) -> Option<i64>;
        fn family(&self, id: &str) -> Option<TokenFamily>;
        fn revoke_family(&self, id: &str, now: i64) -> ();
        fn refresh_token(&self, token_hash: &str) -> Option<(RefreshToken, TokenFamily)>;
        fn rotate_refresh_token(&self, old_hash: &str, now: i64, new: &RefreshToken) -> bool;
        fn revoke_access_token(&self, jti: &str, expires_at: i64, now: i64) -> ();
        fn revocations_since(&self, since: i64) -> Vec<crate::revocations::Revocation>;
        fn access_token_revoked(&self, jti: &str) -> bool;
        fn insert_session(&self, session: &Session) -> ();
        fn session(&self, id_hash: &str) -> Option<Session>;
        fn delete_session(&self, id_hash: &str) -> ();
        fn count_attempt(&self, bucket: &str, now: i64, window: i64) -> i64;
        fn attempts(&self, bucket: &str, now: i64, window: i64) -> (i64, i64);
        fn clear_attempts(&self, bucket: &str) -> ();
        fn purge_expired(&self, now: i64, keep: i64) -> ();
    }
}
