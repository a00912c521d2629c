//! An upstream MCP server on stdio (`npx -y @modelcontextprotocol/server-memory`,
//! `uvx mcp-server-git`…): the gateway speaks Streamable HTTP to the agents
//! and newline-delimited JSON-RPC to the processes it starts.
//!
//! **One process per person** by default: a person's data never meets
//! another's, even in a server that was written for one user. The sessions of
//! one person share their process; `{person}` in the route's environment or
//! working directory gives each person's process its own files. A route for a
//! server that keeps no state may share one process among everyone.
//!
//! Processes are bounded (`max_processes`, then 503 with `Retry-After`), end
//! when their last session is deleted or when no request has reached them for
//! `idle_timeout`, and a process that crashes ends its sessions: the agent's
//! next request with that session gets 404, the MCP signal to start a new
//! session, which starts a fresh process.
//!
//! A POST that carries requests is answered with an SSE stream when the agent
//! accepts one (the answers, and whatever the process sends while they run),
//! else with JSON; one that carries only notifications or answers gets 202.
//! A POST that names no session and does not initialize one is served
//! sessionless (the 2026-07-28 protocol), by the person's process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgate_guard::AuthInfo;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::delivery::Owner;
use crate::fault::Fault;
use crate::process::{Asker, Process, STREAM_QUEUE, SendError, StdioCommand};

/// The header MCP's Streamable HTTP transport uses for sessions.
const SESSION_HEADER: &str = "mcp-session-id";

/// Bounds and sharing of a stdio route.
#[derive(Debug, Clone)]
pub struct StdioOptions {
    /// The most processes running at once.
    pub max_processes: usize,
    /// A process no request has reached for this long is ended.
    pub idle_timeout: Duration,
    /// One process for everyone (for servers that keep no state).
    pub shared: bool,
    /// How long an answer may take to come, counted from the last message.
    pub timeout: Duration,
    /// The largest request body.
    pub max_body_bytes: usize,
}

impl Default for StdioOptions {
    fn default() -> Self {
        Self {
            max_processes: 32,
            idle_timeout: Duration::from_secs(600),
            shared: false,
            timeout: crate::DEFAULT_TIMEOUT,
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A stdio upstream, as a tower service to put behind the guard.
///
/// ```
/// use agentgate_gateway::{StdioCommand, StdioOptions, StdioUpstream};
/// use tower::Layer;
///
/// let guard = agentgate_guard::Guard::builder("https://as.example", "https://gw.example/memory")
///     .build()
///     .unwrap();
/// let command = StdioCommand {
///     command: "npx -y @modelcontextprotocol/server-memory".into(),
///     cwd: None,
///     env: vec![("MEMORY_FILE_PATH".into(), "/var/lib/memory/{person}.jsonl".into())],
/// };
/// let upstream = StdioUpstream::new("memory", command, StdioOptions::default());
/// let app: axum::Router = axum::Router::new()
///     .route_service("/memory", guard.layer().layer(upstream))
///     .merge(guard.metadata_router());
/// ```
#[derive(Clone, Debug)]
pub struct StdioUpstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    route: String,
    command: StdioCommand,
    options: StdioOptions,
    /// Running processes, by person (or one for everyone).
    processes: Mutex<HashMap<String, Arc<Process>>>,
    sessions: Mutex<HashMap<String, Session>>,
    reaper_started: AtomicBool,
}

#[derive(Debug, Clone)]
struct Session {
    person: String,
    process: Arc<Process>,
}

impl StdioUpstream {
    /// The route named `route`, starting `command` as it needs.
    pub fn new(route: impl Into<String>, command: StdioCommand, options: StdioOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                route: route.into(),
                command,
                options,
                processes: Mutex::default(),
                sessions: Mutex::default(),
                reaper_started: AtomicBool::new(false),
            }),
        }
    }

    /// How many processes run now.
    pub fn live_processes(&self) -> usize {
        self.inner.processes.lock().unwrap().values().filter(|p| p.is_alive()).count()
    }
}

