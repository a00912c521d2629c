//! Finding the authorization server's endpoints from its issuer URL.
//!
//! The MCP specification fixes the order in which a client probes the well-known
//! URIs of RFC 8414 and OpenID Connect Discovery; the guard follows the same order,
//! so it finds exactly the document its clients will find. The document's `issuer`
//! must equal the configured issuer character for character (RFC 8414 §3.3), and
//! the server must offer what MCP clients need: the `code` response type and PKCE
//! with `S256`.
//!
//! Discovery is lazy (nothing is fetched until the first token needs it), cached
//! for the life of the process, and single-flight: however many requests arrive
//! at once, one fetch runs and the others wait for its result. After a failure,
//! callers get the same error for a short while instead of each retrying.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use url::Url;

use crate::error::ConfigError;
use crate::fetch::{self, FetchError};
use crate::resource::parse_issuer;

/// How long a failed discovery is remembered before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// How many per-token calls (userinfo, introspection) may wait on the issuer at
/// once. Tokens are chosen by whoever sends the request, so without a bound a
/// flood of made-up tokens would become a flood of calls to the issuer; past it
/// the answer is 503 until calls complete.
const MAX_CALLS_IN_FLIGHT: usize = 64;

/// The parts of an authorization server's metadata (RFC 8414, OpenID Connect
/// Discovery) that the guard uses; everything else is kept in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier; equal to the configured one.
    pub issuer: String,
    /// Where clients send people to authorize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where clients exchange codes for tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The issuer's public signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// OpenID Connect userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// RFC 7662 introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Response types; must include `code`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub response_types_supported: Vec<String>,
    /// PKCE methods; must include `S256`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// Everything else in the document.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A list given as `null` is an empty list.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Why discovery did not produce usable metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No well-known URI answered a metadata document.
    #[error("no authorization server metadata found for issuer {issuer} (tried {tried})")]
    NotFound {
        /// The configured issuer.
        issuer: String,
        /// The URIs tried, comma-separated, with what each answered.
        tried: String,
    },
    /// A document was found but its `issuer` differs from the configured one.
    #[error(
        "the metadata at {url} names issuer {found:?}, not the configured {expected:?}; it must not be used"
    )]
    IssuerMismatch {
        /// Where the document came from.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// The server lacks something MCP clients require.
    #[error("the authorization server {issuer} is not usable by MCP clients: {reason}")]
    Unsuitable {
        /// The configured issuer.
        issuer: String,
        /// What is missing.
        reason: &'static str,
    },
    /// The issuer could not be reached.
    #[error("{0}")]
    Unreachable(String),
}

/// The well-known URIs to try for `issuer`, in the order the MCP specification
/// gives.
///
/// ```
/// let urls = agentgate_guard::discovery::candidate_urls(&"https://as.example/tenant1".parse().unwrap());
/// assert_eq!(urls, [
///     "https://as.example/.well-known/oauth-authorization-server/tenant1",
///     "https://as.example/.well-known/openid-configuration/tenant1",
///     "https://as.example/tenant1/.well-known/openid-configuration",
/// ]);
/// ```
pub fn candidate_urls(issuer: &Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    }
}

/// Lazily discovered, cached metadata of one issuer. Cheap to share behind an
/// [`Arc`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use agentgate_guard::Discovery;
///
/// let discovery = Discovery::new("https://tenant.logto.app/oidc")?;
/// let metadata = discovery.metadata().await?;
/// println!("keys at {:?}", metadata.jwks_uri);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Discovery {
    issuer: String,
    candidates: Vec<String>,
    client: reqwest::Client,
    allow_http: bool,
    in_flight: tokio::sync::Semaphore,
    cached: OnceCell<Arc<AuthorizationServerMetadata>>,
    fetch_lock: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<(Instant, DiscoveryError)>>,
}

impl Discovery {
    /// Discovery for `issuer` (an `https` URL, or `http` on loopback).
    pub fn new(issuer: &str) -> Result<Self, ConfigError> {
        Self::with_options(issuer, false)
    }

