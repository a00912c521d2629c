//! What was revoked lately, in memory, so the MCP servers of this issuer
//! refuse revoked tokens at once without reading the database on every call.
//!
//! An access token is a JWT: a resource server that checks its signature
//! accepts it until it expires, whatever happened since. The issuer knows
//! better. Every revocation is written to the store's `revocations` table in
//! the transaction that revokes — a token family (code replay, refresh-token
//! reuse, a disconnected app, `/revoke` of a refresh token), one access token
//! (`/revoke`), a removed app, a removed person — and [`Revocations`] holds
//! those of the last access-token lifetime. The issuer adds its own at once;
//! every instance (and a CLI command's change of a running server's data) is
//! read again every two seconds by [`Issuer::maintain`](crate::Issuer::maintain).
//!
//! The guard asks [`Revocations::covers`] on every request through
//! [`RevocationCheck`]: a few hash lookups, no I/O.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use agentgate_guard::{AuthInfo, RevocationCheck};
use serde_json::Value;

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revoked {
    /// A token family: every token issued from one authorization.
    Family,
    /// One access token, by its `jti`.
    Token,
    /// An app, removed: every token issued to it before.
    App,
    /// A person, removed: every token issued for them before.
    Person,
}

impl Revoked {
    const ALL: [Revoked; 4] = [Revoked::Family, Revoked::Token, Revoked::App, Revoked::Person];

    /// The name the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Family => "family",
            Self::Token => "token",
            Self::App => "client",
            Self::Person => "person",
        }
    }

    /// The kind the store names `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One revocation, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it names.
    pub kind: Revoked,
    /// Its id (family id, `jti`, client id, person id).
    pub id: String,
    /// When (seconds since the epoch).
    pub revoked_at: i64,
}

/// How far before the newest read the next read begins: a revocation
/// committed a little after the time it carries, or stamped by an instance
/// whose clock is a little behind, is still read.
pub(crate) const READ_OVERLAP_SECS: i64 = 30;

/// The revocations of the last access-token lifetime.
#[derive(Debug)]
pub struct Revocations {
    /// Per kind: id → when it was revoked.
    lists: RwLock<[HashMap<String, i64>; 4]>,
    /// When the store was last read (seconds), once it has been.
    read_at: Mutex<Option<i64>>,
    /// How long a revocation matters: the longest an access token it covers
    /// can still be accepted.
    keep_secs: i64,
}

impl Revocations {
    /// Revocations kept for `keep_secs` seconds.
    pub fn new(keep_secs: i64) -> Self {
        Self { lists: RwLock::new(Default::default()), read_at: Mutex::new(None), keep_secs }
    }

    /// Whether a token with these claims is revoked: its family, itself, its
    /// app or its person. An app or a person counts only for tokens issued
    /// (`iat`) no later than it was removed: an app known by its metadata
    /// document keeps its id when it comes back.
    ///
    /// ```
    /// use agentgate_issuer::revocations::{Revocation, Revocations, Revoked};
    /// let list = Revocations::new(600);
    /// list.add([Revocation { kind: Revoked::Family, id: "f1".into(), revoked_at: 100 }], 100);
    /// assert!(list.covers("alice", Some("app"), Some("f1.x"), 90));
    /// assert!(!list.covers("alice", Some("app"), Some("f2.x"), 90));
    /// ```
    pub fn covers(&self, sub: &str, client_id: Option<&str>, jti: Option<&str>, iat: i64) -> bool {
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let listed = |kind: Revoked, id: &str| lists[kind.index()].get(id).copied();
        let family = jti.and_then(crate::tokens::family_of_jti);
        family.is_some_and(|f| listed(Revoked::Family, f).is_some())
            || jti.is_some_and(|j| listed(Revoked::Token, j).is_some())
            || client_id.and_then(|c| listed(Revoked::App, c)).is_some_and(|at| iat <= at)
            || listed(Revoked::Person, sub).is_some_and(|at| iat <= at)
    }

