//! Apps (OAuth clients): what may be registered, and the rules that later decide
//! where a person may be sent back to.
//!
//! Redirect URIs are the heart of it. A `web` app may only use `https` (or plain
//! `http` on loopback, for development); a `native` app may use loopback `http`,
//! `https`, or a private-use scheme named after a domain it owns (RFC 8252 §7.1).
//! Nothing that can run code or hide a target is accepted: no `javascript:`,
//! `data:` or `file:`, no fragments, no wildcards, no credentials. Requests must
//! later name a registered URI exactly; the one exception is RFC 8252 §7.3: a
//! native app's loopback redirect may change port, because the port is picked
//! when the app starts listening.
//!
//! Secrets are 256 random bits, shown once, kept as a SHA-256 hash (a slow hash
//! adds nothing for a secret nobody chose) and compared in constant time.

use agentgate_guard::{is_loopback, is_valid_scope};
use aws_lc_rs::{constant_time, digest};
use url::Url;

use crate::store::{Client, Store, StoreError};

/// How an app came to be, as `Client::registration` says.
pub mod registered_by {
    /// By an administrator: the CLI (or the management API).
    pub const ADMIN: &str = "admin";
    /// By itself, through dynamic client registration (RFC 7591).
    pub const DYNAMIC: &str = "dynamic";
    /// Known by the URL of its Client ID Metadata Document.
    pub const DOCUMENT: &str = "document";
}

/// What an app registered by an administrator may be granted unless told otherwise.
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";

/// Grant types an app gets unless told otherwise.
pub const DEFAULT_GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

/// Why an app could not be registered or found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The name is empty or too long.
    #[error("the app name must have 1 to 100 characters")]
    InvalidName,
    /// A redirect URI breaks a rule.
    #[error("invalid redirect URI {uri:?}: {reason}")]
    InvalidRedirectUri {
        /// The URI.
        uri: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// An app that signs people in needs a redirect URI.
    #[error("an app that signs people in needs at least one redirect URI")]
    NoRedirectUri,
    /// A scope is not a valid scope token.
    #[error("invalid scope {0:?}")]
    InvalidScope(String),
    /// Another URL field is not an absolute https URL.
    #[error("{field} must be an https URL")]
    InvalidUrl {
        /// The field.
        field: &'static str,
    },
    /// Only first-party machine apps may hold agentgate's own scopes.
    #[error("{0:?} is one of agentgate's own scopes: only a first-party machine-to-machine app may have it")]
    ReservedScope(String),
    /// Machine-to-machine apps must be confidential and first-party.
    #[error("a machine-to-machine app (client_credentials) must be confidential and first-party")]
    MachineAppRules,
    /// No such app.
    #[error("no app {0:?}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `web` or `native` (OpenID Connect Registration, RFC 8252).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    /// Runs on a server or in a browser.
    #[default]
    Web,
    /// Runs on the person's device (a CLI, a desktop or mobile app).
    Native,
}

impl ApplicationType {
    /// `web` or `native`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Native => "native",
        }
    }
}

/// An app to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The name people see.
    pub name: String,
    /// Third-party apps always ask for consent.
    pub third_party: bool,
    /// Public apps (no secret) must use PKCE; confidential ones get a secret.
    pub public: bool,
    /// Decides the redirect URI rules.
    pub application_type: ApplicationType,
    /// Where people may be sent back to.
    pub redirect_uris: Vec<String>,
    /// The most it may ever be granted.
    pub scopes: Vec<String>,
    /// A machine-to-machine app: `client_credentials` only, no redirect URIs.
    pub machine: bool,
    /// Logo for the consent page.
    pub logo_uri: Option<String>,
    /// Home page for the consent page.
    pub client_uri: Option<String>,
    /// Privacy policy for the consent page.
    pub policy_uri: Option<String>,
    /// Terms of service for the consent page.
    pub tos_uri: Option<String>,
    /// What its ID tokens are signed with.
    pub id_token_alg: crate::keys::Alg,
    /// Where it may send a person after signing them out (same rules as redirect URIs).
    pub post_logout_redirect_uris: Vec<String>,
}

/// A registered app and, for a confidential one, its secret (shown only now).
#[derive(Debug)]
pub struct Registered {
    /// The app as stored.
    pub client: Client,
    /// The secret in clear, never stored.
    pub secret: Option<String>,
}

/// Checks one redirect URI against the rules of `kind`.
pub fn check_redirect_uri(uri: &str, kind: ApplicationType) -> Result<(), &'static str> {
    if uri.contains('*') {
        return Err("wildcards are not allowed");
    }
    if uri.contains('#') {
        return Err("a redirect URI must not have a fragment");
    }
    let url = Url::parse(uri).map_err(|_| "not an absolute URI")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URI must not carry credentials");
    }
    match url.scheme() {
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => Err("this scheme is never allowed"),
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("plain http is allowed only on loopback (localhost, 127.0.0.1, [::1])"),
        _ if kind == ApplicationType::Native && url.scheme().contains('.') => Ok(()),
        _ if kind == ApplicationType::Native => {
            Err("a private-use scheme must be a reversed domain name, such as com.example.app:/callback")
        }
        _ => Err("a web app's redirect URI must use https"),
    }
}

