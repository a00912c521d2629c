//! agentgate-agent, the library, against `agentgate dev` over real sockets: a
//! 401, discovery, dynamic registration, alice signing in and consenting on
//! the real pages (driven like a browser), the loopback callback, `whoami`;
//! then the stored token reused with nobody asked; and the refusals: a person
//! who says no, and a server that publishes no protected resource metadata.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use agentgate_agent::{Agent, AgentError, CallbackListener, UserAgent};
use rmcp::model::CallToolRequestParams;
use support::browser::Browser;
use support::{Dev, Idp, TutorialServer};
use tokio::sync::Mutex;

const PASSWORD: &str = "wonderland";

/// Alice at the keyboard: signs in on the issuer's page and presses a button
/// on the consent page; counts how often she was asked.
struct Alice {
    base: String,
    decision: &'static str,
    browser: Mutex<Browser>,
    visits: AtomicUsize,
}

impl Alice {
    fn new(base: &str, decision: &'static str) -> Self {
        Self {
            base: base.into(),
            decision,
            browser: Mutex::new(Browser::new("en")),
            visits: AtomicUsize::new(0),
        }
    }
}

#[async_trait::async_trait]
impl UserAgent for Alice {
    async fn visit(&self, url: &str, callback: &CallbackListener) -> Result<String, AgentError> {
        self.visits.fetch_add(1, Ordering::SeqCst);
        let mut browser = self.browser.lock().await;
        let mut page = browser.get(url).await;
        // Signed in already on a later visit: straight to the consent page.
        if page.body.contains("name=\"password\"") {
            page = browser.sign_in(&self.base, &page, "alice", PASSWORD).await;
        }
        let page = browser.decide(&self.base, &page, self.decision).await;
        let back = page.location.expect("the issuer sends alice back");
        assert!(back.starts_with(callback.redirect_uri()), "{back}");
        Ok(back)
    }
}

fn credentials_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("agentgate-agent-{name}-{}", std::process::id()))
}

#[tokio::test]
async fn the_agent_signs_alice_in_calls_whoami_and_reuses_its_token() {
    let dev = Dev::start(PASSWORD);
    let dir = credentials_dir("flow");
    let agent = Agent { credentials_dir: Some(dir.clone()), ..Agent::default() };
    let alice = Alice::new(&dev.base, "allow");

    let session = agent.connect(&dev.mcp_url(), &alice).await.unwrap();
    let result = session.call_tool(CallToolRequestParams::new("whoami")).await.unwrap();
    let claims = result.structured_content.expect("whoami answers with claims");
    assert_eq!(claims["person"]["sub"], dev.user_id("alice").as_str(), "{claims}");
    assert_eq!(alice.visits.load(Ordering::SeqCst), 1);
    session.cancel().await.unwrap();

    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "{file:?}");
    }
    assert!(
        std::fs::read_to_string(&file).unwrap().contains(&dev.base),
        "the issuer is kept with the tokens"
    );

    // Again: the stored token works, and nobody is asked.
    let again = agent.connect(&dev.mcp_url(), &alice).await.unwrap();
    let result = again.call_tool(CallToolRequestParams::new("whoami")).await.unwrap();
    assert_eq!(result.structured_content.unwrap()["person"], claims["person"]);
    assert_eq!(alice.visits.load(Ordering::SeqCst), 1, "the stored token was used");
    again.cancel().await.unwrap();

    // Tokens kept for another issuer are never offered: forgotten, and alice is asked again.
    let mut kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    kept["credentials"]["issuer"] = "https://elsewhere.example".into();
    std::fs::write(&file, kept.to_string()).unwrap();
    let third = agent.connect(&dev.mcp_url(), &alice).await.unwrap();
    assert_eq!(alice.visits.load(Ordering::SeqCst), 2, "signed in again");
    third.cancel().await.unwrap();
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept["credentials"]["issuer"], dev.base.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_person_who_says_no_is_a_clear_refusal() {
    let dev = Dev::start(PASSWORD);
    let agent = Agent { credentials_dir: None, ..Agent::default() };
    let error = agent.connect(&dev.mcp_url(), &Alice::new(&dev.base, "deny")).await.unwrap_err();
    assert!(matches!(&error, AgentError::Refused { error, .. } if error == "access_denied"), "{error}");
}

