//! The issuer's signing keys.
//!
//! Tokens are signed with ES256 (ECDSA P-256), small and fast to verify. On the
//! first start a key is made and stored, its private part sealed under the
//! key-encryption key. A rotation makes a new active key; the old one stops
//! signing at once but its public key stays in the JWKS until `publish_until`,
//! so every token it signed can still be verified until it expires. Key ids are
//! RFC 7638 thumbprints: the same key always has the same `kid`.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::seal::{KeyEncryptionKey, SealError};
use crate::store::{Store, StoreError, StoredKey};

/// The algorithm of the keys this issuer makes.
pub const ALG: &str = "ES256";

/// How long a retired key's public part stays published by default: longer than
/// any token the issuer signs lives.
pub const DEFAULT_KEEP_PUBLISHED_SECS: i64 = 24 * 3600;

/// Why the keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A private key does not open under the configured key-encryption key.
    #[error("signing key {kid}: {source}")]
    Sealed {
        /// The key.
        kid: String,
        /// Why it does not open.
        source: SealError,
    },
    /// A stored key is not a valid P-256 private key.
    #[error("signing key {0} in the database is damaged")]
    Damaged(String),
}

/// A private signing key, ready to sign.
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key and its private part in PKCS#8.
    pub fn generate() -> (Self, Vec<u8>) {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("the system random generator works");
        let key = Self::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses");
        (key, pkcs8.as_ref().to_vec())
    }

    /// A key from its PKCS#8 private part.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
        let point = pair.public_key().as_ref();
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
        // RFC 7638: the thumbprint hashes the required members, in lexicographic
        // order, without whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        let public_jwk =
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": ALG, "use": "sig"});
        Some(Self { kid, pair, public_jwk })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS of `claims` with header `{"alg":"ES256","typ":typ,"kid":…}`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": ALG, "typ": typ, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("signing with a valid key cannot fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn stored(&self, pkcs8: &[u8], kek: &KeyEncryptionKey, now: i64) -> StoredKey {
        StoredKey {
            kid: self.kid.clone(),
            alg: ALG.to_owned(),
            public_jwk: self.public_jwk.to_string(),
            sealed_private: kek.seal(pkcs8, &self.kid),
            created_at: now,
            retired_at: None,
            publish_until: None,
        }
    }
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Signs new tokens.
    Active,
    /// No longer signs; published in the JWKS until the given time.
    Retiring(i64),
    /// Neither signs nor is published.
    Expired,
}

/// The status of a stored key at `now`.
pub fn status(key: &StoredKey, now: i64) -> KeyStatus {
    match (key.retired_at, key.publish_until) {
        (None, _) => KeyStatus::Active,
        (Some(_), Some(until)) if until > now => KeyStatus::Retiring(until),
        _ => KeyStatus::Expired,
    }
}

/// The active signing key and the public keys to publish.
#[derive(Debug)]
pub struct KeyRing {
    active: SigningKey,
    jwks: Value,
    /// Every published key, to check our own tokens with.
    verifying: Vec<(String, jsonwebtoken::DecodingKey)>,
}

impl KeyRing {
    /// Loads the keys at `now`, making and storing the first one if there is
    /// no active key yet.
    pub async fn load<S: Store>(store: &S, kek: &KeyEncryptionKey, now: i64) -> Result<Self, KeyError> {
        let mut keys = store.signing_keys().await?;
        if !keys.iter().any(|k| k.retired_at.is_none()) {
            rotate(store, kek, now, DEFAULT_KEEP_PUBLISHED_SECS).await?;
            keys = store.signing_keys().await?;
        }
        let stored = keys.iter().find(|k| k.retired_at.is_none()).expect("an active key was just ensured");
        let pkcs8 = kek
            .open(&stored.sealed_private, &stored.kid)
            .map_err(|source| KeyError::Sealed { kid: stored.kid.clone(), source })?;
        let active = SigningKey::from_pkcs8(&pkcs8).ok_or_else(|| KeyError::Damaged(stored.kid.clone()))?;
        if active.kid != stored.kid {
            return Err(KeyError::Damaged(stored.kid.clone()));
        }
        let published = keys
            .iter()
            .filter(|k| status(k, now) != KeyStatus::Expired)
            .map(|k| serde_json::from_str(&k.public_jwk).map_err(|_| KeyError::Damaged(k.kid.clone())))
            .collect::<Result<Vec<Value>, _>>()?;
        let verifying = published
            .iter()
            .filter_map(|jwk| {
                let (kid, x, y) = (jwk["kid"].as_str()?, jwk["x"].as_str()?, jwk["y"].as_str()?);
                Some((kid.to_owned(), jsonwebtoken::DecodingKey::from_ec_components(x, y).ok()?))
            })
            .collect();
        Ok(Self { active, jwks: json!({ "keys": published }), verifying })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The published key with this id, to verify a token we signed.
    pub fn verifying_key(&self, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        self.verifying.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// The JWKS document: the active key and every retired key still published.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

/// Makes a new active key at `now`; the previous one stays published for
/// `keep_published_secs`. Returns the new key id.
pub async fn rotate<S: Store>(
    store: &S,
    kek: &KeyEncryptionKey,
    now: i64,
    keep_published_secs: i64,
) -> Result<String, KeyError> {
    let (key, pkcs8) = SigningKey::generate();
    store.rotate_signing_key(&key.stored(&pkcs8, kek, now), now + keep_published_secs).await?;
    tracing::info!(kid = %key.kid, "new signing key");
    Ok(key.kid)
}
