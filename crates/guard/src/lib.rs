//! # agentgate-guard
//!
//! OAuth 2.1 protection for MCP servers built with [rmcp] and axum: the Rust
//! counterpart of the `mcp-auth` library, for any OpenID Connect or OAuth 2.0
//! issuer (Logto, Keycloak, Auth0, node `oidc-provider`, agentgate's own issuer).
//!
//! What the guard does, per the MCP authorization specification:
//!
//! - **discovers** the issuer's metadata (RFC 8414 and OpenID Connect Discovery, in
//!   the MCP order, with an exact `issuer` check), lazily and once;
//! - **publishes** RFC 9728 protected resource metadata, so clients find the
//!   issuer from a 401 alone;
//! - **verifies** bearer tokens: JWTs against the issuer's keys (the default),
//!   introspection (RFC 7662), or the tutorial's userinfo call;
//! - **refuses** precisely: 401 with `resource_metadata` and `scope`, 403
//!   `insufficient_scope` naming every scope needed (also per tool), 400 for
//!   malformed requests, 503 when the issuer cannot be reached;
//! - **binds** each MCP session to the subject that opened it;
//! - **hands** the caller's [`AuthInfo`] to tool handlers, and [`Person::of`] the
//!   person behind it (from the token, or the issuer's userinfo endpoint);
//! - **refuses revoked tokens** at once where the issuer can say so in memory
//!   ([`RevocationCheck`]).
//!
//! ## Example: the tutorial's `whoami` server
//!
//! ```no_run
//! use agentgate_guard::{Guard, Person};
//! use rmcp::handler::server::tool::Extension;
//! use rmcp::model::{CallToolResult, ServerCapabilities, ServerInfo};
//! use rmcp::transport::streamable_http_server::{
//!     StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
//! };
//! use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
//!
//! #[derive(Clone)]
//! struct WhoAmI;
//!
//! #[tool_router]
//! impl WhoAmI {
//!     #[tool(description = "Returns the identity claims of the caller.")]
//!     async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> Result<CallToolResult, ErrorData> {
//!         let person = Person::of(&parts).await.map_err(|e| ErrorData::invalid_request(e.to_string(), None))?;
//!         Ok(CallToolResult::structured(serde_json::json!({ "person": person.claims })))
//!     }
//! }
//!
//! #[tool_handler(router = Self::tool_router())]
//! impl ServerHandler for WhoAmI {
//!     fn get_info(&self) -> ServerInfo {
//!         ServerInfo::new(ServerCapabilities::builder().enable_tools().build())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let guard = Guard::builder("https://tenant.logto.app/oidc", "http://127.0.0.1:3001/mcp")
//!         .scopes(["whoami"])
//!         .build()?;
//!     let mcp = StreamableHttpService::new(
//!         || Ok(WhoAmI),
//!         LocalSessionManager::default().into(),
//!         StreamableHttpServerConfig::default(),
//!     );
//!     let app = axum::Router::new()
//!         .route_service("/mcp", guard.layer().layer(mcp))
//!         .merge(guard.metadata_router());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! # use tower::Layer;
//! ```
//!
//! ## Choosing a verifier
//!
//! See [`verify`]: JWT verification checks everything locally and is the fastest;
//! introspection works with opaque tokens and sees revocations; userinfo is the
//! tutorial's mode and **cannot check that a token was issued for this server**.
//!
//! [rmcp]: https://docs.rs/rmcp

#![warn(missing_docs)]

mod auth_info;
mod bearer;
mod challenge;
mod claims;
pub mod discovery;
mod error;
mod fetch;
mod guard;
mod layer;
mod metadata;
mod person;
mod resource;
mod revocation;
mod session;
mod tool_scopes;
pub mod verify;

pub use auth_info::AuthInfo;
pub use discovery::{AuthorizationServerMetadata, Discovery, DiscoveryError};
pub use error::{AuthError, ConfigError, InvalidToken};
pub use fetch::{caused_by, error_chain};
pub use guard::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES, Guard, GuardBuilder, Verification};
pub use layer::{GuardLayer, GuardService};
pub use metadata::ProtectedResourceMetadata;
pub use person::{Person, PersonClaims, PersonError};
pub use resource::{PRM_WELL_KNOWN, ResourceId, is_loopback, is_valid_scope};
pub use revocation::RevocationCheck;
pub use verify::{
    ClientAuthMethod, IntrospectionVerifier, JwtVerifier, TokenVerifier, UserinfoVerifier, VerifyFuture,
};
