//! Why a request was refused, as a typed value.
//!
//! Verifiers and the layer speak [`AuthError`]; [`crate::challenge`] turns it into an
//! HTTP answer (status, `WWW-Authenticate`, JSON body) in exactly one place, so the
//! rules of RFC 6750 live in one file.

use std::fmt;

/// Why a bearer token was not accepted. Each reason is one rule of the guard, and
/// each has a test that breaks it on purpose.
///
/// The [`Display`](fmt::Display) text is what the client reads in
/// `error_description`: it names the rule, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not a JWS compact serialization (three base64url parts with a JSON header
    /// and payload), or not valid JSON inside.
    Malformed,
    /// Longer than the configured limit; refused before any parsing.
    TooLong,
    /// The `alg` is not on the allow-list (`none` and HMAC never are).
    UnsupportedAlgorithm,
    /// The header's `typ` says this is not an access token (for example an ID token
    /// or a logout token).
    WrongType,
    /// The header carries a `crit` extension the guard does not understand.
    UnsupportedCriticalHeader,
    /// No key in the issuer's JWKS matches the token's `kid` and algorithm.
    UnknownKey,
    /// The signature does not verify with the issuer's key.
    BadSignature,
    /// `iss` is missing or differs from the configured issuer.
    WrongIssuer,
    /// `aud` is missing or does not contain this resource.
    WrongAudience,
    /// `exp` is missing; tokens without an expiry are never accepted.
    MissingExpiry,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` (or `iat`) is in the future (beyond the leeway).
    NotYetValid,
    /// `sub` is missing or empty.
    MissingSubject,
    /// A claim has the wrong JSON type (for example a numeric `sub`).
    BadClaim,
    /// The issuer said the token is not active (introspection `active: false`).
    Inactive,
    /// The issuer's userinfo endpoint refused the token.
    Rejected,
    /// The token was revoked (see [`RevocationCheck`](crate::RevocationCheck)).
    Revoked,
}

impl InvalidToken {
    /// The sentence sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "The access token is malformed.",
            Self::TooLong => "The access token is too long.",
            Self::UnsupportedAlgorithm => {
                "The access token is signed with an algorithm that is not accepted."
            }
            Self::WrongType => "The token is not an access token.",
            Self::UnsupportedCriticalHeader => {
                "The access token uses a critical header extension that is not supported."
            }
            Self::UnknownKey => "The access token is signed with an unknown key.",
            Self::BadSignature => "The access token signature is invalid.",
            Self::WrongIssuer => "The access token was not issued by the expected authorization server.",
            Self::WrongAudience => "The access token was not issued for this resource.",
            Self::MissingExpiry => "The access token has no expiry.",
            Self::Expired => "The access token has expired.",
            Self::NotYetValid => "The access token is not valid yet.",
            Self::MissingSubject => "The access token has no subject.",
            Self::BadClaim => "The access token has a claim of the wrong type.",
            Self::Inactive => "The access token is not active.",
            Self::Rejected => "The authorization server rejected the access token.",
            Self::Revoked => "The access token was revoked; get a new one (sign in again).",
        }
    }
}

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The outcome of a refused request, before it becomes an HTTP response.
///
/// ```
/// use agentgate_guard::{AuthError, InvalidToken};
///
/// let err = AuthError::InvalidToken(InvalidToken::Expired);
/// assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
/// assert_eq!(err.error_code(), Some("invalid_token"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials for the `Bearer` scheme: 401 without an error code
    /// (RFC 6750 §3.1).
    #[error("no bearer token was sent")]
    MissingToken,
    /// The request is malformed (duplicate `Authorization` headers, bad token
    /// syntax, a token in the query string): 400 `invalid_request`.
    #[error("malformed request: {0}")]
    InvalidRequest(&'static str),
    /// The `Authorization` header is larger than the configured limit: 431.
    #[error("the Authorization header is too large")]
    HeaderTooLarge,
    /// The token was sent but is not acceptable: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidToken),
    /// The token is valid but lacks scopes: 403 `insufficient_scope`. `required`
    /// lists every scope the operation needs, not only the missing ones.
    #[error("insufficient scope; the operation needs: {}", required.join(" "))]
    InsufficientScope {
        /// Every scope the operation needs.
        required: Vec<String>,
    },
    /// The request names an MCP session that was not opened by this subject: 404,
    /// exactly as if the session did not exist.
    #[error("the session does not belong to the presented credentials")]
    ForeignSession,
    /// The request body could not be read within the size limit: 413.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The issuer could not be reached or answered nonsense, so the token could not
    /// be checked: 503. The text is for the operator's log; the client sees a
    /// generic sentence.
    #[error("authorization server unavailable: {0}")]
    IssuerUnavailable(String),
}

impl AuthError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::MissingToken | Self::InvalidToken(_) => S::UNAUTHORIZED,
            Self::InvalidRequest(_) => S::BAD_REQUEST,
            Self::HeaderTooLarge => S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::InsufficientScope { .. } => S::FORBIDDEN,
            Self::ForeignSession => S::NOT_FOUND,
            Self::BodyTooLarge(_) => S::PAYLOAD_TOO_LARGE,
            Self::IssuerUnavailable(_) => S::SERVICE_UNAVAILABLE,
        }
    }

    /// The OAuth error code (RFC 6750 §3.1), when there is one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken => None,
            Self::InvalidRequest(_) | Self::HeaderTooLarge | Self::BodyTooLarge(_) => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::ForeignSession => Some("session_not_found"),
            Self::IssuerUnavailable(_) => Some("temporarily_unavailable"),
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        Self::InvalidToken(reason)
    }
}

/// A guard that cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an absolute `https` URL (or `http` on a loopback host).
    #[error("invalid issuer {url:?}: {reason}")]
    Issuer {
        /// The value given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The resource is not an absolute `http(s)` URL without a fragment.
    #[error("invalid resource {url:?}: {reason}")]
    Resource {
        /// The value given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scope name is empty or contains characters RFC 6749 §3.3 does not allow.
    #[error(
        "invalid scope {0:?}: scopes are non-empty printable ASCII without spaces, quotes or backslashes"
    )]
    Scope(String),
    /// The chosen verifier cannot enforce what was configured.
    #[error("{0}")]
    Unsupported(&'static str),
}
