//! Telling the upstream who is calling — the person, never the agent's token.
//!
//! The guard in front has verified the agent's access token and put the
//! caller's [`AuthInfo`] into the request; the token itself stops there. A
//! route then tells its upstream one of three things ([`Identity`]):
//!
//! - nothing: the upstream serves everyone alike (or, on stdio, runs one
//!   process per person and knows the person by its `{person}` environment);
//! - [headers](Identity::Headers): `X-Agentgate-Sub`, `X-Agentgate-Client-Id`,
//!   `X-Agentgate-Scope`, `X-Agentgate-Issuer` and `X-Agentgate-Username`,
//!   for an upstream on loopback or a Unix socket that trusts whatever reaches it (anyone who
//!   can reach it could send them, so the configuration refuses them for any
//!   other address; headers by those names from the agent are always dropped);
//! - [a token](Identity::Token) minted for that upstream alone: its own
//!   audience, the person's `sub`, the agent as `client_id` and as the actor
//!   (`act`, RFC 8693 §4.1), the scopes the person granted, a lifetime of a
//!   few minutes. An upstream that checks JWTs against the issuer's JWKS —
//!   with mcp-auth, the guard or any JWT library — accepts it as it would a
//!   token the agent got itself, and a token minted for one upstream is
//!   refused everywhere else, the gateway's own routes included (wrong
//!   audience).
//!
//! Minting costs a signature, so [`UpstreamTokens`] keeps each token while it
//! has more than [`REUSE_MARGIN`] to live and no longer than the agent's own.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentgate_guard::AuthInfo;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::fault::Fault;

/// The person's subject (`sub`).
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-agentgate-sub");
/// The agent's OAuth client id.
pub const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-agentgate-client-id");
/// The granted scopes, space-separated.
pub const SCOPE_HEADER: HeaderName = HeaderName::from_static("x-agentgate-scope");
/// The issuer that vouched for the caller.
pub const ISSUER_HEADER: HeaderName = HeaderName::from_static("x-agentgate-issuer");
/// The person's `preferred_username`, when the token carries it.
pub const USERNAME_HEADER: HeaderName = HeaderName::from_static("x-agentgate-username");

/// How long a minted token lives at most.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// A cached token is minted anew when it has less than this left.
pub const REUSE_MARGIN: Duration = Duration::from_secs(30);
/// The most tokens kept; past it, expired ones go, and if none has, all do.
const MAX_CACHED: usize = 10_000;

/// How a route tells its upstream who is calling.
#[derive(Clone, Default)]
pub enum Identity {
    /// Not at all.
    #[default]
    None,
    /// In `X-Agentgate-*` headers (upstreams on loopback or a Unix socket only).
    Headers,
    /// In a token minted for the upstream, as `Authorization: Bearer`.
    Token(Arc<UpstreamTokens>),
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::None => f.write_str("None"),
            Identity::Headers => f.write_str("Headers"),
            Identity::Token(tokens) => f.debug_tuple("Token").field(&tokens.audience).finish(),
        }
    }
}

impl Identity {
    /// Adds the caller's identity to `headers`, the request to the upstream.
    /// A request that reached here without a verified caller is refused: the
    /// route was built without the guard in front, and saying nothing would
    /// let the upstream take the request for anonymous.
    pub(crate) fn add(
        &self,
        route: &str,
        caller: Option<&AuthInfo>,
        headers: &mut HeaderMap,
    ) -> Result<(), Fault> {
        if matches!(self, Identity::None) {
            return Ok(());
        }
        let refused = |detail: &str| Fault::Identity { route: route.to_owned(), detail: detail.to_owned() };
        let caller = caller.ok_or_else(|| refused("no verified caller reached the gateway's route"))?;
        match self {
            Identity::None => {}
            Identity::Headers => {
                let value = |text: &str, what: &str| {
                    HeaderValue::from_str(text)
                        .map_err(|_| refused(&format!("the caller's {what} is not a header value")))
                };
                headers.insert(SUBJECT_HEADER, value(&caller.subject, "subject")?);
                headers.insert(ISSUER_HEADER, value(&caller.issuer, "issuer")?);
                headers.insert(SCOPE_HEADER, value(&caller.scopes.join(" "), "scope")?);
                if let Some(client_id) = &caller.client_id {
                    headers.insert(CLIENT_ID_HEADER, value(client_id, "client id")?);
                }
                if let Some(username) = caller.claims.get("preferred_username").and_then(|v| v.as_str()) {
                    headers.insert(USERNAME_HEADER, value(username, "username")?);
                }
            }
            Identity::Token(tokens) => {
                headers.insert(header::AUTHORIZATION, tokens.bearer_for(caller).map_err(|e| refused(&e))?);
            }
        }
        Ok(())
    }
}

