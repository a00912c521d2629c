//! Signing keys against a real SQLite file: made once, kept across restarts,
//! sealed at rest, rotated with the old public key still published, and tokens
//! they sign verified by an independent JWT library.

mod common;

use agentgate_issuer::keys::{self, Alg, KeyError, KeyRing, KeyStatus, SigningKey};
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{SqliteStore, Store};
use common::TempDb;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// Verifies `token` with the JWKS, as any relying party would.
fn verify(token: &str, jwks: &Value) -> Result<Value, jsonwebtoken::errors::Error> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap();
    let jwk = set.find(&kid).ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(jsonwebtoken::decode_header(token)?.alg);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
}

#[tokio::test]
async fn the_first_key_is_made_once_and_survives_a_restart() {
    let db = TempDb::new();
    let (kek, kek_text) = KeyEncryptionKey::generate();
    let first = KeyRing::load(&SqliteStore::open(&db.url()).await.unwrap(), &kek, 1_000).await.unwrap();
    let token = first.active().sign_jwt("at+jwt", &json!({"sub": "alice"}));
    assert_eq!(verify(&token, first.jwks()).unwrap()["sub"], "alice");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!((header.alg, header.typ.as_deref()), (Algorithm::ES256, Some("at+jwt")));

    // A restart: a new store on the same file, the key-encryption key from its text.
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let again =
        KeyRing::load(&store, &KeyEncryptionKey::from_base64(&kek_text).unwrap(), 2_000).await.unwrap();
    assert_eq!(again.active().kid(), first.active().kid(), "the same key after a restart");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
    assert_eq!(verify(&token, again.jwks()).unwrap()["sub"], "alice");
}

#[tokio::test]
async fn private_keys_are_sealed_at_rest() {
    let db = TempDb::new();
    let (kek, _) = KeyEncryptionKey::generate();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    KeyRing::load(&store, &kek, 1_000).await.unwrap();
    let stored = &store.signing_keys().await.unwrap()[0];
    let jwk: Value = serde_json::from_str(&stored.public_jwk).unwrap();
    assert!(jwk.get("d").is_none(), "no private part in the public JWK");
    let opened = kek.open(&stored.sealed_private, &stored.kid).unwrap();
    assert!(!stored.sealed_private.contains(&base64_of(&opened)), "the stored form is not the key itself");

    // Another key-encryption key opens nothing, and the failure changes nothing.
    let (wrong, _) = KeyEncryptionKey::generate();
    let err = KeyRing::load(&store, &wrong, 2_000).await.unwrap_err();
    assert!(matches!(err, KeyError::Sealed { .. }), "{err}");
    assert!(err.to_string().contains("was it changed?"), "{err}");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1, "a failed load writes nothing");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn rotation_keeps_the_old_public_key_until_its_tokens_expired() {
    let db = TempDb::new();
    let (kek, _) = KeyEncryptionKey::generate();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let before = KeyRing::load(&store, &kek, 1_000).await.unwrap();
    let old_token = before.active().sign_jwt("at+jwt", &json!({"sub": "alice"}));

    let new_kid = keys::rotate(&store, &kek, 2_000, 600, Alg::Es256).await.unwrap();
    let after = KeyRing::load(&store, &kek, 2_001).await.unwrap();
    assert_eq!(after.active().kid(), new_kid);
    assert_ne!(new_kid, before.active().kid());
    assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2, "old and new published");
    assert!(verify(&old_token, after.jwks()).is_ok(), "tokens signed before the rotation still verify");
    let new_token = after.active().sign_jwt("at+jwt", &json!({"sub": "bob"}));
    assert_eq!(verify(&new_token, after.jwks()).unwrap()["sub"], "bob");

    let stored = store.signing_keys().await.unwrap();
    let old = stored.iter().find(|k| k.kid == before.active().kid()).unwrap();
    assert_eq!(keys::status(old, 2_001), KeyStatus::Retiring(2_600));
    assert_eq!(keys::status(old, 2_600), KeyStatus::Expired);

    let later = KeyRing::load(&store, &kek, 2_600).await.unwrap();
    assert_eq!(
        later.jwks()["keys"].as_array().unwrap().len(),
        1,
        "the old key is gone once its tokens expired"
    );
    assert!(verify(&old_token, later.jwks()).is_err());
}

