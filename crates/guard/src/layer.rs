//! The tower layer: every request through it carries a verified token, or is
//! answered by the guard without reaching the service.
//!
//! The order of checks is fixed, cheapest first, and nothing touches the network
//! before the header has been found well-formed:
//!
//! 1. The token comes from the `Authorization: Bearer` header only.
//! 2. The verifier checks it (signature or issuer, then `iss`, `aud`, `exp`/`nbf`).
//! 3. The scopes every request needs.
//! 4. The session, when the request names one, must belong to the same subject.
//! 5. For `tools/call`, the scopes of the tools called (reading the body, bounded).
//!
//! The service then sees the request with an [`AuthInfo`] in its extensions and
//! without the `Authorization` header: the token is never passed on.
//!
//! Every method is checked, `OPTIONS` included: a CORS layer for browser clients
//! belongs *outside* the guard, where it answers preflights before they get here.
//!
//! A request refused on its head keeps its HTTP/1 connection for the client's
//! next request (after a 401, the metadata lookup): the guard reads up to
//! 64 KiB of its body before answering, and answers a larger one with
//! `Connection: close`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Version, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

use crate::bearer::bearer_token;
use crate::guard::{DEFAULT_MAX_HEADER_BYTES, Guard};
use crate::session::SESSION_HEADER;
use crate::{AuthError, AuthInfo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`tower::Layer`] that puts a [`Guard`] in front of a service. Made by
/// [`Guard::layer`].
///
/// ```
/// use axum::{Router, routing::post};
/// use agentgate_guard::{AuthInfo, Guard};
///
/// async fn handler(axum::Extension(who): axum::Extension<AuthInfo>) -> String {
///     format!("hello {}", who.subject)
/// }
///
/// let guard = Guard::builder("https://as.example", "https://api.example/mcp").build().unwrap();
/// let app: Router = Router::new()
///     .route("/mcp", post(handler).layer(guard.layer()))
///     .merge(guard.metadata_router());
/// ```
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
}

impl GuardLayer {
    pub(crate) fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { guard: self.guard.clone(), inner }
    }
}

/// The service made by [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    guard: Guard,
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The inner service was driven to readiness; keep that one and leave a
        // clone behind for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let who = match guard.admit(&mut parts).await {
                Ok(who) => who,
                Err(error) => return Ok(guard.refuse_before_body(&error, parts.version, body).await),
            };
            let body = if guard.reads_body(&parts) {
                let bytes = match guard.read_body(body).await {
                    Ok(bytes) => bytes,
                    // Read in part, the body leaves the connection unusable.
                    Err(error) => return Ok(closing(guard.refuse(&error), parts.version)),
                };
                if let Err(error) = guard.check_tool_scopes(&bytes, &who) {
                    return Ok(guard.refuse(&error));
                }
                Body::from(bytes)
            } else {
                Body::new(body)
            };
            parts.extensions.insert(who.clone());
            let response = inner.call(Request::from_parts(parts, body)).await?.map(Body::new);
            Ok(guard.seal_session(response, &who))
        })
    }
}

/// The most of an unread body a refusal reads, to keep the connection.
const DRAINED_BYTES: usize = 64 * 1024;