crate::fault::upstream_service!(StdioUpstream, handle);

/// A JSON-RPC error answer with its HTTP status, for what the agent got wrong.
fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn no_session() -> Response<Body> {
    rpc_error(
        StatusCode::NOT_FOUND,
        -32001,
        "This MCP session has ended (or never existed); start a new one with initialize.",
    )
}

fn accepts(headers: &http::HeaderMap, kind: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(kind))
}

impl Inner {
    async fn handle(self: &Arc<Self>, request: Request<Body>) -> Result<Response<Body>, Fault> {
        let Some(who) = request.extensions().get::<AuthInfo>().cloned() else {
            // Only behind the guard; anything else is a wiring mistake, refused.
            return Ok(rpc_error(StatusCode::UNAUTHORIZED, -32600, "this route needs a verified caller"));
        };
        let owner =
            Owner { person: format!("{}\n{}", who.issuer, who.subject), client_id: who.client_id.clone() };
        let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        match *request.method() {
            Method::POST => self.post(request, &who, owner, session).await,
            Method::GET => Ok(self.listen(&request, &owner, session)),
            Method::DELETE => Ok(self.delete(&owner.person, session)),
            _ => {
                let mut response =
                    rpc_error(StatusCode::METHOD_NOT_ALLOWED, -32600, "use POST, GET or DELETE");
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
                Ok(response)
            }
        }
    }

    /// The session named in a request, if it is this person's and its process runs.
    fn session(&self, person: &str, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().unwrap();
        Self::open_session(&mut sessions, person, id).cloned()
    }

