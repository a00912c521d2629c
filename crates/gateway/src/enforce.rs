//! A route's [`Policy`] applied to its MCP messages, between the guard and the
//! upstream.
//!
//! Only a POST carries requests, so only a POST is read: its body (within the
//! route's bound) is parsed as a JSON-RPC message or batch, and each request
//! that uses a tool, prompt or resource is decided. A body that is not
//! JSON-RPC is refused rather than passed on unread — an upstream that read it
//! differently would be a way around the policy. The bytes that go on are the
//! bytes that came: nothing is re-encoded on the way up.
//!
//! A list request (`tools/list`…) goes on as it is, and its answer comes back
//! with what the caller may not use taken out, in a JSON body or in the SSE
//! event that carries it; every other event, and everything after, streams
//! through untouched.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgate_guard::{AuthError, AuthInfo, Guard};
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

use crate::audit::Slot;
use crate::fault::jsonrpc_error;
use crate::policy::{Caller, Decision, Kind, Policy};

/// JSON-RPC's "parse error".
const PARSE_ERROR: i64 = -32700;
/// The JSON-RPC error code of a use the policy refuses (in the range JSON-RPC
/// leaves to servers).
pub const POLICY_REFUSED: i64 = -32003;
/// The largest list answer (or SSE event) read to be filtered; past it the
/// answer is cut off rather than passed on unfiltered.
pub const MAX_LIST_ANSWER: usize = 16 * 1024 * 1024;

/// What an issuer knows of an app, for rules about first- and third-party
/// apps and for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// Its name, as the consent page shows it.
    pub name: String,
    /// Whether it is third-party.
    pub third_party: bool,
}

/// Where a route finds its apps and people. agentgate's issuer knows them;
/// for an outside issuer nothing does, every app counts as third-party, and a
/// person is named only as far as the token names them.
pub trait AppDirectory: Send + Sync + 'static {
    /// The app `client_id`; `None` when it is unknown.
    fn app<'a>(&'a self, client_id: &'a str) -> Pin<Box<dyn Future<Output = Option<AppInfo>> + Send + 'a>>;

    /// The username of the person `sub`, for the audit log when the token
    /// carries none; `None` when unknown.
    fn username<'a>(&'a self, sub: &'a str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        let _ = sub;
        Box::pin(async { None })
    }
}

/// `inner` with `policy` applied, behind `guard` (whose challenge a step-up
/// answer uses), telling an audited route's entries who asked for what.
///
/// ```
/// use agentgate_gateway::policy::{Kind, Policy, Rule};
/// use agentgate_gateway::{HttpUpstream, Policed};
/// use tower::Layer;
///
/// let guard = agentgate_guard::Guard::builder("https://as.example", "https://gw.example/notes")
///     .scopes(["notes"])
///     .build()
///     .unwrap();
/// let policy = Policy::new().with(Kind::Tool, "delete_note", Rule { scopes: vec!["notes:delete".into()], apps: vec![] });
/// let upstream = HttpUpstream::new("notes", "http://127.0.0.1:9000/mcp".parse().unwrap());
/// let service = guard.layer().layer(Policed::new("notes", policy, guard.clone(), upstream));
/// ```
#[derive(Clone)]
pub struct Policed<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    route: Arc<str>,
    policy: Arc<Policy>,
    guard: Guard,
    apps: Option<Arc<dyn AppDirectory>>,
    max_body_bytes: usize,
    timeout: std::time::Duration,
    record_arguments: bool,
}

impl<S> Policed<S> {
    /// `inner`, the route named `route`'s upstream, with `policy` applied.
    pub fn new(route: &str, policy: Policy, guard: Guard, inner: S) -> Self {
        let shared = Shared {
            route: Arc::from(route),
            policy: Arc::new(policy),
            guard,
            apps: None,
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
            timeout: crate::DEFAULT_TIMEOUT,
            record_arguments: false,
        };
        Self { inner, shared: Arc::new(shared) }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configured before it is cloned")
    }

