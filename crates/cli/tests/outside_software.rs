//! Software nobody here wrote, against a real `agentgate dev`: the official
//! TypeScript SDK as the pre-registered third-party agent, Debian's Chromium on
//! the pages, and the tutorial's own Python server (`mcp` + `mcpauth`) with
//! agentgate in Logto's place.
//!
//! Node, `interop/node_modules`, Chromium and `interop/python/.venv` are
//! dependencies of this suite: `scripts/test` installs them, and when one is
//! missing these tests fail saying so.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Dev, interop_dir, node_tool, python_agent, spawn_until, structured, ts_agent, ts_client};

const PASSWORD: &str = "wonderland";
const THIRD_PARTY_APP: &str = "SmartMail AI";

/// The paths of the HTTP requests the SDK made, with their status.
fn exchanges(result: &Value) -> Vec<(String, String, u64)> {
    result["exchanges"]
        .as_array()
        .expect("the agent lists its requests")
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn the_typescript_sdk_runs_the_whole_flow_as_the_third_party_app() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id(THIRD_PARTY_APP);
    let mcp = dev.mcp_url();

    // Alice says no first: the agent gets access_denied (with state and iss) and no token.
    let denied = ts_agent(&mcp, Some(&app), PASSWORD, &["--decision", "deny"]);
    assert_eq!(denied["ok"], false, "{denied}");
    assert_eq!(denied["error"], "access_denied", "{denied}");
    assert_eq!(denied["consent"], "deny");
    assert!(!exchanges(&denied).iter().any(|(_, path, _)| path == "/token"), "no token request after Deny");

    // Then yes: 401 → protected resource metadata → authorization server metadata
    // → sign-in and consent pages → token → whoami with alice's claims.
    let allowed = ts_agent(&mcp, Some(&app), PASSWORD, &[]);
    let claims = structured(&allowed);
    assert_eq!(claims["person"]["sub"], dev.user_id("alice").as_str(), "{allowed}");
    assert_eq!(claims["person"]["email"], "alice@example.com", "the 401 asked for her profile: {allowed}");
    assert_eq!(claims["token"]["client_id"], app.as_str());
    assert_eq!(claims["token"]["audience"], serde_json::json!([mcp]));
    assert!(claims["token"]["scopes"].as_array().unwrap().iter().any(|s| s == "mcp:tools"), "{claims}");
    assert_eq!(allowed["consent"], "allow");
    let pages: Vec<_> = allowed["pages"].as_array().unwrap().iter().map(|p| p["page"].clone()).collect();
    assert_eq!(pages, ["sign-in", "consent"], "{allowed}");
    assert_eq!(allowed["callback"]["stateMatches"], true);
    assert_eq!(allowed["callback"]["issMatches"], true, "RFC 9207 iss on the redirect");
    assert_eq!(allowed["authorization"]["codeChallengeMethod"], "S256");
    assert_eq!(allowed["authorization"]["resource"], mcp.as_str(), "RFC 8707 resource");

    let seen = exchanges(&allowed);
    let position = |method: &str, path: &str, status: u64| {
        seen.iter()
            .position(|(m, p, s)| m == method && p.starts_with(path) && *s == status)
            .unwrap_or_else(|| panic!("no {method} {path} → {status} in {seen:?}"))
    };
    let challenge = position("POST", "/mcp", 401);
    let resource_metadata = position("GET", "/.well-known/oauth-protected-resource", 200);
    let server_metadata = position("GET", "/.well-known/oauth-authorization-server", 200);
    let token = position("POST", "/token", 200);
    let call = seen.iter().rposition(|(m, p, s)| m == "POST" && p == "/mcp" && *s == 200).unwrap();
    assert!(challenge < resource_metadata && resource_metadata < server_metadata && server_metadata < token);
    assert!(token < call);

    // Her consent is remembered: the next run signs in and goes straight back.
    let again = ts_agent(&mcp, Some(&app), PASSWORD, &[]);
    assert_eq!(structured(&again)["person"], claims["person"]);
    assert_eq!(again["consent"], Value::Null, "no consent page the second time: {again}");
}

#[test]
fn the_typescript_sdk_registers_itself_and_runs_the_whole_flow() {
    // Nothing pre-registered: the SDK finds registration_endpoint in the
    // metadata, registers (RFC 7591, application_type native, no secret), and
    // alice consents to an app nobody vetted.
    let dev = Dev::start(PASSWORD);
    let mcp = dev.mcp_url();
    let result = ts_agent(&mcp, None, PASSWORD, &[]);
    let claims = structured(&result);
    let registered =
        result["registered"].as_str().unwrap_or_else(|| panic!("the SDK did not register: {result}"));
    assert_eq!(claims["person"]["sub"], dev.user_id("alice").as_str(), "{result}");
    assert_eq!(claims["token"]["client_id"], registered);
    assert_eq!(claims["token"]["audience"], serde_json::json!([mcp]));
    assert_eq!(result["consent"], "allow", "a self-registered app is third-party: {result}");
    let seen = exchanges(&result);
    let register = seen.iter().position(|(m, p, s)| m == "POST" && p == "/register" && *s == 201);
    let token = seen.iter().position(|(m, p, s)| m == "POST" && p == "/token" && *s == 200);
    assert!(register.is_some() && register < token, "registered before the token request: {seen:?}");
}

/// Where the browser test keeps its screenshots (inside the target directory).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

