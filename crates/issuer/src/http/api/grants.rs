//! `/api/v1/grants`: what people have granted apps, listed by person or by
//! app, and revoked.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Admin, Missing, Refusals, answer, done};
use crate::Issuer;
use crate::management::ManagementError;
use crate::management::grants;
use crate::store::{Grant, Store};

/// `user_id` and `client_id` from a query string (the last of each wins).
fn ids(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut user, mut client) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "user_id" => user = Some(value.into_owned()),
            "client_id" => client = Some(value.into_owned()),
            _ => {}
        }
    }
    (user, client)
}

/// The grants of a person, to an app, or both.
#[utoipa::path(get, path = "/api/v1/grants", tag = "grants", operation_id = "list_grants",
    params(
        ("user_id" = Option<String>, Query, description = "Only this person's grants"),
        ("client_id" = Option<String>, Query, description = "Only grants to this app"),
    ),
    responses((status = 200, description = "The grants", body = [Grant]),
        (status = 422, description = "Neither user_id nor client_id", body = super::ApiError), Refusals))]
pub(super) async fn list<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ManagementError> {
    let (user, client) = ids(query.as_deref());
    let found = grants::grants(&issuer.store, user.as_deref(), client.as_deref()).await?;
    Ok(answer(StatusCode::OK, &found))
}

/// Revokes everything a person granted an app: the grants and every token
/// between them.
#[utoipa::path(delete, path = "/api/v1/grants", tag = "grants", operation_id = "revoke_grants",
    params(
        ("user_id" = String, Query, description = "The person"),
        ("client_id" = String, Query, description = "The app"),
    ),
    responses((status = 204, description = "Revoked"),
        (status = 422, description = "user_id or client_id missing", body = super::ApiError), Missing, Refusals))]
pub(super) async fn revoke<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ManagementError> {
    let (Some(user), Some(client)) = ids(query.as_deref()) else {
        return Err(ManagementError::invalid("user_id", "name both the user_id and the client_id"));
    };
    grants::revoke(&issuer.store, &user, &client, crate::now()).await?;
    issuer.spread_revocations().await;
    Ok(done())
}
