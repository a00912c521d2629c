//! Load driver for OAuth issuers (agentgate and node `oidc-provider`), driven like
//! browsers: a cookie jar per virtual user, no automatic redirects, every answer
//! checked. Used by `bench/issuer.sh`; prints one JSON line per run.
//!
//! ```text
//! issuer-load exchange     --issuer URL --client-id ID [...]   codes minted untimed, in batches; /token timed
//! issuer-load flow         --issuer URL --client-id ID [...]   fresh browser each: authorize, sign in, consent, code, token
//! issuer-load session-flow --issuer URL --client-id ID [...]   signed in and consented once per worker: authorize, code, token
//! issuer-load sessions     --issuer URL --client-id ID --mcp URL --pid PID --concurrency N   RSS per idle session
//! issuer-load mcp          --issuer URL --client-id ID --mcp URL [--tool T --arguments JSON]   one token, a session per worker: tools/call (whoami)
//! issuer-load ready --url URL --marker TEXT [--fresh-dir DIR] -- COMMAND...   time from spawn to ready
//! ```
//!
//! Pages are handled generically: a redirect is followed; a page's first POST form
//! is sent back with its hidden fields, plus `login` and `password` when it has a
//! password field (agentgate's sign-in page, oidc-provider's devInteractions login)
//! and `decision=allow` when it has a decision button (agentgate's consent page;
//! oidc-provider's consent form needs only its hidden `prompt`), until the browser
//! is sent to the redirect URI. PKCE uses the RFC 7636 Appendix B pair for every
//! request (the server's work is the same for any verifier).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use clap::{Args, Parser, Subcommand};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const STATE: &str = "bench-state";
/// Pages and redirects followed in one authorization before giving up.
const MAX_STEPS: usize = 16;

#[derive(Parser)]
#[command(about = "Load driver for OAuth issuers (see bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Token exchanges: codes minted untimed in batches, then redeemed timed.
    Exchange(LoadArgs),
    /// Full flows, each in a fresh browser (sign-in and consent every time).
    Flow(LoadArgs),
    /// Flows with a signed-in, consented browser per worker: authorize, code, token.
    SessionFlow(LoadArgs),
    /// MCP calls: one token (got by a signed-in browser), an MCP session per
    /// worker, `tools/call whoami` back to back on `--mcp`.
    Mcp(LoadArgs),
    /// Memory per idle MCP session: `--concurrency` sessions opened on `--mcp`
    /// with one token and left open; the RSS of `--pid` before and after.
    Sessions(LoadArgs),
    /// Time from spawn to the readiness line and to the first 200 from `--url`.
    Ready(ReadyArgs),
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// The issuer URL (discovery is read from it).
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    client_id: String,
    #[arg(long, default_value = "http://127.0.0.1:7777/callback")]
    redirect_uri: String,
    /// The resource indicator (RFC 8707) asked for, at /authorize and /token.
    #[arg(long)]
    resource: Option<String>,
    #[arg(long, default_value = "openid profile mcp:tools")]
    scope: String,
    #[arg(long, default_value = "alice")]
    login: String,
    #[arg(long, env = "BENCH_PASSWORD", default_value = "wonderland")]
    password: String,
    /// Requests (exchange) or flows in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds (for exchange: seconds of redeeming, summed over batches).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Unmeasured seconds first (exchange: one unmeasured batch).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// exchange: codes minted per batch (oidc-provider's in-memory store is an LRU of
    /// 1000 entries and codes live 60 s, so a batch must be redeemed soon).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// The server's PID: its CPU time over the measured time, and its peak RSS
    /// (VmHWM, reset through /proc/PID/clear_refs before the run when allowed).
    /// Repeat for several instances: their CPU times are added, the memory is
    /// the first one's.
    #[arg(long)]
    pid: Vec<u32>,
    /// exchange: token endpoints to spread the exchanges over, in turn, as a
    /// round-robin load balancer would (default: the one discovery names).
    /// Codes are still minted through the issuer URL.
    #[arg(long = "token-endpoint")]
    token_endpoints: Vec<url::Url>,
    /// mcp: the guarded MCP server's URL (the token is asked for it, as `resource`).
    #[arg(long)]
    mcp: Option<String>,
    /// mcp: the tool called; `whoami` answers must carry a structured result,
    /// any other tool's a result that is not an error.
    #[arg(long, default_value = "whoami")]
    tool: String,
    /// mcp: the tool's arguments, as JSON.
    #[arg(long, default_value = "{}")]
    arguments: String,
    /// A name for the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
