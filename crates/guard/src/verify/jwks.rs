//! The issuer's signing keys, fetched from `jwks_uri` and kept in memory.
//!
//! Keys are looked up by `kid` and algorithm. A token signed with a key the cache
//! does not know may mean the issuer rotated its keys, so the set is fetched again
//! — but at most once per `min_refetch` interval, and single-flight, so a flood of
//! tokens with made-up `kid`s costs the issuer one request per interval, not one
//! per token. A set older than `max_age` is refreshed on the next lookup; if that
//! fails, the old keys keep working (the issuer being down must not log everyone
//! out) and the failure is logged.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use crate::discovery::Discovery;
use crate::fetch;
use crate::{AuthError, InvalidToken};

/// One usable public key.
pub(crate) struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    curve: Option<EllipticCurve>,
    pub key: DecodingKey,
}

impl Key {
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return None;
        }
        let (family, curve) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
            AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(p.curve.clone())),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                (AlgorithmFamily::Ed, None)
            }
            // Symmetric keys never verify access tokens here, and other curves are
            // not supported.
            _ => return None,
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => Some(signing_algorithm(a)?),
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            curve,
            key: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        // A key published without a `kid` may have signed a token that names one
        // (`kid` is only a hint, RFC 7517 §4.5); a key with another `kid` did not.
        if kid.is_some() && self.kid.is_some() && self.kid.as_deref() != kid {
            return false;
        }
        if self.family != alg.family() || self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match (alg, &self.curve) {
            (Algorithm::ES256, Some(c)) => *c == EllipticCurve::P256,
            (Algorithm::ES384, Some(c)) => *c == EllipticCurve::P384,
            _ => true,
        }
    }
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm as A;
    Some(match alg {
        KeyAlgorithm::ES256 => A::ES256,
        KeyAlgorithm::ES384 => A::ES384,
        KeyAlgorithm::RS256 => A::RS256,
        KeyAlgorithm::RS384 => A::RS384,
        KeyAlgorithm::RS512 => A::RS512,
        KeyAlgorithm::PS256 => A::PS256,
        KeyAlgorithm::PS384 => A::PS384,
        KeyAlgorithm::PS512 => A::PS512,
        KeyAlgorithm::EdDSA => A::EdDSA,
        _ => return None,
    })
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Arc<Key>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    last_error: Option<String>,
}

/// The JWKS cache of one issuer.
pub(crate) struct KeyStore {
    discovery: Arc<Discovery>,
    current: RwLock<Arc<KeySet>>,
    refresh_lock: tokio::sync::Mutex<()>,
    pub min_refetch: Duration,
    pub max_age: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("issuer", &self.discovery.issuer()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

impl KeyStore {
    pub fn new(discovery: Arc<Discovery>) -> Self {
        Self {
            discovery,
            current: RwLock::new(Arc::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            min_refetch: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.current.read().expect("not poisoned").clone()
    }

    /// The keys that may have signed a token with this `kid` and `alg`.
    pub async fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<Arc<Key>>, AuthError> {
        for _ in 0..2 {
            let set = self.current();
            let found: Vec<_> = set.keys.iter().filter(|k| k.fits(kid, alg)).cloned().collect();
            let stale = set.fetched.is_none_or(|t| t.elapsed() >= self.max_age);
            if !found.is_empty() && !stale {
                return Ok(found);
            }
            // Stale but usable: whoever finds the refresh already running keeps
            // verifying with the keys it has instead of queueing behind the fetch.
            if !found.is_empty() && self.refresh_lock.try_lock().is_err() {
                return Ok(found);
            }
            let may_fetch = set.attempted.is_none_or(|t| t.elapsed() >= self.min_refetch);
            if !may_fetch {
                return match (found.is_empty(), set.fetched, &set.last_error) {
                    (false, _, _) => Ok(found),
                    (true, None, Some(error)) => Err(AuthError::IssuerUnavailable(error.clone())),
                    (true, _, _) => Err(InvalidToken::UnknownKey.into()),
                };
            }
            self.refresh(set.attempted).await;
        }
        Err(InvalidToken::UnknownKey.into())
    }

    /// Fetches the key set unless another task did since `seen_attempt`.
    async fn refresh(&self, seen_attempt: Option<Instant>) {
        let _flight = self.refresh_lock.lock().await;
        let old = self.current();
        if old.attempted != seen_attempt {
            return;
        }
        let next = match self.fetch().await {
            Ok(keys) => KeySet {
                keys,
                fetched: Some(Instant::now()),
                attempted: Some(Instant::now()),
                last_error: None,
            },
            Err(error) => {
                tracing::warn!(issuer = %self.discovery.issuer(), %error, "could not fetch the issuer's signing keys");
                KeySet {
                    keys: old.keys.clone(),
                    fetched: old.fetched,
                    attempted: Some(Instant::now()),
                    last_error: Some(error),
                }
            }
        };
        *self.current.write().expect("not poisoned") = Arc::new(next);
    }

    async fn fetch(&self) -> Result<Vec<Arc<Key>>, String> {
        let metadata = self.discovery.metadata().await.map_err(|e| e.to_string())?;
        let uri = metadata.jwks_uri.as_deref().ok_or("the issuer's metadata has no jwks_uri")?;
        let raw: RawKeySet =
            fetch::get_json(self.discovery.client(), uri).await.map_err(|e| e.to_string())?;
        // A key this library cannot use (another curve, a symmetric key, a future
        // key type) is skipped, not fatal: the others still verify tokens.
        let keys: Vec<_> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| Key::from_jwk(&jwk))
            .map(Arc::new)
            .collect();
        tracing::debug!(issuer = %self.discovery.issuer(), keys = keys.len(), "fetched signing keys");
        Ok(keys)
    }
}