/// What a route needs from an issuer to tell its upstream who is calling in
/// a token: one signed for `audience`, on behalf of `caller`, expiring at
/// `expires_at` (seconds since the epoch). agentgate's issuer is one; an
/// outside issuer would need RFC 8693 token exchange.
pub trait Minter: Send + Sync + 'static {
    /// The signed token, or why there is none (said to the agent: no secrets).
    fn mint(&self, caller: &AuthInfo, audience: &str, expires_at: i64) -> Result<String, String>;
}

/// Tokens for one upstream, minted on demand and reused while they last.
pub struct UpstreamTokens {
    minter: Box<dyn Minter>,
    audience: String,
    cache: Mutex<HashMap<Key, Minted>>,
}

/// Whose token: the person, the agent and the scopes. The audience is the
/// cache's own.
#[derive(Hash, PartialEq, Eq)]
struct Key {
    subject: String,
    client_id: Option<String>,
    scopes: Vec<String>,
}

struct Minted {
    bearer: HeaderValue,
    expires_at: i64,
}

impl UpstreamTokens {
    /// Tokens for the upstream known as `audience` (the `aud` it checks),
    /// signed by `minter`.
    pub fn new(minter: impl Minter, audience: impl Into<String>) -> Self {
        Self { minter: Box::new(minter), audience: audience.into(), cache: Mutex::new(HashMap::new()) }
    }

    /// The audience the tokens are for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// `Bearer <token>` for `caller`: a kept one while it has the margin left
    /// and outlives neither the agent's token nor its own lifetime, else a
    /// fresh one.
    fn bearer_for(&self, caller: &AuthInfo) -> Result<HeaderValue, String> {
        let now = unix_now();
        // Never outlive the agent's token: when it ends, so does the upstream's.
        let agent_ends = caller.expires_at.map(unix_secs).unwrap_or(i64::MAX);
        let key = Key {
            subject: caller.subject.clone(),
            client_id: caller.client_id.clone(),
            scopes: caller.scopes.clone(),
        };
        let margin = REUSE_MARGIN.as_secs() as i64;
        {
            let cache = self.cache.lock().expect("the token cache is never poisoned");
            if let Some(kept) = cache.get(&key)
                && kept.expires_at - now > margin
                && kept.expires_at <= agent_ends
            {
                return Ok(kept.bearer.clone());
            }
        }
        let expires_at = agent_ends.min(now + TOKEN_LIFETIME.as_secs() as i64);
        let token = self.minter.mint(caller, &self.audience, expires_at)?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the minted token is not a header value".to_owned())?;
        bearer.set_sensitive(true);
        if expires_at - now <= margin {
            // The agent's token is about to end: this one ends with it, unkept.
            return Ok(bearer);
        }
        let mut cache = self.cache.lock().expect("the token cache is never poisoned");
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, kept| kept.expires_at - now > margin);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, Minted { bearer: bearer.clone(), expires_at });
        Ok(bearer)
    }
}

