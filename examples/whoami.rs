//! The tutorial's `whoami` MCP server, protected by agentgate-guard: the code to
//! copy. Run it against your issuer (Logto shown; any OIDC issuer works):
//!
//! ```sh
//! ISSUER=https://<tenant>.logto.app/oidc RESOURCE=http://127.0.0.1:3001/mcp \
//!     cargo run -p agentgate-examples --example whoami
//! ```
use agentgate_guard::{AuthInfo, Guard, Person};
use axum::serve::ListenerExt;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use tower::Layer;

#[derive(Clone)]
struct WhoAmI;

#[tool_router]
impl WhoAmI {
    #[tool(description = "Returns who you are (sub, username, name, email…) and which app is calling.")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        // The guard verified the token and left the caller's identity here.
        let who =
            AuthInfo::from_parts(&parts).ok_or_else(|| ErrorData::internal_error("no identity", None))?;
        // The person behind the token: its identity claims (or the issuer's
        // userinfo answer, with `.person_claims(PersonClaims::Userinfo)`).
        let person = Person::of(&parts).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::structured(serde_json::json!({
            "person": person.claims,
            "app": who.client_id,
        })))
    }
}

#[tool_handler(router = Self::tool_router())]
impl ServerHandler for WhoAmI {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("ISSUER")?; // e.g. https://<tenant>.logto.app/oidc
    let resource = std::env::var("RESOURCE").unwrap_or_else(|_| "http://127.0.0.1:3001/mcp".into());

    // Tokens must come from `issuer`, name `resource` in `aud`, and carry `whoami`.
    let guard = Guard::builder(issuer, resource).scopes(["whoami"]).build()?;

    let mcp = StreamableHttpService::new(
        || Ok(WhoAmI),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new()
        .route_service("/mcp", guard.layer().layer(mcp)) // every MCP request needs a token
        .merge(guard.metadata_router()); // RFC 9728 metadata, public

    // TCP_NODELAY: MCP answers are small SSE writes; without it each waits ~40 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("whoami MCP server at http://127.0.0.1:3001/mcp");
    axum::serve(listener, app).await?;
    Ok(())
}
