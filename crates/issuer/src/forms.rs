//! Form tokens: every form a page shows carries one, so that what is posted is
//! known to come from that page, in that browser.
//!
//! - The **browser token** (account page: disconnect, sign-out): an HMAC, under
//!   a key derived from the key-encryption key, of a random per-browser cookie.
//!   Another site can make a browser post a form but cannot read that cookie,
//!   so it cannot forge the token; every instance sharing the key agrees on it.
//! - A **page token** (sign-in, consent): bound to the one page that was shown —
//!   the browser, what the page is for (the authorization request it carries;
//!   for a consent page also the session it was shown to and the scopes it
//!   asked for), when it was shown, and a random nonce — by the same kind of
//!   HMAC. It is accepted once (the store keeps its nonce, so every instance
//!   agrees) and only for a few minutes. A decision posted for a request whose
//!   page was never shown, posted again, posted by another browser or session,
//!   or posted late, is never taken as the person's.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::OAuthError;
use crate::store::Store;
use crate::{Issuer, random_token};

/// How long a sign-in page's form is accepted after it was shown.
pub const SIGN_IN_FORM_SECS: i64 = 15 * 60;
/// How long a consent page's decision is accepted after it was shown.
pub const CONSENT_FORM_SECS: i64 = 5 * 60;
/// How far in the future a page may seem to have been shown (another
/// instance's clock).
const CLOCK_SKEW_SECS: i64 = 60;

/// The page a form was on: a page token is accepted only for the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormPage<'a> {
    /// The sign-in page of an authorization request (`""`: of none).
    SignIn {
        /// The request it continues, as carried in the form.
        request: &'a str,
    },
    /// A sign-in page's button that begins a sign-in at an identity provider.
    SignInWith {
        /// The request it continues, as carried in the form.
        request: &'a str,
        /// The provider's id.
        provider: &'a str,
    },
    /// The consent page of an authorization request.
    Consent {
        /// The request it decides, as carried in the form.
        request: &'a str,
        /// The hash of the session it was shown to.
        session: &'a str,
        /// The scopes it asked for, space-separated, as shown.
        asked: &'a str,
    },
}

impl FormPage<'_> {
    fn lifetime(&self) -> i64 {
        match self {
            Self::SignIn { .. } | Self::SignInWith { .. } => SIGN_IN_FORM_SECS,
            Self::Consent { .. } => CONSENT_FORM_SECS,
        }
    }

    /// Every field, framed (see [`framed`]).
    fn signed_text(&self, browser_id: &str, shown_at: i64, nonce: &str) -> Vec<u8> {
        let (kind, request, session, asked) = match *self {
            Self::SignIn { request } => ("sign-in", request, "", ""),
            // The provider's id in the session slot: no page has both.
            Self::SignInWith { request, provider } => ("sign-in-with", request, provider, ""),
            Self::Consent { request, session, asked } => ("consent", request, session, asked),
        };
        let shown_at = shown_at.to_string();
        framed(&["agentgate page form v1", browser_id, kind, request, session, asked, &shown_at, nonce])
    }
}

/// `parts` as one text to sign, each preceded by its length, so that no two
/// lists of parts give the same text.
pub(crate) fn framed(parts: &[&str]) -> Vec<u8> {
    let mut text = Vec::new();
    for part in parts {
        text.extend_from_slice(&(part.len() as u64).to_be_bytes());
        text.extend_from_slice(part.as_bytes());
    }
    text
}

/// Why a page's form was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormRefusal {
    /// Not a token of this page in this browser (forged, another browser's,
    /// another session's, another request's, or none).
    Foreign,
    /// Shown too long ago.
    Expired,
    /// Already posted once.
    Used,
}

impl<S: Store> Issuer<S> {
    /// The browser token of a browser.
    pub fn form_token(&self, browser_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.form_key, browser_id.as_bytes()))
    }

    /// Whether `token` is the browser token of `browser_id` (constant time).
    pub fn form_token_valid(&self, browser_id: Option<&str>, token: Option<&str>) -> bool {
        let (Some(browser_id), Some(token)) = (browser_id, token) else { return false };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else { return false };
        hmac::verify(&self.form_key, browser_id.as_bytes(), &tag).is_ok()
    }

    /// A page token for `page`, shown now to `browser_id`.
    pub fn page_token(&self, browser_id: &str, page: FormPage<'_>, now: i64) -> String {
        let nonce = random_token(16);
        let tag = hmac::sign(&self.form_key, &page.signed_text(browser_id, now, &nonce));
        format!("{now}.{nonce}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Takes a page token posted by `browser_id` with a form of `page`, once:
    /// `Ok(Err(_))` says why it is refused. Nothing is recorded for a token
    /// that is foreign or expired.
    pub async fn accept_page_token(
        &self,
        browser_id: Option<&str>,
        token: Option<&str>,
        page: FormPage<'_>,
        now: i64,
    ) -> Result<Result<(), FormRefusal>, OAuthError> {
        let (Some(browser_id), Some(token)) = (browser_id, token) else {
            return Ok(Err(FormRefusal::Foreign));
        };
        let mut parts = token.splitn(3, '.');
        let (Some(shown_at), Some(nonce), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(Err(FormRefusal::Foreign));
        };
        let (Ok(shown_at), Ok(tag)) = (shown_at.parse::<i64>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return Ok(Err(FormRefusal::Foreign));
        };
        let signed = page.signed_text(browser_id, shown_at, nonce);
        if hmac::verify(&self.form_key, &signed, &tag).is_err() || shown_at > now + CLOCK_SKEW_SECS {
            return Ok(Err(FormRefusal::Foreign));
        }
        let until = shown_at + page.lifetime();
        if until < now {
            return Ok(Err(FormRefusal::Expired));
        }
        let first = self.store.first_use(&format!("page form\n{nonce}"), until).await?;
        Ok(if first { Ok(()) } else { Err(FormRefusal::Used) })
    }
}
