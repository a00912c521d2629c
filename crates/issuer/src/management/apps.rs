//! Apps through the management API: what a marketplace sends, what it sees.
//!
//! The rules are [`crate::clients`]'s, the same as for `agentgate apps add`: a
//! change is a whole new registration checked by [`clients::prepare`], then
//! stored in one write, keeping what a change may not touch (the id, the
//! secret, whether it is public or a machine app, how it came to be).
//!
//! Apps known by their metadata document are the document's to describe: the
//! API may read and delete them, not change them. An app that registered
//! itself (RFC 7591) may be narrowed or renamed but never made first-party,
//! and its own RFC 7592 update replaces what it may change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ADMIN_SCOPE, ManagementError};
use crate::clients::{self, ApplicationType, ClientError, NewClient, registered_by};
use crate::keys::Alg;
use crate::store::{Client, Store};

/// An app as the management API and `agentgate apps … --json` show it:
/// everything but its secrets.
///
/// ```
/// use agentgate_issuer::management::apps::AppView;
/// let app = agentgate_issuer::store::Client { name: "Mail".into(), ..Default::default() };
/// assert_eq!(AppView::from(&app).name, "Mail");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppView {
    /// The app's `client_id`.
    pub client_id: String,
    /// The name people see on the consent page.
    pub name: String,
    /// Whether people are asked for consent before it gets anything.
    pub third_party: bool,
    /// Whether it proves nothing at the token endpoint (no secret, no key).
    pub public: bool,
    /// `web` or `native`: decides the redirect URI rules.
    pub application_type: String,
    /// Where people may be sent back to.
    pub redirect_uris: Vec<String>,
    /// The most it may ever be granted.
    pub scopes: Vec<String>,
    /// The OAuth grants it may use.
    pub grant_types: Vec<String>,
    /// Logo on the consent page.
    pub logo_uri: Option<String>,
    /// Home page on the consent page.
    pub client_uri: Option<String>,
    /// Privacy policy on the consent page.
    pub policy_uri: Option<String>,
    /// Terms of service on the consent page.
    pub tos_uri: Option<String>,
    /// When it was registered (seconds since the Unix epoch).
    pub created_at: i64,
    /// What its ID tokens are signed with.
    pub id_token_signed_response_alg: String,
    /// Where it may send people after signing them out.
    pub post_logout_redirect_uris: Vec<String>,
    /// `admin`, `dynamic` (registered itself) or `document` (known by its
    /// metadata document).
    pub registration: String,
    /// How it authenticates at the token endpoint.
    pub token_endpoint_auth_method: String,
}

impl From<&Client> for AppView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            third_party: c.third_party,
            public: c.token_endpoint_auth_method == "none",
            application_type: c.application_type.clone(),
            redirect_uris: c.redirect_uris.clone(),
            scopes: c.scopes.clone(),
            grant_types: c.grant_types.clone(),
            logo_uri: c.logo_uri.clone(),
            client_uri: c.client_uri.clone(),
            policy_uri: c.policy_uri.clone(),
            tos_uri: c.tos_uri.clone(),
            created_at: c.created_at,
            id_token_signed_response_alg: c.id_token_signed_response_alg.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            registration: c.registration.clone(),
            token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
        }
    }
}

/// A new app (`POST /api/v1/apps`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The name people see (1 to 100 characters).
    pub name: String,
    /// Whether people are asked for consent: `true` for an app a marketplace
    /// lists, `false` only for the operator's own apps.
    pub third_party: bool,
    /// No secret: the app runs where it cannot keep one (default `false`).
    #[serde(default)]
    pub public: bool,
    /// A machine-to-machine app: `client_credentials` only, confidential and
    /// first-party (default `false`).
    #[serde(default)]
    pub machine: bool,
    /// `web` (default) or `native`.
    #[serde(default)]
    pub application_type: ApplicationType,
    /// Where people may be sent back to; at least one unless `machine`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where it may send people after signing them out.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Its permissions: the most it may ever be granted (default
    /// `openid profile email offline_access`).
    pub scopes: Option<Vec<String>>,
    /// Logo on the consent page (https).
    pub logo_uri: Option<String>,
    /// Home page on the consent page (https).
    pub client_uri: Option<String>,
    /// Privacy policy on the consent page (https).
    pub policy_uri: Option<String>,
    /// Terms of service on the consent page (https).
    pub tos_uri: Option<String>,
    /// What its ID tokens are signed with (default `ES256`).
    #[serde(default)]
    pub id_token_signed_response_alg: Alg,
}