#[tokio::test]
async fn kids_are_rfc7638_thumbprints() {
    // RFC 7638 §3.1's example is RSA; for EC, recompute the thumbprint from the
    // published members independently.
    use aws_lc_rs::digest;
    let (key, _) = SigningKey::generate(Alg::Es256);
    let jwk = key.public_jwk();
    let canonical = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}).to_string();
    let expected = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    };
    assert_eq!(key.kid(), expected);
}

#[tokio::test]
async fn rs256_keys_are_made_on_request_verify_and_rotate_on_their_own() {
    let db = TempDb::new();
    let (kek, _) = KeyEncryptionKey::generate();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let first = KeyRing::load(&store, &kek, 1_000).await.unwrap();
    assert!(first.active_for(Alg::Rs256).is_none(), "no RSA key until one is needed");

    let rsa_kid = keys::rotate(&store, &kek, 1_100, 600, Alg::Rs256).await.unwrap();
    let ring = KeyRing::load(&store, &kek, 1_200).await.unwrap();
    assert_eq!(ring.active().kid(), first.active().kid(), "the ES256 key is untouched");
    let rsa = ring.active_for(Alg::Rs256).unwrap();
    assert_eq!(rsa.kid(), rsa_kid);
    let token = rsa.sign_jwt("JWT", &json!({"sub": "alice"}));
    assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, Algorithm::RS256);
    assert_eq!(verify(&token, ring.jwks()).unwrap()["sub"], "alice");
    let jwk = rsa.public_jwk();
    assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some("RSA"), Some("RS256")));
    assert!(jwk.get("d").is_none() && jwk.get("p").is_none(), "no private part published");

    // RFC 7638 for RSA: the thumbprint of {"e","kty","n"}.
    let canonical = json!({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}).to_string();
    use base64::Engine;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()));
    assert_eq!(rsa.kid(), expected);

    // Rotating ES256 leaves the RSA key active, and the reverse.
    keys::rotate(&store, &kek, 1_300, 600, Alg::Es256).await.unwrap();
    let after = KeyRing::load(&store, &kek, 1_400).await.unwrap();
    assert_eq!(after.active_for(Alg::Rs256).unwrap().kid(), rsa_kid);
    assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 3, "two ES256 (one retiring) and one RS256");
    assert!(verify(&token, after.jwks()).is_ok());
}

/// Two instances on one database: a token signed with a key the other one
/// made a moment ago verifies at once (the verifier reads the keys again for a
/// key id it has not seen), without waiting for the periodic reload.
#[tokio::test]
async fn a_token_signed_by_another_instances_new_key_verifies_at_once() {
    use agentgate_issuer::clients;
    use agentgate_issuer::{Issuer, Settings};

    let db = TempDb::new();
    let (_, kek_text) = KeyEncryptionKey::generate();
    let kek = || KeyEncryptionKey::from_base64(&kek_text).unwrap();
    let open = || async { SqliteStore::open(&db.url()).await.unwrap() };
    let store = open().await;
    let alice = common::alice_and_whoami(&store).await;
    let app = common::native_app("SmartMail AI", "http://127.0.0.1/callback", "mcp:tools");
    let app = clients::register(&store, app, 1).await.unwrap().client;
    let a = Issuer::open(store, kek(), Settings::new("http://127.0.0.1:8080")).await.unwrap();
    let b = Issuer::open(open().await, kek(), Settings::new("http://127.0.0.1:8080")).await.unwrap();
    let first = common::code_tokens(
        &a,
        &alice,
        &app.client_id,
        "http://127.0.0.1/callback",
        vec!["mcp:tools".into()],
    );
    assert!(b.validate_access_token(&first.await.access_token).await.is_ok());

    // A rotates (as `agentgate keys rotate` or another instance would) and signs with the new key.
    keys::rotate(a.store(), &kek(), agentgate_issuer::now(), 600, Alg::Es256).await.unwrap();
    a.reload_keys().await.unwrap();
    let new_kid = a.keys().active().kid().to_owned();
    assert!(b.keys().verifying_key(&new_kid).is_none(), "B has not read the new key yet");
    // B read its keys when it opened, under a second ago: it waits that long
    // before reading them again for an unknown key id.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second = common::code_tokens(
        &a,
        &alice,
        &app.client_id,
        "http://127.0.0.1/callback",
        vec!["mcp:tools".into()],
    );
    let claims = b.validate_access_token(&second.await.access_token).await;
    assert!(claims.is_ok(), "B verifies a token of A's new key at once: {claims:?}");
    assert!(b.keys().verifying_key(&new_kid).is_some());
}
