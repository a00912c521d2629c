//! People who sign in: names, passwords, and the sign-in check.
//!
//! Usernames and emails are kept lowercase so that `Alice` and `alice` are one
//! account. Passwords are hashed with argon2id (RustCrypto's defaults, the OWASP
//! baseline). The sign-in check never reveals whether an account exists: an
//! unknown login costs the same hash verification as a wrong password and gets
//! the same answer.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::store::{Store, StoreError, User, taken};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a person could not be added or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// Usernames: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    #[error(
        "invalid username {0:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidUsername(String),
    /// Not an email address.
    #[error("invalid email address {0:?}")]
    InvalidEmail(String),
    /// The display name is longer than 100 characters or holds control characters.
    #[error("the name must have at most 100 characters and no control characters")]
    InvalidName,
    /// Too short.
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// No such person.
    #[error("no user {0:?}")]
    NotFound(String),
    /// The username or email is taken.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::Taken(what),
            other => Self::Store(other),
        }
    }
}

/// A person to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The sign-in name.
    pub username: String,
    /// An email address, also usable to sign in.
    pub email: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// The password, in clear; only its hash is kept.
    pub password: String,
}

/// The sign-in name in canonical form, or why it is not one.
pub fn normalize_username(username: &str) -> Result<String, UserError> {
    let name = username.trim().to_lowercase();
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(name) } else { Err(UserError::InvalidUsername(username.to_owned())) }
}

/// The email address in canonical form, or why it is not one.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.contains('@') && domain.contains('.') && !domain.starts_with('.')
        });
    if ok { Ok(email) } else { Err(UserError::InvalidEmail(email)) }
}

/// The argon2id hash (PHC string) of `password`.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id hashing with defaults works")
        .to_string()
}

/// Whether `password` matches `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS { Err(UserError::WeakPassword) } else { Ok(()) }
}

/// Adds a person; nothing is stored if anything is invalid or taken.
pub async fn add_user<S: Store>(store: &S, new: NewUser, now: i64) -> Result<User, UserError> {
    let user = User {
        id: crate::random_token(16),
        username: normalize_username(&new.username)?,
        email: new.email.as_deref().map(normalize_email).transpose()?,
        name: display_name(new.name)?,
        created_at: now,
        ..User::default()
    };
    check_password(&new.password)?;
    ensure_free(store, &user).await?;
    let user = User { password_hash: hash_off_the_runtime(&new.password).await, ..user };
    store.insert_user(&user).await?;
    Ok(user)
}

/// Changes to a person's profile; `None` leaves a field as it is, `Some(None)`
/// clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// A new sign-in name.
    pub username: Option<String>,
    /// A new email address, or none.
    pub email: Option<Option<String>>,
    /// A new display name, or none.
    pub name: Option<Option<String>>,
}

/// Changes a person's username, email or name; nothing changes if anything is
/// invalid or taken.
pub async fn change_user<S: Store>(store: &S, id: &str, changes: UserChanges) -> Result<User, UserError> {
    let mut user = store.user(id).await?.ok_or_else(|| UserError::NotFound(id.to_owned()))?;
    if let Some(username) = changes.username {
        user.username = normalize_username(&username)?;
    }
    if let Some(email) = changes.email {
        let email = email.as_deref().map(normalize_email).transpose()?;
        // An address given here is not one a provider verified.
        if email != user.email {
            user.email_verified = false;
        }
        user.email = email;
    }
    if let Some(name) = changes.name {
        user.name = display_name(name)?;
    }
    ensure_free(store, &user).await?;
    // The store's unique indexes still decide a race with another change.
    if store.update_user(&user).await? { Ok(user) } else { Err(UserError::NotFound(id.to_owned())) }
}

/// A display name trimmed, or none when empty.
fn display_name(name: Option<String>) -> Result<Option<String>, UserError> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    match name {
        Some(n) if n.chars().count() > 100 || n.contains(char::is_control) => Err(UserError::InvalidName),
        other => Ok(other),
    }
}

/// Refuses a username or email that belongs to someone other than `user`.
async fn ensure_free<S: Store>(store: &S, user: &User) -> Result<(), UserError> {
    // Usernames cannot contain '@', so a username never collides with an email.
    let logins = [Some((&user.username, taken::USERNAME)), user.email.as_ref().map(|e| (e, taken::EMAIL))];
    for (login, what) in logins.into_iter().flatten() {
        if store.find_user_by_login(login).await?.is_some_and(|other| other.id != user.id) {
            return Err(UserError::Taken(what));
        }
    }
    Ok(())
}

/// The person `login` (username or email) names.
pub async fn find<S: Store>(store: &S, login: &str) -> Result<User, UserError> {
    store
        .find_user_by_login(&login.trim().to_lowercase())
        .await?
        .ok_or_else(|| UserError::NotFound(login.to_owned()))
}

