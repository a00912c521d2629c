//! What people have granted apps, through the management API: listed by
//! person or by app, and revoked the way a person's own "Disconnect" does it
//! (the grants go and every token between them is revoked, in one transaction).
//! First-party apps never ask, so they hold no grants to list; revoking still
//! ends their tokens for that person.

use serde::Serialize;
use utoipa::ToSchema;

use super::ManagementError;
use crate::store::{Grant, Store};

/// One person's grant to one app for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GrantView {
    /// The person.
    pub user_id: String,
    /// The app.
    pub client_id: String,
    /// The resource the scopes are for.
    pub resource: String,
    /// What the person granted.
    pub scopes: Vec<String>,
    /// When it was first granted (seconds since the Unix epoch).
    pub created_at: i64,
    /// When it last changed (seconds since the Unix epoch).
    pub updated_at: i64,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            user_id: g.user_id.clone(),
            client_id: g.client_id.clone(),
            resource: g.resource.clone(),
            scopes: g.scopes.clone(),
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

/// The grants of a person, to an app, or of a person to an app; at least one
/// of the two must be named.
pub async fn grants<S: Store>(
    store: &S,
    user_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<Vec<GrantView>, ManagementError> {
    let found = match (user_id, client_id) {
        (Some(user), client) => {
            let mut grants = store.grants_of_user(user).await?;
            grants.retain(|g| client.is_none_or(|c| g.client_id == c));
            grants
        }
        (None, Some(client)) => store.grants_of_client(client).await?,
        (None, None) => {
            return Err(ManagementError::invalid("user_id", "name a user_id, a client_id, or both"));
        }
    };
    Ok(found.iter().map(GrantView::from).collect())
}

/// Revokes everything a person granted an app: the grants and every token
/// between them.
pub async fn revoke<S: Store>(
    store: &S,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<(), ManagementError> {
    if store.revoke_grants(user_id, client_id, now).await? {
        Ok(())
    } else {
        Err(ManagementError::NotFound(format!("user {user_id:?} has no grant or token of app {client_id:?}")))
    }
}
