//! The userinfo and introspection verifiers against a real HTTP issuer: what they
//! accept, what they refuse, and that their caches are keyed by the token's hash
//! and bounded in time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentgate_guard::{
    AuthError, ClientAuthMethod, Discovery, Guard, IntrospectionVerifier, InvalidToken, ResourceId,
    TokenVerifier, UserinfoVerifier, Verification,
};
use common::{Counters, TestIssuer, dead_address, now};
use serde_json::json;

const RESOURCE: &str = "http://127.0.0.1:9/mcp";

fn discovery(issuer: &TestIssuer) -> Arc<Discovery> {
    Arc::new(Discovery::new(issuer.issuer()).unwrap())
}

#[tokio::test]
async fn userinfo_claims_become_the_identity_and_are_cached_briefly() {
    let issuer = TestIssuer::start().await;
    let claims = json!({"sub": "alice", "name": "Alice Liddell", "email": "alice@example.com"});
    issuer.userinfo_answers("opaque-alice", 200, claims.clone());
    let v = UserinfoVerifier::new(discovery(&issuer)).cache_ttl(Duration::from_millis(300));
    let info = v.verify("opaque-alice").await.unwrap();
    assert_eq!(info.subject, "alice");
    assert_eq!(info.issuer, issuer.issuer());
    assert_eq!(info.claims_json(), claims);
    assert!(info.audience.is_empty() && info.scopes.is_empty(), "userinfo cannot know these");
    v.verify("opaque-alice").await.unwrap();
    assert_eq!(issuer.count(|c: &Counters| &c.userinfo), 1, "the second call is served from the cache");
    tokio::time::sleep(Duration::from_millis(350)).await;
    v.verify("opaque-alice").await.unwrap();
    assert_eq!(issuer.count(|c: &Counters| &c.userinfo), 2, "the cache entry expired");
}

#[tokio::test]
async fn userinfo_refusals() {
    let issuer = TestIssuer::start().await;
    issuer.userinfo_answers("no-sub", 200, json!({"name": "nobody"}));
    issuer.userinfo_answers("forbidden", 403, json!({"error": "insufficient_scope"}));
    issuer.userinfo_answers("broken", 500, json!({}));
    let v = UserinfoVerifier::new(discovery(&issuer));
    assert_eq!(v.verify("unknown").await.unwrap_err(), InvalidToken::Rejected.into());
    assert_eq!(v.verify("forbidden").await.unwrap_err(), InvalidToken::Rejected.into());
    assert_eq!(v.verify("no-sub").await.unwrap_err(), InvalidToken::MissingSubject.into());
    assert!(matches!(v.verify("broken").await.unwrap_err(), AuthError::IssuerUnavailable(_)));
    // Refusals are not cached: each one asked the issuer.
    v.verify("unknown").await.unwrap_err();
    assert_eq!(issuer.count(|c: &Counters| &c.userinfo), 5);
}

