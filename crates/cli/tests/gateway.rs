//! `agentgate gateway` in front of MCP servers nobody here wrote, with real
//! clients: tokens from node oidc-provider, the TypeScript SDK as the agent,
//! `@modelcontextprotocol/server-everything` as the upstream; and the faults
//! and header rules, each attacked.

mod support;

use std::net::TcpListener as StdListener;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::upstream::{Seen, recording_upstream};
use support::{Idp, Process, interop_dir, node, spawn_until, ts_client};

/// `agentgate gateway` on a free port in front of `upstream`.
struct Gateway {
    url: String,
    process: Process,
}

impl Gateway {
    fn start(issuer: &str, upstream: &str, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
        command.args(["gateway", "--issuer", issuer, "--listen", "127.0.0.1:0"]);
        if !upstream.is_empty() {
            command.args(["--upstream", upstream]);
        }
        command.args(args).env("AGENTGATE_LOG", "warn");
        let (process, url) = spawn_until(command, "agentgate gateway", "agentgate gateway: listening on ");
        Gateway { url, process }
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
    let (upstream, seen) = recording_upstream(0).await;
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
    let (upstream, seen) = recording_upstream(0).await;
    let gateway = Gateway::start(&idp.issuer, &upstream, &["--max-body-bytes", "1000"]);
    let token = user_token(&idp, &gateway.url, "alice");
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "x", "arguments": { "a": "y".repeat(5000) } } });
    let answer = post(&gateway.url, &token).body(big.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the upstream");

    // Without a length, in chunks: cut off at the bound, still 413.
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 500])));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let answer = post(&gateway.url, &token).body(body).send().await.unwrap();
    assert_eq!(answer.status(), 413, "{:?}", answer.text().await);
    assert!(seen.lock().unwrap().is_empty(), "the recording upstream never got a whole request");
}

/// A stdio upstream program from interop/node_modules, as a shell command line.
fn node_program(script: &str) -> String {
    format!("{} {}", node().display(), interop_dir().join("node_modules").join(script).display())
}

#[test]
fn two_peoples_memories_stay_apart_behind_a_stdio_route() {
    let idp = Idp::start(&[]);
    let files = tempdir("memory");
    let memory = node_program("@modelcontextprotocol/server-memory/dist/index.js");
    let env = format!("MEMORY_FILE_PATH={}/{{person}}.jsonl", files.display());
    let gateway = Gateway::start(&idp.issuer, "", &["--upstream-command", &memory, "--upstream-env", &env]);
    let alice = user_token(&idp, &gateway.url, "alice");
    let bob = user_token(&idp, &gateway.url, "bob");

    let note =
        r#"{"entities":[{"name":"alice-secret","entityType":"note","observations":["only for alice"]}]}"#;
    let created = ts_client(&gateway.url, Some(&alice), &["--tool", "create_entities", "--arguments", note]);
    assert_eq!(created["ok"], true, "{created}");
    let graph = |token: &str| {
        let out = ts_client(&gateway.url, Some(token), &["--tool", "read_graph", "--arguments", "{}"]);
        assert_eq!(out["ok"], true, "{out}");
        out["result"]["content"][0]["text"].as_str().unwrap().to_owned()
    };
    assert!(graph(&alice).contains("alice-secret"), "alice reads her own memory");
    assert!(!graph(&bob).contains("alice-secret"), "bob's memory is his own");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 1, "only alice has written a file");
}

