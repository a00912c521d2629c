//! Connecting to an MCP server as an agent: the whole flow of the MCP
//! authorization spec, on rmcp's OAuth client, with the checks it leaves to
//! the caller.
//!
//! 1. Connect; a server that answers without a challenge needs no token.
//! 2. On a 401, discover from the challenge: protected resource metadata
//!    (RFC 9728) from `resource_metadata`, else its path-inserted, else its root
//!    well-known URI; then the authorization server's metadata, whose `issuer`
//!    must match exactly. A server without protected resource metadata is
//!    refused (the agent does not guess where to sign in), and so is an
//!    authorization server that does not advertise PKCE with `S256`.
//! 3. Register in the spec's order: a pre-registered client id, else a Client
//!    ID Metadata Document when the server supports them and one is configured,
//!    else dynamic registration as a `native` app.
//! 4. Send the person (the [`UserAgent`]) to the authorization URL (PKCE S256,
//!    `resource`, scopes from the challenge, else the resource's
//!    `scopes_supported`), take them back at a loopback redirect URI, check
//!    `state` and RFC 9207's `iss`, and exchange the code.
//! 5. Connect with the token; rmcp refreshes it before it expires.

use rmcp::RoleClient;
use rmcp::model::ProtocolVersion;
use rmcp::service::RunningService;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationMetadataSource, AuthorizationRequest,
    AuthorizationSession, OAuthClientConfig,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use crate::callback::query_param;
use crate::{AgentError, CallbackListener, FileCredentials, UserAgent};

/// A connection to an MCP server's tools.
pub type Session = RunningService<RoleClient, ()>;

/// How the agent presents itself.
#[derive(Clone)]
pub struct Agent {
    /// The name shown on consent pages when the agent registers itself.
    pub client_name: String,
    /// A client id the server's issuer already knows the agent by.
    pub client_id: Option<String>,
    /// That client's secret, if it is confidential.
    pub client_secret: Option<String>,
    /// The https URL of the agent's Client ID Metadata Document, if it has one.
    pub client_metadata_url: Option<String>,
    /// Where credentials are kept (one file per server); `None` keeps them in
    /// memory only.
    pub credentials_dir: Option<std::path::PathBuf>,
    /// The scopes to ask for, instead of choosing them from the server's
    /// challenge or its `scopes_supported`.
    pub scopes: Option<Vec<String>>,
    /// The loopback port the person's browser comes back to; 0 (the default)
    /// lets the system pick a free one.
    pub callback_port: u16,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("client_name", &self.client_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[REDACTED]"))
            .field("client_metadata_url", &self.client_metadata_url)
            .field("credentials_dir", &self.credentials_dir)
            .field("scopes", &self.scopes)
            .field("callback_port", &self.callback_port)
            .finish()
    }
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            client_name: "agentgate agent".into(),
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            credentials_dir: crate::credentials::default_dir(),
            scopes: None,
            callback_port: 0,
        }
    }
}

impl Agent {
    /// Connects to the MCP server at `server`, walking `person` through sign-in
    /// and consent if the server asks for authorization and no stored token
    /// still works.
    pub async fn connect(&self, server: &str, person: &dyn UserAgent) -> Result<Session, AgentError> {
        let url = parse_server(server)?;
        self.connect_to(&url, person).await.map(|(session, _)| session)
    }

    /// [`Agent::connect`], also returning the scopes the session's token was
    /// granted for (a later step-up asks for those plus the challenge's).
    pub(crate) async fn connect_to(
        &self,
        url: &url::Url,
        person: &dyn UserAgent,
    ) -> Result<(Session, Vec<String>), AgentError> {
        let server = url.as_str();
        // Stored tokens first: no challenge, no person.
        let (attempt, granted) = match self.stored(url).await? {
            Some((manager, granted)) => (connect_with_token(manager, server).await, granted),
            None => (connect_without_token(server).await, Vec::new()),
        };
        let challenge = match attempt {
            Ok(session) => return Ok((session, granted)),
            Err(Refused::Challenge(challenge)) => challenge,
            Err(Refused::Other(error)) => return Err(error),
        };
        // A kept token refused (a 403 asking for more): ask for what it had too.
        self.authorize(url, &challenge, &granted, person).await
    }

