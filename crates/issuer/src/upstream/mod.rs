//! Signing people in at the identity provider they already have — Logto, an
//! OpenID Connect provider, GitHub — while this issuer does what MCP needs
//! (metadata, registration, consent per agent, audience-bound tokens).
//!
//! The person's browser goes to the provider and comes back with a code; the
//! issuer redeems it and checks the ID token; the person is then signed in
//! here, as the person tied to that account (`people.rs`). Agents get this
//! issuer's tokens only: the provider's tokens stay here and are dropped,
//! unless the provider's configuration keeps its refresh token, sealed, for
//! the MCP servers behind the gateway ([`Issuer::provider_access_token`]).
//!
//! A sign-in in progress is a row of the store, so that it may begin on one
//! instance and end on another. What could finish it does not sit in the
//! store: only the hash of its `state` is kept, and its nonce and PKCE
//! verifier are derived from the state with a key derived from the
//! key-encryption key. The row names the browser that began it (a login CSRF
//! — someone else's answer fed to this browser — is refused) and the provider
//! (a mix-up — a code from one provider sent to another's callback — is
//! refused, and RFC 9207's `iss` is checked when the provider offers it), and
//! it is taken once.

pub mod id_token;
mod kept;
mod people;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgate_guard::{AuthorizationServerMetadata, Discovery};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

pub use kept::{ProviderAccess, ProviderTokenError};
pub use people::Profile;

use crate::store::{Store, StoreError, UpstreamSignIn, User, UserLink};
use crate::{Issuer, hash_secret, pkce, random_token};

/// How long a sign-in at a provider may take, from the button to the answer.
const SIGN_IN_SECS: i64 = 600;
/// How long a provider's keys are kept before they are fetched again.
const KEYS_FOR: Duration = Duration::from_secs(600);
/// The least time between two fetches of a provider's keys (an ID token
/// signed by a key not seen yet fetches them again, at most this often).
const KEYS_REFETCH_AFTER: Duration = Duration::from_secs(30);
/// How long a provider may take to answer one request.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a provider's answer that is read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The longest authorization request a sign-in at a provider carries.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Sign-ins at providers one address may begin per window (each is a row of
/// the store until it is finished or purged).
const BEGUN_PER_ADDRESS: i64 = 30;
/// That window, in seconds.
const BEGUN_WINDOW_SECS: i64 = 600;

/// A provider's client secret: never shown in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<secret>)")
    }
}

/// Who may come in as a new person through a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Anyone the provider signs in.
    Anyone,
    /// People whose address, verified by the provider, is at one of these domains.
    EmailDomains(Vec<String>),
    /// Nobody new: only accounts tied to a person beforehand.
    Existing,
}

/// How a provider says who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect: its endpoints by discovery from its issuer, and an ID
    /// token that says who signed in.
    OpenIdConnect,
    /// Plain OAuth 2.0 with a user endpoint (GitHub's shape): its endpoints
    /// configured, and who signed in read from the user endpoint with the
    /// access token just obtained, over TLS.
    OAuth2(Box<OAuth2Provider>),
}

/// The endpoints and field names of a plain OAuth 2.0 provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Provider {
    /// Where people are sent to sign in.
    pub authorization_endpoint: String,
    /// Where the code is redeemed.
    pub token_endpoint: String,
    /// Where the person's profile is read.
    pub user_endpoint: String,
    /// GitHub's list of the person's addresses, each with whether it is
    /// verified (its user endpoint gives one public address, verified or
    /// not); the primary verified one is taken.
    pub emails_endpoint: Option<String>,
    /// Which fields of the user endpoint's answer say what.
    pub fields: ProfileFields,
    /// Whether the client secret goes in the token request's body
    /// (`client_secret_post`) rather than Basic authentication.
    pub secret_in_body: bool,
}

/// Which fields of a user endpoint's answer hold the person's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFields {
    /// The stable id (a string or a number).
    pub subject: String,
    /// The username.
    pub username: String,
    /// The display name.
    pub name: String,
    /// The address.
    pub email: String,
    /// Whether the address is verified, if the answer says.
    pub email_verified: Option<String>,
    /// A picture's URL.
    pub picture: String,
}

