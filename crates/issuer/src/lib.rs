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