    /// Answers `challenge` (a 401, or a 403 asking for more): discovery,
    /// registration, the person's sign-in and consent, the token; then a new
    /// connection. With `also`, the scopes asked for are those plus the
    /// challenge's (a step-up asks for the union); else they are chosen from
    /// the challenge, else the resource's `scopes_supported`. Returns the
    /// session and the scopes asked for.
    pub(crate) async fn authorize(
        &self,
        url: &url::Url,
        challenge: &str,
        also: &[String],
        person: &dyn UserAgent,
    ) -> Result<(Session, Vec<String>), AgentError> {
        let server = url.as_str();
        let mut manager = self.manager(url).await?;
        let resolution = manager.resolve_metadata_from_challenge(Some(challenge)).await?;
        if resolution.source != AuthorizationMetadataSource::ProtectedResourceMetadata {
            return Err(AgentError::NoResourceMetadata(server.to_owned()));
        }
        let metadata = resolution.metadata;
        let issuer = metadata.issuer.clone().unwrap_or_else(|| metadata.authorization_endpoint.clone());
        if !metadata.code_challenge_methods_supported.as_ref().is_some_and(|m| m.iter().any(|m| m == "S256"))
        {
            return Err(AgentError::NoPkce(issuer));
        }
        check_endpoints(&metadata)?;
        let prompts: Option<Vec<String>> = metadata
            .additional_fields
            .get("prompt_values_supported")
            .and_then(|values| serde_json::from_value(values.clone()).ok());
        manager.set_metadata(metadata);

        let callback = CallbackListener::bind_port(self.callback_port).await.map_err(|e| {
            AgentError::NotBack(format!("no loopback port {} for the redirect: {e}", self.callback_port))
        })?;
        let mut request = AuthorizationRequest::new(callback.redirect_uri())
            .with_client_name(&self.client_name)
            .with_application_type("native")
            .with_challenge(challenge);
        request = if let Some(scopes) = self.scopes.as_ref().filter(|_| also.is_empty()) {
            request.with_scopes(scopes.clone())
        } else if also.is_empty() {
            request.with_initial_scope_selection()
        } else {
            let mut union = also.to_vec();
            for scope in challenge_scopes(challenge, url) {
                if !union.contains(&scope) {
                    union.push(scope);
                }
            }
            request.with_scopes(union)
        };
        if let Some(id) = &self.client_id {
            request = request.with_preregistered_client(id);
            if let Some(secret) = &self.client_secret {
                request = request.with_client_secret(secret);
            }
        }
        if let Some(document) = &self.client_metadata_url {
            request = request.with_client_metadata_url(document);
        }
        let session = AuthorizationSession::new(manager, request).await.map_err(|(_, error)| error)?;
        let state = query_param(session.get_authorization_url(), "state")
            .ok_or_else(|| AgentError::NotBack("the authorization URL has no state".into()))?;
        let asked: Vec<String> = query_param(session.get_authorization_url(), "scope")
            .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        callback.expect_state(&state);
        let url = authorization_url(session.get_authorization_url(), &asked, prompts.as_deref())?;
        let back = person.visit(&url, &callback).await?;
        // Only an answer to this request counts, an error included (RFC 6749 §4.1.2.1).
        if query_param(&back, "state").as_deref() != Some(state.as_str()) {
            return Err(AgentError::NotBack("the answer is not for this sign-in (state differs)".into()));
        }
        refused_in(&back)?;
        session.handle_callback_url(&back).await?;
        match connect_with_token(session.auth_manager, server).await {
            Ok(session) => Ok((session, asked)),
            Err(Refused::Challenge(challenge)) => Err(AgentError::Connect {
                url: server.to_owned(),
                reason: format!("the new token was refused ({challenge})"),
            }),
            Err(Refused::Other(error)) => Err(error),
        }
    }
}

impl Agent {
    /// rmcp's OAuth client with the stored tokens for `url`, if some were kept
    /// and the server still names, through protected resource metadata, the
    /// very issuer that granted them, with the scopes they were granted for.
    /// Anything else forgets them: a token is never offered to another issuer,
    /// nor refreshed at a guessed endpoint.
    async fn stored(
        &self,
        url: &url::Url,
    ) -> Result<Option<(AuthorizationManager, Vec<String>)>, AgentError> {
        let Some(dir) = &self.credentials_dir else { return Ok(None) };
        let file = FileCredentials::for_server(dir, url.as_str());
        let Some(kept) = file.read()?.filter(|kept| kept.token_response.is_some()) else { return Ok(None) };
        let mut manager = self.manager(url).await?;
        let resolution = manager.resolve_metadata().await?;
        let same_issuer = kept.issuer.is_some() && resolution.metadata.issuer == kept.issuer;
        if resolution.source != AuthorizationMetadataSource::ProtectedResourceMetadata || !same_issuer {
            tracing::info!(server = %url, "the kept tokens are for another or an unknown issuer; forgetting them");
            rmcp::transport::auth::CredentialStore::clear(&file).await?;
            return Ok(None);
        }
        check_endpoints(&resolution.metadata)?;
        manager.set_metadata(resolution.metadata);
        if !manager.initialize_from_store().await? {
            return Ok(None);
        }
        // rmcp keeps only the client id; a confidential client's secret comes from here.
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret)
            && *id == kept.client_id
        {
            let config = OAuthClientConfig::new(id.clone(), url.as_str()).with_client_secret(secret.clone());
            manager.configure_client(config)?;
        }
        // A kept token that has expired is refreshed here, before any MCP
        // request, so that an issuer which no longer knows this registration
        // (its data was reset, or the app removed) is seen for what it is.
        match manager.get_access_token().await {
            Ok(_) => {}
            // The refresh token is gone or refused: the person signs in again.
            Err(AuthError::AuthorizationRequired) => return Ok(None),
            // oauth2's message for a refused client carries RFC 6749's error code.
            Err(AuthError::TokenRefreshFailed(why)) if why.contains("invalid_client") => {
                if self.client_id.as_deref() == Some(kept.client_id.as_str()) {
                    return Err(AgentError::UnknownClient(kept.client_id));
                }
                tracing::warn!(
                    server = %url,
                    client_id = %kept.client_id,
                    "the issuer no longer knows this agent's registration; registering again"
                );
                rmcp::transport::auth::CredentialStore::clear(&file).await?;
                return Ok(None);
            }
            Err(other) => return Err(other.into()),
        }
        Ok(Some((manager, kept.granted_scopes)))
    }

    /// rmcp's OAuth client for `url`, with this agent's credentials file.
    async fn manager(&self, url: &url::Url) -> Result<AuthorizationManager, AgentError> {
        let mut manager = AuthorizationManager::new(url.as_str()).await?;
        if let Some(dir) = &self.credentials_dir {
            manager.set_credential_store(FileCredentials::for_server(dir, url.as_str()));
        }
        Ok(manager)
    }
}

