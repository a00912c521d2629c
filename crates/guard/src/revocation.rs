//! Revocations the verifier cannot see.
//!
//! A JWT access token verifies on its signature alone, so a token revoked at
//! the issuer (its grant disconnected, its refresh token reused, `/revoke`)
//! keeps verifying until it expires. An issuer that can tell its resource
//! servers what it revoked, in memory, plugs in here: the guard asks on every
//! request, after the verifier and its cache, so a revocation counts from the
//! next call on. The check must be cheap and must not wait on the network; it
//! runs on every call.

use crate::AuthInfo;

/// Says whether a verified token was revoked since it was issued. A token it
/// names is refused with `401 invalid_token`.
///
/// ```
/// use std::collections::HashSet;
/// use agentgate_guard::{AuthInfo, Guard, RevocationCheck};
///
/// /// Tokens of people who were removed.
/// struct Removed(HashSet<String>);
///
/// impl RevocationCheck for Removed {
///     fn is_revoked(&self, who: &AuthInfo) -> bool {
///         self.0.contains(&who.subject)
///     }
/// }
///
/// let guard = Guard::builder("https://as.example", "https://mcp.example/mcp")
///     .revocation_check(Removed(HashSet::from(["mallory".to_owned()])))
///     .build()
///     .unwrap();
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether `who`'s token must be refused as revoked.
    fn is_revoked(&self, who: &AuthInfo) -> bool;
}

impl<T: RevocationCheck + ?Sized> RevocationCheck for std::sync::Arc<T> {
    fn is_revoked(&self, who: &AuthInfo) -> bool {
        (**self).is_revoked(who)
    }
}
