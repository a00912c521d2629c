//! Who comes in through an identity provider, and as whom.
//!
//! A person is their account at the provider — `(provider, subject)` — never
//! an email address: two providers may vouch for one address, a provider may
//! let anyone claim any address unverified, and an address changes hands. So:
//!
//! - an account already tied to a person signs that person in, with the
//!   profile the provider gives now (name, address, whether it is verified,
//!   picture);
//! - an account tied to nobody makes a new person when the provider's
//!   [`Admission`] lets them in, and never takes over an existing one, even
//!   when the addresses match: a person ties an account to themselves while
//!   signed in (a link), not by having the same address;
//! - when anything is refused, nothing is stored.

use super::{Admission, ProviderConfig, UpstreamError};
use crate::store::{Store, StoreError, User, UserLink, taken};
use crate::users;

/// What a provider says of the person, once its answer is verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The provider's stable id of the person.
    pub subject: String,
    /// A name to make a username from (`preferred_username`, GitHub's login).
    pub username: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// The address, as the provider gives it.
    pub email: Option<String>,
    /// Whether the provider says the address is the person's.
    pub email_verified: bool,
    /// A picture's URL (https only).
    pub picture: Option<String>,
}

impl Profile {
    /// The profile's fields on `user`: what each sign-in refreshes. Only an
    /// address the provider verified is kept (an unverified one could be
    /// anyone's: kept, it would squat on that address here); an address that
    /// is not an address, or a name that is not a name, is left out rather
    /// than refused: the person still is who the provider says.
    fn onto(&self, user: User) -> User {
        let email = self
            .email
            .as_deref()
            .filter(|_| self.email_verified)
            .and_then(|e| users::normalize_email(e).ok());
        let name = self.name.clone().filter(|n| n.chars().count() <= 100 && !n.chars().any(char::is_control));
        let email_verified = email.is_some();
        User { email, name, email_verified, picture: self.picture.clone(), ..user }
    }
}

