//! The management API under `/api/v1` (JSON), for machines holding an access
//! token with `agentgate:admin` (see [`crate::management`]).
//!
//! Each handler takes an `Admin` first, so a caller without the right token
//! is refused before anything else of the request is read, then a `Body`
//! when it needs one, calls one function of [`crate::management`], and renders
//! its answer. Every answer is JSON and never cached; every error is an
//! [`ApiError`]. The OpenAPI 3.1 document at `/api/v1/openapi.json` is
//! generated from the handlers' annotations and the types they take and give
//! ([`ApiDoc`]), so it cannot drift from the code.

mod apps;
mod grants;
mod people;
mod resources;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

use super::bearer;
use crate::Issuer;
use crate::management::{ADMIN_SCOPE, ApiAuthError, ManagementError};
use crate::store::Store;

/// The error every refused call answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// A short code: `invalid_request` (400), `invalid_token` (401),
    /// `insufficient_scope` (403), `not_found` (404), `conflict` (409),
    /// `payload_too_large` (413), `unsupported_media_type` (415),
    /// `invalid_field` (422), `server_error` (503).
    pub error: String,
    /// What went wrong, for people.
    pub error_description: String,
    /// The fields at fault, when the error is about some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// One field at fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a path into the request body (`redirect_uris[0]`) or the
    /// name of a query parameter.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Refusals any call may get.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only describes responses for the OpenAPI document.
enum Refusals {
    /// No token, or not a valid one for the management API.
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// A valid token without `agentgate:admin`.
    #[response(status = 403)]
    Forbidden(ApiError),
    /// The store is unavailable; try again later.
    #[response(status = 503)]
    Unavailable(ApiError),
}

/// Refusals of a call that sends a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum BodyRefusals {
    /// Not JSON, or not of the documented shape (the field is named).
    #[response(status = 400)]
    Malformed(ApiError),
    /// Larger than 64 KiB.
    #[response(status = 413)]
    TooLarge(ApiError),
    /// Not `application/json`.
    #[response(status = 415)]
    NotJson(ApiError),
    /// A field breaks a rule (the field is named).
    #[response(status = 422)]
    Invalid(ApiError),
}

/// Nothing with this id.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Missing {
    /// Nothing with this id.
    #[response(status = 404)]
    NotFound(ApiError),
}

/// The call clashes with what is stored.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Clash {
    /// A taken name or URL, or something not the API's to change.
    #[response(status = 409)]
    Conflict(ApiError),
}

/// The OpenAPI 3.1 document of the management API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentgate management API",
        description = "Apps, people, resources and grants of an agentgate issuer. \
            Every call needs a client-credentials access token for `{issuer}/api/v1` with the scope `agentgate:admin`."
    ),
    paths(
        apps::list, apps::create, apps::get, apps::change, apps::delete, apps::rotate_secret,
        people::list, people::create, people::get, people::change, people::delete, people::set_password,
                people::unlock, people::links, people::link, people::unlink,
        resources::list, resources::create, resources::get, resources::change, resources::delete,
        grants::list, grants::revoke,
    ),
    components(schemas(ApiError, FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "apps", description = "OAuth clients: first-party, third-party and machine apps"),
        (name = "users", description = "People who sign in"),
        (name = "resources", description = "MCP servers and APIs, and the scopes they define"),
        (name = "grants", description = "What people have granted apps"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A client-credentials access token for `{issuer}/api/v1` with `agentgate:admin`",
            ))
            .build();
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The management API's routes, at `base` (the issuer URL's path).
pub(super) fn routes<S: Store>(base: &str) -> Router<Arc<Issuer<S>>> {
    let at = |path: &str| format!("{base}/api/v1{path}");
    Router::new()
        .route(&at("/openapi.json"), get(openapi::<S>))
        .route(&at("/apps"), get(apps::list::<S>).post(apps::create::<S>))
        .route(
            &at("/apps/{client_id}"),
            get(apps::get::<S>).patch(apps::change::<S>).delete(apps::delete::<S>),
        )
        .route(&at("/apps/{client_id}/secret"), post(apps::rotate_secret::<S>))
        .route(&at("/users"), get(people::list::<S>).post(people::create::<S>))
        .route(
            &at("/users/{id}"),
            get(people::get::<S>).patch(people::change::<S>).delete(people::delete::<S>),
        )
        .route(&at("/users/{id}/password"), put(people::set_password::<S>))
        .route(&at("/users/{id}/unlock"), post(people::unlock::<S>))
        .route(
            &at("/users/{id}/links"),
            get(people::links::<S>).post(people::link::<S>).delete(people::unlink::<S>),
        )
        .route(&at("/resources"), get(resources::list::<S>).post(resources::create::<S>))
        .route(
            &at("/resources/{uri}"),
            get(resources::get::<S>).patch(resources::change::<S>).delete(resources::delete::<S>),
        )
        .route(&at("/grants"), get(grants::list::<S>).delete(grants::revoke::<S>))
}