    /// Where apps are placed as first- or third-party, and named in the audit log.
    pub fn apps(mut self, apps: Arc<dyn AppDirectory>) -> Self {
        self.shared_mut().apps = Some(apps);
        self
    }

    /// The bound on a request body read for the policy (413 past it).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.shared_mut().max_body_bytes = bytes;
        self
    }

    /// How long a request body may take to arrive whole (408 past it).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.shared_mut().timeout = timeout;
        self
    }

    /// Whether the audit log keeps the arguments of `tools/call` and `prompts/get`.
    pub fn record_arguments(mut self, on: bool) -> Self {
        self.shared_mut().record_arguments = on;
        self
    }
}

impl<S> Service<Request<Body>> for Policed<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (inner, shared) = (self.inner.clone(), self.shared.clone());
        Box::pin(async move { Ok(shared.enforce(request, inner).await) })
    }
}

/// One JSON-RPC message, as far as the policy reads it.
#[derive(Deserialize)]
struct Message {
    id: Option<Value>,
    method: Option<String>,
    params: Option<Value>,
}

impl Message {
    /// The kind it uses or lists, and the name it uses (`None` for a list).
    /// Asking for completions of a prompt's or a template's arguments uses
    /// that prompt or template: what a caller may not use, it may not probe.
    fn subject(&self) -> Option<(Kind, Option<&str>)> {
        if self.method.as_deref() == Some("completion/complete") {
            let reference = self.params.as_ref()?.get("ref")?;
            return match reference.get("type")?.as_str()? {
                "ref/prompt" => Some((Kind::Prompt, Some(reference.get("name")?.as_str()?))),
                "ref/resource" => Some((Kind::ResourceTemplate, Some(reference.get("uri")?.as_str()?))),
                _ => None,
            };
        }
        let (kind, lists) = Kind::of_method(self.method.as_deref()?)?;
        if lists {
            return Some((kind, None));
        }
        // A use without a name is the upstream's to refuse: there is nothing to decide.
        let name = self.params.as_ref()?.get(kind.key())?.as_str()?;
        Some((kind, Some(name)))
    }
}

/// The caller, owned, so that an answer's filter can keep it.
struct Asker {
    scopes: Vec<String>,
    client_id: Option<String>,
    app: Option<AppInfo>,
}

impl Asker {
    fn caller(&self) -> Caller<'_> {
        let third_party = self.app.as_ref().map(|app| app.third_party);
        Caller { scopes: &self.scopes, client_id: self.client_id.as_deref(), third_party }
    }
}

/// Notes a refusal in the audit slot, if the route is audited.
fn note_refusal(slot: Option<&Slot>, reason: &str, detail: &str) {
    if let Some(slot) = slot {
        slot.decided("refused", reason, detail);
    }
}

