//! `/api/v1/resources`: the MCP servers and APIs tokens are for, and their
//! scopes. A resource's id in the path is its URL, percent-encoded.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Admin, Body, BodyRefusals, Clash, Id, Missing, Refusals, answer, done};
use crate::Issuer;
use crate::management::ManagementError;
use crate::management::resources::{self, ResourceChanges, ResourceSpec, ResourceView};
use crate::store::Store;

/// Every resource, by URL.
#[utoipa::path(get, path = "/api/v1/resources", tag = "resources", operation_id = "list_resources",
    responses((status = 200, description = "Every resource, by URL", body = [ResourceView]), Refusals))]
pub(super) async fn list<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
) -> Result<Response, ManagementError> {
    let all = issuer.store.resources().await?;
    Ok(answer(StatusCode::OK, &all.iter().map(ResourceView::from).collect::<Vec<_>>()))
}

/// Adds a resource with its scopes.
#[utoipa::path(post, path = "/api/v1/resources", tag = "resources", operation_id = "create_resource", request_body = ResourceSpec,
    responses((status = 201, description = "Added", body = ResourceView), BodyRefusals, Clash, Refusals))]
pub(super) async fn create<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Body(spec): Body<ResourceSpec>,
) -> Result<Response, ManagementError> {
    let added = resources::create_resource(&issuer.store, &issuer.settings, spec, crate::now()).await?;
    Ok(answer(StatusCode::CREATED, &added))
}

/// One resource.
#[utoipa::path(get, path = "/api/v1/resources/{uri}", tag = "resources", operation_id = "get_resource",
    params(("uri" = String, Path, description = "The resource's URL, percent-encoded")),
    responses((status = 200, description = "The resource", body = ResourceView), Missing, Refusals))]
pub(super) async fn get<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(uri): Id,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &resources::resource(&issuer.store, &uri).await?))
}

/// Renames a resource or replaces its scopes.
#[utoipa::path(patch, path = "/api/v1/resources/{uri}", tag = "resources", operation_id = "change_resource", request_body = ResourceChanges,
    params(("uri" = String, Path, description = "The resource's URL, percent-encoded")),
    responses((status = 200, description = "The resource as changed", body = ResourceView),
        BodyRefusals, Missing, Clash, Refusals))]
pub(super) async fn change<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(uri): Id,
    Body(changes): Body<ResourceChanges>,
) -> Result<Response, ManagementError> {
    let changed = resources::change_resource(&issuer.store, &issuer.settings, &uri, changes).await?;
    Ok(answer(StatusCode::OK, &changed))
}

/// Removes a resource and the grants for it.
#[utoipa::path(delete, path = "/api/v1/resources/{uri}", tag = "resources", operation_id = "delete_resource",
    params(("uri" = String, Path, description = "The resource's URL, percent-encoded")),
    responses((status = 204, description = "Removed"), Missing, Clash, Refusals))]
pub(super) async fn delete<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(uri): Id,
) -> Result<Response, ManagementError> {
    resources::delete_resource(&issuer.store, &issuer.settings, &uri).await?;
    Ok(done())
}