/// `GET /api/v1/openapi.json`: public, like the discovery document.
async fn openapi<S: Store>(State(issuer): State<Arc<Issuer<S>>>) -> Response {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![utoipa::openapi::Server::new(&issuer.settings.issuer)]);
    answer(StatusCode::OK, &doc)
}

/// A caller holding `agentgate:admin` for the management API; anyone else is
/// refused with RFC 6750's challenge before the rest of the request is read.
pub(super) struct Admin {
    /// The machine app whose token it is.
    pub caller: String,
}

impl<S: Store> FromRequestParts<Arc<Issuer<S>>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, issuer: &Arc<Issuer<S>>) -> Result<Self, Response> {
        match issuer.authorize_api_call(bearer(&parts.headers), ADMIN_SCOPE).await {
            Ok(claims) => {
                let caller = claims.get("client_id").and_then(serde_json::Value::as_str).unwrap_or_default();
                Ok(Admin { caller: caller.to_owned() })
            }
            Err(error) => Err(refused(error)),
        }
    }
}

/// The id in the path (`{client_id}`, `{id}`, `{uri}`), percent-decoded; a
/// path segment that does not decode names nothing: 404, as JSON.
pub(super) struct Id(pub String);

impl<St: Send + Sync> FromRequestParts<St> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Id(id)),
            Err(_) => Err(error(StatusCode::NOT_FOUND, "not_found", "nothing has this id", vec![])),
        }
    }
}

/// A JSON request body of type `T`; anything else is refused with an
/// [`ApiError`] naming the field at fault.
pub(super) struct Body<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &St) -> Result<Self, Response> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let essence = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            let message = "send the body as application/json";
            return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message, vec![]));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code =
                if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_request" };
            error(status, code, &rejection.body_text(), vec![])
        })?;
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let parsed = serde_path_to_error::deserialize(&mut json)
            .map_err(|e| (e.path().to_string(), e.into_inner()))
            .and_then(|value| json.end().map(|()| value).map_err(|e| (".".to_owned(), e)));
        parsed.map(Body).map_err(|(field, e)| {
            let message = e.to_string();
            let description = format!("the body is not what this call takes: {message}");
            let fields = if field == "." { vec![] } else { vec![FieldError { field, message }] };
            error(StatusCode::BAD_REQUEST, "invalid_request", &description, fields)
        })
    }
}

/// A JSON answer that is never cached.
fn answer<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `204 No Content`.
fn done() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, code: &str, description: &str, fields: Vec<FieldError>) -> Response {
    let body = ApiError { error: code.to_owned(), error_description: description.to_owned(), fields };
    answer(status, &body)
}

/// RFC 6750 §3: 401 with a challenge (a bare one when no token was sent),
/// 403 naming the scope the call needs.
fn refused(refusal: ApiAuthError) -> Response {
    let (status, code, challenge) = match refusal {
        ApiAuthError::Unavailable => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "server_error", &refusal.to_string(), vec![]);
        }
        ApiAuthError::Missing => (StatusCode::UNAUTHORIZED, "invalid_token", "Bearer".to_owned()),
        ApiAuthError::Invalid => {
            (StatusCode::UNAUTHORIZED, "invalid_token", "Bearer error=\"invalid_token\"".to_owned())
        }
        ApiAuthError::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
        ),
    };
    let mut response = error(status, code, &refusal.to_string(), vec![]);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

impl IntoResponse for ManagementError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        match self {
            ManagementError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &description, vec![]),
            ManagementError::Invalid { field, message } => {
                let fields = vec![FieldError { field, message }];
                error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", &description, fields)
            }
            ManagementError::Conflict { field, message } => {
                let fields = field.map(|f| FieldError { field: f.to_owned(), message }).into_iter().collect();
                error(StatusCode::CONFLICT, "conflict", &description, fields)
            }
            ManagementError::Store(store_error) => {
                tracing::error!(error = %store_error, "store failure");
                error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "try again later", vec![])
            }
        }
    }
}
