//! A provider's refresh token, kept for the MCP servers behind the gateway.
//!
//! Agents never get a provider's tokens. An MCP server behind the gateway may
//! still need to call the provider's APIs for the person (an API of their
//! company's that trusts Logto, their GitHub repositories). When a provider's
//! configuration says `keep_refresh_token`, each sign-in there keeps the
//! refresh token it got in the person's link (`user_links.refresh_token`),
//! sealed with the key-encryption key as signing keys are (AES-256-GCM) and
//! bound to that account and that person: the database alone does not give it
//! away, and a sealed token copied onto another row, or a row pointed at
//! another person, does not open. [`Issuer::provider_access_token`] trades it
//! for an access token of the provider's when the gateway asks.
//!
//! Access tokens are kept in memory while they have more than a minute left,
//! and five minutes at most (an account unlinked through another instance, or
//! with the command line, stops being served within that). One refresh at a
//! time runs per person and provider: a provider that rotates refresh tokens
//! (RFC 9700 §4.14.2) may take a second use of the old one for theft and end
//! the grant. The rotated token is stored before anything else is done with
//! the answer, and replaces the kept one only if that is still the one that
//! was used (compare and set), so an instance never overwrites a newer token
//! with an older one. An instance that finds its token refused because
//! another one rotated it meanwhile tries once more with the newer one. Two
//! instances that refresh at the very same moment can still both present the
//! old token; a provider that ends the grant for that makes the person sign in
//! there once more.
//!
//! Unlinking an account drops its token and revokes it at the provider
//! (RFC 7009), when the provider has a revocation endpoint.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Provider, UpstreamError, basic_auth};
use crate::Issuer;
use crate::store::{Store, StoreError};

/// How long an access token is assumed to live when the provider does not
/// say (`expires_in`).
const UNSAID_LIFETIME_SECS: i64 = 300;
/// The longest lifetime believed (a larger `expires_in` counts as this).
const LONGEST_LIFETIME_SECS: i64 = 86_400;
/// An access token with less than this left is not handed out again.
const MARGIN_SECS: i64 = 60;
/// The longest an access token is handed out again from memory.
const KEPT_AT_MOST_SECS: i64 = 300;
/// The most people and providers whose access tokens are kept in memory.
const MAX_CACHED: usize = 10_000;
/// The token-endpoint errors that say the grant is over (GitHub says
/// `bad_refresh_token`, with HTTP 200).
const GRANT_ENDED: [&str; 2] = ["invalid_grant", "bad_refresh_token"];

/// An access token of a provider's, for one person.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderAccess {
    /// The token, to send to the provider's APIs as `Authorization: Bearer`.
    pub access_token: String,
    /// When it expires (seconds since the epoch), as far as the provider said.
    pub expires_at: i64,
}

impl fmt::Debug for ProviderAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderAccess")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why there is no access token of the provider's for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderTokenError {
    /// No provider has this id.
    #[error("there is no identity provider by that name here")]
    UnknownProvider,
    /// Nothing is kept for the person: they never signed in there since the
    /// provider keeps refresh tokens, it gave none, or it ended the grant.
    #[error(
        "your {provider} account is not connected here for this yet: sign in with {provider} (or, if you \
         sign in another way, link {provider} from your account page), and it is kept"
    )]
    NotKept {
        /// The provider's name.
        provider: String,
    },
    /// The provider could not be reached or answered what cannot be used.
    #[error(transparent)]
    Provider(UpstreamError),
    /// This server's store failed.
    #[error("the server's database failed: {0}")]
    Store(String),
}

impl From<UpstreamError> for ProviderTokenError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::Store(detail) => ProviderTokenError::Store(detail),
            other => ProviderTokenError::Provider(other),
        }
    }
}

impl From<StoreError> for ProviderTokenError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "store error while handing out a provider's access token");
        ProviderTokenError::Store(error.to_string())
    }
}

/// An access token handed out, and until when it is handed out again.
type Slot = Arc<tokio::sync::Mutex<Option<(ProviderAccess, i64)>>>;

/// The access tokens handed out lately, per person and provider; each slot
/// is locked while its token is refreshed.
#[derive(Default)]
pub(super) struct AccessCache(Mutex<HashMap<(String, String), Slot>>);

