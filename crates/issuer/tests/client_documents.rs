//! Client ID Metadata Documents fetched for real: a document server on a
//! loopback port (allowed by the development setting) serves good and bad
//! documents; with the setting off, private and loopback addresses are refused
//! before any connection is made.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agentgate_issuer::client_assertions::ASSERTION_TYPE;
use agentgate_issuer::client_documents::DocumentError;
use agentgate_issuer::keys::{Alg, SigningKey};
use agentgate_issuer::scopes::add_resource;
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{SqliteStore, Store};
use agentgate_issuer::tokens::{ClientCredentials, CodeExchange, CodeRequest};
use agentgate_issuer::{Issuer, Settings};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{CHALLENGE, MCP, TempDb, VERIFIER};
use serde_json::json;

/// A document server; counts the requests it answers.
struct DocumentServer {
    base: String,
    hits: Arc<AtomicUsize>,
}

async fn documents() -> DocumentServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let doc = |base: &str, path: &str, extra: serde_json::Value| {
        let mut body = json!({
            "client_id": format!("{base}{path}"),
            "client_name": "Wandering agent",
            "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let b = base.clone();
    let answer = move |State(hits): State<Arc<AtomicUsize>>, uri: axum::http::Uri| {
        let b = b.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let path = uri.path();
            let json = |body: String, cache: &'static str| -> Response {
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
                headers.insert(header::CACHE_CONTROL, cache.parse().unwrap());
                (headers, body).into_response()
            };
            match path {
                "/good.json" => json(doc(&b, path, json!({})), "max-age=3600"),
                "/mismatch.json" => json(doc(&b, "/other.json", json!({})), "max-age=3600"),
                "/big.json" => {
                    json(doc(&b, path, json!({ "client_uri": "https://x.example/".repeat(400) })), "no-store")
                }
                "/redirect.json" => {
                    (StatusCode::FOUND, [(header::LOCATION, format!("{b}/good.json"))]).into_response()
                }
                "/html.json" => {
                    ([(header::CONTENT_TYPE, "text/html")], doc(&b, path, json!({}))).into_response()
                }
                "/secret.json" => json(
                    doc(&b, path, json!({ "token_endpoint_auth_method": "client_secret_basic" })),
                    "no-store",
                ),
                "/no-name.json" => json(doc(&b, path, json!({ "client_name": null })), "no-store"),
                "/bad-redirect.json" => {
                    json(doc(&b, path, json!({ "redirect_uris": ["javascript:alert(1)"] })), "no-store")
                }
                "/greedy.json" => {
                    json(doc(&b, path, json!({ "scope": "openid agentgate:admin" })), "no-store")
                }
                "/not-json.json" => json("{ nope".into(), "no-store"),
                "/keyed.json" => json(
                    doc(
                        &b,
                        path,
                        json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": agent_jwks() }),
                    ),
                    "max-age=3600",
                ),
                "/keyed-by-uri.json" => json(
                    doc(
                        &b,
                        path,
                        json!({
                            "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("{b}/jwks.json")
                        }),
                    ),
                    "max-age=3600",
                ),
                "/jwks.json" => json(agent_jwks().to_string(), "max-age=60"),
                "/keys-inside.json" => json(
                    doc(
                        &b,
                        path,
                        json!({
                            "token_endpoint_auth_method": "private_key_jwt",
                            "jwks_uri": "https://169.254.169.254/latest/jwks.json"
                        }),
                    ),
                    "no-store",
                ),
                "/keyless.json" => json(
                    doc(&b, path, json!({ "token_endpoint_auth_method": "private_key_jwt" })),
                    "no-store",
                ),
                "/with-secret.json" => json(doc(&b, path, json!({ "client_secret": "s3cret" })), "no-store"),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    };
    let app = Router::new().fallback(get(answer)).with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    DocumentServer { base, hits }
}

/// The agent's own signing key: its public half is in its documents.
fn agent_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Alg::Es256).0)
}

fn agent_jwks() -> serde_json::Value {
    json!({ "keys": [agent_key().public_jwk()] })
}

/// A `private_key_jwt` client assertion for `client_id`, signed by `key`.
fn assertion(key: &SigningKey, client_id: &str, jti: &str) -> String {
    let now = agentgate_issuer::now();
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": "http://127.0.0.1:8080",
        "jti": jti, "iat": now, "exp": now + 60,
    });
    key.sign_jwt("JWT", &claims)
}