    pub(crate) fn with_options(issuer: &str, allow_http: bool) -> Result<Self, ConfigError> {
        let url = parse_issuer(issuer, allow_http)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            candidates: candidate_urls(&url),
            client: fetch::http_client(),
            allow_http,
            in_flight: tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT),
            cached: OnceCell::new(),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
        })
    }

    /// Discovery that never fetches: the metadata is known (for example when the
    /// issuer runs in the same process). The metadata's issuer must still match.
    pub fn fixed(issuer: &str, metadata: AuthorizationServerMetadata) -> Result<Self, ConfigError> {
        let discovery = Self::with_options(issuer, true)?;
        if metadata.issuer != issuer {
            return Err(ConfigError::Issuer {
                url: issuer.to_owned(),
                reason: "the given metadata names another issuer",
            });
        }
        discovery.cached.set(Arc::new(metadata)).expect("a new cell is empty");
        Ok(discovery)
    }

    /// The configured issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The HTTP client used to talk to the issuer.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a per-token call to the issuer, within the bound on calls in flight.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, bytes::Bytes), FetchError> {
        let _permit = self.in_flight.try_acquire().map_err(|_| FetchError::Busy { url: url.to_owned() })?;
        fetch::send(request, url).await
    }

    /// The issuer's metadata, fetched on first use.
    pub async fn metadata(&self) -> Result<Arc<AuthorizationServerMetadata>, DiscoveryError> {
        if let Some(found) = self.cached.get() {
            return Ok(found.clone());
        }
        // Single flight: the first caller fetches, the others wait on the lock and
        // then find the cell filled (or the failure recorded).
        let _guard = self.fetch_lock.lock().await;
        if let Some(found) = self.cached.get() {
            return Ok(found.clone());
        }
        if let Some((at, error)) = self.last_failure.lock().expect("not poisoned").as_ref()
            && at.elapsed() < RETRY_AFTER_FAILURE
        {
            return Err(error.clone());
        }
        match self.fetch().await {
            Ok(metadata) => {
                let metadata = Arc::new(metadata);
                let _ = self.cached.set(metadata.clone());
                *self.last_failure.lock().expect("not poisoned") = None;
                Ok(metadata)
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "authorization server discovery failed");
                *self.last_failure.lock().expect("not poisoned") = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// One endpoint of the issuer, named `name` in the metadata; a missing one
    /// means tokens cannot be checked this way.
    pub(crate) async fn endpoint(
        &self,
        name: &'static str,
        pick: fn(&AuthorizationServerMetadata) -> Option<&String>,
    ) -> Result<String, crate::AuthError> {
        let unavailable = crate::AuthError::IssuerUnavailable;
        let metadata = self.metadata().await.map_err(|e| unavailable(e.to_string()))?;
        pick(&metadata).cloned().ok_or_else(|| unavailable(format!("the issuer's metadata has no {name}")))
    }

    async fn fetch(&self) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        let mut tried = Vec::new();
        let mut mismatch = None;
        for url in &self.candidates {
            match fetch::get_json::<AuthorizationServerMetadata>(&self.client, url).await {
                Ok(metadata) if metadata.issuer == self.issuer => return self.suitable(metadata),
                Ok(metadata) => {
                    mismatch.get_or_insert(DiscoveryError::IssuerMismatch {
                        url: url.clone(),
                        expected: self.issuer.clone(),
                        found: metadata.issuer,
                    });
                    tried.push(format!("{url}: other issuer"));
                }
                Err(FetchError::Status { status, .. }) if status < 500 => {
                    tried.push(format!("{url}: HTTP {status}"))
                }
                Err(FetchError::NotJson { .. }) => tried.push(format!("{url}: not a metadata document")),
                Err(other) => return Err(DiscoveryError::Unreachable(other.to_string())),
            }
        }
        Err(mismatch
            .unwrap_or(DiscoveryError::NotFound { issuer: self.issuer.clone(), tried: tried.join(", ") }))
    }

    fn suitable(
        &self,
        metadata: AuthorizationServerMetadata,
    ) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        let unsuitable = |reason| DiscoveryError::Unsuitable { issuer: self.issuer.clone(), reason };
        if !metadata.response_types_supported.iter().any(|t| t == "code") {
            return Err(unsuitable("response_types_supported does not include \"code\""));
        }
        if !metadata.code_challenge_methods_supported.iter().any(|m| m == "S256") {
            return Err(unsuitable("code_challenge_methods_supported does not include \"S256\" (PKCE)"));
        }
        // Keys fetched over plain http could be swapped on the way, and the
        // introspection secret would travel in clear: endpoints follow the
        // issuer's own rule (https, or http on loopback).
        for endpoint in [&metadata.jwks_uri, &metadata.userinfo_endpoint, &metadata.introspection_endpoint] {
            if let Some(url) = endpoint
                && parse_issuer(url, self.allow_http).is_err()
            {
                return Err(unsuitable("an endpoint in the metadata is not an https URL"));
            }
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_issuer_candidates() {
        let urls = candidate_urls(&"http://127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:4000/.well-known/oauth-authorization-server",
                "http://127.0.0.1:4000/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn trailing_slash_path_is_inserted_without_it() {
        let urls = candidate_urls(&"https://as.example/t1/".parse().unwrap());
        assert_eq!(urls[0], "https://as.example/.well-known/oauth-authorization-server/t1");
        assert_eq!(urls[2], "https://as.example/t1/.well-known/openid-configuration");
    }
}