/// A fake MCP server that answers every call with 401; with `metadata`, it
/// publishes protected resource metadata naming itself as the authorization
/// server, whose metadata lists `pkce` as its PKCE methods (or says nothing).
async fn refusing_server(metadata: bool, pkce: Option<&'static [&'static str]>) -> String {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let prm = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let challenge = if metadata { format!("Bearer resource_metadata=\"{prm}\"") } else { "Bearer".into() };
    let mut app = axum::Router::new().fallback(move || {
        let challenge = challenge.clone();
        async move { (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]) }
    });
    if metadata {
        let resource =
            serde_json::json!({ "resource": format!("{base}/mcp"), "authorization_servers": [base] });
        let mut server = serde_json::json!({
            "issuer": base, "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"), "registration_endpoint": format!("{base}/register"),
            "response_types_supported": ["code"],
        });
        if let Some(methods) = pkce {
            server["code_challenge_methods_supported"] = methods.into();
        }
        app = app
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(move || async move { axum::Json(resource) }),
            )
            .route("/.well-known/oauth-authorization-server", get(move || async move { axum::Json(server) }));
    }
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn a_server_without_protected_resource_metadata_is_refused() {
    let base = refusing_server(false, None).await;
    let agent = Agent { credentials_dir: None, ..Agent::default() };
    let person = Alice::new(&base, "allow");
    let error = agent.connect(&format!("{base}/mcp"), &person).await.unwrap_err();
    assert!(matches!(error, AgentError::NoResourceMetadata(_)), "{error}");
    assert_eq!(person.visits.load(Ordering::SeqCst), 0, "nobody was sent anywhere");
}

#[tokio::test]
async fn an_authorization_server_without_pkce_s256_is_refused() {
    // Saying nothing about PKCE is refused too (rmcp itself only warns).
    for methods in [None, Some(&["plain"][..])] {
        let base = refusing_server(true, methods).await;
        let agent = Agent { credentials_dir: None, ..Agent::default() };
        let person = Alice::new(&base, "allow");
        let error = agent.connect(&format!("{base}/mcp"), &person).await.unwrap_err();
        assert!(matches!(&error, AgentError::NoPkce(issuer) if *issuer == base), "{methods:?}: {error}");
        assert_eq!(person.visits.load(Ordering::SeqCst), 0);
    }
}

