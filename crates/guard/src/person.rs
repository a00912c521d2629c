//! The person behind a request: the identity claims (`sub`, `username`,
//! `name`, `email`…) the issuer shares about whoever the token speaks for.
//!
//! An access token says who the caller is (`sub`) and what the call may do
//! (`client_id`, `scope`, `aud`). Whether it also carries the person's profile
//! depends on the issuer: agentgate's issuer and node `oidc-provider` (with
//! `extraTokenClaims`) put the claims the person agreed to share into the
//! token; Logto, Keycloak without mappers and others put nothing. For those,
//! the guard can ask the issuer's userinfo endpoint once per token
//! ([`PersonClaims::Userinfo`]).
//!
//! A tool asks with [`Person::of`]. The guard never calls userinfo on its own:
//! only a tool that wants the person pays for it, once per token (the answer is
//! kept until the token expires, in a bounded memory), and callers that ask at
//! the same moment share one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::discovery::Discovery;
use crate::verify::cache::TokenHash;
use crate::{AuthError, AuthInfo, InvalidToken};

/// Where the guard finds the person's identity claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersonClaims {
    /// In the verified token itself (the default). In userinfo mode the
    /// token's claims *are* the userinfo answer.
    #[default]
    Token,
    /// From the issuer's userinfo endpoint, asked with the caller's token the
    /// first time a tool asks for the person, then kept until the token
    /// expires. For issuers whose JWT access tokens carry no profile.
    Userinfo,
}

/// The claims of OpenID Connect Core §5.1 (plus Logto's `username`): what a
/// token may say about the person, as opposed to about the token.
const IDENTITY_CLAIMS: [&str; 21] = [
    "sub",
    "username",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
];

/// Who a request is on behalf of, as the issuer describes them.
///
/// ```
/// use agentgate_guard::{AuthInfo, Person};
/// use serde_json::json;
///
/// let claims = json!({"sub": "u1", "preferred_username": "alice", "email": "alice@example.com",
///                     "scope": "mcp:tools", "client_id": "app"});
/// let who = AuthInfo {
///     issuer: "https://as.example".into(),
///     subject: "u1".into(),
///     client_id: Some("app".into()),
///     audience: vec![],
///     scopes: vec!["mcp:tools".into()],
///     expires_at: None,
///     claims: claims.as_object().unwrap().clone().into(),
/// };
/// let person = Person::from_token(&who);
/// assert_eq!(person.username(), Some("alice"));
/// assert_eq!(person.claims.get("scope"), None, "claims about the token are not the person's");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The subject (`sub`), the same as the token's.
    pub subject: String,
    /// The identity claims, `sub` included. `username` is filled from
    /// `preferred_username` when the issuer gives only that.
    pub claims: Map<String, Value>,
}

/// Why the person could not be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersonError {
    /// The request did not come through the guard: it carries no identity.
    #[error("the request carries no verified identity (is the guard in front of this service?)")]
    NotAuthenticated,
    /// The issuer's userinfo endpoint refused the token. Some issuers (Logto)
    /// accept only tokens meant for userinfo there, not a resource's token.
    #[error("the issuer's userinfo endpoint refused this token, so only the token's own claims are known")]
    Refused,
    /// The userinfo answer is about someone else (its `sub` differs).
    #[error("the issuer's userinfo answer names another subject")]
    OtherSubject,
    /// The issuer could not be asked now; a later call may work.
    #[error("the issuer's userinfo endpoint could not be asked: {0}")]
    Unavailable(String),
}

impl Person {
    /// The person behind a request that passed the guard, found as the guard
    /// was configured ([`GuardBuilder::person_claims`](crate::GuardBuilder::person_claims)).
    pub async fn of(parts: &http::request::Parts) -> Result<Person, PersonError> {
        let who = AuthInfo::from_parts(parts).ok_or(PersonError::NotAuthenticated)?;
        match parts.extensions.get::<PersonLookup>() {
            Some(lookup) => lookup.person(who).await,
            None => Ok(Person::from_token(who)),
        }
    }

