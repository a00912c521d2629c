//! What the agent gets when the upstream fails: an HTTP status that says
//! whose fault it is (502 the upstream broke, 504 it was too slow, 413 the
//! request was too big, 503 no room for another process, 500 the route
//! cannot say who is calling, 403 the person must sign in at their identity
//! provider again), and a JSON-RPC
//! error in words that name the route and say what to do next.
//!
//! The body is a JSON-RPC error because that is what an MCP client reads: the
//! TypeScript and Python SDKs put the body of a failed POST into the error
//! they raise, so the person sees the sentence, not only a number.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// JSON-RPC's "internal error": the request was fine, the server side failed.
const INTERNAL_ERROR: i64 = -32603;

/// A failure of the route's upstream, or of the request on its way to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Nothing answered at the upstream's address, or the process would not start.
    #[error(
        "the MCP server behind route {route} cannot be reached ({detail}); its operator should check that it runs"
    )]
    Unreachable {
        /// The route's name.
        route: String,
        /// What failed, without secrets.
        detail: String,
    },
    /// The upstream did not answer within the route's timeout.
    #[error(
        "the MCP server behind route {route} did not answer within {} s; try again later, or ask its operator to raise the route's timeout",
        .after.as_secs_f64()
    )]
    Timeout {
        /// The route's name.
        route: String,
        /// The timeout.
        after: Duration,
    },
    /// The upstream answered with something that is not MCP, or broke off.
    #[error("the MCP server behind route {route} failed: {detail}")]
    Broken {
        /// The route's name.
        route: String,
        /// What went wrong.
        detail: String,
    },
    /// The request body is larger than the route accepts.
    #[error("the request body is larger than the {limit} bytes this route accepts")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The agent stopped sending the request body half-way.
    #[error("the request body broke off before its end; send the request again")]
    BodyBrokeOff,
    /// The request body did not arrive whole within the route's timeout.
    #[error("the request body did not arrive whole within {} s; send it again, at once", .after.as_secs_f64())]
    BodyTooSlow {
        /// The timeout.
        after: Duration,
    },
    /// Every process the route may start is in use.
    #[error(
        "route {route} already runs its {limit} processes, one per person; try again when someone's session ends"
    )]
    Busy {
        /// The route's name.
        route: String,
        /// The bound on processes.
        limit: usize,
    },
    /// The route is to tell its upstream who is calling, and cannot.
    #[error(
        "route {route} cannot tell its MCP server who is calling ({detail}); nothing was sent to it, and its operator should check the route's identity setting"
    )]
    Identity {
        /// The route's name.
        route: String,
        /// What is missing or wrong.
        detail: String,
    },
    /// The route hands its upstream the person's token at their identity
    /// provider, and none is kept for them.
    #[error("route {route} acts for you at your identity provider, and cannot yet: {detail}")]
    ProviderSignIn {
        /// The route's name.
        route: String,
        /// What the person does about it.
        detail: String,
    },
    /// The person's identity provider did not give their token.
    #[error(
        "route {route} could not get your token from your identity provider ({detail}); nothing was sent to its MCP server; try again later"
    )]
    ProviderFailed {
        /// The route's name.
        route: String,
        /// What failed, without secrets.
        detail: String,
    },
}