/// `server` as an http(s) URL.
pub(crate) fn parse_server(server: &str) -> Result<url::Url, AgentError> {
    url::Url::parse(server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| AgentError::BadUrl(server.to_owned()))
}

/// Why a connection attempt did not give a session.
pub(crate) enum Refused {
    /// A 401 or 403 with this `WWW-Authenticate` challenge.
    Challenge(String),
    /// Anything else.
    Other(AgentError),
}

async fn connect_without_token(server: &str) -> Result<Session, Refused> {
    let transport = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(server),
    );
    start(server, transport).await
}

pub(crate) async fn connect_with_token(
    manager: AuthorizationManager,
    server: &str,
) -> Result<Session, Refused> {
    let client = AuthClient::new(reqwest::Client::new(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(server),
    );
    start(server, transport).await
}

/// Starts an MCP session in whichever protocol era the server speaks: the
/// stateless 2026-07-28 lifecycle (`server/discover`, then every request
/// carrying its own `MCP-Protocol-Version` header and `_meta`) when the
/// server answers it, else the `initialize` handshake of 2025-11-25.
async fn start<C>(server: &str, transport: StreamableHttpClientTransport<C>) -> Result<Session, Refused>
where
    C: rmcp::transport::streamable_http_client::StreamableHttpClient + Send + 'static,
{
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    };
    match ().serve_with_lifecycle(transport, lifecycle).await {
        Ok(session) => Ok(session),
        Err(error) => match error.auth_challenge() {
            Some(challenge) => Err(Refused::Challenge(challenge.to_owned())),
            None => Err(Refused::Other(explained(server, format!("{error:#}")).await)),
        },
    }
}

/// Why a session could not start, in plain words: rmcp's error names its
/// transport's internals, so one plain MCP request tells whether anything
/// answers at `server`, and whether as an MCP server.
async fn explained(server: &str, detail: String) -> AgentError {
    let url = server.to_owned();
    let probe = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map(|http| {
            http.post(server)
                .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
                .json(&serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}))
        });
    let Ok(probe) = probe else { return AgentError::Connect { url, reason: detail } };
    match probe.send().await {
        Err(error) if error.is_connect() || error.is_timeout() => AgentError::Unreachable { url, detail },
        Ok(answer) => {
            let mcp_type = answer.headers().get(reqwest::header::CONTENT_TYPE).is_some_and(|t| {
                let t = t.to_str().unwrap_or("");
                t.starts_with("application/json") || t.starts_with("text/event-stream")
            });
            let status = answer.status().as_u16();
            if matches!(status, 404 | 405) || !mcp_type {
                AgentError::NotMcp { url, status, detail }
            } else {
                AgentError::Connect { url, reason: detail }
            }
        }
        Err(_) => AgentError::Connect { url, reason: detail },
    }
}

