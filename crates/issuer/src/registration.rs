//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592): agents nobody registered by hand register themselves.
//!
//! Who may register is the [`RegistrationPolicy`]; `agentgate dev` is open,
//! everything else is off unless configured. What a self-registered app may be
//! is narrower than what an administrator may register:
//!
//! - always third-party, so a person is asked for consent every time it wants
//!   something new, and the consent page says it is not verified;
//! - only the code flow (`authorization_code`, optionally `refresh_token`);
//! - scopes within a server-owned ceiling ([`Settings::registration_scopes`],
//!   by default the OpenID scopes and every resource's scopes);
//! - `application_type` decides the redirect rules: `web` needs https; `native`
//!   may use loopback http (any port, RFC 8252 §7.3) or a private-use scheme.
//!   Clients written before the MCP spec asked for `application_type` often omit
//!   it; OpenID Connect's default, `web`, would refuse their loopback redirects,
//!   so an app that omits it is `native` when every redirect URI is loopback http
//!   or a private-use scheme, and `web` otherwise.
//! - no `javascript:`, `data:`, fragments, wildcards or credentials (the rules of
//!   [`crate::clients::check_redirect_uri`]).
//!
//! Metadata the server does not understand is ignored (RFC 7591 §2). Bad metadata
//! gets `invalid_client_metadata` or `invalid_redirect_uri` with a description,
//! and nothing is stored. The response carries a registration access token, kept
//! only as a hash, with which the app reads, replaces or deletes its registration.
//!
//! [`Settings::registration_scopes`]: crate::Settings::registration_scopes

use std::net::IpAddr;

use aws_lc_rs::constant_time;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::clients::{self, ApplicationType, ClientError, NewClient, secret_hash};
use crate::management::{ApiAuthError, REGISTER_SCOPE, is_reserved_scope};
use crate::scopes::OPENID_SCOPES;
use crate::store::{Client, Store, StoreError};
use crate::{Issuer, random_token};

/// Who may register an app at the registration endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Nobody: the endpoint is not advertised and answers 404.
    #[default]
    Off,
    /// Anyone, within the per-address rate limit (`agentgate dev`).
    Open,
    /// Callers with an initial access token (RFC 7591 §3): an access token for
    /// the management API with `agentgate:register` or `agentgate:admin`
    /// (`agentgate serve`'s default).
    Token,
}

/// RFC 7591 client metadata, as a client sends it. Fields not listed are
/// ignored; every field is optional here and checked by [`check_metadata`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    /// Where people may be sent back to.
    pub redirect_uris: Option<Vec<String>>,
    /// `none`, `client_secret_basic` (the default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// `authorization_code` (the default), optionally with `refresh_token`.
    pub grant_types: Option<Vec<String>>,
    /// `code` only.
    pub response_types: Option<Vec<String>>,
    /// The name people see.
    pub client_name: Option<String>,
    /// Home page.
    pub client_uri: Option<String>,
    /// Logo (not shown for self-registered apps).
    pub logo_uri: Option<String>,
    /// Terms of service.
    pub tos_uri: Option<String>,
    /// Privacy policy.
    pub policy_uri: Option<String>,
    /// Space-separated scopes it wants to be able to ask for.
    pub scope: Option<String>,
    /// `web` or `native` (OpenID Connect Dynamic Client Registration).
    pub application_type: Option<String>,
    /// Where it may send a person after signing them out.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `ES256` (the default) or `RS256`.
    pub id_token_signed_response_alg: Option<String>,
    /// On an update (RFC 7592): the app's own id, which must match.
    pub client_id: Option<String>,
    /// On an update: the app's secret, which must match if sent.
    pub client_secret: Option<String>,
    /// Its public keys (a JWK Set), for `private_key_jwt`; only a metadata
    /// document may use them.
    pub jwks: Option<serde_json::Value>,
    /// Where its public keys are, instead of `jwks`.
    pub jwks_uri: Option<String>,
}

