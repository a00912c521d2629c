//! Gateway routes in front of MCP servers on stdio: one process per person
//! (server-memory keeps two people's data apart), a shared process for
//! servers that keep no state, bounds, idle and deleted sessions, crashes;
//! and the routing of what a process sends of its own accord, attacked from
//! another person's session.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::gateway::{
    Events, Gateway, initialize, mcp, node_program, result_text, stdio_asker, tempdir, tool_call, user_token,
};
use support::{Idp, ts_client};

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

/// oidc-provider, a gateway in front of interop/tools/stdio-asker.mjs with
/// `args`, and tokens for alice and bob there.
struct AskerRoute {
    _idp: Idp,
    gateway: Gateway,
    alice: String,
    bob: String,
}

impl AskerRoute {
    fn start(args: &[&str]) -> Self {
        let idp = Idp::start(&[]);
        let asker = stdio_asker();
        let gateway = Gateway::start(&idp.issuer, "", &[&["--upstream-command", &asker][..], args].concat());
        let (alice, bob) = (user_token(&idp, &gateway.url, "alice"), user_token(&idp, &gateway.url, "bob"));
        AskerRoute { _idp: idp, gateway, alice, bob }
    }
}

/// A session of `token`'s person on the route at `url`.
async fn session_of(url: &str, token: &str) -> String {
    let (status, session, body) = mcp(url, token, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    session.expect("a session")
}

/// The text answer of the tool `name`, called in `session`.
async fn call(url: &str, token: &str, session: &str, name: &str) -> String {
    let (status, _, body) = mcp(url, token, Some(session), tool_call(9, name, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    result_text(&support::gateway::message_of(&body))
}

/// An answer to the process's request `id`, in `who`'s words.
fn answer(id: &Value, who: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": { "role": "assistant", "model": "m",
        "content": { "type": "text", "text": format!("answered by {who}") } } })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_process_shows_each_question_to_the_one_it_is_for_and_takes_only_their_answer() {
    let route = AskerRoute::start(&["--shared-process"]);
    let (url, alice, bob) = (route.gateway.url.as_str(), &route.alice, &route.bob);
    let (alices, bobs) = (session_of(url, alice).await, session_of(url, bob).await);
    assert_eq!(call(url, alice, &alices, "pid").await, call(url, bob, &bobs, "pid").await, "one process");

    // Bob listens for whatever the process sends; alice calls a tool that
    // asks her agent a question while it runs.
    let mut bobs_stream = Events::get(url, bob, &bobs).await;
    let mut alices_call = Events::post(url, alice, &alices, &tool_call(5, "ask", json!({}))).await;
    let question = alices_call.next(Duration::from_secs(10)).await.expect("the question reaches alice");
    assert_eq!(question["method"], "sampling/createMessage", "{question}");
    assert!(bobs_stream.next(Duration::from_secs(1)).await.is_none(), "bob saw alice's question");

    // Bob answers it in her name: refused, and nothing reaches the process.
    let (status, _, body) = mcp(url, bob, Some(&bobs), answer(&question["id"], "bob")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("answers no request that the MCP server sent to this agent"), "{body}");
    let (status, _, body) = mcp(url, alice, Some(&alices), answer(&question["id"], "alice")).await;
    assert_eq!(status, 202, "{body}");
    let result = alices_call.next(Duration::from_secs(10)).await.expect("the tool's answer");
    assert_eq!(result["id"], 5, "{result}");
    assert!(result_text(&result).contains("answered by alice"), "{result}");

    // A change the process announces during alice's call may be about bob's
    // subscription as well as hers: with bob listening, nobody hears of it.
    let told = mcp(url, alice, Some(&alices), tool_call(6, "tell", json!({}))).await;
    assert!(told.2.contains("told") && !told.2.contains("memo://private"), "{told:?}");
    assert!(bobs_stream.next(Duration::from_secs(1)).await.is_none(), "bob heard of the resource");

    // With both people's calls in flight, nobody can be told whose a question
    // is: the process gets an error instead of an answer, and nobody sees it.
    let waiting = tokio::spawn({
        let (url, alice, alices) = (url.to_owned(), alice.clone(), alices.clone());
        async move { mcp(&url, &alice, Some(&alices), tool_call(7, "wait", json!({ "ms": 3000 }))).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = call(url, bob, &bobs, "ask").await;
    assert!(asked.contains("cannot tell which one this request is for"), "{asked}");
    assert_eq!(waiting.await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancellation_reaches_the_process_only_for_the_senders_own_request() {
    let route = AskerRoute::start(&["--shared-process"]);
    let (url, alice, bob) = (route.gateway.url.as_str(), &route.alice, &route.bob);
    let (alices, bobs) = (session_of(url, alice).await, session_of(url, bob).await);

    let waiting = tokio::spawn({
        let (url, alice, alices) = (url.to_owned(), alice.clone(), alices.clone());
        async move { mcp(&url, &alice, Some(&alices), tool_call(77, "wait", json!({ "ms": 1500 }))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = |id: u64| json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": id } });
    // Bob cancels by alice's id, and by ids the gateway may have used.
    for id in [77, 1, 2, 3] {
        assert_eq!(mcp(url, bob, Some(&bobs), cancel(id)).await.0, 202);
    }
    assert_eq!(mcp(url, alice, Some(&alices), cancel(77)).await.0, 202);
    let (status, _, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let message = support::gateway::message_of(&body);
    assert_eq!(message["id"], 77, "alice gets her own id back: {body}");
    let seen_as = result_text(&message);
    let cancelled = call(url, alice, &alices, "cancelled").await;
    assert_eq!(
        cancelled,
        format!("[{seen_as}]"),
        "the process heard alice's one cancellation, of her request"
    );
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn has_ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().unwrap_or_default().trim_start().starts_with('Z'),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persons_process_ends_with_their_last_session_and_its_stderr_is_logged_under_the_route() {
    let idp = Idp::start(&[]);
    let log = tempdir("stderr").join("gateway.log");
    let args = ["--upstream-command", &stdio_asker(), "--name", "asker"];
    let gateway = Gateway::start_logging_to(&idp.issuer, "", &args, &log);
    let url = gateway.url.as_str();
    let alice = user_token(&idp, url, "alice");
    let (first, second) = (session_of(url, &alice).await, session_of(url, &alice).await);
    let pid = call(url, &alice, &first, "pid").await;
    assert_eq!(call(url, &alice, &second, "pid").await, pid, "alice's sessions share her process");

    let delete = |session: String| {
        let request =
            reqwest::Client::new().delete(url).bearer_auth(&alice).header("mcp-session-id", session);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(first.clone()).await, 204);
    assert_eq!(delete(first).await, 404, "a session ends once");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!has_ended(&pid), "her other session still uses it");
    assert_eq!(delete(second).await, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !has_ended(&pid) {
        assert!(std::time::Instant::now() < deadline, "process {pid} outlived alice's last session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains(&format!("stdio-asker started pid={pid}")));
    let line = line.unwrap_or_else(|| panic!("the program's stderr is not in the log: {text}"));
    assert!(line.contains("route=asker"), "logged under the route's name: {line}");
    assert!(!text.contains(&alice), "the token is not in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_ends_the_sessions_on_its_process_and_a_silent_one_answers_in_time() {
    let route = AskerRoute::start(&["--timeout", "1"]);
    let (url, alice) = (route.gateway.url.as_str(), &route.alice);

    // A tool that outlasts the route's timeout: the agent gets the timeout's
    // error for its own request, in time.
    let session = session_of(url, alice).await;
    let started = std::time::Instant::now();
    let (status, _, body) =
        mcp(url, alice, Some(&session), tool_call(21, "wait", json!({ "ms": 5000 }))).await;
    let message = support::gateway::message_of(&body);
    assert_eq!((status, &message["id"]), (200, &json!(21)), "{body}");
    assert_eq!(message["error"]["data"]["reason"], "upstream_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());

    // The process dies: both of alice's sessions on it end (404, the MCP
    // signal to start again), and a new one gets a fresh process.
    let other = session_of(url, alice).await;
    let before = call(url, alice, &other, "pid").await;
    let (_, _, body) = mcp(url, alice, Some(&session), tool_call(22, "exit", json!({}))).await;
    assert!(body.contains("its process ended before answering"), "{body}");
    for ended in [&session, &other] {
        let (status, _, body) = mcp(url, alice, Some(ended), tool_call(23, "pid", json!({}))).await;
        assert_eq!(status, 404, "{body}");
    }
    let fresh = session_of(url, alice).await;
    assert_ne!(call(url, alice, &fresh, "pid").await, before, "a fresh process");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_a_stdio_answer_costs_the_gateway_a_bounded_queue() {
    use tokio::io::AsyncWriteExt;
    let route = AskerRoute::start(&["--timeout", "5"]);
    let (url, alice) = (route.gateway.url.as_str(), &route.alice);
    let session = session_of(url, alice).await;
    let before = route.gateway.process.rss_kib();

    // 128 MiB of notifications for a POST whose answer is never read.
    let flood = tool_call(31, "flood", json!({ "count": 2048, "size": 65536 })).to_string();
    let address = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut client = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {alice}\r\nmcp-session-id: {session}\r\n\
         content-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n{flood}",
        flood.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let grown = route.gateway.process.rss_kib().saturating_sub(before);
    // The stream's queue holds 256 messages (16 MiB of these); what does not
    // fit is dropped, not kept.
    assert!(grown < 48 * 1024, "the gateway grew by {grown} KiB");
    drop(client);
    // The process and its other sessions carry on.
    assert!(call(url, alice, &session, "pid").await.parse::<u32>().is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_reaches_only_the_call_it_belongs_to_though_two_sessions_chose_one_token() {
    let route = AskerRoute::start(&["--shared-process"]);
    let (url, alice, bob) = (route.gateway.url.as_str(), &route.alice, &route.bob);
    let (alices, bobs) = (session_of(url, alice).await, session_of(url, bob).await);
    // The TypeScript SDK numbers progress tokens per session: both pick 1.
    let call = |tag: &str| {
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "wait",
            "arguments": { "ms": 800, "tag": tag }, "_meta": { "progressToken": 1 } } })
    };
    let (alices_message, bobs_message) = (call("alice's"), call("bob's"));
    let (mut alices_call, mut bobs_call) = tokio::join!(
        Events::post(url, alice, &alices, &alices_message),
        Events::post(url, bob, &bobs, &bobs_message)
    );
    for (events, mine) in [(&mut alices_call, "alice's"), (&mut bobs_call, "bob's")] {
        let progress = events.next(Duration::from_secs(10)).await.expect("its progress");
        assert_eq!(progress["method"], "notifications/progress", "{progress}");
        assert_eq!(progress["params"]["progressToken"], 1, "the client's own token back: {progress}");
        assert_eq!(progress["params"]["message"], mine, "{mine} call got {progress}");
        let answer = events.next(Duration::from_secs(10)).await.expect("its answer");
        assert_eq!(answer["id"], 3, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_stream_opened_again_replaces_the_first_and_keeps_listening() {
    let route = AskerRoute::start(&[]);
    let (url, alice) = (route.gateway.url.as_str(), &route.alice);
    let session = session_of(url, alice).await;
    let mut first = Events::get(url, alice, &session).await;
    let mut second = Events::get(url, alice, &session).await;
    assert!(first.next(Duration::from_secs(5)).await.is_none(), "the first stream ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A call answered with plain JSON carries nothing else: what the process
    // tells meanwhile goes to her GET stream, the second one.
    let answer = reqwest::Client::new()
        .post(url)
        .bearer_auth(alice)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &session)
        .body(tool_call(4, "tell", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(result_text(&body), "told", "{body}");
    let told = second.next(Duration::from_secs(5)).await.expect("the second stream hears it");
    assert_eq!(told["params"]["uri"], "memo://private", "{told}");
}
