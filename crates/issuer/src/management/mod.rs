//! The management API's resource and who may call it.
//!
//! Machines manage agentgate with access tokens it issued itself: a
//! first-party machine app (`agentgate apps add NAME --m2m --admin`) gets a
//! `client_credentials` token for the resource `{issuer}/api/v1` with the scope
//! it needs:
//!
//! | scope | allows |
//! |---|---|
//! | `agentgate:admin` | everything under `/api/v1`, and registering apps |
//! | `agentgate:register` | registering apps when the registration policy asks for a token (RFC 7591's initial access token) |
//!
//! Scopes named `agentgate:…` are reserved: only first-party machine apps may
//! hold them, self-registered apps never, and no person is ever asked to grant
//! them.
//!
//! The calls themselves are plain functions over a [`Store`], one module per
//! thing managed ([`apps`], [`people`], [`resources`], [`grants`]); the HTTP
//! handlers only parse, call them, and render. Every change is checked whole
//! before one write, so a refused call leaves nothing half-written.

pub mod apps;
pub mod grants;
pub mod people;
pub mod resources;

use serde_json::Value;

use crate::error::ErrorCode;
use crate::scopes::declare_resource;
use crate::store::{Store, StoreError};
use crate::tokens::Claims;
use crate::{Issuer, Settings};

/// Everything under `/api/v1`, and registering apps.
pub const ADMIN_SCOPE: &str = "agentgate:admin";
/// Registering apps when the registration policy asks for a token.
pub const REGISTER_SCOPE: &str = "agentgate:register";

/// Whether `scope` is one of agentgate's own (`agentgate:…`).
pub fn is_reserved_scope(scope: &str) -> bool {
    scope.starts_with("agentgate:")
}

/// The management API's resource URL: what its tokens carry in `aud`.
pub fn api_resource(settings: &Settings) -> String {
    settings.endpoint("/api/v1")
}

/// Why a call that needs a management token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    /// No bearer token.
    #[error("this call needs an access token for the management API")]
    Missing,
    /// Not a valid token of ours for the management API (forged, expired,
    /// revoked, or for another resource).
    #[error("the access token is not valid for the management API")]
    Invalid,
    /// A valid token without the scope the call needs.
    #[error("the access token lacks the scope {0}")]
    InsufficientScope(&'static str),
    /// The token could not be checked: the store failed (logged); try again.
    #[error("the access token could not be checked; try again later")]
    Unavailable,
}

/// Stores the management API's resource (and its scopes), or brings it up to
/// date; done when the issuer opens.
pub(crate) async fn declare_api<S: Store>(store: &S, settings: &Settings) -> Result<(), StoreError> {
    let scopes =
        [(ADMIN_SCOPE, "Manage apps, people, resources and grants"), (REGISTER_SCOPE, "Register apps")];
    let texts = |name: &str, admin: &str, register: &str| crate::store::ResourceTexts {
        name: Some(name.to_owned()),
        scopes: [
            (ADMIN_SCOPE.to_owned(), admin.to_owned()),
            (REGISTER_SCOPE.to_owned(), register.to_owned()),
        ]
        .into(),
    };
    let translations = [
        (
            "es".to_owned(),
            texts(
                "API de administración de agentgate",
                "Administrar apps, personas, recursos y permisos",
                "Registrar apps",
            ),
        ),
        (
            "ja".to_owned(),
            texts("agentgate 管理 API", "アプリ・ユーザー・リソース・許可を管理する", "アプリを登録する"),
        ),
    ]
    .into();
    let api = api_resource(settings);
    match declare_resource(store, &api, "agentgate management API", &scopes, &translations, crate::now())
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::scopes::AddResourceError::Store(error)) => Err(error),
        Err(other) => {
            // Only an issuer URL that cannot carry a path gets here.
            tracing::error!(error = %other, "the management API's resource could not be declared");
            Ok(())
        }
    }
}

impl<S: Store> Issuer<S> {
    /// Checks a management call's bearer token: valid, for `{issuer}/api/v1`,
    /// and holding `needed` or `agentgate:admin`. Returns its claims.
    pub async fn authorize_api_call(
        &self,
        bearer: Option<&str>,
        needed: &'static str,
    ) -> Result<Claims, ApiAuthError> {
        let token = bearer.ok_or(ApiAuthError::Missing)?;
        let claims = match self.validate_access_token(token).await {
            Ok(claims) => claims,
            Err(error) if error.code == ErrorCode::InvalidToken => return Err(ApiAuthError::Invalid),
            Err(error) => {
                tracing::error!(error = %error.description, "could not check a management token");
                return Err(ApiAuthError::Unavailable);
            }
        };
        if claims.get("aud").and_then(Value::as_str) != Some(api_resource(&self.settings).as_str()) {
            return Err(ApiAuthError::Invalid);
        }
        let allows = |scope: &str| scope == needed || scope == ADMIN_SCOPE;
        let scopes = claims.get("scope").and_then(Value::as_str).unwrap_or_default();
        if !scopes.split(' ').any(allows) {
            return Err(ApiAuthError::InsufficientScope(needed));
        }
        // The app must still hold the scope: taking it away takes effect at once.
        let app = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
        match self.store.client(app).await {
            Ok(Some(app)) if app.scopes.iter().any(|s| allows(s)) => Ok(claims),
            Ok(Some(_)) => Err(ApiAuthError::InsufficientScope(needed)),
            Ok(None) => Err(ApiAuthError::Invalid),
            Err(error) => {
                tracing::error!(%error, "could not check a management token's app");
                Err(ApiAuthError::Unavailable)
            }
        }
    }
}

/// For an optional field a change may clear: absent is `None` (left as it
/// is), `null` is `Some(None)` (cleared).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Why a management call was refused (besides who is calling).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// Nothing with this id.
    #[error("{0}")]
    NotFound(String),
    /// A field breaks a rule.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a path into the request (`redirect_uris[1]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The call clashes with what is stored: a taken name, a reserved
    /// resource, an app that is not the API's to change.
    #[error("{message}")]
    Conflict {
        /// The field concerned, if one is.
        field: Option<&'static str>,
        /// What clashes.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl ManagementError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl ToString) -> Self {
        Self::Invalid { field: field.into(), message: message.to_string() }
    }

    pub(crate) fn conflict(field: Option<&'static str>, message: impl ToString) -> Self {
        Self::Conflict { field, message: message.to_string() }
    }
}

impl From<StoreError> for ManagementError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::conflict(None, format!("{what} is already taken")),
            other => Self::Store(other),
        }
    }
}
