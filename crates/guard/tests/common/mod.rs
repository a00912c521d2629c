//! A test issuer: a real HTTP server on port 0 that serves discovery, JWKS,
//! userinfo and introspection, signs tokens with real keys, and counts every
//! request so tests can assert single-flight behaviour.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    signer: Signer,
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Self { kid: kid.into(), alg: "ES256", signer: Signer::Es256(pair) }
    }

    pub fn rs256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        Self { kid: kid.into(), alg: "RS256", signer: Signer::Rs256(pair) }
    }

    pub fn ed25519(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        Self { kid: kid.into(), alg: "EdDSA", signer: Signer::Ed(pair) }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Signer::Rs256(pair) => {
                let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                       "n": b64(&components.n), "e": b64(&components.e)})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA", "use": "sig",
                       "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    /// The raw bytes of the public key: what an attacker would use as an HMAC
    /// secret in the classic algorithm-confusion attack.
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Es256(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Rs256(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Ed(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Es256(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Rs256(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A JWT with this key's `kid` and `alg` and the given payload.
    pub fn mint(&self, payload: &Value) -> String {
        self.mint_with_header(&json!({"alg": self.alg, "typ": "at+jwt", "kid": self.kid}), payload)
    }

    /// A JWT with any header, signed with this key.
    pub fn mint_with_header(&self, header: &Value, payload: &Value) -> String {
        let signed =
            format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
        format!("{signed}.{}", b64(&self.sign(signed.as_bytes())))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Which well-known document the issuer answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    OAuth,
    OpenId,
}

#[derive(Default)]
pub struct Counters {
    pub metadata: AtomicUsize,
    pub jwks: AtomicUsize,
    pub userinfo: AtomicUsize,
    pub introspection: AtomicUsize,
    pub paths: Mutex<Vec<String>>,
}

pub struct IssuerState {
    pub issuer: String,
    pub path: String,
    pub serves: Serves,
    pub metadata_overrides: Mutex<Value>,
    pub jwks: Mutex<Value>,
    pub jwks_delay: Mutex<Duration>,
    pub metadata_delay: Mutex<Duration>,
    pub userinfo_delay: Mutex<Duration>,
    pub userinfo: Mutex<HashMap<String, (u16, Value)>>,
    pub introspection: Mutex<HashMap<String, Value>>,
    pub introspection_client: (String, String),
    pub counters: Counters,
}

/// A running test issuer.
pub struct TestIssuer {
    pub addr: SocketAddr,
    pub state: Arc<IssuerState>,
}

impl TestIssuer {
    /// An issuer at the root of a fresh port, serving RFC 8414 metadata.
    pub async fn start() -> Self {
        Self::start_with("", Serves::OAuth).await
    }

    /// An issuer whose identifier has `path` (e.g. "/tenant1"), serving one kind of
    /// well-known document.
    pub async fn start_with(path: &str, serves: Serves) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(IssuerState {
            issuer: format!("http://{addr}{path}"),
            path: path.to_owned(),
            serves,
            metadata_overrides: Mutex::new(json!({})),
            jwks: Mutex::new(json!({"keys": []})),
            jwks_delay: Mutex::new(Duration::ZERO),
            metadata_delay: Mutex::new(Duration::ZERO),
            userinfo_delay: Mutex::new(Duration::ZERO),
            userinfo: Mutex::new(HashMap::new()),
            introspection: Mutex::new(HashMap::new()),
            introspection_client: ("guard".into(), "guard-secret".into()),
            counters: Counters::default(),
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/userinfo", get(userinfo))
            .route("/introspect", post(introspect))
            .fallback(get(well_known))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    pub fn override_metadata(&self, overrides: Value) {
        *self.state.metadata_overrides.lock().unwrap() = overrides;
    }

    pub fn userinfo_answers(&self, token: &str, status: u16, body: Value) {
        self.state.userinfo.lock().unwrap().insert(token.into(), (status, body));
    }

    pub fn introspection_answers(&self, token: &str, body: Value) {
        self.state.introspection.lock().unwrap().insert(token.into(), body);
    }

    pub fn count(&self, which: fn(&Counters) -> &AtomicUsize) -> usize {
        which(&self.state.counters).load(Ordering::SeqCst)
    }

    /// Standard claims for a token for `resource`, valid for ten minutes.
    pub fn claims(&self, resource: &str, sub: &str, scope: &str) -> Value {
        let now = now();
        json!({"iss": self.issuer(), "sub": sub, "aud": resource, "scope": scope,
               "client_id": "test-client", "iat": now, "exp": now + 600, "jti": format!("jti-{now}-{sub}")})
    }
}

/// An address where nothing listens.
pub async fn dead_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

async fn well_known(State(s): State<Arc<IssuerState>>, uri: axum::http::Uri) -> Response {
    let path = uri.path().to_owned();
    s.counters.paths.lock().unwrap().push(path.clone());
    let wanted = match s.serves {
        Serves::OAuth => format!("/.well-known/oauth-authorization-server{}", s.path),
        Serves::OpenId if s.path.is_empty() => "/.well-known/openid-configuration".to_owned(),
        Serves::OpenId => format!("{}/.well-known/openid-configuration", s.path),
    };
    if path != wanted {
        return StatusCode::NOT_FOUND.into_response();
    }
    s.counters.metadata.fetch_add(1, Ordering::SeqCst);
    let delay = *s.metadata_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let base = s.issuer.trim_end_matches(&s.path).to_owned();
    let mut doc = json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "introspection_endpoint": format!("{base}/introspect"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    });
    for (k, v) in s.metadata_overrides.lock().unwrap().as_object().unwrap() {
        doc[k] = v.clone();
    }
    Json(doc).into_response()
}

async fn jwks(State(s): State<Arc<IssuerState>>) -> Json<Value> {
    s.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let delay = *s.jwks_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    Json(s.jwks.lock().unwrap().clone())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

async fn userinfo(State(s): State<Arc<IssuerState>>, headers: HeaderMap) -> Response {
    s.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    let delay = *s.userinfo_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let token = bearer(&headers).unwrap_or_default();
    match s.userinfo.lock().unwrap().get(&token) {
        Some((status, body)) => (StatusCode::from_u16(*status).unwrap(), Json(body.clone())).into_response(),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token"}))).into_response(),
    }
}

async fn introspect(
    State(s): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.counters.introspection.fetch_add(1, Ordering::SeqCst);
    let (id, secret) = &s.introspection_client;
    let basic = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let by_basic = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(basic.as_str());
    let by_post = form.get("client_id") == Some(id) && form.get("client_secret") == Some(secret);
    if !by_basic && !by_post {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = s.introspection.lock().unwrap().get(&token).cloned().unwrap_or(json!({"active": false}));
    Json(answer).into_response()
}
