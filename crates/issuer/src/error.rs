//! OAuth errors (RFC 6749 §4.1.2.1 and §5.2, RFC 8707, OpenID Connect Core §3.1.2.6):
//! the one error type every protocol function returns, whatever endpoint renders it.

use crate::store::StoreError;

/// The `error` code of an OAuth error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A parameter is missing, repeated, or malformed.
    InvalidRequest,
    /// Client authentication failed (HTTP 401 at the token endpoint).
    InvalidClient,
    /// The code or refresh token is invalid, expired, used, or not this client's.
    InvalidGrant,
    /// The client may not use this grant type or response type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The response type is not supported.
    UnsupportedResponseType,
    /// A scope is unknown or not allowed.
    InvalidScope,
    /// The `resource` is unknown or not allowed (RFC 8707).
    InvalidTarget,
    /// The person (or the server on their behalf) said no.
    AccessDenied,
    /// `prompt=none` but the person must sign in.
    LoginRequired,
    /// `prompt=none` but the person must give consent.
    ConsentRequired,
    /// Something went wrong on our side.
    ServerError,
    /// The token presented to userinfo is not valid (RFC 6750).
    InvalidToken,
    /// The token lacks a needed scope (RFC 6750).
    InsufficientScope,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::ServerError => "server_error",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// An OAuth error: a code and a description for the developer reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The code.
    pub code: ErrorCode,
    /// What exactly was wrong, in words.
    pub description: String,
}

impl OAuthError {
    /// An error with this code and description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_client`.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(error: crate::keys::KeyError) -> Self {
        tracing::error!(%error, "signing key failure");
        Self::new(ErrorCode::ServerError, "the server could not complete the request; try again")
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        // The details go to the log, not to the client.
        tracing::error!(%error, "store failure");
        Self::new(ErrorCode::ServerError, "the server could not complete the request; try again")
    }
}