    /// Adds revocations; forgets those older than `now` minus the keeping time.
    pub fn add(&self, revocations: impl IntoIterator<Item = Revocation>, now: i64) {
        let oldest = now - self.keep_secs;
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        for list in lists.iter_mut() {
            list.retain(|_, at| *at >= oldest);
        }
        for revocation in revocations {
            if revocation.revoked_at >= oldest {
                lists[revocation.kind.index()].insert(revocation.id, revocation.revoked_at);
            }
        }
    }

    /// Where the next read of the store begins, when it is made at `now`.
    pub(crate) fn read_from(&self, now: i64) -> i64 {
        let read_at = *self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        match read_at {
            Some(at) => at - READ_OVERLAP_SECS,
            None => now - self.keep_secs,
        }
    }

    /// Records a read of the store begun at `now`.
    pub(crate) fn read_done(&self, now: i64) {
        let mut read_at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        *read_at = Some(read_at.map_or(now, |at| at.max(now)));
    }

    /// How many revocations are kept.
    pub fn len(&self) -> usize {
        self.lists.read().unwrap_or_else(|e| e.into_inner()).iter().map(HashMap::len).sum()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The guard's question, answered from memory.
impl RevocationCheck for Revocations {
    fn is_revoked(&self, who: &AuthInfo) -> bool {
        let jti = who.claims.get("jti").and_then(Value::as_str);
        let iat = who.claims.get("iat").and_then(Value::as_i64).unwrap_or(i64::MIN);
        self.covers(&who.subject, who.client_id.as_deref(), jti, iat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(kind: Revoked, id: &str, at: i64) -> Revocation {
        Revocation { kind, id: id.into(), revoked_at: at }
    }

    #[test]
    fn each_kind_covers_its_tokens() {
        let list = Revocations::new(600);
        list.add(
            [
                revoked(Revoked::Family, "fam", 1000),
                revoked(Revoked::Token, "solo.jti", 1000),
                revoked(Revoked::App, "gone-app", 1000),
                revoked(Revoked::Person, "gone-person", 1000),
            ],
            1000,
        );
        assert!(list.covers("alice", Some("app"), Some("fam.abc"), 990), "its family");
        assert!(list.covers("alice", Some("app"), Some("solo.jti"), 990), "itself");
        assert!(list.covers("alice", Some("gone-app"), Some("other.x"), 990), "its app");
        assert!(list.covers("gone-person", Some("app"), Some("other.x"), 990), "its person");
        assert!(!list.covers("alice", Some("app"), Some("other.x"), 990), "none of them");
        assert!(!list.covers("alice", None, None, 990));
        // A family id is the part of the jti before the dot, not a prefix.
        assert!(!list.covers("alice", Some("app"), Some("famous.x"), 990));
    }

    #[test]
    fn a_removed_app_or_person_covers_only_tokens_issued_before() {
        let list = Revocations::new(600);
        list.add([revoked(Revoked::App, "https://agent.example/doc.json", 1000)], 1000);
        assert!(list.covers("alice", Some("https://agent.example/doc.json"), Some("f.x"), 1000));
        assert!(
            !list.covers("alice", Some("https://agent.example/doc.json"), Some("f.x"), 1001),
            "came back"
        );
    }

    #[test]
    fn revocations_are_forgotten_once_no_token_they_cover_can_live() {
        let list = Revocations::new(600);
        list.add([revoked(Revoked::Family, "old", 1000), revoked(Revoked::Family, "new", 1500)], 1500);
        assert_eq!(list.len(), 2);
        list.add([], 1601);
        assert_eq!(list.len(), 1, "600 s after it, 'old' covers nothing that lives");
        list.add([revoked(Revoked::Family, "ancient", 100)], 1601);
        assert_eq!(list.len(), 1, "one read late is not kept");
    }

    #[test]
    fn reads_overlap_and_never_go_back() {
        let list = Revocations::new(600);
        assert_eq!(list.read_from(10_000), 9_400, "the first read covers a whole lifetime");
        list.read_done(10_000);
        assert_eq!(list.read_from(10_002), 10_000 - READ_OVERLAP_SECS);
        list.read_done(9_990);
        assert_eq!(list.read_from(10_002), 10_000 - READ_OVERLAP_SECS, "a late read does not move it back");
        for kind in Revoked::ALL {
            assert_eq!(Revoked::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Revoked::parse("nonsense"), None);
    }
}
