//! The management API under `/api/v1` (JSON), for machines holding an access
//! token with `agentgate:admin` (see [`crate::management`]). This first part
//! reads apps; writing, people, resources and grants come next.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::bearer;
use crate::Issuer;
use crate::clients::describe;
use crate::management::{ADMIN_SCOPE, ApiAuthError};
use crate::store::{Store, StoreError};

/// A JSON answer that is never cached.
fn answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    answer(status, &json!({ "error": code, "error_description": description }))
}

/// RFC 6750 §3: 401 with a challenge (a bare one when no token was sent),
/// 403 naming the scope the call needs.
fn refused(error: ApiAuthError) -> Response {
    let (status, challenge) = match error {
        ApiAuthError::Missing => (StatusCode::UNAUTHORIZED, "Bearer".to_owned()),
        ApiAuthError::Invalid => (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\"".to_owned()),
        ApiAuthError::InsufficientScope(scope) => {
            (StatusCode::FORBIDDEN, format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""))
        }
    };
    let code = match error {
        ApiAuthError::InsufficientScope(_) => "insufficient_scope",
        _ => "invalid_token",
    };
    let mut response = self::error(status, code, &error.to_string());
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn unavailable(error: StoreError) -> Response {
    tracing::error!(%error, "store failure");
    self::error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again later")
}

/// `GET /api/v1/apps`: every app, without secrets.
pub(super) async fn list_apps<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = issuer.authorize_api_call(bearer(&headers), ADMIN_SCOPE).await {
        return refused(error);
    }
    match issuer.store.clients().await {
        Ok(apps) => answer(StatusCode::OK, &Value::Array(apps.iter().map(describe).collect())),
        Err(error) => unavailable(error),
    }
}

/// `GET /api/v1/apps/{client_id}`: one app, or 404.
pub(super) async fn get_app<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = issuer.authorize_api_call(bearer(&headers), ADMIN_SCOPE).await {
        return refused(error);
    }
    match issuer.store.client(&client_id).await {
        Ok(Some(app)) => answer(StatusCode::OK, &describe(&app)),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no app with this client_id"),
        Err(error) => unavailable(error),
    }
}
