//! Where the issuer keeps what must survive a restart.
//!
//! One trait, [`Store`], says what the issuer needs; each backend implements it.
//! SQLite (one file, WAL; [`SqliteStore`]) is the default; PostgreSQL
//! ([`PgStore`]) lets several instances share one database. The SQL is written
//! to run unchanged on both (`$1`-style parameters, `BIGINT` seconds for times,
//! base64 `TEXT` instead of blobs, every change of more than one row in one
//! transaction), and written once, in `portable.rs`; each backend adds only its
//! connections and the token endpoint's two hottest statements.

mod any;
pub mod copy;
mod migrate;
mod portable;
mod postgres;
mod sqlite;
mod sqlite_checkpoint;
mod sqlite_direct;

use std::future::Future;

pub use any::AnyStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What a commit on SQLite survives once the issuer has answered. PostgreSQL
/// decides this itself (its `synchronous_commit`), so the setting is SQLite's
/// only.
///
/// ```
/// use agentgate_issuer::store::Durability;
///
/// assert_eq!(Durability::default(), Durability::Crash);
/// assert_eq!(Durability::Power.sqlite_synchronous(), 2); // FULL
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The process may crash, be killed or restarted: every commit it
    /// answered survives. A power cut or an operating-system crash may take
    /// the last commits (SQLite's `synchronous=NORMAL` in WAL mode syncs the
    /// log at checkpoints, not at each commit): a refresh token a client
    /// already holds may then be unknown after the reboot. Fastest; the
    /// default.
    #[default]
    Crash,
    /// A power cut too: each commit is synced to disk before it is answered
    /// (`synchronous=FULL`), at the cost of one sync per write.
    Power,
}

impl Durability {
    /// The value of SQLite's `PRAGMA synchronous` that gives it (1 NORMAL, 2 FULL).
    pub fn sqlite_synchronous(self) -> i64 {
        match self {
            Durability::Crash => 1,
            Durability::Power => 2,
        }
    }

    /// The durability a `PRAGMA synchronous` value gives, if it is one of these.
    pub fn of_sqlite_synchronous(level: i64) -> Option<Self> {
        [Durability::Crash, Durability::Power].into_iter().find(|d| d.sqlite_synchronous() == level)
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// The stable subject identifier (`sub`): random, never reused.
    pub id: String,
    /// The sign-in name, unique, lowercase.
    pub username: String,
    /// The email address, unique when present, lowercase.
    pub email: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// Whether an identity provider said the address is the person's.
    pub email_verified: bool,
    /// A picture's https URL, from an identity provider.
    pub picture: Option<String>,
    /// The argon2id PHC string; empty for a person who signs in only at an
    /// identity provider (no password then matches).
    pub password_hash: String,
    /// When the account was made.
    pub created_at: i64,
}

/// A person's account at an identity provider, tied to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLink {
    /// The provider's issuer identifier: with `subject`, the account.
    pub issuer: String,
    /// The provider's stable id of the person (`sub`, GitHub's numeric id).
    pub subject: String,
    /// The provider's id in the configuration, when the link was made.
    pub provider: String,
    /// Whether a first sign-in made it under the provider's admission rule
    /// (checked again at each sign-in), rather than the person or the operator.
    pub made_at_sign_in: bool,
    /// The person here.
    pub user_id: String,
    /// When the link was made.
    pub created_at: i64,
    /// When the person last signed in through it.
    pub signed_in_at: Option<i64>,
}

/// A sign-in at an identity provider in progress (see `upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSignIn {
    /// The hash of its `state`.
    pub state_hash: String,
    /// The provider's id.
    pub provider: String,
    /// The hash of the browser id that began it.
    pub browser_hash: String,
    /// The authorization request it continues (its query string), or empty.
    pub request: String,
    /// The signed-in person a link is being made for, if that is what it is.
    pub link_user: Option<String>,
    /// When it stops being taken.
    pub expires_at: i64,
}

