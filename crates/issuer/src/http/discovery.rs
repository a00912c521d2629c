//! Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS.
//!
//! One document serves both: at `/.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server`. For an issuer with a path
//! (`https://host/auth`), RFC 8414 inserts the well-known part before the path
//! (`/.well-known/oauth-authorization-server/auth`) while OpenID Connect appends
//! it (`/auth/.well-known/openid-configuration`); every form is served, as the
//! MCP specification tells clients to try them in turn.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Issuer;
use crate::registration::RegistrationPolicy;
use crate::scopes::OPENID_SCOPES;
use crate::store::Store;

/// Where the metadata document is served for an issuer at `base`.
pub(super) fn paths(base: &str) -> Vec<String> {
    let mut paths = vec![
        format!("/.well-known/oauth-authorization-server{base}"),
        format!("/.well-known/openid-configuration{base}"),
        format!("{base}/.well-known/openid-configuration"),
        format!("{base}/.well-known/oauth-authorization-server"),
    ];
    paths.sort();
    paths.dedup();
    paths
}

/// The authorization server metadata.
pub fn document<S: Store>(issuer: &Issuer<S>, resource_scopes: Vec<String>) -> Value {
    let s = &issuer.settings;
    // What an app would ask a person for, each once: agentgate's own scopes
    // (the management API's) are for machine apps, and are not listed.
    let mut scopes: Vec<String> = OPENID_SCOPES.iter().map(|s| s.to_string()).collect();
    for scope in resource_scopes {
        if !crate::management::is_reserved_scope(&scope) && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let mut document = json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.endpoint("/authorize"),
        "token_endpoint": s.endpoint("/token"),
        "jwks_uri": s.endpoint("/jwks"),
        "userinfo_endpoint": s.endpoint("/userinfo"),
        "introspection_endpoint": s.endpoint("/introspect"),
        "revocation_endpoint": s.endpoint("/revoke"),
        "end_session_endpoint": s.endpoint("/end-session"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": crate::keys::Alg::ALL.map(crate::keys::Alg::as_str),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp",
                             "name", "preferred_username", "picture", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["en", "es", "ja"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "resource_indicators_supported": true,
    });
    if s.client_documents {
        document["client_id_metadata_document_supported"] = true.into();
        // Only apps known by their metadata document use private_key_jwt.
        for methods in ["token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"]
        {
            if let Some(list) = document[methods].as_array_mut() {
                list.push("private_key_jwt".into());
            }
        }
        document["token_endpoint_auth_signing_alg_values_supported"] =
            crate::client_assertions::SIGNING_ALGS.as_slice().into();
    }
    if s.registration != RegistrationPolicy::Off {
        document["registration_endpoint"] = s.endpoint("/register").into();
    }
    document
}

pub(super) async fn metadata<S: Store>(State(issuer): State<Arc<Issuer<S>>>) -> Response {
    let scopes = match issuer.store.resources().await {
        Ok(resources) => resources.into_iter().flat_map(|r| r.scopes.into_iter().map(|s| s.name)).collect(),
        Err(error) => {
            tracing::error!(%error, "store failure");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    public_json(&document(&issuer, scopes))
}

pub(super) async fn jwks<S: Store>(State(issuer): State<Arc<Issuer<S>>>) -> Response {
    public_json(issuer.keys().jwks())
}

/// A public JSON document: cacheable for a little while, readable from any origin.
fn public_json(value: &Value) -> Response {
    let mut response = axum::Json(value).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    response
}

/// CORS preflight for the endpoints browser-based clients call.
pub(super) async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}
