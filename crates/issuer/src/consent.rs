//! Consent: what a person allowed an app, and when to ask again.
//!
//! First-party apps (the operator's own) never ask. A third-party app asks for
//! every scope the person has not granted it before, for that resource; a grant
//! only grows (the union of what was allowed) until the person disconnects the
//! app, which deletes its grants and revokes every token family at once.

use crate::error::OAuthError;
use crate::store::{Client, Grant, Store};
use crate::{Issuer, now};

/// An app a person has connected, and what it may do.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    /// The app.
    pub client: Client,
    /// Its grants, one per resource.
    pub grants: Vec<Grant>,
}

/// The scopes of `requested` that `grant` does not cover, in request order.
///
/// ```
/// use agentgate_issuer::consent::missing_scopes;
/// let asked = vec!["openid".to_owned(), "mcp:tools".to_owned()];
/// assert_eq!(missing_scopes(None, &asked), asked);
/// ```
pub fn missing_scopes(grant: Option<&Grant>, requested: &[String]) -> Vec<String> {
    requested.iter().filter(|s| !grant.is_some_and(|g| g.scopes.contains(s))).cloned().collect()
}

impl<S: Store> Issuer<S> {
    /// What the person must be asked before `client` gets `requested`:
    /// `None` when no consent page is needed (a first-party app, or a third-party
    /// app whose grant already covers everything); otherwise the scopes to ask
    /// for. A third-party app is asked once even for no scopes, and `force`
    /// (`prompt=consent`) asks for everything again.
    pub async fn consent_needed(
        &self,
        client: &Client,
        user_id: &str,
        resource: &str,
        requested: &[String],
        force: bool,
    ) -> Result<Option<Vec<String>>, OAuthError> {
        if !client.third_party {
            return Ok(None);
        }
        let grant = self.store.grant(user_id, &client.client_id, resource).await?;
        if force || grant.is_none() {
            return Ok(Some(requested.to_vec()));
        }
        let missing = missing_scopes(grant.as_ref(), requested);
        Ok((!missing.is_empty()).then_some(missing))
    }

    /// Records that the person allowed `scopes` (added to any earlier grant).
    /// A third-party app asking for nothing still gets a grant, so the person
    /// sees it among connected apps.
    pub async fn record_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &[String],
    ) -> Result<(), OAuthError> {
        let now = now();
        let mut grant = self.store.grant(user_id, client_id, resource).await?.unwrap_or(Grant {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            resource: resource.to_owned(),
            scopes: Vec::new(),
            created_at: now,
            updated_at: now,
        });
        for scope in scopes {
            if !grant.scopes.contains(scope) {
                grant.scopes.push(scope.clone());
            }
        }
        grant.updated_at = now;
        self.store.save_grant(&grant).await?;
        Ok(())
    }

    /// The apps a person has connected, by name.
    pub async fn connected_apps(&self, user_id: &str) -> Result<Vec<ConnectedApp>, OAuthError> {
        let mut apps: Vec<ConnectedApp> = Vec::new();
        for grant in self.store.grants_of_user(user_id).await? {
            match apps.iter_mut().find(|a| a.client.client_id == grant.client_id) {
                Some(app) => app.grants.push(grant),
                None => {
                    if let Some(client) = self.store.client(&grant.client_id).await? {
                        apps.push(ConnectedApp { client, grants: vec![grant] });
                    }
                }
            }
        }
        apps.sort_by(|a, b| a.client.name.cmp(&b.client.name));
        Ok(apps)
    }

    /// Disconnects an app: deletes its grants and revokes all its tokens for
    /// this person, at once. Whether it was connected.
    pub async fn disconnect(&self, user_id: &str, client_id: &str) -> Result<bool, OAuthError> {
        let connected = self.store.revoke_grants(user_id, client_id, now()).await?;
        self.spread_revocations().await;
        Ok(connected)
    }
}
