//! Gateway routes: a public MCP path on this server and the upstream MCP
//! server behind it, as `agentgate gateway`, `dev --route` and the
//! configuration file describe them.

use std::path::PathBuf;
use std::time::Duration;

use agentgate_gateway::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, HttpUpstream, StdioCommand, StdioOptions, StdioUpstream,
};
use agentgate_guard::Guard;
use anyhow::{bail, ensure};
use axum::routing::{MethodRouter, any_service};
use tower::Layer;

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
        })
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
    pub fn router(&self, guard: &Guard) -> axum::Router {
        axum::Router::new().route(&self.path, self.service(guard)).merge(guard.path_metadata_router())
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

    /// The route's service, behind `guard`.
    pub fn service(&self, guard: &Guard) -> MethodRouter {
        match &self.upstream {
            Upstream::Http(url) => {
                let upstream =
                    HttpUpstream::with_limits(&self.name, url.clone(), self.timeout, self.max_body_bytes);
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
        }
    }
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
