//! Handing the upstream the person's access token at their identity provider.
//!
//! Some MCP servers exist to act on the person's data elsewhere: their Logto
//! organizations, their GitHub repositories. Such a server needs a token of
//! that provider's, for that person — never the agent's token, which stops at
//! the gateway. When the person signed in here through that provider and its
//! configuration keeps refresh tokens, the issuer can trade the kept one for a
//! fresh access token ([`ProviderTokens`]); a route with a provider token sets
//! it as [`PROVIDER_TOKEN_HEADER`] on every request to its upstream.
//!
//! The header is a bearer credential for the provider's APIs, so it goes only
//! to an upstream reached over TLS, on loopback, or on a Unix socket (the
//! configuration refuses any other), and an agent's own header of that name is
//! dropped with every other `X-Agentgate-*` header.
//!
//! A person who has nothing kept there (they signed in with a password, or
//! before the provider kept tokens, or the provider ended the grant) gets 403
//! and words that say how to fix it: sign in with that provider once more.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agentgate_guard::AuthInfo;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::fault::Fault;

/// The header that carries the person's access token at their provider.
pub const PROVIDER_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-agentgate-provider-token");

/// Why there is no provider token for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoProviderToken {
    /// The person has to sign in at the provider again; the words say so.
    SignInNeeded(String),
    /// The provider failed (unreachable, or an answer that cannot be used):
    /// words for the agent, without the provider's own (those go to the log).
    ProviderFailed(String),
    /// This server failed (its store): words for the agent.
    Internal(String),
}

/// The future [`ProviderTokens::access_token`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<String, NoProviderToken>> + Send + 'a>>;

/// Where a route gets the caller's access token at their identity provider.
/// agentgate's issuer is one, for the providers whose refresh tokens it keeps.
pub trait ProviderTokens: Send + Sync + 'static {
    /// The access token for the person `caller` is, at the provider.
    fn access_token<'a>(&'a self, caller: &'a AuthInfo) -> TokenFuture<'a>;
}

/// A route's provider token: where it comes from.
#[derive(Clone)]
pub(crate) struct ProviderToken(pub(crate) Arc<dyn ProviderTokens>);

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderToken")
    }
}

impl ProviderToken {
    /// Sets [`PROVIDER_TOKEN_HEADER`] in `headers`, the request to the
    /// upstream of `route`, for `caller`, within `timeout`.
    pub(crate) async fn add(
        &self,
        route: &str,
        caller: Option<&AuthInfo>,
        headers: &mut HeaderMap,
        timeout: Duration,
    ) -> Result<(), Fault> {
        let caller = caller.ok_or_else(|| Fault::Identity {
            route: route.to_owned(),
            detail: "no verified caller reached the gateway's route".into(),
        })?;
        let asked = tokio::time::timeout(timeout, self.0.access_token(caller)).await.map_err(|_| {
            Fault::ProviderFailed {
                route: route.to_owned(),
                detail: format!("it did not answer within {} s", timeout.as_secs_f64()),
            }
        })?;
        let route = route.to_owned();
        let token = asked.map_err(|missing| match missing {
            NoProviderToken::SignInNeeded(detail) => Fault::ProviderSignIn { route: route.clone(), detail },
            NoProviderToken::ProviderFailed(detail) => Fault::ProviderFailed { route: route.clone(), detail },
            NoProviderToken::Internal(detail) => Fault::Identity { route: route.clone(), detail },
        })?;
        let mut value = HeaderValue::from_str(&token).map_err(|_| Fault::ProviderFailed {
            route,
            detail: "its access token is not a header value".into(),
        })?;
        value.set_sensitive(true);
        headers.insert(PROVIDER_TOKEN_HEADER, value);
        Ok(())
    }
}