impl Shared {
    async fn enforce<S>(&self, request: Request<Body>, inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    {
        let slot = Slot::of(&request);
        let asker = self.asker(request.extensions().get::<AuthInfo>(), slot.as_ref()).await;
        if request.method() != Method::POST || (self.policy.is_empty() && slot.is_none()) {
            return forward(inner, request).await;
        }
        let (parts, body) = request.into_parts();
        let bytes = match crate::fault::read_body(body, self.max_body_bytes, self.timeout).await {
            Ok(bytes) => bytes,
            Err(fault) => {
                note_refusal(slot.as_ref(), fault.reason(), &fault.to_string());
                return fault.response(None);
            }
        };
        let batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let parsed = if batch {
            serde_json::from_slice::<Vec<Message>>(&bytes)
        } else {
            serde_json::from_slice::<Message>(&bytes).map(|m| vec![m])
        };
        let Ok(messages) = parsed else {
            let words = "the body is not a JSON-RPC message, so the route's policy cannot be applied";
            note_refusal(slot.as_ref(), "invalid_request", words);
            return refusal(StatusCode::BAD_REQUEST, None, PARSE_ERROR, words);
        };
        if let Some(slot) = &slot {
            self.note_messages(slot, &messages, batch);
        }
        let asks: Vec<(&Message, Kind, Option<&str>)> = messages
            .iter()
            .filter_map(|m| m.subject().map(|(kind, name)| (m, kind, name)))
            .filter(|(_, kind, _)| self.policy.covers(*kind))
            .collect();
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        if asks.is_empty() {
            return forward(inner, request).await;
        }
        let mut needed: Vec<String> = self.guard.required_scopes().to_vec();
        let mut step_up = false;
        for (message, kind, name) in &asks {
            let Some(name) = name else { continue };
            match self.policy.decide(*kind, name, &asker.caller()) {
                Decision::Allow => {}
                Decision::StepUp(scopes) => {
                    step_up = true;
                    for scope in scopes {
                        if !needed.contains(&scope) {
                            needed.push(scope);
                        }
                    }
                }
                Decision::Refused(why) => {
                    tracing::info!(route = %self.route, kind = %kind, name = %name, "refused by the route's policy");
                    let words = format!("{why}, by the policy of route {}", self.route);
                    note_refusal(slot.as_ref(), "policy", &words);
                    let id = if batch { None } else { message.id.as_ref() };
                    return refusal(StatusCode::OK, id, POLICY_REFUSED, &words);
                }
            }
        }
        if step_up {
            let words = format!("the call needs the scopes {}", needed.join(" "));
            note_refusal(slot.as_ref(), "insufficient_scope", &words);
            return self.guard.refusal(&AuthError::InsufficientScope { required: needed });
        }
        // A list request alone gets its answer filtered; in a batch (gone
        // from MCP since 2025-06-18) lists are refused rather than unfiltered.
        let listing =
            asks.iter().find(|(_, _, name)| name.is_none()).map(|(m, kind, _)| (*kind, m.id.clone()));
        let Some((kind, id)) = listing else {
            return forward(inner, request).await;
        };
        if batch {
            let words = "list requests in a batch cannot be filtered by the route's policy; send them alone";
            note_refusal(slot.as_ref(), "policy", words);
            return refusal(StatusCode::OK, None, POLICY_REFUSED, words);
        }
        let answer = forward(inner, request).await;
        let filter = ListFilter { policy: self.policy.clone(), kind, id: id.unwrap_or(Value::Null), asker };
        filter.apply(answer).await
    }

    /// The caller, with its app when a rule or the audit log needs it; the
    /// audit slot told who it is.
    async fn asker(&self, caller: Option<&AuthInfo>, slot: Option<&Slot>) -> Asker {
        let Some(caller) = caller else {
            // No verified caller (a route built without the guard): no scopes,
            // no app, so every rule refuses or asks.
            return Asker { scopes: Vec::new(), client_id: None, app: None };
        };
        let app = match (&self.apps, &caller.client_id) {
            (Some(apps), Some(id)) if slot.is_some() || self.policy.needs_app_kind() => apps.app(id).await,
            _ => None,
        };
        if let Some(slot) = slot {
            let mut username =
                caller.claims.get("preferred_username").and_then(Value::as_str).map(str::to_owned);
            if let (None, Some(directory)) = (&username, &self.apps) {
                username = directory.username(&caller.subject).await;
            }
            slot.update(|entry| {
                entry.sub = Some(caller.subject.clone());
                entry.username = username;
                entry.client_id.clone_from(&caller.client_id);
                entry.app = app.as_ref().map(|a| a.name.clone());
                entry.third_party = app.as_ref().map(|a| a.third_party);
            });
        }
        Asker { scopes: caller.scopes.clone(), client_id: caller.client_id.clone(), app }
    }

    /// The method, the name and (when the route says) the arguments, for the audit log.
    fn note_messages(&self, slot: &Slot, messages: &[Message], batch: bool) {
        slot.update(|entry| {
            if batch {
                entry.method = Some("batch".to_owned());
                return;
            }
            let Some(message) = messages.first() else { return };
            entry.method.clone_from(&message.method);
            if let Some((_, Some(name))) = message.subject() {
                entry.name = Some(name.to_owned());
            }
            if self.record_arguments {
                entry.arguments = message.params.as_ref().and_then(|p| p.get("arguments")).cloned();
            }
        });
    }
}

async fn forward<S>(inner: S, request: Request<Body>) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn refusal(status: StatusCode, id: Option<&Value>, code: i64, words: &str) -> Response<Body> {
    jsonrpc_error(status, id, json!({ "code": code, "message": words, "data": { "reason": "policy" } }))
}

/// Takes what the caller may not use out of one list answer.
struct ListFilter {
    policy: Arc<Policy>,
    kind: Kind,
    id: Value,
    asker: Asker,
}

impl ListFilter {
    /// Filters `message` if it is the answer; says whether it was.
    fn filter(&self, message: &mut Value) -> bool {
        if message.get("id") != Some(&self.id) {
            return false;
        }
        let Some(items) = message.pointer_mut(&format!("/result/{}", self.kind.list_field())) else {
            return true;
        };
        if let Some(items) = items.as_array_mut() {
            let caller = self.asker.caller();
            // An item with no name cannot be decided: it is left out.
            items.retain(|item| {
                item.get(self.kind.key())
                    .and_then(Value::as_str)
                    .is_some_and(|name| self.policy.decide(self.kind, name, &caller) == Decision::Allow)
            });
        }
        true
    }

