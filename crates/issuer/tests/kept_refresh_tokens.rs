//! A provider's refresh token, kept sealed at each sign-in and traded for an
//! access token for the MCP servers behind the gateway: the issuer's own
//! functions, called without HTTP, against a provider made here that counts
//! what it is asked and rotates its refresh tokens. Every way to misuse a kept
//! token is tried: reading it from the database, moving it to another
//! person's row, using it after the provider ended the grant.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentgate_issuer::keys::{Alg, SigningKey};
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{SqliteStore, Store};
use agentgate_issuer::upstream::{
    Admission, ClientSecret, ProviderAnswer, ProviderConfig, ProviderKind, ProviderTokenError,
};
use agentgate_issuer::{Issuer, Settings};
use axum::extract::Query;
use serde_json::json;

/// What the made-up provider was asked, and how it answers.
#[derive(Default)]
struct Seen {
    /// The query of each authorization request.
    asked: Mutex<Vec<HashMap<String, String>>>,
    /// How many refresh grants it answered.
    refreshes: AtomicUsize,
    /// Each account's current refresh token number (older ones are refused).
    current: Mutex<HashMap<String, u32>>,
    /// How it answers a refresh: 0 as it should, 1 as GitHub says a grant
    /// ended (HTTP 200, `bad_refresh_token`), 2 with a rotated refresh token
    /// and no access token.
    mode: AtomicUsize,
    /// The tokens revoked at its revocation endpoint.
    revoked: Mutex<Vec<String>>,
}

