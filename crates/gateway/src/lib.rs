//! # agentgate-gateway
//!
//! Consent-gated agent access in front of any existing MCP server, with no
//! change to its code. The [guard](agentgate_guard) checks the agent's token,
//! and the gateway passes the MCP messages on to the server behind it — the
//! *upstream* — and its answers back:
//!
//! - [`HttpUpstream`]: a server that speaks Streamable HTTP (a Python FastMCP
//!   or TypeScript SDK server, another rmcp server); requests, JSON and SSE
//!   answers, the GET stream and session ids pass through as they are;
//! - [`StdioUpstream`]: a program that speaks MCP on stdio (`npx -y
//!   @modelcontextprotocol/server-memory`), one process per person by default.
//!
//! The agent's access token never reaches the upstream: the guard takes it out
//! of the request, and [`headers`] keeps cookies and forged identity headers
//! out as well. What the upstream may learn instead — nothing, headers on
//! loopback, or a token minted for it alone — is the route's [`Identity`]. When the upstream fails, the agent gets a [`Fault`]: a 502,
//! 504 or 413 with a JSON-RPC error that says what happened and what to do.
//!
//! ## Example: a guarded route in front of a FastMCP server
//!
//! ```no_run
//! use agentgate_gateway::HttpUpstream;
//! use agentgate_guard::Guard;
//! use tower::Layer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::builder("https://tenant.logto.app/oidc", "https://gw.example.com/notes")
//!     .scopes(["notes"])
//!     .build()?;
//! let upstream = HttpUpstream::new("notes", "http://127.0.0.1:8000/mcp".parse()?);
//! let app = axum::Router::new()
//!     .route_service("/notes", guard.layer().layer(upstream))
//!     .merge(guard.metadata_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod audit;
mod delivery;
mod enforce;
mod fault;
pub mod headers;
mod http_client;
mod http_upstream;
pub mod identity;
pub mod metrics;
pub mod policy;
mod process;
pub mod provider_token;
mod stdio;

pub use enforce::{AppDirectory, AppInfo, MAX_LIST_ANSWER, POLICY_REFUSED, Policed};
pub use fault::Fault;
pub use http_upstream::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, HttpUpstream, unix_socket};
pub use identity::{Identity, Minter, UpstreamTokens};
pub use process::StdioCommand;
pub use provider_token::{NoProviderToken, ProviderTokens};
pub use stdio::{StdioOptions, StdioUpstream};
