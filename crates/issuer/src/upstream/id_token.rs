//! Checking an ID token from an identity provider (OpenID Connect Core
//! §3.1.3.7), as a plain function that tests call with tokens they sign.
//!
//! The rules, each a way to be fooled if left out:
//!
//! - signed by one of the provider's keys, with an asymmetric algorithm
//!   ([`SIGNING_ALGS`]; never `none`, never an HMAC keyed by something the
//!   client knows);
//! - `iss` is the provider, character for character;
//! - `aud` names this issuer's client id at that provider; when it names
//!   others too, `azp` must be that client id, and `azp`, when present, must
//!   be it in any case;
//! - not expired (a minute's leeway for clocks), not issued in the future;
//! - `nonce` is the one this sign-in sent: a token captured from another
//!   sign-in (or another site) cannot be replayed into this one;
//! - `sub` is present: it is what the person is known by.

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::client_assertions::{SIGNING_ALGS, algorithm_name};

/// Seconds of clock difference allowed with the provider.
const LEEWAY_SECS: i64 = 60;

/// What the ID token of one sign-in must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer identifier.
    pub issuer: &'a str,
    /// This issuer's client id at the provider.
    pub client_id: &'a str,
    /// The nonce the sign-in sent.
    pub nonce: &'a str,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// Why an ID token is refused, in words for the log and the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a JWT, or an algorithm that is not accepted.
    #[error("the ID token is not a JWT signed with an accepted algorithm")]
    Malformed,
    /// No key of the provider's verifies it.
    #[error("the ID token is not signed by any of the provider's keys")]
    Signature,
    /// From another issuer.
    #[error("the ID token is from another issuer")]
    Issuer,
    /// For another client.
    #[error("the ID token is for another client")]
    Audience,
    /// Expired, or issued in the future.
    #[error("the ID token has expired or is not valid yet")]
    Time,
    /// Not from this sign-in.
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
    /// Lacks a claim it must have.
    #[error("the ID token lacks {0}")]
    Missing(&'static str),
}

/// The claims of `token` once every rule holds, checked with the provider's
/// `keys`.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    let alg = header.alg;
    if !SIGNING_ALGS.iter().any(|name| algorithm_name(alg) == Some(name)) {
        return Err(IdTokenError::Malformed);
    }
    let candidates = keys.keys.iter().filter(|jwk| {
        header.kid.as_ref().is_none_or(|kid| jwk.common.key_id.as_ref() == Some(kid))
            && jwk.common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature)
            && jwk.common.key_algorithm.is_none_or(|a| a == KeyAlgorithm::from(alg))
    });
    let mut validation = Validation::new(alg);
    // Every claim is checked below, against the caller's clock and rules;
    // the library checks the signature.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = candidates
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
        .find_map(|key| jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).ok())
        .ok_or(IdTokenError::Signature)?
        .claims;
    check_claims(&claims, expected)?;
    Ok(claims)
}

