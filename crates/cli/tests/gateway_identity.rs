//! What a gateway route tells its upstream about the caller, from
//! `[[route]]` in agentgate.toml under `agentgate serve`: a token minted by
//! the issuer for that upstream alone, accepted unchanged by the tutorial's
//! own Node server (mcp-auth), refused everywhere else; or `X-Agentgate-*`
//! headers that no agent can forge.

mod support;

use serde_json::{Value, json};
use support::flow::jwt_claims;
use support::free_port;
use support::setup::{PASSWORD, Setup};
use support::upstream::recording_upstream;
use support::{TutorialServer, ts_agent};

/// alice, and a third-party app that may ask for `scopes`; its client id.
fn alice_and_app(setup: &Setup, scopes: &str) -> String {
    setup.add_person("alice");
    setup.add_app("Outside agent", &["--third-party"], scopes)
}

#[test]
fn the_tutorials_server_accepts_the_token_minted_for_it_and_learns_the_person() {
    let port = free_port();
    let tutorial = format!("http://127.0.0.1:{port}/mcp");
    let setup = Setup::new(
        "identity-token",
        &format!(
            "[[route]]\npath = \"/tutorial\"\nupstream = \"{tutorial}\"\nname = \"Tutorial whoami\"\n\
             scopes = {{ whoami = \"See who you are\" }}\nidentity = \"token\"\n"
        ),
        0o600,
    );
    let app = alice_and_app(&setup, "openid profile whoami");
    let (_serve, _) = setup.serve(&[]);
    // The tutorial's server, unchanged: mcp-auth in resource mode, checking a
    // JWT for its own URL with the `whoami` scope against the issuer's JWKS.
    let _tutorial = TutorialServer::start_on(&setup.issuer(), "resource", port);
    let route = format!("{}/tutorial", setup.issuer());

    let out =
        ts_agent(&route, Some(&app), PASSWORD, &["--tool", "whoami", "--scope", "openid profile whoami"]);
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["consent"], "allow", "{out}");
    let text = out["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{out}"));
    let claims: Value = serde_json::from_str(text).unwrap();
    assert_eq!(claims["sub"], setup.user_id("alice").as_str(), "the person, not the agent: {claims}");
    assert_eq!(claims["aud"], tutorial.as_str(), "for the upstream alone: {claims}");
    assert_eq!(claims["client_id"], app.as_str());
    assert_eq!(claims["act"], json!({ "sub": app }), "the agent acts for the person (RFC 8693): {claims}");
    assert_eq!(claims["scope"], "openid profile whoami");
    assert_eq!(claims["preferred_username"], "alice");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 300, "a few minutes at most: {lifetime} s");
    assert_eq!(out["token"]["aud"], route.as_str(), "the agent's own token was for the route: {out}");
}

