//! # agentgate-issuer
//!
//! The authorization server of agentgate: the part of the system that, in the
//! tutorial, Logto plays. It is being built in steps; this crate holds so far:
//!
//! - [`keys`]: the signing keys — made on first start, stored with their private
//!   part sealed under a key-encryption key ([`seal`]), rotated with the old public
//!   key kept in the JWKS until every token it signed has expired;
//! - [`users`] and [`clients`]: people and apps, and the rules for each;
//! - [`pkce`]: PKCE verification (S256 only);
//! - [`revocations`]: what was revoked lately, in memory, for the MCP servers
//!   of this issuer to refuse at once;
//! - [`store`]: the database (SQLite through sqlx, with migrations), written in
//!   portable SQL for the PostgreSQL backend to come.

#![warn(missing_docs)]

pub mod authorize;
pub mod client_assertions;
pub mod client_documents;
pub mod clients;
pub mod consent;
pub mod error;
pub mod forms;
pub mod http;
mod issuer;
pub mod keys;
pub mod logout;
pub mod management;
pub mod pkce;
mod recent_codes;
pub mod registration;
pub mod revocations;
pub mod scopes;
pub mod seal;
pub mod sessions;
mod settings;
pub mod store;
pub mod tokens;
pub mod ui;
pub mod upstream;
pub mod users;

pub use error::{ErrorCode, OAuthError};
pub use issuer::Issuer;
pub use settings::Settings;

/// `bytes` random bytes in base64url: identifiers and secrets.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a secret (code, refresh token, session id) in base64url: what the
/// store keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Seconds since the Unix epoch, the unit of every timestamp in the store.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub fn rfc3339(secs: i64) -> String {
    // Civil-from-days (H. Hinnant's algorithm), to avoid a date library for one format.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_300_000), "2026-11-21T22:26:40Z");
    }
}
