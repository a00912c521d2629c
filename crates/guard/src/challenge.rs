//! How a refusal is answered: status, `WWW-Authenticate` and a JSON body that says
//! the same in words (RFC 6750 §3, RFC 9728 §5.1, MCP "Error Handling").
//!
//! The challenge always names the protected resource metadata URL and the scopes
//! the operation needs, so that a client which has never seen this server can
//! start the authorization flow from the 401 alone:
//!
//! ```text
//! 401  WWW-Authenticate: Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"
//! 401  WWW-Authenticate: Bearer resource_metadata="…", scope="…", error="invalid_token", error_description="The access token has expired."
//! 403  WWW-Authenticate: Bearer resource_metadata="…", scope="mcp:tools files:write", error="insufficient_scope", error_description="…"
//! ```

use axum::body::Body;
use http::{HeaderValue, Response, header};
use serde_json::json;

use crate::error::AuthError;

/// What every challenge of one guard has in common.
#[derive(Debug, Clone)]
pub(crate) struct Challenger {
    resource_metadata: String,
    default_scope: Vec<String>,
}

impl Challenger {
    pub fn new(resource_metadata: String, default_scope: Vec<String>) -> Self {
        Self { resource_metadata, default_scope }
    }

    /// The `WWW-Authenticate` value for `error`, if that refusal carries one.
    pub fn www_authenticate(&self, error: &AuthError) -> Option<String> {
        let scope = match error {
            AuthError::InsufficientScope { required } => required.as_slice(),
            AuthError::MissingToken | AuthError::InvalidToken(_) | AuthError::InvalidRequest(_) => {
                self.default_scope.as_slice()
            }
            _ => return None,
        };
        let mut value = format!("Bearer resource_metadata={}", quoted(&self.resource_metadata));
        if !scope.is_empty() {
            value.push_str(", scope=");
            value.push_str(&quoted(&scope.join(" ")));
        }
        if let Some(code) = error.error_code() {
            value.push_str(", error=");
            value.push_str(&quoted(code));
            value.push_str(", error_description=");
            value.push_str(&quoted(&description(error)));
        }
        Some(value)
    }

    /// The whole HTTP answer for `error`.
    pub fn respond(&self, error: &AuthError) -> Response<Body> {
        let mut body = json!({
            "error": error.error_code().unwrap_or("unauthorized"),
            "error_description": description(error),
        });
        let challenge = self.www_authenticate(error);
        if challenge.is_some() {
            body["resource_metadata"] = self.resource_metadata.clone().into();
        }
        if let AuthError::InsufficientScope { required } = error {
            body["scope"] = required.join(" ").into();
        }
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = challenge.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if matches!(error, AuthError::IssuerUnavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The sentence the client reads. For an unreachable issuer the operator's detail
/// stays in the log; the client gets a generic sentence.
fn description(error: &AuthError) -> String {
    match error {
        AuthError::MissingToken => "A bearer access token is required.".into(),
        AuthError::InvalidRequest(why) => format!("The request is malformed: {why}."),
        AuthError::HeaderTooLarge => "The Authorization header is too large.".into(),
        AuthError::InvalidToken(reason) => reason.description().into(),
        AuthError::InsufficientScope { required } => {
            format!("This operation needs the scopes: {}.", required.join(" "))
        }
        AuthError::ForeignSession => "No such session for these credentials.".into(),
        AuthError::BodyTooLarge(limit) => format!("The request body is larger than {limit} bytes."),
        AuthError::IssuerUnavailable(_) => {
            "The authorization server could not be reached to verify the access token; try again shortly."
                .into()
        }
    }
}

/// An RFC 7230 quoted-string.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvalidToken;

    fn challenger() -> Challenger {
        Challenger::new(
            "https://mcp.example/.well-known/oauth-protected-resource/mcp".into(),
            vec!["mcp:tools".into()],
        )
    }

    #[test]
    fn exact_headers() {
        let c = challenger();
        assert_eq!(
            c.www_authenticate(&AuthError::MissingToken).unwrap(),
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#
        );
        assert_eq!(
            c.www_authenticate(&InvalidToken::Expired.into()).unwrap(),
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools", error="invalid_token", error_description="The access token has expired.""#
        );
        let scope = AuthError::InsufficientScope { required: vec!["mcp:tools".into(), "files:write".into()] };
        assert_eq!(
            c.www_authenticate(&scope).unwrap(),
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="mcp:tools files:write", error="insufficient_scope", error_description="This operation needs the scopes: mcp:tools files:write.""#
        );
        assert!(c.www_authenticate(&AuthError::IssuerUnavailable("x".into())).is_none());
    }

    #[test]
    fn no_scope_parameter_without_scopes() {
        let c = Challenger::new("https://m/.well-known/oauth-protected-resource".into(), vec![]);
        assert_eq!(
            c.www_authenticate(&AuthError::MissingToken).unwrap(),
            r#"Bearer resource_metadata="https://m/.well-known/oauth-protected-resource""#
        );
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn unavailable_hides_detail() {
        let r = challenger().respond(&AuthError::IssuerUnavailable("secret internal host".into()));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        assert!(
            !description(&AuthError::IssuerUnavailable("secret internal host".into())).contains("secret")
        );
    }
}