impl Fault {
    /// The HTTP status that says whose fault it is.
    pub fn status(&self) -> StatusCode {
        match self {
            Fault::Unreachable { .. } | Fault::Broken { .. } => StatusCode::BAD_GATEWAY,
            Fault::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Fault::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Fault::BodyBrokeOff => StatusCode::BAD_REQUEST,
            Fault::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            Fault::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Fault::Identity { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Fault::ProviderSignIn { .. } => StatusCode::FORBIDDEN,
            Fault::ProviderFailed { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// A short name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Fault::Unreachable { .. } => "upstream_unreachable",
            Fault::Timeout { .. } => "upstream_timeout",
            Fault::Broken { .. } => "upstream_failed",
            Fault::TooLarge { .. } => "body_too_large",
            Fault::BodyBrokeOff => "body_broke_off",
            Fault::BodyTooSlow { .. } => "body_too_slow",
            Fault::Busy { .. } => "process_limit",
            Fault::Identity { .. } => "identity_unavailable",
            Fault::ProviderSignIn { .. } => "provider_sign_in_needed",
            Fault::ProviderFailed { .. } => "provider_failed",
        }
    }

    /// Whether the request, not the upstream, is at fault.
    pub fn is_the_requests(&self) -> bool {
        matches!(self, Fault::TooLarge { .. } | Fault::BodyBrokeOff | Fault::BodyTooSlow { .. })
    }

    /// The JSON-RPC error object.
    pub fn error_object(&self) -> Value {
        json!({ "code": INTERNAL_ERROR, "message": self.to_string(), "data": { "reason": self.reason() } })
    }

    /// The whole answer, a JSON-RPC error for the request `id` (null when the
    /// request's id is not known).
    pub fn response(&self, id: Option<&Value>) -> Response<Body> {
        let mut response = jsonrpc_error(self.status(), id, self.error_object());
        if matches!(self, Fault::Busy { .. }) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// An answer holding one JSON-RPC error object, for the request `id` (null
/// when it is not known).
pub(crate) fn jsonrpc_error(status: StatusCode, id: Option<&Value>, error: Value) -> Response<Body> {
    let body = json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request body read whole, within `limit` bytes and `timeout`: the one
/// rule for every route that reads bodies (413 past the bound, 400 when it
/// breaks off, 408 when it trickles in too slowly to be read in time).
pub(crate) async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<bytes::Bytes, Fault> {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Fault::BodyTooSlow { after: timeout }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(Fault::TooLarge { limit }),
        Ok(Err(_)) => Err(Fault::BodyBrokeOff),
    }
}

/// The future a route's service returns: its answer, never an error.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Runs a route's `work`; a fault becomes its answer, a line in the log, and
/// the reason in the request's audit entry (`slot`).
pub(crate) fn answer<F>(slot: Option<crate::audit::Slot>, work: F) -> Answer
where
    F: Future<Output = Result<Response<Body>, Fault>> + Send + 'static,
{
    Box::pin(async move {
        Ok(work.await.unwrap_or_else(|fault| {
            tracing::warn!(reason = fault.reason(), "{fault}");
            if let Some(slot) = slot {
                let decision = if fault.is_the_requests() { "refused" } else { "failed" };
                slot.decided(decision, fault.reason(), &fault.to_string());
            }
            fault.response(None)
        }))
    })
}

/// The tower service of an upstream type whose `inner` has an async
/// `$method(request) -> Result<Response, Fault>`: one definition for all.
macro_rules! upstream_service {
    ($upstream:ty, $method:ident) => {
        impl tower::Service<http::Request<axum::body::Body>> for $upstream {
            type Response = http::Response<axum::body::Body>;
            type Error = std::convert::Infallible;
            type Future = $crate::fault::Answer;

            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
                let inner = self.inner.clone();
                let slot = $crate::audit::Slot::of(&request);
                $crate::fault::answer(slot, async move { inner.$method(request).await })
            }
        }
    };
}
pub(crate) use upstream_service;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_names_the_route_and_the_next_step() {
        let route = || "memory".to_owned();
        let timeout = Fault::Timeout { route: route(), after: Duration::from_millis(1500) };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(timeout.to_string().contains("within 1.5 s; try again later"), "{timeout}");
        let down = Fault::Unreachable { route: route(), detail: "connection refused".into() };
        assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
        assert!(down.to_string().contains("route memory cannot be reached (connection refused)"));
        let busy = Fault::Busy { route: route(), limit: 2 };
        assert_eq!(busy.response(None).headers()[header::RETRY_AFTER], "5");
        let id = json!(7);
        let response = Fault::TooLarge { limit: 10 }.response(Some(&id));
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
