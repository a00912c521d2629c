//! An agent known only by the URL of its Client ID Metadata Document, against
//! a real `agentgate dev`: the test serves the document on loopback (allowed by
//! `--allow-loopback-client-documents`); alice signs in and consents on a page
//! that says the app is not verified and where it describes itself; the code
//! is exchanged with the URL as client id. Without the setting, the same URL is
//! refused with a page and nothing is fetched.

mod support;

use std::sync::atomic::Ordering;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use support::Dev;
use support::browser::Browser;

const PASSWORD: &str = "wonderland";
const REDIRECT: &str = "http://127.0.0.1:7777/callback";
// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_url(dev: &Dev, client_id: &str, redirect_uri: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", dev.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "mcp:tools")
        .append_pair("state", "s1")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

#[tokio::test]
async fn an_agent_known_by_its_document_gets_alices_consent_and_a_token() {
    let (document, hits) = support::document_server(REDIRECT).await;
    let dev = Dev::start_with(PASSWORD, &["--allow-loopback-client-documents"]);
    let http = reqwest::Client::new();
    let metadata = support::server_metadata(&dev.base).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    let methods = metadata["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "private_key_jwt"), "for apps known by their document: {methods:?}");
    assert!(
        metadata["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    // A redirect URI the document does not list, even on another loopback port, is refused.
    let mut browser = Browser::new("en");
    let refused = browser.get(&authorize_url(&dev, &document, "http://127.0.0.1:7778/callback")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.location.is_none(), "never redirected");

    let sign_in = browser.get(&authorize_url(&dev, &document, REDIRECT)).await;
    let consent = browser.sign_in(&dev.base, &sign_in, "alice", PASSWORD).await;
    assert!(consent.body.contains("Wandering agent"), "{}", consent.body);
    assert!(consent.body.contains("Not verified"));
    assert!(consent.body.contains("This app describes itself at 127.0.0.1."));
    let back = browser.decide(&dev.base, &consent, "allow").await;
    let params = back.redirect_params();
    assert_eq!(params["state"], "s1");

    let response = http
        .post(format!("{}/token", dev.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", document.as_str()),
            ("code", params["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let payload = tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap();
    assert_eq!(claims["client_id"], document.as_str());
    assert_eq!(claims["aud"], format!("{}/mcp", dev.base));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
}

#[tokio::test]
async fn without_the_development_setting_a_loopback_document_is_refused_unfetched() {
    let (document, hits) = support::document_server(REDIRECT).await;
    let dev = Dev::start(PASSWORD);
    let https_twin = document.replacen("http://", "https://", 1);
    for client_id in [document.as_str(), https_twin.as_str()] {
        let mut browser = Browser::new("en");
        let page = browser.get(&authorize_url(&dev, client_id, REDIRECT)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}: {}", page.body);
        assert!(page.location.is_none());
        assert!(page.body.contains("could not be identified"), "{}", page.body);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was fetched");
}
