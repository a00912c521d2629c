//! The identity a verified token carries, and how a tool handler reads it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Who is calling, as established by a verified token. The guard puts one into the
/// request's extensions; rmcp hands tool handlers the request's
/// [`http::request::Parts`], so a tool reads it with [`AuthInfo::from_parts`].
///
/// ```
/// use agentgate_guard::AuthInfo;
///
/// // Inside an rmcp tool: `Extension(parts): Extension<http::request::Parts>`.
/// fn whoami(parts: &http::request::Parts) -> Result<String, &'static str> {
///     let who = AuthInfo::from_parts(parts).ok_or("not authenticated")?;
///     Ok(format!("{} via {:?}", who.subject, who.client_id))
/// }
/// # let (parts, _) = http::Request::new(()).into_parts();
/// # assert!(whoami(&parts).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuthInfo {
    /// The issuer that vouched for the token (always the configured issuer).
    pub issuer: String,
    /// The subject (`sub`): the person, or the machine client for
    /// `client_credentials` tokens.
    pub subject: String,
    /// The OAuth client the token was issued to (`client_id`, else `azp`), when known.
    pub client_id: Option<String>,
    /// The audiences (`aud`) of the token; empty in userinfo mode, which cannot know.
    pub audience: Vec<String>,
    /// The scopes granted (`scope`, space-separated, or `scp`); empty in userinfo mode.
    pub scopes: Vec<String>,
    /// When the token expires (`exp`), when known.
    pub expires_at: Option<SystemTime>,
    /// Every claim: the token's payload (JWT), the introspection answer, or the
    /// userinfo answer. Shared, so that copies of the identity (one per request in
    /// the cache, in the request's extensions, in rmcp's request context) are cheap.
    pub claims: Arc<Map<String, Value>>,
}

impl AuthInfo {
    /// The caller's identity from a request's parts, as put there by the guard.
    pub fn from_parts(parts: &http::request::Parts) -> Option<&AuthInfo> {
        parts.extensions.get::<AuthInfo>()
    }

    /// The claims as one JSON object, e.g. for a tool's structured result.
    pub fn claims_json(&self) -> Value {
        Value::Object(self.claims.as_ref().clone())
    }

    /// Whether every one of `scopes` was granted.
    pub fn has_scopes<S: AsRef<str>>(&self, scopes: &[S]) -> bool {
        scopes.iter().all(|s| self.scopes.iter().any(|g| g == s.as_ref()))
    }
}

pub(crate) fn from_epoch_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}