struct ReadyArgs {
    /// Polled until it answers 200.
    #[arg(long)]
    url: String,
    /// The start of the stdout line that says the server is ready.
    #[arg(long)]
    marker: String,
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Removed before every start (a fresh data directory each time).
    #[arg(long)]
    fresh_dir: Option<std::path::PathBuf>,
    #[arg(long, default_value = "")]
    label: String,
    /// The server command (e.g. taskset -c 0 agentgate dev ...).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let line = match Cli::parse().mode {
        Mode::Exchange(args) => Load::new(args, "exchange").await?.exchange().await?,
        Mode::Flow(args) => Load::new(args, "flow").await?.timed(Kind::Flow).await?,
        Mode::SessionFlow(args) => Load::new(args, "session-flow").await?.timed(Kind::Session).await?,
        Mode::Mcp(args) => Load::new(args, "mcp").await?.mcp_calls().await?,
        Mode::Sessions(args) => Load::new(args, "sessions").await?.idle_sessions().await?,
        Mode::Ready(args) => ready(args).await?,
    };
    println!("{line}");
    Ok(())
}

// ------------------------------------------------------------------ MCP

/// One MCP session (Streamable HTTP, 2025-06-18) with a bearer token.
struct McpSession {
    url: String,
    token: String,
    session: String,
}

impl McpSession {
    const VERSION: &str = "2025-06-18";

    /// `initialize`, then `notifications/initialized`.
    async fn open(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Self> {
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": Self::VERSION, "capabilities": {},
            "clientInfo": {"name": "issuer-load", "version": "1"}}});
        let response = Self::post(http, url, token, None, &initialize).await?;
        let status = response.status();
        let session =
            response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await?;
        ensure!(status == StatusCode::OK, "initialize: {status}: {}", snippet(&body));
        let mcp = Self {
            url: url.to_owned(),
            token: token.to_owned(),
            session: session.context("initialize: no Mcp-Session-Id")?,
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = Self::post(http, url, token, Some(&mcp.session), &initialized).await?;
        ensure!(response.status().is_success(), "initialized: {}", response.status());
        Ok(mcp)
    }

    /// `tools/call` of `call` (a whole JSON-RPC request); the answer must be
    /// a result, structured for `whoami`, and not an error.
    async fn call_tool(&self, http: &reqwest::Client, call: &Value) -> anyhow::Result<()> {
        let response = Self::post(http, &self.url, &self.token, Some(&self.session), call).await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(status == StatusCode::OK, "tools/call: {status}: {}", snippet(&body));
        ensure!(
            body.contains("\"result\"") && !body.contains("\"isError\":true"),
            "tools/call: no result: {}",
            snippet(&body)
        );
        ensure!(
            call["params"]["name"] != "whoami" || body.contains("\"structuredContent\""),
            "tools/call: no structured result: {}",
            snippet(&body)
        );
        Ok(())
    }

    async fn post(
        http: &reqwest::Client,
        url: &str,
        token: &str,
        session: Option<&str>,
        message: &Value,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = http
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", Self::VERSION)
            .json(message);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        Ok(request.send().await?)
    }
}

// ------------------------------------------------------------------ the browser

struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// A browser: its own cookie jar (name and path, path-matched), no automatic redirects.
struct Browser {
    http: reqwest::Client,
    jar: Vec<Cookie>,
}

/// One answer.
struct Page {
    url: url::Url,
    status: StatusCode,
    location: Option<url::Url>,
    body: String,
}

impl Browser {
    fn new(http: reqwest::Client) -> Self {
        Self { http, jar: Vec::new() }
    }

    async fn send(&mut self, url: url::Url, form: Option<Vec<(String, String)>>) -> anyhow::Result<Page> {
        let path = url.path();
        let mut cookies: Vec<&Cookie> = self.jar.iter().filter(|c| path_matches(path, &c.path)).collect();
        cookies.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let header = cookies.iter().map(|c| format!("{}={}", c.name, c.value)).collect::<Vec<_>>().join("; ");
        let mut request = match &form {
            Some(fields) => self.http.post(url.clone()).form(fields),
            None => self.http.get(url.clone()),
        };
        if !header.is_empty() {
            request = request.header(COOKIE, header);
        }
        let response = request.send().await.with_context(|| format!("{url}"))?;
        for set in response.headers().get_all(SET_COOKIE) {
            self.store(set.to_str().unwrap_or_default(), &url);
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| url.join(l))
            .transpose()
            .context("Location")?;
        let body = response.text().await?;
        Ok(Page { url, status, location, body })
    }

    fn store(&mut self, line: &str, url: &url::Url) {
        let mut parts = line.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else { return };
        let (name, value) = (name.trim(), value.trim());
        let mut path = None;
        let mut delete = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.trim().starts_with('/') => path = Some(val.trim().to_owned()),
                "max-age" => delete |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                "expires" => delete |= val.contains("1970"),
                _ => {}
            }
        }
        let path = path.unwrap_or_else(|| {
            let p = url.path();
            match p.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => p[..i].to_owned(),
            }
        });
        self.jar.retain(|c| !(c.name == name && c.path == path));
        if !delete {
            self.jar.push(Cookie { name: name.to_owned(), value: value.to_owned(), path });
        }
    }
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// The first POST form of a page: its action and the fields to send back.
struct Form {
    action: url::Url,
    fields: Vec<(String, String)>,
    password: bool,
    decision: bool,
}

fn parse_form(page: &Page) -> anyhow::Result<Form> {
    let html = &page.body;
    let mut from = 0;
    while let Some(start) = html[from..].find("<form").map(|i| i + from) {
        let open_end = start + html[start..].find('>').context("unterminated <form")?;
        let end = html[start..].find("</form>").map_or(html.len(), |i| i + start);
        from = end;
        let open = attributes(&html[start..open_end]);
        if !open.get("method").is_some_and(|m| m.eq_ignore_ascii_case("post")) {
            continue;
        }
        let action = page.url.join(open.get("action").map_or("", String::as_str))?;
        let mut form = Form { action, fields: Vec::new(), password: false, decision: false };
        let inner = &html[open_end..end];
        for (tag, i) in [("<input", 0), ("<button", 1)] {
            let mut at = 0;
            while let Some(s) = inner[at..].find(tag).map(|k| k + at) {
                let e = s + inner[s..].find('>').context("unterminated tag")?;
                at = e;
                let a = attributes(&inner[s..e]);
                let kind = a.get("type").map_or("", String::as_str);
                match (i, a.get("name").map(String::as_str)) {
                    (0, Some(_)) if kind == "password" => form.password = true,
                    (0, Some(name)) if kind == "hidden" => {
                        form.fields.push((name.to_owned(), a.get("value").cloned().unwrap_or_default()))
                    }
                    (1, Some("decision")) => form.decision = true,
                    _ => {}
                }
            }
        }
        return Ok(form);
    }
    bail!("no POST form on {} ({}): {}", page.url, page.status, snippet(html))
}

