//! The management API over real HTTP against `agentgate dev`: who may call it
//! (a client-credentials token for `{issuer}/api/v1` with `agentgate:admin`),
//! what it answers, a marketplace's whole story (an app and a person made
//! through the API, then the TypeScript SDK agent signing that person in), and
//! Schemathesis run against the OpenAPI document the server serves. Every
//! operation's refusals (no token, expired, forged, without the scope) are in
//! crates/issuer/tests/management.rs.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::admin::{api_token, machine_app};
use support::{Dev, interop_dir, structured, ts_agent};

const PASSWORD: &str = "wonderland";

/// An HTTP client, the admin machine app "Marketplace" (id, secret) and its token.
async fn marketplace(dev: &Dev) -> (reqwest::Client, (String, String), String) {
    let http = reqwest::Client::new();
    let admin = machine_app(dev, "Marketplace", &["--admin"]);
    let token = api_token(&http, dev, &admin, "agentgate:admin").await;
    (http, admin, token)
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

#[tokio::test]
async fn an_app_and_a_person_made_through_the_api_work_in_a_full_flow() {
    let dev = Dev::start(PASSWORD);
    let (http, _, token) = marketplace(&dev).await;
    let post = |path: &str, body: Value| {
        http.post(format!("{}/api/v1{path}", dev.base)).bearer_auth(&token).json(&body).send()
    };

    let app = json!({
        "name": "Listed agent", "third_party": true, "public": true, "application_type": "native",
        "redirect_uris": ["http://127.0.0.1/callback"], "scopes": ["openid", "profile", "mcp:tools"],
    });
    let created = post("/apps", app).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["client_secret"], Value::Null, "a public app has no secret: {created}");
    let client_id = created["client_id"].as_str().unwrap();

    let dora = json!({ "username": "dora", "name": "Dora", "password": "explorer-2026" });
    let dora = post("/users", dora).await.unwrap();
    assert_eq!(dora.status(), StatusCode::CREATED);
    let dora: Value = dora.json().await.unwrap();
    assert!(dora.get("password").is_none() && dora.get("password_hash").is_none(), "{dora}");

    // The TypeScript SDK agent: 401, discovery, dora's sign-in, consent, whoami.
    let result = ts_agent(&dev.mcp_url(), Some(client_id), "explorer-2026", &["--username", "dora"]);
    assert_eq!(result["consent"], "allow", "a third-party app asks: {result}");
    let answer = structured(&result);
    assert_eq!(answer["person"]["sub"], dora["id"], "{result}");
    assert_eq!(answer["person"]["name"], "Dora", "{result}");
    assert_eq!(answer["token"]["client_id"], client_id);

    // The grant shows up under the app, and revoking it ends the agent's access.
    let grants_url = format!("{}/api/v1/grants?client_id={client_id}", dev.base);
    let grants: Value = http.get(&grants_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(grants[0]["user_id"], dora["id"], "{grants}");
    let revoke =
        format!("{}/api/v1/grants?client_id={client_id}&user_id={}", dev.base, dora["id"].as_str().unwrap());
    let revoked = http.delete(&revoke).bearer_auth(&token).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let grants: Value = http.get(&grants_url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(grants, json!([]));
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let dev = Dev::start(PASSWORD);
    let (http, admin, token) = marketplace(&dev).await;
    let schemathesis = interop_dir().join("python/.venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "interop/python/.venv is missing: scripts/test makes it (ensure_python_venv)"
    );

    let out = std::process::Command::new(schemathesis)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", dev.base))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS, "--max-examples", "25"])
        // Resource ids are URLs; Hypothesis drops most strings it makes for a
        // path segment, which its health check reports. The calls still run.
        .args(["--suppress-health-check", "filter_too_much"])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its caches (.schemathesis, .hypothesis) go with the instance's data.
        .current_dir(&dev.data_dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis failed:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("23 selected / 23 total"), "every operation was tested:\n{report}");
    assert!(!report.contains(" failed"), "{report}");

    // The admin token still works: the run did not break the server.
    let apps = format!("{}/api/v1/apps/{}", dev.base, admin.0);
    assert_eq!(http.get(apps).bearer_auth(&token).send().await.unwrap().status(), StatusCode::OK);
}

/// What Schemathesis checks: no 5xx; every status code, content type, header
/// and body as the document says.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance";

/// `agentgate whoami` in front of another MCP server, with agentgate as its
/// outside issuer: the person comes from the token, or (`--person-claims
/// userinfo`) from the issuer's userinfo endpoint, which knows what changed
/// since the token was issued.
#[tokio::test(flavor = "multi_thread")]
async fn whoami_asks_userinfo_for_the_person_when_told_to() {
    let dev = Dev::start(PASSWORD);
    let (http, _, token) = marketplace(&dev).await;
    let resource = "https://whoami.example/mcp";
    let spec = json!({"uri": resource, "name": "Outside whoami", "scopes": [{"name": "mcp:tools", "description": "Say who you are"}]});
    let made =
        http.post(format!("{}/api/v1/resources", dev.base)).bearer_auth(&token).json(&spec).send().await;
    assert_eq!(made.unwrap().status(), StatusCode::CREATED);
    let start = |extra: &[&str]| {
        let mut args = vec!["--resource", resource, "--scopes", "mcp:tools"];
        args.extend_from_slice(extra);
        support::Whoami::start(&dev.base, &args)
    };
    let (from_token, from_userinfo) = (start(&[]), start(&["--person-claims", "userinfo"]));

    let app = dev.client_id("SmartMail AI");
    let base = dev.base.clone();
    let alice_token = tokio::task::spawn_blocking(move || {
        let args = [
            "--issuer",
            &base,
            "--kind",
            "user",
            "--client-id",
            &app,
            "--user",
            "alice",
            "--password",
            PASSWORD,
            "--redirect-uri",
            "http://127.0.0.1:7777/callback",
            "--resource",
            resource,
            "--scope",
            "openid profile email mcp:tools",
        ];
        support::node_tool("tools/get-token.mjs", &args)["access_token"].as_str().unwrap().to_owned()
    })
    .await
    .unwrap();

    // Alice's name changes after her token was issued.
    let alice = dev.user_id("alice");
    let patch = json!({"name": "Alice Liddell"});
    let changed = http
        .patch(format!("{}/api/v1/users/{alice}", dev.base))
        .bearer_auth(&token)
        .json(&patch)
        .send()
        .await;
    assert_eq!(changed.unwrap().status(), StatusCode::OK);

    let ask = |url: String, token: String| {
        tokio::task::spawn_blocking(move || support::ts_client(&url, Some(&token), &[]))
    };
    let told = ask(from_token.url.clone(), alice_token.clone()).await.unwrap();
    assert_eq!(structured(&told)["person"]["name"], "Alice", "the token's copy: {told}");
    let asked = ask(from_userinfo.url.clone(), alice_token.clone()).await.unwrap();
    let person = &structured(&asked)["person"];
    assert_eq!(person["name"], "Alice Liddell", "userinfo's answer: {asked}");
    assert_eq!((person["sub"].as_str(), person["username"].as_str()), (Some(alice.as_str()), Some("alice")));
    assert_eq!(person["email"], "alice@example.com", "{asked}");
}
