//! Gateway routes: a public MCP path on this server and the upstream MCP
//! server behind it, as `agentgate gateway`, `dev --route` and the
//! configuration file's `[[route]]` describe them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentgate_gateway::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, HttpUpstream, Identity, Minter, StdioCommand, StdioOptions,
    StdioUpstream, UpstreamTokens,
};
use agentgate_guard::{AuthInfo, Guard};
use agentgate_issuer::Issuer;
use agentgate_issuer::store::{AnyStore, Translations};
use agentgate_issuer::tokens::OnBehalf;
use anyhow::{Context, bail, ensure};
use axum::routing::{MethodRouter, any_service};
use serde::Deserialize;
use tower::Layer;

/// The scope a route needs when its configuration names none.
pub const DEFAULT_SCOPE: &str = "mcp:tools";

/// Where a route's MCP server is.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A Streamable HTTP endpoint.
    Http(url::Url),
    /// A program on stdio, run by `sh -c`.
    Stdio {
        /// The command line.
        command: String,
        /// Its environment beside the gateway's (`{person}` in values).
        env: Vec<(String, String)>,
        /// Its working directory.
        cwd: Option<PathBuf>,
    },
}

impl Upstream {
    /// An `http(s)://` URL is a Streamable HTTP upstream; anything else is a
    /// command line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        ensure!(!text.is_empty(), "the upstream is empty: give its URL or the program to run");
        if text.starts_with("http://") || text.starts_with("https://") {
            let url =
                url::Url::parse(text).map_err(|e| anyhow::anyhow!("upstream {text:?} is not a URL: {e}"))?;
            return Ok(Upstream::Http(url));
        }
        Ok(Upstream::Stdio { command: text.to_owned(), env: Vec::new(), cwd: None })
    }
}

/// What a route tells its upstream about the caller (`identity` in the
/// configuration); see [`agentgate_gateway::identity`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Nothing.
    #[default]
    None,
    /// `X-Agentgate-*` headers, to an upstream on loopback only.
    Headers,
    /// A short-lived token minted by this server's issuer for the upstream alone.
    Token,
}

impl std::str::FromStr for IdentityMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "none" => Ok(IdentityMode::None),
            "headers" => Ok(IdentityMode::Headers),
            "token" => Ok(IdentityMode::Token),
            other => bail!("identity {other:?}: expected none, headers or token"),
        }
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its path on this server, such as `/memory`.
    pub path: String,
    /// Its name in logs and errors.
    pub name: String,
    /// The MCP server behind it.
    pub upstream: Upstream,
    /// How long the upstream may take to begin an answer.
    pub timeout: Duration,
    /// The largest request body passed on.
    pub max_body_bytes: usize,
    /// The most stdio processes at once.
    pub max_processes: usize,
    /// A stdio process no request reached for this long is ended.
    pub idle_timeout: Duration,
    /// One stdio process for everyone.
    pub shared: bool,
    /// What the upstream is told about the caller.
    pub identity: IdentityMode,
    /// The audience of the tokens minted for the upstream (`identity =
    /// "token"`) [default: the upstream's URL].
    pub audience: Option<String>,
    /// The scopes a token needs here, with the words the consent page shows
    /// [default: `mcp:tools`, "Use the tools of NAME"].
    pub scopes: BTreeMap<String, String>,
    /// The name and scope words in other languages.
    pub translations: Translations,
}

impl Route {
    /// A route at `path` with the default bounds; its name is the path's
    /// last segment.
    pub fn new(path: &str, upstream: Upstream) -> anyhow::Result<Self> {
        ensure!(
            path.starts_with('/') && path.len() > 1 && !path.contains(['?', '#']),
            "a route's path must be a path such as \"/memory\", not {path:?}"
        );
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("mcp").to_owned();
        let stdio = StdioOptions::default();
        Ok(Self {
            path: path.to_owned(),
            name,
            upstream,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_processes: stdio.max_processes,
            idle_timeout: stdio.idle_timeout,
            shared: false,
            identity: IdentityMode::None,
            audience: None,
            scopes: BTreeMap::new(),
            translations: Translations::default(),
        })
    }

