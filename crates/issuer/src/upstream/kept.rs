//! A provider's refresh token, kept for the MCP servers behind the gateway.
//!
//! Agents never get a provider's tokens. An MCP server behind the gateway may
//! still need to call the provider's APIs for the person — their Logto
//! organizations, their GitHub repositories. When a provider's configuration
//! says `keep_refresh_token`, each sign-in there keeps the refresh token it
//! got in the person's link (`user_links.refresh_token`), sealed with the
//! key-encryption key as signing keys are (AES-256-GCM) and bound to that
//! account: the database alone does not give it away, and a sealed token
//! copied onto another person's row does not open.
//! [`Issuer::provider_access_token`] trades it for an access token of the
//! provider's when the gateway asks.
//!
//! Access tokens are kept in memory while they have more than a minute left,
//! and five minutes at most (an unlinked account stops being served within
//! that on other instances). One refresh at a time runs per person and
//! provider: a provider that rotates refresh tokens (RFC 9700 §4.14.2) may
//! take a second use of the old one for theft and end the grant. A rotated
//! token replaces the kept one only if that is still the one that was used
//! (compare and set), so instances never overwrite a newer token with an older
//! one. Two instances that refresh at the same moment can still both present
//! the old token; a provider that ends the grant then makes the person sign in
//! there once more, which keeps a new one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::{Provider, UpstreamError};
use crate::Issuer;
use crate::store::{Store, StoreError};

/// How long an access token is assumed to live when the provider does not
/// say (`expires_in`).
const UNSAID_LIFETIME_SECS: i64 = 300;
/// An access token with less than this left is not handed out again.
const MARGIN_SECS: i64 = 60;
/// The longest an access token is handed out again from memory.
const KEPT_AT_MOST_SECS: i64 = 300;
/// The most people and providers whose access tokens are kept in memory.
const MAX_CACHED: usize = 10_000;

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
        "no {provider} sign-in is kept for this person: they sign in with {provider} once more \
         (signing out first), and it is kept"
    )]
    NotKept {
        /// The provider's name.
        provider: String,
    },
    /// The provider could not be reached or answered what cannot be used.
    #[error(transparent)]
    Provider(#[from] UpstreamError),
}

impl From<StoreError> for ProviderTokenError {
    fn from(error: StoreError) -> Self {
        ProviderTokenError::Provider(error.into())
    }
}

/// An access token handed out, and until when it is handed out again.
type Slot = Arc<tokio::sync::Mutex<Option<(ProviderAccess, i64)>>>;

/// The access tokens handed out lately, per person and provider; each slot
/// is locked while its token is refreshed.
#[derive(Default)]
pub(super) struct AccessCache(Mutex<HashMap<(String, String), Slot>>);

impl AccessCache {
    fn slot(&self, user_id: &str, provider: &str) -> Slot {
        let mut slots = self.0.lock().expect("the access cache is never poisoned");
        if slots.len() >= MAX_CACHED {
            // Those nobody is refreshing go; they are fetched again if needed.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry((user_id.to_owned(), provider.to_owned())).or_default().clone()
    }

    /// Forgets what was handed out for `user_id` (at `provider`, or at all).
    pub(super) fn forget(&self, user_id: &str, provider: Option<&str>) {
        let mut slots = self.0.lock().expect("the access cache is never poisoned");
        slots.retain(|(user, at), _| user != user_id || provider.is_some_and(|p| p != at));
    }
}

/// What a sealed refresh token is bound to: its account.
fn sealing_context(issuer: &str, subject: &str) -> String {
    serde_json::json!(["agentgate provider refresh token v1", issuer, subject]).to_string()
}

impl<S: Store> Issuer<S> {
    /// At a sign-in through `provider` as its account `subject` (the person
    /// `user_id` here), keeps the `refresh_token` it gave, sealed, when the
    /// provider's configuration says so; with the setting off, drops any kept
    /// before.
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
                let sealed = self.kek.seal(token.as_bytes(), &sealing_context(issuer, subject));
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
                self.store.keep_refresh_token(issuer, subject, None, None).await?;
            }
        }
        Ok(())
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
        let slot = self.upstream.access.slot(user_id, &provider.config.id);
        let mut slot = slot.lock().await;
        if let Some((access, until)) = slot.as_ref()
            && *until > now
        {
            return Ok(access.clone());
        }
        *slot = None;
        let issuer = &provider.config.issuer;
        let (subject, sealed) = self.store.kept_refresh_token(user_id, issuer).await?.ok_or_else(not_kept)?;
        let context = sealing_context(issuer, &subject);
        let Some(refresh_token) =
            self.kek.open(&sealed, &context).ok().and_then(|t| String::from_utf8(t).ok())
        else {
            tracing::error!(
                provider = %provider.config.id,
                "a kept refresh token does not open with this key-encryption key (or not for this account)"
            );
            return Err(not_kept());
        };
        let metadata = provider.metadata().await?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
        let tokens = self.token_request(provider, &metadata, &form).await?;
        match tokens.error.as_deref() {
            None => {}
            Some("invalid_grant") => {
                // Ended at the provider: the kept token is of no more use.
                self.store.keep_refresh_token(issuer, &subject, None, Some(&sealed)).await?;
                tracing::info!(provider = %provider.config.id, "the provider ended a kept grant; it is dropped");
                return Err(not_kept());
            }
            Some(error) => {
                let detail = format!("its token endpoint refused the kept refresh token ({error})");
                return Err(provider.bad(&detail).into());
            }
        }
        let access_token =
            tokens.access_token.ok_or_else(|| provider.bad("its token answer has no access_token"))?;
        if let Some(rotated) = tokens.refresh_token.filter(|t| *t != refresh_token) {
            let resealed = self.kek.seal(rotated.as_bytes(), &context);
            if !self.store.keep_refresh_token(issuer, &subject, Some(&resealed), Some(&sealed)).await? {
                tracing::warn!(
                    provider = %provider.config.id,
                    "a rotated refresh token was not kept: another sign-in or instance replaced it first"
                );
            }
        }
        let expires_at = now + tokens.expires_in.filter(|s| *s > 0).unwrap_or(UNSAID_LIFETIME_SECS);
        let access = ProviderAccess { access_token, expires_at };
        let until = (expires_at - MARGIN_SECS).min(now + KEPT_AT_MOST_SECS);
        if until > now {
            *slot = Some((access.clone(), until));
        }
        Ok(access)
    }
}