/// The rules on the claims of a signed token.
fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<(), IdTokenError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    match text("iss") {
        None => return Err(IdTokenError::Missing("iss")),
        Some(iss) if iss != expected.issuer => return Err(IdTokenError::Issuer),
        Some(_) => {}
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Missing("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    match text("azp") {
        Some(azp) if azp != expected.client_id => return Err(IdTokenError::Audience),
        None if audiences.len() > 1 => return Err(IdTokenError::Audience),
        _ => {}
    }
    let exp = number("exp").ok_or(IdTokenError::Missing("exp"))?;
    if exp + LEEWAY_SECS < expected.now {
        return Err(IdTokenError::Time);
    }
    if number("iat").ok_or(IdTokenError::Missing("iat"))? > expected.now + LEEWAY_SECS {
        return Err(IdTokenError::Time);
    }
    if number("nbf").is_some_and(|nbf| nbf > expected.now + LEEWAY_SECS) {
        return Err(IdTokenError::Time);
    }
    if text("nonce") != Some(expected.nonce) {
        return Err(IdTokenError::Nonce);
    }
    if text("sub").is_none_or(str::is_empty) {
        return Err(IdTokenError::Missing("sub"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::keys::{Alg, SigningKey};

    const NOW: i64 = 1_800_000_000;

    /// A provider's key: what it signs with, and its JWKS.
    fn provider_key() -> (SigningKey, JwkSet) {
        let (key, _) = SigningKey::generate(Alg::Es256);
        let jwks: JwkSet = serde_json::from_value(json!({ "keys": [key.public_jwk()] })).unwrap();
        (key, jwks)
    }

    fn good_claims() -> Value {
        json!({ "iss": "https://idp.example", "aud": "agentgate", "sub": "u-1", "nonce": "n-1",
                "iat": NOW, "exp": NOW + 300, "email": "alice@example.com" })
    }

    fn expected() -> Expected<'static> {
        Expected { issuer: "https://idp.example", client_id: "agentgate", nonce: "n-1", now: NOW }
    }

    fn sign(key: &SigningKey, claims: &Value) -> String {
        key.sign_jwt("JWT", claims)
    }

    #[test]
    fn a_token_of_this_sign_in_passes_and_says_who() {
        let (key, jwks) = provider_key();
        let claims = verify(&sign(&key, &good_claims()), &jwks, &expected()).unwrap();
        assert_eq!(claims["sub"], "u-1");
        assert_eq!(claims["email"], "alice@example.com");
    }

    #[test]
    fn every_rule_refuses_what_breaks_it() {
        let (key, jwks) = provider_key();
        let with = |change: Value| {
            let mut claims = good_claims();
            for (name, value) in change.as_object().unwrap() {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(name);
                } else {
                    claims[name] = value.clone();
                }
            }
            verify(&sign(&key, &claims), &jwks, &expected())
        };
        assert_eq!(with(json!({ "iss": "https://evil.example" })), Err(IdTokenError::Issuer));
        assert_eq!(with(json!({ "iss": "https://idp.example/" })), Err(IdTokenError::Issuer), "exact");
        assert_eq!(with(json!({ "aud": "someone-else" })), Err(IdTokenError::Audience));
        assert_eq!(with(json!({ "aud": ["agentgate", "other"] })), Err(IdTokenError::Audience), "no azp");
        assert!(with(json!({ "aud": ["agentgate", "other"], "azp": "agentgate" })).is_ok());
        assert_eq!(with(json!({ "azp": "other" })), Err(IdTokenError::Audience));
        assert_eq!(with(json!({ "exp": NOW - 61 })), Err(IdTokenError::Time));
        assert!(with(json!({ "exp": NOW - 30 })).is_ok(), "within the leeway");
        assert_eq!(with(json!({ "iat": NOW + 3600 })), Err(IdTokenError::Time));
        assert_eq!(with(json!({ "nonce": "n-2" })), Err(IdTokenError::Nonce));
        assert_eq!(with(json!({ "nonce": null })), Err(IdTokenError::Nonce));
        assert_eq!(with(json!({ "sub": null })), Err(IdTokenError::Missing("sub")));
        assert_eq!(with(json!({ "exp": null })), Err(IdTokenError::Missing("exp")));
    }

    #[test]
    fn only_the_providers_keys_and_accepted_algorithms_sign() {
        let (key, jwks) = provider_key();
        let (other_key, _) = provider_key();
        let kid = key.kid().to_owned();
        // Another key, under the provider's key id.
        let forged = {
            let token = sign(&other_key, &good_claims());
            let (_, rest) = token.split_once('.').unwrap();
            let header = json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
            format!("{}.{rest}", base64_url(&header.to_string()))
        };
        assert_eq!(verify(&forged, &jwks, &expected()), Err(IdTokenError::Signature));
        assert_eq!(
            verify(&sign(&other_key, &good_claims()), &jwks, &expected()),
            Err(IdTokenError::Signature)
        );
        // An HMAC keyed with something public (the JWKS itself, say) is no signature.
        let hs = Header { kid: Some(kid.clone()), ..Header::new(jsonwebtoken::Algorithm::HS256) };
        let hmac = jsonwebtoken::encode(&hs, &good_claims(), &EncodingKey::from_secret(b"x")).unwrap();
        assert_eq!(verify(&hmac, &jwks, &expected()), Err(IdTokenError::Malformed));
        // alg none: three parts, no signature.
        let none = format!("{}.{}.", base64_url(r#"{"alg":"none"}"#), base64_url(&good_claims().to_string()));
        assert_eq!(verify(&none, &jwks, &expected()), Err(IdTokenError::Malformed));
        assert_eq!(verify("not a jwt", &jwks, &expected()), Err(IdTokenError::Malformed));
        assert!(verify(&sign(&key, &good_claims()), &jwks, &expected()).is_ok());
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }
}