impl OAuth2Provider {
    /// GitHub (github.com): its endpoints, its fields (`id`, `login`, `name`,
    /// `email`, `avatar_url`), its list of verified addresses, and the secret
    /// in the token request's body, as its documentation shows.
    pub fn github() -> Self {
        Self {
            authorization_endpoint: "https://github.com/login/oauth/authorize".into(),
            token_endpoint: "https://github.com/login/oauth/access_token".into(),
            user_endpoint: "https://api.github.com/user".into(),
            emails_endpoint: Some("https://api.github.com/user/emails".into()),
            fields: ProfileFields {
                subject: "id".into(),
                username: "login".into(),
                name: "name".into(),
                email: "email".into(),
                email_verified: None,
                picture: "avatar_url".into(),
            },
            secret_in_body: true,
        }
    }
}

/// One identity provider people may sign in with.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Its id, in URLs and links: lowercase letters, digits and `-`.
    pub id: String,
    /// Its name on the sign-in page ("Continue with {name}").
    pub name: String,
    /// Its issuer identifier: OpenID Connect discovery finds the rest; for a
    /// plain OAuth 2.0 provider, the name its accounts are known under here
    /// (`https://github.com`).
    pub issuer: String,
    /// How it says who signed in.
    pub kind: ProviderKind,
    /// This issuer's client id there.
    pub client_id: String,
    /// And its secret.
    pub client_secret: ClientSecret,
    /// The scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// Who may come in as a new person.
    pub admit: Admission,
    /// Whether the provider's refresh token is kept (sealed) at each sign-in,
    /// so that an MCP server behind the gateway can be given an access token
    /// of the provider's for the person ([`Issuer::provider_access_token`]).
    pub keep_refresh_token: bool,
}

impl ProviderConfig {
    /// Checks what the types cannot; says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 40
            && self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(format!(
                "provider id {:?}: use lowercase letters, digits and '-' (it appears in URLs)",
                self.id
            ));
        }
        if self.kind == ProviderKind::OpenIdConnect && !self.scopes.iter().any(|s| s == "openid") {
            return Err(format!("provider {}: scopes must include openid", self.id));
        }
        if let ProviderKind::OAuth2(oauth2) = &self.kind {
            let endpoints = [
                Some(&oauth2.authorization_endpoint),
                Some(&oauth2.token_endpoint),
                Some(&oauth2.user_endpoint),
                oauth2.emails_endpoint.as_ref(),
            ];
            for endpoint in endpoints.into_iter().flatten() {
                let secure = url::Url::parse(endpoint).is_ok_and(|u| {
                    u.scheme() == "https" || (u.scheme() == "http" && agentgate_guard::is_loopback(&u))
                });
                if !secure {
                    return Err(format!("provider {}: {endpoint:?} must be an https URL", self.id));
                }
            }
        }
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(format!("provider {}: needs its client_id and client secret", self.id));
        }
        Discovery::new(&self.issuer)
            .map_err(|e| format!("provider {}: issuer {:?}: {e}", self.id, self.issuer))?;
        Ok(())
    }
}

/// What a provider sent the browser back with.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProviderAnswer {
    /// The code.
    pub code: Option<String>,
    /// The state this issuer sent.
    pub state: Option<String>,
    /// The provider's issuer identifier (RFC 9207).
    pub iss: Option<String>,
    /// An error code, when it did not sign the person in.
    pub error: Option<String>,
    /// The error in words.
    pub error_description: Option<String>,
}

/// What [`Issuer::unlink_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlinked {
    /// The account is no longer tied to the person.
    Done,
    /// It was not theirs (or not tied at all): nothing changed.
    NotTheirs,
    /// It is their last way to sign in here: it stays.
    LastWayIn,
}

/// A finished sign-in at a provider.
#[derive(Debug, Clone)]
pub struct SignedInUpstream {
    /// The person here.
    pub user: User,
    /// When the person last proved who they are at the provider (its ID
    /// token's `auth_time`, else now): the session's `auth_time`, which
    /// `max_age` is checked against.
    pub auth_time: i64,
    /// The authorization request it continues (its query string), or empty.
    pub request: String,
    /// Whether it tied the account to a person who was signed in already.
    pub linked: bool,
}

