//! An upstream MCP server over Streamable HTTP: the gateway forwards each
//! request as it came (method, body, MCP headers) and streams the answer back
//! as it goes (JSON, or an SSE stream of any length).
//!
//! A request body is read whole within the route's bound (an MCP message is
//! small, and it then goes on with a `Content-Length`); answers are never
//! buffered: they stream through, so an SSE stream that stays open for hours
//! (the GET stream of server-initiated messages) costs a connection, not
//! memory, and a client that stops reading stops the upstream's writes
//! through TCP's own backpressure — the gateway's memory stays flat.
//!
//! The route's timeout bounds the upstream's silence: the wait for its answer
//! to begin, then, within the answer to a POST, the wait for each next part
//! of it. A tool that works for minutes and says so (progress notifications)
//! is let be; one that went quiet ends with a 504-worded JSON-RPC error on
//! its SSE stream, so the agent never hangs. A GET stream may be silent for
//! as long as the server has nothing to say.
//!
//! Sessions and resumption need no state here: the upstream's
//! `Mcp-Session-Id` goes back to the client sealed to the person by the guard
//! in front (see `agentgate_guard`), and comes back opened; `Last-Event-ID`
//! passes as it is, inside a session that only its person can name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgate_guard::AuthInfo;
use axum::body::Body;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::time::{Instant, Sleep};
use url::Url;

use crate::fault::Fault;
use crate::headers;
use crate::http_client::{Client, ClientError};
use crate::identity::Identity;
use crate::provider_token::{ProviderToken, ProviderTokens};

/// The bound on a request body, unless the route sets its own.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long the upstream may stay silent (before its answer begins, and
/// between the parts of an answer to a POST), unless the route says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Streamable HTTP upstream, as a tower service to put behind the guard.
///
/// ```
/// use agentgate_gateway::HttpUpstream;
/// use tower::Layer;
///
/// let guard = agentgate_guard::Guard::builder("https://as.example", "https://gw.example/memory")
///     .build()
///     .unwrap();
/// let upstream = HttpUpstream::new("memory", "http://127.0.0.1:9000/mcp".parse().unwrap());
/// let app: axum::Router = axum::Router::new()
///     .route_service("/memory", guard.layer().layer(upstream))
///     .merge(guard.metadata_router());
/// ```
#[derive(Clone, Debug)]
pub struct HttpUpstream {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    route: Arc<str>,
    url: Url,
    transport: Transport,
    timeout: Duration,
    max_body_bytes: usize,
    identity: Identity,
    provider_token: Option<ProviderToken>,
}

impl HttpUpstream {
    /// The upstream at `url`, for the route named `route` (in errors and logs).
    pub fn new(route: impl Into<String>, url: Url) -> Self {
        Self::with_limits(route, url, DEFAULT_TIMEOUT, DEFAULT_MAX_BODY_BYTES)
    }

    /// The same, with the route's own timeout and body bound.
    pub fn with_limits(route: impl Into<String>, url: Url, timeout: Duration, max_body_bytes: usize) -> Self {
        let transport = Transport::for_url(&url, timeout);
        let route = Arc::from(route.into());
        let (identity, provider_token) = (Identity::None, None);
        Self {
            inner: Arc::new(Inner {
                route,
                url,
                transport,
                timeout,
                max_body_bytes,
                identity,
                provider_token,
            }),
        }
    }

    /// The same, telling the upstream who is calling as `identity` says.
    ///
    /// ```
    /// use agentgate_gateway::{HttpUpstream, Identity};
    ///
    /// // An upstream on loopback that reads `X-Agentgate-Sub`.
    /// let upstream = HttpUpstream::new("notes", "http://127.0.0.1:8000/mcp".parse().unwrap())
    ///     .with_identity(Identity::Headers);
    /// ```
    pub fn with_identity(self, identity: Identity) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner::clone(&shared));
        Self { inner: Arc::new(Inner { identity, ..inner }) }
    }

    /// The same, handing the upstream the person's access token at their
    /// identity provider as `X-Agentgate-Provider-Token` (see
    /// [`provider_token`](crate::provider_token)).
    pub fn with_provider_token(self, tokens: Arc<dyn ProviderTokens>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner::clone(&shared));
        Self { inner: Arc::new(Inner { provider_token: Some(ProviderToken(tokens)), ..inner }) }
    }

    /// The upstream's URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }
}

crate::fault::upstream_service!(HttpUpstream, forward);

/// How requests reach the upstream: plain HTTP, over TCP or a Unix socket
/// (`http+unix://`), through the gateway's own HTTP/1.1 client (see
/// `http_client`: fewer writes and wake-ups per call), HTTPS through reqwest
/// and its certificate checks.
#[derive(Debug, Clone)]
enum Transport {
    Plain(Arc<Client>),
    Tls(reqwest::Client),
}