/// The error codes of RFC 7591 §3.2.2, and the refusals around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationErrorCode {
    /// A redirect URI breaks a rule.
    InvalidRedirectUri,
    /// Any other field is wrong.
    InvalidClientMetadata,
    /// The registration access token (or the initial access token) is missing
    /// or wrong, or the app is gone (RFC 7592 §2: the same answer, so ids
    /// cannot be probed).
    InvalidToken,
    /// The initial access token lacks `agentgate:register`.
    InsufficientScope,
    /// Registration is off.
    NotFound,
    /// Too many registrations from this address; retry after the seconds given.
    TooManyRequests(i64),
}

impl RegistrationErrorCode {
    /// The `error` value of the JSON answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::NotFound => "not_found",
            Self::TooManyRequests(_) => "too_many_requests",
        }
    }
}

/// Why a registration request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct RegistrationError {
    /// What kind of refusal.
    pub code: RegistrationErrorCode,
    /// A sentence for the developer.
    pub description: String,
}

impl RegistrationError {
    fn metadata(description: impl Into<String>) -> Self {
        Self { code: RegistrationErrorCode::InvalidClientMetadata, description: description.into() }
    }

    fn invalid_token() -> Self {
        Self {
            code: RegistrationErrorCode::InvalidToken,
            description: "the registration access token is missing or wrong".into(),
        }
    }
}

impl From<ClientError> for RegistrationError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::InvalidRedirectUri { .. } | ClientError::NoRedirectUri => {
                Self { code: RegistrationErrorCode::InvalidRedirectUri, description: error.to_string() }
            }
            other => Self::metadata(other.to_string()),
        }
    }
}

/// The store failed: not the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationFailure {
    /// The request was refused.
    #[error(transparent)]
    Refused(#[from] RegistrationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The initial access token could not be checked (the store failed; logged).
    #[error("the initial access token could not be checked; try again later")]
    Unavailable,
}

impl From<ClientError> for RegistrationFailure {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Store(e) => Self::Store(e),
            other => Self::Refused(other.into()),
        }
    }
}

/// A successful registration: the app, and what is shown only now.
#[derive(Debug)]
pub struct SelfRegistered {
    /// The app as stored.
    pub client: Client,
    /// Its secret, for a confidential app.
    pub secret: Option<String>,
    /// The registration access token (RFC 7592).
    pub registration_token: String,
}