/// The attributes of one tag (`<input a="b" c='d' e=f>`), entities decoded.
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let bytes = tag.as_bytes();
    let mut i = tag.find(char::is_whitespace).unwrap_or(tag.len());
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'=' && bytes[i] != b'/' {
            i += 1;
        }
        let name = tag[name_start..i].to_ascii_lowercase();
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                i = start + tag[start..].bytes().position(|b| b == quote).unwrap_or(tag.len() - start);
                value = tag[start..i].to_owned();
                i += 1;
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = tag[start..i].to_owned();
            }
        }
        if !name.is_empty() {
            out.insert(name, unescape(&value));
        }
        if i == name_start {
            i += 1;
        }
    }
    out
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&k| k < 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn snippet(body: &str) -> String {
    body.chars().filter(|c| !c.is_control()).take(300).collect()
}

// ------------------------------------------------------------------ the flows

/// What every worker needs: endpoints and the request's parameters.
struct Setup {
    args: LoadArgs,
    authorization_endpoint: url::Url,
    /// Where exchanges go, in turn.
    token_endpoints: Vec<url::Url>,
    next_token_endpoint: std::sync::atomic::AtomicUsize,
    issuer: String,
    http: reqwest::Client,
}

impl Setup {
    fn authorize_url(&self, prompt: Option<&str>) -> url::Url {
        let a = &self.args;
        let mut url = self.authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &a.client_id)
                .append_pair("redirect_uri", &a.redirect_uri)
                .append_pair("scope", &a.scope)
                .append_pair("state", STATE)
                .append_pair("code_challenge", CHALLENGE)
                .append_pair("code_challenge_method", "S256");
            if let Some(resource) = &a.resource {
                q.append_pair("resource", resource);
            }
            if let Some(prompt) = prompt {
                q.append_pair("prompt", prompt);
            }
        }
        url
    }

    /// Runs one authorization in `browser` to the redirect URI; returns the code
    /// and the number of forms the browser filled in on the way.
    async fn authorize(
        &self,
        browser: &mut Browser,
        prompt: Option<&str>,
    ) -> anyhow::Result<(String, usize)> {
        let mut page = browser.send(self.authorize_url(prompt), None).await?;
        let mut forms = 0;
        for _ in 0..MAX_STEPS {
            if let Some(location) = page.location.take() {
                if location.as_str().starts_with(&self.args.redirect_uri) {
                    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
                    if let Some(error) = params.get("error") {
                        bail!("authorization error {error}: {:?}", params.get("error_description"));
                    }
                    ensure!(
                        params.get("state").map(String::as_str) == Some(STATE),
                        "state mismatch: {location}"
                    );
                    if let Some(iss) = params.get("iss") {
                        ensure!(*iss == self.issuer, "iss mismatch: {location}");
                    }
                    let code = params.get("code").with_context(|| format!("no code in {location}"))?;
                    return Ok((code.clone(), forms));
                }
                page = browser.send(location, None).await?;
                continue;
            }
            ensure!(
                page.status == StatusCode::OK,
                "{} from {}: {}",
                page.status,
                page.url,
                snippet(&page.body)
            );
            let form = parse_form(&page)?;
            let mut fields = form.fields;
            if form.password {
                fields.push(("login".into(), self.args.login.clone()));
                fields.push(("password".into(), self.args.password.clone()));
            }
            if form.decision {
                fields.push(("decision".into(), "allow".into()));
            }
            forms += 1;
            page = browser.send(form.action, Some(fields)).await?;
        }
        bail!("no redirect to {} after {MAX_STEPS} steps (last: {})", self.args.redirect_uri, page.url)
    }

    /// Redeems a code; the answer must carry an access token (and an ID token
    /// for openid). The access token.
    async fn token(&self, code: &str) -> anyhow::Result<String> {
        let a = &self.args;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &a.redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", &a.client_id),
        ];
        if let Some(resource) = &a.resource {
            form.push(("resource", resource));
        }
        let turn = self.next_token_endpoint.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let endpoint = &self.token_endpoints[turn % self.token_endpoints.len()];
        let response = self.http.post(endpoint.clone()).form(&form).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        ensure!(status == StatusCode::OK, "token: {status}: {}", String::from_utf8_lossy(&body));
        let json: Value = serde_json::from_slice(&body).context("token: not JSON")?;
        ensure!(
            json["access_token"].as_str().is_some_and(|t| t.len() > 20),
            "token: no access_token: {json}"
        );
        if a.scope.split(' ').any(|s| s == "openid") {
            ensure!(json["id_token"].is_string(), "token: no id_token: {json}");
        }
        Ok(json["access_token"].as_str().unwrap_or_default().to_owned())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Flow,
    Session,
}