impl AccessCache {
    fn slot(&self, user_id: &str, provider: &str, now: i64) -> Slot {
        let mut slots = self.0.lock().expect("the access cache is never poisoned");
        if slots.len() >= MAX_CACHED {
            // Spent ones go first; if that is not enough, all that nobody
            // is using (they are fetched again when needed).
            let spent =
                |slot: &Slot| slot.try_lock().is_ok_and(|kept| kept.as_ref().is_none_or(|k| k.1 <= now));
            slots.retain(|_, slot| Arc::strong_count(slot) > 1 || !spent(slot));
            if slots.len() >= MAX_CACHED {
                slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
        }
        slots.entry((user_id.to_owned(), provider.to_owned())).or_default().clone()
    }

    /// Forgets what was handed out for `user_id` (at `provider`, or at all).
    pub(super) fn forget(&self, user_id: &str, provider: Option<&str>) {
        let mut slots = self.0.lock().expect("the access cache is never poisoned");
        slots.retain(|(user, at), _| user != user_id || provider.is_some_and(|p| p != at));
    }
}

/// What a sealed refresh token is bound to: its account there and its
/// person here.
fn sealing_context(issuer: &str, subject: &str, user_id: &str) -> String {
    serde_json::json!(["agentgate provider refresh token v1", issuer, subject, user_id]).to_string()
}

/// The lifetime an `expires_in` says, in seconds, within reason: a number
/// or a numeric string (some providers send one), else unsaid.
fn lifetime_of(expires_in: Option<&Value>) -> i64 {
    let said = match expires_in {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match said {
        Some(secs) if secs.is_finite() => (secs as i64).clamp(0, LONGEST_LIFETIME_SECS),
        _ => UNSAID_LIFETIME_SECS,
    }
}

impl<S: Store> Issuer<S> {
    /// At a sign-in through `provider` as its account `subject` (the person
    /// `user_id` here), keeps the `refresh_token` it gave, sealed, when the
    /// provider's configuration says so; with the setting off, drops (and
    /// revokes) any kept before.
    pub(super) async fn keep_provider_refresh_token(
        &self,
        provider: &Provider,
        user_id: &str,
        subject: &str,
        refresh_token: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let issuer = &provider.config.issuer;
        match (provider.config.keep_refresh_token, refresh_token) {
            (true, Some(token)) => {
                let sealed = self.kek.seal(token.as_bytes(), &sealing_context(issuer, subject, user_id));
                self.store.keep_refresh_token(issuer, subject, Some(&sealed), None).await?;
                self.upstream.access.forget(user_id, Some(&provider.config.id));
            }
            // Many providers give one only at the first consent: the kept
            // one stays.
            (true, None) => tracing::warn!(
                provider = %provider.config.id,
                "the provider gave no refresh token at this sign-in; the one kept before, if any, stays \
                 (OpenID Connect providers give one for the scope offline_access)"
            ),
            (false, _) => {
                if let Some(old) = self.open_kept(provider, user_id, Some(subject)).await? {
                    self.store.keep_refresh_token(issuer, subject, None, None).await?;
                    self.revoke_at_provider(provider, &old).await;
                }
            }
        }
        Ok(())
    }

    /// The refresh token kept for `user_id` at `provider` (for its account
    /// `subject`, if named), opened, with its account and sealed form.
    async fn open_kept(
        &self,
        provider: &Provider,
        user_id: &str,
        subject: Option<&str>,
    ) -> Result<Option<KeptToken>, StoreError> {
        let issuer = &provider.config.issuer;
        let Some((account, sealed)) = self.store.kept_refresh_token(user_id, issuer).await? else {
            return Ok(None);
        };
        if subject.is_some_and(|s| s != account) {
            return Ok(None);
        }
        let opened = self.kek.open(&sealed, &sealing_context(issuer, &account, user_id));
        match opened.ok().and_then(|t| String::from_utf8(t).ok()) {
            Some(token) => Ok(Some(KeptToken { subject: account, sealed, token })),
            None => {
                tracing::error!(
                    provider = %provider.config.id,
                    "a kept refresh token does not open with this key-encryption key for this person"
                );
                Ok(None)
            }
        }
    }

    /// Unties the account `subject` of `issuer` from `user_id`, at anyone's
    /// request (the person, an operator): its kept refresh token is revoked
    /// at the provider (RFC 7009) and forgotten here. Whether it was theirs.
    pub async fn drop_provider_account(
        &self,
        user_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let provider = self.upstream.list.iter().find(|p| p.config.issuer == issuer);
        let kept = match provider {
            Some(provider) => self.open_kept(provider, user_id, Some(subject)).await?,
            None => None,
        };
        if !self.store.delete_user_link(user_id, issuer, subject).await? {
            return Ok(false);
        }
        self.upstream.access.forget(user_id, None);
        if let (Some(provider), Some(kept)) = (provider, kept) {
            self.revoke_at_provider(provider, &kept).await;
        }
        Ok(true)
    }

    /// Asks the provider to revoke `kept` (RFC 7009), if it has a revocation
    /// endpoint; a failure is logged, as the token is gone from here anyway.
    async fn revoke_at_provider(&self, provider: &Provider, kept: &KeptToken) {
        let revoked = async {
            let metadata = provider.metadata().await?;
            let Some(endpoint) = metadata.other.get("revocation_endpoint").and_then(Value::as_str) else {
                return Ok(false);
            };
            let endpoint = provider.endpoint(Some(endpoint), "revocation_endpoint")?;
            let form = [("token", kept.token.as_str()), ("token_type_hint", "refresh_token")];
            let config = &provider.config;
            let request = self.upstream.http.post(endpoint).header(
                reqwest::header::AUTHORIZATION,
                basic_auth(&config.client_id, &config.client_secret.0),
            );
            provider.fetch(request.form(&form)).await.map(|_| true)
        };
        match revoked.await {
            Ok(true) => tracing::info!(provider = %provider.config.id, "revoked a kept refresh token there"),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                provider = %provider.config.id,
                error = %error,
                "could not revoke a dropped refresh token at the provider"
            ),
        }
    }

    /// An access token of `provider`'s for the person `user_id`, from the
    /// refresh token kept at their last sign-in there: for an MCP server
    /// behind the gateway to call the provider's APIs on their behalf. The
    /// same token is handed out again while it has more than a minute left
    /// (five minutes at most).
    ///
    /// A provider that refuses the kept token (`invalid_grant`: the person
    /// revoked it there, or it expired) has it dropped:
    /// [`ProviderTokenError::NotKept`] until they sign in there again.
    ///
    /// Run it to its end: the provider may rotate the refresh token, and a
    /// caller that is dropped half-way (a request whose client went away)
    /// could lose the new one; such callers run it in a task of their own.
    pub async fn provider_access_token(
        &self,
        user_id: &str,
        provider: &str,
        now: i64,
    ) -> Result<ProviderAccess, ProviderTokenError> {
        let provider = self.upstream.get(provider).map_err(|_| ProviderTokenError::UnknownProvider)?;
        let not_kept = || ProviderTokenError::NotKept { provider: provider.name() };
        if !provider.config.keep_refresh_token {
            return Err(not_kept());
        }
        let slot = self.upstream.access.slot(user_id, &provider.config.id, now);
        let mut slot = slot.lock().await;
        if let Some((access, until)) = slot.as_ref()
            && *until > now
        {
            return Ok(access.clone());
        }
        *slot = None;
        // A second try, when the first token turns out to have been rotated
        // by another instance meanwhile.
        for _ in 0..2 {
            let kept = self.open_kept(provider, user_id, None).await?.ok_or_else(not_kept)?;
            match self.refresh_kept(provider, user_id, &kept).await? {
                Refreshed::Ended { newer_kept: true } => continue,
                Refreshed::Ended { newer_kept: false } => return Err(not_kept()),
                Refreshed::Access { access_token, lifetime } => {
                    let access = ProviderAccess { access_token, expires_at: now.saturating_add(lifetime) };
                    let until = (access.expires_at - MARGIN_SECS).min(now + KEPT_AT_MOST_SECS);
                    if until > now {
                        *slot = Some((access.clone(), until));
                    }
                    return Ok(access);
                }
            }
        }
        Err(not_kept())
    }

    /// One refresh grant with `kept` (RFC 6749 §6): the rotated refresh
    /// token stored first, then the access token.
    async fn refresh_kept(
        &self,
        provider: &Provider,
        user_id: &str,
        kept: &KeptToken,
    ) -> Result<Refreshed, ProviderTokenError> {
        let issuer = &provider.config.issuer;
        let metadata = provider.metadata().await?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", kept.token.as_str())];
        let tokens = self.token_request(provider, &metadata, &form).await?;
        if let Some(error) = tokens.error.as_deref() {
            if GRANT_ENDED.contains(&error) {
                // Over at the provider: the kept token is of no more use,
                // unless another instance has rotated it since it was read.
                let dropped =
                    self.store.keep_refresh_token(issuer, &kept.subject, None, Some(&kept.sealed)).await?;
                if dropped {
                    tracing::info!(provider = %provider.config.id, "the provider ended a kept grant; it is dropped");
                }
                return Ok(Refreshed::Ended { newer_kept: !dropped });
            }
            let code: String = error.chars().filter(char::is_ascii_graphic).take(64).collect();
            let detail = format!("its token endpoint refused the kept refresh token ({code})");
            return Err(provider.bad(&detail).into());
        }
        if let Some(rotated) = tokens.refresh_token.as_deref().filter(|t| *t != kept.token) {
            let resealed =
                self.kek.seal(rotated.as_bytes(), &sealing_context(issuer, &kept.subject, user_id));
            match self
                .store
                .keep_refresh_token(issuer, &kept.subject, Some(&resealed), Some(&kept.sealed))
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    provider = %provider.config.id,
                    "a rotated refresh token was not kept: another sign-in or instance replaced it first"
                ),
                // The access token is still good for now; the next refresh
                // will find the old token refused and ask for a sign-in.
                Err(error) => tracing::error!(error = %error, "a rotated refresh token could not be stored"),
            }
        }
        if tokens.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(provider.bad("its access token is not a bearer token").into());
        }
        let access_token =
            tokens.access_token.ok_or_else(|| provider.bad("its token answer has no access_token"))?;
        Ok(Refreshed::Access { access_token, lifetime: lifetime_of(tokens.expires_in.as_ref()) })
    }
}