/// `agentgate agent ARGS --credentials-dir DIR`, finished: (status, stdout, stderr).
fn agent_cli(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .arg("agent")
        .args(args)
        .arg("--credentials-dir")
        .arg(dir)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn the_cli_walks_alice_through_sign_in_and_prints_her_claims() {
    let dev = Dev::start(PASSWORD);
    let dir = credentials_dir("cli");
    let mcp = dev.mcp_url();

    let (claims, _) = call_whoami_as_alice(&dev, &dir, &[]).await;
    assert_eq!(claims["person"]["sub"], dev.user_id("alice").as_str());

    // The token is kept: tools and status need nobody.
    let (ok, tools, _) = agent_cli(&dir, &["tools", &mcp]);
    assert!(ok && tools.starts_with("whoami"), "{tools}");
    let (ok, status, _) = agent_cli(&dir, &["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(ok && status[0]["server"] == dev.mcp_url().as_str(), "{status}");
    assert_eq!(status[0]["issuer"], dev.base.as_str());
    assert!(status[0]["expires_in"].as_i64().unwrap() > 0, "{status}");

    // Errors name the situation in plain words, the detail behind --verbose.
    let (ok, _, error) = agent_cli(&dir, &["call", &mcp, "nosuch"]);
    assert!(!ok && error.contains(r#"has no tool "nosuch"; its tools: whoami"#), "{error}");
    let (ok, _, error) = agent_cli(&dir, &["tools", &format!("{mcp}/"), "--no-browser", "--timeout", "5"]);
    assert!(!ok && error.contains("answers, but not as an MCP server (HTTP 404)"), "{error}");
    assert!(error.contains("--verbose shows the detail") && !error.contains("legacy"), "{error}");
    let closed = "http://127.0.0.1:9/mcp";
    let (ok, _, error) = agent_cli(&dir, &["tools", closed, "--no-browser", "--timeout", "5"]);
    assert!(!ok && error.contains("no server answers at http://127.0.0.1:9/mcp"), "{error}");
    assert!(!error.contains("Transport"), "{error}");
    let (_, _, error) = agent_cli(&dir, &["tools", closed, "--no-browser", "--verbose"]);
    assert!(error.contains("  detail: "), "{error}");

    // Bad arguments are refused before anything is sent; logout forgets the token.
    let (ok, _, error) = agent_cli(&dir, &["call", &dev.mcp_url(), "whoami", "--arg", "novalue"]);
    assert!(!ok && error.contains("KEY=VALUE"), "{error}");
    // Logout revokes at the issuer: the kept refresh token no longer works there.
    let kept = kept_tokens(&dir).1["credentials"].clone();
    let (ok, _, said) = agent_cli(&dir, &["logout", &dev.mcp_url()]);
    assert!(ok && said.contains("signed out") && said.contains("revoked at the issuer"), "{said}");
    let refresh = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            kept["token_response"]["refresh_token"].as_str().expect("a refresh token was kept"),
        ),
        ("client_id", kept["client_id"].as_str().unwrap()),
    ];
    let refused =
        reqwest::Client::new().post(format!("{}/token", dev.base)).form(&refresh).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");
    let (_, status, _) = agent_cli(&dir, &["status", "--output", "json"]);
    assert_eq!(status.trim(), "[]");
    let (ok, _, error) = agent_cli(&dir, &["logout", &dev.mcp_url()]);
    assert!(!ok && error.contains("no tokens kept"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `agent call MCP whoami --no-browser`: it prints the URL and waits at its
/// loopback port; alice opens it in a browser of her own, signs in and
/// allows, and her browser follows the redirect back. The claims printed,
/// and what the agent said on stderr.
async fn call_whoami_as_alice(
    dev: &Dev,
    dir: &std::path::Path,
    args: &[&str],
) -> (serde_json::Value, String) {
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["agent", "call", &dev.mcp_url(), "whoami", "--no-browser", "--timeout", "60"])
        .args(args)
        .arg("--credentials-dir")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the agent ended without showing a URL: {said}");
        said.push_str(&line);
        if let Some(url) = line.trim().strip_prefix(&format!("{}/authorize?", dev.base)) {
            break format!("{}/authorize?{url}", dev.base);
        }
    };
    let mut browser = Browser::new("en");
    let page = browser.get(&url).await;
    let page = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    let page = browser.decide(&dev.base, &page, "allow").await;
    let back = page.location.expect("sent back to the agent");
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    let landing = reqwest::get(&back).await.unwrap();
    assert!(landing.text().await.unwrap().contains("close this tab"));
    let out = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        (child.wait_with_output().unwrap(), rest)
    });
    let (out, rest) = out.await.unwrap();
    said.push_str(&rest);
    assert!(out.status.success(), "{said}");
    (serde_json::from_slice(&out.stdout).unwrap(), said)
}

#[tokio::test]
async fn after_the_servers_data_is_reset_the_agent_registers_again() {
    let dev = Dev::start(PASSWORD);
    let dir = credentials_dir("reset");
    let listen = dev.base.trim_start_matches("http://").to_owned();
    call_whoami_as_alice(&dev, &dir, &[]).await;
    let first = kept_tokens(&dir).1["credentials"]["client_id"].as_str().unwrap().to_owned();

    // The same URL, a new data directory: the issuer knows neither the app nor
    // its tokens. With the access token expired, the agent's refresh is
    // refused as invalid_client: it registers again and alice signs in.
    age_kept_tokens(&dir);
    drop(dev);
    let dev = Dev::start_with(PASSWORD, &["--listen", &listen]);
    // This time with the scopes and the loopback port chosen on the command line.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_arg = port.to_string();
    let args = ["--scope", "mcp:tools profile", "--callback-port", &port_arg];
    let (claims, said) = call_whoami_as_alice(&dev, &dir, &args).await;
    assert_eq!(claims["person"]["sub"], dev.user_id("alice").as_str(), "{said}");
    assert_eq!(claims["person"]["name"], "Alice", "{claims}");
    assert!(claims["person"].get("email").is_none(), "email was not asked for: {claims}");
    assert!(said.contains(&format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback")), "{said}");
    assert!(said.contains("no longer knows this agent's registration"), "{said}");
    let second = kept_tokens(&dir).1["credentials"]["client_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a new registration");

    // Reset again: logout forgets what the issuer no longer knows, and says so.
    drop(dev);
    let _dev = Dev::start_with(PASSWORD, &["--listen", &listen]);
    let (ok, _, said) = agent_cli(&dir, &["logout", &format!("http://{listen}/mcp")]);
    assert!(ok && said.contains("no longer knows the app"), "{said}");
    assert_eq!(agent_cli(&dir, &["status", "--output", "json"]).1.trim(), "[]");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `agentgate agent call MCP whoami ARGS`, its browser ($BROWSER) Debian's
/// Chromium with a person at it (interop/tools/person.mjs, set up by `person`,
/// e.g. the decision on the consent page): the finished agent and what the
/// person saw.
fn call_whoami_in_chromium(
    mcp: &str,
    dir: &std::path::Path,
    args: &[&str],
    person: &[(&str, &str)],
) -> (std::process::Output, serde_json::Value) {
    call_in_chromium(mcp, "whoami", dir, args, person)
}

/// [`call_whoami_in_chromium`], for the tool `tool`.
fn call_in_chromium(
    mcp: &str,
    tool: &str,
    dir: &std::path::Path,
    args: &[&str],
    person: &[(&str, &str)],
) -> (std::process::Output, serde_json::Value) {
    let (interop, node) = (support::interop_dir(), support::node());
    static N: AtomicUsize = AtomicUsize::new(0);
    let report = dir.with_extension(format!("person-{}.json", N.fetch_add(1, Ordering::SeqCst)));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"));
    command
        .args(["agent", "call", mcp, tool, "--timeout", "90", "--credentials-dir"])
        .arg(dir)
        .args(args)
        .env("BROWSER", format!("{} {}", node.display(), interop.join("tools/person.mjs").display()))
        .env("AGENTGATE_DEMO_PASSWORD", PASSWORD)
        .env("AGENTGATE_PERSON_REPORT", &report)
        .env_remove("AGENTGATE_LOG");
    for (name, value) in person {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    // The agent is done once the browser is back; the person closes the browser after.
    let waited = std::time::Instant::now();
    while !report.exists() && waited.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let saw = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!("the person wrote no report ({e}); agent: {}", String::from_utf8_lossy(&out.stderr))
    });
    let _ = std::fs::remove_file(&report);
    (out, serde_json::from_str(&saw).unwrap())
}

/// The one credentials file in `dir` and what it holds.
fn kept_tokens(dir: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let kept = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    (files[0].clone(), kept)
}

/// Moves the kept tokens' receipt in `dir` an hour back, as if they had
/// expired; returns the access token kept.
fn age_kept_tokens(dir: &std::path::Path) -> String {
    let (file, mut kept) = kept_tokens(dir);
    let received = kept["credentials"]["token_received_at"].as_u64().expect("the receipt time is kept");
    kept["credentials"]["token_received_at"] = (received - 3600).into();
    std::fs::write(file, kept.to_string()).unwrap();
    kept["credentials"]["token_response"]["access_token"].as_str().unwrap().to_owned()
}

/// `agent call MCP whoami` with nobody to sign in: the kept tokens must do.
/// Returns the claims and the access token kept afterwards.
fn call_whoami_unattended(dir: &std::path::Path, mcp: &str, args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["call", mcp, "whoami", "--no-browser", "--timeout", "5"];
    all.extend_from_slice(args);
    let (ok, out, error) = agent_cli(dir, &all);
    assert!(ok, "{error}");
    let token =
        kept_tokens(dir).1["credentials"]["token_response"]["access_token"].as_str().unwrap().to_owned();
    (serde_json::from_str(&out).unwrap(), token)
}

#[test]
fn alice_consents_in_chromium_and_the_cli_prints_her_claims() {
    let dev = Dev::start(PASSWORD);
    let dir = credentials_dir("chromium");

    // Bob's browser session does not exist; alice says no first: a clear refusal, nothing kept.
    let (out, saw) =
        call_whoami_in_chromium(&dev.mcp_url(), &dir, &[], &[("AGENTGATE_PERSON_DECISION", "deny")]);
    assert_eq!(saw["ok"], true, "{saw}");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("access_denied"),
        "{out:?}"
    );
    assert_eq!(agent_cli(&dir, &["status", "--output", "json"]).1.trim(), "[]");

    // Then yes: the consent page names the agent (it registered itself, so it is a
    // third party), the browser lands on the agent's loopback page, whoami answers.
    let (out, saw) = call_whoami_in_chromium(&dev.mcp_url(), &dir, &[], &[]);
    assert_eq!(saw["ok"], true, "{saw}");
    assert_eq!(saw["consent"]["h1"], "Allow access?", "{saw}");
    assert!(saw["consent"]["text"].as_str().unwrap().contains("agentgate agent"), "{saw}");
    assert!(saw["landing"]["origin"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{saw}");
    assert_eq!(saw["landing"]["params"], serde_json::json!(["code", "state", "iss"]), "{saw}");
    assert!(saw["landing"]["text"].as_str().unwrap().contains("close this tab"), "{saw}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Through a third-party app, in a real browser: whoami names alice, with
    // the profile she allowed it to see.
    let person = &claims["person"];
    assert_eq!(person["sub"], dev.user_id("alice").as_str(), "{claims}");
    assert_eq!(
        (person["username"].as_str(), person["name"].as_str(), person["email"].as_str()),
        (Some("alice"), Some("Alice"), Some("alice@example.com")),
        "{claims}"
    );
    // The person is told where to go, not about the challenges answered on the way.
    assert!(said.contains("Sign in and allow access") && !said.contains("ERROR"), "{said}");

    // Once the access token has expired, the refresh token gets another, unattended.
    let expired = age_kept_tokens(&dir);
    let (again, fresh) = call_whoami_unattended(&dir, &dev.mcp_url(), &[]);
    assert_eq!(again["person"], claims["person"]);
    assert_ne!(fresh, expired, "the token was refreshed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_calls_the_tutorials_node_server_with_oidc_provider_as_the_issuer() {
    let idp = Idp::start(&[]);
    let dir = credentials_dir("tutorial");
    let smartmail = ["--client-id", "smartmail-ai"];

    // As the tutorial wrote it (the 2025-03-26 authorization spec): no protected resource
    // metadata, and the server republishes the issuer's metadata as its own, so the
    // metadata's issuer is not the URL it came from. The agent does not sign in at an
    // issuer it cannot trust: a clear refusal, said once, and nobody is sent anywhere.
    let tutorial = TutorialServer::start(&idp.issuer, "tutorial");
    let (ok, _, error) = agent_cli(
        &dir,
        &["call", &tutorial.url, "whoami", "--no-browser", "--timeout", "5", smartmail[0], smartmail[1]],
    );
    assert!(!ok && error.matches("issuer mismatch").count() == 1, "{error}");
    assert!(!error.contains("/auth?") && !error.contains("Sign in"), "no sign-in URL is shown: {error}");

    // In mcp-auth's resource server mode: alice signs in and consents at oidc-provider in
    // Chromium; the token is a JWT for this server alone, and whoami returns its claims.
    let server = TutorialServer::start(&idp.issuer, "resource");
    let (out, saw) = call_whoami_in_chromium(
        &server.url,
        &dir,
        &smartmail,
        &[("AGENTGATE_PERSON_PAGES", "oidc-provider")],
    );
    assert_eq!(saw["ok"], true, "{saw}");
    assert_eq!(saw["landing"]["params"], serde_json::json!(["code", "state", "iss"]), "{saw}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["iss"], idp.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], server.url.as_str(), "{claims}");
    assert_eq!(claims["client_id"], "smartmail-ai", "{claims}");

    // Once the access token has expired, the refresh token gets another, unattended.
    let expired = age_kept_tokens(&dir);
    let (again, fresh) = call_whoami_unattended(&dir, &server.url, &smartmail);
    assert_eq!(again["sub"], "alice");
    assert_ne!(fresh, expired, "the token was refreshed");

    // Kept per server: the tutorial-mode server's URL has no tokens.
    let (ok, status, _) = agent_cli(&dir, &["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        ok && status.as_array().unwrap().len() == 1 && status[0]["server"] == server.url.as_str(),
        "{status}"
    );

    // Logout revokes at oidc-provider: the refresh token is refused there afterwards.
    let kept = kept_tokens(&dir).1["credentials"].clone();
    let (ok, _, said) = agent_cli(&dir, &["logout", &server.url]);
    assert!(ok && said.contains("revoked at the issuer"), "{said}");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", kept["token_response"]["refresh_token"].as_str().unwrap()),
        ("client_id", "smartmail-ai"),
    ];
    let refused =
        reqwest::Client::new().post(format!("{}/token", idp.issuer)).form(&refresh).send().await.unwrap();
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_grant", "{refused}");

    let _ = std::fs::remove_dir_all(&dir);
}

/// What reached a revocation endpoint: the Authorization header and the body.
type Revocations = Vec<(Option<String>, String)>;

/// An issuer for logout to talk to, misbehaving as `mode` says; it records
/// what reaches its revocation endpoint.
#[derive(Clone, Default)]
struct Revoker {
    mode: std::sync::Arc<std::sync::Mutex<&'static str>>,
    seen: std::sync::Arc<std::sync::Mutex<Revocations>>,
}

impl Revoker {
    async fn start(&self) -> String {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (me, issuer) = (self.clone(), base.clone());
        let metadata = get(move || {
            let mode = *me.mode.lock().unwrap();
            let issuer =
                if mode == "other-issuer" { "https://elsewhere.example".to_owned() } else { issuer.clone() };
            let endpoint = match mode {
                "no-revocation" => None,
                "redirect" => Some(format!("{issuer}/moved")),
                "insecure" => Some("http://10.255.255.1/revoke".to_owned()),
                _ => Some(format!("{issuer}/revoke")),
            };
            let methods = if mode == "post-only" { vec!["client_secret_post"] } else { vec![] };
            async move {
                axum::Json(serde_json::json!({
                    "issuer": issuer,
                    "revocation_endpoint": endpoint,
                    "revocation_endpoint_auth_methods_supported": (!methods.is_empty()).then_some(methods),
                }))
            }
        });
        let me = self.clone();
        let revoke = post(move |headers: axum::http::HeaderMap, body: String| {
            let authorization = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
            me.seen.lock().unwrap().push((authorization, body));
            let (status, error) = match *me.mode.lock().unwrap() {
                "down" => (503, ""),
                "unsupported" => (400, "unsupported_token_type"),
                "invalid-client" => (401, "invalid_client"),
                _ => (200, ""),
            };
            let body = serde_json::json!({ "error": error }).to_string();
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
        });
        let moved = get(|| async { axum::response::Redirect::temporary("/revoke") });
        let app = axum::Router::new()
            .route("/.well-known/oauth-authorization-server", metadata)
            .route("/revoke", revoke)
            .route("/moved", moved.post(|| async { axum::response::Redirect::temporary("/revoke") }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }
}

/// Keeps tokens for `server` from `issuer` in `dir`, as a sign-in would (a
/// refresh token too, if `refresh`).
async fn keep_tokens(dir: &std::path::Path, server: &str, issuer: &str, refresh: bool) {
    use rmcp::transport::auth::CredentialStore;
    let mut tokens = serde_json::json!({ "access_token": "at-1", "token_type": "bearer", "expires_in": 600 });
    if refresh {
        tokens["refresh_token"] = "rt-1".into();
    }
    let credentials = serde_json::from_value(serde_json::json!({
        "client_id": "confidential-app",
        "token_response": tokens,
        "granted_scopes": ["whoami"],
        "token_received_at": 1,
        "issuer": issuer,
    }))
    .unwrap();
    agentgate_agent::FileCredentials::for_server(dir, server).save(credentials).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_revokes_only_where_the_issuer_says_and_keeps_what_it_could_not_revoke() {
    let revoker = Revoker::default();
    let issuer = revoker.start().await;
    let dir = credentials_dir("revocation");
    let server = "http://127.0.0.1:9/mcp";
    keep_tokens(&dir, server, &issuer, true).await;
    let logout = |mode: &'static str, extra: &[&str]| {
        *revoker.mode.lock().unwrap() = mode;
        let mut args = vec!["logout", server];
        args.extend_from_slice(extra);
        agent_cli(&dir, &args)
    };
    let kept = || agentgate_agent::credentials::saved_in(&dir).len();

    // Metadata naming another issuer, a revocation endpoint that is down or that
    // redirects: the tokens are kept for another try, and nothing is sent astray.
    let (ok, _, said) = logout("other-issuer", &[]);
    assert!(!ok && said.contains("names the issuer \"https://elsewhere.example\"") && kept() == 1, "{said}");
    let (ok, _, said) = logout("redirect", &[]);
    assert!(!ok && said.contains("307") && said.contains("--forget-anyway") && kept() == 1, "{said}");
    assert!(revoker.seen.lock().unwrap().is_empty(), "a redirect is not followed");
    let (ok, _, said) = logout("down", &[]);
    assert!(!ok && said.contains("503") && kept() == 1, "{said}");

    // A confidential client: HTTP Basic, both halves form-encoded (RFC 6749 §2.3.1);
    // the refresh token first; the secret never in the body.
    revoker.seen.lock().unwrap().clear();
    let (ok, _, said) =
        logout("revokes", &["--client-id", "confidential-app", "--client-secret", "p:ss%wörd"]);
    assert!(ok && said.contains("revoked at the issuer") && kept() == 0, "{said}");
    let seen = revoker.seen.lock().unwrap().clone();
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("confidential-app:p%3Ass%25w%C3%B6rd");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0],
        (Some(format!("Basic {basic}")), "token=rt-1&token_type_hint=refresh_token".to_owned())
    );
    assert_eq!(seen[1].1, "token=at-1&token_type_hint=access_token");

    // No revocation offered: forgotten, and said so. Down, but --forget-anyway: forgotten.
    keep_tokens(&dir, server, &issuer, true).await;
    let (ok, _, said) = logout("no-revocation", &[]);
    assert!(ok && said.contains("offers no revocation") && kept() == 0, "{said}");
    keep_tokens(&dir, server, &issuer, true).await;
    let (ok, _, said) = logout("down", &["--forget-anyway"]);
    assert!(ok && said.contains("did not revoke") && kept() == 0, "{said}");

    // A revocation endpoint off this machine over plain http: nothing is sent there.
    keep_tokens(&dir, server, &issuer, true).await;
    let (ok, _, said) = logout("insecure", &[]);
    assert!(!ok && said.contains("neither https nor on this machine") && kept() == 1, "{said}");

    // An issuer that takes client_secret_post only gets the secret in the body;
    // without a secret the app names itself there (a public client).
    revoker.seen.lock().unwrap().clear();
    let (ok, _, said) =
        logout("post-only", &["--client-id", "confidential-app", "--client-secret", "s3cret"]);
    assert!(ok && kept() == 0, "{said}");
    assert_eq!(
        revoker.seen.lock().unwrap()[0],
        (
            None,
            "token=rt-1&token_type_hint=refresh_token&client_id=confidential-app&client_secret=s3cret"
                .to_owned()
        )
    );
    keep_tokens(&dir, server, &issuer, true).await;
    revoker.seen.lock().unwrap().clear();
    let (ok, _, said) = logout("revokes", &[]);
    assert!(ok && kept() == 0, "{said}");
    assert_eq!(
        revoker.seen.lock().unwrap()[0],
        (None, "token=rt-1&token_type_hint=refresh_token&client_id=confidential-app".to_owned())
    );

    // invalid_client for an app that sent no secret: the issuer no longer knows
    // it (its data was reset, the app removed), so its tokens open nothing there:
    // forgotten, and said so, with the way a confidential app would revoke.
    keep_tokens(&dir, server, &issuer, true).await;
    let (ok, _, said) = logout("invalid-client", &[]);
    assert!(ok && said.contains("no longer knows the app") && kept() == 0, "{said}");
    assert!(said.contains("--client-secret"), "{said}");

    // Only an access token, at an issuer that revokes refresh tokens only: nothing
    // more can be done, so it is forgotten, and said so.
    keep_tokens(&dir, server, &issuer, false).await;
    let (ok, _, said) = logout("unsupported", &[]);
    assert!(ok && said.contains("stay valid until they expire") && kept() == 0, "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_agent_reaches_server_memory_behind_a_dev_route_through_sign_in_and_consent() {
    // The README's first gateway command, with the installed package in place of npx.
    let files = credentials_dir("memory-files");
    std::fs::create_dir_all(&files).unwrap();
    let memory =
        support::interop_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    let route = format!(
        "/memory=MEMORY_FILE_PATH={}/{{person}}.jsonl {} {}",
        files.display(),
        support::node().display(),
        memory.display()
    );
    let dev = Dev::start_with(PASSWORD, &["--route", &route]);
    let url = format!("{}/memory", dev.base);
    let dir = credentials_dir("memory");

    let note =
        r#"{"entities":[{"name":"alice-note","entityType":"note","observations":["through the gateway"]}]}"#;
    let (out, saw) = call_in_chromium(&url, "create_entities", &dir, &["--json", note], &[]);
    assert_eq!(saw["ok"], true, "{saw}");
    assert_eq!(saw["consent"]["h1"], "Allow access?", "a third-party agent is asked: {saw}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The token kept for the route does the next call alone, and reads alice's memory.
    let (ok, out, error) =
        agent_cli(&dir, &["call", &url, "read_graph", "--no-browser", "--timeout", "5", "--output", "json"]);
    assert!(ok, "{error}");
    assert!(out.contains("alice-note") && out.contains("through the gateway"), "{out}");
    // {person} is her id in its file-name-safe form (README): letters, digits
    // and `-` as they are, every other byte `_` and two hex digits.
    let alice: String = dev
        .user_id("alice")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("_{b:02x}") }
        })
        .collect();
    let made: Vec<_> = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(made, [std::ffi::OsString::from(format!("{alice}.jsonl"))], "alice's own file");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&files);
}

#[test]
fn alice_signs_in_at_her_own_provider_in_chromium_and_whoami_names_her() {
    let idp = Idp::start(&[]);
    let setup = support::setup::Setup::new(
        "agent-provider",
        &format!(
            "[whoami]\n[registration]\npolicy = \"open\"\n[[provider]]\nid = \"outside\"\nname = \"Outside ID\"\n\
             issuer = \"{}\"\nclient_id = \"agentgate-upstream\"\nclient_secret_env = \"AGENTGATE_TEST_PROVIDER_SECRET\"\n\
             people = \"anyone\"\n",
            idp.issuer
        ),
        0o600,
    );
    let (_serve, _) = setup.serve(&[("AGENTGATE_TEST_PROVIDER_SECRET", "agentgate-upstream-secret")]);
    let dir = credentials_dir("provider");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("sign-in-with-provider-en.png");
    let person = [
        ("AGENTGATE_PERSON_PROVIDER", "Outside ID"),
        ("AGENTGATE_PERSON_SCREENSHOT", shot.to_str().unwrap()),
    ];
    let (out, saw) = call_whoami_in_chromium(&format!("{}/mcp", setup.issuer()), &dir, &[], &person);
    assert_eq!(saw["ok"], true, "{saw}");
    assert_eq!(
        saw["consent"]["h1"], "Allow access?",
        "agentgate asks, after the provider signed her in: {saw}"
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // whoami names her as her provider does, with agentgate's token.
    let person = &claims["person"];
    assert_eq!(
        (person["username"].as_str(), person["name"].as_str(), person["email"].as_str()),
        (Some("alice"), Some("Alice Liddell"), Some("alice@example.com")),
        "{claims}"
    );
    assert_eq!(person["email_verified"], true, "{claims}");
    assert_eq!(claims["token"]["issuer"], setup.issuer().as_str(), "{claims}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "the sign-in page was seen");
    let _ = std::fs::remove_dir_all(&dir);
}