/// `response`, saying that the connection closes after it.
///
/// hyper keeps an HTTP/1 connection only once the request's body has been
/// read to its end; otherwise it closes the connection after the answer, and
/// does not say so in it. A client that then sends its next request on that
/// connection (after a 401: the metadata lookup) sees the server hang up.
/// RFC 9112 §9.6: a server that closes after a response says so in it. HTTP/2
/// streams end on their own, and forbid the header.
fn closing(mut response: Response<Body>, version: Version) -> Response<Body> {
    if version < Version::HTTP_2 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

impl Guard {
    /// Runs the checks on the request's head; on success, the caller's
    /// identity. The token is taken out of the headers.
    async fn admit(&self, parts: &mut http::request::Parts) -> Result<AuthInfo, AuthError> {
        let shared = &self.shared;
        let token = bearer_token(&parts.headers, parts.uri.query(), DEFAULT_MAX_HEADER_BYTES)?;
        let who = self.authenticate(token).await?;
        if let Some(people) = &shared.people {
            parts.extensions.insert(crate::person::PersonLookup::new(people.clone(), token));
        }
        // The token stops here: the service gets the identity, never the
        // credential, so it cannot log it or pass it on to another service.
        parts.headers.remove(header::AUTHORIZATION);

        if let (Some(sessions), Some(presented)) = (&shared.sessions, parts.headers.get(SESSION_HEADER)) {
            let presented = presented.to_str().map_err(|_| AuthError::ForeignSession)?;
            let own = sessions.open(presented, &who).ok_or(AuthError::ForeignSession)?;
            let own = HeaderValue::from_str(own).map_err(|_| AuthError::ForeignSession)?;
            parts.headers.insert(SESSION_HEADER, own);
        }
        // An encoded body cannot be read for its tool names: refused rather
        // than let through unchecked.
        if self.reads_body(parts)
            && parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v != "identity")
        {
            return Err(AuthError::InvalidRequest("encoded request bodies are not accepted"));
        }
        Ok(who)
    }

    /// Whether the body must be read for the scopes of the tools it calls.
    fn reads_body(&self, parts: &http::request::Parts) -> bool {
        !self.shared.tool_scopes.is_empty() && parts.method == Method::POST
    }

    /// Reads a body whose tool names must be known, within the size bound.
    async fn read_body<B>(&self, body: B) -> Result<Bytes, AuthError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = self.shared.max_body_bytes;
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(AuthError::BodyTooLarge(limit)),
            Err(_) => Err(AuthError::InvalidRequest("the request body could not be read")),
        }
    }

    /// The scopes the tools called in `body` need, which the caller must have.
    fn check_tool_scopes(&self, body: &[u8], who: &AuthInfo) -> Result<(), AuthError> {
        let shared = &self.shared;
        let required = shared
            .tool_scopes
            .required_for(body, &shared.required_scopes)
            .map_err(|_| AuthError::InvalidRequest("the body is not a JSON-RPC message"))?;
        match required {
            Some(required) if !who.has_scopes(&required) => Err(AuthError::InsufficientScope { required }),
            _ => Ok(()),
        }
    }

    /// The answer to a request refused on its head, its body not read yet. A
    /// small body is read first (the client is sending it anyway), so that the
    /// connection can serve the client's next request, as Go's server does; a
    /// larger one, or one that cannot be read, closes it (see [`closing`]).
    async fn refuse_before_body<B>(&self, error: &AuthError, version: Version, body: B) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let refusal = self.refuse(error);
        if version >= Version::HTTP_2 || body.is_end_stream() {
            return refusal;
        }
        match Limited::new(body, DRAINED_BYTES).collect().await {
            Ok(_) => refusal,
            Err(_) => closing(refusal, version),
        }
    }

    /// The answer to a refused request. Expected refusals are not errors of the
    /// server and are logged at debug level; an unreachable issuer is.
    fn refuse(&self, error: &AuthError) -> Response<Body> {
        match error {
            AuthError::IssuerUnavailable(detail) => {
                tracing::warn!(%detail, "could not verify a token: the authorization server is unavailable")
            }
            other => tracing::debug!(refusal = %other, "request refused"),
        }
        self.shared.challenger.respond(error)
    }

    /// Seals a session id the service hands out, so only its owner can use it.
    fn seal_session(&self, mut response: Response<Body>, who: &AuthInfo) -> Response<Body> {
        if let Some(sessions) = &self.shared.sessions
            && let Some(id) = response.headers().get(SESSION_HEADER)
            && let Ok(id) = id.to_str()
            && let Ok(sealed) = HeaderValue::try_from(sessions.seal(id, who))
        {
            response.headers_mut().insert(SESSION_HEADER, sealed);
        }
        response
    }
}
