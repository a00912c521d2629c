//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect
//! Core §9): an app proves who it is with a short-lived JWT signed by a key
//! whose public half it published, instead of a shared secret.
//!
//! This is how an app known by its Client ID Metadata Document authenticates
//! when it is not a public client: a document is public, so it can carry a
//! public key (`jwks`, or a `jwks_uri`) but never a secret.
//!
//! An assertion is accepted only if all of this holds:
//! - it is signed with an asymmetric algorithm this issuer accepts
//!   ([`SIGNING_ALGS`]; never `none` nor an HMAC), by one of the app's keys;
//! - `iss` and `sub` are the app's `client_id`;
//! - `aud` is this issuer's identifier and nothing else (as
//!   draft-ietf-oauth-rfc7523bis asks: an app that uses one key with many
//!   servers could otherwise be tricked by one of them into signing an
//!   assertion for another's token endpoint);
//! - it has not expired and lives at most [`MAX_LIFETIME_SECS`];
//! - its `jti` was never seen before from this app (the caller records it
//!   until `exp`, so a captured assertion cannot be replayed).

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// The only `client_assertion_type` there is (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The algorithms an assertion may be signed with.
pub const SIGNING_ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// The longest an assertion may live (`exp` from now), which also bounds how
/// long its `jti` is remembered.
pub const MAX_LIFETIME_SECS: i64 = 3600;

/// The most keys an app may publish.
const MAX_KEYS: usize = 10;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: i64 = 30;

/// Checks a JWK Set an app publishes for `private_key_jwt`: 1 to 10 public
/// signing keys (EC, RSA or OKP). Returns it as JSON to store.
///
/// ```
/// use agentgate_issuer::client_assertions::check_jwks;
/// let one = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
/// assert!(check_jwks(&one).is_ok());
/// let secret = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
/// assert!(check_jwks(&secret).is_err());
/// ```
pub fn check_jwks(jwks: &Value) -> Result<String, String> {
    let keys =
        jwks.get("keys").and_then(Value::as_array).ok_or("jwks must be an object with a \"keys\" array")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("jwks must hold 1 to {MAX_KEYS} keys"));
    }
    // Private parts of EC/OKP ("d") and RSA keys: a published private key is no key.
    const PRIVATE: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];
    if keys.iter().any(|key| PRIVATE.iter().any(|part| key.get(part).is_some())) {
        return Err("jwks holds a private key; publish only public keys".into());
    }
    let set: JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| format!("jwks is not a JWK Set: {e}"))?;
    for (i, key) in set.keys.iter().enumerate() {
        if key.common.key_id.is_some() && set.keys[..i].iter().any(|k| k.common.key_id == key.common.key_id) {
            return Err("jwks holds two keys with the same kid".into());
        }
        let asymmetric = matches!(
            key.algorithm,
            AlgorithmParameters::EllipticCurve(_)
                | AlgorithmParameters::RSA(_)
                | AlgorithmParameters::OctetKeyPair(_)
        );
        if !asymmetric || DecodingKey::from_jwk(key).is_err() {
            return Err("jwks may hold only EC, RSA or OKP public keys".into());
        }
    }
    Ok(jwks.to_string())
}

/// The app an assertion says it comes from (`sub`), read without checking
/// anything: only to find the app whose keys will check it.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Subject>(assertion).ok().map(|data| data.claims.sub)
}

/// An accepted assertion: the caller records its `jti` as used until
/// `remember_until` and refuses a second use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The assertion's unique id.
    pub jti: String,
    /// Until when it could still be accepted (its `exp` plus the leeway).
    pub remember_until: i64,
}

