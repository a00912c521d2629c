//! `/api/v1/users`: add, read, change and remove people; set passwords; tie
//! and untie their accounts at identity providers.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Admin, Body, BodyRefusals, Clash, Id, Missing, Refusals, answer, done};
use crate::Issuer;
use crate::management::ManagementError;
use crate::management::people::{self, LinkSpec, LinkView, PasswordSpec, UserPatch, UserSpec, UserView};
use crate::store::Store;

/// Everyone, by username.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    responses((status = 200, description = "Everyone, by username", body = [UserView]), Refusals))]
pub(super) async fn list<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
) -> Result<Response, ManagementError> {
    let all = issuer.store.users().await?;
    Ok(answer(StatusCode::OK, &all.iter().map(UserView::from).collect::<Vec<_>>()))
}

/// Adds a person.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "create_user", request_body = UserSpec,
    responses((status = 201, description = "Added", body = UserView), BodyRefusals, Clash, Refusals))]
pub(super) async fn create<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Body(spec): Body<UserSpec>,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::CREATED, &people::create_user(&issuer.store, spec, crate::now()).await?))
}

/// One person.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", operation_id = "get_user",
    params(("id" = String, Path, description = "The person's id (the `sub` of their tokens)")),
    responses((status = 200, description = "The person", body = UserView), Missing, Refusals))]
pub(super) async fn get<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &people::user(&issuer.store, &id).await?))
}

/// Changes a person's username, email or name.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", operation_id = "change_user", request_body = UserPatch,
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 200, description = "The person as changed", body = UserView),
        BodyRefusals, Missing, Clash, Refusals))]
pub(super) async fn change<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
    Body(patch): Body<UserPatch>,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &people::change_user(&issuer.store, &id, patch).await?))
}

/// Removes a person with their grants, tokens and sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", operation_id = "delete_user",
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 204, description = "Removed"), Missing, Refusals))]
pub(super) async fn delete<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
) -> Result<Response, ManagementError> {
    people::delete_user(&issuer.store, &id).await?;
    issuer.spread_revocations().await;
    Ok(done())
}

/// Lets a person locked out by failed sign-ins (theirs or anyone's) sign in
/// again at once, from any browser.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", operation_id = "unlock_user",
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 204, description = "Unlocked"), Missing, Refusals))]
pub(super) async fn unlock<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
) -> Result<Response, ManagementError> {
    people::unlock(&issuer.store, &id).await?;
    Ok(done())
}

/// Sets a person's password.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", operation_id = "set_user_password", request_body = PasswordSpec,
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 204, description = "Set"), BodyRefusals, Missing, Refusals))]
pub(super) async fn set_password<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
    Body(spec): Body<PasswordSpec>,
) -> Result<Response, ManagementError> {
    people::set_password(&issuer.store, &id, spec).await?;
    Ok(done())
}

/// A person's accounts at identity providers.
#[utoipa::path(get, path = "/api/v1/users/{id}/links", tag = "users", operation_id = "list_user_links",
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 200, description = "Their accounts", body = [LinkView]), Missing, Refusals))]
pub(super) async fn links<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
) -> Result<Response, ManagementError> {
    Ok(answer(StatusCode::OK, &people::links(&issuer.store, &id).await?))
}

/// Ties an account at a configured identity provider to a person, so that
/// they sign in with it.
#[utoipa::path(post, path = "/api/v1/users/{id}/links", tag = "users", operation_id = "link_user", request_body = LinkSpec,
    params(("id" = String, Path, description = "The person's id")),
    responses((status = 201, description = "Tied", body = LinkView), BodyRefusals, Missing, Clash, Refusals))]
pub(super) async fn link<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
    Body(spec): Body<LinkSpec>,
) -> Result<Response, ManagementError> {
    let provider_issuer = issuer.provider_issuer(&spec.provider).map(str::to_owned);
    let view = people::link(&issuer.store, &id, spec, provider_issuer.as_deref(), crate::now()).await?;
    Ok(answer(StatusCode::CREATED, &view))
}

/// Unties an account at an identity provider from a person.
#[utoipa::path(delete, path = "/api/v1/users/{id}/links", tag = "users", operation_id = "unlink_user",
    params(
        ("id" = String, Path, description = "The person's id"),
        ("issuer" = String, Query, description = "The provider's issuer"),
        ("subject" = String, Query, description = "The account's subject there"),
    ),
    responses((status = 204, description = "Untied"),
        (status = 422, description = "issuer or subject missing", body = super::ApiError), Missing, Refusals))]
pub(super) async fn unlink<S: Store>(
    _: Admin,
    State(issuer): State<Arc<Issuer<S>>>,
    Id(id): Id,
    RawQuery(query): RawQuery,
) -> Result<Response, ManagementError> {
    let pairs: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let (Some(from), Some(subject)) = (pairs.get("issuer"), pairs.get("subject")) else {
        return Err(ManagementError::invalid("issuer", "name both the issuer and the subject"));
    };
    // Through the issuer: the account's kept token is revoked and forgotten too.
    if !issuer.drop_provider_account(&id, from, subject).await? {
        return Err(people::no_such_link(&id, from, subject));
    }
    Ok(done())
}
