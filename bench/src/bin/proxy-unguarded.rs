//! The gateway's HTTP route minus everything that makes it a gateway: no
//! guard, no policy, no audit, only the forwarding (`HttpUpstream` behind axum,
//! as `agentgate` serves it). It exists only to measure the floor that
//! proxying itself costs — an HTTP server, an HTTP client and two loopback
//! connections — so that the bench can tell that apart from what the checks
//! add; it is never built into the `agentgate` binary.
//!
//! Usage: `proxy-unguarded LISTEN UPSTREAM_URL`.

use agentgate::serve;
use agentgate_gateway::HttpUpstream;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `agentgate` binary, so the comparison is fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: proxy-unguarded LISTEN UPSTREAM_URL");
    };
    let (listener, local) = serve::bind(listen.parse()?).await?;
    let app = axum::Router::new().route_service("/mcp", HttpUpstream::new("bare", upstream.parse()?));
    println!("proxy-unguarded: listening on http://{local}/mcp");
    // The same accept loop as `agentgate` (TCP_NODELAY on every connection).
    serve::run(listener, app, CancellationToken::new()).await
}
