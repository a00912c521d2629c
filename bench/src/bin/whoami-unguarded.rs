//! The `whoami` server exactly as `agentgate whoami` runs it, minus the guard: a
//! fixed identity (alice's claims) is put into every request instead of a verified
//! one. It exists only to measure what the guard itself costs; it is never built
//! into the `agentgate` binary.
//!
//! Usage: `whoami-unguarded [LISTEN]` (default 127.0.0.1:3007); `unix:PATH`
//! listens on a Unix socket instead.

use std::time::{Duration, SystemTime};

use agentgate::{serve, whoami};
use agentgate_guard::AuthInfo;
use axum::{Extension, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `agentgate` binary, so the comparison is fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3007".into());
    if let Some(path) = listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        println!("whoami-unguarded: listening on unix:{path}");
        axum::serve(listener, app("localhost", CancellationToken::new())).await?;
        return Ok(());
    }
    let (listener, local) = serve::bind(listen.parse()?).await?;
    let shutdown = CancellationToken::new();
    let app = app(&local.to_string(), shutdown.clone());
    println!("whoami-unguarded: listening on http://{local}/mcp");
    serve::run(listener, app, shutdown).await
}

/// The whoami service with alice put in every request, for the host `local`.
fn app(local: &str, shutdown: CancellationToken) -> Router {
    let claims = json!({"sub": "alice", "username": "alice", "name": "Alice Liddell", "email": "alice@example.com",
                        "scope": "whoami", "client_id": "mcp-inspector", "aud": format!("http://{local}")});
    let alice = AuthInfo {
        issuer: "http://127.0.0.1:4000".into(),
        subject: "alice".into(),
        client_id: Some("mcp-inspector".into()),
        audience: vec![format!("http://{local}")],
        scopes: vec!["whoami".into()],
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        claims: claims.as_object().unwrap().clone().into(),
    };
    let options = whoami::McpOptions {
        stateless: false,
        json_response: false,
        allowed_hosts: vec!["127.0.0.1".into(), "localhost".into()],
        shutdown,
    };
    Router::new().route_service("/mcp", whoami::service(options)).layer(Extension(alice))
}
