//! [`Guard`]: the configured protection of one MCP resource, and its builder.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::AuthInfo;
use crate::challenge::Challenger;
use crate::discovery::Discovery;
use crate::error::{AuthError, ConfigError};
use crate::layer::GuardLayer;
use crate::metadata::{self, ProtectedResourceMetadata};
use crate::person::{PersonClaims, UserinfoPeople};
use crate::resource::{ResourceId, validate_scope};
use crate::revocation::RevocationCheck;
use crate::session::SessionBinding;
use crate::tool_scopes::ToolScopes;
use crate::verify::{ClientAuthMethod, IntrospectionVerifier, JwtVerifier, TokenVerifier, UserinfoVerifier};

/// The default bound on a request body the guard reads to find tool names.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The shortest session key accepted: an HMAC key anyone could guess would let
/// anyone forge session ids.
const MIN_SESSION_KEY_BYTES: usize = 32;

/// The default bound on the `Authorization` header.
pub const DEFAULT_MAX_HEADER_BYTES: usize = crate::verify::MAX_TOKEN_BYTES + 64;

/// How tokens are checked.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// JWT access tokens, verified with the issuer's JWKS (the default).
    Jwt,
    /// The tutorial's mode: the issuer's userinfo endpoint. Cannot check the
    /// audience or scopes; see [`UserinfoVerifier`].
    Userinfo,
    /// RFC 7662 introspection, authenticated as a client of the issuer.
    Introspection {
        /// The guard's client id at the issuer.
        client_id: String,
        /// Its secret.
        client_secret: String,
        /// How to send them.
        auth_method: ClientAuthMethod,
    },
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jwt => f.write_str("Jwt"),
            Self::Userinfo => f.write_str("Userinfo"),
            Self::Introspection { client_id, auth_method, .. } => f
                .debug_struct("Introspection")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("auth_method", auth_method)
                .finish(),
        }
    }
}

