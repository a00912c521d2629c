//! Token verifiers: how a bearer token becomes an [`AuthInfo`].
//!
//! Three come with the guard, one per way an issuer can vouch for a token:
//!
//! | verifier | asks the issuer | checks the audience | cost per new token |
//! |---|---|---|---|
//! | [`JwtVerifier`] | only for its keys (cached) | yes | a signature check |
//! | [`IntrospectionVerifier`] | every new token (RFC 7662) | yes | one round trip |
//! | [`UserinfoVerifier`] | every new token (OIDC userinfo) | **no** | one round trip |
//!
//! All three remember accepted tokens for a short, bounded time, keyed by a
//! SHA-256 hash of the token (never the token itself), so a client that sends the
//! same token on every call pays the full price once.
//!
//! Any other way of checking tokens plugs in through [`TokenVerifier`].

pub(crate) mod cache;
mod introspection;
mod jwks;
mod jwt;
pub(crate) mod userinfo;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use introspection::{ClientAuthMethod, IntrospectionVerifier};
pub use jwt::{DEFAULT_ALGORITHMS, JwtVerifier};
pub use userinfo::UserinfoVerifier;

use crate::{AuthError, AuthInfo};

/// The longest token any verifier will look at, in bytes; longer ones are refused
/// before anything else is done with them.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The future a [`TokenVerifier`] returns.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<AuthInfo, AuthError>> + Send + 'a>>;

/// Turns a bearer token into the caller's identity, or says why not.
///
/// Implement it to check tokens some other way; the layer calls it after the
/// `Authorization` header has been parsed and found syntactically valid.
///
/// ```
/// use agentgate_guard::{AuthError, AuthInfo, InvalidToken, TokenVerifier, VerifyFuture};
///
/// /// Accepts exactly one static token (a test double, not for production).
/// struct OneToken;
///
/// impl TokenVerifier for OneToken {
///     fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
///         Box::pin(async move {
///             if token != "let-me-in" {
///                 return Err(AuthError::InvalidToken(InvalidToken::Rejected));
///             }
///             Ok(AuthInfo {
///                 issuer: "https://as.example".into(),
///                 subject: "alice".into(),
///                 client_id: None,
///                 audience: vec![],
///                 scopes: vec!["mcp:tools".into()],
///                 expires_at: None,
///                 claims: Default::default(),
///             })
///         })
///     }
/// }
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (the part after `Bearer `).
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// Whether this verifier can report granted scopes. A verifier that cannot
    /// (userinfo) must not be combined with required scopes.
    fn reports_scopes(&self) -> bool {
        true
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn reports_scopes(&self) -> bool {
        (**self).reports_scopes()
    }
}