/// Checks client metadata against the rules above, with `ceiling` the scopes a
/// self-registered app may have: the app to register and its grant types.
/// Pure: nothing is stored.
pub fn check_metadata(
    metadata: &ClientMetadata,
    ceiling: &[String],
) -> Result<(NewClient, Vec<String>), RegistrationError> {
    check_sizes(metadata)?;
    let redirect_uris = metadata.redirect_uris.clone().unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(RegistrationError {
            code: RegistrationErrorCode::InvalidRedirectUri,
            description: "redirect_uris is required: only the authorization code flow is offered".into(),
        });
    }
    let public = match metadata.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic") {
        "none" => true,
        "client_secret_basic" | "client_secret_post" => false,
        other => {
            return Err(RegistrationError::metadata(format!(
                "token_endpoint_auth_method {other:?} is not supported; use none, client_secret_basic or \
                 client_secret_post"
            )));
        }
    };
    let grant_types = grant_types(metadata)?;
    if let Some(types) = &metadata.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err(RegistrationError::metadata("response_types may only hold \"code\""));
    }
    let application_type = match metadata.application_type.as_deref() {
        Some("web") => ApplicationType::Web,
        Some("native") => ApplicationType::Native,
        Some(other) => {
            return Err(RegistrationError::metadata(format!(
                "application_type {other:?} is not supported; use web or native"
            )));
        }
        None if redirect_uris.iter().all(|uri| looks_native(uri)) => ApplicationType::Native,
        None => ApplicationType::Web,
    };
    if application_type == ApplicationType::Web {
        let post_logout = metadata.post_logout_redirect_uris.iter().flatten();
        if let Some(uri) = redirect_uris.iter().chain(post_logout).find(|u| !u.starts_with("https:")) {
            return Err(RegistrationError {
                code: RegistrationErrorCode::InvalidRedirectUri,
                description: format!(
                    "invalid redirect URI {uri:?}: a web app must use https; an app on the person's device \
                     registers with application_type \"native\""
                ),
            });
        }
    }
    // offline_access asks for refresh tokens: only for apps that may refresh.
    let refreshes = grant_types.iter().any(|g| g == "refresh_token");
    let scopes = match &metadata.scope {
        None => ceiling.iter().filter(|s| refreshes || *s != "offline_access").cloned().collect(),
        Some(scope) => {
            let asked: Vec<String> = scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if let Some(outside) = asked.iter().find(|s| !ceiling.contains(s)) {
                return Err(RegistrationError::metadata(format!(
                    "scope {outside:?} is not available to self-registered apps"
                )));
            }
            if !refreshes && asked.iter().any(|s| s == "offline_access") {
                return Err(RegistrationError::metadata("offline_access needs the refresh_token grant type"));
            }
            asked
        }
    };
    let id_token_alg = match metadata.id_token_signed_response_alg.as_deref() {
        None => Default::default(),
        Some(alg) => crate::keys::Alg::parse(alg).ok_or_else(|| {
            RegistrationError::metadata(format!("id_token_signed_response_alg {alg:?} is not supported"))
        })?,
    };
    let new = NewClient {
        name: metadata.client_name.clone().unwrap_or_else(|| "Unnamed app".into()),
        third_party: true,
        public,
        application_type,
        redirect_uris,
        scopes,
        machine: false,
        logo_uri: metadata.logo_uri.clone(),
        client_uri: metadata.client_uri.clone(),
        policy_uri: metadata.policy_uri.clone(),
        tos_uri: metadata.tos_uri.clone(),
        id_token_alg,
        post_logout_redirect_uris: metadata.post_logout_redirect_uris.clone().unwrap_or_default(),
    };
    Ok((new, grant_types))
}

/// At most this many redirect URIs (and as many post-logout ones) per app.
pub const MAX_REDIRECT_URIS: usize = 10;
/// At most this many characters per URL.
pub const MAX_URL_LENGTH: usize = 2000;

/// Bounds on what anyone may make the server store, and names that cannot
/// hide what they are: no control or bidirectional-override characters.
fn check_sizes(metadata: &ClientMetadata) -> Result<(), RegistrationError> {
    for (field, list) in [
        ("redirect_uris", &metadata.redirect_uris),
        ("post_logout_redirect_uris", &metadata.post_logout_redirect_uris),
    ] {
        if list.as_ref().is_some_and(|l| l.len() > MAX_REDIRECT_URIS) {
            return Err(RegistrationError::metadata(format!(
                "{field} may hold at most {MAX_REDIRECT_URIS} URIs"
            )));
        }
    }
    let urls = [&metadata.client_uri, &metadata.logo_uri, &metadata.tos_uri, &metadata.policy_uri];
    let all_urls = metadata
        .redirect_uris
        .iter()
        .chain(&metadata.post_logout_redirect_uris)
        .flatten()
        .chain(urls.into_iter().flatten());
    if all_urls.into_iter().any(|u| u.len() > MAX_URL_LENGTH) {
        return Err(RegistrationError::metadata(format!(
            "URLs may have at most {MAX_URL_LENGTH} characters"
        )));
    }
    if metadata.scope.as_ref().is_some_and(|s| s.len() > MAX_URL_LENGTH) {
        return Err(RegistrationError::metadata("scope is too long"));
    }
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if metadata.client_name.as_ref().is_some_and(|name| name.chars().any(hidden)) {
        return Err(RegistrationError::metadata(
            "client_name must not hold control or text-direction characters",
        ));
    }
    Ok(())
}