    /// The scopes a token needs here and their words: the configured ones,
    /// else [`DEFAULT_SCOPE`].
    pub fn scopes(&self) -> BTreeMap<String, String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        BTreeMap::from([(DEFAULT_SCOPE.to_owned(), format!("Use the tools of {}", self.name))])
    }

    /// Checks what can be checked before anything starts: the scopes, and
    /// that the identity setting fits the upstream. `own_issuer` says whether
    /// this server's issuer is here to mint tokens.
    pub fn check(&self, own_issuer: bool) -> anyhow::Result<()> {
        for scope in self.scopes.keys() {
            ensure!(
                agentgate_guard::is_valid_scope(scope),
                "route {}: {scope:?} is not a valid scope",
                self.path
            );
        }
        match (&self.upstream, self.identity) {
            (_, IdentityMode::None) => {}
            (Upstream::Stdio { .. }, _) => bail!(
                "route {}: a program on stdio has no headers to carry the caller's identity; \
                 drop `identity` and use {{person}} in its env or cwd (it runs once per person)",
                self.path
            ),
            (Upstream::Http(url), IdentityMode::Headers) => ensure!(
                agentgate_guard::is_loopback(url),
                "route {}: identity = \"headers\" sends X-Agentgate-Sub to whoever is at {url}, and anyone \
                 who reaches that address could send them too: only an upstream on loopback may trust them; \
                 use identity = \"token\" for another host",
                self.path
            ),
            (Upstream::Http(_), IdentityMode::Token) => ensure!(
                own_issuer,
                "route {}: identity = \"token\" needs agentgate's own issuer to sign the upstream's token \
                 (agentgate serve or dev); in front of an outside issuer use --identity headers",
                self.path
            ),
        }
        if self.audience.is_some() {
            ensure!(
                self.identity == IdentityMode::Token,
                "route {}: `audience` is for identity = \"token\"; drop it or set the identity",
                self.path
            );
        }
        if let Some(audience) = &self.audience {
            url::Url::parse(audience)
                .with_context(|| format!("route {}: audience {audience:?} is not a URL", self.path))?;
        }
        Ok(())
    }

    /// The audience of the tokens minted for the upstream.
    pub fn token_audience(&self) -> Option<String> {
        match (&self.upstream, self.identity) {
            (Upstream::Http(url), IdentityMode::Token) => {
                Some(self.audience.clone().unwrap_or_else(|| url.to_string()))
            }
            _ => None,
        }
    }

    /// `PATH=UPSTREAM`, as `agentgate dev --route` takes it.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let Some((path, upstream)) = spec.split_once('=') else {
            bail!(
                "--route {spec:?}: expected PATH=UPSTREAM, e.g. '/memory=npx -y @modelcontextprotocol/server-memory'"
            );
        };
        Self::new(path.trim(), Upstream::parse(upstream)?)
    }

    /// What the route forwards to, for logs and the welcome text.
    pub fn describe(&self) -> String {
        match &self.upstream {
            Upstream::Http(url) => url.to_string(),
            Upstream::Stdio { command, .. } => format!("stdio: {command}"),
        }
    }

    /// The route and its metadata (at its own path only, beside other
    /// resources on the same host), behind `guard`.
    pub fn router(&self, guard: &Guard, minter: Option<IssuerMinter>) -> anyhow::Result<axum::Router> {
        let service = self.service(guard, minter)?;
        Ok(axum::Router::new().route(&self.path, service).merge(guard.path_metadata_router()))
    }

    /// Refuses a path the issuer's own pages and endpoints use, or `taken`
    /// (another MCP endpoint on the same server).
    pub fn check_beside_issuer(&self, taken: &[&str]) -> anyhow::Result<()> {
        let first = self.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        ensure!(
            !agentgate_issuer::http::ROOTS.contains(&first)
                && !taken.iter().any(|t| t.trim_start_matches('/') == first),
            "route {}: the issuer or another MCP endpoint already serves /{first}; choose another path",
            self.path
        );
        Ok(())
    }

    /// The route's service, behind `guard`; `minter` signs the upstream's
    /// tokens when the route's identity is a token.
    pub fn service(&self, guard: &Guard, minter: Option<IssuerMinter>) -> anyhow::Result<MethodRouter> {
        self.check(minter.is_some())?;
        Ok(match &self.upstream {
            Upstream::Http(url) => {
                let identity = match (self.identity, self.token_audience(), minter) {
                    (IdentityMode::Headers, _, _) => Identity::Headers,
                    (IdentityMode::Token, Some(audience), Some(minter)) => {
                        Identity::Token(Arc::new(UpstreamTokens::new(minter, audience)))
                    }
                    _ => Identity::None,
                };
                let upstream =
                    HttpUpstream::with_limits(&self.name, url.clone(), self.timeout, self.max_body_bytes)
                        .with_identity(identity);
                any_service(guard.layer().layer(upstream))
            }
            Upstream::Stdio { command, env, cwd } => {
                let command = StdioCommand { command: command.clone(), cwd: cwd.clone(), env: env.clone() };
                let options = StdioOptions {
                    max_processes: self.max_processes,
                    idle_timeout: self.idle_timeout,
                    shared: self.shared,
                    timeout: self.timeout,
                    max_body_bytes: self.max_body_bytes,
                };
                any_service(guard.layer().layer(StdioUpstream::new(&self.name, command, options)))
            }
        })
    }

    /// The route beside this server's own issuer: its resource declared at
    /// `origin` + path (the consent page names it and its scopes), its guard
    /// against `issuer` with revocations told in memory, and tokens for the
    /// upstream minted by that issuer when the route says so.
    pub async fn mount(
        &self,
        issuer: &Arc<Issuer<AnyStore>>,
        store: &AnyStore,
        origin: &str,
    ) -> anyhow::Result<axum::Router> {
        let url = format!("{origin}{}", self.path);
        let scopes = self.scopes();
        let words: Vec<(&str, &str)> = scopes.iter().map(|(s, w)| (s.as_str(), w.as_str())).collect();
        let now = agentgate_issuer::now();
        agentgate_issuer::scopes::declare_resource(store, &url, &self.name, &words, &self.translations, now)
            .await
            .with_context(|| format!("the resource of route {}", self.path))?;
        let guard = Guard::builder(&issuer.settings().issuer, &url)
            .scopes(scopes.keys())
            .scopes_supported(scopes.keys())
            .resource_name(&self.name)
            .revocation_check(issuer.revocations())
            .build()
            .with_context(|| format!("configuring the guard of route {}", self.path))?;
        self.router(&guard, Some(IssuerMinter(issuer.clone())))
    }
}