impl Transport {
    fn for_url(url: &Url, connect_timeout: Duration) -> Self {
        if let Some(socket) = unix_socket(url) {
            return Self::Plain(Arc::new(Client::unix(socket, connect_timeout)));
        }
        if url.scheme() == "http"
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            return Self::Plain(Arc::new(Client::new(host, port, connect_timeout)));
        }
        let client = reqwest::Client::builder()
            // The upstream's redirects are its own business: a proxy passes them on.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client with rustls builds");
        Self::Tls(client)
    }
}

/// The socket of an `http+unix://` URL: its host, percent-decoded
/// (`http+unix://%2Frun%2Fnotes.sock/mcp` is `/run/notes.sock`, path `/mcp`);
/// `None` for any other URL, and for a path that is not absolute (it would
/// depend on the directory the gateway started in).
///
/// ```
/// use agentgate_gateway::unix_socket;
///
/// let url = "http+unix://%2Frun%2Fnotes.sock/mcp".parse().unwrap();
/// assert_eq!(unix_socket(&url), Some("/run/notes.sock".into()));
/// assert_eq!(unix_socket(&"http://127.0.0.1:8000/mcp".parse().unwrap()), None);
/// assert_eq!(unix_socket(&"http+unix://notes.sock/mcp".parse().unwrap()), None);
/// ```
pub fn unix_socket(url: &Url) -> Option<std::path::PathBuf> {
    if url.scheme() != "http+unix" {
        return None;
    }
    let host = url.host_str().filter(|host| !host.is_empty())?;
    let path = percent_encoding::percent_decode_str(host).decode_utf8().ok()?;
    let path = std::path::PathBuf::from(path.as_ref());
    path.is_absolute().then_some(path)
}

/// The upstream's answer, before its headers are sorted for the client.
type Upstream = (StatusCode, HeaderMap, Body);

impl Inner {
    async fn forward(&self, request: Request<Body>) -> Result<Response<Body>, Fault> {
        let (parts, body) = request.into_parts();
        let limit = self.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(Fault::TooLarge { limit });
        }
        let mut url = self.url.clone();
        if let Some(query) = parts.uri.query() {
            url.set_query(Some(query));
        }
        let mut to_upstream = headers::to_upstream(&parts.headers);
        let caller = parts.extensions.get::<AuthInfo>();
        self.identity.add(&self.route, caller, &mut to_upstream)?;
        if let Some(provider_token) = &self.provider_token {
            provider_token.add(&self.route, caller, &mut to_upstream, self.timeout).await?;
        }
        let with_body =
            declared.is_some() || !matches!(parts.method, Method::GET | Method::DELETE | Method::HEAD);
        let sent =
            if with_body { crate::fault::read_body(body, limit, self.timeout).await? } else { Bytes::new() };
        let is_post = parts.method == Method::POST;
        let exchange = async {
            match &self.transport {
                Transport::Plain(client) => {
                    self.send_plain(client, parts.method, &url, to_upstream, sent.clone()).await
                }
                Transport::Tls(client) => {
                    self.send_tls(client, parts.method, url, to_upstream, sent.clone(), with_body).await
                }
            }
        };
        let (status, from_upstream, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(Fault::Timeout { route: self.route.to_string(), after: self.timeout }),
            Ok(answer) => answer?,
        };
        let body = if is_post {
            let sse = from_upstream.get(header::CONTENT_TYPE).is_some_and(|v| {
                v.as_bytes().get(..17).is_some_and(|media| media.eq_ignore_ascii_case(b"text/event-stream"))
            });
            Body::new(Quiet::new(body, self.route.clone(), self.timeout, sse.then_some(sent)))
        } else {
            body
        };
        let mut response = Response::builder().status(status);
        *response.headers_mut().expect("a fresh builder") = headers::to_client(&from_upstream);
        Ok(response.body(body).expect("status and headers came from a valid answer"))
    }

    async fn send_plain(
        &self,
        client: &Arc<Client>,
        method: Method,
        url: &Url,
        to_upstream: HeaderMap,
        body: Bytes,
    ) -> Result<Upstream, Fault> {
        // HTTP/1.1 wants the origin form on the request line: path and query.
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut request = Request::builder().method(method).uri(target);
        *request.headers_mut().expect("a fresh builder") = to_upstream;
        let request = request.body(Full::new(body)).map_err(|error| Fault::Broken {
            route: self.route.to_string(),
            detail: format!("the upstream's URL makes no request target ({error})"),
        })?;
        let answer = client.send(request).await.map_err(|error| self.fault_of_plain(&error))?;
        let (parts, body) = answer.into_parts();
        let route = self.route.clone();
        let body = body.map_err(move |error| {
            tracing::debug!(route = %route, error = %agentgate_guard::error_chain(&error), "the upstream's answer broke off");
            error
        });
        Ok((parts.status, parts.headers, Body::new(body)))
    }

    async fn send_tls(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: Url,
        to_upstream: HeaderMap,
        body: Bytes,
        with_body: bool,
    ) -> Result<Upstream, Fault> {
        let mut outgoing = client.request(method, url).headers(to_upstream);
        if with_body {
            outgoing = outgoing.body(body);
        }
        let answer = outgoing.send().await.map_err(|error| self.fault_of(&error))?;
        let (status, from_upstream) = (answer.status(), answer.headers().clone());
        let route = self.route.clone();
        let stream = answer.bytes_stream().map_err(move |error| {
            tracing::debug!(route = %route, error = %agentgate_guard::error_chain(&error), "the upstream's answer broke off");
            error
        });
        Ok((status, from_upstream, Body::from_stream(stream)))
    }

    fn fault_of_plain(&self, error: &ClientError) -> Fault {
        let route = self.route.to_string();
        // The error names no URL (unlike reqwest's), so all of it is shown.
        let detail = agentgate_guard::error_chain(error);
        tracing::debug!(route = %route, error = %detail, "upstream request failed");
        match error {
            ClientError::Connect(_) => Fault::Unreachable { route, detail },
            ClientError::ConnectTimeout(_) => Fault::Timeout { route, after: self.timeout },
            ClientError::Http(_) => Fault::Broken { route, detail },
        }
    }

    fn fault_of(&self, error: &reqwest::Error) -> Fault {
        let route = self.route.to_string();
        // The causes, not the error itself: its text names the upstream's
        // URL, which is the operator's to know, not the agent's.
        let detail = match std::error::Error::source(error) {
            Some(cause) => agentgate_guard::error_chain(cause),
            None => "no answer".to_owned(),
        };
        tracing::debug!(route = %route, error = %agentgate_guard::error_chain(error), "upstream request failed");
        if error.is_timeout() {
            Fault::Timeout { route, after: self.timeout }
        } else if error.is_connect() {
            Fault::Unreachable { route, detail }
        } else {
            Fault::Broken { route, detail }
        }
    }
}

