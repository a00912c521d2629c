//! Per-tool policy on a gateway route from agentgate.toml, against
//! `@modelcontextprotocol/server-memory` on stdio, with the TypeScript SDK as
//! the agent: what a caller may not use is left out of `tools/list`, a call
//! that more consent would allow is asked to step up (403), one that nothing
//! would allow gets a JSON-RPC error naming the policy, and the consent page
//! names the tools a scope opens. And what the operator sees of it all: the
//! audit log, `agentgate audit`, `/metrics`, `/healthz` and `/readyz`.

mod support;

use serde_json::{Value, json};
use support::browser::Browser;
use support::flow::authorize_url_on;
use support::free_port;
use support::setup::{PASSWORD, Setup};
use support::{interop_dir, node, ts_client};

/// A route in front of server-memory whose `create_entities` needs
/// `memory:write` and whose `delete_entities` only first-party apps may call.
fn memory_setup(name: &str) -> Setup {
    memory_setup_with(name, "")
}

/// The same, with `extra` before the route (top-level keys first, then tables).
fn memory_setup_with(name: &str, extra: &str) -> Setup {
    let files = std::env::temp_dir().join(format!("agentgate-policy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&files).unwrap();
    let memory = interop_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    let command = format!(
        "MEMORY_FILE_PATH={}/{{person}}.jsonl {} {}",
        files.display(),
        node().display(),
        memory.display()
    );
    Setup::new(
        name,
        &format!(
            "{extra}[[route]]\npath = \"/memory\"\nname = \"Memory\"\nupstream = \"{command}\"\n\
             scopes = {{ \"mcp:tools\" = \"Use your memory\", \"memory:write\" = \"Change your memory\" }}\n\
             [route.tools.create_entities]\nscopes = [\"memory:write\"]\n\
             [route.tools.delete_entities]\napps = [\"first-party\"]\n\
             [route.translations.ja]\nscopes = {{ \"memory:write\" = \"メモリを変更する\" }}\n"
        ),
        0o600,
    )
}

fn entity() -> String {
    json!({ "entities": [{ "name": "agentgate", "entityType": "project", "observations": ["a gateway"] }] })
        .to_string()
}

fn tools_of(out: &Value) -> Vec<String> {
    out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn what_an_agent_may_not_use_is_hidden_asked_for_or_refused_by_the_policy() {
    let setup = memory_setup("tools");
    setup.add_person("alice");
    let scopes = "openid mcp:tools memory:write";
    let outside = setup.add_app("Outside agent", &["--third-party"], scopes);
    let own = setup.add_app("Own app", &[], scopes);
    let (_serve, _) = setup.serve(&[]);
    let route = format!("{}/memory", setup.issuer());

    // A third-party agent the person gave `mcp:tools` only.
    let reader = setup.token(&outside, &route, "mcp:tools");
    let out = ts_client(&route, Some(&reader), &["--tool", "read_graph"]);
    assert_eq!(out["ok"], true, "{out}");
    let tools = tools_of(&out);
    assert!(
        tools.contains(&"read_graph".to_owned()) && tools.contains(&"add_observations".to_owned()),
        "{out}"
    );
    for hidden in ["create_entities", "delete_entities"] {
        assert!(!tools.contains(&hidden.to_owned()), "{hidden} listed to a caller who may not use it: {out}");
    }
    // Calling what more consent would allow: 403 naming every scope it needs.
    let out = ts_client(&route, Some(&reader), &["--tool", "create_entities", "--arguments", &entity()]);
    assert_eq!((out["ok"].as_bool(), out["status"].as_u64()), (Some(false), Some(403)), "{out}");
    let challenge = out["wwwAuthenticate"].as_str().unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(
        challenge.contains(r#"scope="memory:write""#) || challenge.contains("mcp:tools memory:write"),
        "{challenge}"
    );

    // Given `memory:write` too, it may create, but never delete: that is for
    // first-party apps, and no consent changes it.
    let writer = setup.token(&outside, &route, "mcp:tools memory:write");
    let out = ts_client(&route, Some(&writer), &["--tool", "create_entities", "--arguments", &entity()]);
    assert_eq!(out["ok"], true, "{out}");
    assert!(
        tools_of(&out).contains(&"create_entities".to_owned())
            && !tools_of(&out).contains(&"delete_entities".to_owned())
    );
    let delete = json!({ "entityNames": ["agentgate"] }).to_string();
    let out = ts_client(&route, Some(&writer), &["--tool", "delete_entities", "--arguments", &delete]);
    assert_eq!(out["ok"], false, "{out}");
    let error = out["error"].as_str().unwrap();
    assert!(
        error.contains("open to first-party apps only") && error.contains("policy of route Memory"),
        "{error}"
    );

    // The first-party app sees and uses it; the entity the agent made is alice's.
    let admin = setup.token(&own, &route, "mcp:tools memory:write");
    let out = ts_client(&route, Some(&admin), &["--tool", "delete_entities", "--arguments", &delete]);
    assert_eq!(out["ok"], true, "{out}");
    assert!(tools_of(&out).contains(&"delete_entities".to_owned()), "{out}");
    let out = ts_client(&route, Some(&admin), &["--tool", "read_graph"]);
    let graph = out["result"]["content"][0]["text"].as_str().unwrap();
    assert!(!graph.contains("agentgate"), "deleted: {graph}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_the_policy_cannot_read_is_refused_and_the_consent_page_names_the_tools() {
    let setup = memory_setup("bodies");
    setup.add_person("alice");
    let outside = setup.add_app("Outside agent", &["--third-party"], "mcp:tools memory:write");
    let (_serve, _) = setup.serve(&[]);
    let route = format!("{}/memory", setup.issuer());
    let token = setup.token(&outside, &route, "mcp:tools");
    let http = reqwest::Client::new();
    let post = |body: &'static str| {
        http.post(&route)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    // Not JSON-RPC: refused, not passed on unread.
    let answer = post("{\"method\": \"tools/call\", \"params\": ").await.unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");
    // A batch that hides a call to a refused tool is refused whole.
    let answer = post(r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_entities","arguments":{}}}]"#)
        .await
        .unwrap();
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("first-party apps only"), "{body}");

    // The consent page says which tools `memory:write` opens, in each language.
    let base = setup.issuer();
    for (language, words) in
        [("en", "Change your memory (create_entities)"), ("ja", "メモリを変更する (create_entities)")]
    {
        let mut browser = Browser::new(language);
        let extra = [
            ("redirect_uri", "http://127.0.0.1/callback"),
            ("resource", route.as_str()),
            ("scope", "mcp:tools memory:write"),
        ];
        let page = browser.get(&authorize_url_on(&base, &outside, &extra)).await;
        let page = browser.sign_in(&base, &page, "alice", PASSWORD).await;
        assert!(page.body.contains(words), "{language}: {}", page.body);
        assert!(!page.body.contains("Use your memory"), "mcp:tools was granted already: {}", page.body);
    }
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_in_the_audit_log_and_the_metrics_without_its_token() {
    let metrics_port = free_port();
    // A second route on the same program records the calls' arguments.
    let memory = interop_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    // Never /dev/null: server-memory saves by renaming a file over its path,
    // which (as root) would put a plain file in /dev/null's place.
    let files = std::env::temp_dir().join(format!("agentgate-policy-recorded-{}", std::process::id()));
    std::fs::create_dir_all(&files).unwrap();
    let extra = format!(
        "[[route]]\npath = \"/recorded\"\nupstream = \"MEMORY_FILE_PATH={}/{{person}}.jsonl {} {}\"\n\
         audit_arguments = true\n[audit]\nfile = \"audit.jsonl\"\n",
        files.display(),
        node().display(),
        memory.display()
    );
    let setup =
        memory_setup_with("audit", &format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n{extra}"));
    setup.add_person("alice");
    let outside = setup.add_app("Outside agent", &["--third-party"], "mcp:tools memory:write");
    let (_serve, _) = setup.serve(&[]);
    let base = setup.issuer();
    let (route, recorded) = (format!("{base}/memory"), format!("{base}/recorded"));

    let reader = setup.token(&outside, &route, "mcp:tools");
    assert_eq!(ts_client(&route, Some(&reader), &["--tool", "read_graph"])["ok"], true);
    ts_client(&route, Some(&reader), &["--tool", "create_entities", "--arguments", &entity()]);
    let writer = setup.token(&outside, &route, "mcp:tools memory:write");
    let delete = json!({ "entityNames": ["agentgate"] }).to_string();
    ts_client(&route, Some(&writer), &["--tool", "delete_entities", "--arguments", &delete]);
    assert_eq!(ts_client(&route, None, &[])["status"], 401);
    assert_eq!(ts_client(&route, Some("not-a-token"), &[])["status"], 401);
    let recorder = setup.token(&outside, &recorded, "mcp:tools");
    assert_eq!(
        ts_client(&recorded, Some(&recorder), &["--tool", "create_entities", "--arguments", &entity()])["ok"],
        true
    );

    let log = setup.dir.join("audit.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let calls = |lines: &[Value]| lines.iter().filter(|l| l["method"] == "tools/call").count();
    while calls(&audit_lines(&log)) < 4 {
        let listing: Vec<_> =
            std::fs::read_dir(&setup.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(std::time::Instant::now() < deadline, "{:?} in {listing:?}", audit_lines(&log));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let lines = audit_lines(&log);
    let call = |name: &str, route: &str| {
        lines
            .iter()
            .find(|l| l["method"] == "tools/call" && l["name"] == name && l["route"] == route)
            .unwrap_or_else(|| panic!("no call of {name} on {route}: {lines:?}"))
    };
    let read = call("read_graph", "Memory");
    assert_eq!((read["decision"].as_str(), read["status"].as_u64()), (Some("allowed"), Some(200)), "{read}");
    assert_eq!(
        (read["username"].as_str(), read["app"].as_str()),
        (Some("alice"), Some("Outside agent")),
        "{read}"
    );
    assert_eq!(
        (read["sub"].as_str(), read["third_party"].as_bool()),
        (Some(setup.user_id("alice").as_str()), Some(true))
    );
    assert_eq!(read["client_id"], outside.as_str());
    assert!(
        read["time"].as_str().unwrap().ends_with('Z') && read["latency_ms"].as_f64().unwrap() > 0.0,
        "{read}"
    );
    let stepped = call("create_entities", "Memory");
    assert_eq!(
        (stepped["decision"].as_str(), stepped["reason"].as_str()),
        (Some("refused"), Some("insufficient_scope"))
    );
    assert_eq!(stepped["status"], 403);
    let refused = call("delete_entities", "Memory");
    assert_eq!((refused["decision"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("policy")));
    assert!(refused["detail"].as_str().unwrap().contains("first-party apps only"), "{refused}");
    let anonymous: Vec<&Value> =
        lines.iter().filter(|l| l["decision"] == "refused" && l.get("sub").is_none()).collect();
    let reasons: Vec<&str> = anonymous.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(reasons.contains(&"no_token") && reasons.contains(&"invalid_token"), "{reasons:?}");
    // Arguments only where the route records them; a token never.
    assert!(stepped.get("arguments").is_none() && read.get("arguments").is_none());
    assert_eq!(call("create_entities", "recorded")["arguments"]["entities"][0]["name"], "agentgate");
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [&reader, &writer, &recorder] {
        assert!(!text.contains(secret.as_str()), "a token in the audit log");
    }

    // `agentgate audit` filters it.
    let out = setup.run(
        &["audit", "--app", "Outside agent", "--decision", "refused", "--route", "Memory"],
        &[],
        "",
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("tools/call delete_entities") && table.contains("refused (policy)"), "{table}");
    assert!(!table.contains("read_graph"), "only refusals: {table}");
    let out = setup.run(
        &["audit", log.to_str().unwrap(), "--person", "alice", "--tool", "read_graph", "--json"],
        &[],
        "",
    );
    let matched: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!matched.is_empty() && matched.iter().all(|l| l["name"] == "read_graph"), "{matched:?}");
    let out = setup.run(&["audit", "--decision", "maybe"], &[], "");
    assert!(support::setup::stderr_of(&out).contains("expected allowed, refused or failed"));

    // The counters, on their own listener; health on the main one.
    let metrics =
        reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    for expected in [
        r#"agentgate_gateway_requests_total{route="Memory",method="tools/call",decision="refused"} 2"#,
        r#"agentgate_gateway_refusals_total{route="Memory",reason="policy"} 1"#,
        r#"agentgate_gateway_refusals_total{route="Memory",reason="no_token"}"#,
        r#"agentgate_gateway_upstream_seconds_count{route="Memory"}"#,
        r#"agentgate_gateway_stdio_processes{route="Memory"} 1"#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    assert_eq!(
        reqwest::get(format!("{base}/metrics")).await.unwrap().status(),
        404,
        "not on the public listener"
    );
    for health in ["healthz", "readyz"] {
        let answer = reqwest::get(format!("{base}/{health}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{health}");
    }
    let _ = std::fs::remove_dir_all(&files);
}

/// A route in front of server-everything on stdio whose prompts, static
/// documents and blob resources the policy governs.
fn everything_setup(name: &str) -> Setup {
    let everything = interop_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let command = format!("{} {} stdio", node().display(), everything.display());
    Setup::new(
        name,
        &format!(
            "[[route]]\npath = \"/everything\"\nname = \"Everything\"\nupstream = \"{command}\"\n\
             scopes = {{ \"mcp:tools\" = \"Use the demo\", \"docs\" = \"Read the documents\" }}\n\
             [route.prompts.simple-prompt]\nscopes = [\"docs\"]\n\
             [route.prompts.args-prompt]\napps = [\"first-party\"]\n\
             [route.resources.\"demo://resource/static/document/*\"]\nscopes = [\"docs\"]\n\
             [route.resources.\"demo://resource/dynamic/blob/*\"]\napps = [\"first-party\"]\n"
        ),
        0o600,
    )
}

/// The result of `method` with `params` in a fresh session of `token`, or the
/// HTTP status and body when it is refused.
async fn ask(url: &str, token: &str, method: &str, params: Value) -> Result<Value, (u16, String)> {
    use support::gateway::{initialize, mcp, message_of};
    let (status, session, body) = mcp(url, token, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let request = json!({ "jsonrpc": "2.0", "id": 2, "method": method, "params": params });
    let (status, _, body) = mcp(url, token, session.as_deref(), request).await;
    let message = (status == 200).then(|| message_of(&body));
    match message {
        Some(message) if message.get("result").is_some() => Ok(message["result"].clone()),
        _ => Err((status, body)),
    }
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    list[field].as_array().unwrap().iter().map(|item| item[key].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prompts_resources_and_templates_are_hidden_asked_for_or_refused_by_the_policy() {
    let setup = everything_setup("prompts");
    setup.add_person("alice");
    let outside = setup.add_app("Outside agent", &["--third-party"], "openid mcp:tools docs");
    let (_serve, _) = setup.serve(&[]);
    let route = format!("{}/everything", setup.issuer());
    let reader = setup.token(&outside, &route, "mcp:tools");

    let prompts = names(&ask(&route, &reader, "prompts/list", json!({})).await.unwrap(), "prompts", "name");
    assert!(prompts.contains(&"completable-prompt".to_owned()), "{prompts:?}");
    for hidden in ["simple-prompt", "args-prompt"] {
        assert!(!prompts.contains(&hidden.to_owned()), "{hidden} listed: {prompts:?}");
    }
    let (status, body) =
        ask(&route, &reader, "prompts/get", json!({ "name": "simple-prompt" })).await.unwrap_err();
    assert_eq!(status, 403, "more consent would allow it: {body}");
    let refused = ask(
        &route,
        &reader,
        "prompts/get",
        json!({ "name": "args-prompt", "arguments": { "city": "Oslo" } }),
    );
    let (status, body) = refused.await.unwrap_err();
    assert!(status == 200 && body.contains("open to first-party apps only"), "{status} {body}");
    // What it may not use, it may not probe for completions either.
    for reference in [
        json!({ "type": "ref/prompt", "name": "args-prompt" }),
        json!({ "type": "ref/resource", "uri": "demo://resource/dynamic/blob/{resourceId}" }),
    ] {
        let probe = json!({ "ref": reference, "argument": { "name": "city", "value": "O" } });
        let (status, body) = ask(&route, &reader, "completion/complete", probe).await.unwrap_err();
        assert!(
            status == 200 && body.contains("open to first-party apps only"),
            "{reference}: {status} {body}"
        );
    }
    let open = json!({ "ref": { "type": "ref/prompt", "name": "completable-prompt" },
        "argument": { "name": "department", "value": "E" } });
    assert!(ask(&route, &reader, "completion/complete", open).await.is_ok(), "an open prompt completes");

    let resources = ask(&route, &reader, "resources/list", json!({})).await.unwrap();
    let uris = names(&resources, "resources", "uri");
    assert!(uris.iter().all(|u| !u.starts_with("demo://resource/static/document/")), "{uris:?}");
    let templates = ask(&route, &reader, "resources/templates/list", json!({})).await.unwrap();
    let templates = names(&templates, "resourceTemplates", "uriTemplate");
    assert!(templates.contains(&"demo://resource/dynamic/text/{resourceId}".to_owned()), "{templates:?}");
    assert!(!templates.iter().any(|t| t.contains("/blob/")), "a first-party template listed: {templates:?}");
    let document = "demo://resource/static/document/features.md";
    let (status, body) =
        ask(&route, &reader, "resources/read", json!({ "uri": document })).await.unwrap_err();
    assert_eq!(status, 403, "{body}");

    // Given `docs`, the documents are listed and read, the prompt is got.
    let reader = setup.token(&outside, &route, "mcp:tools docs");
    let resources = ask(&route, &reader, "resources/list", json!({})).await.unwrap();
    assert!(names(&resources, "resources", "uri").contains(&document.to_owned()), "{resources}");
    let read = ask(&route, &reader, "resources/read", json!({ "uri": document })).await.unwrap();
    assert_eq!(read["contents"][0]["uri"], document, "{read}");
    assert!(ask(&route, &reader, "prompts/get", json!({ "name": "simple-prompt" })).await.is_ok());
}

#[test]
fn dev_tries_the_routes_of_a_file_with_their_policy_and_audit_log() {
    let folder = std::env::temp_dir().join(format!("agentgate-routes-from-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let memory = interop_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    let file = folder.join("agentgate.toml");
    std::fs::write(
        &file,
        format!(
            "issuer = \"https://auth.example.com\"\n[audit]\nfile = \"audit.jsonl\"\n\
             [[route]]\npath = \"/memory\"\nupstream = \"MEMORY_FILE_PATH={}/{{person}}.jsonl {} {}\"\n\
             scopes = {{ \"mcp:tools\" = \"Use your memory\", \"memory:write\" = \"Change your memory\" }}\n\
             [route.tools.create_entities]\nscopes = [\"memory:write\"]\n",
            folder.display(),
            node().display(),
            memory.display()
        ),
    )
    .unwrap();
    let from = file.to_str().unwrap();
    let dev = support::Dev::start_with("routes-from-1", &["--routes-from", from]);
    let url = format!("{}/memory", dev.base);

    // An agent that registers itself is asked for the route's own scope, and
    // the policy keeps what needs more out of its list.
    let out = support::ts_agent(&url, None, "routes-from-1", &["--tool", "read_graph"]);
    assert_eq!(out["ok"], true, "{out}");
    let tools = tools_of(&out);
    assert!(
        tools.contains(&"read_graph".to_owned()) && !tools.contains(&"create_entities".to_owned()),
        "{out}"
    );
    let audit = audit_lines(&folder.join("audit.jsonl"));
    assert!(audit.iter().any(|line| line["route"] == "memory" && line["name"] == "read_graph"), "{audit:?}");

    // The same path from the file and from --route: refused with the reason.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--routes-from",
            from,
            "--route",
            "/memory=http://127.0.0.1:9/mcp",
        ])
        .arg("--data-dir")
        .arg(folder.join("data"))
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && error.contains("already serves /memory"), "{error}");
    let _ = std::fs::remove_dir_all(&folder);
}