async fn call(url: &str, token: &str, forged: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }));
    for (name, value) in forged {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minted_token_is_good_at_its_upstream_only_and_headers_cannot_be_forged() {
    let (minted_port, headers_port) = (free_port(), free_port());
    let (_, minted_seen) = recording_upstream(minted_port).await;
    let (_, headers_seen) = recording_upstream(headers_port).await;
    let setup = Setup::new(
        "identity-both",
        &format!(
            "[[route]]\npath = \"/minted\"\nupstream = \"http://127.0.0.1:{minted_port}/mcp\"\nidentity = \"token\"\n\
             audience = \"https://notes.internal/mcp\"\n\
             [[route]]\npath = \"/told\"\nupstream = \"http://127.0.0.1:{headers_port}/mcp\"\nidentity = \"headers\"\n"
        ),
        0o600,
    );
    let app = alice_and_app(&setup, "openid profile mcp:tools");
    let (_serve, _) = setup.serve(&[]);
    let issuer = setup.issuer();
    let (minted_route, told_route) = (format!("{issuer}/minted"), format!("{issuer}/told"));
    let alice = setup.user_id("alice");

    let token = setup.token(&app, &minted_route, "openid profile mcp:tools");
    let forged = [("x-agentgate-sub", "root"), ("x-agentgate-scope", "admin")];
    let answer = call(&minted_route, &token, &forged).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let headers = minted_seen.lock().unwrap().pop().expect("the upstream got the call");
    let bearer = headers["authorization"].to_str().unwrap().strip_prefix("Bearer ").unwrap().to_owned();
    assert_ne!(bearer, token, "the agent's token stops at the gateway");
    assert!(headers.get("x-agentgate-sub").is_none(), "nothing forged passes: {headers:?}");
    let minted = jwt_claims(&bearer);
    assert_eq!(minted["aud"], "https://notes.internal/mcp", "the configured audience: {minted}");
    assert_eq!(
        (minted["sub"].as_str(), minted["iss"].as_str()),
        (Some(alice.as_str()), Some(issuer.as_str()))
    );
    assert_eq!(minted["act"]["sub"], app.as_str());
    assert!(minted["exp"].as_i64() <= jwt_claims(&token)["exp"].as_i64(), "never outlives the agent's");

    // The next call reuses it; replayed at the gateway, it is for another audience.
    assert_eq!(call(&minted_route, &token, &[]).await.status(), 200);
    let again = minted_seen.lock().unwrap().pop().unwrap();
    assert_eq!(again["authorization"].to_str().unwrap(), format!("Bearer {bearer}"), "kept while it lasts");
    for route in [&minted_route, &told_route] {
        let replayed = call(route, &bearer, &[]).await;
        assert_eq!(replayed.status(), 401, "the upstream's token replayed at {route}");
    }

    // The headers route: the person and the agent in headers, the agent's
    // forged ones replaced, no Authorization at all.
    let token = setup.token(&app, &told_route, "openid profile mcp:tools");
    assert_eq!(call(&told_route, &token, &forged).await.status(), 200);
    let headers = headers_seen.lock().unwrap().pop().expect("the upstream got the call");
    assert_eq!(headers["x-agentgate-sub"], alice.as_str(), "{headers:?}");
    assert_eq!(headers["x-agentgate-scope"], "openid profile mcp:tools");
    assert_eq!(headers["x-agentgate-client-id"], app.as_str());
    assert_eq!(headers["x-agentgate-issuer"], issuer.as_str());
    assert_eq!(headers["x-agentgate-username"], "alice");
    assert_eq!(headers.get_all("x-agentgate-sub").iter().count(), 1, "one value, ours");
    assert!(headers.get("authorization").is_none());

    // Revoked, the agent's token stops at the gateway: nothing reaches the upstream.
    let form = [("token", token.as_str()), ("client_id", app.as_str())];
    let revoked = reqwest::Client::new().post(format!("{issuer}/revoke")).form(&form).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(call(&told_route, &token, &[]).await.status(), 401);
    assert!(headers_seen.lock().unwrap().is_empty(), "a revoked token's call reached the upstream");
}

#[test]
fn routes_that_would_leak_an_identity_are_refused_before_anything_starts() {
    for (route, reason) in [
        ("upstream = \"http://10.0.0.5:9000/mcp\"\nidentity = \"headers\"", "only an upstream on loopback"),
        ("upstream = \"npx -y some-server\"\nidentity = \"token\"", "has no headers"),
        (
            "upstream = \"http://127.0.0.1:9/mcp\"\nidentity = \"token\"\naudience = \"http://127.0.0.1:PORT/notes\"",
            "serves itself",
        ),
        (
            "upstream = \"http://127.0.0.1:9/mcp\"\naudience = \"https://x.example/mcp\"",
            "`audience` is for identity",
        ),
        ("upstream = \"http://127.0.0.1:9/mcp\"\nenv = { A = \"1\" }", "are for a program on stdio"),
        ("upstream = \"npx x\"\nscopes = { \"a b\" = \"x\" }", "not a valid scope"),
        ("upstream = \"npx x\"\nmax_processes = 0", "at least 1"),
        ("upstream = \"npx x\"\nidle_timeout = -1", "positive number of seconds"),
        ("upstream = \"npx x\"\nidentiti = \"none\"", "unknown field"),
    ] {
        let setup = Setup::new("identity-refusals", "", 0o600);
        let section =
            format!("[[route]]\npath = \"/notes\"\n{}\n", route.replace("PORT", &setup.port.to_string()));
        let file = std::fs::read_to_string(setup.config()).unwrap() + &section;
        std::fs::write(setup.config(), file).unwrap();
        let out = setup.run(&["serve"], &[], "");
        let error = support::setup::stderr_of(&out);
        assert!(error.contains(reason), "{route:?}: {error}");
        assert!(!setup.dir.join("data").exists(), "{route:?}: a refused setup left data behind");
    }
}

#[test]
fn a_python_mcp_server_behind_the_gateway_learns_the_person_from_headers() {
    let port = free_port();
    let setup = Setup::new(
        "identity-python",
        &format!(
            "[registration]\npolicy = \"open\"\n\
             [[route]]\npath = \"/notes\"\nupstream = \"http://127.0.0.1:{port}/mcp\"\nidentity = \"headers\"\n"
        ),
        0o600,
    );
    setup.add_person("alice");
    let (_serve, _) = setup.serve(&[]);
    // The Python SDK's MCPServer (FastMCP), no auth of its own.
    let (_notes, _) = support::python_program("notes.py", &[("NOTES_PORT", &port.to_string())], "NOTES_URL=");
    let route = format!("{}/notes", setup.issuer());

    // The Python SDK as the agent: it registers itself, alice signs in and allows it.
    let out = support::python_agent(&["--url", &route, "--password", PASSWORD, "--tool", "caller"]);
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["consent"], "allow", "{out}");
    let told = &out["result"];
    assert_eq!(told["x-agentgate-sub"], setup.user_id("alice").as_str(), "{out}");
    assert_eq!(told["x-agentgate-client-id"], out["clientId"], "{out}");
    assert_eq!(told["x-agentgate-issuer"], setup.issuer().as_str());
    let tools: Vec<&str> = out["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(tools.contains(&"add_note") && tools.contains(&"list_notes"), "{out}");
}