/// An OAuth client (an "app").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// What its ID tokens are signed with: `ES256`, or `RS256` for apps that need it.
    pub id_token_signed_response_alg: String,
    /// Where it may send a person after signing them out, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// How it came to be: `admin` (registered by an administrator) or
    /// `dynamic` (registered itself, RFC 7591) or `document` (known by its
    /// Client ID Metadata Document).
    pub registration: String,
    /// SHA-256 (hex) of its registration access token (RFC 7592), for an app
    /// that registered itself.
    pub registration_token_hash: Option<String>,
    /// How it authenticates at the token endpoint: `none`,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    /// For `private_key_jwt`: the public keys it signs its assertions with (a
    /// JWK Set as JSON).
    pub jwks: Option<String>,
    /// Changes with every change to the app (the store adds one), so a copy
    /// read earlier is current while it matches (see [`Store::redeem_code`]);
    /// a new app's is random ([`crate::clients::first_version`]).
    pub version: i64,
}

/// An API resource (an MCP server) that tokens can be issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its URL, as tokens carry it in `aud`.
    pub uri: String,
    /// The canonical form of the URL, which requests are matched on.
    pub canonical: String,
    /// The name people see on the consent page.
    pub name: String,
    /// The permissions it defines.
    pub scopes: Vec<ResourceScope>,
    /// Its name and scope descriptions in other languages, by language tag
    /// (`es`, `ja`); what is left out falls back to `name` and `description`.
    pub translations: Translations,
    /// When it was added.
    pub created_at: i64,
}

impl Resource {
    /// Its name for a page in `lang`.
    pub fn name_in(&self, lang: &str) -> &str {
        self.translations.get(lang).and_then(|t| t.name.as_deref()).unwrap_or(&self.name)
    }

    /// What `scope` allows, in `lang` where the operator wrote it, else in the
    /// default words; `None` when the resource does not define `scope`.
    pub fn describe_in(&self, scope: &str, lang: &str) -> Option<&str> {
        let defined = self.scopes.iter().find(|s| s.name == scope)?;
        let translated = self.translations.get(lang).and_then(|t| t.scopes.get(scope));
        Some(translated.map_or(defined.description.as_str(), String::as_str))
    }
}

/// A resource's texts in other languages, by language tag.
pub type Translations = std::collections::BTreeMap<String, ResourceTexts>;

/// A resource's texts in one language.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceTexts {
    /// The resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What each scope allows, by scope token.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scopes: std::collections::BTreeMap<String, String>,
}

/// One permission of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// The scope token, e.g. `mcp:tools`.
    pub name: String,
    /// What it allows, in plain words, for the consent page.
    pub description: String,
}

/// What a person allowed an app for one resource; the management API shows
/// it as it is stored (it holds no secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The person.
    pub user_id: String,
    /// The app.
    pub client_id: String,
    /// The resource URL, or `""` for OpenID scopes alone.
    pub resource: String,
    /// The scopes allowed.
    pub scopes: Vec<String>,
    /// When first allowed.
    pub created_at: i64,
    /// When last widened.
    pub updated_at: i64,
}

/// An authorization code, as stored (the code itself only as a hash).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthCode {
    /// SHA-256 of the code.
    pub code_hash: String,
    /// The app it was issued to.
    pub client_id: String,
    /// The person who authorized it.
    pub user_id: String,
    /// The redirect URI it was sent to; the exchange must name it again.
    pub redirect_uri: String,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// The resource the tokens are for (`""` for none).
    pub resource: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The OpenID Connect nonce, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the person signed in.
    pub auth_time: i64,
    /// When it stops being valid.
    pub expires_at: i64,
    /// When it was exchanged; `Some` means used.
    pub redeemed_at: Option<i64>,
    /// The family of tokens its exchange issued.
    pub family_id: Option<String>,
}