    /// The identity claims a verified token itself carries.
    pub fn from_token(who: &AuthInfo) -> Person {
        Self::from_claims(&who.subject, &who.claims, |name| IDENTITY_CLAIMS.contains(&name))
    }

    /// Every claim a userinfo answer gives (it is all about the person).
    fn from_userinfo(subject: &str, claims: &Map<String, Value>) -> Result<Person, PersonError> {
        match claims.get("sub") {
            Some(Value::String(sub)) if sub == subject => Ok(Self::from_claims(subject, claims, |_| true)),
            _ => Err(PersonError::OtherSubject),
        }
    }

    fn from_claims(subject: &str, all: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> Person {
        let mut claims: Map<String, Value> =
            all.iter().filter(|(name, _)| keep(name)).map(|(k, v)| (k.clone(), v.clone())).collect();
        claims.insert("sub".into(), Value::String(subject.to_owned()));
        if !claims.contains_key("username")
            && let Some(preferred) = claims.get("preferred_username").cloned()
        {
            claims.insert("username".into(), preferred);
        }
        Person { subject: subject.to_owned(), claims }
    }

    /// `username` (or `preferred_username`), when shared.
    pub fn username(&self) -> Option<&str> {
        self.claims.get("username").and_then(Value::as_str)
    }

    /// `name`, when shared.
    pub fn name(&self) -> Option<&str> {
        self.claims.get("name").and_then(Value::as_str)
    }

    /// `email`, when shared.
    pub fn email(&self) -> Option<&str> {
        self.claims.get("email").and_then(Value::as_str)
    }
}

/// How many people a guard remembers from userinfo.
const CAPACITY: usize = 10_000;
/// How long a person is remembered when the token says nothing of its expiry.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

type Answer = Result<Arc<Map<String, Value>>, PersonError>;

/// One token's answer: filled once, by whichever caller asks first.
struct Slot {
    deadline: Instant,
    answer: Arc<OnceCell<Answer>>,
}

/// The userinfo answers of the guard's issuer, per token (by hash).
pub(crate) struct UserinfoPeople {
    discovery: Arc<Discovery>,
    slots: Mutex<HashMap<TokenHash, Slot>>,
}

impl std::fmt::Debug for UserinfoPeople {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserinfoPeople").field("issuer", &self.discovery.issuer()).finish_non_exhaustive()
    }
}

impl UserinfoPeople {
    pub fn new(discovery: Arc<Discovery>) -> Self {
        Self { discovery, slots: Mutex::new(HashMap::new()) }
    }

    /// The slot for a token, made when there is none (or an expired one).
    fn slot(&self, key: TokenHash, expires_at: Option<SystemTime>) -> Option<Arc<OnceCell<Answer>>> {
        let now = Instant::now();
        let ttl = match expires_at {
            Some(exp) => exp.duration_since(SystemTime::now()).ok()?,
            None => DEFAULT_TTL,
        };
        let mut slots = self.slots.lock().expect("not poisoned");
        if let Some(slot) = slots.get(&key)
            && slot.deadline > now
        {
            return Some(slot.answer.clone());
        }
        if slots.len() >= CAPACITY {
            slots.retain(|_, slot| slot.deadline > now);
            if slots.len() >= CAPACITY
                && let Some(victim) = slots.keys().next().copied()
            {
                slots.remove(&victim);
            }
        }
        let answer = Arc::new(OnceCell::new());
        slots.insert(key, Slot { deadline: now + ttl, answer: answer.clone() });
        Some(answer)
    }

    /// Forgets a token's slot if it still holds `answer` (a failure worth retrying).
    fn forget(&self, key: &TokenHash, answer: &Arc<OnceCell<Answer>>) {
        let mut slots = self.slots.lock().expect("not poisoned");
        if slots.get(key).is_some_and(|slot| Arc::ptr_eq(&slot.answer, answer)) {
            slots.remove(key);
        }
    }

