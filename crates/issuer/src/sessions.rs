//! Browsers: sign-in sessions and sign-in rate limits (form tokens are in
//! [`crate::forms`]).
//!
//! - A **session** is a random 256-bit cookie value; the store keeps only its
//!   hash. A new one is made at every sign-in (no fixation).
//! - **Sign-in limits** count failures per account (whatever was typed, so the
//!   limit says nothing about whether the account exists) and per client
//!   address, in fixed windows kept in the store, so several instances share them.

use std::net::IpAddr;

use crate::error::OAuthError;
use crate::store::{Session, Store, User};
use crate::{Issuer, hash_secret, random_token, users};

/// The session cookie.
pub const SESSION_COOKIE: &str = "agentgate_session";
/// The per-browser cookie form tokens are bound to.
pub const BROWSER_COOKIE: &str = "agentgate_browser";

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in: the cookie value to set, and who.
    SignedIn {
        /// The session cookie value (shown only now).
        cookie: String,
        /// The session.
        session: Session,
        /// The person.
        user: Box<User>,
    },
    /// Wrong login or password (the same answer for both).
    Invalid,
    /// Too many failures; try again after this many seconds.
    Limited(i64),
}

impl<S: Store> Issuer<S> {
    /// The live session behind a cookie value.
    pub async fn session_for(&self, cookie: Option<&str>, now: i64) -> Result<Option<Session>, OAuthError> {
        let Some(cookie) = cookie else { return Ok(None) };
        let session = self.store.session(&hash_secret(cookie)).await?;
        Ok(session.filter(|s| s.expires_at > now))
    }

    /// Ends the session behind a cookie value.
    pub async fn end_session(&self, cookie: &str) -> Result<(), OAuthError> {
        Ok(self.store.delete_session(&hash_secret(cookie)).await?)
    }

    /// Checks a login and password under the rate limits and, when right,
    /// starts a session. A limited attempt does not even check the password.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        address: Option<IpAddr>,
        now: i64,
    ) -> Result<SignInOutcome, OAuthError> {
        let s = &self.settings;
        let account = format!("account:{}", login.trim().to_lowercase());
        let address = address.map(|ip| format!("address:{ip}"));
        let mut buckets = vec![(account.clone(), s.sign_in_failures_per_account)];
        buckets.extend(address.map(|a| (a, s.sign_in_failures_per_address)));
        for (bucket, limit) in &buckets {
            let (failures, window_start) = self.store.attempts(bucket, now, s.sign_in_window).await?;
            if failures >= *limit {
                return Ok(SignInOutcome::Limited(window_start + s.sign_in_window - now));
            }
        }
        match users::sign_in(&self.store, login, password).await? {
            Ok(user) => {
                self.store.clear_attempts(&account).await?;
                let cookie = random_token(32);
                let session = Session {
                    id_hash: hash_secret(&cookie),
                    user_id: user.id.clone(),
                    auth_time: now,
                    expires_at: now + s.session_ttl,
                };
                self.store.insert_session(&session).await?;
                Ok(SignInOutcome::SignedIn { cookie, session, user: Box::new(user) })
            }
            Err(users::InvalidCredentials) => {
                for (bucket, _) in &buckets {
                    self.store.count_attempt(bucket, now, s.sign_in_window).await?;
                }
                tracing::info!("failed sign-in");
                Ok(SignInOutcome::Invalid)
            }
        }
    }
}
