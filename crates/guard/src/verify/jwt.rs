//! JWT access tokens (RFC 9068, and the plain JWTs many issuers send).
//!
//! The cheap checks run first and need no network: length, shape, header, an
//! allow-listed algorithm. Only then are the issuer's keys consulted (from cache,
//! or fetched once), the signature verified, and the claims handed to
//! [`ClaimRules`](crate::claims::ClaimRules). The header is parsed here rather than
//! by `jsonwebtoken` so that each refusal has its own reason: `alg: none` is an
//! unsupported algorithm, not a generic parse error.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cache::{self, TokenCache};
use super::jwks::KeyStore;
use super::{TokenVerifier, VerifyFuture};
use crate::claims::{ClaimRules, ClaimSource};
use crate::discovery::Discovery;
use crate::resource::ResourceId;
use crate::{AuthError, AuthInfo, InvalidToken};

/// The algorithms accepted by default: asymmetric only, never `none` or HMAC (an
/// HMAC key would have to be shared with every resource server, and a public key
/// misused as an HMAC secret is a classic forgery).
pub const DEFAULT_ALGORITHMS: [Algorithm; 7] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// Verifies JWT access tokens with the issuer's published keys.
///
/// ```no_run
/// use std::sync::Arc;
/// use agentgate_guard::{Discovery, JwtVerifier, ResourceId};
///
/// let discovery = Arc::new(Discovery::new("https://tenant.logto.app/oidc").unwrap());
/// let resource = ResourceId::parse("https://mcp.example.com/mcp").unwrap();
/// let verifier = JwtVerifier::new(discovery, resource)
///     .leeway(std::time::Duration::from_secs(30));
/// ```
#[derive(Debug)]
pub struct JwtVerifier {
    rules: ClaimRules,
    keys: KeyStore,
    algorithms: Vec<Algorithm>,
    cache: TokenCache,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

impl JwtVerifier {
    /// A verifier for tokens from `discovery`'s issuer, for `resource`.
    pub fn new(discovery: Arc<Discovery>, resource: ResourceId) -> Self {
        let rules =
            ClaimRules { issuer: discovery.issuer().to_owned(), resource, leeway: Duration::from_secs(60) };
        Self {
            rules,
            keys: KeyStore::new(discovery),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            cache: TokenCache::new(cache::DEFAULT_CAPACITY, Duration::from_secs(300)),
        }
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.rules.leeway = leeway;
        self
    }

    /// Restricts the accepted algorithms. HMAC algorithms are ignored: they are
    /// never accepted.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms
            .iter()
            .copied()
            .filter(|a| !matches!(a.family(), jsonwebtoken::AlgorithmFamily::Hmac))
            .collect();
        self
    }

    /// The shortest time between two fetches of the key set caused by unknown
    /// `kid`s (default 30 s).
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.keys.min_refetch = interval;
        self
    }

    /// How long a fetched key set is used before it is fetched again (default 1 h).
    pub fn max_key_age(mut self, age: Duration) -> Self {
        self.keys.max_age = age;
        self
    }

    /// How long an accepted token is remembered, never past its `exp` (default
    /// 5 min; zero turns the cache off).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache = TokenCache::new(cache::DEFAULT_CAPACITY, ttl);
        self
    }

    async fn verify_token(&self, token: &str) -> Result<AuthInfo, AuthError> {
        self.cache.get_or_verify(token, self.check(token)).await
    }

    async fn check(&self, token: &str) -> Result<AuthInfo, AuthError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::Malformed.into());
        };
        let header: JoseHeader = decode_json(header_b64)?;
        let alg = self.allowed_algorithm(&header.alg)?;
        if let Some(typ) = &header.typ
            && !is_access_token_type(typ)
        {
            return Err(InvalidToken::WrongType.into());
        }
        if header.crit.is_some() {
            return Err(InvalidToken::UnsupportedCriticalHeader.into());
        }
        if URL_SAFE_NO_PAD.decode(signature_b64).is_err() || signature_b64.is_empty() {
            return Err(InvalidToken::Malformed.into());
        }

        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        let candidates = self.keys.candidates(header.kid.as_deref(), alg).await?;
        let verified = candidates.iter().any(|k| {
            jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &k.key, alg).unwrap_or(false)
        });
        if !verified {
            return Err(InvalidToken::BadSignature.into());
        }

        let claims: Map<String, Value> = decode_json(payload_b64)?;
        Ok(self.rules.check(claims, ClaimSource::Jwt)?)
    }

    fn allowed_algorithm(&self, name: &str) -> Result<Algorithm, InvalidToken> {
        let alg: Algorithm = name.parse().map_err(|_| InvalidToken::UnsupportedAlgorithm)?;
        if self.algorithms.contains(&alg) { Ok(alg) } else { Err(InvalidToken::UnsupportedAlgorithm) }
    }
}

/// RFC 9068 §2.1 asks for `at+jwt`; many issuers send `JWT` or nothing. Any other
/// type (an ID token's, a logout token's, a DPoP proof's) is not an access token.
fn is_access_token_type(typ: &str) -> bool {
    ["at+jwt", "application/at+jwt", "jwt"].iter().any(|t| typ.eq_ignore_ascii_case(t))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| InvalidToken::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| InvalidToken::Malformed)
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token))
    }
}