fn unix_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn unix_now() -> i64 {
    unix_secs(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Mints `sub/audience/expiry/count`, and counts.
    struct Counting(Arc<AtomicUsize>);

    impl Minter for Counting {
        fn mint(&self, caller: &AuthInfo, audience: &str, expires_at: i64) -> Result<String, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(format!("{}/{audience}/{expires_at}/{n}", caller.subject))
        }
    }

    fn caller(subject: &str, client_id: &str, expires_in: u64) -> AuthInfo {
        AuthInfo {
            issuer: "https://as.example".into(),
            subject: subject.into(),
            client_id: Some(client_id.into()),
            audience: vec!["https://gw.example/memory".into()],
            scopes: vec!["mcp:tools".into()],
            expires_at: Some(SystemTime::now() + Duration::from_secs(expires_in)),
            claims: Arc::new(serde_json::Map::from_iter([("preferred_username".into(), "alice".into())])),
        }
    }

    fn headers_for(identity: &Identity, caller: Option<&AuthInfo>) -> Result<HeaderMap, Fault> {
        let mut headers = HeaderMap::new();
        identity.add("memory", caller, &mut headers)?;
        Ok(headers)
    }

    #[test]
    fn headers_name_the_person_and_the_agent() {
        let headers = headers_for(&Identity::Headers, Some(&caller("u1", "agent", 600))).unwrap();
        assert_eq!(headers[SUBJECT_HEADER], "u1");
        assert_eq!(headers[CLIENT_ID_HEADER], "agent");
        assert_eq!(headers[SCOPE_HEADER], "mcp:tools");
        assert_eq!(headers[ISSUER_HEADER], "https://as.example");
        assert_eq!(headers[USERNAME_HEADER], "alice");
        assert!(headers_for(&Identity::None, Some(&caller("u1", "agent", 600))).unwrap().is_empty());
    }

    #[test]
    fn without_a_verified_caller_nothing_is_said_for_anyone() {
        let tokens = Arc::new(UpstreamTokens::new(Counting(Default::default()), "http://up/mcp"));
        for identity in [Identity::Headers, Identity::Token(tokens)] {
            let fault = headers_for(&identity, None).unwrap_err();
            assert!(matches!(fault, Fault::Identity { .. }), "{fault}");
        }
    }

    #[test]
    fn a_subject_that_is_no_header_value_is_refused_not_mangled() {
        let fault = headers_for(&Identity::Headers, Some(&caller("u1\nx-agentgate-sub: root", "agent", 600)))
            .unwrap_err();
        assert!(fault.to_string().contains("subject"), "{fault}");
    }

    #[test]
    fn a_token_is_minted_once_per_person_agent_and_scopes_and_never_outlives_the_agents() {
        let count = Arc::new(AtomicUsize::new(0));
        let tokens = UpstreamTokens::new(Counting(count.clone()), "http://up/mcp");
        let alice = caller("alice", "agent", 3600);
        let first = tokens.bearer_for(&alice).unwrap();
        assert!(first.is_sensitive(), "kept out of debug output");
        assert_eq!(tokens.bearer_for(&alice).unwrap(), first, "reused while it lasts");
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let text = first.to_str().unwrap();
        let expires_at: i64 = text.split('/').nth_back(1).unwrap().parse().unwrap();
        assert!((expires_at - unix_now() - TOKEN_LIFETIME.as_secs() as i64).abs() <= 1, "{text}");
        assert!(text.starts_with("Bearer alice/http://up/mcp/"), "{text}");

        assert_ne!(tokens.bearer_for(&caller("bob", "agent", 3600)).unwrap(), first, "another person");
        assert_ne!(tokens.bearer_for(&caller("alice", "other", 3600)).unwrap(), first, "another agent");
        let mut fewer = alice.clone();
        fewer.scopes.push("mcp:admin".into());
        assert_ne!(tokens.bearer_for(&fewer).unwrap(), first, "other scopes");

        // An agent token ending in 100 s gets one that ends with it, and a
        // token that would outlive the caller's is not reused for it.
        let short = caller("alice", "agent", 100);
        let bearer = tokens.bearer_for(&short).unwrap();
        assert_ne!(bearer, first);
        let expires_at: i64 = bearer.to_str().unwrap().split('/').nth_back(1).unwrap().parse().unwrap();
        assert!((expires_at - unix_now() - 100).abs() <= 1);
        // One about to end gets a token that ends with it, minted each time.
        let ending = caller("alice", "agent", 10);
        assert_ne!(tokens.bearer_for(&ending).unwrap(), tokens.bearer_for(&ending).unwrap());
    }
}