/// Whether `requested` is one of the app's redirect URIs: exactly, or, for a
/// native app, a loopback `http` URI that differs only in its port.
pub fn redirect_uri_allowed(client: &Client, requested: &str) -> bool {
    registered_uri(client, &client.redirect_uris, requested)
}

/// Whether `requested` is one of the app's post-logout redirect URIs, by the
/// same rule as [`redirect_uri_allowed`].
pub fn post_logout_redirect_uri_allowed(client: &Client, requested: &str) -> bool {
    registered_uri(client, &client.post_logout_redirect_uris, requested)
}

fn registered_uri(client: &Client, registered: &[String], requested: &str) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    // A metadata document's redirect URIs are matched exactly, as its draft asks.
    if client.application_type != ApplicationType::Native.as_str()
        || client.registration == registered_by::DOCUMENT
    {
        return false;
    }
    let Ok(asked) = Url::parse(requested) else { return false };
    if asked.scheme() != "http" || !is_loopback(&asked) {
        return false;
    }
    registered.iter().filter_map(|r| Url::parse(r).ok()).any(|mut registered| {
        registered.scheme() == "http" && is_loopback(&registered) && {
            let _ = registered.set_port(asked.port());
            registered == asked
        }
    })
}

/// SHA-256 (hex) of a secret: how app secrets and registration tokens are kept.
pub(crate) fn secret_hash(secret: &str) -> String {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// An app as the CLI's `--json` and the management API show it: everything
/// but its secrets (see [`AppView`](crate::management::apps::AppView)).
///
/// ```
/// let app = agentgate_issuer::store::Client { name: "Mail".into(), ..Default::default() };
/// let shown = agentgate_issuer::clients::describe(&app);
/// assert_eq!(shown["name"], "Mail");
/// assert!(shown.get("secret_hash").is_none());
/// ```
pub fn describe(c: &Client) -> serde_json::Value {
    serde_json::to_value(crate::management::apps::AppView::from(c)).expect("an app serializes")
}

/// Whether the app gets tokens for itself (`client_credentials`) rather than
/// for people.
pub fn is_machine(client: &Client) -> bool {
    client.grant_types.iter().any(|g| g == "client_credentials")
}

/// Whether the app registered itself (dynamic registration) or is described by
/// a metadata document, rather than registered by an administrator: nobody has
/// checked its name or logo.
pub fn self_registered(client: &Client) -> bool {
    client.registration != registered_by::ADMIN
}

/// Whether `presented` is the app's secret (constant time). Public apps have none.
pub fn secret_matches(client: &Client, presented: &str) -> bool {
    client.secret_hash.as_ref().is_some_and(|stored| {
        constant_time::verify_slices_are_equal(stored.as_bytes(), secret_hash(presented).as_bytes()).is_ok()
    })
}

fn https_field(value: Option<String>, field: &'static str) -> Result<Option<String>, ClientError> {
    match value {
        Some(v) if Url::parse(&v).is_ok_and(|u| u.scheme() == "https") => Ok(Some(v)),
        Some(_) => Err(ClientError::InvalidUrl { field }),
        None => Ok(None),
    }
}

/// A new client id: 128 random bits in base64url, never starting with `-`,
/// which command lines would take for an option (`agentgate apps show -7…`).
fn new_client_id() -> String {
    loop {
        let id = crate::random_token(16);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Registers an app; nothing is stored if any field is invalid.
pub async fn register<S: Store>(store: &S, new: NewClient, now: i64) -> Result<Registered, ClientError> {
    let registered = prepare(new, now)?;
    store.insert_client(&registered.client).await?;
    Ok(registered)
}

/// Checks an app to register and makes its id and secret, storing nothing:
/// [`register`] stores it as it is, dynamic registration after adding its own.
pub fn prepare(new: NewClient, now: i64) -> Result<Registered, ClientError> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ClientError::InvalidName);
    }
    for scope in &new.scopes {
        if !is_valid_scope(scope) {
            return Err(ClientError::InvalidScope(scope.clone()));
        }
        if crate::management::is_reserved_scope(scope) && !(new.machine && !new.public && !new.third_party) {
            return Err(ClientError::ReservedScope(scope.clone()));
        }
    }
    let grant_types: Vec<String> = if new.machine {
        if new.public || new.third_party {
            return Err(ClientError::MachineAppRules);
        }
        vec!["client_credentials".into()]
    } else {
        if new.redirect_uris.is_empty() {
            return Err(ClientError::NoRedirectUri);
        }
        DEFAULT_GRANT_TYPES.iter().map(|g| g.to_string()).collect()
    };
    for uri in new.redirect_uris.iter().chain(&new.post_logout_redirect_uris) {
        check_redirect_uri(uri, new.application_type)
            .map_err(|reason| ClientError::InvalidRedirectUri { uri: uri.clone(), reason })?;
    }
    let secret = (!new.public).then(|| crate::random_token(32));
    let client = Client {
        client_id: new_client_id(),
        name,
        third_party: new.third_party,
        application_type: new.application_type.as_str().to_owned(),
        secret_hash: secret.as_deref().map(secret_hash),
        redirect_uris: new.redirect_uris,
        scopes: new.scopes,
        grant_types,
        logo_uri: https_field(new.logo_uri, "logo_uri")?,
        client_uri: https_field(new.client_uri, "client_uri")?,
        policy_uri: https_field(new.policy_uri, "policy_uri")?,
        tos_uri: https_field(new.tos_uri, "tos_uri")?,
        created_at: now,
        id_token_signed_response_alg: new.id_token_alg.as_str().to_owned(),
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        registration: registered_by::ADMIN.into(),
        registration_token_hash: None,
        token_endpoint_auth_method: if new.public { "none" } else { "client_secret_basic" }.into(),
        jwks: None,
        version: first_version(),
    };
    Ok(Registered { client, secret })
}