/// Why a sign-in at a provider did not happen. Nothing is stored for any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No provider has this id.
    #[error("there is no identity provider by that name here")]
    UnknownProvider,
    /// The answer is to no sign-in this browser began, or to one taken already
    /// or begun too long ago.
    #[error("no sign-in at an identity provider is in progress in this browser")]
    NoSignInInProgress,
    /// The answer came to the callback of another provider than the one the
    /// sign-in went to (a mix-up).
    #[error("the answer came from another identity provider than the one the sign-in went to")]
    WrongProvider,
    /// The provider's `iss` is missing or not the provider (RFC 9207).
    #[error("the answer does not come from the identity provider it should (iss)")]
    IssuerMismatch,
    /// The provider did not sign the person in.
    #[error("{provider} did not sign you in ({error})")]
    Refused {
        /// The provider's name.
        provider: String,
        /// Its error code (and description).
        error: String,
    },
    /// The provider could not be reached, or was too slow.
    #[error("{provider} could not be reached: {detail}")]
    Unreachable {
        /// The provider's name.
        provider: String,
        /// What failed.
        detail: String,
    },
    /// The provider answered with something that is not what was asked.
    #[error("{provider} answered with something unexpected: {detail}")]
    BadAnswer {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        detail: String,
    },
    /// The ID token failed a check.
    #[error("{provider}'s ID token was refused: {error}")]
    BadIdToken {
        /// The provider's name.
        provider: String,
        /// Which check.
        error: id_token::IdTokenError,
    },
    /// The provider's admission does not let this person in as a new person.
    #[error("this server does not let new people in through {provider}")]
    NotAdmitted {
        /// The provider's name.
        provider: String,
        /// The domains it lets in, if that is the rule.
        domains: Option<String>,
    },
    /// A person here already has the address the provider gives.
    #[error("an account here already uses the address {provider} gives")]
    EmailTaken {
        /// The provider's name.
        provider: String,
    },
    /// The account at the provider is tied to another person here.
    #[error("that {provider} account is already tied to another person here")]
    LinkTaken {
        /// The provider's name.
        provider: String,
    },
    /// This address began too many sign-ins lately.
    #[error("too many sign-ins were begun from this address; try again in {0} s")]
    TooMany(i64),
    /// The authorization request to carry is too long.
    #[error("the request is too long")]
    RequestTooLong,
    /// The store failed.
    #[error("the server's database failed: {0}")]
    Store(String),
}

/// A sign-in at a provider that did not finish: why, and the authorization
/// request it was to continue, when the answer was this browser's own (so
/// that the page can offer to try again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// Why.
    pub error: UpstreamError,
    /// The request's query string (empty: none), when known.
    pub request: Option<String>,
}

impl From<UpstreamError> for Unfinished {
    fn from(error: UpstreamError) -> Self {
        Unfinished { error, request: None }
    }
}

impl From<StoreError> for UpstreamError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "store error during a sign-in at an identity provider");
        UpstreamError::Store(error.to_string())
    }
}

/// The providers, and what is learned of each at run time.
pub(crate) struct Providers {
    list: Vec<Provider>,
    http: reqwest::Client,
    /// The provider access tokens handed out lately, per person and provider.
    access: kept::AccessCache,
}

struct Provider {
    config: ProviderConfig,
    discovery: Discovery,
    /// The provider's keys and when they were fetched.
    keys: Mutex<Option<(Arc<JwkSet>, Instant)>>,
}

/// How a provider's endpoints are found: discovery from its issuer, or (a
/// plain OAuth 2.0 provider) the configured ones, as fixed metadata.
fn discovery_of(config: &ProviderConfig) -> Option<Discovery> {
    match &config.kind {
        ProviderKind::OpenIdConnect => Discovery::new(&config.issuer).ok(),
        ProviderKind::OAuth2(oauth2) => {
            let metadata = serde_json::from_value(serde_json::json!({
                "issuer": config.issuer,
                "authorization_endpoint": oauth2.authorization_endpoint,
                "token_endpoint": oauth2.token_endpoint,
                "userinfo_endpoint": oauth2.user_endpoint,
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }))
            .ok()?;
            Discovery::fixed(&config.issuer, metadata).ok()
        }
    }
}

impl Providers {
    /// The providers of `configs` (each checked before: see
    /// [`ProviderConfig::check`]; one that fails is left out, with an error logged).
    pub(crate) fn new(configs: &[ProviderConfig]) -> Self {
        let list = configs
            .iter()
            .filter_map(|config| match config.check() {
                Ok(()) => Some(Provider {
                    discovery: discovery_of(config)?,
                    config: config.clone(),
                    keys: Mutex::new(None),
                }),
                Err(error) => {
                    tracing::error!("{error}; left out");
                    None
                }
            })
            .collect();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(PROVIDER_TIMEOUT / 2)
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .expect("a reqwest client with rustls builds");
        Self { list, http, access: kept::AccessCache::default() }
    }