/// Verifies `assertion` as `client_id`'s, signed by one of `jwks` (stored by
/// [`check_jwks`]), for the issuer `audience`, at `now`. Errors say why, for
/// logs and the `error_description`.
pub fn verify(
    assertion: &str,
    client_id: &str,
    jwks: &str,
    audience: &str,
    now: i64,
) -> Result<Accepted, &'static str> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| "the client assertion is not a JWT")?;
    let alg = header.alg;
    if !SIGNING_ALGS.iter().any(|name| algorithm_name(alg) == Some(name)) {
        return Err("the client assertion's algorithm is not accepted");
    }
    let set: JwkSet = serde_json::from_str(jwks).map_err(|_| "the app's keys are unreadable")?;
    // The key the header names (else every key), if published for signatures with this algorithm.
    let candidates = set.keys.iter().filter(|jwk| {
        header.kid.as_ref().is_none_or(|kid| jwk.common.key_id.as_ref() == Some(kid))
            && jwk.common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature)
            && jwk.common.key_algorithm.is_none_or(|a| a == KeyAlgorithm::from(alg))
    });
    #[derive(Deserialize)]
    struct Claims {
        jti: String,
        exp: i64,
        nbf: Option<i64>,
        aud: Value,
    }
    let mut validation = Validation::new(alg);
    // Times are checked below against `now`, the caller's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    // `aud` is checked below: exactly the issuer, not one of several.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
            Ok(data) if !only(&data.claims.aud, audience) => {
                return Err("the client assertion's aud must be this issuer's identifier, alone");
            }
            Ok(data) if data.claims.exp + LEEWAY_SECS < now => {
                return Err("the client assertion has expired");
            }
            Ok(data) if data.claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) => {
                return Err("the client assertion is not valid yet");
            }
            Ok(data) if data.claims.exp > now + MAX_LIFETIME_SECS => {
                return Err("the client assertion lives too long (at most an hour)");
            }
            Ok(data) if data.claims.jti.is_empty() => return Err("the client assertion has no jti"),
            Ok(data) => {
                let remember_until = data.claims.exp + LEEWAY_SECS;
                return Ok(Accepted { jti: data.claims.jti, remember_until });
            }
            Err(error) => {
                use jsonwebtoken::errors::ErrorKind;
                let why = match error.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidKeyFormat => {
                        continue;
                    }
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                        "the client assertion's iss and sub must be the client_id"
                    }
                    ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                        "the client assertion lacks exp, iss, sub, aud or jti"
                    }
                    _ => "the client assertion is not valid",
                };
                return Err(why);
            }
        }
    }
    Err("the client assertion is not signed by any of the app's keys")
}

/// Whether `aud` is `audience`: the string, or an array of just it.
fn only(aud: &Value, audience: &str) -> bool {
    match aud {
        Value::String(one) => one == audience,
        Value::Array(list) => list.len() == 1 && list[0] == audience,
        _ => false,
    }
}