/// A kept refresh token, opened.
struct KeptToken {
    /// Its account at the provider.
    subject: String,
    /// As stored (what a compare-and-set compares).
    sealed: String,
    /// The token.
    token: String,
}

/// What one refresh grant came to.
enum Refreshed {
    /// An access token, living `lifetime` seconds.
    Access { access_token: String, lifetime: i64 },
    /// The provider refused the token; `newer_kept` when another one has been
    /// stored since it was read.
    Ended { newer_kept: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lifetime_is_a_number_or_a_numeric_string_within_reason() {
        assert_eq!(lifetime_of(Some(&json!(3600))), 3600);
        assert_eq!(lifetime_of(Some(&json!("3599"))), 3599);
        assert_eq!(lifetime_of(Some(&json!(3600.5))), 3600);
        assert_eq!(lifetime_of(Some(&json!(0))), 0, "expired already: not handed out again");
        assert_eq!(lifetime_of(Some(&json!(-5))), 0);
        assert_eq!(lifetime_of(Some(&json!(i64::MAX))), LONGEST_LIFETIME_SECS);
        assert_eq!(lifetime_of(Some(&json!("soon"))), UNSAID_LIFETIME_SECS);
        assert_eq!(lifetime_of(None), UNSAID_LIFETIME_SECS);
    }

    #[test]
    fn a_sealed_token_is_bound_to_its_account_and_its_person() {
        let (kek, _) = crate::seal::KeyEncryptionKey::generate();
        let sealed = kek.seal(b"rt", &sealing_context("https://idp", "s-1", "alice"));
        assert!(kek.open(&sealed, &sealing_context("https://idp", "s-1", "alice")).is_ok());
        for (issuer, subject, user) in [
            ("https://idp", "s-1", "bob"),
            ("https://idp", "s-2", "alice"),
            ("https://other", "s-1", "alice"),
        ] {
            assert!(
                kek.open(&sealed, &sealing_context(issuer, subject, user)).is_err(),
                "{issuer} {subject} {user}"
            );
        }
    }
}