/// Everything issued from one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    /// Random id; access tokens carry it in their `jti`.
    pub id: String,
    /// The app.
    pub client_id: String,
    /// The person.
    pub user_id: String,
    /// The resource (`""` for none).
    pub resource: String,
    /// The scopes granted: the most any token of the family may carry.
    pub scopes: Vec<String>,
    /// When the person signed in.
    pub auth_time: i64,
    /// When it was made.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A refresh token, as stored (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Its family.
    pub family_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops being valid.
    pub expires_at: i64,
    /// When it was exchanged for its successor; `Some` means used.
    pub rotated_at: Option<i64>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    /// Who signed in.
    pub user_id: String,
    /// When they entered their password.
    pub auth_time: i64,
    /// When the session ends.
    pub expires_at: i64,
}

/// What [`Store::client_and_code`] found; `None` where nothing matched.
#[derive(Debug, Clone, Default)]
pub struct ClientAndCode {
    /// The client with the claimed id.
    pub client: Option<Client>,
    /// The code with the hash.
    pub code: Option<AuthCode>,
    /// The person the code was issued to (`None` also if removed since).
    pub user: Option<User>,
}

/// An attempt to redeem an authorization code, checked by the caller against
/// the code, the app at `client_version` and the person.
#[derive(Debug, Clone, Copy)]
pub struct CodeRedemption<'a> {
    /// SHA-256 of the code.
    pub code_hash: &'a str,
    /// The time of the exchange.
    pub now: i64,
    /// The token family it starts (its client and person are the code's).
    pub family: &'a TokenFamily,
    /// The family's first refresh token, if the app may refresh.
    pub refresh: Option<&'a RefreshToken>,
    /// The [`Client::version`] the app was checked at; `None` for an app
    /// checked against its metadata document, whose row need only exist.
    pub client_version: Option<i64>,
}

/// How an attempt to redeem a code ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This exchange used the code; its family was stored. The person, as
    /// they are now.
    Won(User),
    /// The code had been used already, by the exchange that made this family.
    AlreadyUsed(String),
    /// Nothing was redeemed: since the caller read them, the app changed, or
    /// the person or the code is gone.
    Stale,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// SQLite refused, on the connection the token endpoint's statements use.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A SQLite URL named an in-memory database, which the store's connections
    /// cannot share.
    #[error("an in-memory SQLite database cannot be used; name a file (sqlite://PATH)")]
    InMemory,
    /// The thread that copies a SQLite database's log into its file could not
    /// be started.
    #[error("could not start the thread that copies the SQLite log: {0}")]
    Thread(std::io::Error),
    /// A unique value (username, email, client id) is already taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database URL is not one this build supports. It holds the URL's
    /// scheme only: the rest may carry a password.
    #[error("unsupported database URL {0:?} (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
}

// By hand, not `#[from]`: the message already holds sqlx's, which a source
// would repeat in every printed chain.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

impl StoreError {
    /// [`StoreError::UnsupportedUrl`] for `url`, keeping only its scheme.
    pub(crate) fn unsupported(url: &str) -> Self {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let shown =
            if scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) { scheme } else { "" };
        Self::UnsupportedUrl(format!("{shown}:…"))
    }
}

/// What a [`StoreError::Conflict`] says is taken.
pub mod taken {
    /// A username.
    pub const USERNAME: &str = "the username";
    /// An email address.
    pub const EMAIL: &str = "the email";
    /// An account at an identity provider.
    pub const PROVIDER_ACCOUNT: &str = "the account at that provider";
}

