//! RFC 9728 protected resource metadata: how a client that has only the MCP
//! server's URL learns which authorization server to use and which scopes to ask.
//!
//! The document is served without a token (it is how a client finds out how to
//! get one), at the path-inserted well-known URI and at the root one, with CORS so
//! that browser-based clients can read it.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

/// The protected resource metadata document (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the MCP server's URL.
    pub resource: String,
    /// Issuers whose tokens this resource accepts.
    pub authorization_servers: Vec<String>,
    /// The scopes a client should ask for to use this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be sent: only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Where a developer can read how to use this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

/// A router serving `document` at each of `paths`.
pub(crate) fn router(document: &ProtectedResourceMetadata, paths: &[String]) -> Router {
    let body = Bytes::from(serde_json::to_vec(document).expect("metadata serializes"));
    let mut router = Router::new();
    for path in paths {
        let body = body.clone();
        router = router.route(path, get(move || serve(body.clone())).options(preflight));
    }
    router
}

async fn serve(body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

async fn preflight() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}
