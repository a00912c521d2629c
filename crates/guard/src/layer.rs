//! The tower layer: every request through it carries a verified token, or is
//! answered by the guard without reaching the service.
//!
//! The order of checks is fixed, cheapest first, and nothing touches the network
//! before the header has been found well-formed:
//!
//! 1. `OPTIONS` passes untouched: CORS preflights never carry credentials.
//! 2. The token comes from the `Authorization: Bearer` header only.
//! 3. The verifier checks it (signature or issuer, then `iss`, `aud`, `exp`/`nbf`).
//! 4. The scopes every request needs.
//! 5. The session, when the request names one, must belong to the same subject.
//! 6. For `tools/call`, the scopes of the tools called (reading the body, bounded).
//!
//! The service then sees the request with an [`AuthInfo`] in its extensions.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use tower::{Layer, Service};

use crate::bearer::bearer_token;
use crate::guard::Guard;
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
            let (request, who) = match guard.admit(request).await {
                Ok(admitted) => admitted,
                Err(error) => return Ok(guard.refuse(&error)),
            };
            let response = inner.call(request).await?.map(Body::new);
            Ok(guard.seal_session(response, who.as_ref()))
        })
    }
}

impl Guard {
    /// Runs the checks; on success, the request for the inner service and the
    /// caller's identity (none for a CORS preflight).
    async fn admit<B>(&self, request: Request<B>) -> Result<(Request<Body>, Option<AuthInfo>), AuthError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let shared = &self.shared;
        if request.method() == Method::OPTIONS {
            return Ok((request.map(Body::new), None));
        }
        let (mut parts, body) = request.into_parts();
        let token = bearer_token(&parts.headers, parts.uri.query(), shared.max_header_bytes)?;
        let who = shared.verifier.verify(token).await?;
        if !who.has_scopes(&shared.required_scopes) {
            return Err(AuthError::InsufficientScope { required: shared.required_scopes.clone() });
        }

        if let (Some(sessions), Some(presented)) = (&shared.sessions, parts.headers.get(SESSION_HEADER)) {
            let presented = presented.to_str().map_err(|_| AuthError::ForeignSession)?;
            let own = sessions.open(presented, &who).ok_or(AuthError::ForeignSession)?;
            let own = HeaderValue::from_str(own).map_err(|_| AuthError::ForeignSession)?;
            parts.headers.insert(SESSION_HEADER, own);
        }

        let body = if shared.tool_scopes.is_empty() || parts.method != Method::POST {
            Body::new(body)
        } else {
            let bytes = Limited::new(body, shared.max_body_bytes)
                .collect()
                .await
                .map_err(|_| AuthError::BodyTooLarge(shared.max_body_bytes))?
                .to_bytes();
            if let Some(required) = shared.tool_scopes.required_for(&bytes, &shared.required_scopes)
                && !who.has_scopes(&required)
            {
                return Err(AuthError::InsufficientScope { required });
            }
            Body::from(bytes)
        };

        parts.extensions.insert(who.clone());
        Ok((Request::from_parts(parts, body), Some(who)))
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
    fn seal_session(&self, mut response: Response<Body>, who: Option<&AuthInfo>) -> Response<Body> {
        if let (Some(sessions), Some(who)) = (&self.shared.sessions, who)
            && let Some(id) = response.headers().get(SESSION_HEADER)
            && let Ok(id) = id.to_str()
            && let Ok(sealed) = HeaderValue::try_from(sessions.seal(id, who))
        {
            response.headers_mut().insert(SESSION_HEADER, sealed);
        }
        response
    }
}