/// The protection of one MCP resource: which issuer, which audience, which
/// scopes, how tokens are checked. Cheap to clone; build one with
/// [`Guard::builder`], then use [`Guard::layer`] on the MCP route and merge
/// [`Guard::metadata_router`] into the app.
///
/// ```
/// use agentgate_guard::Guard;
///
/// let guard = Guard::builder("https://tenant.logto.app/oidc", "https://mcp.example.com/mcp")
///     .scopes(["mcp:tools"])
///     .tool_scopes("send_mail", ["mail:send"])
///     .resource_name("Mail MCP")
///     .build()
///     .unwrap();
/// assert_eq!(
///     guard.metadata().authorization_servers,
///     ["https://tenant.logto.app/oidc"],
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Guard {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub verifier: Box<dyn TokenVerifier>,
    pub resource: ResourceId,
    pub required_scopes: Vec<String>,
    pub tool_scopes: ToolScopes,
    pub challenger: Challenger,
    pub metadata: ProtectedResourceMetadata,
    pub sessions: Option<SessionBinding>,
    pub max_body_bytes: usize,
    /// Set when the person comes from the issuer's userinfo endpoint.
    pub people: Option<Arc<UserinfoPeople>>,
    pub revocations: Option<Box<dyn RevocationCheck>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("resource", &self.resource.as_str())
            .field("required_scopes", &self.required_scopes)
            .field("tool_scopes", &self.tool_scopes)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Starts configuring a guard for tokens from `issuer`, protecting
    /// `resource` (the public URL of the MCP endpoint).
    pub fn builder(issuer: impl Into<String>, resource: impl Into<String>) -> GuardBuilder {
        GuardBuilder {
            issuer: issuer.into(),
            resource: resource.into(),
            verification: Verification::Jwt,
            verifier: None,
            discovery: None,
            scopes: Vec::new(),
            scopes_supported: None,
            challenge_scopes: None,
            tool_scopes: Vec::new(),
            resource_name: None,
            documentation: None,
            leeway: Duration::from_secs(60),
            cache_ttl: None,
            allow_http_issuer: false,
            session_binding: true,
            session_key: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            person_claims: PersonClaims::Token,
            revocations: None,
        }
    }

    /// A tower layer that protects the service it wraps.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone())
    }

    /// An axum router serving the protected resource metadata, without a token, at
    /// the path-inserted and the root well-known URIs. Several protected
    /// resources on one host each need their own path-inserted document; merge
    /// the root one from only one of them (axum refuses two routes on one path).
    pub fn metadata_router(&self) -> Router {
        metadata::router(&self.shared.metadata, &self.shared.resource.metadata_paths())
    }

    /// The same, at the path-inserted URI only: for every resource but one on
    /// a host with several. Clients find it from the 401's `resource_metadata`.
    ///
    /// ```
    /// use agentgate_guard::Guard;
    ///
    /// let mail = Guard::builder("https://as.example", "https://api.example/mail").build().unwrap();
    /// let notes = Guard::builder("https://as.example", "https://api.example/notes").build().unwrap();
    /// let app: axum::Router = mail.metadata_router().merge(notes.path_metadata_router());
    /// ```
    pub fn path_metadata_router(&self) -> Router {
        let own = format!("{}{}", crate::PRM_WELL_KNOWN, self.shared.resource.path());
        metadata::router(&self.shared.metadata, &[own])
    }

    /// The protected resource metadata document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.shared.metadata
    }

    /// The URL of the metadata document, as sent in every challenge.
    pub fn metadata_url(&self) -> String {
        self.shared.resource.metadata_url()
    }

    /// The protected resource.
    pub fn resource(&self) -> &ResourceId {
        &self.shared.resource
    }

    /// The scopes every request needs.
    pub fn required_scopes(&self) -> &[String] {
        &self.shared.required_scopes
    }

    /// The answer this guard gives for `error`: status, `WWW-Authenticate`
    /// challenge and JSON body, as its layer would. For a service behind the
    /// guard that refuses on its own terms, e.g. a policy asking for more scopes.
    ///
    /// ```
    /// use agentgate_guard::{AuthError, Guard};
    ///
    /// let guard = Guard::builder("https://as.example", "https://mcp.example/mcp").build().unwrap();
    /// let refusal = guard.refusal(&AuthError::InsufficientScope { required: vec!["notes:write".into()] });
    /// assert_eq!(refusal.status(), 403);
    /// assert!(refusal.headers()["www-authenticate"].to_str().unwrap().contains(r#"scope="notes:write""#));
    /// ```
    pub fn refusal(&self, error: &AuthError) -> axum::response::Response {
        self.shared.challenger.respond(error)
    }

    /// Verifies a token and checks the scopes every request needs, without HTTP
    /// (the layer's first two steps).
    pub async fn authenticate(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let info = self.shared.verifier.verify(token).await?;
        // After the verifier (and its cache): a revocation counts at once.
        if self.shared.revocations.as_ref().is_some_and(|check| check.is_revoked(&info)) {
            return Err(crate::InvalidToken::Revoked.into());
        }
        if !info.has_scopes(&self.shared.required_scopes) {
            return Err(AuthError::InsufficientScope { required: self.shared.required_scopes.clone() });
        }
        Ok(info)
    }
}

/// Configures a [`Guard`]; see [`Guard::builder`].
#[must_use]
pub struct GuardBuilder {
    issuer: String,
    resource: String,
    verification: Verification,
    verifier: Option<Box<dyn TokenVerifier>>,
    discovery: Option<Arc<Discovery>>,
    scopes: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    challenge_scopes: Option<Vec<String>>,
    tool_scopes: Vec<(String, Vec<String>)>,
    resource_name: Option<String>,
    documentation: Option<String>,
    leeway: Duration,
    cache_ttl: Option<Duration>,
    allow_http_issuer: bool,
    session_binding: bool,
    session_key: Option<Vec<u8>>,
    max_body_bytes: usize,
    person_claims: PersonClaims,
    revocations: Option<Box<dyn RevocationCheck>>,
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

impl GuardBuilder {
    /// How tokens are checked (default [`Verification::Jwt`]).
    pub fn verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }

