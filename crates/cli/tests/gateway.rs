//! `agentgate gateway` in front of MCP servers nobody here wrote, with real
//! clients: tokens from node oidc-provider, the TypeScript SDK as the agent,
//! `@modelcontextprotocol/server-everything` as the upstream; and the faults
//! and header rules, each attacked.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::gateway::{Gateway, mcp, message_of, post, user_token};
use support::upstream::{Seen, recording_upstream};
use support::{Idp, Process, free_port, interop_dir, node, spawn_until, ts_client};

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

/// An upstream that begins each SSE answer at once, then sends one progress
/// notification every `every` for `parts` times before its result — or, for
/// `parts` of 0, nothing more at all.
async fn streaming_upstream(every: Duration, parts: u32) -> String {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: String| async move {
            let request: Value = serde_json::from_str(&body).unwrap();
            let id = request["id"].clone();
            let events = futures_util::stream::unfold(0, move |sent| {
                let id = id.clone();
                async move {
                    if parts == 0 && sent == 1 {
                        std::future::pending::<()>().await;
                    }
                    if sent > parts {
                        return None;
                    }
                    if sent > 0 {
                        tokio::time::sleep(every).await;
                    }
                    let message = if sent < parts || parts == 0 {
                        json!({ "jsonrpc": "2.0", "method": "notifications/progress",
                            "params": { "progressToken": 1, "progress": sent } })
                    } else {
                        json!({ "jsonrpc": "2.0", "id": id, "result": { "done": true } })
                    };
                    Some((Ok::<_, std::convert::Infallible>(format!("data: {message}\n\n")), sent + 1))
                }
            });
            ([("content-type", "text/event-stream")], axum::body::Body::from_stream(events))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_goes_quiet_ends_in_an_error_but_a_long_one_that_talks_does_not() {
    let idp = Idp::start(&[]);
    let call = json!({ "jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": { "name": "slow" } });

    // Begins its answer, says one thing, then nothing for ever.
    let quiet =
        Gateway::start(&idp.issuer, &streaming_upstream(Duration::ZERO, 0).await, &["--timeout", "1"]);
    let token = user_token(&idp, &quiet.url, "alice");
    let started = Instant::now();
    let answer = post(&quiet.url, &token).body(call.to_string()).timeout(Duration::from_secs(20)).send();
    let text = answer.await.unwrap().text().await.expect("the stream ends instead of hanging");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "the progress, then the gateway's error: {text}");
    assert_eq!(events[0]["method"], "notifications/progress", "what came passed on: {text}");
    assert_eq!(events[1]["id"], 41, "the error answers the agent's own request: {text}");
    assert_eq!(events[1]["error"]["data"]["reason"], "upstream_timeout", "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "ended after {:?}", started.elapsed());

    // Works for three times the timeout, and says so every half of it.
    let talking = streaming_upstream(Duration::from_millis(500), 6).await;
    let busy = Gateway::start(&idp.issuer, &talking, &["--timeout", "1"]);
    let token = user_token(&idp, &busy.url, "alice");
    let text = post(&busy.url, &token).body(call.to_string()).send().await.unwrap().text().await.unwrap();
    let last = text.lines().filter_map(|line| line.strip_prefix("data: ")).next_back().unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last, json!({ "jsonrpc": "2.0", "id": 41, "result": { "done": true } }), "{text}");
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

    // An upstream that answers sessionless calls: the call reaches it as sent,
    // with its version header and no session, and its answer comes back.
    let (recording, seen) = recording_upstream(0).await;
    let sessionless = Gateway::start(&idp.issuer, &recording, &[]);
    let token = user_token(&idp, &sessionless.url, "alice");
    let answer =
        post(&sessionless.url, &token).header("mcp-protocol-version", "2026-07-28").body(call.to_string());
    let answer = answer.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("mcp-session-id").is_none(), "the gateway adds no session");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["echo"], call["params"], "params and _meta as sent: {body}");
    let headers = seen.lock().unwrap().pop().unwrap();
    assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
    assert!(headers.get("mcp-session-id").is_none(), "{headers:?}");
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

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_on_a_unix_socket_is_told_who_calls_and_nobody_else_can_say() {
    let idp = Idp::start(&[]);
    let socket = support::gateway::tempdir("unix").join("notes.sock");
    let (upstream, seen) = support::upstream::recording_upstream_on_socket(&socket).await;
    let gateway = Gateway::start(&idp.issuer, &upstream, &["--identity", "headers"]);
    let token = user_token(&idp, &gateway.url, "alice");
    let message = json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": { "name": "x" } });
    let answer = post(&gateway.url, &token).header("x-agentgate-sub", "admin").body(message.to_string());
    let answer = answer.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["echo"], message["params"], "the upstream's answer, through the socket");
    let headers = seen.lock().unwrap().pop().expect("the upstream got the request");
    assert_eq!(headers["x-agentgate-sub"], "alice", "{headers:?}");
    assert_eq!(headers.get_all("x-agentgate-sub").iter().count(), 1);
    assert_eq!(headers["host"], "localhost");
    assert!(headers.get("authorization").is_none());

    // No socket there: a 502 in words, without the path.
    let gone =
        format!("http+unix://{}/mcp", socket.with_extension("gone").to_str().unwrap().replace('/', "%2F"));
    let down = Gateway::start(&idp.issuer, &gone, &[]);
    let token = user_token(&idp, &down.url, "alice");
    let answer = post(&down.url, &token).body(message.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 502);
    let words = answer.text().await.unwrap();
    assert!(words.contains("cannot be reached") && !words.contains("notes"), "{words}");
    // A socket path written with its slashes: the fix is named.
    let error = refusal(&["--upstream", "http+unix:///run/notes.sock/mcp"]);
    assert!(error.contains("written %2F"), "{error}");
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