#[test]
fn chromium_signs_alice_in_and_allows_and_keeps_screenshots() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(chromium.exists(), "Debian's chromium is missing: scripts/test installs it (ensure_chromium)");
    let dev = Dev::start(PASSWORD);
    let out = screenshot_dir();
    let _ = std::fs::remove_dir_all(&out);
    let app = dev.client_id(THIRD_PARTY_APP);
    let result = node_tool(
        "tools/browser.mjs",
        &["--base", &dev.base, "--client-id", &app, "--password", PASSWORD, "--out", out.to_str().unwrap()],
    );
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["failures"], serde_json::json!([]));
    for (language, allow, deny) in
        [("en", "Allow", "Deny"), ("es", "Permitir", "Denegar"), ("ja", "許可", "拒否")]
    {
        let consent = &result["languages"][language]["consent"];
        assert_eq!(consent["appNamed"], true, "{language}: {consent}");
        let buttons: Vec<_> =
            consent["buttons"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
        assert_eq!(buttons, [deny, allow], "{language}");
    }
    assert_eq!(result["redirect"]["code"], true);
    assert_eq!(result["redirect"]["issMatches"], true);
    assert_eq!(result["token"]["status"], 200);
    assert_eq!(result["account"]["apps"], serde_json::json!([THIRD_PARTY_APP]));

    for name in [
        "sign-in-en",
        "sign-in-es",
        "sign-in-ja",
        "consent-en",
        "consent-es",
        "consent-ja",
        "consent-en-390",
        "account-en",
    ] {
        let path = out.join(format!("{name}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000,
            "{name}.png is not a real screenshot"
        );
    }
}

/// The tutorial's Python server (interop/python/whoami.py) on a free port,
/// checking tokens at `issuer`'s userinfo endpoint as the tutorial does.
fn python_whoami(issuer: &str) -> (support::Process, String) {
    let python = interop_dir().join("python/.venv/bin/python");
    assert!(python.exists(), "interop/python/.venv is missing: scripts/test makes it (ensure_python_venv)");
    let mut command = Command::new(python);
    command
        .arg("whoami.py")
        .current_dir(interop_dir().join("python"))
        .env("WHOAMI_ISSUER", issuer)
        .env("WHOAMI_PORT", "0")
        .env("WHOAMI_EXIT_ON_STDIN_CLOSE", "1");
    spawn_until(command, "the tutorial's Python server", "WHOAMI_URL=")
}

#[test]
fn the_python_sdk_registers_itself_and_runs_the_whole_flow() {
    let dev = Dev::start(PASSWORD);
    let mcp = dev.mcp_url();
    let result = python_agent(&["--url", &mcp, "--password", PASSWORD]);
    assert_eq!(result["ok"], true, "{result}");
    let registered = result["registered"].as_str().unwrap_or_else(|| panic!("no registration: {result}"));
    assert_eq!(result["result"]["person"]["sub"], dev.user_id("alice").as_str(), "{result}");
    assert_eq!(result["result"]["person"]["username"], "alice", "the 401 asked for her profile: {result}");
    assert_eq!(result["result"]["token"]["client_id"], registered);
    assert_eq!(result["result"]["token"]["audience"], serde_json::json!([mcp]));
    assert_eq!(result["consent"], "allow");
    let seen = exchanges(&result);
    let register = seen.iter().position(|(m, p, s)| m == "POST" && p == "/register" && *s == 201);
    let token = seen.iter().position(|(m, p, s)| m == "POST" && p == "/token" && *s == 200);
    assert!(register.is_some() && register < token, "registered before the token request: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_comes_in_with_a_client_metadata_document() {
    let redirect = "http://127.0.0.1:7791/callback";
    let (document, hits) = support::document_server(redirect).await;
    let dev = Dev::start_with(PASSWORD, &["--allow-loopback-client-documents"]);
    let mcp = dev.mcp_url();
    let args: Vec<String> = [
        "--url",
        &mcp,
        "--password",
        PASSWORD,
        "--client-metadata-url",
        &document,
        "--redirect-uri",
        redirect,
    ]
    .map(String::from)
    .into();
    // The document server runs on this runtime; the agent blocks elsewhere.
    let result = tokio::task::spawn_blocking(move || {
        python_agent(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["registered"], Value::Null, "no registration: {result}");
    assert_eq!(result["clientId"], document.as_str());
    assert_eq!(
        result["result"]["token"]["client_id"],
        document.as_str(),
        "the document's URL is the client_id"
    );
    assert_eq!(result["result"]["person"]["sub"], dev.user_id("alice").as_str());
    assert_eq!(result["consent"], "allow");
    assert!(!exchanges(&result).iter().any(|(_, p, _)| p == "/register"), "{result}");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[test]
fn the_tutorials_python_server_takes_agentgate_in_place_of_logto() {
    let dev = Dev::start(PASSWORD);
    let (_python, url) = python_whoami(&dev.base);
    let app = dev.client_id(THIRD_PARTY_APP);
    let redirect = "http://127.0.0.1:7777/callback";
    let mcp = dev.mcp_url();
    let token = node_tool(
        "tools/get-token.mjs",
        &[
            "--issuer",
            &dev.base,
            "--kind",
            "user",
            "--client-id",
            &app,
            "--user",
            "alice",
            "--password",
            PASSWORD,
            "--redirect-uri",
            redirect,
            "--resource",
            &mcp,
            "--scope",
            "openid profile email mcp:tools",
        ],
    );
    let access_token = token["access_token"].as_str().unwrap_or_else(|| panic!("no token: {token}"));

    let result = ts_client(&url, Some(access_token), &[]);
    let claims = structured(&result);
    assert_eq!(claims["sub"], dev.user_id("alice").as_str(), "{result}");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice");

    let refused = ts_client(&url, None, &[]);
    assert_eq!((refused["ok"].clone(), refused["status"].clone()), (Value::Bool(false), Value::from(401)));
    let garbage = ts_client(&url, Some("not-a-token"), &[]);
    assert_eq!(garbage["status"], 401, "{garbage}");
}