    fn get(&self, id: &str) -> Result<&Provider, UpstreamError> {
        self.list.iter().find(|p| p.config.id == id).ok_or(UpstreamError::UnknownProvider)
    }
}

impl Provider {
    fn name(&self) -> String {
        self.config.name.clone()
    }

    async fn metadata(&self) -> Result<Arc<AuthorizationServerMetadata>, UpstreamError> {
        self.discovery.metadata().await.map_err(|error| UpstreamError::Unreachable {
            provider: self.name(),
            detail: agentgate_guard::error_chain(&error),
        })
    }

    /// The provider's keys; fetched again when older than [`KEYS_FOR`], or
    /// when `stale` (a token named a key not among them) and older than
    /// [`KEYS_REFETCH_AFTER`].
    async fn keys(&self, http: &reqwest::Client, stale: bool) -> Result<Arc<JwkSet>, UpstreamError> {
        let mut kept = self.keys.lock().await;
        if let Some((keys, at)) = kept.as_ref() {
            let age = at.elapsed();
            if age < KEYS_FOR && !(stale && age >= KEYS_REFETCH_AFTER) {
                return Ok(keys.clone());
            }
        }
        let metadata = self.metadata().await?;
        let uri = self.endpoint(metadata.jwks_uri.as_deref(), "jwks_uri")?;
        let body = self.fetch(http.get(uri)).await?;
        let keys: JwkSet =
            serde_json::from_slice(&body).map_err(|_| self.bad("its keys (jwks_uri) are not a JWK set"))?;
        let keys = Arc::new(keys);
        *kept = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    fn bad(&self, detail: &str) -> UpstreamError {
        UpstreamError::BadAnswer { provider: self.name(), detail: detail.to_owned() }
    }

    /// `url` (the metadata's `what`), if it is https, or http on loopback:
    /// the secret, the code and the verifier travel to these endpoints.
    fn endpoint(&self, url: Option<&str>, what: &str) -> Result<url::Url, UpstreamError> {
        let url = url.ok_or_else(|| self.bad(&format!("its metadata names no {what}")))?;
        let url = url::Url::parse(url).map_err(|_| self.bad(&format!("its {what} is not a URL")))?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if agentgate_guard::is_loopback(&url) => Ok(url),
            _ => Err(self.bad(&format!("its {what} is not https"))),
        }
    }

    /// The JSON at the endpoint `url` (the metadata's or configuration's
    /// `what`), read with the provider's access token.
    async fn read(
        &self,
        http: &reqwest::Client,
        url: Option<&str>,
        what: &str,
        access_token: &str,
    ) -> Result<Value, UpstreamError> {
        let url = self.endpoint(url, what)?;
        let request = http
            .get(url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            // GitHub's API refuses requests without one.
            .header(reqwest::header::USER_AGENT, concat!("agentgate/", env!("CARGO_PKG_VERSION")));
        let body = self.fetch(request).await?;
        serde_json::from_slice(&body).map_err(|_| self.bad(&format!("its {what}'s answer is not JSON")))
    }

    /// [`Provider::read`], for an answer that must be a JSON object.
    async fn read_object(
        &self,
        http: &reqwest::Client,
        url: Option<&str>,
        what: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        match self.read(http, url, what, access_token).await? {
            Value::Object(object) => Ok(object),
            _ => Err(self.bad(&format!("its {what}'s answer is not an object"))),
        }
    }

    /// Sends `request`; the body of a 2xx answer, at most [`MAX_ANSWER_BYTES`].
    async fn fetch(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, UpstreamError> {
        let (status, body) = self.fetch_any(request).await?;
        if !status.is_success() {
            // An OAuth error's words, when it sent some.
            let said = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                let error = v.get("error")?.as_str()?.to_owned();
                Some(match v.get("error_description").and_then(Value::as_str) {
                    Some(words) => format!("{error}: {words}"),
                    None => error,
                })
            });
            return Err(
                self.bad(&format!("HTTP {status}{}", said.map(|s| format!(" ({s})")).unwrap_or_default()))
            );
        }
        Ok(body)
    }

