//! The guard in front of a real rmcp Streamable HTTP server, called by rmcp's own
//! client: the tool sees the caller's identity, refusals surface as HTTP errors,
//! and a session cannot be borrowed by another subject.

mod common;

use agentgate_guard::{AuthInfo, Guard};
use common::{TestIssuer, TestKey};
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolRequestParams, CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tower::Layer;

#[derive(Clone)]
struct WhoAmI;

#[tool_router]
impl WhoAmI {
    #[tool(description = "Returns the caller's claims.")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who =
            AuthInfo::from_parts(&parts).ok_or_else(|| ErrorData::internal_error("no identity", None))?;
        Ok(CallToolResult::structured(who.claims_json()))
    }
}

#[tool_handler(router = Self::tool_router())]
impl ServerHandler for WhoAmI {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn start(issuer: &TestIssuer, stateless: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let guard = Guard::builder(issuer.issuer(), &resource).scopes(["whoami"]).build().unwrap();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!stateless)
        .with_json_response(stateless);
    let mcp = StreamableHttpService::new(|| Ok(WhoAmI), LocalSessionManager::default().into(), config);
    let app =
        axum::Router::new().route_service("/mcp", guard.layer().layer(mcp)).merge(guard.metadata_router());
    tokio::spawn(async move {
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap()
    });
    resource
}

async fn call_whoami(url: &str, token: &str) -> Result<Value, String> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    );
    let client = ().serve(transport).await.map_err(|e| e.to_string())?;
    let tools = client.list_all_tools().await.map_err(|e| e.to_string())?;
    assert_eq!(tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(), ["whoami"]);
    let result = client.call_tool(CallToolRequestParams::new("whoami")).await.map_err(|e| e.to_string())?;
    client.cancel().await.ok();
    Ok(result.structured_content.expect("structured content"))
}

#[tokio::test]
async fn rmcp_client_gets_its_claims_through_the_guard() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    for stateless in [false, true] {
        let url = start(&issuer, stateless).await;
        let mut claims = issuer.claims(&url, "alice", "whoami");
        claims["name"] = "Alice Liddell".into();
        let seen = call_whoami(&url, &key.mint(&claims)).await.unwrap();
        assert_eq!(seen["sub"], "alice");
        assert_eq!(seen["name"], "Alice Liddell");

        let refused = call_whoami(&url, "garbage-token").await.unwrap_err();
        assert!(refused.contains("Auth required"), "rmcp sees the 401 challenge: {refused}");
        let wrong_scope =
            call_whoami(&url, &key.mint(&issuer.claims(&url, "alice", "profile"))).await.unwrap_err();
        assert!(wrong_scope.contains("Insufficient scope"), "rmcp sees the 403 challenge: {wrong_scope}");
    }
}

#[tokio::test]
async fn another_subject_cannot_use_alices_session() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    let url = start(&issuer, false).await;
    let alice = key.mint(&issuer.claims(&url, "alice", "whoami"));
    let bob = key.mint(&issuer.claims(&url, "bob", "whoami"));
    let http = reqwest::Client::new();
    let post = |token: &str, session: Option<&str>, body: Value| {
        let mut r = http
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let opened = post(&alice, None, init).await.unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&alice, Some(&session), initialized).await.unwrap().status(), 202);

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami"}});
    let mine = post(&alice, Some(&session), call.clone()).await.unwrap();
    assert_eq!(mine.status(), 200);
    assert!(mine.text().await.unwrap().contains(r#"\"sub\":\"alice\""#));

    let theirs = post(&bob, Some(&session), call).await.unwrap();
    assert_eq!(theirs.status(), 404, "bob's valid token does not open alice's session");
    assert!(!theirs.text().await.unwrap().contains("alice"));
}

#[tokio::test]
async fn sessionless_2026_07_28_requests_go_through_the_guard() {
    let issuer = TestIssuer::start().await;
    let key = TestKey::es256("k1");
    issuer.set_keys(&[&key]);
    // A server in session mode still serves 2026-07-28 requests without sessions.
    let url = start(&issuer, false).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "whoami",
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }});
    let send = |token: Option<String>| {
        let mut r = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .json(&call);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401);
    let alice = key.mint(&issuer.claims(&url, "alice", "whoami"));
    let answer = send(Some(alice)).await.unwrap();
    let status = answer.status();
    if status != 200 {
        panic!("{status}: {}", answer.text().await.unwrap());
    }
    assert!(answer.headers().get("mcp-session-id").is_none(), "no session for 2026-07-28");
    let body = answer.text().await.unwrap();
    assert!(body.contains(r#"\"sub\":\"alice\""#), "{body}");
}
