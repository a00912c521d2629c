//! The management API over real HTTP against `agentgate dev`: who may call it
//! (a client-credentials token for `{issuer}/api/v1` with `agentgate:admin`)
//! and what it answers. Expired and forged tokens are refused by the same
//! check in crates/issuer/tests/registration.rs.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::Dev;

const PASSWORD: &str = "wonderland";

/// `agentgate apps add NAME --m2m ARGS --json`: the machine app's id and secret.
fn machine_app(dev: &Dev, name: &str, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["apps", "add", name, "--m2m"])
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(&dev.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app: Value = serde_json::from_slice(&out.stdout).unwrap();
    (app["client_id"].as_str().unwrap().into(), app["client_secret"].as_str().unwrap().into())
}

/// A client-credentials token for the management API.
async fn api_token(
    http: &reqwest::Client,
    dev: &Dev,
    (id, secret): &(String, String),
    scope: &str,
) -> String {
    let api = format!("{}/api/v1", dev.base);
    let form = [("grant_type", "client_credentials"), ("scope", scope), ("resource", api.as_str())];
    let response =
        http.post(format!("{}/token", dev.base)).basic_auth(id, Some(secret)).form(&form).send().await;
    let tokens: Value = response.unwrap().json().await.unwrap();
    tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}")).to_owned()
}

#[tokio::test]
async fn only_an_admin_token_reads_the_apps() {
    let dev = Dev::start(PASSWORD);
    let http = reqwest::Client::new();
    let admin = machine_app(&dev, "Marketplace", &["--admin"]);
    let registrar = machine_app(&dev, "Registrar", &["--scopes", "agentgate:register"]);
    let apps_url = format!("{}/api/v1/apps", dev.base);

    let get = |token: Option<String>, url: String| {
        let request = http.get(url);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let refusals = [
        (None, StatusCode::UNAUTHORIZED, "Bearer".to_owned()),
        (Some("garbage".to_owned()), StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\"".to_owned()),
        (
            Some(api_token(&http, &dev, &registrar, "agentgate:register").await),
            StatusCode::FORBIDDEN,
            "Bearer error=\"insufficient_scope\", scope=\"agentgate:admin\"".to_owned(),
        ),
    ];
    for (token, status, challenge) in refusals {
        let response = get(token.clone(), apps_url.clone()).await;
        assert_eq!(response.status(), status, "{token:?}");
        assert_eq!(response.headers()["www-authenticate"], challenge.as_str());
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string() && body.as_object().unwrap().len() == 2, "{body}");
    }

    let token = api_token(&http, &dev, &admin, "agentgate:admin").await;
    let response = get(Some(token.clone()), apps_url.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let apps: Value = response.json().await.unwrap();
    let names: Vec<&str> = apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    for name in ["SmartMail AI", "Marketplace", "Registrar"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!apps.to_string().contains("secret_hash"), "no secrets: {apps}");

    let one: Value = get(Some(token.clone()), format!("{apps_url}/{}", admin.0)).await.json().await.unwrap();
    assert_eq!(one["name"], "Marketplace");
    assert!(one["scopes"].as_array().unwrap().iter().any(|s| s == "agentgate:admin"), "{one}");
    let missing = get(Some(token), format!("{apps_url}/no-such-app")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
