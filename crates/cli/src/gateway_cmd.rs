//! `agentgate gateway`: the guard in front of an MCP server that knows
//! nothing of OAuth, against an outside issuer.

use std::net::SocketAddr;

use agentgate::serve;
use std::time::Duration;

use agentgate::routes::{Route, Upstream};
use agentgate_gateway::DEFAULT_MAX_BODY_BYTES;
use anyhow::{Context, bail, ensure};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::guard_args::GuardArgs;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    guard: GuardArgs,

    /// The MCP server to put behind the gateway, by its Streamable HTTP URL
    /// (e.g. http://127.0.0.1:9000/mcp).
    #[arg(
        long,
        env = "AGENTGATE_UPSTREAM",
        required_unless_present = "upstream_command",
        conflicts_with = "upstream_command"
    )]
    upstream: Option<url::Url>,

    /// Or: the MCP server as a program on stdio, run by `sh -c`
    /// (e.g. 'npx -y @modelcontextprotocol/server-memory'); one process per person.
    #[arg(long, env = "AGENTGATE_UPSTREAM_COMMAND")]
    upstream_command: Option<String>,

    /// An environment variable for the stdio program, NAME=VALUE; `{person}` in
    /// VALUE becomes the person's subject, file-name safe. Repeat per variable.
    #[arg(long = "upstream-env", value_name = "NAME=VALUE")]
    upstream_env: Vec<String>,

    /// The stdio program's working directory (`{person}` as in --upstream-env).
    #[arg(long, env = "AGENTGATE_UPSTREAM_CWD")]
    upstream_cwd: Option<std::path::PathBuf>,

    /// The most stdio processes at once (one per person).
    #[arg(long, env = "AGENTGATE_MAX_PROCESSES", default_value_t = 32)]
    max_processes: usize,

    /// A stdio process no request reached for this many seconds is ended.
    #[arg(long, env = "AGENTGATE_IDLE_TIMEOUT", default_value_t = 600.0)]
    idle_timeout: f64,

    /// One stdio process for everyone, for servers that keep no state.
    #[arg(long, env = "AGENTGATE_SHARED_PROCESS")]
    shared_process: bool,

    /// The path agents use on this gateway.
    #[arg(long, env = "AGENTGATE_PATH", default_value = "/mcp")]
    path: String,

    /// The route's name, in logs and errors [default: the path without its slash]
    #[arg(long, env = "AGENTGATE_ROUTE_NAME")]
    name: Option<String>,

    /// How long the upstream may take to begin an answer, in seconds.
    #[arg(long, env = "AGENTGATE_UPSTREAM_TIMEOUT", default_value_t = 30.0)]
    timeout: f64,

    /// The largest request body passed on, in bytes.
    #[arg(long, env = "AGENTGATE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:3002")]
    listen: SocketAddr,
}

impl GatewayArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let timeout = seconds("--timeout", self.timeout)?;
        let idle_timeout = seconds("--idle-timeout", self.idle_timeout)?;
        ensure!(self.max_processes > 0, "--max-processes must be at least 1");
        let (listener, local) = serve::bind(self.listen).await?;
        let resource = self.guard.resource.clone().unwrap_or_else(|| format!("http://{local}{}", self.path));
        let name = self.name.clone().unwrap_or_else(|| self.path.trim_start_matches('/').to_owned());
        let guard = self.guard.guard(&resource, &format!("{name} (agentgate gateway)"))?;
        let upstream = match (&self.upstream, &self.upstream_command) {
            (Some(url), _) => {
                ensure!(
                    matches!(url.scheme(), "http" | "https"),
                    "--upstream must be an http or https URL, not {url}"
                );
                Upstream::Http(url.clone())
            }
            (None, Some(command)) => {
                ensure!(!command.trim().is_empty(), "--upstream-command is empty: name the program to run");
                let mut env = Vec::new();
                for pair in &self.upstream_env {
                    let (key, value) = pair
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .with_context(|| format!("--upstream-env {pair:?}: expected NAME=VALUE"))?;
                    env.push((key.to_owned(), value.to_owned()));
                }
                Upstream::Stdio { command: command.clone(), env, cwd: self.upstream_cwd.clone() }
            }
            (None, None) => bail!("name the MCP server: --upstream URL or --upstream-command 'PROGRAM ARGS'"),
        };
        let mut route = Route::new(&self.path, upstream)?;
        route.name = name.clone();
        route.timeout = timeout;
        route.max_body_bytes = self.max_body_bytes;
        route.max_processes = self.max_processes;
        route.idle_timeout = idle_timeout;
        route.shared = self.shared_process;
        let upstream = route.describe();
        let service = route.service(&guard);
        let app = axum::Router::new().route(&self.path, service).merge(guard.metadata_router());
        tracing::info!(
            route = %name, upstream = %upstream, resource = %resource,
            metadata = %guard.metadata_url(), "gateway ready"
        );
        println!("agentgate gateway: listening on http://{local}{}", self.path);
        serve::run(listener, app, CancellationToken::new()).await.context("serving the gateway")
    }
}

/// A positive, finite number of seconds from a flag.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    ensure!(value.is_finite() && value > 0.0, "{flag} must be a positive number of seconds, not {value}");
    Ok(Duration::from_secs_f64(value))
}