/// Where the person is sent: rmcp's authorization URL, refused unless it is
/// https or http on this machine (the endpoint comes from metadata a server
/// pointed to, and a browser opener launches whatever a URL names: `file:`,
/// `smb:`, an app's own scheme). It gets `prompt=consent` when it asks for
/// `offline_access`, names no prompt, and the issuer does not say it lacks
/// that prompt: OpenID Connect Core §11 lets an issuer grant offline access
/// only when the person is asked, and issuers built on node oidc-provider
/// (Logto among them) drop `offline_access`, so give no refresh token,
/// without it.
fn authorization_url(raw: &str, asked: &[String], prompts: Option<&[String]>) -> Result<String, AgentError> {
    let mut url = url::Url::parse(raw)
        .ok()
        .filter(is_secure_or_local)
        .ok_or_else(|| AgentError::InsecureEndpoint(printable(raw, 200)))?;
    let prompted = url.query_pairs().any(|(name, _)| name == "prompt");
    let consent_known = prompts.is_none_or(|prompts| prompts.iter().any(|p| p == "consent"));
    if asked.iter().any(|s| s == "offline_access") && !prompted && consent_known {
        url.query_pairs_mut().append_pair("prompt", "consent");
    }
    Ok(url.into())
}

/// Refuses an authorization server whose token or registration endpoint is
/// neither https nor on this machine: the code, the PKCE verifier, secrets
/// and tokens go there.
fn check_endpoints(metadata: &rmcp::transport::auth::AuthorizationMetadata) -> Result<(), AgentError> {
    let endpoints = std::iter::once(&metadata.token_endpoint).chain(metadata.registration_endpoint.as_ref());
    for endpoint in endpoints {
        if !url::Url::parse(endpoint).is_ok_and(|url| is_secure_or_local(&url)) {
            return Err(AgentError::InsecureEndpoint(printable(endpoint, 200)));
        }
    }
    Ok(())
}

/// `text` without control characters, at most `max` characters: for what a
/// server said, shown on a terminal.
pub(crate) fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Whether `url` is https, or http to this machine (a loopback address or
/// `localhost`): the only places tokens and people are sent.
pub(crate) fn is_secure_or_local(url: &url::Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

/// The `scope` of a `WWW-Authenticate` challenge, as a list.
fn challenge_scopes(challenge: &str, server: &url::Url) -> Vec<String> {
    let params = rmcp::transport::auth::WWWAuthenticateParams::parse(challenge, server);
    params.scope.map(|scope| scope.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// The error the authorization server sent the person back with, if any, with
/// control characters removed (it is shown on a terminal).
fn refused_in(callback: &str) -> Result<(), AgentError> {
    match query_param(callback, "error") {
        Some(error) => Err(AgentError::Refused {
            error: printable(&error, 500),
            description: query_param(callback, "error_description").map(|d| printable(&d, 500)),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_is_asked_with_the_persons_consent() {
        let url = "https://issuer.example/authorize?scope=whoami+offline_access&state=s";
        let offline = ["whoami".to_owned(), "offline_access".to_owned()];
        let consent = format!("{url}&prompt=consent");
        assert_eq!(authorization_url(url, &offline, None).unwrap(), consent);
        assert_eq!(
            authorization_url(url, &offline, Some(&["login".into(), "consent".into()])).unwrap(),
            consent
        );
        assert_eq!(authorization_url(url, &offline, Some(&["login".into()])).unwrap(), url);
        assert_eq!(authorization_url(url, &offline[..1], None).unwrap(), url);
        let prompted = "https://issuer.example/authorize?scope=offline_access&prompt=login";
        assert_eq!(authorization_url(prompted, &offline, None).unwrap(), prompted);
    }

    #[test]
    fn tokens_go_only_to_https_endpoints_or_this_machine() {
        let metadata = |token: &str, registration: Option<&str>| {
            serde_json::from_value::<rmcp::transport::auth::AuthorizationMetadata>(serde_json::json!({
                "authorization_endpoint": "https://id.example/authorize",
                "token_endpoint": token,
                "registration_endpoint": registration,
            }))
            .unwrap()
        };
        assert!(
            check_endpoints(&metadata("https://id.example/token", Some("https://id.example/reg"))).is_ok()
        );
        assert!(check_endpoints(&metadata("http://127.0.0.1:9/token", None)).is_ok());
        assert!(check_endpoints(&metadata("http://id.example/token", None)).is_err());
        assert!(
            check_endpoints(&metadata("https://id.example/token", Some("http://id.example/reg"))).is_err()
        );
    }

    #[test]
    fn the_person_is_sent_only_to_https_or_this_machine() {
        for ok in [
            "https://id.example/auth?a=1",
            "http://127.0.0.1:9/auth",
            "http://localhost:9/a",
            "http://[::1]:9/a",
        ] {
            assert!(authorization_url(ok, &[], None).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example/auth",
            "http://10.0.0.1/auth",
            "file:///Applications/Calculator.app",
            "smb://attacker.example/share",
            "vscode://extension/install",
            "javascript:alert(1)",
            "not a url",
        ] {
            assert!(
                matches!(authorization_url(bad, &[], None), Err(AgentError::InsecureEndpoint(_))),
                "{bad}"
            );
        }
    }
}