#[tokio::test]
async fn userinfo_cannot_be_combined_with_required_scopes() {
    let err = Guard::builder("https://as.example", RESOURCE)
        .verification(Verification::Userinfo)
        .scopes(["whoami"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("userinfo"), "{err}");
    let err = Guard::builder("https://as.example", RESOURCE)
        .verification(Verification::Userinfo)
        .tool_scopes("send", ["mail:send"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("per-tool"), "{err}");
}

fn introspector(issuer: &TestIssuer) -> IntrospectionVerifier {
    IntrospectionVerifier::new(
        discovery(issuer),
        ResourceId::parse(RESOURCE).unwrap(),
        "guard",
        "guard-secret",
    )
}

#[tokio::test]
async fn introspection_checks_the_answer_like_a_jwt() {
    let issuer = TestIssuer::start().await;
    let good = json!({"active": true, "iss": issuer.issuer(), "sub": "alice", "aud": RESOURCE,
                      "scope": "whoami", "client_id": "app", "exp": now() + 600});
    issuer.introspection_answers("good", good.clone());
    issuer.introspection_answers("inactive", json!({"active": false}));
    let mut other_aud = good.clone();
    other_aud["aud"] = "http://127.0.0.1:9/other".into();
    issuer.introspection_answers("other-aud", other_aud);
    let mut other_iss = good.clone();
    other_iss["iss"] = "https://evil.example".into();
    issuer.introspection_answers("other-iss", other_iss);
    let mut expired = good.clone();
    expired["exp"] = (now() - 3600).into();
    issuer.introspection_answers("expired", expired);
    issuer.introspection_answers(
        "machine",
        json!({"active": true, "client_id": "m2m", "aud": RESOURCE, "scope": "whoami"}),
    );

    let v = introspector(&issuer);
    let info = v.verify("good").await.unwrap();
    assert_eq!((info.subject.as_str(), info.scopes.as_slice()), ("alice", &["whoami".to_string()][..]));
    assert!(!info.claims.contains_key("active"));
    assert_eq!(v.verify("machine").await.unwrap().subject, "m2m");
    assert_eq!(v.verify("inactive").await.unwrap_err(), InvalidToken::Inactive.into());
    assert_eq!(v.verify("never-issued").await.unwrap_err(), InvalidToken::Inactive.into());
    assert_eq!(v.verify("other-aud").await.unwrap_err(), InvalidToken::WrongAudience.into());
    assert_eq!(v.verify("other-iss").await.unwrap_err(), InvalidToken::WrongIssuer.into());
    assert_eq!(v.verify("expired").await.unwrap_err(), InvalidToken::Expired.into());

    let before = issuer.count(|c: &Counters| &c.introspection);
    v.verify("good").await.unwrap();
    assert_eq!(issuer.count(|c: &Counters| &c.introspection), before, "an active answer is cached");
}

#[tokio::test]
async fn introspection_cache_never_outlives_the_token() {
    let issuer = TestIssuer::start().await;
    issuer.introspection_answers(
        "short",
        json!({"active": true, "sub": "alice", "aud": RESOURCE, "exp": now() + 1}),
    );
    let v = introspector(&issuer).cache_ttl(Duration::from_secs(3600)).leeway(Duration::ZERO);
    v.verify("short").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(v.verify("short").await.unwrap_err(), InvalidToken::Expired.into(), "asked again after exp");
    assert_eq!(issuer.count(|c: &Counters| &c.introspection), 2);
}

#[tokio::test]
async fn introspection_authenticates_both_ways_and_reports_bad_credentials_as_unavailable() {
    let issuer = TestIssuer::start().await;
    issuer.introspection_answers("t", json!({"active": true, "sub": "alice", "aud": RESOURCE}));
    let post = introspector(&issuer).auth_method(ClientAuthMethod::ClientSecretPost);
    assert!(post.verify("t").await.is_ok());
    let wrong = IntrospectionVerifier::new(
        discovery(&issuer),
        ResourceId::parse(RESOURCE).unwrap(),
        "guard",
        "wrong",
    );
    assert!(matches!(wrong.verify("t").await.unwrap_err(), AuthError::IssuerUnavailable(_)));
    assert!(!format!("{wrong:?}").contains("wrong"), "the secret never appears in Debug output");
}

#[tokio::test]
async fn calls_to_the_issuer_in_flight_are_bounded() {
    let issuer = TestIssuer::start().await;
    *issuer.state.userinfo_delay.lock().unwrap() = Duration::from_millis(300);
    let v = Arc::new(UserinfoVerifier::new(discovery(&issuer)));
    // Made-up tokens, all different, all at once: at most 64 reach the issuer.
    let flood: Vec<_> = (0..150)
        .map(|i| {
            let v = v.clone();
            tokio::spawn(async move { v.verify(&format!("made-up-{i}")).await })
        })
        .collect();
    let mut busy = 0;
    for task in flood {
        match task.await.unwrap().unwrap_err() {
            AuthError::IssuerUnavailable(_) => busy += 1,
            other => assert_eq!(other, InvalidToken::Rejected.into()),
        }
    }
    assert_eq!(issuer.count(|c: &Counters| &c.userinfo), 150 - busy);
    assert!(issuer.count(|c: &Counters| &c.userinfo) <= 64, "the bound holds");
    assert!(busy >= 150 - 64, "the rest are told to come back later");
}

#[tokio::test]
async fn short_session_keys_are_refused() {
    let err =
        Guard::builder("https://as.example", RESOURCE).session_key(b"short".to_vec()).build().unwrap_err();
    assert!(err.to_string().contains("32 bytes"), "{err}");
    assert!(Guard::builder("https://as.example", RESOURCE).session_key(vec![7u8; 32]).build().is_ok());
}

#[tokio::test]
async fn unreachable_issuers_are_unavailable_for_every_verifier() {
    let dead = Arc::new(Discovery::new(&format!("http://{}", dead_address().await)).unwrap());
    let u = UserinfoVerifier::new(dead.clone());
    let i = IntrospectionVerifier::new(dead, ResourceId::parse(RESOURCE).unwrap(), "a", "b");
    assert!(matches!(u.verify("t").await.unwrap_err(), AuthError::IssuerUnavailable(_)));
    assert!(matches!(i.verify("t").await.unwrap_err(), AuthError::IssuerUnavailable(_)));
}