pub(crate) fn algorithm_name(alg: Algorithm) -> Option<&'static str> {
    Some(match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::EdDSA => "EdDSA",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};
    use serde_json::json;

    const APP: &str = "https://agent.example/client.json";
    const AUD: &str = "https://auth.example.com";
    const NOW: i64 = 1_800_000_000;

    fn key() -> SigningKey {
        SigningKey::generate(Alg::Es256).0
    }

    fn jwks_of(key: &SigningKey) -> String {
        check_jwks(&json!({ "keys": [key.public_jwk()] })).unwrap()
    }

    fn claims() -> Value {
        json!({ "iss": APP, "sub": APP, "aud": AUD, "jti": "one", "iat": NOW, "exp": NOW + 60 })
    }

    fn with(change: impl FnOnce(&mut Value)) -> Value {
        let mut claims = claims();
        change(&mut claims);
        claims
    }

    #[test]
    fn an_assertion_signed_by_the_apps_key_for_this_issuer_is_accepted() {
        let key = key();
        let assertion = key.sign_jwt("JWT", &claims());
        assert_eq!(claimed_client_id(&assertion).as_deref(), Some(APP));
        let accepted = verify(&assertion, APP, &jwks_of(&key), AUD, NOW);
        assert_eq!(accepted, Ok(Accepted { jti: "one".into(), remember_until: NOW + 60 + LEEWAY_SECS }));
    }

    #[test]
    fn every_broken_rule_is_refused() {
        let key = key();
        let jwks = jwks_of(&key);
        let cases = [
            (with(|c| c["aud"] = json!("https://elsewhere.example")), "aud"),
            // Not the token endpoint, nor the issuer among others (audience injection).
            (with(|c| c["aud"] = json!(format!("{AUD}/token"))), "aud"),
            (with(|c| c["aud"] = json!([AUD, "https://other.example"])), "aud"),
            (with(|c| c["iss"] = json!("https://evil.example/client.json")), "iss and sub"),
            (with(|c| c["sub"] = json!("https://evil.example/client.json")), "iss and sub"),
            (with(|c| c["exp"] = json!(NOW - 120)), "expired"),
            (with(|c| c["nbf"] = json!(NOW + 120)), "not valid yet"),
            (with(|c| c["exp"] = json!(NOW + MAX_LIFETIME_SECS + 60)), "too long"),
            (with(|c| c.as_object_mut().unwrap().remove("jti").map(drop).unwrap()), "lacks"),
            (with(|c| c.as_object_mut().unwrap().remove("aud").map(drop).unwrap()), "lacks"),
        ];
        for (claims, why) in cases {
            let refused = verify(&key.sign_jwt("JWT", &claims), APP, &jwks, AUD, NOW).unwrap_err();
            assert!(refused.contains(why), "{claims}: {refused}");
        }
        // Another key, an HMAC with the public key's bytes as secret, and alg none.
        let other = self::key().sign_jwt("JWT", &claims());
        assert!(verify(&other, APP, &jwks, AUD, NOW).unwrap_err().contains("not signed"));
        let hmac = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()),
        )
        .unwrap();
        assert!(verify(&hmac, APP, &jwks, AUD, NOW).unwrap_err().contains("algorithm"));
        let unsigned = format!("eyJhbGciOiJub25lIn0.{}.", base64_url(&claims().to_string()));
        assert!(verify(&unsigned, APP, &jwks, AUD, NOW).is_err());
        // A kid the app never published; a key published for encryption or another algorithm.
        let mut renamed = key.public_jwk().clone();
        renamed["kid"] = json!("other");
        let unknown_kid = check_jwks(&json!({ "keys": [renamed] })).unwrap();
        assert!(verify(&key.sign_jwt("JWT", &claims()), APP, &unknown_kid, AUD, NOW).is_err());
        for (field, value) in [("use", "enc"), ("alg", "ES384")] {
            let mut restricted = key.public_jwk().clone();
            restricted[field] = json!(value);
            let jwks = check_jwks(&json!({ "keys": [restricted] })).unwrap();
            assert!(verify(&key.sign_jwt("JWT", &claims()), APP, &jwks, AUD, NOW).is_err(), "{field}");
        }
        // An ES256 header over the app's RSA key.
        let rsa = SigningKey::generate(Alg::Rs256).0;
        let mut forged = rsa.public_jwk().clone();
        forged["kid"] = json!(key.kid());
        forged.as_object_mut().unwrap().remove("alg");
        let rsa_jwks = check_jwks(&json!({ "keys": [forged] })).unwrap();
        assert!(verify(&key.sign_jwt("JWT", &claims()), APP, &rsa_jwks, AUD, NOW).is_err());
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn published_keys_must_be_public_and_few() {
        let key = key();
        let mut private = key.public_jwk().clone();
        private["d"] = json!("AAAA");
        for bad in [
            json!({}),
            json!({"keys": []}),
            json!({"keys": [private]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": vec![key.public_jwk().clone(); 11]}),
            json!({"keys": vec![key.public_jwk().clone(); 2]}),
        ] {
            assert!(check_jwks(&bad).is_err(), "{bad}");
        }
    }
}
