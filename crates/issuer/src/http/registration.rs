//! The registration endpoint (RFC 7591) and each app's own registration URL
//! (RFC 7592): parse the JSON and the bearer token, call the [`Issuer`], render.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{bearer, client_address};
use crate::Issuer;
use crate::registration::{
    ClientMetadata, RegistrationError, RegistrationErrorCode, RegistrationFailure, describe,
};
use crate::store::Store;

/// A JSON answer that must not be cached (it may hold secrets).
/// The largest registration request read: metadata is small, and anyone may send it.
pub(super) const MAX_BODY: usize = 16 * 1024;

/// Browser-based agents may register too (RFC 7591 §3 has no cookies to protect).
fn no_store(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// The refusal as JSON, with RFC 6750's challenge for a bad or missing token
/// (a bare `Bearer` when none was sent) and `Retry-After` past the limit.
fn failure(error: RegistrationFailure, headers: &HeaderMap) -> Response {
    let error = match error {
        RegistrationFailure::Refused(error) => error,
        RegistrationFailure::Store(_) | RegistrationFailure::Unavailable => {
            if let RegistrationFailure::Store(error) = error {
                tracing::error!(%error, "store failure");
            }
            let body = json!({ "error": "server_error", "error_description": "try again later" });
            return no_store(StatusCode::SERVICE_UNAVAILABLE, &body);
        }
    };
    let status = match error.code {
        RegistrationErrorCode::InvalidRedirectUri | RegistrationErrorCode::InvalidClientMetadata => {
            StatusCode::BAD_REQUEST
        }
        RegistrationErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        RegistrationErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        RegistrationErrorCode::NotFound => StatusCode::NOT_FOUND,
        RegistrationErrorCode::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    let body = json!({ "error": error.code.as_str(), "error_description": error.description });
    let mut response = no_store(status, &body);
    let out = response.headers_mut();
    match error.code {
        RegistrationErrorCode::InvalidToken => {
            let challenge =
                if bearer(headers).is_some() { "Bearer error=\"invalid_token\"" } else { "Bearer" };
            out.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        RegistrationErrorCode::InsufficientScope => {
            let challenge = "Bearer error=\"insufficient_scope\", scope=\"agentgate:register\"";
            out.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        RegistrationErrorCode::TooManyRequests(seconds) => {
            out.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        _ => {}
    }
    response
}

/// Reads a JSON body of client metadata, refusing any other content type.
fn metadata(headers: &HeaderMap, body: &[u8]) -> Result<ClientMetadata, RegistrationError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let refuse = |description: String| RegistrationError {
        code: RegistrationErrorCode::InvalidClientMetadata,
        description,
    };
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refuse("the body must be application/json".into()));
    }
    serde_json::from_slice(body).map_err(|e| refuse(format!("the body is not valid client metadata: {e}")))
}

/// `POST /register`.
pub(super) async fn register<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let address = client_address(peer.map(|c| c.0.0.ip()), &headers, &issuer.settings.trusted_proxies);
    let result = match issuer.check_registration_open().and_then(|()| metadata(&headers, &body)) {
        Ok(metadata) => issuer.register_dynamic(&metadata, bearer(&headers), address, crate::now()).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(made) => {
            let uri = issuer.registration_uri(&made.client.client_id);
            let body = describe(&made.client, &uri, made.secret.as_deref(), &made.registration_token);
            no_store(StatusCode::CREATED, &body)
        }
        Err(error) => failure(error, &headers),
    }
}

/// `GET /register/{client_id}`: the registration as stored (RFC 7592 §2.1).
pub(super) async fn read<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match issuer.registered_app(&client_id, bearer(&headers)).await {
        Ok(client) => {
            let uri = issuer.registration_uri(&client_id);
            no_store(StatusCode::OK, &describe(&client, &uri, None, bearer(&headers).unwrap_or_default()))
        }
        Err(error) => failure(error, &headers),
    }
}

/// `PUT /register/{client_id}`: replaces the metadata (RFC 7592 §2.2).
pub(super) async fn update<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let current = issuer.registered_app(&client_id, bearer(&headers)).await?;
        let metadata = metadata(&headers, &body)?;
        issuer.update_registration(&current, &metadata).await
    }
    .await;
    match result {
        Ok(client) => {
            let uri = issuer.registration_uri(&client_id);
            no_store(StatusCode::OK, &describe(&client, &uri, None, bearer(&headers).unwrap_or_default()))
        }
        Err(error) => failure(error, &headers),
    }
}

/// `DELETE /register/{client_id}`: the app, its grants and tokens are gone
/// (RFC 7592 §2.3).
pub(super) async fn delete<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        issuer.registered_app(&client_id, bearer(&headers)).await?;
        issuer.store.delete_client(&client_id, crate::now()).await?;
        issuer.spread_revocations().await;
        Ok::<_, RegistrationFailure>(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failure(error, &headers),
    }
}