/// What the workers measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

struct Load {
    setup: Arc<Setup>,
    mode: &'static str,
}

impl Load {
    async fn new(args: LoadArgs, mode: &'static str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4 * args.concurrency.max(1))
            .timeout(Duration::from_secs(30))
            .build()?;
        let issuer = args.issuer.trim_end_matches('/').to_owned();
        let meta: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .context("discovery")?
            .error_for_status()?
            .json()
            .await?;
        let endpoint = |name: &str| -> anyhow::Result<url::Url> {
            Ok(url::Url::parse(meta[name].as_str().with_context(|| format!("discovery: no {name}"))?)?)
        };
        let setup = Setup {
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoints: if args.token_endpoints.is_empty() {
                vec![endpoint("token_endpoint")?]
            } else {
                args.token_endpoints.clone()
            },
            next_token_endpoint: Default::default(),
            issuer: meta["issuer"].as_str().unwrap_or(&issuer).to_owned(),
            http,
            args,
        };
        Ok(Self { setup: Arc::new(setup), mode })
    }

    /// A browser signed in (and consented) by one full flow, and the access
    /// token its code was redeemed for.
    async fn signed_in(&self) -> anyhow::Result<(Browser, String)> {
        let mut browser = Browser::new(self.setup.http.clone());
        let (code, _) = self.setup.authorize(&mut browser, None).await.context("signing in")?;
        let token = self.setup.token(&code).await?;
        Ok((browser, token))
    }

    /// flow / session-flow: workers loop for warm-up + duration; what ends inside
    /// the measured window counts.
    async fn timed(self, kind: Kind) -> anyhow::Result<Value> {
        let args = &self.setup.args;
        let mut browsers = Vec::new();
        if kind == Kind::Session {
            for _ in 0..args.concurrency {
                browsers.push(Some(self.signed_in().await?.0));
            }
        } else {
            browsers.resize_with(args.concurrency, || None);
        }
        self.run_timed(browsers, move |setup, mut browser| async move {
            let result = async {
                let (code, forms) = match (&mut browser, kind) {
                    (Some(b), Kind::Session) => setup.authorize(b, None).await?,
                    _ => {
                        let mut fresh = Browser::new(setup.http.clone());
                        setup.authorize(&mut fresh, Some("consent")).await?
                    }
                };
                match kind {
                    Kind::Session => ensure!(forms == 0, "the session was not reused ({forms} forms)"),
                    Kind::Flow => ensure!(forms >= 2, "a fresh browser filled in only {forms} form(s)"),
                }
                setup.token(&code).await.map(drop)
            }
            .await;
            (browser, result)
        })
        .await
    }