/// A provider: discovery offering `offline_access`, an authorization endpoint
/// that signs in the account named by `sub` at once, a token endpoint that
/// gives `refresh-{sub}-{n}` and takes only the latest of each account.
async fn made_up_provider() -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let key = Arc::new(SigningKey::generate(Alg::Es256).0);
    let seen = Arc::new(Seen::default());
    let codes: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let metadata = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "offline_access"],
        "revocation_endpoint": format!("{issuer}/revoke"),
    });
    let (auth_seen, auth_codes) = (seen.clone(), codes.clone());
    let (token_seen, token_key, token_issuer, jwks_key) = (seen.clone(), key.clone(), issuer.clone(), key);
    let revoke_seen = seen.clone();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(metadata) }))
        .route(
            "/auth",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                auth_seen.asked.lock().unwrap().push(q.clone());
                let code = agentgate_issuer::random_token(16);
                let sub = q.get("sub").cloned().unwrap_or_else(|| "s-1".into());
                auth_codes.lock().unwrap().insert(code.clone(), (sub, q["nonce"].clone()));
                let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
                back.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]);
                async move { axum::response::Redirect::to(back.as_str()) }
            }),
        )
        .route(
            "/token",
            axum::routing::post(move |body: String| {
                let form: HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let seen = token_seen.clone();
                let now = agentgate_issuer::now();
                let answer = match form["grant_type"].as_str() {
                    "authorization_code" => {
                        let (sub, nonce) = codes.lock().unwrap().remove(&form["code"]).unwrap();
                        let claims = json!({ "iss": token_issuer, "aud": "agentgate", "sub": sub, "nonce": nonce,
                            "iat": now, "exp": now + 300, "preferred_username": sub });
                        let number = {
                            let mut current = seen.current.lock().unwrap();
                            let n = current.entry(sub.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        Ok(json!({ "access_token": "at-sign-in", "token_type": "Bearer",
                            "id_token": token_key.sign_jwt("JWT", &claims),
                            "refresh_token": format!("refresh-{sub}-{number}") }))
                    }
                                        "refresh_token" => {
                        seen.refreshes.fetch_add(1, Ordering::SeqCst);
                        let presented = form.get("refresh_token").cloned().unwrap_or_default();
                        let mut current = seen.current.lock().unwrap();
                        let valid = current.iter().find(|(sub, n)| presented == format!("refresh-{sub}-{n}"));
                        match (valid.map(|(sub, n)| (sub.clone(), *n)), seen.mode.load(Ordering::SeqCst)) {
                            (_, 1) => Ok(json!({ "error": "bad_refresh_token" })),
                            (Some((sub, n)), mode) => {
                                current.insert(sub.clone(), n + 1);
                                let mut answer = json!({ "access_token": format!("access-{sub}-{n}"),
                                    "token_type": "bearer", "expires_in": "3600",
                                    "refresh_token": format!("refresh-{sub}-{}", n + 1) });
                                if mode == 2 {
                                    answer.as_object_mut().unwrap().remove("access_token");
                                }
                                Ok(answer)
                            }
                            (None, _) => Err(json!({ "error": "invalid_grant" })),
                        }
                    }
                    _ => Err(json!({ "error": "unsupported_grant_type" })),
                };
                                let refresh = form["grant_type"] == "refresh_token";
                async move {
                    if refresh {
                        // Slow enough that a second refresh would overlap it.
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    match answer {
                        Ok(body) => (axum::http::StatusCode::OK, axum::Json(body)),
                        Err(body) => (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)),
                    }
                }
            }),
        )
                .route(
            "/revoke",
            axum::routing::post(move |body: String| {
                let form: HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                revoke_seen.revoked.lock().unwrap().push(form["token"].clone());
                async {}
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = json!({ "keys": [jwks_key.public_jwk()] });
                async move { axum::Json(jwks) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (issuer, seen)
}

fn provider(issuer: &str, keep: bool) -> ProviderConfig {
    ProviderConfig {
        id: "made-up".into(),
        name: "Made Up".into(),
        issuer: issuer.into(),
        kind: ProviderKind::OpenIdConnect,
        client_id: "agentgate".into(),
        client_secret: ClientSecret::new("secret"),
        scopes: vec!["openid".into(), "profile".into()],
        admit: Admission::Anyone,
        keep_refresh_token: keep,
    }
}

async fn issuer(store: SqliteStore, kek: KeyEncryptionKey, provider: ProviderConfig) -> Issuer<SqliteStore> {
    let mut settings = Settings::new("http://127.0.0.1:9");
    settings.identity_providers = vec![provider];
    Issuer::open(store, kek, settings).await.unwrap()
}

/// The account `sub` signs in through the provider: the person's id here.
async fn sign_in(issuer: &Issuer<SqliteStore>, sub: &str) -> String {
    let now = agentgate_issuer::now();
    let sent = issuer.begin_upstream_sign_in("made-up", "", "browser", None, None, now).await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = http.get(format!("{sent}&sub={sub}")).send().await.unwrap();
    let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let answer =
        ProviderAnswer { code: q.get("code").cloned(), state: q.get("state").cloned(), ..Default::default() };
    issuer.finish_upstream_sign_in("made-up", &answer, Some("browser"), None, now).await.unwrap().user.id
}

/// Every byte of the database's files.
fn database_bytes(db: &common::TempDb) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.path().display());
        bytes.extend(std::fs::read(path).unwrap_or_default());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_kept_refresh_token_is_sealed_at_rest_and_serves_its_own_person_only() {
    let (provider_url, seen) = made_up_provider().await;
    let db = common::TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = issuer(store.clone(), kek, provider(&provider_url, true)).await;
    let now = agentgate_issuer::now();

    let alice = sign_in(&issuer, "s-1").await;
    let asked = seen.asked.lock().unwrap()[0].clone();
    assert!(
        asked["scope"].split(' ').any(|s| s == "offline_access"),
        "a refresh token is asked for: {asked:?}"
    );
    assert_eq!(asked["prompt"], "consent", "with consent, as OpenID Connect Core §11 says");

    // At rest: sealed, the token itself nowhere in the database's files.
    let (subject, sealed) = store.kept_refresh_token(&alice, &provider_url).await.unwrap().unwrap();
    assert_eq!(subject, "s-1");
    assert!(!sealed.contains("refresh-s-1"), "{sealed}");
    assert!(!contains(&database_bytes(&db), "refresh-s-1-1"), "the refresh token is not in the database");

    // Traded for an access token, which is handed out again while it lasts.
    let access = issuer.provider_access_token(&alice, "made-up", now).await.unwrap();
    assert_eq!(access.access_token, "access-s-1-1");
    assert!(!format!("{access:?}").contains("access-s-1"), "Debug hides it: {access:?}");
    assert_eq!(issuer.provider_access_token(&alice, "made-up", now).await.unwrap(), access);
    assert_eq!(seen.refreshes.load(Ordering::SeqCst), 1, "asked once");
    // The provider rotated it; the rotated one is kept (sealed) instead.
    let (_, rotated) = store.kept_refresh_token(&alice, &provider_url).await.unwrap().unwrap();
    assert_ne!(rotated, sealed);
    assert!(!contains(&database_bytes(&db), "refresh-s-1-2"));
    // Later, the rotated one is used (the provider refuses older ones).
    let later = issuer.provider_access_token(&alice, "made-up", now + 3600).await.unwrap();
    assert_eq!(later.access_token, "access-s-1-2");

    // bob's row given alice's sealed token: it opens for her account only.
    let bob = sign_in(&issuer, "s-2").await;
    let (_, alices) = store.kept_refresh_token(&alice, &provider_url).await.unwrap().unwrap();
    assert!(store.keep_refresh_token(&provider_url, "s-2", Some(&alices), None).await.unwrap());
    let moved = issuer.provider_access_token(&bob, "made-up", now).await;
    assert!(matches!(moved, Err(ProviderTokenError::NotKept { .. })), "{moved:?}");

    // A person with no sign-in there, and a provider that is not configured.
    let nobody = issuer.provider_access_token("no-such-person", "made-up", now).await;
    assert!(matches!(nobody, Err(ProviderTokenError::NotKept { .. })), "{nobody:?}");
    let unknown = issuer.provider_access_token(&alice, "elsewhere", now).await;
    assert_eq!(unknown, Err(ProviderTokenError::UnknownProvider));
}

#[tokio::test]
async fn a_grant_the_provider_ended_is_dropped_and_nothing_is_kept_unless_configured() {
    let (provider_url, seen) = made_up_provider().await;
    let db = common::TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (kek, kek_text) = KeyEncryptionKey::generate();
    let issuer = issuer(store.clone(), kek, provider(&provider_url, true)).await;
    let now = agentgate_issuer::now();
    let alice = sign_in(&issuer, "s-1").await;

    // The provider ends the grant (here: it moved on to a newer token, as
    // after a sign-in elsewhere): the kept one is dropped, and the words say
    // what to do.
    seen.current.lock().unwrap().insert("s-1".into(), 9);
    let ended = issuer.provider_access_token(&alice, "made-up", now).await.unwrap_err();
    assert!(ended.to_string().contains("sign in with Made Up"), "{ended}");
    assert_eq!(store.kept_refresh_token(&alice, &provider_url).await.unwrap(), None, "dropped");

    // Signing in again keeps a new one, which works.
    sign_in(&issuer, "s-1").await;

    let access = issuer.provider_access_token(&alice, "made-up", now).await.unwrap();
    assert_eq!(access.access_token, "access-s-1-10");

    // A provider whose configuration does not keep them: nothing is asked
    // for, nothing kept, and what was kept before goes at the next sign-in.
    let kek = KeyEncryptionKey::from_base64(&kek_text).unwrap();
    let plain = self::issuer(store.clone(), kek, provider(&provider_url, false)).await;
    sign_in(&plain, "s-1").await;
    let asked = seen.asked.lock().unwrap().last().unwrap().clone();
    assert!(!asked["scope"].contains("offline_access") && !asked.contains_key("prompt"), "{asked:?}");
    assert_eq!(store.kept_refresh_token(&alice, &provider_url).await.unwrap(), None);
    assert_eq!(*seen.revoked.lock().unwrap(), ["refresh-s-1-11"], "and revoked at the provider");
    let refused = plain.provider_access_token(&alice, "made-up", now).await;
    assert!(matches!(refused, Err(ProviderTokenError::NotKept { .. })), "{refused:?}");
}

#[tokio::test]
async fn racing_requests_refresh_once_and_an_unlinked_account_is_revoked_and_forgotten() {
    let (provider_url, seen) = made_up_provider().await;
    let db = common::TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = Arc::new(issuer(store.clone(), kek, provider(&provider_url, true)).await);
    let now = agentgate_issuer::now();
    let alice = sign_in(&issuer, "s-1").await;

    // Two requests at once: one refresh (a second would present a rotated
    // token, which a rotating provider takes for theft), one token for both.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (issuer, alice) = (issuer.clone(), alice.clone());
            tokio::spawn(async move { issuer.provider_access_token(&alice, "made-up", now).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for racer in racers {
        tokens.push(racer.await.unwrap().unwrap().access_token);
    }
    assert_eq!(tokens, ["access-s-1-1", "access-s-1-1"]);
    assert_eq!(seen.refreshes.load(Ordering::SeqCst), 1);

    // A rotated refresh token is kept even when the answer is otherwise no good.
    seen.mode.store(2, Ordering::SeqCst);
    let (_, before) = store.kept_refresh_token(&alice, &provider_url).await.unwrap().unwrap();
    let failed = issuer.provider_access_token(&alice, "made-up", now + 3600).await;
    assert!(matches!(failed, Err(ProviderTokenError::Provider(_))), "{failed:?}");
    let (_, after) = store.kept_refresh_token(&alice, &provider_url).await.unwrap().unwrap();
    assert_ne!(before, after, "the rotated one was kept");
    seen.mode.store(0, Ordering::SeqCst);
    let access = issuer.provider_access_token(&alice, "made-up", now + 3600).await.unwrap();
    assert_eq!(access.access_token, "access-s-1-3", "the rotated one works");

    // The operator unlinks the account: its token is revoked at the provider,
    // and the access token handed out before is not handed out again.
    assert!(issuer.drop_provider_account(&alice, &provider_url, "s-1").await.unwrap());
    assert_eq!(*seen.revoked.lock().unwrap(), ["refresh-s-1-4"]);
    let gone = issuer.provider_access_token(&alice, "made-up", now + 3600).await;
    assert!(matches!(gone, Err(ProviderTokenError::NotKept { .. })), "{gone:?}");
}

#[tokio::test]
async fn github_s_way_of_saying_a_grant_ended_drops_it_too() {
    let (provider_url, seen) = made_up_provider().await;
    let db = common::TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = issuer(store.clone(), kek, provider(&provider_url, true)).await;
    let alice = sign_in(&issuer, "s-1").await;
    seen.mode.store(1, Ordering::SeqCst);
    let ended = issuer.provider_access_token(&alice, "made-up", agentgate_issuer::now()).await;
    assert!(matches!(ended, Err(ProviderTokenError::NotKept { .. })), "{ended:?}");
    assert_eq!(store.kept_refresh_token(&alice, &provider_url).await.unwrap(), None);
}