/// The grant types asked for: the code flow, with refresh tokens if asked.
fn grant_types(metadata: &ClientMetadata) -> Result<Vec<String>, RegistrationError> {
    let asked = metadata.grant_types.clone().unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(other) = asked.iter().find(|g| *g != "authorization_code" && *g != "refresh_token") {
        return Err(RegistrationError::metadata(format!(
            "grant type {other:?} is not available to self-registered apps; use authorization_code and \
             refresh_token"
        )));
    }
    if !asked.iter().any(|g| g == "authorization_code") {
        return Err(RegistrationError::metadata("grant_types must include authorization_code"));
    }
    Ok(asked)
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one host
/// commonly holds a whole /64).
fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Loopback http or a private-use scheme: where only an app on the person's own
/// device can listen.
fn looks_native(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|url| match url.scheme() {
        "http" => agentgate_guard::is_loopback(&url),
        "https" => false,
        scheme => scheme.contains('.'),
    })
}

/// The registration as RFC 7591 §3.2.1 and RFC 7592 §3 answer it: the
/// metadata as registered, the registration access token, and the secret when
/// it was just made (it is kept only as a hash).
pub fn describe(client: &Client, registration_uri: &str, secret: Option<&str>, token: &str) -> Value {
    let mut body = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "application_type": client.application_type,
        "scope": client.scopes.join(" "),
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "registration_client_uri": registration_uri,
    });
    for (field, value) in [
        ("client_uri", &client.client_uri),
        ("logo_uri", &client.logo_uri),
        ("policy_uri", &client.policy_uri),
        ("tos_uri", &client.tos_uri),
    ] {
        if let Some(value) = value {
            body[field] = value.clone().into();
        }
    }
    if !client.post_logout_redirect_uris.is_empty() {
        body["post_logout_redirect_uris"] = client.post_logout_redirect_uris.clone().into();
    }
    if let Some(secret) = secret {
        body["client_secret"] = secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    body["registration_access_token"] = token.into();
    body
}

impl<S: Store> Issuer<S> {
    /// The scopes a self-registered app may have: the configured list, or the
    /// OpenID scopes and every resource's scopes.
    pub async fn registration_ceiling(&self) -> Result<Vec<String>, StoreError> {
        if let Some(scopes) = &self.settings.registration_scopes {
            return Ok(scopes.iter().filter(|s| !is_reserved_scope(s)).cloned().collect());
        }
        let mut ceiling: Vec<String> = OPENID_SCOPES.iter().map(|s| s.to_string()).collect();
        for resource in self.store.resources().await? {
            ceiling.extend(resource.scopes.into_iter().map(|s| s.name).filter(|s| !is_reserved_scope(s)));
        }
        ceiling.dedup();
        Ok(ceiling)
    }

    /// Refuses when dynamic registration is off. An app that registered while it
    /// was on may still read and delete its registration, not change it.
    pub fn check_registration_open(&self) -> Result<(), RegistrationError> {
        if self.settings.registration == RegistrationPolicy::Off {
            return Err(RegistrationError {
                code: RegistrationErrorCode::NotFound,
                description: "dynamic client registration is off".into(),
            });
        }
        Ok(())
    }

    /// The URL where the app `client_id` manages its registration (RFC 7592).
    pub fn registration_uri(&self, client_id: &str) -> String {
        self.settings.endpoint(&format!("/register/{client_id}"))
    }

