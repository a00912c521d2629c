//! Serving an axum app on a real socket: `TCP_NODELAY`, graceful shutdown.

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr` (port 0 picks a free port) and returns the listener and the
/// address actually bound.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener =
        TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `app` until `shutdown` is cancelled (or SIGINT/SIGTERM arrives).
///
/// Accepted sockets get `TCP_NODELAY`: MCP answers go out as several small
/// writes (SSE framing), and Nagle's algorithm meeting delayed ACKs would add
/// ~40 ms to every call.
pub async fn run(listener: TcpListener, app: Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
            _ = shutdown.cancelled() => return,
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = ctrl_c => {},
        _ = shutdown.cancelled() => return,
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
