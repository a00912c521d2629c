//! `agentgate gateway`: the guard in front of an MCP server that knows
//! nothing of OAuth, against an outside issuer.

use std::net::SocketAddr;

use agentgate::observe::{HEALTH_PATHS, ObserveArgs, Readiness, health_router};
use agentgate::routes::{IdentityMode, Mounting, Route, Upstream, seconds};
use agentgate::serve;
use agentgate_gateway::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, StdioOptions};
use anyhow::{Context, bail, ensure};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::guard_args::GuardArgs;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    guard: GuardArgs,

    /// The MCP server to put behind the gateway, by its Streamable HTTP URL
    /// (e.g. http://127.0.0.1:9000/mcp, or http+unix://%2Frun%2Fnotes.sock/mcp
    /// for one on a Unix socket).
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
    #[arg(long, env = "AGENTGATE_MAX_PROCESSES", default_value_t = StdioOptions::default().max_processes)]
    max_processes: usize,

    /// A stdio process no request reached for this many seconds is ended.
    #[arg(long, env = "AGENTGATE_IDLE_TIMEOUT", default_value_t = StdioOptions::default().idle_timeout.as_secs_f64())]
    idle_timeout: f64,

    /// One stdio process for everyone, for servers that keep no state.
    #[arg(long, env = "AGENTGATE_SHARED_PROCESS")]
    shared_process: bool,

    /// The path agents use on this gateway [default: the path of --resource, else /mcp]
    #[arg(long, env = "AGENTGATE_PATH")]
    path: Option<String>,

    /// The route's name, in logs and errors [default: the path's last segment]
    #[arg(long, env = "AGENTGATE_ROUTE_NAME")]
    name: Option<String>,

    /// How long the upstream may stay silent, in seconds: before its answer
    /// begins, and between the parts of an answer to a POST.
    #[arg(long, env = "AGENTGATE_UPSTREAM_TIMEOUT", default_value_t = DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,

    /// The largest request body passed on, in bytes.
    #[arg(long, env = "AGENTGATE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,

    /// What the upstream is told about the caller: none, or headers
    /// (X-Agentgate-Sub, -Client-Id, -Scope, -Issuer, -Username; upstreams on
    /// loopback or a Unix socket only). A token minted for the upstream needs agentgate's own
    /// issuer: see `identity` in agentgate.toml.
    #[arg(long, env = "AGENTGATE_IDENTITY", default_value = "none")]
    identity: IdentityMode,

    #[command(flatten)]
    observe: ObserveArgs,

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
        let path = self.path()?;
        ensure!(
            !HEALTH_PATHS.contains(&path.as_str()),
            "--path {path}: the gateway answers health checks there; choose another path"
        );
        let resource = self.guard.resource.clone().unwrap_or_else(|| format!("http://{local}{path}"));
        let upstream = match (&self.upstream, &self.upstream_command) {
            (Some(url), _) => {
                let upstream = Upstream::parse(url.as_str()).context("--upstream")?;
                ensure!(
                    matches!(upstream, Upstream::Http(_)),
                    "--upstream must be an http, https or http+unix URL (http+unix://%2Frun%2Fnotes.sock/mcp), \
                     not {url}"
                );
                upstream
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
        let mut route = Route::new(&path, upstream)?;
        if let Some(name) = &self.name {
            route.name = name.clone();
        }
        let guard = self.guard.guard(&resource, &format!("{} (agentgate gateway)", route.name))?;
        route.timeout = timeout;
        route.max_body_bytes = self.max_body_bytes;
        route.max_processes = self.max_processes;
        route.idle_timeout = idle_timeout;
        route.shared = self.shared_process;
        route.identity = self.identity;
        let upstream = route.describe();
        let shutdown = CancellationToken::new();
        let observer = self.observe.start(Readiness::default(), &shutdown).await?;
        let service = route.service(&guard, &Mounting { issuer: None, observer })?;
        let app = axum::Router::new()
            .route(&path, service)
            .merge(guard.metadata_router())
            .merge(health_router(Readiness::default()));
        tracing::info!(
            route = %route.name, upstream = %upstream, resource = %resource,
            metadata = %guard.metadata_url(), "gateway ready"
        );
        println!("agentgate gateway: listening on http://{local}{path}");
        serve::run(listener, app, shutdown).await.context("serving the gateway")
    }
}

impl GatewayArgs {
    /// Where agents connect: --path, else the path of --resource (the URL
    /// agents are given), else `/mcp`. The two must agree: the metadata is
    /// published for the resource's path.
    fn path(&self) -> anyhow::Result<String> {
        let from_resource = match &self.guard.resource {
            Some(resource) => {
                let url = url::Url::parse(resource)
                    .with_context(|| format!("--resource {resource:?} is not a URL"))?;
                Some(url.path().to_owned()).filter(|p| p != "/")
            }
            None => None,
        };
        match (&self.path, from_resource) {
            (Some(path), Some(theirs)) if *path != theirs => bail!(
                "--path {path} and the path of --resource ({theirs}) differ: agents connect at the resource's \
                 URL; drop --path, or make them the same"
            ),
            (Some(path), _) => Ok(path.clone()),
            (None, Some(theirs)) => Ok(theirs),
            (None, None) => Ok("/mcp".to_owned()),
        }
    }
}
