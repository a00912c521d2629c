//! Dynamic client registration over real HTTP against `agentgate dev`:
//! RFC 7591 registration, RFC 7592 read, update and delete with the
//! registration access token, the refusals, the rate limit, and the consent
//! page of an app that registered itself.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Dev;
use support::browser::Browser;

const PASSWORD: &str = "wonderland";
const REDIRECT: &str = "http://127.0.0.1:7777/callback";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn agent() -> Value {
    json!({
        "client_name": "Roaming agent",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "logo_uri": "https://agent.example/logo.png",
        "software_id": "ignored: the server does not understand it",
    })
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let response = http.post(url).json(body).send().await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (response.status(), response.json().await.unwrap())
}

/// `agentgate apps list --json` on the instance's data.
fn list_apps(dev: &Dev) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["apps", "list", "--json", "--data-dir"])
        .arg(&dev.data_dir)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn app_count(dev: &Dev) -> usize {
    list_apps(dev).len()
}

#[tokio::test]
async fn an_agent_registers_reads_updates_and_deletes_itself() {
    let dev = Dev::start(PASSWORD);
    let http = reqwest::Client::new();
    let metadata = support::server_metadata(&dev.base).await;
    let endpoint =
        metadata["registration_endpoint"].as_str().expect("advertised by agentgate dev").to_owned();
    assert_eq!(endpoint, format!("{}/register", dev.base));

    // Refusals first: nothing is stored.
    let apps = app_count(&dev);
    let form = http.post(&endpoint).form(&[("redirect_uris", REDIRECT)]).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert_eq!(form.json::<Value>().await.unwrap()["error"], "invalid_client_metadata");
    for (body, error) in [
        (json!({ "redirect_uris": REDIRECT }), "invalid_client_metadata"),
        (
            json!({ "redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "none" }),
            "invalid_redirect_uri",
        ),
        (json!({ "redirect_uris": [REDIRECT], "application_type": "web" }), "invalid_redirect_uri"),
        (
            json!({ "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"] }),
            "invalid_client_metadata",
        ),
    ] {
        let (status, answer) = post(&http, &endpoint, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{body} → {answer}"
        );
        assert!(answer["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert_eq!(app_count(&dev), apps, "refused registrations store nothing");

    // Registration.
    let (status, made) = post(&http, &endpoint, &agent()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["client_id"].as_str().unwrap().to_owned();
    let token = made["registration_access_token"].as_str().unwrap().to_owned();
    let own_uri = made["registration_client_uri"].as_str().unwrap().to_owned();
    assert_eq!(own_uri, format!("{}/register/{id}", dev.base));
    assert!(made.get("client_secret").is_none(), "a public app has no secret: {made}");
    assert_eq!(made["redirect_uris"], json!([REDIRECT]));
    assert_eq!(made["token_endpoint_auth_method"], "none");
    assert!(made.get("software_id").is_none(), "unknown metadata is ignored, not echoed");
    let listed = list_apps(&dev);
    let app = listed.iter().find(|a| a["client_id"] == id.as_str()).expect("listed");
    assert_eq!((app["registration"].as_str(), app["third_party"].as_bool()), (Some("dynamic"), Some(true)));
    assert_eq!(listed.len(), apps + 1);

    // Reading it takes its registration access token, and only that.
    let read = |bearer: Option<&str>| {
        let request = http.get(&own_uri);
        let request = match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    for (bearer, challenge) in [(None, "Bearer"), (Some("guess"), "Bearer error=\"invalid_token\"")] {
        let refused = read(bearer).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()["www-authenticate"], challenge, "RFC 6750 §3.1");
    }
    let current: Value = read(Some(&token)).await.json().await.unwrap();
    assert_eq!(current["client_id"], id.as_str());
    assert_eq!(current["registration_access_token"], token.as_str(), "RFC 7592 §3 requires it");
    assert_eq!(current["registration_client_uri"], own_uri.as_str());

    // The consent page says the app is not verified and shows no logo it chose.
    let mut browser = Browser::new("en");
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=mcp%3Atools&state=s\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        dev.base
    );
    let sign_in = browser.get(&authorize).await;
    assert!(sign_in.body.contains("Not verified"), "the sign-in page says so too: {}", sign_in.body);
    let vetted = authorize.replace(&id, &dev.client_id("SmartMail AI"));
    let vetted_sign_in = Browser::new("en").get(&vetted).await;
    assert!(vetted_sign_in.body.contains("SmartMail AI"), "{}", vetted_sign_in.body);
    assert!(!vetted_sign_in.body.contains("Not verified"), "an app registered by hand is not marked");
    let consent = browser.sign_in(&dev.base, &sign_in, "alice", PASSWORD).await;
    assert!(consent.body.contains("Not verified"), "{}", consent.body);
    assert!(consent.body.contains("Roaming agent"));
    assert!(!consent.body.contains("agent.example/logo.png"), "no self-chosen logo");

    // Update (RFC 7592 §2.2): a new name; the id and token stay.
    let mut changed = agent();
    changed["client_id"] = id.clone().into();
    changed["client_name"] = "Roaming agent 2".into();
    let response = http.put(&own_uri).bearer_auth(&token).json(&changed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["client_name"], "Roaming agent 2");
    changed["redirect_uris"] = json!(["data:text/html,hi"]);
    let response = http.put(&own_uri).bearer_auth(&token).json(&changed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let current: Value = read(Some(&token)).await.json().await.unwrap();
    assert_eq!(current["client_name"], "Roaming agent 2");
    assert_eq!(current["redirect_uris"], json!([REDIRECT]), "a refused update changes nothing");

    // Delete (RFC 7592 §2.3): gone, and its token with it.
    let response = http.delete(&own_uri).bearer_auth("guess").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http.delete(&own_uri).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(read(Some(&token)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app_count(&dev), apps);
}

#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let dev = Dev::start(PASSWORD);
    let http = reqwest::Client::new();
    let endpoint = format!("{}/register", dev.base);
    // agentgate dev allows 20 an hour per address; every attempt counts.
    for n in 0..20 {
        let (status, answer) = post(&http, &endpoint, &agent()).await;
        assert_eq!(status, StatusCode::CREATED, "registration {n}: {answer}");
    }
    let response = http.post(&endpoint).json(&agent()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "too_many_requests");
}
