//! RFC 7662 token introspection: the issuer itself says whether a token is active.
//!
//! Works with opaque tokens and reflects revocation (after at most the cache TTL).
//! The guard authenticates to the introspection endpoint as a client of the
//! issuer; the answer's claims go through the same rules as a JWT's, so `aud` must
//! name this resource and `iss`, when present, must be the configured issuer.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::cache::{self, TokenCache};
use super::{TokenVerifier, VerifyFuture};
use crate::claims::{ClaimRules, ClaimSource};
use crate::discovery::Discovery;
use crate::fetch::{self, FetchError};
use crate::resource::ResourceId;
use crate::{AuthError, AuthInfo, InvalidToken};

/// How the guard authenticates to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Verifies tokens by asking the issuer's introspection endpoint.
///
/// ```no_run
/// use std::sync::Arc;
/// use agentgate_guard::{ClientAuthMethod, Discovery, IntrospectionVerifier, ResourceId};
///
/// let discovery = Arc::new(Discovery::new("https://auth.example.com/realms/mcp").unwrap());
/// let resource = ResourceId::parse("https://mcp.example.com/mcp").unwrap();
/// let verifier = IntrospectionVerifier::new(discovery, resource, "mcp-server", "s3cret")
///     .auth_method(ClientAuthMethod::ClientSecretPost);
/// ```
pub struct IntrospectionVerifier {
    rules: ClaimRules,
    discovery: Arc<Discovery>,
    client_id: String,
    client_secret: String,
    auth_method: ClientAuthMethod,
    cache: TokenCache,
}

impl std::fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("issuer", &self.rules.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth_method", &self.auth_method)
            .finish_non_exhaustive()
    }
}

impl IntrospectionVerifier {
    /// A verifier that introspects at `discovery`'s issuer as `client_id`.
    pub fn new(
        discovery: Arc<Discovery>,
        resource: ResourceId,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let rules =
            ClaimRules { issuer: discovery.issuer().to_owned(), resource, leeway: Duration::from_secs(60) };
        Self {
            rules,
            discovery,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth_method: ClientAuthMethod::default(),
            cache: TokenCache::new(cache::DEFAULT_CAPACITY, Duration::from_secs(60)),
        }
    }

    /// How to authenticate to the endpoint (default `client_secret_basic`).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = leeway;
        self
    }

    /// How long an active answer is remembered, never past the token's `exp`
    /// (default 60 s; zero turns the cache off). A token revoked at the issuer
    /// keeps working here at most this long.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = TokenCache::new(cache::DEFAULT_CAPACITY, ttl);
        self
    }

    async fn verify_token(&self, token: &str) -> Result<AuthInfo, AuthError> {
        self.cache.get_or_verify(token, self.ask(token)).await
    }

    async fn ask(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let endpoint =
            self.discovery.endpoint("introspection_endpoint", |m| m.introspection_endpoint.as_ref()).await?;
        let endpoint = endpoint.as_str();
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut request = self.discovery.client().post(endpoint).header("accept", "application/json");
        match self.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                let credentials =
                    format!("{}:{}", form_encode(&self.client_id), form_encode(&self.client_secret));
                request = request.header("authorization", format!("Basic {}", STANDARD.encode(credentials)));
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", &self.client_secret));
            }
        }
        let (status, body) = self.discovery.send(request.form(&form), endpoint).await?;
        if status != 200 {
            if matches!(status, 400 | 401 | 403) {
                tracing::error!(issuer = %self.rules.issuer, client_id = %self.client_id, status,
                    "the introspection endpoint refused the guard's client credentials");
            }
            return Err(FetchError::Status { url: endpoint.to_owned(), status }.into());
        }
        let mut claims: Map<String, Value> = fetch::parse_json(&body, endpoint)?;
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            _ => return Err(InvalidToken::Inactive.into()),
        }
        Ok(self.rules.check(claims, ClaimSource::Introspection)?)
    }
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl TokenVerifier for IntrospectionVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token))
    }
}