    /// The one rule for naming a session: it exists, its process runs (a
    /// session of an ended process is forgotten), and it is this person's.
    fn open_session<'a>(
        sessions: &'a mut HashMap<String, Session>,
        person: &str,
        id: &str,
    ) -> Option<&'a Session> {
        if sessions.get(id).is_some_and(|s| !s.process.is_alive()) {
            sessions.remove(id);
        }
        sessions.get(id).filter(|s| s.person == person)
    }

    /// The person's process, started if none runs.
    fn process_for(self: &Arc<Self>, person: &str, subject: &str) -> Result<Arc<Process>, Fault> {
        self.start_reaper();
        let key = if self.options.shared { String::new() } else { person.to_owned() };
        let mut processes = self.processes.lock().unwrap();
        if let Some(process) = processes.get(&key).filter(|p| p.is_alive()) {
            return Ok(process.clone());
        }
        processes.retain(|_, p| p.is_alive());
        if processes.len() >= self.options.max_processes {
            return Err(Fault::Busy { route: self.route.clone(), limit: self.options.max_processes });
        }
        let owner = (!self.options.shared).then_some(subject);
        let process =
            Process::start(&self.route, &self.command, owner).map_err(|error| Fault::Unreachable {
                route: self.route.clone(),
                detail: format!("its process would not start: {error}"),
            })?;
        tracing::info!(route = %self.route, pid = process.pid, "MCP server process started");
        processes.insert(key, process.clone());
        Ok(process)
    }

    async fn post(
        self: &Arc<Self>,
        request: Request<Body>,
        who: &AuthInfo,
        owner: Owner,
        session: Option<String>,
    ) -> Result<Response<Body>, Fault> {
        let person = &owner.person;
        let (parts, body) = request.into_parts();
        let limit = self.options.max_body_bytes;
        let body: Bytes = crate::fault::read_body(body, limit, self.options.timeout).await?;
        let messages = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(batch)) if !batch.is_empty() => batch,
            Ok(message @ Value::Object(_)) => vec![message],
            _ => {
                return Ok(rpc_error(
                    StatusCode::BAD_REQUEST,
                    -32700,
                    "the body is not a JSON-RPC message: send one JSON object with \"jsonrpc\": \"2.0\"",
                ));
            }
        };
        let initializes =
            messages.iter().any(|m| m.get("method").and_then(Value::as_str) == Some("initialize"));
        let (process, new_session) = match &session {
            Some(id) => match self.session(person, id) {
                Some(session) => (session.process, None),
                None => return Ok(no_session()),
            },
            None => (self.process_for(person, &who.subject)?, initializes.then(new_session_id)),
        };
        // An answer to a request the process did not send this agent refuses
        // the whole body, before any of it is written.
        let answers = messages.iter().filter(|m| m.get("method").is_none());
        if answers.clone().any(|answer| !process.may_answer(answer, &owner)) {
            return Ok(rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "this answers no request that the MCP server sent to this agent; nothing was passed on",
            ));
        }
        if let Some(id) = &new_session {
            let session = Session { person: person.clone(), process: process.clone() };
            self.sessions.lock().unwrap().insert(id.clone(), session);
        }

        let timeout = self.options.timeout;
        let sse =
            accepts(&parts.headers, "text/event-stream") || !accepts(&parts.headers, "application/json");
        let from = Asker { owner: &owner, session: session.as_deref().or(new_session.as_deref()) };
        let (stream, answers) = mpsc::channel(STREAM_QUEUE);
        let mut waiting = Vec::new();
        for message in messages {
            let has_id = message.get("id").is_some_and(|id| !id.is_null());
            let sent = match (message.get("method").is_some(), has_id) {
                (true, true) => {
                    let id = message["id"].clone();
                    let sent = process.request(message, &from, stream.clone(), sse, timeout).await;
                    sent.map(|ours| waiting.push((ours, id)))
                }
                (true, false) => process.notify(message, &from, timeout).await,
                (false, _) => process.answer(&message, &owner, timeout).await,
            };
            if let Err(error) = sent {
                for (ours, _) in &waiting {
                    process.forget(*ours);
                }
                return match error {
                    SendError::Timeout => Err(Fault::Timeout { route: self.route.clone(), after: timeout }),
                    SendError::Ended => Err(Fault::Broken {
                        route: self.route.clone(),
                        detail: "its process has ended; send the request again to start a fresh one".into(),
                    }),
                    SendError::NotAsked => Ok(rpc_error(
                        StatusCode::BAD_REQUEST,
                        -32600,
                        "this answers no request that the MCP server sent to this agent; nothing was passed on",
                    )),
                };
            }
        }
        drop(stream);
        let mut response = if waiting.is_empty() {
            let mut accepted = Response::new(Body::empty());
            *accepted.status_mut() = StatusCode::ACCEPTED;
            accepted
        } else {
            let answers = Answers { process, waiting, answers, route: self.route.clone(), timeout };
            if sse { answers.into_sse() } else { answers.into_json().await? }
        };
        if let Some(id) = new_session {
            response
                .headers_mut()
                .insert(SESSION_HEADER, HeaderValue::from_str(&id).expect("hex is a header"));
        }
        Ok(response)
    }

    /// The GET stream: what the process sends of its own accord.
    fn listen(&self, request: &Request<Body>, owner: &Owner, session: Option<String>) -> Response<Body> {
        let Some(id) = session else {
            let mut response = rpc_error(
                StatusCode::METHOD_NOT_ALLOWED,
                -32600,
                "a GET stream belongs to a session: send initialize first",
            );
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        };
        let Some(session) = self.session(&owner.person, &id) else { return no_session() };
        if !accepts(request.headers(), "text/event-stream") {
            return rpc_error(
                StatusCode::NOT_ACCEPTABLE,
                -32600,
                "a GET stream is text/event-stream: accept it",
            );
        }
        let (stream, messages) = mpsc::channel(STREAM_QUEUE);
        let opening = session.process.listen(&id, owner, stream);
        let listening = Listening { process: session.process, session: id, opening };
        let events = futures_util::stream::unfold(
            (messages, listening),
            |(mut messages, listening)| async move {
                tokio::select! {
                    message = messages.recv() => message.map(|m| (Ok::<_, Infallible>(sse_event(&m)), (messages, listening))),
                    _ = listening.process.ended.cancelled() => None,
                }
            },
        );
        sse_response(Body::from_stream(events))
    }

    /// Ends a session, and its process when it was the person's last.
    fn delete(&self, person: &str, session: Option<String>) -> Response<Body> {
        let Some(id) = session else {
            return rpc_error(StatusCode::BAD_REQUEST, -32600, "name the session to end in Mcp-Session-Id");
        };
        let mut sessions = self.sessions.lock().unwrap();
        if Self::open_session(&mut sessions, person, &id).is_none() {
            return no_session();
        }
        let ended = sessions.remove(&id).expect("the session was just found");
        ended.process.unlisten(&id, None);
        let others = sessions.values().any(|s| Arc::ptr_eq(&s.process, &ended.process));
        if !others && !self.options.shared {
            ended.process.end();
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    }

    /// Ends processes that are idle past the route's bound, once a while.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        let every = (self.options.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let idle = inner.options.idle_timeout;
                inner.processes.lock().unwrap().retain(|_, process| {
                    if process.is_alive() && process.idle_for() >= idle {
                        tracing::info!(route = %inner.route, pid = process.pid, "ending an idle MCP server process");
                        process.end();
                    }
                    process.is_alive()
                });
                inner.sessions.lock().unwrap().retain(|_, s| s.process.is_alive());
            }
        });
    }
}