/// An app just created, with its secret in clear: shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    /// The app.
    #[serde(flatten)]
    pub app: AppView,
    /// The secret of a confidential app; `null` for a public one.
    pub client_secret: Option<String>,
}

/// A confidential app's new secret (the old one stops working at once).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    /// The app.
    pub client_id: String,
    /// The new secret in clear: shown only now.
    pub client_secret: String,
}

/// Changes to an app (`PATCH /api/v1/apps/{client_id}`): a field left out
/// stays as it is; `null` clears an optional URL.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChanges {
    /// A new name.
    pub name: Option<String>,
    /// Whether people are asked for consent.
    pub third_party: Option<bool>,
    /// New redirect URIs (replacing all).
    pub redirect_uris: Option<Vec<String>>,
    /// New post-logout redirect URIs (replacing all).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// New permissions (replacing all).
    pub scopes: Option<Vec<String>>,
    /// A new logo, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub logo_uri: Option<Option<String>>,
    /// A new home page, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub client_uri: Option<Option<String>>,
    /// A new privacy policy, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub policy_uri: Option<Option<String>>,
    /// New terms of service, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub tos_uri: Option<Option<String>>,
    /// What its ID tokens are signed with.
    pub id_token_signed_response_alg: Option<Alg>,
}

/// Registers an app; nothing is stored if any field is invalid.
pub async fn create_app<S: Store>(store: &S, spec: AppSpec, now: i64) -> Result<CreatedApp, ManagementError> {
    let scopes =
        spec.scopes.unwrap_or_else(|| clients::DEFAULT_SCOPES.split(' ').map(str::to_owned).collect());
    let new = NewClient {
        name: spec.name,
        third_party: spec.third_party,
        public: spec.public,
        application_type: spec.application_type,
        redirect_uris: spec.redirect_uris,
        scopes,
        machine: spec.machine,
        logo_uri: spec.logo_uri,
        client_uri: spec.client_uri,
        policy_uri: spec.policy_uri,
        tos_uri: spec.tos_uri,
        id_token_alg: spec.id_token_signed_response_alg,
        post_logout_redirect_uris: spec.post_logout_redirect_uris,
    };
    let registered = clients::prepare(new.clone(), now).map_err(|error| field_error(error, &new))?;
    store.insert_client(&registered.client).await?;
    Ok(CreatedApp { app: AppView::from(&registered.client), client_secret: registered.secret })
}

/// Changes an app; nothing changes if any field is invalid. `caller` (the
/// machine app making the call) may not take `agentgate:admin` from itself.
pub async fn change_app<S: Store>(
    store: &S,
    client_id: &str,
    changes: AppChanges,
    caller: &str,
) -> Result<AppView, ManagementError> {
    let current = changeable(store, client_id).await?;
    let new = NewClient {
        name: changes.name.unwrap_or_else(|| current.name.clone()),
        third_party: changes.third_party.unwrap_or(current.third_party),
        public: current.secret_hash.is_none(),
        application_type: if current.application_type == ApplicationType::Native.as_str() {
            ApplicationType::Native
        } else {
            ApplicationType::Web
        },
        redirect_uris: changes.redirect_uris.unwrap_or_else(|| current.redirect_uris.clone()),
        scopes: changes.scopes.unwrap_or_else(|| current.scopes.clone()),
        machine: clients::is_machine(&current),
        logo_uri: changes.logo_uri.unwrap_or_else(|| current.logo_uri.clone()),
        client_uri: changes.client_uri.unwrap_or_else(|| current.client_uri.clone()),
        policy_uri: changes.policy_uri.unwrap_or_else(|| current.policy_uri.clone()),
        tos_uri: changes.tos_uri.unwrap_or_else(|| current.tos_uri.clone()),
        id_token_alg: changes
            .id_token_signed_response_alg
            .or_else(|| Alg::parse(&current.id_token_signed_response_alg))
            .unwrap_or_default(),
        post_logout_redirect_uris: changes
            .post_logout_redirect_uris
            .unwrap_or_else(|| current.post_logout_redirect_uris.clone()),
    };
    let checked =
        clients::prepare(new.clone(), current.created_at).map_err(|error| field_error(error, &new))?;
    // What a change may not touch comes from the stored app.
    let changed = Client {
        client_id: current.client_id,
        secret_hash: current.secret_hash,
        grant_types: current.grant_types,
        created_at: current.created_at,
        registration: current.registration,
        registration_token_hash: current.registration_token_hash,
        token_endpoint_auth_method: current.token_endpoint_auth_method,
        ..checked.client
    };
    if !changed.third_party && clients::self_registered(&changed) {
        // Nobody vouched for an app that registered itself: people always decide.
        let message = "an app that registered itself stays third-party: people are always asked";
        return Err(ManagementError::conflict(Some("third_party"), message));
    }
    if client_id == caller && !changed.scopes.iter().any(|s| s == ADMIN_SCOPE) {
        let message = "the app making this call would lose agentgate:admin and lock itself out";
        return Err(ManagementError::conflict(Some("scopes"), message));
    }
    if store.update_client(&changed).await?.is_none() {
        return Err(not_found(client_id));
    }
    Ok(AppView::from(&changed))
}