/// The body of an answer to a POST, which may not stay silent longer than the
/// route's timeout. An SSE answer that goes quiet ends with one more event: a
/// JSON-RPC error for each request of the POST (`request`, the body sent),
/// so the agent's call fails in words instead of waiting forever. Any other
/// answer ends with an error, which breaks the connection off.
struct Quiet {
    inner: Body,
    route: Arc<str>,
    timeout: Duration,
    /// Armed at the first wait; pushed back by every part that arrives.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The POST's body, when the answer is SSE; taken when the error is sent.
    request: Option<Bytes>,
    /// Whether what went out so far ends between two SSE events.
    at_boundary: bool,
    done: bool,
}

impl Quiet {
    fn new(inner: Body, route: Arc<str>, timeout: Duration, request: Option<Bytes>) -> Self {
        Self { inner, route, timeout, sleep: None, request, at_boundary: true, done: false }
    }

    fn fault(&self) -> Fault {
        Fault::Timeout { route: self.route.to_string(), after: self.timeout }
    }

    /// The last event: the timeout's error for every request in `request`
    /// (one message or a batch), as MCP's SSE answers carry them.
    fn last_event(&self, request: &[u8]) -> Bytes {
        let ids: Vec<Value> = match serde_json::from_slice::<Value>(request) {
            Ok(Value::Array(batch)) => batch.iter().filter_map(request_id).collect(),
            Ok(message) => request_id(&message).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        // An event the upstream left half-written is ended first, so that the
        // error is an event of its own.
        let mut event = if self.at_boundary { String::new() } else { "\n\n".to_owned() };
        for id in ids {
            let error =
                serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": self.fault().error_object() });
            event.push_str(&format!("event: message\ndata: {error}\n\n"));
        }
        Bytes::from(event)
    }
}

/// The id of a request (a message with a method and an id), if it is one.
fn request_id(message: &Value) -> Option<Value> {
    message.get("method")?;
    message.get("id").filter(|id| !id.is_null()).cloned()
}

impl http_body::Body for Quiet {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(sleep) = &mut this.sleep {
                    sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()).and_then(Frame::data_ref)
                    && !data.is_empty()
                {
                    this.at_boundary = data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n");
                }
                this.done = frame.is_none();
                return Poll::Ready(frame);
            }
            Poll::Pending => {}
        }
        let timeout = this.timeout;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.done = true;
        let fault = this.fault();
        tracing::warn!(reason = fault.reason(), "{fault} (the answer had begun)");
        match this.request.take() {
            Some(request) => Poll::Ready(Some(Ok(Frame::data(this.last_event(&request))))),
            None => Poll::Ready(Some(Err(axum::Error::new(fault)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // An SSE answer may gain the last event; any other keeps its size.
        if self.request.is_some() { http_body::SizeHint::default() } else { self.inner.size_hint() }
    }
}
