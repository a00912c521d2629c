//! `agentgate gateway` in front of MCP servers nobody here wrote, with real
//! clients: tokens from node oidc-provider, the TypeScript SDK as the agent,
//! `@modelcontextprotocol/server-everything` as the upstream; and the faults
//! and header rules, each attacked.

mod support;

use std::net::TcpListener as StdListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Idp, Process, interop_dir, node, spawn_until, ts_client};

/// `agentgate gateway` on a free port in front of `upstream`.
struct Gateway {
    url: String,
    _process: Process,
}

impl Gateway {
    fn start(issuer: &str, upstream: &str, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
        command.args(["gateway", "--issuer", issuer, "--upstream", upstream, "--listen", "127.0.0.1:0"]);
        command.args(args).env("AGENTGATE_LOG", "warn");
        let (process, url) = spawn_until(command, "agentgate gateway", "agentgate gateway: listening on ");
        Gateway { url, _process: process }
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// server-everything over Streamable HTTP, from interop/node_modules.
fn everything_over_http() -> (Process, String) {
    let port = free_port();
    let mut command = Command::new(node());
    command
        .arg("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .arg("streamableHttp")
        .current_dir(interop_dir())
        .env("PORT", port.to_string());
    let (process, _) = spawn_until(command, "server-everything", "Starting Streamable HTTP server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server-everything did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (process, format!("http://127.0.0.1:{port}/mcp"))
}

fn user_token(idp: &Idp, resource: &str, user: &str) -> String {
    idp.access_token(&["--kind", "user", "--user", user, "--resource", resource, "--scope", "whoami"])
}

#[test]
fn an_outside_client_reaches_server_everything_through_the_gateway_and_only_with_a_token() {
    let idp = Idp::start(&[]);
    let (_everything, upstream) = everything_over_http();
    let gateway = Gateway::start(&idp.issuer, &upstream, &["--scopes", "whoami"]);

    let alice = user_token(&idp, &gateway.url, "alice");
    let bob = user_token(&idp, &gateway.url, "bob");
    let out = ts_client(
        &gateway.url,
        Some(&alice),
        &["--tool", "echo", "--arguments", r#"{"message":"through the gateway"}"#, "--session-token", &bob],
    );
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "get-sum"), "the upstream's tools: {out}");
    assert_eq!(out["result"]["content"][0]["text"], "Echo: through the gateway", "{out}");
    let session = out["sessionId"].as_str().expect("the upstream's session, through the gateway");
    assert!(session.contains('.'), "the session id the agent sees is sealed to alice: {session}");
    assert_eq!(out["second"]["status"], 404, "bob cannot use alice's session: {out}");

    let anonymous = ts_client(&gateway.url, None, &["--tool", "echo"]);
    assert_eq!(anonymous["status"], 401, "{anonymous}");
    let challenge = anonymous["wwwAuthenticate"].as_str().unwrap();
    assert!(
        challenge.contains("resource_metadata=") && challenge.contains("scope=\"whoami\""),
        "{challenge}"
    );
    let elsewhere = user_token(&idp, &upstream, "alice");
    let refused = ts_client(&gateway.url, Some(&elsewhere), &["--tool", "echo"]);
    assert_eq!(refused["status"], 401, "a token for another audience is refused: {refused}");
}

/// What a recording upstream saw of each request.
type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A tiny upstream that records the headers it gets and answers every POST
/// with a JSON-RPC result, a cookie and a header of its own.
async fn recording_upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            log.lock().unwrap().push(headers);
            let request: Value = serde_json::from_str(&body).unwrap();
            async move {
                (
                    [("set-cookie", "agentgate_session=planted; Path=/"), ("x-upstream", "yes")],
                    axum::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": { "echo": request["params"] } })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn post(url: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_cookies_and_forged_identity_stop_at_the_gateway() {
    let idp = Idp::start(&[]);
    let (upstream, seen) = recording_upstream().await;
    let gateway = Gateway::start(&idp.issuer, &upstream, &[]);
    let token = user_token(&idp, &gateway.url, "alice");

    let message = json!({ "jsonrpc": "2.0", "id": 3, "method": "x/unknown", "params": { "_meta": { "k": 1 }, "extra": [1, 2] } });
    let answer = post(&gateway.url, &token)
        .header("cookie", "agentgate_session=secret")
        .header("x-agentgate-sub", "admin")
        .header("x-custom", "kept")
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers().get("set-cookie").is_none(),
        "the upstream cannot set cookies on the gateway's origin"
    );
    assert_eq!(answer.headers()["x-upstream"], "yes");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["echo"], message["params"], "unknown methods, fields and _meta pass unchanged");

    let headers = seen.lock().unwrap().pop().expect("the upstream got the request");
    for gone in ["authorization", "cookie", "x-agentgate-sub"] {
        assert!(headers.get(gone).is_none(), "{gone} reached the upstream: {headers:?}");
    }
    assert_eq!(headers["x-custom"], "kept");
    assert!(!format!("{headers:?}").contains(&token), "the token reached the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_is_down_or_silent_gets_a_clear_error_in_time() {
    let idp = Idp::start(&[]);
    let message = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();

    let down = Gateway::start(&idp.issuer, &format!("http://127.0.0.1:{}/mcp", free_port()), &[]);
    let token = user_token(&idp, &down.url, "alice");
    let answer = post(&down.url, &token).body(message.clone()).send().await.unwrap();
    assert_eq!(answer.status(), 502);
    let body: Value = answer.json().await.unwrap();
    let words = body["error"]["message"].as_str().unwrap();
    assert!(words.contains("cannot be reached") && words.contains("should check that it runs"), "{body}");
    assert!(!words.contains("127.0.0.1"), "the upstream's address is the operator's to know: {words}");

    // Accepts connections, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/mcp", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let slow = Gateway::start(&idp.issuer, &silent_url, &["--timeout", "1"]);
    let token = user_token(&idp, &slow.url, "alice");
    let started = Instant::now();
    let answer = post(&slow.url, &token).body(message).timeout(Duration::from_secs(20)).send().await.unwrap();
    assert_eq!(answer.status(), 504, "answered after {:?}", started.elapsed());
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "upstream_timeout", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_bound_is_refused_before_it_reaches_the_upstream() {
    let idp = Idp::start(&[]);
    let (upstream, seen) = recording_upstream().await;
    let gateway = Gateway::start(&idp.issuer, &upstream, &["--max-body-bytes", "1000"]);
    let token = user_token(&idp, &gateway.url, "alice");
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "arguments": { "a": "y".repeat(5000) } } });
    let answer = post(&gateway.url, &token).body(big.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the upstream");
}
