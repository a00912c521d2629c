//! People through the management API. The rules are [`crate::users`]'s, the
//! same as for `agentgate users`: canonical lowercase usernames and emails,
//! argon2id password hashes, and no hash ever shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ManagementError;
use crate::store::{Store, StoreError, User, UserLink, taken};
use crate::users::{self, NewUser, UserChanges, UserError};

/// A person as the management API shows them: no password hash.
///
/// ```
/// use agentgate_issuer::management::people::UserView;
/// let alice = agentgate_issuer::store::User { username: "alice".into(), ..Default::default() };
/// assert_eq!(UserView::from(&alice).username, "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserView {
    /// The person's id: the `sub` of their tokens.
    pub id: String,
    /// The sign-in name.
    pub username: String,
    /// An email address, also usable to sign in.
    pub email: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// When they were added (seconds since the Unix epoch).
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            created_at: u.created_at,
        }
    }
}

/// A new person (`POST /api/v1/users`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit (kept lowercase).
    pub username: String,
    /// An email address, also usable to sign in.
    pub email: Option<String>,
    /// The display name (at most 100 characters).
    pub name: Option<String>,
    /// At least 8 characters; only its hash is kept.
    pub password: String,
}

/// Changes to a person (`PATCH /api/v1/users/{id}`): a field left out stays
/// as it is; `null` clears the email or the name.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new sign-in name.
    pub username: Option<String>,
    /// A new email address, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A new display name, or `null` for none.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
}

/// A new password (`PUT /api/v1/users/{id}/password`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSpec {
    /// At least 8 characters; only its hash is kept.
    pub password: String,
}

/// Adds a person; nothing is stored if anything is invalid or taken.
pub async fn create_user<S: Store>(store: &S, spec: UserSpec, now: i64) -> Result<UserView, ManagementError> {
    let new =
        NewUser { username: spec.username, email: spec.email, name: spec.name, password: spec.password };
    let user = users::add_user(store, new, now).await.map_err(|e| field_error(e, ""))?;
    Ok(UserView::from(&user))
}

/// One person.
pub async fn user<S: Store>(store: &S, id: &str) -> Result<UserView, ManagementError> {
    store.user(id).await?.map(|u| UserView::from(&u)).ok_or_else(|| not_found(id))
}

/// Changes a person's username, email or name; nothing changes if anything is
/// invalid or taken.
pub async fn change_user<S: Store>(
    store: &S,
    id: &str,
    patch: UserPatch,
) -> Result<UserView, ManagementError> {
    let changes = UserChanges { username: patch.username, email: patch.email, name: patch.name };
    let user = users::change_user(store, id, changes).await.map_err(|e| field_error(e, id))?;
    Ok(UserView::from(&user))
}

/// Sets a person's password.
pub async fn set_password<S: Store>(store: &S, id: &str, spec: PasswordSpec) -> Result<(), ManagementError> {
    users::set_password_of(store, id, &spec.password).await.map_err(|e| field_error(e, id))
}

/// Lets a person locked out by failed sign-ins sign in again at once.
pub async fn unlock<S: Store>(store: &S, id: &str) -> Result<(), ManagementError> {
    if users::unlock_id(store, id).await? { Ok(()) } else { Err(not_found(id)) }
}

/// Removes a person with their grants, tokens and sessions.
pub async fn delete_user<S: Store>(store: &S, id: &str) -> Result<(), ManagementError> {
    if store.delete_user(id, crate::now()).await? { Ok(()) } else { Err(not_found(id)) }
}

/// A person's account at an identity provider, as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LinkView {
    /// The provider's id in the configuration.
    pub provider: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The account's subject at the provider.
    pub subject: String,
    /// Whether a first sign-in made it (under the provider's `people` rule).
    pub made_at_sign_in: bool,
    /// When it was made (seconds since the Unix epoch).
    pub created_at: i64,
    /// When the person last signed in through it.
    pub signed_in_at: Option<i64>,
}

impl From<&UserLink> for LinkView {
    fn from(l: &UserLink) -> Self {
        Self {
            provider: l.provider.clone(),
            issuer: l.issuer.clone(),
            subject: l.subject.clone(),
            made_at_sign_in: l.made_at_sign_in,
            created_at: l.created_at,
            signed_in_at: l.signed_in_at,
        }
    }
}

/// An account to tie to a person (`POST /api/v1/users/{id}/links`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The provider's id in the configuration (`[[provider]] id`).
    pub provider: String,
    /// The account's subject at the provider (its `sub`).
    pub subject: String,
}

/// A person's accounts at identity providers.
pub async fn links<S: Store>(store: &S, id: &str) -> Result<Vec<LinkView>, ManagementError> {
    store.user(id).await?.ok_or_else(|| not_found(id))?;
    Ok(store.user_links(id).await?.iter().map(LinkView::from).collect())
}

/// Ties the account `spec` names, at the provider whose issuer is
/// `provider_issuer` (`None`: no such provider is configured), to a person.
pub async fn link<S: Store>(
    store: &S,
    id: &str,
    spec: LinkSpec,
    provider_issuer: Option<&str>,
    now: i64,
) -> Result<LinkView, ManagementError> {
    let issuer = provider_issuer.ok_or_else(|| {
        ManagementError::invalid(
            "provider",
            format!("no [[provider]] with id {:?} is configured", spec.provider),
        )
    })?;
    if spec.subject.is_empty() {
        return Err(ManagementError::invalid("subject", "name the account's subject at the provider"));
    }
    store.user(id).await?.ok_or_else(|| not_found(id))?;
    let link = UserLink {
        issuer: issuer.to_owned(),
        subject: spec.subject,
        provider: spec.provider,
        made_at_sign_in: false,
        user_id: id.to_owned(),
        created_at: now,
        signed_in_at: None,
    };
    match store.insert_user_link(&link).await {
        Err(StoreError::Conflict(_)) => Err(ManagementError::conflict(
            Some("subject"),
            "that account is already tied to a person; unlink it there first",
        )),
        other => other.map(|()| LinkView::from(&link)).map_err(Into::into),
    }
}

/// The answer when a person has no such account to untie (untying is
/// [`Issuer::drop_provider_account`](crate::Issuer::drop_provider_account),
/// which also revokes the account's kept token).
pub fn no_such_link(id: &str, issuer: &str, subject: &str) -> ManagementError {
    ManagementError::NotFound(format!("user {id:?} has no account {subject:?} at {issuer:?}"))
}

fn not_found(id: &str) -> ManagementError {
    ManagementError::NotFound(format!("no user with id {id:?}"))
}

/// The request field a rule about people was broken in.
fn field_error(error: UserError, id: &str) -> ManagementError {
    let invalid = ManagementError::invalid;
    match error {
        UserError::Store(error) => error.into(),
        UserError::NotFound(_) => not_found(id),
        UserError::InvalidUsername(_) => invalid("username", error),
        UserError::InvalidEmail(_) => invalid("email", error),
        UserError::InvalidName => invalid("name", error),
        UserError::WeakPassword => invalid("password", error),
        UserError::Taken(what) if what == taken::EMAIL => ManagementError::conflict(Some("email"), error),
        UserError::Taken(_) => ManagementError::conflict(Some("username"), error),
    }
}
