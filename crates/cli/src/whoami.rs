//! The tutorial's MCP server: one tool, `whoami`, that returns the caller's claims.
//!
//! The server itself knows nothing about OAuth: the guard in front of it has
//! verified the token and left an [`AuthInfo`] in the request, which rmcp hands to
//! the tool through the request's `http::request::Parts`.

use agentgate_guard::{AuthInfo, Guard};
use axum::Router;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// The `whoami` MCP server.
#[derive(Debug, Clone, Default)]
pub struct WhoAmI;

#[tool_router]
impl WhoAmI {
    /// Returns the identity claims of the caller, as the issuer vouched for them.
    #[tool(description = "Returns the identity claims of the current user (sub, username, name, email, …).")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = AuthInfo::from_parts(&parts).ok_or_else(|| {
            ErrorData::internal_error("the request reached the tool without an identity", None)
        })?;
        Ok(CallToolResult::structured(who.claims_json()))
    }
}

#[tool_handler(router = Self::tool_router())]
impl ServerHandler for WhoAmI {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentgate-whoami", env!("CARGO_PKG_VERSION")))
            .with_instructions("Call `whoami` to see who you are signed in as.")
    }
}

/// How the MCP transport behaves.
#[derive(Debug, Clone)]
pub struct McpOptions {
    /// Serve every request statelessly (no `Mcp-Session-Id`).
    pub stateless: bool,
    /// With `stateless`, answer plain JSON instead of an SSE stream when possible.
    pub json_response: bool,
    /// Hosts accepted in the `Host` header (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Cancelled on shutdown: closes open sessions and streams.
    pub shutdown: CancellationToken,
}

/// The `whoami` MCP service (Streamable HTTP), without any protection of its own.
pub fn service(options: McpOptions) -> StreamableHttpService<WhoAmI, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.json_response)
        .with_allowed_hosts(options.allowed_hosts)
        .with_cancellation_token(options.shutdown);
    StreamableHttpService::new(|| Ok(WhoAmI), LocalSessionManager::default().into(), config)
}

/// The app: the guarded MCP endpoint at `path`, plus the protected resource
/// metadata.
pub fn router(guard: &Guard, path: &str, options: McpOptions) -> Router {
    Router::new().route_service(path, guard.layer().layer(service(options))).merge(guard.metadata_router())
}
