//! A tiny upstream MCP endpoint for the gateway's tests: it records the
//! headers of every POST and answers with a JSON-RPC result that echoes the
//! request's params, a cookie and a header of its own.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The headers the upstream got, in order.
pub type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// The upstream on `port` (0: a free one): its `/mcp` URL and what it saw.
pub async fn recording_upstream(port: u16) -> (String, Seen) {
    let (app, seen) = recorder();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// The same on the Unix socket `socket`: its `http+unix://` URL and what it saw.
pub async fn recording_upstream_on_socket(socket: &std::path::Path) -> (String, Seen) {
    let (app, seen) = recorder();
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let host = socket.to_str().unwrap().replace('/', "%2F");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http+unix://{host}/mcp"), seen)
}

fn recorder() -> (axum::Router, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            log.lock().unwrap().push(headers);
            let request: Value = serde_json::from_str(&body).unwrap();
            async move {
                (
                    [("set-cookie", "agentgate_session=planted; Path=/"), ("x-upstream", "yes")],
                    axum::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": { "echo": request["params"] } })),
                )
            }
        }),
    );
    (app, seen)
}
