//! Per-tool policy on a gateway route from agentgate.toml, against
//! `@modelcontextprotocol/server-memory` on stdio, with the TypeScript SDK as
//! the agent: what a caller may not use is left out of `tools/list`, a call
//! that more consent would allow is asked to step up (403), one that nothing
//! would allow gets a JSON-RPC error naming the policy, and the consent page
//! names the tools a scope opens.

mod support;

use serde_json::{Value, json};
use support::browser::Browser;
use support::flow::authorize_url_on;
use support::setup::{PASSWORD, Setup};
use support::{interop_dir, node, ts_client};

/// A route in front of server-memory whose `create_entities` needs
/// `memory:write` and whose `delete_entities` only first-party apps may call.
fn memory_setup(name: &str) -> Setup {
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
            "[[route]]\npath = \"/memory\"\nname = \"Memory\"\nupstream = \"{command}\"\n\
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
