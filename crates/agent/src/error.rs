//! What can go wrong when an agent connects.

use rmcp::transport::auth::AuthError;

/// Why the agent could not reach the server's tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The server URL is not an absolute http(s) URL.
    #[error("{0:?} is not an MCP server URL (an absolute http or https URL)")]
    BadUrl(String),
    /// The server asks for authorization but publishes no protected resource
    /// metadata (RFC 9728), so there is no trustworthy way to know its issuer.
    #[error(
        "{0} asks for authorization but publishes no protected resource metadata (RFC 9728); \
         the agent does not guess where to sign in"
    )]
    NoResourceMetadata(String),
    /// The authorization server does not advertise PKCE with S256.
    #[error(
        "the authorization server {0} does not advertise PKCE with S256; the agent does not sign in there"
    )]
    NoPkce(String),
    /// The authorization server would have the person, or tokens, go to a URL
    /// that is neither https nor http on this machine.
    #[error(
        "the authorization server names {0:?}, which is neither https nor http on this machine; \
         the agent sends nobody and nothing there"
    )]
    InsecureEndpoint(String),
    /// Discovery, registration or the token exchange failed (rmcp's OAuth client).
    #[error("authorization failed: {0}")]
    Auth(AuthError),
    /// The issuer sent the person back with an error (`access_denied` when they
    /// said no).
    #[error("the authorization server answered {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// The OAuth error code.
        error: String,
        /// Its description, if any.
        description: Option<String>,
    },
    /// Nobody came back to the redirect URI in time, or the user agent failed.
    #[error("the sign-in did not finish: {0}")]
    NotBack(String),
    /// Nothing answers at the server's address.
    #[error("no server answers at {url}: is it running, and is the address right?")]
    Unreachable {
        /// The server.
        url: String,
        /// What the connection attempt said.
        detail: String,
    },
    /// Something answers, but not as an MCP server: no MCP endpoint at that path.
    #[error("{url} answers, but not as an MCP server (HTTP {status}): is the path right?")]
    NotMcp {
        /// The server.
        url: String,
        /// The HTTP status of a plain MCP request there.
        status: u16,
        /// What the MCP client said.
        detail: String,
    },
    /// The server has no tool of that name.
    #[error("{url} has no tool {tool:?}; its tools: {}", if tools.is_empty() { "none".to_owned() } else { tools.join(", ") })]
    NoSuchTool {
        /// The server.
        url: String,
        /// The name asked for.
        tool: String,
        /// The tools it has.
        tools: Vec<String>,
    },
    /// The server answered a request with an MCP error.
    #[error("{url} answered with an error: {message}")]
    Answered {
        /// The server.
        url: String,
        /// Its message.
        message: String,
        /// The JSON-RPC error code.
        code: i32,
    },
    /// The MCP connection itself failed.
    #[error("could not talk to {url}: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The issuer refused the pre-registered client the agent was given
    /// (`invalid_client`): it does not know it, or its secret is wrong.
    #[error(
        "the authorization server does not accept the app {0:?} (invalid_client): \
         check --client-id and --client-secret, or leave them out and let the agent register itself"
    )]
    UnknownClient(String),
    /// The credentials file could not be read or written.
    #[error("credentials at {path}: {reason}")]
    Credentials {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl AgentError {
    /// What the libraries underneath said, for `--verbose`: the message itself
    /// names the situation in plain words.
    pub fn detail(&self) -> Option<&str> {
        match self {
            AgentError::Unreachable { detail, .. } | AgentError::NotMcp { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

// Not a `#[from]`: that would make rmcp's error the source too, and error
// chains would print its message twice.
impl From<AuthError> for AgentError {
    fn from(error: AuthError) -> Self {
        AgentError::Auth(error)
    }
}
