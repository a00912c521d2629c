//! The JWT verifier against a corpus of bad tokens minted with real keys, and the
//! key cache's refetch rules. Each refusal must carry its own reason.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentgate_guard::{AuthError, Discovery, InvalidToken, JwtVerifier, ResourceId, TokenVerifier};
use aws_lc_rs::hmac;
use common::{Counters, TestIssuer, TestKey, b64, now};
use serde_json::{Value, json};

const RESOURCE: &str = "http://127.0.0.1:9/mcp";

fn verifier(issuer: &TestIssuer) -> JwtVerifier {
    let discovery = Arc::new(Discovery::new(issuer.issuer()).unwrap());
    JwtVerifier::new(discovery, ResourceId::parse(RESOURCE).unwrap())
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn refusal(v: &JwtVerifier, token: &str) -> AuthError {
    v.verify(token).await.expect_err("the token must be refused")
}

#[tokio::test]
async fn accepts_valid_tokens_of_every_key_type() {
    let issuer = TestIssuer::start().await;
    let (ec, rsa, ed) = (TestKey::es256("ec"), TestKey::rs256("rsa"), TestKey::ed25519("ed"));
    issuer.set_keys(&[&ec, &rsa, &ed]);
    let v = verifier(&issuer);
    for key in [&ec, &rsa, &ed] {
        let info = v.verify(&key.mint(&issuer.claims(RESOURCE, "alice", "whoami mcp:tools"))).await.unwrap();
        assert_eq!(info.subject, "alice");
        assert_eq!(info.issuer, issuer.issuer());
        assert_eq!(info.scopes, ["whoami", "mcp:tools"]);
        assert_eq!(info.client_id.as_deref(), Some("test-client"));
        assert_eq!(info.audience, [RESOURCE]);
        assert!(info.expires_at.is_some());
        assert_eq!(info.claims["sub"], "alice");
    }
    // Audience spelled with a trailing slash and an upper-case scheme and host.
    let token = ec.mint(&with(
        issuer.claims(RESOURCE, "alice", ""),
        json!({"aud": ["other", "HTTP://127.0.0.1:9/mcp/"]}),
    ));
    assert!(v.verify(&token).await.is_ok());
    // A plain JWT (typ JWT) with `scp` and `azp`, as some issuers send.
    let plain = ec.mint_with_header(
        &json!({"alg": "ES256", "typ": "JWT", "kid": "ec"}),
        &with(
            issuer.claims(RESOURCE, "bob", ""),
            json!({"scope": null, "scp": ["a", "b"], "client_id": null, "azp": "app"}),
        ),
    );
    let info = v.verify(&plain).await.unwrap();
    assert_eq!(info.scopes, ["a", "b"]);
    assert_eq!(info.client_id.as_deref(), Some("app"));
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 1, "keys are fetched once and cached");
}

