//! `agentgate gateway` for the gateway's tests, and raw MCP over HTTP to talk
//! to it: POSTs, their JSON or SSE answers, the GET stream.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Idp, Process, interop_dir, node, spawn_until_with};

/// `agentgate gateway` on a free port in front of `upstream`.
pub struct Gateway {
    pub url: String,
    pub process: Process,
}

impl Gateway {
    /// In front of `upstream` (a URL, or "" when `args` name a command).
    pub fn start(issuer: &str, upstream: &str, args: &[&str]) -> Self {
        Self::launch(issuer, upstream, args, "warn", Stdio::inherit())
    }

    /// The same, logging at info level to the file `log`.
    pub fn start_logging_to(issuer: &str, upstream: &str, args: &[&str], log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        Self::launch(issuer, upstream, args, "info", Stdio::from(file))
    }

    fn launch(issuer: &str, upstream: &str, args: &[&str], level: &str, stderr: Stdio) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
        command.args(["gateway", "--issuer", issuer, "--listen", "127.0.0.1:0"]);
        if !upstream.is_empty() {
            command.args(["--upstream", upstream]);
        }
        command.args(args).env("AGENTGATE_LOG", level);
        let (process, url) =
            spawn_until_with(command, "agentgate gateway", "agentgate gateway: listening on ", stderr);
        Gateway { url, process }
    }
}

/// An access token of oidc-provider's for `user`, for `resource`.
pub fn user_token(idp: &Idp, resource: &str, user: &str) -> String {
    idp.access_token(&["--kind", "user", "--user", user, "--resource", resource, "--scope", "whoami"])
}

/// A stdio upstream program from interop/node_modules, as a shell command line.
pub fn node_program(script: &str) -> String {
    format!("{} {}", node().display(), interop_dir().join("node_modules").join(script).display())
}

/// interop/tools/stdio-asker.mjs: a stdio MCP server whose every move a test
/// controls (see the script), as a shell command line.
pub fn stdio_asker() -> String {
    format!("{} {}", node().display(), interop_dir().join("tools/stdio-asker.mjs").display())
}

/// A fresh directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentgate-gateway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A POST of JSON to an MCP endpoint, accepting JSON or SSE.
pub fn post(url: &str, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

/// A raw MCP POST: status, session header and body text.
pub async fn mcp(
    url: &str,
    token: &str,
    session: Option<&str>,
    message: Value,
) -> (u16, Option<String>, String) {
    let mut request = post(url, token).body(message.to_string()).timeout(Duration::from_secs(20));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let session = answer.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    (status, session, answer.text().await.unwrap())
}

/// An `initialize` request, id 1.
pub fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "test", "version": "0" } } })
}

/// A `tools/call` request of `name` with `arguments`.
pub fn tool_call(id: u64, name: &str, arguments: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name, "arguments": arguments } })
}

/// The JSON-RPC message in an answer's body, JSON or the first SSE event with data.
pub fn message_of(body: &str) -> Value {
    let text = body.lines().filter_map(|l| l.strip_prefix("data: ")).find(|d| !d.is_empty()).unwrap_or(body);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The text of a tool call's answer.
pub fn result_text(message: &Value) -> String {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {message}"))
        .to_owned()
}

/// An SSE answer read event by event, as it comes.
pub struct Events {
    pub response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// `message` POSTed in `session`; the answer must be an SSE stream.
    pub async fn post(url: &str, token: &str, session: &str, message: &Value) -> Self {
        let response = post(url, token).header("mcp-session-id", session).body(message.to_string()).send();
        Self::of(response.await.unwrap())
    }

    /// The GET stream of `session`.
    pub async fn get(url: &str, token: &str, session: &str) -> Self {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .send();
        Self::of(response.await.unwrap())
    }

    fn of(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "an SSE answer");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events { response, buffer: String::new() }
    }

    /// The next event's message, or `None` when the stream ends or nothing
    /// comes `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).collect();
                if data.is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(data.join("\n").trim()).unwrap());
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
