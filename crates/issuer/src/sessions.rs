//! Browsers: sign-in sessions, known browsers and sign-in rate limits (form
//! tokens are in [`crate::forms`]).
//!
//! - A **session** is a random 256-bit cookie value; the store keeps only its
//!   hash. A new one is made at every sign-in (no fixation).
//! - A browser a person signed in with gets a **known-browser cookie**: their id
//!   and a random browser id, under an HMAC keyed from the key-encryption key
//!   (so it cannot be made up, and every instance agrees on it), kept 180 days.
//! - **Sign-in limits** count failures in fixed windows kept in the store, so
//!   several instances share them. From a browser that is not known for the
//!   account, failures count per account (by the person's id whatever login
//!   names them; for a login nobody has, by what was typed, so the limit says
//!   nothing about whether the account exists) and per client address. From a
//!   browser known for the account, they count for that browser alone. So
//!   however many addresses an attacker has, they get
//!   `sign_in_failures_per_account` guesses per window per account (5 per 15
//!   minutes: 20 an hour), and while they spend them, the person still signs in
//!   from a browser they used before. A person locked out on a new browser is
//!   let in by `agentgate users unlock` (or the management API).

use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::OAuthError;
use crate::store::{Session, Store, User};
use crate::{Issuer, hash_secret, random_token, users};

/// The session cookie.
pub const SESSION_COOKIE: &str = "agentgate_session";
/// The per-browser cookie form tokens are bound to.
pub const BROWSER_COOKIE: &str = "agentgate_browser";
/// The cookie that says a browser was signed in with, and by whom.
pub const KNOWN_COOKIE: &str = "agentgate_known";
/// How long a browser stays known after its last sign-in (180 days).
pub const KNOWN_BROWSER_SECS: i64 = 180 * 24 * 3600;

/// How a sign-in attempt ended.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in: the cookie values to set, and who.
    SignedIn {
        /// The session cookie value (shown only now).
        cookie: String,
        /// The known-browser cookie value, to set (again) for this person.
        known: String,
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
    /// starts a session. `known` is the browser's known-browser cookie, if it
    /// sent one. A limited attempt does not even check the password.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        address: Option<IpAddr>,
        known: Option<&str>,
        now: i64,
    ) -> Result<SignInOutcome, OAuthError> {
        let s = &self.settings;
        let login = login.trim().to_lowercase();
        let user = self.store.find_user_by_login(&login).await?;
        // Known only for the person the login names.
        let browser = known
            .and_then(|cookie| self.known_browser(cookie))
            .filter(|(user_id, _)| user.as_ref().is_some_and(|u| u.id == *user_id))
            .map(|(_, browser)| browser);
        let buckets: Vec<(String, i64)> = match (&user, &browser) {
            (Some(user), Some(browser)) => {
                vec![(format!("browser:{}:{browser}", user.id), s.sign_in_failures_per_account)]
            }
            _ => {
                let account = match &user {
                    Some(user) => users::account_bucket(&user.id),
                    None => format!("account:login:{login}"),
                };
                let mut buckets = vec![(account, s.sign_in_failures_per_account)];
                buckets.extend(address.map(|ip| (format!("address:{ip}"), s.sign_in_failures_per_address)));
                buckets
            }
        };
        for (bucket, limit) in &buckets {
            let (failures, window_start) = self.store.attempts(bucket, now, s.sign_in_window).await?;
            if failures >= *limit {
                return Ok(SignInOutcome::Limited(window_start + s.sign_in_window - now));
            }
        }
        match users::check_sign_in(user, password).await {
            Ok(user) => {
                // What this browser counted: its own failures, or (a browser not
                // known yet, which proved the password) the account's.
                self.store.clear_attempts(&buckets[0].0).await?;
                let (cookie, session) = self.start_session(&user.id, now, now).await?;
                let known = self.known_cookie(&user.id, &browser.unwrap_or_else(|| random_token(16)));
                Ok(SignInOutcome::SignedIn { cookie, known, session, user: Box::new(user) })
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

    /// Starts a browser session for the person `user_id`, who proved who
    /// they are at `auth_time` (a password now, an identity provider's sign-in
    /// then): the session cookie's value and the session.
    pub async fn start_session(
        &self,
        user_id: &str,
        auth_time: i64,
        now: i64,
    ) -> Result<(String, Session), OAuthError> {
        let cookie = random_token(32);
        let session = Session {
            id_hash: hash_secret(&cookie),
            user_id: user_id.to_owned(),
            auth_time: auth_time.min(now),
            expires_at: now + self.settings.session_ttl,
        };
        self.store.insert_session(&session).await?;
        Ok((cookie, session))
    }

    /// The known-browser cookie of a browser, for a person.
    pub fn known_cookie(&self, user_id: &str, browser: &str) -> String {
        let tag = hmac::sign(&self.known_key, &known_text(user_id, browser));
        format!("{user_id}.{browser}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whom a known-browser cookie names, and the browser's id; `None` when it
    /// is not one this issuer made.
    fn known_browser(&self, cookie: &str) -> Option<(String, String)> {
        let mut parts = cookie.split('.');
        let (Some(user_id), Some(browser), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.known_key, &known_text(user_id, browser), &tag).ok()?;
        Some((user_id.to_owned(), browser.to_owned()))
    }
}

/// What a known-browser cookie signs.
fn known_text(user_id: &str, browser: &str) -> Vec<u8> {
    crate::forms::framed(&["agentgate known browser v1", user_id, browser])
}