    /// Registers an app that asked for itself (RFC 7591), from `address`,
    /// with `initial_token` when the policy asks for one.
    pub async fn register_dynamic(
        &self,
        metadata: &ClientMetadata,
        initial_token: Option<&str>,
        address: Option<IpAddr>,
        now: i64,
    ) -> Result<SelfRegistered, RegistrationFailure> {
        self.check_registration_open()?;
        if self.settings.registration == RegistrationPolicy::Token {
            self.authorize_api_call(initial_token, REGISTER_SCOPE).await.map_err(|error| {
                let code = match error {
                    ApiAuthError::Unavailable => return RegistrationFailure::Unavailable,
                    ApiAuthError::InsufficientScope(_) => RegistrationErrorCode::InsufficientScope,
                    _ => RegistrationErrorCode::InvalidToken,
                };
                RegistrationFailure::Refused(RegistrationError { code, description: error.to_string() })
            })?;
        }
        // Counted before anything else, in one statement (concurrent requests
        // cannot all pass), and bad requests count too, so probing is limited.
        let bucket = format!("register:{}", address.map_or("unknown".into(), limit_key));
        let window = self.settings.registration_window;
        if self.store.count_attempt(&bucket, now, window).await? > self.settings.registrations_per_address {
            let (_, start) = self.store.attempts(&bucket, now, window).await?;
            return Err(RegistrationError {
                code: RegistrationErrorCode::TooManyRequests((start + window - now).max(1)),
                description: "too many registrations from this address; try again later".into(),
            }
            .into());
        }
        if metadata.client_id.is_some() || metadata.client_secret.is_some() {
            return Err(RegistrationError::metadata(
                "client_id and client_secret are assigned by the server",
            )
            .into());
        }
        let (new, grant_types) = check_metadata(metadata, &self.registration_ceiling().await?)?;
        let mut registered = clients::prepare(new, now)?;
        let token = random_token(32);
        let client = &mut registered.client;
        client.grant_types = grant_types;
        client.registration = clients::registered_by::DYNAMIC.into();
        client.registration_token_hash = Some(secret_hash(&token));
        client.token_endpoint_auth_method =
            metadata.token_endpoint_auth_method.clone().unwrap_or_else(|| "client_secret_basic".into());
        self.store.insert_client(client).await?;
        tracing::info!(client_id = %client.client_id, "app registered itself");
        Ok(SelfRegistered { client: registered.client, secret: registered.secret, registration_token: token })
    }

    /// The self-registered app `client_id`, if `token` is its registration
    /// access token (compared in constant time).
    pub async fn registered_app(
        &self,
        client_id: &str,
        token: Option<&str>,
    ) -> Result<Client, RegistrationFailure> {
        let token = token.ok_or_else(RegistrationError::invalid_token)?;
        let client = self.store.client(client_id).await?.ok_or_else(RegistrationError::invalid_token)?;
        let matches = client.registration_token_hash.as_ref().is_some_and(|stored| {
            constant_time::verify_slices_are_equal(stored.as_bytes(), secret_hash(token).as_bytes()).is_ok()
        });
        if !matches {
            return Err(RegistrationError::invalid_token().into());
        }
        Ok(client)
    }

    /// Replaces a self-registered app's metadata (RFC 7592 §2.2). Its id,
    /// secret, authentication method and registration token stay.
    pub async fn update_registration(
        &self,
        current: &Client,
        metadata: &ClientMetadata,
    ) -> Result<Client, RegistrationFailure> {
        self.check_registration_open()?;
        if metadata.client_id.as_deref() != Some(current.client_id.as_str()) {
            return Err(RegistrationError::metadata("client_id must be sent and be this app's").into());
        }
        if let Some(secret) = &metadata.client_secret
            && !clients::secret_matches(current, secret)
        {
            return Err(RegistrationError::metadata("client_secret is not this app's").into());
        }
        let method = metadata.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic");
        if method != current.token_endpoint_auth_method {
            return Err(RegistrationError::metadata("token_endpoint_auth_method cannot change").into());
        }
        let (new, grant_types) = check_metadata(metadata, &self.registration_ceiling().await?)?;
        let checked = clients::prepare(new, current.created_at)?.client;
        let updated = Client {
            client_id: current.client_id.clone(),
            secret_hash: current.secret_hash.clone(),
            created_at: current.created_at,
            registration: current.registration.clone(),
            registration_token_hash: current.registration_token_hash.clone(),
            token_endpoint_auth_method: current.token_endpoint_auth_method.clone(),
            grant_types,
            ..checked
        };
        match self.store.update_client(&updated).await? {
            Some(version) => Ok(Client { version, ..updated }),
            None => Err(RegistrationError::invalid_token().into()),
        }
    }
}