    async fn ask(&self, token: &str) -> Answer {
        match crate::verify::userinfo::claims_of(&self.discovery, token).await {
            Ok(claims) => Ok(Arc::new(claims)),
            Err(AuthError::InvalidToken(InvalidToken::Rejected)) => Err(PersonError::Refused),
            Err(other) => Err(PersonError::Unavailable(other.to_string())),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap().len()
    }
}

/// What the layer leaves in a request when the person comes from userinfo:
/// enough to ask for them later. The token is held here, not in the request's
/// headers, and nothing outside this module can read it.
#[derive(Clone)]
pub(crate) struct PersonLookup {
    people: Arc<UserinfoPeople>,
    key: TokenHash,
    token: Arc<str>,
}

impl std::fmt::Debug for PersonLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonLookup(<token>)")
    }
}

impl PersonLookup {
    pub fn new(people: Arc<UserinfoPeople>, token: &str) -> Self {
        Self { people, key: crate::verify::cache::hash(token), token: token.into() }
    }

    async fn person(&self, who: &AuthInfo) -> Result<Person, PersonError> {
        let people = &self.people;
        let Some(answer) = people.slot(self.key, who.expires_at) else {
            return Err(PersonError::Refused);
        };
        let claims = answer.get_or_init(|| people.ask(&self.token)).await.clone();
        match claims {
            Ok(claims) => Person::from_userinfo(&who.subject, &claims),
            Err(error) => {
                if matches!(error, PersonError::Unavailable(_)) {
                    people.forget(&self.key, &answer);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(claims: Value) -> AuthInfo {
        AuthInfo {
            issuer: "https://as.example".into(),
            subject: "u1".into(),
            client_id: Some("app".into()),
            audience: vec!["https://mcp.example/mcp".into()],
            scopes: vec!["mcp:tools".into()],
            expires_at: None,
            claims: claims.as_object().unwrap().clone().into(),
        }
    }

    #[test]
    fn a_token_s_person_holds_identity_claims_only() {
        let person = Person::from_token(&who(json!({
            "sub": "u1", "iss": "https://as.example", "aud": "x", "scope": "a", "client_id": "app",
            "jti": "j", "exp": 1, "name": "Alice", "email": "a@example.com", "email_verified": true,
            "preferred_username": "alice"
        })));
        assert_eq!(
            Value::Object(person.claims.clone()),
            json!({"sub": "u1", "name": "Alice", "email": "a@example.com", "email_verified": true,
                   "preferred_username": "alice", "username": "alice"})
        );
        assert_eq!(
            (person.username(), person.name(), person.email()),
            (Some("alice"), Some("Alice"), Some("a@example.com"))
        );
    }

    #[test]
    fn a_token_without_a_profile_still_names_its_subject() {
        let person = Person::from_token(&who(json!({"sub": "u1", "scope": "a"})));
        assert_eq!(Value::Object(person.claims), json!({"sub": "u1"}));
    }

    #[test]
    fn a_userinfo_answer_must_be_about_the_token_s_subject() {
        let answer = json!({"sub": "u2", "name": "Mallory"});
        let err = Person::from_userinfo("u1", answer.as_object().unwrap()).unwrap_err();
        assert_eq!(err, PersonError::OtherSubject);
        let answer = json!({"sub": "u1", "username": "alice", "roles": ["admin"]});
        let person = Person::from_userinfo("u1", answer.as_object().unwrap()).unwrap();
        assert_eq!(person.claims["roles"], json!(["admin"]), "userinfo is all about the person");
    }

    #[test]
    fn remembered_people_are_bounded_and_expired_tokens_get_no_slot() {
        let discovery = Arc::new(Discovery::new("https://as.example").unwrap());
        let people = UserinfoPeople::new(discovery);
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(people.slot([1; 32], Some(past)).is_none());
        let first = people.slot([2; 32], None).unwrap();
        let again = people.slot([2; 32], None).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one slot per token");
        for i in 0..(CAPACITY + 5) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            key[31] = 9;
            people.slot(key, None);
        }
        assert_eq!(people.len(), CAPACITY, "capacity is a hard bound");
    }
}