#[tokio::test]
async fn refuses_each_bad_token_with_its_reason() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    let foreign = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    let v = verifier(&issuer);
    let good = issuer.claims(RESOURCE, "alice", "whoami");
    let t = now();
    use InvalidToken::*;

    let cases: Vec<(&str, String, InvalidToken)> = vec![
        ("expired", key.mint(&with(good.clone(), json!({"exp": t - 120}))), Expired),
        ("not yet valid", key.mint(&with(good.clone(), json!({"nbf": t + 600}))), NotYetValid),
        ("wrong iss", key.mint(&with(good.clone(), json!({"iss": "http://127.0.0.1:1"}))), WrongIssuer),
        (
            "iss with trailing slash",
            key.mint(&with(good.clone(), json!({"iss": format!("{}/", issuer.issuer())}))),
            WrongIssuer,
        ),
        (
            "wrong aud",
            key.mint(&with(good.clone(), json!({"aud": "http://127.0.0.1:9/other"}))),
            WrongAudience,
        ),
        ("missing aud", key.mint(&with(good.clone(), json!({"aud": null}))), WrongAudience),
        ("missing sub", key.mint(&with(good.clone(), json!({"sub": null}))), MissingSubject),
        ("missing exp", key.mint(&with(good.clone(), json!({"exp": null}))), MissingExpiry),
        ("right kid, foreign key", foreign.mint(&good), BadSignature),
        (
            "id token type",
            key.mint_with_header(&json!({"alg": "ES256", "typ": "logout+jwt", "kid": "k1"}), &good),
            WrongType,
        ),
        (
            "critical header",
            key.mint_with_header(&json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1}), &good),
            UnsupportedCriticalHeader,
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(refusal(&v, &token).await, AuthError::InvalidToken(want), "{name}");
    }

    // Payload swapped under a valid signature.
    let original = key.mint(&good);
    let other_payload = key.mint(&with(good.clone(), json!({"sub": "mallory"})));
    let mut parts: Vec<&str> = original.split('.').collect();
    parts[1] = other_payload.split('.').nth(1).unwrap();
    assert_eq!(refusal(&v, &parts.join(".")).await, BadSignature.into(), "payload swap");

    // Truncated: signature shortened, or dropped altogether.
    // Dropping the signature's first four characters (three bytes) keeps it valid
    // base64url, so this reaches the signature check.
    let (signed, signature) = original.rsplit_once('.').unwrap();
    let short = format!("{signed}.{}", &signature[4..]);
    assert_eq!(refusal(&v, &short).await, BadSignature.into(), "short signature");
    let cut = &original[..original.len() - 5];
    assert!(matches!(refusal(&v, cut).await, AuthError::InvalidToken(Malformed | BadSignature)), "cut short");
    let two_parts = original.rsplit_once('.').unwrap().0;
    assert_eq!(refusal(&v, two_parts).await, Malformed.into(), "no signature");

    // An unknown kid (after the keys were fetched once) is refused without a refetch.
    let stranger = TestKey::es256("who-knows");
    assert_eq!(refusal(&v, &stranger.mint(&good)).await, UnknownKey.into(), "unknown kid");
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 1);
}