/// A new app's [`Client::version`]: random, so that an app made again under
/// a removed one's id never matches a copy of the old one. The store adds one
/// at every change.
pub fn first_version() -> i64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    i64::from_le_bytes(bytes) >> 1
}

/// One app.
pub async fn find<S: Store>(store: &S, client_id: &str) -> Result<Client, ClientError> {
    store.client(client_id).await?.ok_or_else(|| ClientError::NotFound(client_id.to_owned()))
}

/// Removes an app; its tokens are revoked.
pub async fn remove<S: Store>(store: &S, client_id: &str) -> Result<(), ClientError> {
    if store.delete_client(client_id, crate::now()).await? {
        Ok(())
    } else {
        Err(ClientError::NotFound(client_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationType::*;

    #[test]
    fn no_client_id_looks_like_an_option() {
        // One random id in 64 would start with `-`: among 2,000, about 31.
        let ids: Vec<String> = (0..2_000).map(|_| new_client_id()).collect();
        assert!(ids.iter().all(|id| !id.starts_with('-') && id.len() == 22));
        assert!(ids.iter().any(|id| id.contains('-')), "still base64url");
    }

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:6274/oauth/callback",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert_eq!(check_redirect_uri(ok, Web), Ok(()), "{ok}");
        }
        assert_eq!(check_redirect_uri("com.example.app:/oauth", Native), Ok(()));
        for (bad, kind) in [
            ("http://app.example/cb", Web),
            ("https://app.example/cb#frag", Web),
            ("https://*.example/cb", Web),
            ("javascript:alert(1)", Native),
            ("data:text/html,hi", Native),
            ("myapp:/cb", Native),
            ("com.example.app:/oauth", Web),
            ("https://user:pw@app.example/cb", Web),
            ("/relative", Web),
        ] {
            assert!(check_redirect_uri(bad, kind).is_err(), "{bad}");
        }
    }

    fn client(kind: ApplicationType, uris: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            name: "n".into(),
            third_party: true,
            application_type: kind.as_str().into(),
            secret_hash: Some(secret_hash("s3cret")),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn redirect_matching_is_exact_but_for_native_loopback_ports() {
        let web = client(Web, &["http://127.0.0.1:6274/cb", "https://app.example/cb"]);
        assert!(redirect_uri_allowed(&web, "https://app.example/cb"));
        assert!(!redirect_uri_allowed(&web, "https://app.example/cb/"));
        assert!(!redirect_uri_allowed(&web, "https://app.example/cb?x=1"));
        assert!(!redirect_uri_allowed(&web, "http://127.0.0.1:9999/cb"), "web apps get no port exception");
        let native = client(Native, &["http://127.0.0.1/cb"]);
        assert!(redirect_uri_allowed(&native, "http://127.0.0.1:51234/cb"));
        assert!(!redirect_uri_allowed(&native, "http://127.0.0.1:51234/other"));
        assert!(!redirect_uri_allowed(&native, "http://localhost:51234/cb"), "the host must match too");
        assert!(!redirect_uri_allowed(&native, "http://evil.example:51234/cb"));
    }

    #[test]
    fn secrets_compare_by_hash() {
        let c = client(Web, &[]);
        assert!(secret_matches(&c, "s3cret"));
        assert!(!secret_matches(&c, "s3cret "));
        assert!(!secret_matches(&Client { secret_hash: None, ..c }, "s3cret"), "public apps have no secret");
    }
}
