//! What people have granted apps, through the management API: listed by
//! person or by app, and revoked the way a person's own "Disconnect" does it
//! (the grants go and every token between them is revoked, in one transaction).
//! First-party apps never ask, so they hold no grants to list; revoking still
//! ends their tokens for that person.

use super::ManagementError;
use crate::store::{Grant, Store};

/// The grants of a person, to an app, or of a person to an app; at least one
/// of the two must be named.
pub async fn grants<S: Store>(
    store: &S,
    user_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<Vec<Grant>, ManagementError> {
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
    Ok(found)
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
