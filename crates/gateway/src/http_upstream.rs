//! An upstream MCP server over Streamable HTTP: the gateway forwards each
//! request as it came (method, body, MCP headers) and streams the answer back
//! as it goes (JSON, or an SSE stream of any length).
//!
//! Nothing is buffered whole: bodies flow through in both directions, so an
//! SSE stream that stays open for hours (the GET stream of server-initiated
//! messages) costs a connection, not memory, and a client that stops reading
//! stops the upstream's writes through TCP's own backpressure — the gateway's
//! memory stays flat. The one bound on time is the wait for the upstream's
//! answer to begin; once it streams, the stream is the client's and the
//! upstream's business.
//!
//! Sessions and resumption need no state here: the upstream's
//! `Mcp-Session-Id` goes back to the client sealed to the person by the guard
//! in front (see `agentgate_guard`), and comes back opened; `Last-Event-ID`
//! passes as it is, inside a session that only its person can name.

use std::sync::Arc;
use std::time::Duration;

use agentgate_guard::AuthInfo;
use axum::body::Body;
use futures_util::TryStreamExt;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use url::Url;

use crate::fault::Fault;
use crate::headers;
use crate::identity::Identity;

/// The bound on a request body, unless the route sets its own.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long the upstream may take to begin its answer, unless the route says.
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
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: usize,
    identity: Identity,
}

impl HttpUpstream {
    /// The upstream at `url`, for the route named `route` (in errors and logs).
    pub fn new(route: impl Into<String>, url: Url) -> Self {
        Self::with_limits(route, url, DEFAULT_TIMEOUT, DEFAULT_MAX_BODY_BYTES)
    }

    /// The same, with the route's own timeout and body bound.
    pub fn with_limits(route: impl Into<String>, url: Url, timeout: Duration, max_body_bytes: usize) -> Self {
        let client = reqwest::Client::builder()
            // The upstream's redirects are its own business: a proxy passes them on.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client with rustls builds");
        let route = Arc::from(route.into());
        let identity = Identity::None;
        Self { inner: Arc::new(Inner { route, url, client, timeout, max_body_bytes, identity }) }
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

    /// The upstream's URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }
}

crate::fault::upstream_service!(HttpUpstream, forward);

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
        self.identity.add(&self.route, parts.extensions.get::<AuthInfo>(), &mut to_upstream)?;
        let mut outgoing = self.client.request(parts.method.clone(), url).headers(to_upstream);
        if declared.is_some() || !matches!(parts.method, Method::GET | Method::DELETE | Method::HEAD) {
            let body = Limited::new(body, limit).into_data_stream();
            outgoing = outgoing.body(reqwest::Body::wrap_stream(body));
        }
        let answer = match tokio::time::timeout(self.timeout, outgoing.send()).await {
            Err(_) => return Err(Fault::Timeout { route: self.route.to_string(), after: self.timeout }),
            Ok(Err(error)) => return Err(self.fault_of(&error)),
            Ok(Ok(answer)) => answer,
        };
        let mut response = Response::builder().status(answer.status());
        *response.headers_mut().expect("a fresh builder") = headers::to_client(answer.headers());
        let route = self.route.clone();
        let stream = answer.bytes_stream().map_err(move |error| {
            tracing::debug!(route = %route, error = %agentgate_guard::error_chain(&error), "the upstream's answer broke off");
            error
        });
        Ok(response.body(Body::from_stream(stream)).expect("status and headers came from a valid answer"))
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
        } else if agentgate_guard::caused_by::<LengthLimitError>(error) {
            Fault::TooLarge { limit: self.max_body_bytes }
        } else if error.is_connect() {
            Fault::Unreachable { route, detail }
        } else {
            Fault::Broken { route, detail }
        }
    }
}