    async fn apply(self, answer: Response<Body>) -> Response<Body> {
        if answer.status() != StatusCode::OK {
            return answer;
        }
        let content_type =
            answer.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let (mut parts, body) = answer.into_parts();
        match media.as_str() {
            "application/json" => {
                let Ok(collected) = Limited::new(body, MAX_LIST_ANSWER).collect().await else {
                    return self.cut_off();
                };
                let Ok(mut message) = serde_json::from_slice::<Value>(&collected.to_bytes()) else {
                    return self.cut_off();
                };
                self.filter(&mut message);
                parts.headers.remove(header::CONTENT_LENGTH);
                Response::from_parts(parts, Body::from(message.to_string()))
            }
            "text/event-stream" => {
                let stream = TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
                let events =
                    SseFilter { inner: stream.boxed(), filter: Some(self), pending: BytesMut::new() };
                Response::from_parts(parts, Body::from_stream(events))
            }
            // Neither: not an MCP answer to filter, so nothing of it goes on.
            _ => self.cut_off(),
        }
    }

    fn cut_off(&self) -> Response<Body> {
        let words = "the MCP server's list answer could not be read to apply the route's policy";
        refusal(StatusCode::BAD_GATEWAY, Some(&self.id), POLICY_REFUSED, words)
    }
}

/// An SSE stream whose event answering the list request is filtered; every
/// other byte passes as it came.
struct SseFilter {
    inner: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// Until the answer has passed.
    filter: Option<ListFilter>,
    /// Bytes of an event not yet complete.
    pending: BytesMut,
}

/// Where the first event in `bytes` ends (after its blank line), if it does.
fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `event` with its data filtered when it is the answer; `None` when it is not.
fn rewrite(event: &[u8], filter: &ListFilter) -> Option<Bytes> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data = Vec::new();
    let mut others = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("data:") {
            Some(value) => data.push(value.strip_prefix(' ').unwrap_or(value)),
            None if line.is_empty() => {}
            None => others.push(line),
        }
    }
    let mut message: Value = serde_json::from_str(&data.join("\n")).ok()?;
    if !filter.filter(&mut message) {
        return None;
    }
    let mut out = String::new();
    for line in others {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&message.to_string());
    out.push_str("\n\n");
    Some(Bytes::from(out))
}