/// Gives a confidential app a new secret; the old one stops working at once.
/// Access tokens already issued live out their lifetime: removing the app is
/// what ends them at once.
pub async fn rotate_secret<S: Store>(store: &S, client_id: &str) -> Result<NewSecret, ManagementError> {
    let mut app = changeable(store, client_id).await?;
    if app.secret_hash.is_none() {
        return Err(ManagementError::conflict(None, "a public app has no secret"));
    }
    let secret = crate::random_token(32);
    app.secret_hash = Some(clients::secret_hash(&secret));
    if store.update_client(&app).await?.is_none() {
        return Err(not_found(client_id));
    }
    Ok(NewSecret { client_id: app.client_id, client_secret: secret })
}

/// One app.
pub async fn app<S: Store>(store: &S, client_id: &str) -> Result<AppView, ManagementError> {
    store.client(client_id).await?.map(|c| AppView::from(&c)).ok_or_else(|| not_found(client_id))
}

/// Removes an app with its grants and tokens; `caller` (the machine app
/// making the call) may not remove itself.
pub async fn delete_app<S: Store>(store: &S, client_id: &str, caller: &str) -> Result<(), ManagementError> {
    if client_id == caller {
        let message = "the app making this call cannot remove itself: use another admin app or the CLI";
        return Err(ManagementError::conflict(None, message));
    }
    if store.delete_client(client_id, crate::now()).await? { Ok(()) } else { Err(not_found(client_id)) }
}

/// The stored app, unless the API may not change it.
async fn changeable<S: Store>(store: &S, client_id: &str) -> Result<Client, ManagementError> {
    let app = store.client(client_id).await?.ok_or_else(|| not_found(client_id))?;
    if app.registration == registered_by::DOCUMENT {
        return Err(ManagementError::conflict(
            None,
            "this app is described by its metadata document: it changes when the document does",
        ));
    }
    Ok(app)
}

fn not_found(client_id: &str) -> ManagementError {
    ManagementError::NotFound(format!("no app with client_id {client_id:?}"))
}

/// The request field a registration rule was broken in.
fn field_error(error: ClientError, new: &NewClient) -> ManagementError {
    let position = |list: &[String], item: &str| list.iter().position(|x| x == item).unwrap_or_default();
    match error {
        ClientError::Store(error) => error.into(),
        ClientError::NotFound(ref id) => not_found(id),
        ClientError::InvalidName => ManagementError::invalid("name", error),
        ClientError::InvalidRedirectUri { ref uri, .. } => {
            let field = match new.redirect_uris.iter().any(|u| u == uri) {
                true => format!("redirect_uris[{}]", position(&new.redirect_uris, uri)),
                false => {
                    format!("post_logout_redirect_uris[{}]", position(&new.post_logout_redirect_uris, uri))
                }
            };
            ManagementError::invalid(field, error)
        }
        ClientError::NoRedirectUri => ManagementError::invalid("redirect_uris", error),
        ClientError::InvalidScope(ref scope) | ClientError::ReservedScope(ref scope) => {
            ManagementError::invalid(format!("scopes[{}]", position(&new.scopes, scope)), error)
        }
        ClientError::InvalidUrl { field } => ManagementError::invalid(field, error),
        ClientError::MachineAppRules => ManagementError::invalid("machine", error),
    }
}