/// This server's issuer, signing tokens for a route's upstream.
#[derive(Clone)]
pub struct IssuerMinter(pub Arc<Issuer<AnyStore>>);

impl Minter for IssuerMinter {
    fn mint(&self, caller: &AuthInfo, audience: &str, expires_at: i64) -> Result<String, String> {
        // The guard accepts tokens without `client_id` from outside issuers;
        // this issuer's always carry one.
        let client_id = caller.client_id.as_deref().ok_or("the agent's token names no client")?;
        Ok(self.0.mint_on_behalf(&OnBehalf {
            subject: &caller.subject,
            client_id,
            scopes: &caller.scopes,
            jti: caller.claims.get("jti").and_then(|v| v.as_str()),
            claims: &caller.claims,
            audience,
            expires_at,
        }))
    }
}

/// A positive, finite number of seconds from a flag or a setting.
pub fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    ensure!(value.is_finite() && value > 0.0, "{what} must be a positive number of seconds, not {value}");
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_a_path_and_an_url_or_a_command() {
        let http = Route::parse("/notes=http://127.0.0.1:8000/mcp").unwrap();
        assert!(matches!(http.upstream, Upstream::Http(_)) && http.name == "notes");
        let stdio = Route::parse("/tools/memory = npx -y @modelcontextprotocol/server-memory").unwrap();
        assert_eq!(stdio.path, "/tools/memory");
        assert_eq!(stdio.name, "memory");
        assert!(matches!(&stdio.upstream, Upstream::Stdio { command, .. } if command.starts_with("npx -y")));
        for (bad, reason) in [
            ("/memory", "expected PATH=UPSTREAM"),
            ("memory=npx x", "must be a path"),
            ("/=npx x", "must be a path"),
            ("/m=", "the upstream is empty"),
            ("/m=http://[::1", "is not a URL"),
        ] {
            let error = Route::parse(bad).unwrap_err().to_string();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
        for taken in ["/token=x", "/.well-known/x=x", "/mcp/more=x", "/api=x"] {
            let error = Route::parse(taken).unwrap().check_beside_issuer(&["/mcp"]).unwrap_err().to_string();
            assert!(error.contains("choose another path"), "{taken}: {error}");
        }
        Route::parse("/memory=x").unwrap().check_beside_issuer(&["/mcp"]).unwrap();
    }
}
