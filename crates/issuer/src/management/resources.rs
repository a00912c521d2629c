//! Resources (the MCP servers and APIs tokens are for) and their scopes,
//! through the management API. The rules are [`crate::scopes`]'s; on top,
//! agentgate's own resource (`{issuer}/api/v1`) and its `agentgate:…` scopes
//! are not the API's to declare, change or remove.
//!
//! A resource that `agentgate serve`'s configuration file declares is brought
//! back to the file's version at the next start.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ManagementError, api_resource, is_reserved_scope};
use crate::Settings;
use crate::scopes::{AddResourceError, canonical_resource, checked_resource};
use crate::store::{Resource, Store, Translations};

/// A resource as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResourceView {
    /// Its URL: what tokens for it carry in `aud`, and its id in this API.
    pub uri: String,
    /// The name people see on the consent page.
    pub name: String,
    /// The scopes it defines.
    pub scopes: Vec<ScopeView>,
    /// Its name and scope descriptions in other languages (`es`, `ja`, or
    /// `en` when the default words are in another language); the pages fall
    /// back to `name` and each scope's `description`.
    pub translations: Translations,
    /// When it was added (seconds since the Unix epoch).
    pub created_at: i64,
}

/// A scope a resource defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeView {
    /// The scope token, such as `mcp:tools`.
    pub name: String,
    /// What it allows, as the consent page says it (at most 200 characters).
    #[serde(default)]
    pub description: String,
}

impl From<&Resource> for ResourceView {
    fn from(r: &Resource) -> Self {
        Self {
            uri: r.uri.clone(),
            name: r.name.clone(),
            scopes: r
                .scopes
                .iter()
                .map(|s| ScopeView { name: s.name.clone(), description: s.description.clone() })
                .collect(),
            translations: r.translations.clone(),
            created_at: r.created_at,
        }
    }
}

/// A new resource (`POST /api/v1/resources`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// An absolute http(s) URL without a fragment.
    pub uri: String,
    /// The name people see (1 to 100 characters).
    pub name: String,
    /// The scopes it defines.
    #[serde(default)]
    pub scopes: Vec<ScopeView>,
    /// Its name and scope descriptions in other languages, such as
    /// `{"es": {"name": "Correo", "scopes": {"mail:read": "Leer tu correo"}}}`.
    #[serde(default)]
    pub translations: Translations,
}

/// Changes to a resource (`PATCH /api/v1/resources/{uri}`): a field left out
/// stays as it is. Grants keep the scopes they hold; a scope no longer defined
/// simply cannot be asked for.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceChanges {
    /// A new name.
    pub name: Option<String>,
    /// The scopes it defines (replacing all).
    pub scopes: Option<Vec<ScopeView>>,
    /// Its texts in other languages (replacing all).
    pub translations: Option<Translations>,
}

/// Adds a resource; nothing is stored if any part is invalid or the URL is taken.
pub async fn create_resource<S: Store>(
    store: &S,
    settings: &Settings,
    spec: ResourceSpec,
    now: i64,
) -> Result<ResourceView, ManagementError> {
    if own_resource(settings, &spec.uri) {
        return Err(reserved());
    }
    let resource = checked(&spec.uri, &spec.name, &spec.scopes, &spec.translations, now)?;
    store.insert_resource(&resource).await.map_err(|error| match error {
        crate::store::StoreError::Conflict(_) => {
            ManagementError::conflict(Some("uri"), "a resource with this URL (or its canonical form) exists")
        }
        other => other.into(),
    })?;
    Ok(ResourceView::from(&resource))
}

/// One resource, by its URL.
pub async fn resource<S: Store>(store: &S, uri: &str) -> Result<ResourceView, ManagementError> {
    stored(store, uri).await.map(|r| ResourceView::from(&r))
}

/// Renames a resource or replaces its scopes; nothing changes if any part is invalid.
pub async fn change_resource<S: Store>(
    store: &S,
    settings: &Settings,
    uri: &str,
    changes: ResourceChanges,
) -> Result<ResourceView, ManagementError> {
    if own_resource(settings, uri) {
        return Err(reserved());
    }
    let current = stored(store, uri).await?;
    let scopes = changes.scopes.unwrap_or_else(|| ResourceView::from(&current).scopes);
    let translations = changes.translations.as_ref().unwrap_or(&current.translations);
    let name = changes.name.as_deref().unwrap_or(&current.name);
    let changed = checked(&current.uri, name, &scopes, translations, current.created_at)?;
    store.put_resource(&changed).await?;
    Ok(ResourceView::from(&changed))
}

/// Removes a resource; grants for it go with it.
pub async fn delete_resource<S: Store>(
    store: &S,
    settings: &Settings,
    uri: &str,
) -> Result<(), ManagementError> {
    if own_resource(settings, uri) {
        return Err(reserved());
    }
    let current = stored(store, uri).await?;
    if store.delete_resource(&current.uri).await? { Ok(()) } else { Err(not_found(uri)) }
}

/// The resource stored under exactly this URL.
async fn stored<S: Store>(store: &S, uri: &str) -> Result<Resource, ManagementError> {
    let canonical = canonical_resource(uri).ok_or_else(|| not_found(uri))?;
    match store.resource_by_canonical(&canonical).await? {
        Some(resource) if resource.uri == uri => Ok(resource),
        _ => Err(not_found(uri)),
    }
}

fn checked(
    uri: &str,
    name: &str,
    scopes: &[ScopeView],
    translations: &Translations,
    now: i64,
) -> Result<Resource, ManagementError> {
    if let Some(scope) = scopes.iter().find(|s| is_reserved_scope(&s.name)) {
        return Err(ManagementError::invalid(
            "scopes",
            format!("{:?} is one of agentgate's own scopes", scope.name),
        ));
    }
    let pairs: Vec<(&str, &str)> = scopes.iter().map(|s| (s.name.as_str(), s.description.as_str())).collect();
    checked_resource(uri, name, &pairs, translations, now).map_err(|error| match error {
        AddResourceError::Store(error) => error.into(),
        AddResourceError::InvalidUri(_) => ManagementError::invalid("uri", error),
        AddResourceError::InvalidName => ManagementError::invalid("name", error),
        AddResourceError::UnknownLanguage(_)
        | AddResourceError::InvalidTranslation(_)
        | AddResourceError::UntranslatableScope(_) => ManagementError::invalid("translations", error),
        other => ManagementError::invalid("scopes", other),
    })
}

fn own_resource(settings: &Settings, uri: &str) -> bool {
    canonical_resource(uri) == canonical_resource(&api_resource(settings))
}

fn reserved() -> ManagementError {
    ManagementError::conflict(Some("uri"), "the management API's own resource is not the API's to change")
}

fn not_found(uri: &str) -> ManagementError {
    ManagementError::NotFound(format!("no resource {uri:?}"))
}