    /// Checks tokens with your own [`TokenVerifier`] instead. It then owns every
    /// token rule: [`leeway`](Self::leeway) and [`cache_ttl`](Self::cache_ttl)
    /// apply only to the built-in verifiers.
    pub fn verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Box::new(verifier));
        self
    }

    /// Uses this discovery (for example one built with [`Discovery::fixed`]).
    pub fn discovery(mut self, discovery: Arc<Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Scopes every request needs; also the `scope` of every 401 challenge.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = strings(scopes);
        self
    }

    /// Scopes advertised in the metadata's `scopes_supported` (default: the
    /// scopes every request needs).
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = Some(strings(scopes));
        self
    }

    /// Scopes a 401 challenge asks for beside the scopes every request needs
    /// (default: none beside them; with no required scopes, `scopes_supported`). A
    /// server whose tools show the person asks for `profile email` beside
    /// its own scope, so that clients request them, and the person sees them
    /// on the consent page, without every token having to carry them.
    pub fn challenge_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.challenge_scopes = Some(strings(scopes));
        self
    }

    /// Scopes that calls of the tool `tool` need, beside [`scopes`](Self::scopes).
    pub fn tool_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        tool: impl Into<String>,
        scopes: I,
    ) -> Self {
        self.tool_scopes.push((tool.into(), strings(scopes)));
        self
    }

    /// The metadata's `resource_name`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The metadata's `resource_documentation` URL.
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// Clock skew tolerated on `exp`/`nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long an accepted token is remembered (verifier defaults otherwise; zero
    /// turns caching off).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// Accepts a plain-`http` issuer that is not on loopback. Only for private
    /// networks where TLS ends in front of both; never on the internet.
    pub fn allow_insecure_http_issuer(mut self) -> Self {
        self.allow_http_issuer = true;
        self
    }

    /// Binds MCP sessions to the subject that opened them (default on). Turn it
    /// off only when something else does.
    pub fn session_binding(mut self, on: bool) -> Self {
        self.session_binding = on;
        self
    }

    /// The HMAC key for session binding, to share sessions between several
    /// instances (default: a random key per process). At least 32 random bytes.
    pub fn session_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.session_key = Some(key.into());
        self
    }

    /// The largest request body read to find tool names (default 4 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Where [`Person::of`](crate::Person::of) finds the person's identity
    /// claims (default [`PersonClaims::Token`]: in the token).
    /// [`PersonClaims::Userinfo`] asks the issuer's userinfo endpoint, once per
    /// token and only when a tool asks, for issuers whose access tokens carry
    /// no profile.
    pub fn person_claims(mut self, source: PersonClaims) -> Self {
        self.person_claims = source;
        self
    }

    /// Also refuses tokens that `check` says were revoked, on every request
    /// (cached tokens included). For an issuer that can tell its resource
    /// servers of revocations in memory, as agentgate's embedded issuer does.
    pub fn revocation_check(mut self, check: impl RevocationCheck) -> Self {
        self.revocations = Some(Box::new(check));
        self
    }

    /// Checks the configuration and builds the guard. Nothing is fetched yet:
    /// discovery happens on the first request that needs it.
    pub fn build(self) -> Result<Guard, ConfigError> {
        let resource = ResourceId::parse(&self.resource)?;
        for scope in self.scopes.iter().chain(self.tool_scopes.iter().flat_map(|(_, s)| s)) {
            validate_scope(scope)?;
        }
        let discovery = match self.discovery {
            Some(d) => d,
            None => Arc::new(Discovery::with_options(&self.issuer, self.allow_http_issuer)?),
        };
        if discovery.issuer() != self.issuer {
            return Err(ConfigError::Issuer {
                url: self.issuer,
                reason: "the discovery is for another issuer",
            });
        }
        let verifier = match self.verifier {
            Some(v) => v,
            None => self.verification.build(discovery.clone(), resource.clone(), self.leeway, self.cache_ttl),
        };
        let people = (self.person_claims == PersonClaims::Userinfo)
            .then(|| Arc::new(UserinfoPeople::new(discovery.clone())));
        if !verifier.reports_scopes() && (!self.scopes.is_empty() || !self.tool_scopes.is_empty()) {
            return Err(ConfigError::Unsupported(
                "userinfo verification cannot see a token's scopes, so it cannot enforce required or per-tool scopes; \
                 advertise scopes with scopes_supported, or verify JWTs or use introspection",
            ));
        }
        let mut tool_scopes = ToolScopes::default();
        for (tool, scopes) in self.tool_scopes {
            tool_scopes.insert(tool, scopes);
        }
        let scopes_supported = self.scopes_supported.unwrap_or_else(|| self.scopes.clone());
        for scope in &scopes_supported {
            validate_scope(scope)?;
        }
        let challenge_scope = match self.challenge_scopes {
            // Whatever else it asks for, a challenge names what is required.
            Some(extra) => {
                let mut all = self.scopes.clone();
                all.extend(extra.into_iter().filter(|s| !self.scopes.contains(s)));
                all
            }
            None if self.scopes.is_empty() => scopes_supported.clone(),
            None => self.scopes.clone(),
        };
        for scope in &challenge_scope {
            validate_scope(scope)?;
        }
        let metadata = ProtectedResourceMetadata {
            resource: resource.as_str().to_owned(),
            authorization_servers: vec![self.issuer.clone()],
            scopes_supported,
            bearer_methods_supported: vec!["header".into()],
            resource_name: self.resource_name,
            resource_documentation: self.documentation,
        };
        if self.session_key.as_ref().is_some_and(|key| key.len() < MIN_SESSION_KEY_BYTES) {
            return Err(ConfigError::Unsupported("the session key must be at least 32 bytes of random data"));
        }
        let sessions = self.session_binding.then(|| match &self.session_key {
            Some(key) => SessionBinding::with_key(key),
            None => SessionBinding::random(),
        });
        Ok(Guard {
            shared: Arc::new(Shared {
                verifier,
                challenger: Challenger::new(resource.metadata_url(), challenge_scope),
                resource,
                required_scopes: self.scopes,
                tool_scopes,
                metadata,
                sessions,
                max_body_bytes: self.max_body_bytes,
                people,
                revocations: self.revocations,
            }),
        })
    }
}

impl Verification {
    fn build(
        self,
        discovery: Arc<Discovery>,
        resource: ResourceId,
        leeway: Duration,
        cache_ttl: Option<Duration>,
    ) -> Box<dyn TokenVerifier> {
        match self {
            Self::Jwt => {
                let v = JwtVerifier::new(discovery, resource).leeway(leeway);
                Box::new(with_ttl(v, cache_ttl, JwtVerifier::cache_ttl))
            }
            Self::Userinfo => {
                Box::new(with_ttl(UserinfoVerifier::new(discovery), cache_ttl, UserinfoVerifier::cache_ttl))
            }
            Self::Introspection { client_id, client_secret, auth_method } => {
                let v = IntrospectionVerifier::new(discovery, resource, client_id, client_secret)
                    .auth_method(auth_method)
                    .leeway(leeway);
                Box::new(with_ttl(v, cache_ttl, IntrospectionVerifier::cache_ttl))
            }
        }
    }
}

/// Applies a configured cache TTL; without one, the verifier keeps its own default.
fn with_ttl<V>(verifier: V, ttl: Option<Duration>, set: fn(V, Duration) -> V) -> V {
    match ttl {
        Some(ttl) => set(verifier, ttl),
        None => verifier,
    }
}