/// What the issuer needs from its database.
pub trait Store: Send + Sync + 'static {
    /// Every signing key: the active one first, then the others newest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    /// Makes `key` the active signing key of its algorithm: in one transaction,
    /// the current active key of that algorithm (if any) is retired at
    /// `key.created_at` and kept published until `publish_until`, and `key` is added.
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

    /// The person with this id.
    fn user(&self, id: &str) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Every person, by username.
    fn users(&self) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// Replaces a person's password hash; whether the person exists.
    fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces a person's username, email and name (not the password);
    /// whether the person exists. [`StoreError::Conflict`] when the username or
    /// email belongs to someone else.
    fn update_user(&self, user: &User) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends every browser session of a person.
    fn delete_sessions_of(&self, user_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a person, and records at `now` that their tokens are revoked;
    /// whether they existed.
    fn delete_user(&self, id: &str, now: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Registers a client; [`StoreError::Conflict`] when the id is taken.
    fn insert_client(&self, client: &Client) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One client.
    fn client(&self, client_id: &str) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;

    /// Replaces a client's registration (every field but its id,
    /// `created_at` and `version`, which goes up by one); the new version, or
    /// `None` if there is no such client.
    fn update_client(&self, client: &Client) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Every client, by name.
    fn clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;

    /// Removes a client, and records at `now` that its tokens are revoked;
    /// whether it existed.
    fn delete_client(
        &self,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds a resource and its scopes; [`StoreError::Conflict`] when its URL is taken.
    fn insert_resource(&self, resource: &Resource) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds a resource, or replaces the name and scopes of the one stored under its
    /// URL, in one transaction; [`StoreError::Conflict`] when another resource has
    /// its canonical URL.
    fn put_resource(&self, resource: &Resource) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every resource, by URL.
    fn resources(&self) -> impl Future<Output = Result<Vec<Resource>, StoreError>> + Send;

    /// The resource whose canonical URL is `canonical`.
    fn resource_by_canonical(
        &self,
        canonical: &str,
    ) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send;

    /// Removes a resource; whether it existed.
    fn delete_resource(&self, uri: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// What `user_id` allowed `client_id` for `resource`.
    fn grant(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;

    /// Stores a grant, replacing the one for the same person, app and resource.
    fn save_grant(&self, grant: &Grant) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every grant of a person, by app.
    fn grants_of_user(&self, user_id: &str) -> impl Future<Output = Result<Vec<Grant>, StoreError>> + Send;

    /// Every grant to one client, by user and resource.
    fn grants_of_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Vec<Grant>, StoreError>> + Send;

    /// In one transaction, deletes every grant of `user_id` to `client_id`,
    /// their codes not exchanged yet, and revokes every token family between
    /// them (recording each in the revocations); whether there was a grant or a family (a first-party app has
    /// tokens but no grant).
    fn revoke_grants(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records `id` as used until `expires_at`; whether this was its first use
    /// (decided by the store, so two racing uses cannot both win).
    fn first_use(&self, id: &str, expires_at: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new authorization code.
    fn insert_code(&self, code: &AuthCode) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The code with this hash.
    fn code(&self, code_hash: &str) -> impl Future<Output = Result<Option<AuthCode>, StoreError>> + Send;

    /// What the token endpoint needs to redeem a code, in one read: the client
    /// that claims it, the code with this hash, and the person it was issued to.
    fn client_and_code(
        &self,
        client_id: &str,
        code_hash: &str,
    ) -> impl Future<Output = Result<ClientAndCode, StoreError>> + Send;

    /// Uses the code at most once: in one transaction, marks it redeemed by
    /// the family and stores the family and its first refresh token, and reads
    /// the person; unless it was redeemed before, or the app is no longer at
    /// the version checked, or the person is gone, in which case nothing is
    /// written.
    fn redeem_code(
        &self,
        redemption: &CodeRedemption<'_>,
    ) -> impl Future<Output = Result<Redemption, StoreError>> + Send;

    /// When `user_id`'s tokens for `client_id` were last issued (a sign-in
    /// or a refresh), if ever.
    fn last_used(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// The token family with this id.
    fn family(&self, id: &str) -> impl Future<Output = Result<Option<TokenFamily>, StoreError>> + Send;

    /// Revokes a family and records the revocation (a no-op when it is
    /// already revoked or gone).
    fn revoke_family(&self, id: &str, now: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The refresh token with this hash, and its family.
    fn refresh_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<(RefreshToken, TokenFamily)>, StoreError>> + Send;

    /// Replaces a refresh token by its successor, at most once: in one
    /// transaction, marks `old_hash` rotated and stores `new`; `false` (and
    /// nothing written) when it had been rotated already.
    fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        new: &RefreshToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records one access token as revoked (at `now`) until it expires.
    fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every revocation recorded at `since` or later (see [`crate::revocations`]).
    fn revocations_since(
        &self,
        since: i64,
    ) -> impl Future<Output = Result<Vec<crate::revocations::Revocation>, StoreError>> + Send;

    /// Whether this access token was revoked on its own.
    fn access_token_revoked(&self, jti: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a signed-in browser.
    fn insert_session(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a sign-in at an identity provider in progress.
    fn insert_upstream_sign_in(
        &self,
        sign_in: &UpstreamSignIn,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the sign-in in progress with this state hash, once: it is gone
    /// after, whether it is still valid (`expires_at` after `now`) or not.
    fn take_upstream_sign_in(
        &self,
        state_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<UpstreamSignIn>, StoreError>> + Send;

    /// The person tied to the account `subject` of `issuer`, and the link.
    fn user_by_link(
        &self,
        issuer: &str,
        subject: &str,
    ) -> impl Future<Output = Result<Option<(User, UserLink)>, StoreError>> + Send;

    /// Ties an account at a provider to a person; `Conflict` when that account
    /// is tied to someone already.
    fn insert_user_link(&self, link: &UserLink) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A new person and their account at a provider, both or neither;
    /// `Conflict` naming what is taken (the username, the email address, the
    /// account at that provider).
    fn insert_user_with_link(
        &self,
        user: &User,
        link: &UserLink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A person's accounts at providers.
    fn user_links(&self, user_id: &str) -> impl Future<Output = Result<Vec<UserLink>, StoreError>> + Send;

    /// Unties the account `subject` of `issuer` from `user_id`; whether it was theirs.
    fn delete_user_link(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The sealed refresh token kept for `user_id`'s account at `issuer` (of
    /// their accounts there with one kept, the one they signed in through
    /// last): the account's subject and the sealed token.
    fn kept_refresh_token(
        &self,
        user_id: &str,
        issuer: &str,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;

    /// Keeps `sealed` (or, `None`, nothing) as the refresh token of the
    /// account `subject` of `issuer`. With `replacing`, only while the kept one
    /// is still that (another instance may have rotated it since it was
    /// read); whether it was written.
    fn keep_refresh_token(
        &self,
        issuer: &str,
        subject: &str,
        sealed: Option<&str>,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A person's profile from a provider, at a sign-in through the account
    /// `subject` of `issuer` (whose `signed_in_at` becomes `now`).
    fn refresh_profile(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session with this hash.
    fn session(&self, id_hash: &str) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Ends a session.
    fn delete_session(&self, id_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts one attempt (a failed sign-in, a registration) in `bucket`'s window
    /// of `window` seconds (a new window starts when the last one is over); the
    /// count after it. Buckets are named `kind:key`, e.g. `address:192.0.2.1`.
    fn count_attempt(
        &self,
        bucket: &str,
        now: i64,
        window: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Attempts in `bucket`'s current window, and when that window started.
    fn attempts(
        &self,
        bucket: &str,
        now: i64,
        window: i64,
    ) -> impl Future<Output = Result<(i64, i64), StoreError>> + Send;

    /// Forgets `bucket`'s attempts.
    fn clear_attempts(&self, bucket: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes what has expired: codes, refresh tokens, revoked-token records,
    /// sessions, sign-in windows, families nothing valid hangs on, and
    /// revocations older than `keep`. `keep` is
    /// how long (seconds) expired codes and families are kept, so a late replay
    /// is still recognised.
    fn purge_expired(&self, now: i64, keep: i64) -> impl Future<Output = Result<(), StoreError>> + Send;
}