    /// mcp: one token; per worker an MCP session (initialize, initialized),
    /// then `tools/call` of `--tool` back to back, each answer checked.
    async fn mcp_calls(self) -> anyhow::Result<Value> {
        let args = &self.setup.args;
        let url = args.mcp.clone().context("mcp needs --mcp URL")?;
        let arguments: Value = serde_json::from_str(&args.arguments).context("--arguments is not JSON")?;
        let call = Arc::new(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": args.tool, "arguments": arguments}}));
        let (_, token) = self.signed_in().await?;
        let mut sessions = Vec::new();
        for _ in 0..args.concurrency {
            let mcp = McpSession::open(&self.setup.http, &url, &token).await?;
            sessions.push(mcp);
        }
        self.run_timed(sessions, move |setup, mcp| {
            let call = call.clone();
            async move {
                let result = mcp.call_tool(&setup.http, &call).await;
                (mcp, result)
            }
        })
        .await
    }

    /// sessions: opens `--concurrency` sessions one after another and keeps
    /// them (they end when the server's idle rules say); the RSS of the first
    /// `--pid` before and after, and per session.
    async fn idle_sessions(self) -> anyhow::Result<Value> {
        let args = &self.setup.args;
        let url = args.mcp.clone().context("sessions needs --mcp URL")?;
        let pid = *args.pid.first().context("sessions needs --pid")?;
        let (_, token) = self.signed_in().await?;
        // One session first, so that what a first request sets up is not counted.
        let mut sessions = vec![McpSession::open(&self.setup.http, &url, &token).await?];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = || proc_status(pid).get("VmRSS").copied().unwrap_or(0);
        let before = rss();
        for _ in 0..args.concurrency {
            sessions.push(McpSession::open(&self.setup.http, &url, &token).await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss();
        let per = (after as f64 - before as f64) * 1024.0 / args.concurrency.max(1) as f64;
        Ok(json!({
            "label": args.label, "sessions": args.concurrency, "rss_before_kb": before, "rss_after_kb": after,
            "bytes_per_session": per.round(),
        }))
    }

    /// Runs one worker per state, each doing `op` back to back for the
    /// warm-up and the measured time; what ends inside the measured window
    /// counts, and the server's CPU is measured over that window.
    async fn run_timed<W, F, Fut>(&self, states: Vec<W>, op: F) -> anyhow::Result<Value>
    where
        W: Send + 'static,
        F: Fn(Arc<Setup>, W) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = (W, anyhow::Result<()>)> + Send,
    {
        let args = &self.setup.args;
        let meter = Meter::start(&args.pid);
        let begin = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = begin + Duration::from_secs_f64(args.duration);
        let mut handles = Vec::new();
        for state in states {
            let (setup, op) = (self.setup.clone(), op.clone());
            handles.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut state = state;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let (returned, result) = op(setup.clone(), state).await;
                    state = returned;
                    let done = Instant::now();
                    // Throughput counts what completes inside the measured window.
                    if done >= begin && done <= end {
                        match result {
                            Ok(()) => tally.latencies_us.push((done - now).as_micros() as u64),
                            Err(e) => tally.error(e),
                        }
                    }
                }
                tally
            }));
        }
        let mut tally = Tally::default();
        tokio::time::sleep_until(begin.into()).await;
        let at_begin = meter.sample();
        for handle in handles {
            tally.merge(handle.await?);
        }
        let measured = meter.since(at_begin, args.duration);
        Ok(self.report(tally, args.duration, measured, json!({})))
    }

    /// exchange: per batch, mint `batch` codes with one signed-in browser per
    /// worker (unmeasured), then redeem them with `concurrency` in flight (measured).
    async fn exchange(self) -> anyhow::Result<Value> {
        let args = self.setup.args.clone();
        let mut browsers = Vec::new();
        for _ in 0..args.concurrency {
            browsers.push(self.signed_in().await?.0);
        }
        let meter = Meter::start(&args.pid);
        let mut tally = Tally::default();
        let mut measured = Measured::default();
        let mut batches = 0;
        let mut mint_time = Duration::ZERO;
        let mut warm = args.warmup <= 0.0;
        while measured.seconds < args.duration {
            // Mint.
            let t0 = Instant::now();
            let per_worker = args.batch.div_ceil(args.concurrency);
            let mut minting = Vec::new();
            for mut browser in browsers.drain(..) {
                let setup = self.setup.clone();
                minting.push(tokio::spawn(async move {
                    let mut codes = Vec::with_capacity(per_worker);
                    for _ in 0..per_worker {
                        let (code, forms) = setup.authorize(&mut browser, None).await?;
                        ensure!(forms == 0, "minting: the session was not reused");
                        codes.push(code);
                    }
                    anyhow::Ok((browser, codes))
                }));
            }
            let mut codes = Vec::new();
            for handle in minting {
                let (browser, mut minted) = handle.await??;
                browsers.push(browser);
                codes.append(&mut minted);
            }
            mint_time += t0.elapsed();
            // Redeem.
            let queue = Arc::new(std::sync::Mutex::new(codes));
            let before = meter.sample();
            let t1 = Instant::now();
            let mut handles = Vec::new();
            for _ in 0..args.concurrency {
                let (setup, queue) = (self.setup.clone(), queue.clone());
                handles.push(tokio::spawn(async move {
                    let mut tally = Tally::default();
                    loop {
                        let Some(code) = queue.lock().unwrap().pop() else { break };
                        let t = Instant::now();
                        match setup.token(&code).await {
                            Ok(_) => tally.latencies_us.push(t.elapsed().as_micros() as u64),
                            Err(e) => tally.error(e),
                        }
                    }
                    tally
                }));
            }
            let mut batch = Tally::default();
            for handle in handles {
                batch.merge(handle.await?);
            }
            let seconds = t1.elapsed().as_secs_f64();
            let after = meter.since(before, seconds);
            if warm {
                measured.add(&after);
                tally.merge(batch);
                batches += 1;
            } else {
                warm = true;
            }
        }
        let extra = json!({
            "batch": args.batch,
            "batches": batches,
            "mint_seconds": round(mint_time.as_secs_f64(), 2),
        });
        Ok(self.report(tally, measured.seconds, measured, extra))
    }

    fn report(&self, mut tally: Tally, seconds: f64, measured: Measured, extra: Value) -> Value {
        tally.latencies_us.sort_unstable();
        let ops = tally.latencies_us.len() as f64;
        let pct = |p: f64| -> f64 {
            let v = &tally.latencies_us;
            if v.is_empty() {
                return 0.0;
            }
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            round(v[i] as f64 / 1000.0, 2)
        };
        let mut line = json!({
            "label": self.setup.args.label,
            "mode": self.mode,
            "issuer": self.setup.issuer,
            "concurrency": self.setup.args.concurrency,
            "seconds": round(seconds, 2),
            "ok": ops as u64,
            "errors": tally.errors,
            "per_s": round(ops / seconds.max(1e-9), 1),
            "p50_ms": pct(0.5),
            "p90_ms": pct(0.9),
            "p99_ms": pct(0.99),
            "driver_cpu_pct": round(100.0 * measured.driver_cpu / seconds.max(1e-9), 1),
        });
        if let Some(server_cpu) = measured.server_cpu {
            line["server_cpu_pct"] = round(100.0 * server_cpu / seconds.max(1e-9), 1).into();
            line["server_cpu_us_per_op"] = round(1e6 * server_cpu / ops.max(1.0), 0).into();
        }
        if let Some(switches) = measured.server_switches {
            line["server_switches_per_op"] = round(switches as f64 / ops.max(1.0), 1).into();
        }
        if let Some(&pid) = self.setup.args.pid.first() {
            let status = proc_status(pid);
            line["server_vmhwm_kb"] = status.get("VmHWM").copied().into();
            line["server_vmrss_kb"] = status.get("VmRSS").copied().into();
        }
        if let Some(e) = tally.first_error {
            line["first_error"] = e.into();
        }
        for (k, v) in extra.as_object().into_iter().flatten() {
            line[k] = v.clone();
        }
        line
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

// ------------------------------------------------------------------ /proc

/// CPU seconds (user + system) of a process, from /proc/PID/stat (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// `Key: N kB` lines of /proc/PID/status.
fn proc_status(pid: u32) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_owned(), v.trim().trim_end_matches(" kB").parse().ok()?))
        })
        .collect()
}

