//! `Person::of` over real sockets: the person from the token, or from the
//! issuer's userinfo endpoint once per token, single-flight, only when a
//! handler asks; and revocation checks that count on every request.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgate_guard::{AuthInfo, Guard, GuardBuilder, Person, PersonClaims, RevocationCheck};
use axum::Router;
use axum::http::request::Parts;
use axum::routing::post;
use common::{TestIssuer, TestKey};
use serde_json::{Value, json};

/// Answers what `Person::of` says, or why not.
async fn person(parts: Parts) -> axum::Json<Value> {
    axum::Json(match Person::of(&parts).await {
        Ok(person) => json!({"person": person.claims}),
        Err(error) => json!({"error": error.to_string()}),
    })
}

/// Answers without asking for the person.
async fn plain(parts: Parts) -> axum::Json<Value> {
    axum::Json(json!({"sub": AuthInfo::from_parts(&parts).unwrap().subject}))
}

struct Setup {
    issuer: TestIssuer,
    key: TestKey,
    base: String,
    resource: String,
}

async fn setup(configure: impl FnOnce(GuardBuilder) -> GuardBuilder) -> Setup {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let guard = configure(Guard::builder(issuer.issuer(), &resource)).build().unwrap();
    let app = Router::new()
        .route("/mcp", post(person).layer(guard.layer()))
        .route("/plain", post(plain).layer(guard.layer()))
        .merge(guard.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup { issuer, key, base: format!("http://{addr}"), resource }
}

impl Setup {
    fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = self.issuer.claims(&self.resource, sub, "mcp:tools");
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.mint(&claims)
    }

    async fn call(&self, path: &str, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    fn userinfo_calls(&self) -> usize {
        self.issuer.count(|c| &c.userinfo)
    }
}

#[tokio::test]
async fn by_default_the_person_is_what_the_token_says_and_userinfo_is_never_asked() {
    let s = setup(|b| b).await;
    let token = s.token("alice", json!({"preferred_username": "alice", "email": "a@example.com"}));
    let (status, answer) = s.call("/mcp", &token).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["person"],
        json!({"sub": "alice", "preferred_username": "alice", "username": "alice",
                                        "email": "a@example.com"})
    );
    assert_eq!(s.userinfo_calls(), 0);
}

#[tokio::test]
async fn from_userinfo_the_person_is_asked_once_per_token_and_only_when_wanted() {
    let s = setup(|b| b.person_claims(PersonClaims::Userinfo)).await;
    let token = s.token("alice", json!({}));
    s.issuer.userinfo_answers(
        &token,
        200,
        json!({"sub": "alice", "username": "alice", "name": "Alice",
                                                   "roles": ["reader"]}),
    );

    // A handler that does not ask for the person costs no call.
    assert_eq!(s.call("/plain", &token).await.0, 200);
    assert_eq!(s.userinfo_calls(), 0, "lazy: nobody asked for the person");

    let (status, answer) = s.call("/mcp", &token).await;
    assert_eq!(status, 200);
    assert_eq!(answer["person"]["name"], "Alice", "{answer}");
    assert_eq!(answer["person"]["roles"], json!(["reader"]), "everything userinfo says is about her");
    for _ in 0..3 {
        assert_eq!(s.call("/mcp", &token).await.1, answer);
    }
    assert_eq!(s.userinfo_calls(), 1, "kept for the token's life");

    // Another token of hers is another question.
    let other = s.token("alice", json!({"jti": "second"}));
    s.issuer.userinfo_answers(&other, 200, json!({"sub": "alice", "name": "Alice L."}));
    assert_eq!(s.call("/mcp", &other).await.1["person"]["name"], "Alice L.");
    assert_eq!(s.userinfo_calls(), 2);
}

#[tokio::test]
async fn callers_asking_at_once_share_one_userinfo_call() {
    let s = setup(|b| b.person_claims(PersonClaims::Userinfo)).await;
    let token = s.token("alice", json!({}));
    s.issuer.userinfo_answers(&token, 200, json!({"sub": "alice", "name": "Alice"}));
    *s.issuer.state.userinfo_delay.lock().unwrap() = Duration::from_millis(300);
    let s = Arc::new(s);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (s, token) = (s.clone(), token.clone());
            tokio::spawn(async move { s.call("/mcp", &token).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().1["person"]["name"], "Alice");
    }
    assert_eq!(s.userinfo_calls(), 1, "single flight");
}

#[tokio::test]
async fn a_refusal_is_kept_a_failure_is_retried_and_another_subject_is_refused() {
    let s = setup(|b| b.person_claims(PersonClaims::Userinfo)).await;

    // Userinfo refuses a resource's token (as Logto's does): the token's own
    // claims still pass the guard, the person is not told, and nobody asks again.
    let refused = s.token("alice", json!({}));
    let (status, answer) = s.call("/mcp", &refused).await;
    assert_eq!(status, 200, "the token itself is fine");
    assert!(answer["error"].as_str().unwrap().contains("refused this token"), "{answer}");
    s.call("/mcp", &refused).await;
    assert_eq!(s.userinfo_calls(), 1, "a refusal is the answer for this token");

    // An issuer that fails is asked again next time.
    let flaky = s.token("alice", json!({"jti": "flaky"}));
    s.issuer.userinfo_answers(&flaky, 500, json!({}));
    assert!(s.call("/mcp", &flaky).await.1["error"].as_str().unwrap().contains("could not be asked"));
    s.issuer.userinfo_answers(&flaky, 200, json!({"sub": "alice", "name": "Alice"}));
    assert_eq!(s.call("/mcp", &flaky).await.1["person"]["name"], "Alice");
    assert_eq!(s.userinfo_calls(), 3);

    // An answer about somebody else is never taken as hers.
    let mixed = s.token("alice", json!({"jti": "mixed"}));
    s.issuer.userinfo_answers(&mixed, 200, json!({"sub": "mallory", "name": "Mallory"}));
    let (_, answer) = s.call("/mcp", &mixed).await;
    assert!(answer["error"].as_str().unwrap().contains("another subject"), "{answer}");
    assert_eq!(answer["person"], Value::Null);
}

/// Subjects revoked by the test, in memory.
#[derive(Default, Clone)]
struct Revoked(Arc<Mutex<HashSet<String>>>);

impl RevocationCheck for Revoked {
    fn is_revoked(&self, who: &AuthInfo) -> bool {
        self.0.lock().unwrap().contains(&who.subject)
    }
}

#[tokio::test]
async fn a_revocation_counts_on_the_next_request_even_for_a_cached_token() {
    let revoked = Revoked::default();
    let s = setup({
        let revoked = revoked.clone();
        |b| b.revocation_check(revoked)
    })
    .await;
    let token = s.token("alice", json!({}));
    assert_eq!(s.call("/plain", &token).await.0, 200, "verified, and now cached");
    revoked.0.lock().unwrap().insert("alice".into());
    let response = reqwest::Client::new()
        .post(format!("{}/plain", s.base))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("revoked"), "{body}");
    // Somebody else's token is not touched.
    assert_eq!(s.call("/plain", &s.token("bob", json!({}))).await.0, 200);
}