async fn issuer(allow_loopback: bool) -> (TempDb, Issuer<SqliteStore>) {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    add_resource(&store, MCP, "whoami", &[("mcp:tools", "Use the tools")], 1).await.unwrap();
    let mut settings = Settings::new("http://127.0.0.1:8080");
    settings.client_documents = true;
    settings.client_documents_allow_loopback = allow_loopback;
    let (kek, _) = KeyEncryptionKey::generate();
    (db, Issuer::open(store, kek, settings).await.unwrap())
}

#[tokio::test]
async fn a_good_document_becomes_an_unverified_third_party_app_and_is_cached() {
    let server = documents().await;
    let (_db, issuer) = issuer(true).await;
    let url = format!("{}/good.json", server.base);
    let client = issuer.document_client(&url).await.unwrap();
    assert_eq!(client.client_id, url);
    assert_eq!(client.name, "Wandering agent");
    assert!(client.third_party);
    assert_eq!(client.registration, "document");
    assert_eq!(client.token_endpoint_auth_method, "none");
    assert!(client.secret_hash.is_none());
    assert_eq!(client.application_type, "native", "loopback redirect URIs");
    assert_eq!(client.scopes, ["openid", "profile", "email", "offline_access", "mcp:tools"], "the ceiling");
    // Stored for grants and tokens (the version is the store's own).
    let stored = issuer.store().client(&url).await.unwrap().unwrap();
    assert_eq!(agentgate_issuer::store::Client { version: client.version, ..stored }, client);

    // max-age=3600: the second use does not fetch again.
    let again = issuer.document_client(&url).await.unwrap();
    assert_eq!(again, client);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_documents_are_refused_and_nothing_is_stored() {
    let server = documents().await;
    let (_db, issuer) = issuer(true).await;
    for (path, expect) in [
        ("/mismatch.json", "is not the URL it was fetched from"),
        ("/big.json", "larger than 5120 bytes"),
        ("/redirect.json", "redirects are not followed"),
        ("/html.json", "not JSON"),
        ("/secret.json", "cannot hold a secret"),
        ("/no-name.json", "client_name is required"),
        ("/bad-redirect.json", "javascript"),
        ("/greedy.json", "agentgate:admin"),
        ("/not-json.json", "not a JSON object"),
        ("/keyless.json", "jwks or jwks_uri"),
        ("/with-secret.json", "client_secret"),
        ("/missing.json", "HTTP 404"),
    ] {
        let url = format!("{}{path}", server.base);
        let error = issuer.document_client(&url).await.unwrap_err();
        assert!(
            matches!(error, DocumentError::Fetch { .. } | DocumentError::Invalid { .. }),
            "{path}: {error:?}"
        );
        assert!(error.to_string().contains(expect), "{path}: {error}");
        assert_eq!(issuer.store().client(&url).await.unwrap(), None, "{path}: nothing stored");
    }
    // A failure is remembered for a little while: asking again fetches nothing.
    let hits = server.hits.load(Ordering::SeqCst);
    let again = issuer.document_client(&format!("{}/missing.json", server.base)).await.unwrap_err();
    assert!(again.to_string().contains("failed less than 30 seconds ago"), "{again}");
    assert_eq!(server.hits.load(Ordering::SeqCst), hits);
}

/// A listener that counts the connections it receives.
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (address, connections)
}

#[tokio::test]
async fn private_and_loopback_addresses_are_refused_without_a_connection() {
    let (_db, issuer) = issuer(false).await;
    let (address, connections) = counting_listener().await;
    let port = address.port();
    for url in [
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
        "https://10.0.0.1/client.json".to_owned(),
        "https://169.254.169.254/latest/meta-data/client.json".to_owned(),
        "https://[::ffff:a9fe:a9fe]/client.json".to_owned(), // 169.254.169.254
    ] {
        let started = std::time::Instant::now();
        let error = issuer.document_client(&url).await.unwrap_err();
        assert!(matches!(error, DocumentError::ForbiddenAddress(_)), "{url}: {error:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{url}: refused before any connection attempt");
        assert_eq!(issuer.store().client(&url).await.unwrap(), None);
    }
    // Even plain http on loopback is refused without the development setting.
    let error = issuer.document_client(&format!("http://127.0.0.1:{port}/client.json")).await.unwrap_err();
    assert!(matches!(error, DocumentError::BadUrl { .. }), "{error:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing ever connected");
}