/// The person `profile` is at `provider`: found by their link, or made when
/// the provider's admission allows; with `link_user`, the signed-in person
/// that account is being tied to.
pub(super) async fn person_for<S: Store>(
    store: &S,
    provider: &ProviderConfig,
    profile: &Profile,
    link_user: Option<&str>,
    now: i64,
) -> Result<User, UpstreamError> {
    if let Some(user_id) = link_user {
        return link(store, provider, profile, user_id, now).await;
    }
    if let Some((user, link)) = store.user_by_link(&provider.issuer, &profile.subject).await? {
        // A person the rule let in is let in while the rule still lets them
        // in (someone who left the allowed domain, say); one tied by hand is not
        // held to it.
        if link.made_at_sign_in && matches!(provider.admit, Admission::EmailDomains(_)) {
            admit(provider, profile)?;
        }
        return refreshed(store, provider, profile, user, now).await;
    }
    admit(provider, profile)?;
    // Any address that is someone's here, verified by the provider or not, is
    // no way in: the sign-in is refused rather than tied to them.
    if let Some(email) = profile.email.as_deref().and_then(|e| users::normalize_email(e).ok())
        && store.find_user_by_login(&email).await?.is_some()
    {
        return Err(UpstreamError::EmailTaken { provider: provider.name.clone() });
    }
    let fresh = profile.onto(User { id: crate::random_token(16), created_at: now, ..User::default() });
    let tie = UserLink {
        issuer: provider.issuer.clone(),
        subject: profile.subject.clone(),
        provider: provider.id.clone(),
        made_at_sign_in: true,
        user_id: fresh.id.clone(),
        created_at: now,
        signed_in_at: Some(now),
    };
    let base = username_base(profile);
    for attempt in 0..20 {
        let username = match attempt {
            0 => base.clone(),
            n if n < 10 => format!("{base}-{}", n + 1),
            _ => format!("{base}-{}", crate::random_token(4).to_lowercase().replace(['_', '-'], "x")),
        };
        let candidate = User { username, ..fresh.clone() };
        match store.insert_user_with_link(&candidate, &tie).await {
            Ok(()) => {
                tracing::info!(provider = %provider.id, user = %candidate.id, "a person came in through an identity provider");
                return Ok(candidate);
            }
            Err(StoreError::Conflict(taken::USERNAME)) => continue,
            // Another instance tied the account meanwhile: that person is the one.
            Err(StoreError::Conflict(taken::PROVIDER_ACCOUNT)) => {
                if let Some((theirs, _)) = store.user_by_link(&provider.issuer, &profile.subject).await? {
                    return Ok(theirs);
                }
                return Err(UpstreamError::Store("the account was tied and untied meanwhile".into()));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(UpstreamError::EmailTaken { provider: provider.name.clone() });
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(UpstreamError::Store("no free username could be made".into()))
}

/// Whether a person the provider vouches for may come in (as a new person, or
/// again when the rule made them).
pub(super) fn admit(provider: &ProviderConfig, profile: &Profile) -> Result<(), UpstreamError> {
    let refused = |domains| UpstreamError::NotAdmitted { provider: provider.name.clone(), domains };
    match &provider.admit {
        Admission::Anyone => Ok(()),
        Admission::Existing => Err(refused(None)),
        Admission::EmailDomains(domains) => {
            let domain = profile
                .email
                .as_deref()
                .filter(|_| profile.email_verified)
                .and_then(|email| email.rsplit_once('@'))
                .map(|(_, domain)| domain.to_lowercase());
            match domain {
                Some(domain) if domains.contains(&domain) => Ok(()),
                _ => Err(refused(Some(domains.join(", ")))),
            }
        }
    }
}

/// A known person, their profile refreshed. An address the provider now gives
/// that another person here uses is not taken over: the old one stays.
async fn refreshed<S: Store>(
    store: &S,
    provider: &ProviderConfig,
    profile: &Profile,
    user: User,
    now: i64,
) -> Result<User, UpstreamError> {
    let updated = profile.onto(user.clone());
    match store.refresh_profile(&updated, &provider.issuer, &profile.subject, now).await {
        Ok(()) => Ok(updated),
        Err(StoreError::Conflict(_)) => {
            tracing::info!(provider = %provider.id, "the provider's address is another person's here; kept the old");
            let kept = User { email: user.email.clone(), email_verified: user.email_verified, ..updated };
            store.refresh_profile(&kept, &provider.issuer, &profile.subject, now).await?;
            Ok(kept)
        }
        Err(error) => Err(error.into()),
    }
}

/// Ties the account to the signed-in person `user_id`.
async fn link<S: Store>(
    store: &S,
    provider: &ProviderConfig,
    profile: &Profile,
    user_id: &str,
    now: i64,
) -> Result<User, UpstreamError> {
    let user = store.user(user_id).await?.ok_or(UpstreamError::NoSignInInProgress)?;
    if let Some((owner, _)) = store.user_by_link(&provider.issuer, &profile.subject).await? {
        return if owner.id == user.id {
            Ok(user)
        } else {
            Err(UpstreamError::LinkTaken { provider: provider.name.clone() })
        };
    }
    let tie = UserLink {
        issuer: provider.issuer.clone(),
        subject: profile.subject.clone(),
        provider: provider.id.clone(),
        made_at_sign_in: false,
        user_id: user.id.clone(),
        created_at: now,
        signed_in_at: Some(now),
    };
    match store.insert_user_link(&tie).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(_)) => Err(UpstreamError::LinkTaken { provider: provider.name.clone() }),
        Err(error) => Err(error.into()),
    }
}

/// A username from what the provider calls the person: their chosen name,
/// else the part of their address before `@`, else `user`; only the
/// characters a username may have, at most 40 of them.
pub(super) fn username_base(profile: &Profile) -> String {
    let hint = profile
        .username
        .clone()
        .or_else(|| {
            profile.email.as_deref().and_then(|e| e.split_once('@')).map(|(local, _)| local.to_owned())
        })
        .unwrap_or_default()
        .to_lowercase();
    let kept: String =
        hint.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(40).collect();
    let trimmed = kept.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() { "user".to_owned() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(email: &str, verified: bool) -> Profile {
        Profile {
            subject: "s".into(),
            email: Some(email.into()),
            email_verified: verified,
            ..Profile::default()
        }
    }

    fn provider(admit: Admission) -> ProviderConfig {
        ProviderConfig {
            id: "p".into(),
            name: "P".into(),
            issuer: "https://p.example".into(),
            kind: super::super::ProviderKind::OpenIdConnect,
            client_id: "c".into(),
            client_secret: super::super::ClientSecret::new("s"),
            scopes: vec!["openid".into()],
            admit,
            keep_refresh_token: false,
        }
    }

    #[test]
    fn admission_by_domain_needs_a_verified_address_there() {
        let domains = provider(Admission::EmailDomains(vec!["example.com".into()]));
        assert!(admit(&domains, &profile("alice@example.com", true)).is_ok());
        assert!(admit(&domains, &profile("alice@EXAMPLE.com", true)).is_ok());
        assert!(admit(&domains, &profile("alice@example.com", false)).is_err(), "unverified");
        assert!(admit(&domains, &profile("alice@evil-example.com", true)).is_err());
        assert!(admit(&domains, &profile("alice@example.com.evil", true)).is_err());
        let existing = provider(Admission::Existing);
        assert_eq!(
            admit(&existing, &profile("alice@example.com", true)),
            Err(UpstreamError::NotAdmitted { provider: "P".into(), domains: None })
        );
        assert!(admit(&provider(Admission::Anyone), &Profile::default()).is_ok());
    }

    #[test]
    fn usernames_are_made_from_what_the_provider_says() {
        let named = |username: Option<&str>, email: Option<&str>| Profile {
            username: username.map(str::to_owned),
            email: email.map(str::to_owned),
            ..Profile::default()
        };
        assert_eq!(username_base(&named(Some("Alice.L"), None)), "alice.l");
        assert_eq!(username_base(&named(None, Some("bob+x@example.com"))), "bobx");
        assert_eq!(username_base(&named(Some("__ø"), None)), "user");
        assert_eq!(username_base(&named(None, None)), "user");
        assert!(users::normalize_username(&username_base(&named(Some(&"a".repeat(90)), None))).is_ok());
    }

    #[test]
    fn only_a_verified_address_and_a_real_name_are_kept() {
        let user = Profile {
            email: Some("not an address".into()),
            email_verified: true,
            name: Some("Alice\u{7}".into()),
            ..Profile::default()
        }
        .onto(User::default());
        assert_eq!((user.email, user.email_verified, user.name), (None, false, None));
        let unverified = profile("alice@example.com", false).onto(User::default());
        assert_eq!(
            (unverified.email, unverified.email_verified),
            (None, false),
            "an unverified address squats nothing"
        );
        let verified = profile("Alice@Example.com", true).onto(User::default());
        assert_eq!((verified.email.as_deref(), verified.email_verified), (Some("alice@example.com"), true));
    }
}