/// A fresh session id: 128 random bits in hex.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Closes a session's GET stream when its client goes.
struct Listening {
    process: Arc<Process>,
    session: String,
    /// Which opening of the session's stream (a later GET replaces it, and
    /// must not be closed by this one's end).
    opening: u64,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.process.unlisten(&self.session, Some(self.opening));
    }
}

fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn sse_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The answers a POST waits for.
struct Answers {
    process: Arc<Process>,
    /// The gateway's id and the client's, of each request not answered yet.
    waiting: Vec<(u64, Value)>,
    answers: mpsc::Receiver<Value>,
    route: String,
    timeout: Duration,
}

impl Answers {
    /// The next message for this POST; `None` once every request is answered.
    /// A request that gets nothing for the route's timeout is answered with
    /// the timeout's error.
    async fn next(&mut self) -> Option<Value> {
        if self.waiting.is_empty() {
            return None;
        }
        match tokio::time::timeout(self.timeout, self.answers.recv()).await {
            Ok(Some(message)) => {
                if message.get("method").is_none()
                    && let Some(at) = self.waiting.iter().position(|(_, id)| Some(id) == message.get("id"))
                {
                    self.waiting.swap_remove(at);
                }
                Some(message)
            }
            // No sender left: the process ended and has failed every request.
            Ok(None) => None,
            Err(_) => {
                let (ours, id) = self.waiting.swap_remove(0);
                self.process.forget(ours);
                let fault = Fault::Timeout { route: self.route.clone(), after: self.timeout };
                Some(json!({ "jsonrpc": "2.0", "id": id, "error": fault.error_object() }))
            }
        }
    }

    fn into_sse(self) -> Response<Body> {
        let events = futures_util::stream::unfold(self, |mut answers| async move {
            let message = answers.next().await?;
            Some((Ok::<_, Infallible>(sse_event(&message)), answers))
        });
        sse_response(Body::from_stream(events))
    }

    async fn into_json(mut self) -> Result<Response<Body>, Fault> {
        let single = self.waiting.len() == 1;
        let mut out = Vec::new();
        while let Some(message) = self.next().await {
            // Without a stream, what the process sends of its own accord has
            // nowhere to go but the answers; only answers are kept.
            if message.get("method").is_none() {
                out.push(message);
            }
        }
        let body = if single && out.len() == 1 { out.remove(0) } else { Value::Array(out) };
        let mut response = Response::new(Body::from(body.to_string()));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

impl Drop for Answers {
    /// The agent went away: its requests are no longer waited for.
    fn drop(&mut self) {
        for (ours, _) in &self.waiting {
            self.process.forget(*ours);
        }
    }
}
