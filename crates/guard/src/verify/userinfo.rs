//! The tutorial's verification: ask the issuer's userinfo endpoint who the token
//! belongs to.
//!
//! **This mode cannot check the audience.** Userinfo answers for any token the
//! issuer accepts for *its own* userinfo endpoint, whichever resource it was meant
//! for, so a token issued to another service works here too; and it reports no
//! scopes, so per-tool scopes cannot be enforced. Use it only where the tutorial
//! does — with an issuer that gives opaque tokens for userinfo and nothing else —
//! and prefer [`JwtVerifier`](super::JwtVerifier) or
//! [`IntrospectionVerifier`](super::IntrospectionVerifier).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::cache::{self, TokenCache};
use super::{TokenVerifier, VerifyFuture};
use crate::discovery::Discovery;
use crate::fetch::{self, FetchError};
use crate::{AuthError, AuthInfo, InvalidToken};

/// Verifies tokens by calling the issuer's OpenID Connect userinfo endpoint.
///
/// ```no_run
/// use std::sync::Arc;
/// use agentgate_guard::{Discovery, UserinfoVerifier};
///
/// let discovery = Arc::new(Discovery::new("https://tenant.logto.app/oidc").unwrap());
/// let verifier = UserinfoVerifier::new(discovery);
/// ```
#[derive(Debug)]
pub struct UserinfoVerifier {
    discovery: Arc<Discovery>,
    cache: TokenCache,
}

impl UserinfoVerifier {
    /// A verifier that asks `discovery`'s issuer.
    pub fn new(discovery: Arc<Discovery>) -> Self {
        Self { discovery, cache: TokenCache::new(cache::DEFAULT_CAPACITY, Duration::from_secs(60)) }
    }

    /// How long a positive answer is remembered (default 60 s; zero turns the
    /// cache off). A token revoked at the issuer keeps working here this long.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = TokenCache::new(cache::DEFAULT_CAPACITY, ttl);
        self
    }

    async fn verify_token(&self, token: &str) -> Result<AuthInfo, AuthError> {
        self.cache.get_or_verify(token, self.ask(token)).await
    }

    async fn ask(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let claims = claims_of(&self.discovery, token).await?;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(InvalidToken::MissingSubject.into()),
        };
        Ok(AuthInfo {
            issuer: self.discovery.issuer().to_owned(),
            subject,
            client_id: None,
            audience: Vec::new(),
            scopes: Vec::new(),
            expires_at: None,
            claims: claims.into(),
        })
    }
}

/// What the issuer's userinfo endpoint says of the holder of `token`: its
/// claims, or [`InvalidToken::Rejected`] when it refuses the token.
pub(crate) async fn claims_of(discovery: &Discovery, token: &str) -> Result<Map<String, Value>, AuthError> {
    let endpoint = discovery.endpoint("userinfo_endpoint", |m| m.userinfo_endpoint.as_ref()).await?;
    let endpoint = endpoint.as_str();
    let request = discovery.client().get(endpoint).bearer_auth(token).header("accept", "application/json");
    let (status, body) = discovery.send(request, endpoint).await?;
    match status {
        200 => {}
        400 | 401 | 403 => return Err(InvalidToken::Rejected.into()),
        other => {
            return Err(FetchError::Status { url: endpoint.to_owned(), status: other }.into());
        }
    }
    Ok(fetch::parse_json(&body, endpoint)?)
}

impl TokenVerifier for UserinfoVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token))
    }

    fn reports_scopes(&self) -> bool {
        false
    }
}
