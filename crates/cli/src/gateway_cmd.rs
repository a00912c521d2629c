//! `agentgate gateway`: the guard in front of an MCP server that knows
//! nothing of OAuth, against an outside issuer.

use std::net::SocketAddr;

use agentgate::serve;
use agentgate_gateway::{DEFAULT_MAX_BODY_BYTES, HttpUpstream};
use anyhow::{Context, ensure};
use clap::Args;
use tokio_util::sync::CancellationToken;
use tower::Layer;

use crate::guard_args::GuardArgs;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    guard: GuardArgs,

    /// The MCP server to put behind the gateway, by its Streamable HTTP URL
    /// (e.g. http://127.0.0.1:9000/mcp).
    #[arg(long, env = "AGENTGATE_UPSTREAM")]
    upstream: url::Url,

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
        ensure!(
            self.path.starts_with('/') && !self.path.contains(['?', '#']),
            "--path must be a path such as \"/mcp\", not {:?}",
            self.path
        );
        ensure!(
            matches!(self.upstream.scheme(), "http" | "https"),
            "--upstream must be an http or https URL, not {}",
            self.upstream
        );
        ensure!(
            self.timeout.is_finite() && self.timeout > 0.0,
            "--timeout must be a positive number of seconds, not {}",
            self.timeout
        );
        let (listener, local) = serve::bind(self.listen).await?;
        let resource = self.guard.resource.clone().unwrap_or_else(|| format!("http://{local}{}", self.path));
        let name = self.name.clone().unwrap_or_else(|| self.path.trim_start_matches('/').to_owned());
        let guard = self.guard.guard(&resource, &format!("{name} (agentgate gateway)"))?;
        let upstream = HttpUpstream::with_limits(
            &name,
            self.upstream.clone(),
            std::time::Duration::from_secs_f64(self.timeout),
            self.max_body_bytes,
        );
        let app = axum::Router::new()
            .route_service(&self.path, guard.layer().layer(upstream))
            .merge(guard.metadata_router());
        tracing::info!(
            route = %name, upstream = %self.upstream, resource = %resource,
            metadata = %guard.metadata_url(), "gateway ready"
        );
        println!("agentgate gateway: listening on http://{local}{}", self.path);
        serve::run(listener, app, CancellationToken::new()).await.context("serving the gateway")
    }
}