#[tokio::test]
async fn cheap_refusals_never_touch_the_network() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::rs256("k1");
    issuer.set_keys(&[&key]);
    let v = verifier(&issuer);
    let good = issuer.claims(RESOURCE, "alice", "whoami");
    let payload = b64(good.to_string().as_bytes());
    use InvalidToken::*;

    // alg: none, with and without a signature.
    let none_header = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    // HS256 "signed" with the issuer's public key: the algorithm-confusion attack.
    let hs_header = b64(br#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#);
    let hs_signed = format!("{hs_header}.{payload}");
    let hs_key = hmac::Key::new(hmac::HMAC_SHA256, &key.public_bytes());
    let hs_token = format!("{hs_signed}.{}", b64(hmac::sign(&hs_key, hs_signed.as_bytes()).as_ref()));

    let cases: Vec<(&str, String, InvalidToken)> = vec![
        ("alg none, empty signature", format!("{none_header}.{payload}."), UnsupportedAlgorithm),
        ("alg none, junk signature", format!("{none_header}.{payload}.c2ln"), UnsupportedAlgorithm),
        ("HS256 with the public key", hs_token, UnsupportedAlgorithm),
        ("unknown alg", format!("{}.{payload}.c2ln", b64(br#"{"alg":"XX999"}"#)), UnsupportedAlgorithm),
        ("not base64", "abc.@@@.def".to_owned(), Malformed),
        ("header not JSON", format!("{}.{payload}.c2ln", b64(b"not json")), Malformed),
        ("opaque token", "f3a9c2e1d0b4a5968778695a4b3c2d1e".to_owned(), Malformed),
        ("JWE shape", "a.b.c.d.e".to_owned(), Malformed),
        ("empty signature", format!("{}.{payload}.", b64(br#"{"alg":"RS256","kid":"k1"}"#)), Malformed),
        ("100 KB long", "a".repeat(100 * 1024), TooLong),
    ];
    for (name, token, want) in cases {
        assert_eq!(refusal(&v, &token).await, AuthError::InvalidToken(want), "{name}");
    }
    assert_eq!(issuer.count(|c: &Counters| &c.metadata), 0, "no discovery for cheap refusals");
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 0, "no key fetch for cheap refusals");
}

#[tokio::test]
async fn a_hundred_first_requests_make_one_fetch() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    *issuer.state.metadata_delay.lock().unwrap() = Duration::from_millis(100);
    *issuer.state.jwks_delay.lock().unwrap() = Duration::from_millis(100);
    let v = Arc::new(verifier(&issuer).cache_ttl(Duration::ZERO));
    let token = key.mint(&issuer.claims(RESOURCE, "alice", "whoami"));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(issuer.count(|c: &Counters| &c.metadata), 1, "discovery is single-flight");
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 1, "the key fetch is single-flight");
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let issuer = TestIssuer::start().await;
    let old = TestKey::es256("old");
    issuer.set_keys(&[&old]);
    *issuer.state.jwks_delay.lock().unwrap() = Duration::from_millis(50);
    let v = Arc::new(verifier(&issuer).min_refetch_interval(Duration::from_millis(300)));
    let claims = issuer.claims(RESOURCE, "alice", "whoami");
    assert!(v.verify(&old.mint(&claims)).await.is_ok());
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 1);

    // The issuer rotates. Within the interval, a flood of tokens with new or
    // made-up kids causes no fetch at all.
    let new = TestKey::es256("new");
    issuer.set_keys(&[&old, &new]);
    let flood: Vec<_> = (0..50)
        .map(|i| {
            let token = TestKey::es256(&format!("made-up-{i}")).mint(&claims);
            let v = v.clone();
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in flood {
        assert_eq!(task.await.unwrap().unwrap_err(), InvalidToken::UnknownKey.into());
    }
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 1, "no refetch inside the interval");

    // After the interval, fifty requests with the new kid at once: one refetch.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let token = new.mint(&claims);
    let wave: Vec<_> = (0..50)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in wave {
        assert!(task.await.unwrap().is_ok(), "the rotated key is picked up");
    }
    assert_eq!(issuer.count(|c: &Counters| &c.jwks), 2, "one single-flight refetch");
}

#[tokio::test]
async fn skips_keys_it_cannot_use_and_checks_key_algorithms() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    let mut rs_claimed = key.jwk();
    rs_claimed["kid"] = "k2".into();
    rs_claimed["alg"] = "ES384".into();
    issuer.set_jwks(json!({"keys": [
        {"kty": "oct", "k": b64(&key.public_bytes()), "kid": "k1", "alg": "HS256"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "odd"},
        {"kty": "future-kind"},
        rs_claimed,
        key.jwk(),
    ]}));
    let v = verifier(&issuer);
    let claims = issuer.claims(RESOURCE, "alice", "");
    assert!(v.verify(&key.mint(&claims)).await.is_ok(), "the usable key is found among unusable ones");
    // A key published for ES384 is not used for an ES256 token.
    let mislabelled = key.mint_with_header(&json!({"alg": "ES256", "kid": "k2"}), &claims);
    assert_eq!(refusal(&v, &mislabelled).await, InvalidToken::UnknownKey.into());
}

#[tokio::test]
async fn tokens_without_kid_try_matching_keys() {
    let issuer = TestIssuer::start().await;
    let (a, b) = (TestKey::es256("a"), TestKey::es256("b"));
    issuer.set_keys(&[&a, &b]);
    let v = verifier(&issuer);
    let token = b.mint_with_header(&json!({"alg": "ES256"}), &issuer.claims(RESOURCE, "alice", ""));
    assert!(v.verify(&token).await.is_ok());
}
