//! The issuer's signing keys.
//!
//! Tokens are signed with ES256 (ECDSA P-256), small and fast to verify. Some
//! OpenID Connect clients only verify RS256 ID tokens (the algorithm OpenID
//! Connect assumes when a client registers none); an app registered with RS256
//! gets its ID tokens signed with an RSA key, made the first time one is needed.
//! Access tokens are always ES256.
//!
//! On the first start a key is made and stored, its private part sealed under
//! the key-encryption key. A rotation makes a new active key of an algorithm;
//! the old one stops signing at once but its public key stays in the JWKS
//! until `publish_until`, so every token it signed can still be verified until
//! it expires. Key ids are RFC 7638 thumbprints: the same key always has the
//! same `kid`.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::seal::{KeyEncryptionKey, SealError};
use crate::store::{Store, StoreError, StoredKey};

/// A signature algorithm this issuer signs with.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256: every access token, and ID tokens by default.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys), for ID tokens of the
    /// apps that need it.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Alg {
    /// Every algorithm, the default first.
    pub const ALL: [Alg; 2] = [Alg::Es256, Alg::Rs256];

    /// The JOSE name.
    ///
    /// ```
    /// use agentgate_issuer::keys::Alg;
    /// assert_eq!(Alg::Rs256.as_str(), "RS256");
    /// assert_eq!(Alg::parse("ES256"), Some(Alg::Es256));
    /// assert_eq!(Alg::parse("HS256"), None);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// The algorithm named `name` (exact JOSE spelling), if this issuer signs with it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// A stored key is not a valid private key of its algorithm.
    #[error("signing key {0} in the database is damaged")]
    Damaged(String),
}

/// A private signing key, ready to sign.
pub struct SigningKey {
    kid: String,
    pair: Pair,
    public_jwk: Value,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key of `alg` and its private part in PKCS#8.
    pub fn generate(alg: Alg) -> (Self, Vec<u8>) {
        let pkcs8 = match alg {
            Alg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .expect("the system random generator works")
                    .as_ref()
                    .to_vec()
            }
            Alg::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|pair| pair.as_der())
                .expect("the system random generator works")
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(alg, &pkcs8).expect("a fresh key parses");
        (key, pkcs8)
    }

    /// A key of `alg` from its PKCS#8 private part.
    pub fn from_pkcs8(alg: Alg, pkcs8: &[u8]) -> Option<Self> {
        // RFC 7638: the thumbprint hashes the required members, in lexicographic
        // order, without whitespace.
        let (pair, canonical, mut public_jwk) = match alg {
            Alg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
                let point = pair.public_key().as_ref();
                let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (Pair::Ec(pair), canonical, json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}))
            }
            Alg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
                let public = pair.public_key();
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                (Pair::Rsa(pair), canonical, json!({"kty": "RSA", "n": n, "e": e}))
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        public_jwk["kid"] = kid.clone().into();
        public_jwk["alg"] = alg.as_str().into();
        public_jwk["use"] = "sig".into();
        Some(Self { kid, pair, public_jwk })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's algorithm.
    pub fn alg(&self) -> Alg {
        match self.pair {
            Pair::Ec(_) => Alg::Es256,
            Pair::Rsa(_) => Alg::Rs256,
        }
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A compact JWS of `claims` with header `{"alg":…,"typ":typ,"kid":…}`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": self.alg().as_str(), "typ": typ, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .expect("signing with a valid key cannot fail")
                .as_ref()
                .to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
                    .expect("signing with a valid key cannot fail");
                signature
            }
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn stored(&self, pkcs8: &[u8], kek: &KeyEncryptionKey, now: i64) -> StoredKey {
        StoredKey {
            kid: self.kid.clone(),
            alg: self.alg().as_str().to_owned(),
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

/// The active signing keys and the public keys to publish.
#[derive(Debug)]
pub struct KeyRing {
    /// One active key per algorithm that has one; ES256 always first.
    active: Vec<SigningKey>,
    jwks: Value,
    /// Every published key, to check our own tokens with.
    verifying: Vec<(String, jsonwebtoken::DecodingKey)>,
}

impl KeyRing {
    /// Loads the keys at `now`, making and storing the first ES256 key if there
    /// is none active yet.
    pub async fn load<S: Store>(store: &S, kek: &KeyEncryptionKey, now: i64) -> Result<Self, KeyError> {
        let mut keys = store.signing_keys().await?;
        if !keys.iter().any(|k| k.retired_at.is_none() && k.alg == Alg::Es256.as_str()) {
            rotate(store, kek, now, DEFAULT_KEEP_PUBLISHED_SECS, Alg::Es256).await?;
            keys = store.signing_keys().await?;
        }
        let mut active = Vec::new();
        for alg in Alg::ALL {
            let Some(stored) = keys.iter().find(|k| k.retired_at.is_none() && k.alg == alg.as_str()) else {
                continue;
            };
            let pkcs8 = kek
                .open(&stored.sealed_private, &stored.kid)
                .map_err(|source| KeyError::Sealed { kid: stored.kid.clone(), source })?;
            let key =
                SigningKey::from_pkcs8(alg, &pkcs8).ok_or_else(|| KeyError::Damaged(stored.kid.clone()))?;
            if key.kid != stored.kid {
                return Err(KeyError::Damaged(stored.kid.clone()));
            }
            active.push(key);
        }
        let published = keys
            .iter()
            .filter(|k| status(k, now) != KeyStatus::Expired)
            .map(|k| serde_json::from_str(&k.public_jwk).map_err(|_| KeyError::Damaged(k.kid.clone())))
            .collect::<Result<Vec<Value>, _>>()?;
        let verifying = published.iter().filter_map(decoding_key).collect();
        Ok(Self { active, jwks: json!({ "keys": published }), verifying })
    }

    /// The key that signs new access tokens (ES256).
    pub fn active(&self) -> &SigningKey {
        &self.active[0]
    }

    /// The active key of `alg`, if one was made.
    pub fn active_for(&self, alg: Alg) -> Option<&SigningKey> {
        self.active.iter().find(|key| key.alg() == alg)
    }

    /// The published key with this id, to verify a token we signed.
    pub fn verifying_key(&self, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        self.verifying.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// The JWKS document: the active keys and every retired key still published.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

/// A published JWK as a key to verify with.
fn decoding_key(jwk: &Value) -> Option<(String, jsonwebtoken::DecodingKey)> {
    let text = |name: &str| jwk[name].as_str();
    let key = match text("kty")? {
        "EC" => jsonwebtoken::DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?,
        "RSA" => jsonwebtoken::DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?,
        _ => return None,
    };
    Some((text("kid")?.to_owned(), key))
}

/// Makes a new active key of `alg` at `now`; the previous one of that algorithm
/// stays published for `keep_published_secs`. Returns the new key id.
pub async fn rotate<S: Store>(
    store: &S,
    kek: &KeyEncryptionKey,
    now: i64,
    keep_published_secs: i64,
    alg: Alg,
) -> Result<String, KeyError> {
    let (key, pkcs8) = SigningKey::generate(alg);
    store.rotate_signing_key(&key.stored(&pkcs8, kek, now), now + keep_published_secs).await?;
    tracing::info!(kid = %key.kid, %alg, "new signing key");
    Ok(key.kid)
}