#[test]
fn server_everything_on_stdio_answers_through_the_gateway() {
    let idp = Idp::start(&[]);
    let everything = node_program("@modelcontextprotocol/server-everything/dist/index.js") + " stdio";
    let gateway = Gateway::start(&idp.issuer, "", &["--upstream-command", &everything]);
    let alice = user_token(&idp, &gateway.url, "alice");
    let bob = user_token(&idp, &gateway.url, "bob");
    let out = ts_client(
        &gateway.url,
        Some(&alice),
        &["--tool", "get-sum", "--arguments", r#"{"a":2,"b":40}"#, "--session-token", &bob],
    );
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["result"]["content"][0]["text"].as_str().unwrap().contains("42"), "{out}");
    assert_eq!(out["second"]["status"], 404, "bob cannot use alice's session: {out}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentgate-gateway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A raw MCP POST: status, session header and body text.
async fn mcp(url: &str, token: &str, session: Option<&str>, message: Value) -> (u16, Option<String>, String) {
    let mut request = post(url, token).body(message.to_string()).timeout(Duration::from_secs(20));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let session = answer.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    (status, session, answer.text().await.unwrap())
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "test", "version": "0" } } })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_process_ends_its_requests_and_the_next_one_starts_afresh() {
    let idp = Idp::start(&[]);
    let starts = tempdir("crash").join("starts");
    // Counts its starts, reads one message, and dies.
    let program = format!("sh -c 'echo started >> {}; read line; exit 3'", starts.display());
    let gateway = Gateway::start(&idp.issuer, "", &["--upstream-command", &program]);
    let token = user_token(&idp, &gateway.url, "alice");
    for round in 1..=2 {
        let (status, _, body) = mcp(&gateway.url, &token, None, initialize()).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("its process ended before answering"), "round {round}: {body}");
        assert!(body.contains("\"id\":1"), "the error answers the client's own request id: {body}");
    }
    let started = std::fs::read_to_string(&starts).unwrap();
    assert_eq!(started.lines().count(), 2, "each request after a crash started a fresh process");
}

#[tokio::test(flavor = "multi_thread")]
async fn processes_are_bounded_and_idle_ones_end() {
    let idp = Idp::start(&[]);
    let everything = node_program("@modelcontextprotocol/server-everything/dist/index.js") + " stdio";
    let args = ["--upstream-command", &everything, "--max-processes", "1", "--idle-timeout", "1"];
    let gateway = Gateway::start(&idp.issuer, "", &args);
    let alice = user_token(&idp, &gateway.url, "alice");
    let bob = user_token(&idp, &gateway.url, "bob");

    let (status, session, body) = mcp(&gateway.url, &alice, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let session = session.expect("a session for alice");
    let (status, _, body) = mcp(&gateway.url, &bob, None, initialize()).await;
    assert_eq!(status, 503, "the one process is alice's: {body}");
    assert!(body.contains("already runs its 1 processes"), "{body}");

    // No request for longer than the idle timeout: alice's process ends,
    // and with it her session; bob gets the room.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let (status, _, body) = mcp(&gateway.url, &alice, Some(&session), list).await;
    assert_eq!(status, 404, "the session ended with its process: {body}");
    let (status, _, body) = mcp(&gateway.url, &bob, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn dev_puts_a_stdio_server_behind_sign_in_and_consent_for_an_outside_agent() {
    let files = tempdir("dev-memory");
    let memory = node_program("@modelcontextprotocol/server-memory/dist/index.js");
    let route = format!("/memory=MEMORY_FILE_PATH={}/{{person}}.jsonl {memory}", files.display());
    let dev = support::Dev::start_with("gateway-pass-1", &["--route", &route]);
    let url = format!("{}/memory", dev.base);

    // The TypeScript SDK registers itself, signs alice in, and is asked for consent.
    let out = support::ts_agent(&url, None, "gateway-pass-1", &["--tool", "read_graph"]);
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["consent"], "allow", "a third-party agent is asked: {out}");
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "create_entities"), "{out}");
    assert!(out["result"]["content"][0]["text"].as_str().unwrap().contains("entities"), "{out}");
    assert_eq!(out["token"]["aud"], url.as_str(), "the token is for the route alone: {out}");

    let anonymous = ts_client(&url, None, &[]);
    assert_eq!(anonymous["status"], 401, "{anonymous}");
    assert!(
        anonymous["wwwAuthenticate"]
            .as_str()
            .unwrap()
            .contains("/.well-known/oauth-protected-resource/memory")
    );
}

