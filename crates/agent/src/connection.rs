//! A connection that answers the server's challenges as they come: a 401 on a
//! request (the token is gone or refused after rmcp's one refresh) or a 403
//! `insufficient_scope` (the tool needs more) sends the person through sign-in
//! and consent again, asking for what was granted plus what the challenge
//! names, and retries the request on a new connection. At most
//! [`MAX_AUTHORIZATIONS`] times per request: a server that keeps asking is
//! refused rather than looped on.

use std::future::Future;

use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};

use crate::{Agent, AgentError, Session, UserAgent};

/// The most authorizations one request may need.
pub const MAX_AUTHORIZATIONS: usize = 3;

/// A connection to an MCP server that re-authorizes when a request is refused.
pub struct Connection<'a> {
    agent: &'a Agent,
    url: url::Url,
    person: &'a dyn UserAgent,
    session: Session,
    asked: Vec<String>,
}

impl std::fmt::Debug for Connection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("url", &self.url.as_str()).field("asked", &self.asked).finish()
    }
}

impl Agent {
    /// Connects like [`Agent::connect`], keeping `person` at hand for the
    /// server's later challenges.
    pub async fn open<'a>(
        &'a self,
        server: &str,
        person: &'a dyn UserAgent,
    ) -> Result<Connection<'a>, AgentError> {
        let url = crate::connect::parse_server(server)?;
        let (session, asked) = self.connect_to(&url, person).await?;
        Ok(Connection { agent: self, url, person, session, asked })
    }
}

impl Connection<'_> {
    /// The MCP session as it is now.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Every tool of the server.
    pub async fn list_tools(&mut self) -> Result<Vec<Tool>, AgentError> {
        self.with_authorization(|session| {
            let session = session.peer().clone();
            async move { session.list_all_tools().await }
        })
        .await
    }

    /// Calls a tool. A tool the server does not have is
    /// [`AgentError::NoSuchTool`], with the names of those it has.
    pub async fn call_tool(&mut self, params: CallToolRequestParams) -> Result<CallToolResult, AgentError> {
        let called = self
            .with_authorization(|session| {
                let (session, params) = (session.peer().clone(), params.clone());
                async move { session.call_tool(params).await }
            })
            .await;
        match called {
            Err(error @ AgentError::Answered { .. }) => {
                let tools = self.list_tools().await?;
                if tools.iter().any(|t| t.name == params.name) {
                    return Err(error);
                }
                Err(AgentError::NoSuchTool {
                    url: self.url.to_string(),
                    tool: params.name.to_string(),
                    tools: tools.iter().map(|t| t.name.to_string()).collect(),
                })
            }
            other => other,
        }
    }

    /// Ends the connection.
    pub async fn close(self) {
        let _ = self.session.cancel().await;
    }

    async fn with_authorization<T, F, Fut>(&mut self, request: F) -> Result<T, AgentError>
    where
        F: Fn(&Session) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        for _ in 0..MAX_AUTHORIZATIONS {
            let error = match request(&self.session).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if let ServiceError::McpError(answer) = &error {
                return Err(AgentError::Answered {
                    url: self.url.to_string(),
                    message: crate::connect::printable(&answer.message, 500),
                    code: answer.code.0,
                });
            }
            let Some(challenge) = challenge_in(&error) else {
                return Err(AgentError::Connect { url: self.url.to_string(), reason: error.to_string() });
            };
            let (session, asked) =
                self.agent.authorize(&self.url, &challenge, &self.asked, self.person).await?;
            let old = std::mem::replace(&mut self.session, session);
            let _ = old.cancel().await;
            self.asked = asked;
        }
        Err(AgentError::Connect {
            url: self.url.to_string(),
            reason: format!("still refused after {MAX_AUTHORIZATIONS} authorizations; giving up"),
        })
    }
}

/// The `WWW-Authenticate` challenge behind a refused request, if that is why.
fn challenge_in(error: &ServiceError) -> Option<String> {
    // The transport's error is a field, not a `source`, of rmcp's ServiceError.
    let ServiceError::TransportSend(transport) = error else { return None };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(transport.error.as_ref());
    while let Some(current) = cause {
        if let Some(required) = current.downcast_ref::<AuthRequiredError>() {
            return Some(required.www_authenticate_header.clone());
        }
        if let Some(scope) = current.downcast_ref::<InsufficientScopeError>() {
            return Some(scope.www_authenticate_header.clone());
        }
        cause = current.source();
    }
    None
}
