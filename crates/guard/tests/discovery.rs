//! Authorization server discovery against a real HTTP issuer: the MCP probing
//! order, the exact-issuer rule, the PKCE requirement, single flight.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentgate_guard::{Discovery, DiscoveryError};
use common::{Counters, Serves, TestIssuer, dead_address};
use serde_json::json;

#[tokio::test]
async fn probes_in_the_mcp_order_for_an_issuer_with_a_path() {
    let issuer = TestIssuer::start_with("/tenant1", Serves::OpenId).await;
    let metadata = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap();
    assert_eq!(metadata.issuer, issuer.issuer());
    assert_eq!(
        *issuer.state.counters.paths.lock().unwrap(),
        [
            "/.well-known/oauth-authorization-server/tenant1",
            "/.well-known/openid-configuration/tenant1",
            "/tenant1/.well-known/openid-configuration",
        ]
    );
}

#[tokio::test]
async fn finds_openid_configuration_at_the_root() {
    let issuer = TestIssuer::start_with("", Serves::OpenId).await;
    let metadata = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap();
    assert!(metadata.jwks_uri.as_deref().unwrap().ends_with("/jwks"));
    assert_eq!(
        *issuer.state.counters.paths.lock().unwrap(),
        ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
    );
}

#[tokio::test]
async fn refuses_a_document_naming_another_issuer() {
    let issuer = TestIssuer::start().await;
    issuer.override_metadata(json!({"issuer": "https://honest.example"}));
    let err = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap_err();
    assert!(
        matches!(err, DiscoveryError::IssuerMismatch { ref found, .. } if found == "https://honest.example"),
        "{err}"
    );
    // A trailing slash is a different issuer too.
    issuer.override_metadata(json!({"issuer": format!("{}/", issuer.issuer())}));
    let err = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap_err();
    assert!(matches!(err, DiscoveryError::IssuerMismatch { .. }), "{err}");
}

#[tokio::test]
async fn requires_pkce_s256_and_the_code_flow() {
    let issuer = TestIssuer::start().await;
    for (overrides, needle) in [
        (json!({"code_challenge_methods_supported": ["plain"]}), "S256"),
        (json!({"code_challenge_methods_supported": null}), "S256"),
        (json!({"response_types_supported": ["token"]}), "code"),
    ] {
        issuer.override_metadata(overrides);
        let err = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap_err();
        assert!(
            matches!(err, DiscoveryError::Unsuitable { .. }) && err.to_string().contains(needle),
            "{err}"
        );
    }
}

#[tokio::test]
async fn refuses_plain_http_endpoints_off_loopback() {
    let issuer = TestIssuer::start().await;
    for field in ["jwks_uri", "userinfo_endpoint", "introspection_endpoint"] {
        issuer.override_metadata(json!({ field: "http://keys.example.com/jwks" }));
        let err = Discovery::new(issuer.issuer()).unwrap().metadata().await.unwrap_err();
        assert!(
            matches!(err, DiscoveryError::Unsuitable { .. }) && err.to_string().contains("https"),
            "{field}: {err}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_issuer_is_reported_as_such() {
    let addr = dead_address().await;
    let err = Discovery::new(&format!("http://{addr}")).unwrap().metadata().await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Unreachable(_)), "{err}");
}

#[tokio::test]
async fn nothing_found_lists_what_was_tried() {
    let issuer = TestIssuer::start_with("/a", Serves::OAuth).await;
    let other = format!("http://{}/b", issuer.addr);
    let err = Discovery::new(&other).unwrap().metadata().await.unwrap_err();
    assert!(matches!(err, DiscoveryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn single_flight_and_cached() {
    let issuer = TestIssuer::start().await;
    *issuer.state.metadata_delay.lock().unwrap() = Duration::from_millis(150);
    let discovery = Arc::new(Discovery::new(issuer.issuer()).unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let d = discovery.clone();
            tokio::spawn(async move { d.metadata().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    discovery.metadata().await.unwrap();
    assert_eq!(issuer.count(|c: &Counters| &c.metadata), 1);
}

#[test]
fn refuses_plain_http_issuers_off_loopback() {
    assert!(Discovery::new("http://auth.example.com").is_err());
    assert!(Discovery::new("https://auth.example.com").is_ok());
}
