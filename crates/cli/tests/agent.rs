//! agentgate-agent, the library, against `agentgate dev` over real sockets: a
//! 401, discovery, dynamic registration, alice signing in and consenting on
//! the real pages (driven like a browser), the loopback callback, `whoami`;
//! then the stored token reused with nobody asked; and the refusals: a person
//! who says no, and a server that publishes no protected resource metadata.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use agentgate_agent::{Agent, AgentError, CallbackListener, UserAgent};
use rmcp::model::CallToolRequestParams;
use support::Dev;
use support::browser::Browser;
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
        let page = browser.get(url).await;
        let page = browser.sign_in(&self.base, &page, "alice", PASSWORD).await;
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
    assert_eq!(claims["sub"], dev.user_id("alice").as_str(), "{claims}");
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
    assert_eq!(result.structured_content.unwrap()["sub"], claims["sub"]);
    assert_eq!(alice.visits.load(Ordering::SeqCst), 1, "the stored token was used");
    again.cancel().await.unwrap();
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
