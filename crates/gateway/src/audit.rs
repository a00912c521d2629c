//! What happened to each request on a route — who asked, through which app,
//! for what, what was decided and why, what the upstream answered and how
//! fast — as one [`AuditEntry`] handed to an [`AuditSink`] (the audit log, the
//! metrics).
//!
//! [`Audited`] goes outside the guard, so that it sees every request, those
//! the guard refuses included. The layers inside fill in what they learn on
//! the way — the caller and the MCP method from the policy layer
//! ([`crate::Policed`]), a fault from the upstream — through a slot the
//! request carries in its extensions. Nothing of the token is ever in an
//! entry, and a call's arguments only when the route asks for them.
//!
//! `latency_ms` is the time to the start of the answer: an SSE stream may stay
//! open for hours after.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode, header};
use serde::Serialize;
use serde_json::Value;
use tower::{Layer, Service};

/// One request, as the audit log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When it came, in milliseconds since the epoch.
    pub time_ms: i64,
    /// The route's name.
    pub route: String,
    /// `POST`, `GET` (the stream of server messages) or `DELETE` (the end of a session).
    pub http_method: String,
    /// The JSON-RPC method (`tools/call`…), `batch` for several; none for a GET or DELETE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The tool, prompt or resource used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The person (`sub`), once the token was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The person's `preferred_username`, when the token carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The app (`client_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The app's name, when the issuer knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Whether the app is third-party, when the issuer knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub third_party: Option<bool>,
    /// `allowed`, `refused` (by the guard or the policy) or `failed` (the upstream).
    pub decision: &'static str,
    /// Why, as a code: `invalid_token`, `insufficient_scope`, `policy`, `upstream_timeout`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Milliseconds to the start of the answer.
    pub latency_ms: f64,
    /// The call's arguments, when the route records them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

/// Where entries go.
pub trait AuditSink: Send + Sync + 'static {
    /// Records one entry; called once per request, on the request's task, so
    /// it must not block for long.
    fn record(&self, entry: &AuditEntry);
}

/// The entry being filled in, carried in the request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct Slot(Arc<Mutex<AuditEntry>>);

impl Slot {
    /// The slot of `request`, when the route is audited.
    pub(crate) fn of<B>(request: &Request<B>) -> Option<Slot> {
        request.extensions().get::<Slot>().cloned()
    }

    pub(crate) fn update(&self, fill: impl FnOnce(&mut AuditEntry)) {
        fill(&mut self.0.lock().expect("an audit slot is never poisoned"));
    }

    /// Records what was decided inside: `refused` or `failed`, with the
    /// reason's code and words.
    pub(crate) fn decided(&self, decision: &'static str, reason: &str, detail: &str) {
        self.update(|entry| {
            entry.decision = decision;
            entry.reason = Some(reason.to_owned());
            entry.detail = Some(detail.to_owned());
        });
    }

    /// The entry, completed from the answer when nothing inside said more.
    fn finish(&self, status: StatusCode, challenge: Option<&str>, latency_ms: f64) -> AuditEntry {
        let mut entry = self.0.lock().expect("an audit slot is never poisoned").clone();
        entry.status = status.as_u16();
        entry.latency_ms = latency_ms;
        if entry.decision.is_empty() {
            if entry.sub.is_none() && !status.is_success() {
                // The guard answered: nothing inside saw a caller.
                entry.decision = "refused";
                entry.reason = Some(guard_reason(status, challenge).to_owned());
            } else {
                entry.decision = "allowed";
            }
        }
        entry
    }
}

/// The code of a guard's refusal: the challenge's `error`, else what the status means.
fn guard_reason(status: StatusCode, challenge: Option<&str>) -> &'static str {
    let error = challenge.and_then(|c| c.split("error=\"").nth(1)).and_then(|rest| rest.split('"').next());
    match (error, status) {
        (Some("invalid_token"), _) => "invalid_token",
        (Some("insufficient_scope"), _) => "insufficient_scope",
        (Some("invalid_request"), _) => "invalid_request",
        (None, StatusCode::UNAUTHORIZED) => "no_token",
        (_, StatusCode::NOT_FOUND) => "session_not_found",
        (_, StatusCode::PAYLOAD_TOO_LARGE) => "body_too_large",
        (_, StatusCode::SERVICE_UNAVAILABLE) => "issuer_unavailable",
        _ => "refused",
    }
}

/// Records every request of the service it wraps (put it outside the guard).
#[derive(Clone)]
pub struct AuditLayer {
    route: Arc<str>,
    sink: Arc<dyn AuditSink>,
}

impl AuditLayer {
    /// Entries for the route named `route`, to `sink`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use agentgate_gateway::audit::{AuditEntry, AuditLayer, AuditSink};
    ///
    /// struct Print;
    /// impl AuditSink for Print {
    ///     fn record(&self, entry: &AuditEntry) {
    ///         println!("{}", serde_json::to_string(entry).unwrap());
    ///     }
    /// }
    /// let layer = AuditLayer::new("memory", Arc::new(Print));
    /// ```
    pub fn new(route: &str, sink: Arc<dyn AuditSink>) -> Self {
        Self { route: Arc::from(route), sink }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audited<S>;

    fn layer(&self, inner: S) -> Audited<S> {
        Audited { inner, layer: self.clone() }
    }
}

/// A service whose requests are recorded; see [`AuditLayer`].
#[derive(Clone)]
pub struct Audited<S> {
    inner: S,
    layer: AuditLayer,
}

impl<S, B, R> Service<Request<B>> for Audited<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let entry = AuditEntry {
            time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
            route: self.layer.route.to_string(),
            http_method: request.method().to_string(),
            ..AuditEntry::default()
        };
        let slot = Slot(Arc::new(Mutex::new(entry)));
        request.extensions_mut().insert(slot.clone());
        // The clone that was made ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let sink = self.layer.sink.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            sink.record(&slot.finish(response.status(), challenge, latency_ms));
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot(Arc::new(Mutex::new(AuditEntry { route: "memory".into(), ..Default::default() })))
    }

    #[test]
    fn what_the_guard_refused_is_named_from_its_challenge() {
        let challenge =
            r#"Bearer resource_metadata="x", scope="a", error="invalid_token", error_description="expired""#;
        let entry = slot().finish(StatusCode::UNAUTHORIZED, Some(challenge), 1.5);
        assert_eq!(
            (entry.decision, entry.reason.as_deref(), entry.status),
            ("refused", Some("invalid_token"), 401)
        );
        let entry = slot().finish(StatusCode::UNAUTHORIZED, Some(r#"Bearer resource_metadata="x""#), 1.0);
        assert_eq!(entry.reason.as_deref(), Some("no_token"));
        assert_eq!(
            slot().finish(StatusCode::NOT_FOUND, None, 1.0).reason.as_deref(),
            Some("session_not_found")
        );
    }

    #[test]
    fn what_passed_the_guard_is_allowed_unless_said_otherwise() {
        let passed = slot();
        passed.update(|e| e.sub = Some("alice".into()));
        let entry = passed.finish(StatusCode::NOT_FOUND, None, 2.0);
        assert_eq!((entry.decision, entry.reason), ("allowed", None), "the upstream's own 404");
        let refused = slot();
        refused.update(|e| e.sub = Some("alice".into()));
        refused.decided("refused", "policy", "the tool is for first-party apps");
        assert_eq!(refused.finish(StatusCode::OK, None, 1.0).decision, "refused");
        let json = serde_json::to_value(slot().finish(StatusCode::OK, None, 0.5)).unwrap();
        assert!(json.get("sub").is_none() && json.get("arguments").is_none(), "absent, not null: {json}");
    }
}