impl Stream for SseFilter {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(filter) = &this.filter else {
                if !this.pending.is_empty() {
                    return Poll::Ready(Some(Ok(this.pending.split().freeze())));
                }
                return this.inner.as_mut().poll_next(cx);
            };
            // Complete events first: the answer filtered, the others as they came.
            if let Some(end) = event_end(&this.pending) {
                let event = this.pending.split_to(end).freeze();
                if let Some(filtered) = rewrite(&event, filter) {
                    this.filter = None;
                    return Poll::Ready(Some(Ok(filtered)));
                }
                return Poll::Ready(Some(Ok(event)));
            }
            if this.pending.len() > MAX_LIST_ANSWER {
                this.filter = None;
                this.pending.clear();
                let error = std::io::Error::other("a list answer too large to filter was cut off");
                return Poll::Ready(Some(Err(error)));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.pending.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                // An unfinished last event: it cannot be the answer, pass it.
                Poll::Ready(None) => {
                    this.filter = None;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Apps, Rule};

    fn filter() -> ListFilter {
        let policy = Policy::new()
            .with(Kind::Tool, "write", Rule { scopes: vec!["w".into()], apps: vec![] })
            .with(Kind::Tool, "admin", Rule { scopes: vec![], apps: vec![Apps::FirstParty] });
        let app = AppInfo { name: "Agent".into(), third_party: true };
        let asker = Asker { scopes: vec!["r".into()], client_id: Some("agent".into()), app: Some(app) };
        ListFilter { policy: Arc::new(policy), kind: Kind::Tool, id: json!(2), asker }
    }

    fn tools() -> Value {
        json!({ "jsonrpc": "2.0", "id": 2, "result": { "tools": [
            { "name": "read", "x": 1 }, { "name": "write" }, { "name": "admin" }, { "nameless": true }
        ], "_meta": { "kept": true } } })
    }

    #[test]
    fn a_list_answer_keeps_only_what_the_caller_may_use_and_everything_else() {
        let mut answer = tools();
        assert!(filter().filter(&mut answer));
        assert_eq!(answer["result"]["tools"], json!([{ "name": "read", "x": 1 }]));
        assert_eq!(answer["result"]["_meta"], json!({ "kept": true }));
        let mut other = json!({ "jsonrpc": "2.0", "id": 3, "result": { "tools": [{ "name": "write" }] } });
        assert!(!filter().filter(&mut other), "another request's answer");
        assert_eq!(other["result"]["tools"][0]["name"], "write");
    }

    #[tokio::test]
    async fn in_an_sse_stream_only_the_answer_is_rewritten_however_it_is_cut() {
        let events = format!(
            "id: 1\r\ndata: \r\n\r\nevent: message\nid: 2\ndata: {}\n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"n\"}}\n\n",
            tools()
        );
        for cut in [1, 7, 50, events.len()] {
            let pieces: Vec<Result<Bytes, std::io::Error>> =
                events.as_bytes().chunks(cut).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            let stream = SseFilter {
                inner: futures_util::stream::iter(pieces).boxed(),
                filter: Some(filter()),
                pending: BytesMut::new(),
            };
            let out: Vec<Bytes> = stream.try_collect().await.unwrap();
            let text = String::from_utf8(out.concat()).unwrap();
            assert!(
                text.starts_with("id: 1\r\ndata: \r\n\r\nevent: message\nid: 2\ndata: {"),
                "{cut}: {text}"
            );
            assert!(text.ends_with("\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\n"), "{cut}: {text}");
            let answer = text.lines().find(|l| l.contains("\"tools\"")).expect("the answer passed");
            assert!(!answer.contains("write") && answer.contains("read"), "{cut}: {text}");
        }
    }

    #[test]
    fn events_end_at_the_first_blank_line_of_either_kind() {
        assert_eq!(event_end(b"data: a\n\ndata: b\n\n"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
    }
}