/// Context switches (voluntary and not) of every thread of a process: each
/// hand-off between threads on one CPU costs two.
fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        total += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

struct Meter {
    pids: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Sample {
    server: Option<f64>,
    server_switches: Option<u64>,
    driver: f64,
}

#[derive(Default)]
struct Measured {
    seconds: f64,
    server_cpu: Option<f64>,
    server_switches: Option<u64>,
    driver_cpu: f64,
}

impl Measured {
    fn add(&mut self, other: &Measured) {
        self.seconds += other.seconds;
        self.driver_cpu += other.driver_cpu;
        if let Some(s) = other.server_switches {
            self.server_switches = Some(self.server_switches.unwrap_or(0) + s);
        }
        if let Some(s) = other.server_cpu {
            self.server_cpu = Some(self.server_cpu.unwrap_or(0.0) + s);
        }
    }
}

impl Meter {
    /// Resets the server's peak RSS (VmHWM) when /proc allows it.
    fn start(pids: &[u32]) -> Self {
        for pid in pids {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        Self { pids: pids.to_vec() }
    }

    /// The servers' summed CPU seconds and context switches; `None` without a
    /// PID, or when one cannot be read.
    fn sample(&self) -> Sample {
        let all = !self.pids.is_empty();
        Sample {
            server: all.then(|| self.pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()).flatten(),
            server_switches: all.then(|| self.pids.iter().map(|&p| context_switches(p)).sum()).flatten(),
            driver: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    fn since(&self, before: Sample, seconds: f64) -> Measured {
        let now = self.sample();
        Measured {
            seconds,
            server_cpu: now.server.zip(before.server).map(|(a, b)| a - b),
            server_switches: now.server_switches.zip(before.server_switches).map(|(a, b)| a - b),
            driver_cpu: now.driver - before.driver,
        }
    }
}

// ------------------------------------------------------------------ ready

async fn ready(args: ReadyArgs) -> anyhow::Result<Value> {
    let (mut line_ms, mut http_ms) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        if let Some(dir) = &args.fresh_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let t0 = Instant::now();
        let mut child = Command::new(&args.command[0])
            .args(&args.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {:?}", args.command))?;
        let stdout = child.stdout.take().unwrap();
        let marker = args.marker.clone();
        let reader = std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent && line.starts_with(&marker) {
                    let _ = tx.send(t0.elapsed());
                    sent = true;
                }
            }
        });
        let deadline = t0 + Duration::from_secs(30);
        let served = loop {
            if Instant::now() > deadline {
                break None;
            }
            match http.get(&args.url).send().await {
                Ok(r) if r.status() == StatusCode::OK => break Some(t0.elapsed()),
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        let line = rx.recv_timeout(Duration::from_secs(5)).ok();
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
        let _ = reader.join();
        let (served, line) = (
            served.ok_or_else(|| anyhow!("{} never answered 200", args.url))?,
            line.ok_or_else(|| anyhow!("no line starting with {:?}", args.marker))?,
        );
        line_ms.push(round(line.as_secs_f64() * 1000.0, 1));
        http_ms.push(round(served.as_secs_f64() * 1000.0, 1));
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        if s.len() % 2 == 1 { s[s.len() / 2] } else { round((s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0, 1) }
    };
    Ok(json!({
        "label": args.label,
        "mode": "ready",
        "runs": args.runs,
        "fresh_dir": args.fresh_dir.is_some(),
        "line_ms_median": median(&line_ms),
        "http_ms_median": median(&http_ms),
        "line_ms": line_ms,
        "http_ms": http_ms,
    }))
}
