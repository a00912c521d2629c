//! # agentgate-agent
//!
//! The client side of MCP authorization: an agent that connects to an MCP
//! server, and when the server answers 401, finds its authorization server,
//! registers, sends the person to sign in and consent, comes back with a
//! token, and calls tools with it. Built on rmcp's OAuth client, with the
//! checks the 2026-07-28 MCP spec asks of clients that rmcp leaves to its
//! caller (see [`Agent::connect`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), agentgate_agent::AgentError> {
//! use agentgate_agent::{Agent, SystemBrowser};
//! let agent = Agent::default();
//! let session = agent.connect("http://127.0.0.1:8080/mcp", &SystemBrowser::default()).await?;
//! let tools = session.list_all_tools().await.map_err(|e| agentgate_agent::AgentError::Connect {
//!     url: "http://127.0.0.1:8080/mcp".into(),
//!     reason: e.to_string(),
//! })?;
//! println!("{} tools", tools.len());
//! # Ok(()) }
//! ```

mod callback;
mod connect;
mod connection;
pub mod credentials;
mod error;
pub mod revocation;
mod user_agent;

pub use callback::CallbackListener;
pub use connect::{Agent, Session};
pub use connection::{Connection, MAX_AUTHORIZATIONS};
pub use credentials::FileCredentials;
pub use error::AgentError;
pub use user_agent::{Headless, SystemBrowser, UserAgent};
