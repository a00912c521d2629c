//! Binding MCP sessions to the subject that opened them.
//!
//! A session id is not a credential: anyone who learns it must not be able to use
//! someone else's session with their own valid token. Rather than keep a table of
//! session owners (which would grow, need eviction, and be lost on restart), the
//! guard *seals* each session id it sees leaving the server: the client receives
//! `<id>.<tag>`, where the tag is an HMAC-SHA256 over the issuer, the subject and
//! the id, under a key only this guard knows. On the way in, the tag is checked
//! against the identity of the token on that request, in constant time, and the
//! inner server sees its own id again. A token of another subject does not match,
//! and the request is answered 404, exactly as for a session that does not exist —
//! which, for that subject, it does not.
//!
//! Only `Mcp-Session-Id` is bound. A server that also replays SSE streams by
//! `Last-Event-ID` alone (rmcp with an event store, outside sessions) must bind
//! its event ids to the subject itself; the `whoami` server keeps no event store.

use aws_lc_rs::{constant_time, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AuthInfo;

/// The header MCP's Streamable HTTP transport uses for sessions.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";

/// 128 bits of tag are plenty against guessing and keep the header short.
const TAG_BYTES: usize = 16;

pub(crate) struct SessionBinding {
    key: hmac::Key,
}

impl std::fmt::Debug for SessionBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionBinding(<key>)")
    }
}

impl SessionBinding {
    /// A binding with a fresh random key.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).expect("the system random generator works");
        Self::with_key(&secret)
    }

    /// A binding with a given key (for several instances sharing sessions).
    pub fn with_key(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn tag(&self, id: &str, who: &AuthInfo) -> [u8; TAG_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [who.issuer.as_bytes(), who.subject.as_bytes(), id.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(&ctx.sign().as_ref()[..TAG_BYTES]);
        out
    }

    /// The id the client sees for the server's session `id`.
    pub fn seal(&self, id: &str, who: &AuthInfo) -> String {
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(self.tag(id, who)))
    }

    /// The server's session id, if `presented` was sealed for `who`.
    pub fn open<'a>(&self, presented: &'a str, who: &AuthInfo) -> Option<&'a str> {
        let (id, tag) = presented.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        constant_time::verify_slices_are_equal(&tag, &self.tag(id, who)).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(sub: &str) -> AuthInfo {
        AuthInfo {
            issuer: "https://as".into(),
            subject: sub.into(),
            client_id: None,
            audience: vec![],
            scopes: vec![],
            expires_at: None,
            claims: Default::default(),
        }
    }

    #[test]
    fn only_the_owner_opens() {
        let binding = SessionBinding::random();
        let sealed = binding.seal("abc-123", &who("alice"));
        assert_eq!(binding.open(&sealed, &who("alice")), Some("abc-123"));
        assert_eq!(binding.open(&sealed, &who("bob")), None);
        assert_eq!(binding.open("abc-123", &who("alice")), None, "an unsealed id is refused");
        assert_eq!(SessionBinding::random().open(&sealed, &who("alice")), None, "another key");
        let forged = format!("other-id.{}", sealed.rsplit_once('.').unwrap().1);
        assert_eq!(binding.open(&forged, &who("alice")), None, "the tag covers the id");
    }

    #[test]
    fn fields_cannot_be_shifted() {
        // ("ab", "c") and ("a", "bc") must not produce the same tag.
        let binding = SessionBinding::random();
        let mut x = who("c");
        x.issuer = "ab".into();
        let mut y = who("bc");
        y.issuer = "a".into();
        let sealed = binding.seal("id", &x);
        assert_eq!(binding.open(&sealed, &y), None);
    }
}