#[tokio::test]
async fn a_document_never_replaces_an_app_registered_another_way() {
    let server = documents().await;
    let (_db, issuer) = issuer(true).await;
    let url = format!("{}/good.json", server.base);
    let admin = agentgate_issuer::store::Client {
        client_id: url.clone(),
        name: "Registered by hand".into(),
        registration: "admin".into(),
        ..Default::default()
    };
    issuer.store().insert_client(&admin).await.unwrap();
    let error = issuer.document_client(&url).await.unwrap_err();
    assert!(error.to_string().contains("registered another way"), "{error}");
    assert_eq!(issuer.store().client(&url).await.unwrap().unwrap().name, "Registered by hand");
}

#[tokio::test]
async fn with_documents_turned_off_a_stored_document_app_is_refused_everywhere() {
    use agentgate_issuer::authorize::{AuthorizeError, RequestParams};
    use agentgate_issuer::tokens::ClientCredentials;
    let server = documents().await;
    let db = TempDb::new();
    let url = format!("{}/good.json", server.base);
    let (kek, kek_text) = KeyEncryptionKey::generate();
    {
        let store = SqliteStore::open(&db.url()).await.unwrap();
        let mut settings = Settings::new("http://127.0.0.1:8080");
        settings.client_documents = true;
        settings.client_documents_allow_loopback = true;
        let issuer = Issuer::open(store, kek, settings).await.unwrap();
        issuer.document_client(&url).await.unwrap();
    }
    // The operator turns documents off; the stored copy stays in the database.
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let kek = KeyEncryptionKey::from_base64(&kek_text).unwrap();
    let issuer = Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await.unwrap();
    assert!(issuer.store().client(&url).await.unwrap().is_some());
    let credentials = ClientCredentials { client_id: Some(url.clone()), ..Default::default() };
    let error = issuer.authenticate_client(&credentials).await.unwrap_err();
    assert_eq!(error.code, agentgate_issuer::ErrorCode::InvalidClient);

    struct Query(Vec<(&'static str, String)>);
    impl RequestParams for Query {
        fn param(&self, name: &str) -> Option<&str> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
        }
    }
    let query = Query(vec![
        ("client_id", url.clone()),
        ("redirect_uri", "http://127.0.0.1:33418/callback".into()),
        ("response_type", "code".into()),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        ("code_challenge_method", "S256".into()),
    ]);
    match issuer.check_authorization(&query).await {
        Err(AuthorizeError::Page(message)) => assert!(message.contains("not registered"), "{message}"),
        other => panic!("expected a refusal page, got {other:?}"),
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "nothing fetched once documents are off");
}

#[tokio::test]
async fn a_document_with_public_keys_authenticates_with_private_key_jwt_once_per_assertion() {
    let server = documents().await;
    let (_db, issuer) = issuer(true).await;
    let issuer = &issuer;
    let url = format!("{}/keyed.json", server.base);
    let client = issuer.document_client(&url).await.unwrap();
    assert_eq!(client.token_endpoint_auth_method, "private_key_jwt");
    assert!(client.jwks.is_some() && client.secret_hash.is_none());
    let alice = common::alice(issuer.store()).await;

    let code = || {
        issuer.issue_code(CodeRequest {
            client_id: url.clone(),
            user_id: alice.clone(),
            redirect_uri: "http://127.0.0.1:33418/callback".into(),
            code_challenge: CHALLENGE.into(),
            resource: MCP.into(),
            scopes: vec!["mcp:tools".into()],
            nonce: None,
            auth_time: 5,
        })
    };
    let exchange = |code: String, proof: ClientCredentials| async move {
        let request = CodeExchange {
            code: Some(&code),
            redirect_uri: Some("http://127.0.0.1:33418/callback"),
            code_verifier: Some(VERIFIER),
            resource: None,
        };
        issuer.exchange_code(&proof, request).await
    };
    let signed = |jwt: String| ClientCredentials {
        client_assertion_type: Some(ASSERTION_TYPE.into()),
        client_assertion: Some(jwt),
        ..Default::default()
    };

    // Without an assertion, with another key, or with a secret: refused, and the code stays good.
    let first = code().await.unwrap();
    let bare = ClientCredentials { client_id: Some(url.clone()), ..Default::default() };
    let stranger = SigningKey::generate(Alg::Es256).0;
    let posing = ClientCredentials { client_secret: Some("guess".into()), ..bare.clone() };
    for proof in [bare, signed(assertion(&stranger, &url, "a")), posing] {
        let refused = exchange(first.clone(), proof.clone()).await.unwrap_err();
        assert_eq!(refused.code, agentgate_issuer::ErrorCode::InvalidClient, "{proof:?}: {refused}");
    }
    let jwt = assertion(agent_key(), &url, "b");
    let tokens = exchange(first, signed(jwt.clone())).await.unwrap();
    assert!(issuer.validate_access_token(&tokens.access_token).await.is_ok());

    // The same assertion again, even with a fresh code: a replay.
    let replayed = exchange(code().await.unwrap(), signed(jwt)).await.unwrap_err();
    assert!(replayed.description.contains("already used"), "{replayed}");

    // Keys behind jwks_uri are fetched with the document, under the same guard.
    let by_uri = format!("{}/keyed-by-uri.json", server.base);
    let client = issuer.document_client(&by_uri).await.unwrap();
    assert_eq!(client.jwks.as_deref(), Some(agent_jwks().to_string().as_str()));
    // ...and a jwks_uri on a private address is refused like a document would be.
    let inside = format!("{}/keys-inside.json", server.base);
    let refused = issuer.document_client(&inside).await.unwrap_err();
    assert!(matches!(refused, DocumentError::ForbiddenAddress(_)), "{refused:?}");
    assert_eq!(issuer.store().client(&inside).await.unwrap(), None);
    // A client_id that differs from the assertion's sub is refused.
    let mismatched =
        ClientCredentials { client_id: Some(by_uri.clone()), ..signed(assertion(agent_key(), &url, "c")) };
    let refused = exchange(code().await.unwrap(), mismatched).await.unwrap_err();
    assert!(refused.description.contains("differs"), "{refused}");
}

/// A document server on `ip` whose every answer waits for `release` (a slow
/// host); counts the requests it was sent.
async fn slow_documents(ip: &str, release: Arc<tokio::sync::Notify>) -> DocumentServer {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let b = base.clone();
    let app = Router::new().fallback(get(move |uri: axum::http::Uri| {
        let (release, counted, b) = (release.clone(), counted.clone(), b.clone());
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            let body = json!({"client_id": format!("{b}{}", uri.path()), "client_name": "Slow agent",
                              "redirect_uris": ["http://127.0.0.1:33418/callback"],
                              "token_endpoint_auth_method": "none"});
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    DocumentServer { base, hits }
}

/// The issuer's fetches are few per host: twenty documents from one slow host
/// (more than the turns of all hosts together) hold two turns, and a document
/// from another host is fetched meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_host_does_not_delay_another_host_s_document() {
    let release = Arc::new(tokio::sync::Notify::new());
    // 127.0.0.2 is loopback too, and another host than 127.0.0.1.
    let slow = slow_documents("127.0.0.2", release.clone()).await;
    let good = documents().await;
    let (_db, issuer) = issuer(true).await;
    let issuer = Arc::new(issuer);
    let waiting: Vec<_> = (0..20)
        .map(|n| {
            let (issuer, url) = (issuer.clone(), format!("{}/agent-{n}.json", slow.base));
            tokio::spawn(async move { issuer.document_client(&url).await })
        })
        .collect();
    // Until the slow host has its requests in hand...
    while slow.hits.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...then another app's document, from another host, while they hang. If
    // it waited behind them it would never come: the slow host answers only
    // once this is done (10 s is a generous bound, not a measure).
    let fetched = tokio::time::timeout(
        Duration::from_secs(10),
        issuer.document_client(&format!("{}/good.json", good.base)),
    )
    .await
    .expect("another host's document is fetched while the slow host hangs");
    assert_eq!(fetched.unwrap().name, "Wandering agent");
    assert_eq!(slow.hits.load(Ordering::SeqCst), 2, "the slow host has two fetches at once, no more");
    release.notify_waiters();
    let mut answered = 0;
    for task in waiting {
        // Every slow fetch ends: answered once its turn came, or refused after
        // waiting the fetch timeout for one.
        if task.await.unwrap().is_ok() {
            answered += 1;
        }
    }
    assert!(answered >= 2, "the two in flight were answered ({answered})");
}

/// A host that cannot be reached is not tried again for a while, whatever
/// URL on it is named next.
#[tokio::test]
async fn an_unreachable_host_is_remembered_for_every_url_on_it() {
    let (_db, issuer) = issuer(true).await;
    let listener = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let first = issuer.document_client(&format!("http://{address}/one.json")).await.unwrap_err();
    assert!(matches!(first, DocumentError::Fetch { .. }), "{first}");

    // Now something answers there, but another URL on the host is not fetched.
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(get(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::NOT_FOUND }
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let second = issuer.document_client(&format!("http://{address}/two.json")).await.unwrap_err();
    assert!(
        second.to_string().contains("its host could not be reached less than 30 seconds ago"),
        "{second}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request was sent");
}