/// Sets a person's password.
pub async fn set_password<S: Store>(store: &S, login: &str, password: &str) -> Result<(), UserError> {
    let user = find(store, login).await?;
    set_password_of(store, &user.id, password).await.map_err(|error| match error {
        UserError::NotFound(_) => UserError::NotFound(login.to_owned()),
        other => other,
    })
}

/// Sets the password of the person with this id and ends their browser
/// sessions (whoever knew the old password must sign in again). Tokens already
/// issued to apps stay until they expire or are revoked.
pub async fn set_password_of<S: Store>(store: &S, id: &str, password: &str) -> Result<(), UserError> {
    check_password(password)?;
    if !store.set_password_hash(id, &hash_off_the_runtime(password).await).await? {
        return Err(UserError::NotFound(id.to_owned()));
    }
    store.delete_sessions_of(id).await?;
    Ok(())
}

/// Removes a person.
pub async fn remove_user<S: Store>(store: &S, login: &str) -> Result<User, UserError> {
    let user = find(store, login).await?;
    if store.delete_user(&user.id, crate::now()).await? {
        Ok(user)
    } else {
        Err(UserError::NotFound(login.to_owned()))
    }
}

/// The one answer to a failed sign-in, whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the username, email or password is not right")]
pub struct InvalidCredentials;

/// The person whose login and password these are.
pub async fn sign_in<S: Store>(
    store: &S,
    login: &str,
    password: &str,
) -> Result<Result<User, InvalidCredentials>, StoreError> {
    let user = store.find_user_by_login(&login.trim().to_lowercase()).await?;
    Ok(check_sign_in(user, password).await)
}

/// `user` (the person a login named, if any), when `password` is theirs. No
/// person costs the same as a wrong password.
pub async fn check_sign_in(user: Option<User>, password: &str) -> Result<User, InvalidCredentials> {
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = check_off_the_runtime(hash, password.to_owned()).await;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(InvalidCredentials),
    }
}

/// The bucket counting failed sign-ins for the account of the person with
/// this id, from browsers they have not signed in with before (see
/// [`crate::sessions`]).
pub fn account_bucket(user_id: &str) -> String {
    format!("account:id:{user_id}")
}

/// Lets the person `login` names sign in again at once from any browser:
/// forgets the failed sign-ins counted against their account.
pub async fn unlock<S: Store>(store: &S, login: &str) -> Result<User, UserError> {
    let user = find(store, login).await?;
    unlock_id(store, &user.id).await?;
    Ok(user)
}

/// [`unlock`], by the person's id; whether they exist.
pub async fn unlock_id<S: Store>(store: &S, id: &str) -> Result<bool, StoreError> {
    if store.user(id).await?.is_none() {
        return Ok(false);
    }
    store.clear_attempts(&account_bucket(id)).await?;
    Ok(true)
}

/// Checks `password` against `hash` (or, when there is no such person, against
/// a decoy hash, so the time taken does not tell whether the account exists).
///
/// argon2id takes tens of milliseconds of CPU and 19 MiB of memory by design, so
/// it runs on the blocking pool, never on the async workers (one sign-in would
/// stall every other request), and only as many at once as there are CPUs (a
/// flood of sign-ins queues instead of taking the memory of hundreds).
async fn check_off_the_runtime(hash: Option<String>, password: String) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    off_the_runtime(move || {
        // No person, or one with no password (they sign in at an identity
        // provider): the decoy's work all the same, and no match, so that the
        // time taken tells neither apart from a wrong password.
        let real = hash.filter(|hash| !hash.is_empty());
        let decoy = || DECOY.get_or_init(|| hash_password(&crate::random_token(16))).as_str();
        let matches = verify_password(real.as_deref().unwrap_or_else(decoy), &password);
        matches && real.is_some()
    })
    .await
    .unwrap_or(false)
}

/// [`hash_password`] on the blocking pool, for the same reasons.
async fn hash_off_the_runtime(password: &str) -> String {
    let owned = password.to_owned();
    match off_the_runtime(move || hash_password(&owned)).await {
        Some(hash) => hash,
        None => hash_password(password),
    }
}

/// Runs argon2id work on the blocking pool, at most one job per CPU at once;
/// `None` if it could not run there.
async fn off_the_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static AT_ONCE: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let permits = AT_ONCE.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get().max(2)))
    });
    let _permit = permits.acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails() {
        assert_eq!(normalize_username(" Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("a.b_c-1").unwrap(), "a.b_c-1");
        for bad in ["", "-alice", "al ice", "alice@example.com", "élise", &"a".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalize_email(" Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in ["alice", "@example.com", "alice@", "alice@example", "a b@example.com", "a@b@example.com"]
        {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_argon2id() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(hash, hash_password("correct horse"), "salted");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
    }
}
