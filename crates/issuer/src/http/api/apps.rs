//! `/api/v1/apps`: register, read, change and remove apps; rotate secrets.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Admin, Body, BodyRefusals, Clash, Id, Missing, Refusals, answer, done};
use crate::Issuer;
use crate::management::ManagementError;
use crate::management::apps::{self, AppChanges, AppSpec, AppView, CreatedApp, NewSecret};
use crate::store::Store;

/// Every app, without secrets.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", operation_id = "list_apps",
    responses((status = 200, description = "Every app, by name", body = [AppView]), Refusals))]
pub(super) async fn list<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
) -> Result<Response, ManagementError> {
    let all = issuer.store.clients().await?;
    Ok(answer(StatusCode::OK, &all.iter().map(AppView::from).collect::<Vec<_>>()))
}

/// Registers an app; a confidential one's secret is in the answer, only there.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", operation_id = "create_app", request_body = AppSpec,
    responses((status = 201, description = "Registered", body = CreatedApp), BodyRefusals, Clash, Refusals))]
pub(super) async fn create<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Body(spec): Body<AppSpec>,
) -> Result<Response, ManagementError> {
    let created = apps::create_app(&issuer.store, spec, crate::now()).await?;
    Ok(answer(StatusCode::CREATED, &created))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{client_id}", tag = "apps", operation_id = "get_app",
    params(("client_id" = String, Path, description = "The app's client_id")),
    responses((status = 200, description = "The app", body = AppView), Missing, Refusals))]
pub(super) async fn get<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(client_id): Id,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &apps::app(&issuer.store, &client_id).await?))
}

/// Changes an app's name, consent, redirect URIs, permissions or pages.
#[utoipa::path(patch, path = "/api/v1/apps/{client_id}", tag = "apps", operation_id = "change_app", request_body = AppChanges,
    params(("client_id" = String, Path, description = "The app's client_id")),
    responses((status = 200, description = "The app as changed", body = AppView),
        BodyRefusals, Missing, Clash, Refusals))]
pub(super) async fn change<S: Store>(
    admin: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(client_id): Id,
    Body(changes): Body<AppChanges>,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &apps::change_app(&issuer.store, &client_id, changes, &admin.caller).await?))
}

/// Removes an app with its grants and tokens.
#[utoipa::path(delete, path = "/api/v1/apps/{client_id}", tag = "apps", operation_id = "delete_app",
    params(("client_id" = String, Path, description = "The app's client_id")),
    responses((status = 204, description = "Removed"), Missing, Clash, Refusals))]
pub(super) async fn delete<S: Store>(
    admin: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(client_id): Id,
) -> Result<Response, ManagementError> {
    apps::delete_app(&issuer.store, &client_id, &admin.caller).await?;
    issuer.spread_revocations().await;
    Ok(done())
}

/// Gives a confidential app a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/apps/{client_id}/secret", tag = "apps", operation_id = "rotate_app_secret",
    params(("client_id" = String, Path, description = "The app's client_id")),
    responses((status = 200, description = "The new secret, shown only now", body = NewSecret),
        Missing, Clash, Refusals))]
pub(super) async fn rotate_secret<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(client_id): Id,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &apps::rotate_secret(&issuer.store, &client_id).await?))
}
