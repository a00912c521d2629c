//! The tutorial's MCP server: one tool, `whoami`, that returns who is calling.
//!
//! The server itself knows nothing about OAuth: the guard in front of it has
//! verified the token and left an [`AuthInfo`] in the request, which rmcp hands to
//! the tool through the request's `http::request::Parts`; [`Person::of`] finds
//! the person behind it as the guard was told to.

use agentgate_guard::{AuthInfo, Guard, Person};
use axum::Router;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// The scopes `whoami` asks for beside its own, so that it can say who the
/// caller is: agentgate's issuer puts what they allow into the access token.
pub const PERSON_SCOPES: [&str; 2] = ["profile", "email"];

/// Stores the whoami server's resource at `url` with its one `scope`, named
/// and explained in every language the pages speak (or brings a stored one to
/// exactly that).
pub async fn declare_resource(
    store: &agentgate_issuer::store::AnyStore,
    url: &str,
    scope: &str,
) -> Result<agentgate_issuer::store::Resource, agentgate_issuer::scopes::AddResourceError> {
    let texts = |name: &str, words: &str| agentgate_issuer::store::ResourceTexts {
        name: Some(name.to_owned()),
        scopes: [(scope.to_owned(), words.to_owned())].into(),
    };
    let translations = [
        ("es".to_owned(), texts("servidor MCP whoami", "Usar la herramienta whoami")),
        ("ja".to_owned(), texts("whoami MCP サーバー", "whoami ツールを使う")),
    ]
    .into();
    let words = [(scope, "Use the whoami tool")];
    let now = agentgate_issuer::now();
    agentgate_issuer::scopes::declare_resource(store, url, "whoami MCP server", &words, &translations, now)
        .await
}

/// The `whoami` MCP server.
#[derive(Debug, Clone, Default)]
pub struct WhoAmI;

/// The answer of `whoami`: the person (what the issuer shares about them with
/// this app), apart from what the token says about the call. When the person's
/// claims could not be fetched, `note` says why and `person` holds what the
/// token itself carries.
pub fn answer(who: &AuthInfo, person: Result<Person, agentgate_guard::PersonError>) -> Value {
    let (person, note) = match person {
        Ok(person) => (person, None),
        Err(error) => (Person::from_token(who), Some(error.to_string())),
    };
    let expires_at =
        who.expires_at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs());
    let mut answer = json!({
        "person": person.claims,
        "token": {
            "issuer": who.issuer,
            "client_id": who.client_id,
            "scopes": who.scopes,
            "audience": who.audience,
            "expires_at": expires_at,
        },
    });
    if let Some(note) = note {
        answer["note"] = note.into();
    }
    answer
}

#[tool_router]
impl WhoAmI {
    /// Returns who is calling: the person, and what the token says about the call.
    #[tool(description = "Returns who you are: the claims about you that you agreed to share with \
                          this app (sub, and username, name and email when granted), and what your \
                          access token says about this call (the app's client_id, the scopes, the audience).")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let who = AuthInfo::from_parts(&parts).ok_or_else(|| {
            ErrorData::internal_error("the request reached the tool without an identity", None)
        })?;
        Ok(CallToolResult::structured(answer(who, Person::of(&parts).await)))
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