    /// Sends `request`; the status and body of the answer, whatever the
    /// status, at most [`MAX_ANSWER_BYTES`].
    async fn fetch_any(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), UpstreamError> {
        let unreachable = |error: reqwest::Error| UpstreamError::Unreachable {
            provider: self.name(),
            detail: agentgate_guard::error_chain(&error),
        };
        let mut answer = request.send().await.map_err(unreachable)?;
        let status = answer.status();
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(self.bad("its answer is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// The form of RFC 6749 §2.3.1's Basic authentication: each part
/// form-urlencoded first.
fn basic_auth(client_id: &str, secret: &str) -> String {
    let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// What the person's claims say, as a [`Profile`]: `sub`, and the standard
/// claims a provider gives (Logto's `username` too). A picture counts only on
/// https.
pub fn profile_of(claims: &Map<String, Value>) -> Profile {
    let text =
        |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        // Some providers send it as a string.
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Profile {
        subject: text("sub").unwrap_or_default(),
        username: text("preferred_username").or_else(|| text("username")).or_else(|| text("nickname")),
        name: text("name"),
        email: text("email"),
        email_verified: verified,
        picture: text("picture").filter(|p| p.starts_with("https://")),
    }
}

impl<S: Store> Issuer<S> {
    /// The identity providers people may sign in with: id and name, in the
    /// configuration's order.
    pub fn identity_providers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.upstream.list.iter().map(|p| (p.config.id.as_str(), p.config.name.as_str()))
    }

    /// The name of the provider whose issuer is `issuer`, while one is
    /// configured (a link outlives the configuration of its provider).
    pub fn provider_name(&self, issuer: &str) -> Option<&str> {
        self.upstream.list.iter().find(|p| p.config.issuer == issuer).map(|p| p.config.name.as_str())
    }

    /// Whether the configured provider `id` keeps refresh tokens (`None`: no
    /// such provider).
    pub fn keeps_refresh_tokens(&self, id: &str) -> Option<bool> {
        self.upstream.get(id).ok().map(|p| p.config.keep_refresh_token)
    }

    /// The issuer of the configured provider `id`.
    pub fn provider_issuer(&self, id: &str) -> Option<&str> {
        self.upstream.get(id).ok().map(|p| p.config.issuer.as_str())
    }

    /// A person's accounts at identity providers.
    pub async fn linked_accounts(&self, user_id: &str) -> Result<Vec<UserLink>, StoreError> {
        self.store.user_links(user_id).await
    }

    /// Unties the account `subject` of `issuer` from the person `user_id`,
    /// unless it is their last way to sign in here (no password, or passwords
    /// off, and no other account).
    pub async fn unlink_account(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Unlinked, StoreError> {
        let links = self.store.user_links(user_id).await?;
        if !links.iter().any(|l| l.issuer == issuer && l.subject == subject) {
            return Ok(Unlinked::NotTheirs);
        }
        let password = self.settings.passwords
            && self.store.user(user_id).await?.is_some_and(|u| !u.password_hash.is_empty());
        if links.len() == 1 && !password {
            return Ok(Unlinked::LastWayIn);
        }
        Ok(if self.drop_provider_account(user_id, issuer, subject).await? {
            Unlinked::Done
        } else {
            Unlinked::NotTheirs
        })
    }

    /// Where an identity provider sends people back to.
    pub fn upstream_callback(&self, provider: &str) -> String {
        self.settings.endpoint(&format!("/sign-in/{provider}/callback"))
    }

    /// A value derived from a sign-in's `state`, for `purpose` (its nonce,
    /// its PKCE verifier): 256 bits nobody can make without the issuer's key.
    fn derived(&self, state: &str, purpose: &str) -> String {
        let tag = hmac::sign(&self.upstream_key, crate::forms::framed(&[purpose, state]).as_slice());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Begins a sign-in at `provider` for the browser `browser_id` (at
    /// `address`, if known), continuing the authorization request `request`
    /// (its query string, or empty), or tying the account to the signed-in
    /// `link_user`. A request that asks for a fresh sign-in (`prompt=login`,
    /// `max_age`) asks the provider for one too. Returns where to send the
    /// browser.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_upstream_sign_in(
        &self,
        provider: &str,
        request: &str,
        browser_id: &str,
        link_user: Option<&str>,
        address: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<String, UpstreamError> {
        let provider = self.upstream.get(provider)?;
        if request.len() > MAX_REQUEST_BYTES {
            return Err(UpstreamError::RequestTooLong);
        }
        if let Some(ip) = address {
            let bucket = format!("upstream-begun:{ip}");
            if self.store.count_attempt(&bucket, now, BEGUN_WINDOW_SECS).await? > BEGUN_PER_ADDRESS {
                let (_, window_start) = self.store.attempts(&bucket, now, BEGUN_WINDOW_SECS).await?;
                return Err(UpstreamError::TooMany((window_start + BEGUN_WINDOW_SECS - now).max(1)));
            }
        }
        let metadata = provider.metadata().await?;
        let mut url =
            provider.endpoint(metadata.authorization_endpoint.as_deref(), "authorization_endpoint")?;
        let state = random_token(32);
        self.store
            .insert_upstream_sign_in(&UpstreamSignIn {
                state_hash: hash_secret(&state),
                provider: provider.config.id.clone(),
                browser_hash: hash_secret(browser_id),
                request: request.to_owned(),
                link_user: link_user.map(str::to_owned),
                expires_at: now + SIGN_IN_SECS,
            })
            .await?;
        let challenge = pkce::challenge_of(&self.derived(&state, "pkce"));
        let mut scopes = provider.config.scopes.clone();
        let mut prompt = Vec::new();
        if provider.config.keep_refresh_token && offers_offline_access(&metadata) {
            // A refresh token is what `offline_access` asks for.
            if !scopes.iter().any(|s| s == "offline_access") {
                scopes.push("offline_access".into());
            }
        }
        if scopes.iter().any(|s| s == "offline_access") {
            // Asking for it takes the person's consent there (OpenID Connect Core §11).
            prompt.push("consent");
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.config.client_id)
            .append_pair("redirect_uri", &self.upstream_callback(&provider.config.id))
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &self.derived(&state, "nonce"))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        // What the app asked of the sign-in, the provider is asked too.
        let asked: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(request.as_bytes()).into_owned().collect();
        if asked.get("prompt").is_some_and(|p| p.split(' ').any(|v| v == "login")) {
            prompt.insert(0, "login");
        }
        if !prompt.is_empty() {
            url.query_pairs_mut().append_pair("prompt", &prompt.join(" "));
        }
        if let Some(max_age) = asked.get("max_age").filter(|m| m.parse::<u64>().is_ok()) {
            url.query_pairs_mut().append_pair("max_age", max_age);
        }
        Ok(url.into())
    }

    /// Finishes a sign-in at `provider` with its `answer`, in the browser
    /// `browser_id` (where `signed_in` is signed in now, if anyone): checks it
    /// is the answer to this browser's sign-in there, redeems the code,
    /// verifies the ID token, and finds (or makes, or ties) the person.
    pub async fn finish_upstream_sign_in(
        &self,
        provider: &str,
        answer: &ProviderAnswer,
        browser_id: Option<&str>,
        signed_in: Option<&str>,
        now: i64,
    ) -> Result<SignedInUpstream, Unfinished> {
        let provider = self.upstream.get(provider)?;
        let state = answer.state.as_deref().ok_or(UpstreamError::NoSignInInProgress)?;
        let begun = self
            .store
            .take_upstream_sign_in(&hash_secret(state), now)
            .await
            .map_err(UpstreamError::from)?
            .ok_or(UpstreamError::NoSignInInProgress)?;
        // Taken, and gone, whatever follows: an answer is good once.
        if browser_id.is_none_or(|id| hash_secret(id) != begun.browser_hash) {
            return Err(UpstreamError::NoSignInInProgress.into());
        }
        if begun.provider != provider.config.id {
            return Err(UpstreamError::WrongProvider.into());
        }
        // A link is made for the person signed in when it began, only while
        // they still are.
        if begun.link_user.is_some() && begun.link_user.as_deref() != signed_in {
            return Err(UpstreamError::NoSignInInProgress.into());
        }
        let request = begun.request.clone();
        self.complete_upstream_sign_in(provider, begun, answer, state, now)
            .await
            .map_err(|error| Unfinished { error, request: Some(request) })
    }

    /// The rest of [`Issuer::finish_upstream_sign_in`], once the answer is
    /// known to be this browser's, for this provider.
    async fn complete_upstream_sign_in(
        &self,
        provider: &Provider,
        begun: UpstreamSignIn,
        answer: &ProviderAnswer,
        state: &str,
        now: i64,
    ) -> Result<SignedInUpstream, UpstreamError> {
        let metadata = provider.metadata().await?;
        let iss_offered =
            metadata.other.get("authorization_response_iss_parameter_supported") == Some(&Value::Bool(true));
        match answer.iss.as_deref() {
            Some(iss) if iss != provider.config.issuer => return Err(UpstreamError::IssuerMismatch),
            None if iss_offered => return Err(UpstreamError::IssuerMismatch),
            _ => {}
        }
        if let Some(error) = &answer.error {
            // Words from the browser's query: short and plain for the log.
            let plain = |text: &str| text.chars().filter(|c| !c.is_control()).take(200).collect::<String>();
            let error = match &answer.error_description {
                Some(words) => format!("{}: {}", plain(error), plain(words)),
                None => plain(error),
            };
            return Err(UpstreamError::Refused { provider: provider.name(), error });
        }
        let code = answer.code.as_deref().ok_or_else(|| provider.bad("the answer has no code"))?;
        let tokens = self.redeem_upstream_code(provider, &metadata, code, state).await?;
        let claims = match &provider.config.kind {
            ProviderKind::OpenIdConnect => {
                self.openid_claims(provider, &metadata, &tokens, state, now).await?
            }
            ProviderKind::OAuth2(oauth2) => self.oauth2_claims(provider, oauth2, &tokens).await?,
        };
        let profile = profile_of(&claims);
        let user =
            people::person_for(&self.store, &provider.config, &profile, begun.link_user.as_deref(), now)
                .await?;
        self.keep_provider_refresh_token(
            provider,
            &user.id,
            &profile.subject,
            tokens.refresh_token.as_deref(),
        )
        .await?;
        let auth_time = claims.get("auth_time").and_then(Value::as_i64).filter(|t| *t <= now).unwrap_or(now);
        Ok(SignedInUpstream { user, auth_time, request: begun.request, linked: begun.link_user.is_some() })
    }

    /// Redeems `code` at the provider's token endpoint (with the sign-in's
    /// PKCE verifier): the provider's tokens, which go no further than this.
    async fn redeem_upstream_code(
        &self,
        provider: &Provider,
        metadata: &AuthorizationServerMetadata,
        code: &str,
        state: &str,
    ) -> Result<ProviderTokens, UpstreamError> {
        let verifier = self.derived(state, "pkce");
        let callback = self.upstream_callback(&provider.config.id);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let tokens = self.token_request(provider, metadata, &form).await?;
        if let Some(error) = &tokens.error {
            return Err(provider.bad(&format!("its token endpoint refused the code ({error})")));
        }
        Ok(tokens)
    }

    /// Posts `form` to the provider's token endpoint, as this server's client
    /// there: its answer, an OAuth error (in `error`) included.
    async fn token_request(
        &self,
        provider: &Provider,
        metadata: &AuthorizationServerMetadata,
        form: &[(&str, &str)],
    ) -> Result<ProviderTokens, UpstreamError> {
        let endpoint = provider.endpoint(metadata.token_endpoint.as_deref(), "token_endpoint")?;
        let config = &provider.config;
        let mut form = form.to_vec();
        // client_secret_basic unless the provider takes only client_secret_post.
        let methods = metadata.other.get("token_endpoint_auth_methods_supported").and_then(Value::as_array);
        let post_only = methods.is_some_and(|m| {
            m.iter().any(|v| v == "client_secret_post") && !m.iter().any(|v| v == "client_secret_basic")
        }) || matches!(&config.kind, ProviderKind::OAuth2(o) if o.secret_in_body);
        let mut request =
            self.upstream.http.post(endpoint).header(reqwest::header::ACCEPT, "application/json");
        if post_only {
            form.extend([
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.0.as_str()),
            ]);
        } else {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                basic_auth(&config.client_id, &config.client_secret.0),
            );
        }
        // OAuth 2.0 says errors come with 400 (RFC 6749 §5.2), GitHub says
        // them with 200: either way the answer's `error` says it.
        let (status, body) = provider.fetch_any(request.form(&form)).await?;
        let tokens: Option<ProviderTokens> = serde_json::from_slice(&body).ok();
        match tokens {
            Some(tokens) if status.is_success() || tokens.error.is_some() => Ok(tokens),
            Some(_) => Err(provider.bad(&format!("its token endpoint answered HTTP {status}"))),
            None => Err(provider.bad("its token answer is not JSON")),
        }
    }

    /// Who an OpenID Connect provider says signed in: the verified ID token's
    /// claims, with what its userinfo adds (many providers put only `sub` in
    /// the ID token and the profile in userinfo: OpenID Connect Core §5.4).
    async fn openid_claims(
        &self,
        provider: &Provider,
        metadata: &AuthorizationServerMetadata,
        tokens: &ProviderTokens,
        state: &str,
        now: i64,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let config = &provider.config;
        let id_token =
            tokens.id_token.as_deref().ok_or_else(|| provider.bad("its token answer has no id_token"))?;
        let nonce = self.derived(state, "nonce");
        let expected =
            id_token::Expected { issuer: &config.issuer, client_id: &config.client_id, nonce: &nonce, now };
        let keys = provider.keys(&self.upstream.http, false).await?;
        let verified = match id_token::verify(id_token, &keys, &expected) {
            Err(id_token::IdTokenError::Signature) => {
                // Perhaps a key the provider began to use since: fetch again, once.
                let keys = provider.keys(&self.upstream.http, true).await?;
                id_token::verify(id_token, &keys, &expected)
            }
            other => other,
        };
        let mut claims =
            verified.map_err(|error| UpstreamError::BadIdToken { provider: provider.name(), error })?;
        if let (Some(endpoint), Some(access_token)) = (&metadata.userinfo_endpoint, &tokens.access_token) {
            let userinfo = provider
                .read_object(&self.upstream.http, Some(endpoint), "userinfo_endpoint", access_token)
                .await?;
            // Another person's answer is no answer for this one (§5.3.2).
            if userinfo.get("sub") != claims.get("sub") {
                return Err(provider.bad("its userinfo answer is about someone else (sub)"));
            }
            for (name, value) in userinfo {
                claims.entry(name).or_insert(value);
            }
        }
        Ok(claims)
    }

    /// Who a plain OAuth 2.0 provider says signed in: its user endpoint's
    /// answer (and GitHub's list of addresses), as standard claims.
    async fn oauth2_claims(
        &self,
        provider: &Provider,
        oauth2: &OAuth2Provider,
        tokens: &ProviderTokens,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let http = &self.upstream.http;
        let access_token = tokens
            .access_token
            .as_deref()
            .ok_or_else(|| provider.bad("its token answer has no access_token"))?;
        let user = provider.read(http, Some(&oauth2.user_endpoint), "user endpoint", access_token).await?;
        let user =
            user.as_object().ok_or_else(|| provider.bad("its user endpoint's answer is not an object"))?;
        let fields = &oauth2.fields;
        let subject = match user.get(&fields.subject) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(provider.bad(&format!("its user endpoint's answer has no {}", fields.subject))),
        };
        let mut claims = Map::new();
        claims.insert("sub".into(), subject.into());
        for (claim, field) in [
            ("preferred_username", &fields.username),
            ("name", &fields.name),
            ("email", &fields.email),
            ("picture", &fields.picture),
        ] {
            if let Some(value) = user.get(field).filter(|v| v.is_string()) {
                claims.insert(claim.into(), value.clone());
            }
        }
        if let Some(verified) = fields.email_verified.as_ref().and_then(|f| user.get(f)) {
            claims.insert("email_verified".into(), verified.clone());
        }
        if let Some(endpoint) = &oauth2.emails_endpoint {
            // The primary address, when verified: the one that is the person's.
            let emails = provider.read(http, Some(endpoint), "emails endpoint", access_token).await?;
            let primary = emails.as_array().into_iter().flatten().find(|e| {
                e.get("primary") == Some(&Value::Bool(true)) && e.get("verified") == Some(&Value::Bool(true))
            });
            match primary.and_then(|e| e.get("email")).filter(|e| e.is_string()) {
                Some(email) => {
                    claims.insert("email".into(), email.clone());
                    claims.insert("email_verified".into(), true.into());
                }
                None => {
                    claims.insert("email_verified".into(), false.into());
                }
            }
        }
        Ok(claims)
    }
}

/// A provider's token answer, as far as it matters here.
#[derive(Deserialize)]
struct ProviderTokens {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    token_type: Option<String>,
    /// A number, or (some providers) a numeric string: read when used.
    expires_in: Option<Value>,
    error: Option<String>,
}

/// Whether an OpenID Connect provider's metadata lists `offline_access`.
fn offers_offline_access(metadata: &AuthorizationServerMetadata) -> bool {
    let scopes = metadata.other.get("scopes_supported").and_then(Value::as_array);
    scopes.is_some_and(|scopes| scopes.iter().any(|s| s == "offline_access"))
}