/// What `agentgate gateway ARGS` says when it refuses to start (it must).
fn refusal(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["gateway", "--issuer", "http://127.0.0.1:9", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A gateway that started instead of refusing would run until killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let error = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{error}");
    error
}

#[test]
fn setups_that_cannot_work_are_refused_with_the_fix() {
    let upstream = ["--upstream", "http://127.0.0.1:9/mcp"];
    let error =
        refusal(&[&upstream[..], &["--resource", "http://127.0.0.1:9/notes", "--path", "/mcp"]].concat());
    assert!(error.contains("--path /mcp and the path of --resource (/notes) differ"), "{error}");
    // An outside issuer's gateway has no key to sign the upstream's tokens with.
    let error = refusal(&[&upstream[..], &["--identity", "token"]].concat());
    assert!(error.contains("needs agentgate's own issuer"), "{error}");
    let error = refusal(&["--upstream", "http://192.0.2.7/mcp", "--identity", "headers"]);
    assert!(error.contains("only an upstream on loopback"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_name_the_outside_issuers_person_and_cannot_be_forged() {
    let idp = Idp::start(&[]);
    let (upstream, seen) = recording_upstream(0).await;
    let gateway = Gateway::start(&idp.issuer, &upstream, &["--identity", "headers"]);
    let token = user_token(&idp, &gateway.url, "alice");
    let message = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    let answer = post(&gateway.url, &token)
        .header("x-agentgate-sub", "admin")
        .header("X-Agentgate-Issuer", "https://evil.example")
        .body(message.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let headers = seen.lock().unwrap().pop().expect("the upstream got the request");
    assert_eq!(headers["x-agentgate-sub"], "alice", "oidc-provider's subject for alice: {headers:?}");
    assert_eq!(headers["x-agentgate-issuer"], idp.issuer.as_str());
    assert_eq!(headers["x-agentgate-scope"], "whoami");
    assert_eq!(headers.get_all("x-agentgate-sub").iter().count(), 1);
    assert!(headers.get("authorization").is_none());
}

/// The JSON-RPC message in an answer's body, JSON or the first SSE event with data.
fn message_of(body: &str) -> Value {
    let text = body.lines().filter_map(|l| l.strip_prefix("data: ")).find(|d| !d.is_empty()).unwrap_or(body);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_protocol_version_passes_as_the_upstream_speaks_it() {
    let idp = Idp::start(&[]);
    let (_everything, upstream) = everything_over_http();
    let gateway = Gateway::start(&idp.issuer, &upstream, &[]);
    let token = user_token(&idp, &gateway.url, "alice");
    for version in ["2025-06-18", "2025-11-25", "2026-07-28"] {
        let hello = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": { "name": "matrix", "version": "0" } } });
        let mut answers = Vec::new();
        for url in [&upstream, &gateway.url] {
            let (status, session, body) = mcp(url, &token, None, hello.clone()).await;
            assert_eq!(status, 200, "{version} at {url}: {body}");
            let session = session.unwrap_or_else(|| panic!("{version} at {url}: no session"));
            let negotiated = message_of(&body)["result"]["protocolVersion"].clone();
            // The next request in that session, with the version header the spec asks for.
            let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
            let request = post(url, &token)
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", negotiated.as_str().unwrap())
                .body(list.to_string());
            let listed = request.send().await.unwrap();
            assert_eq!(listed.status(), 200, "{version} at {url}");
            let tools =
                message_of(&listed.text().await.unwrap())["result"]["tools"].as_array().unwrap().len();
            answers.push((negotiated, tools));
        }
        assert_eq!(answers[0], answers[1], "{version}: direct, then through the gateway");
    }

    // A sessionless 2026-07-28 request: the gateway answers what the upstream answers.
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": "echo",
        "arguments": { "message": "hi" },
        "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } } });
    let mut statuses = Vec::new();
    for url in [&upstream, &gateway.url] {
        let answer = post(url, &token)
            .header("mcp-protocol-version", "2026-07-28")
            .body(call.to_string())
            .send()
            .await;
        statuses.push(answer.unwrap().status().as_u16());
    }
    assert_eq!(statuses[0], statuses[1], "sessionless: direct, then through the gateway");
}

#[tokio::test(flavor = "multi_thread")]
async fn resumption_and_the_get_stream_reach_the_upstream_as_sent() {
    let idp = Idp::start(&[]);
    let seen: Seen = Arc::default();
    let log = seen.clone();
    // An upstream whose GET stream says which event it resumes after.
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::get(move |headers: http::HeaderMap| {
            log.lock().unwrap().push(headers.clone());
            let after =
                headers.get("last-event-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            async move {
                (
                    [("content-type", "text/event-stream")],
                    format!("id: 8\ndata: {{\"resumed_after\":\"{after}\"}}\n\n"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gateway = Gateway::start(&idp.issuer, &upstream, &[]);
    let token = user_token(&idp, &gateway.url, "alice");
    let answer = reqwest::Client::new()
        .get(&gateway.url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    assert_eq!(
        answer.text().await.unwrap(),
        "id: 8\ndata: {\"resumed_after\":\"7\"}\n\n",
        "streamed as it came"
    );
    let headers = seen.lock().unwrap().pop().expect("the upstream got the GET");
    assert_eq!(headers["last-event-id"], "7");
    assert!(headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_holds_the_upstream_back_not_the_gateways_memory() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncWriteExt;
    let idp = Idp::start(&[]);
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    // An upstream whose GET stream sends 64 KiB events as fast as it may.
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::get(move || {
            let counter = counter.clone();
            let event = bytes::Bytes::from(format!("data: \"{}\"\n\n", "x".repeat(64 * 1024)));
            let stream = futures_util::stream::repeat_with(move || {
                counter.fetch_add(event.len() as u64, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(event.clone())
            });
            async move { ([("content-type", "text/event-stream")], axum::body::Body::from_stream(stream)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gateway = Gateway::start(&idp.issuer, &upstream, &[]);
    let token = user_token(&idp, &gateway.url, "alice");
    let before = gateway.process.rss_kib();

    // The client asks for the stream and then never reads a byte.
    let address = gateway.url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "GET /mcp HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\naccept: text/event-stream\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let settle = |millis| tokio::time::sleep(Duration::from_millis(millis));
    settle(3000).await;
    let first = produced.load(Ordering::SeqCst);
    settle(1000).await;
    let then = produced.load(Ordering::SeqCst);
    let grown = gateway.process.rss_kib().saturating_sub(before);
    assert!(first > 0, "the stream began");
    // Socket buffers on both sides and hyper's own hold a few MiB; an
    // unbounded gateway would have taken gigabytes by now.
    assert!(then < 64 << 20, "the upstream wrote {} MiB into a stream nobody reads", then >> 20);
    assert!(then - first < 1 << 20, "the upstream was held back: {first} then {then} bytes");
    assert!(grown < 48 * 1024, "the gateway grew by {grown} KiB");
    drop(client);
}

/// The conformance suite's server scenarios against `url`, each scenario's
/// (passed, failed) checks; with `token`, every request carries it
/// (interop/conformance/with-token.mjs).
fn server_scenarios(url: &str, token: &str) -> std::collections::BTreeMap<String, String> {
    let interop = interop_dir();
    let origin = url.split('/').take(3).collect::<Vec<_>>().join("/");
    let out = Command::new(node())
        .arg("--import")
        .arg(interop.join("conformance/with-token.mjs"))
        .arg(interop.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", url])
        .env("CONFORMANCE_BEARER", token)
        .env("CONFORMANCE_BEARER_ORIGIN", &origin)
        .current_dir(&interop)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = report.split("=== SUMMARY ===").nth(1).unwrap_or_else(|| panic!("no summary: {report}"));
    summary
        .lines()
        .filter_map(|line| {
            let (mark, rest) = line.split_once(' ')?;
            let (name, counts) = rest.split_once(": ")?;
            ["✓", "✗"].contains(&mark).then(|| (name.to_owned(), counts.to_owned()))
        })
        .collect()
}

#[test]
fn the_conformance_suites_server_scenarios_give_the_same_results_through_the_gateway() {
    let idp = Idp::start(&[]);
    let (_everything, upstream) = everything_over_http();
    let gateway = Gateway::start(&idp.issuer, &upstream, &[]);
    let token = user_token(&idp, &gateway.url, "alice");
    let direct = server_scenarios(&upstream, &token);
    let through = server_scenarios(&gateway.url, &token);
    assert!(direct.len() >= 25, "the suite ran its scenarios: {direct:?}");
    for (scenario, counts) in &direct {
        assert_eq!(
            through.get(scenario),
            Some(counts),
            "{scenario}: direct {counts}, through the gateway {:?}",
            through.get(scenario)
        );
    }
    let passed = through.values().filter(|c| c.ends_with(" 0 failed")).count();
    assert!(passed >= 10 && through["tools-call-simple-text"] == "1 passed, 0 failed", "{through:?}");
    // Without the token, the same suite gets nowhere: the results above are the upstream's.
    let anonymous = server_scenarios(&gateway.url, "not-a-token");
    assert!(anonymous.get("server-initialize").is_none_or(|c| c.starts_with("0 passed")), "{anonymous:?}");
}
