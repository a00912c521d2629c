//! What the gateway's routes tell the operator: the audit log (one JSON line
//! per MCP request, to a file or stdout), the Prometheus counters served at
//! `/metrics` on a listener of their own, and `/healthz` and `/readyz`.
//!
//! The audit log is written by a thread of its own, fed through a bounded
//! queue: a request never waits for the disk unless ten thousand lines are
//! already waiting, and then it waits rather than losing its line. Each line is
//! one `write` to a file opened for appending, so `logrotate` works in both
//! its ways: with `copytruncate` the next line lands at the start of the
//! emptied file; when the file is moved away, the writer notices within a
//! second and opens a new one at the configured path.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgate_gateway::StdioUpstream;
use agentgate_gateway::audit::{AuditEntry, AuditSink};
use agentgate_gateway::metrics::Metrics;
use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

/// The paths of the health checks, beside the issuer and the routes.
pub const HEALTH_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Lines waiting for the writer at most.
const QUEUE: usize = 10_000;
/// How often the writer looks whether its file was moved away.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// Where audit lines go: `-` is stdout, anything else a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl AuditTarget {
    /// `-` or a path.
    pub fn parse(text: &str) -> Self {
        if text == "-" { AuditTarget::Stdout } else { AuditTarget::File(PathBuf::from(text)) }
    }
}

/// The gateway routes' sink: counts every entry, and writes it to the audit
/// log when there is one.
#[derive(Default)]
pub struct Observer {
    metrics: Metrics,
    log: Option<SyncSender<String>>,
    stdio: Mutex<Vec<(String, StdioUpstream)>>,
}

impl Observer {
    /// Counts only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts, and writes every entry to `target`. The file is opened now, so
    /// that a path that cannot be written stops the start.
    pub fn with_log(target: &AuditTarget) -> anyhow::Result<Self> {
        let sink: Box<dyn Write + Send> = match target {
            AuditTarget::Stdout => Box::new(std::io::stdout()),
            AuditTarget::File(path) => Box::new(open(path)?),
        };
        let (sender, receiver) = sync_channel(QUEUE);
        let target = target.clone();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_lines(receiver, sink, target))
            .context("starting the audit log's writer")?;
        Ok(Self { log: Some(sender), ..Self::default() })
    }

    /// Counts the processes of a stdio route in `/metrics`.
    pub fn watch(&self, route: &str, upstream: &StdioUpstream) {
        self.stdio.lock().expect("never poisoned").push((route.to_owned(), upstream.clone()));
    }

    /// The counters, in Prometheus' text format.
    pub fn render(&self) -> String {
        let stdio = self.stdio.lock().expect("never poisoned");
        let live: Vec<(&str, usize)> =
            stdio.iter().map(|(route, up)| (route.as_str(), up.live_processes())).collect();
        self.metrics.render(&live)
    }

    /// `/metrics`, with `/healthz` and `/readyz` beside it, for a listener of its own.
    pub fn metrics_router(self: &Arc<Self>, ready: Readiness) -> Router {
        let observer = self.clone();
        let metrics = get(move || {
            let text = observer.render();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
        });
        Router::new().route("/metrics", metrics).merge(health_router(ready))
    }
}

impl AuditSink for Observer {
    fn record(&self, entry: &AuditEntry) {
        self.metrics.record(entry);
        if let Some(log) = &self.log {
            // Waits only when the writer is ten thousand lines behind.
            let _ = log.send(line(entry));
        }
    }
}

/// One entry as a line: its fields, with `time` in RFC 3339 (UTC, milliseconds)
/// for `time_ms`.
pub fn line(entry: &AuditEntry) -> String {
    let mut value = serde_json::to_value(entry).expect("an entry is JSON");
    if let Value::Object(fields) = &mut value {
        fields.remove("time_ms");
        let seconds = agentgate_issuer::rfc3339(entry.time_ms.div_euclid(1000));
        let time = format!("{}.{:03}Z", seconds.trim_end_matches('Z'), entry.time_ms.rem_euclid(1000));
        fields.insert("time".into(), time.into());
    }
    value.to_string()
}

fn open(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the audit log {}", path.display()))
}

#[cfg(unix)]
fn identity(file: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (file.dev(), file.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// The writer thread: a line at a time, reopening a file moved away.
fn write_lines(lines: Receiver<String>, mut sink: Box<dyn Write + Send>, target: AuditTarget) {
    let mut checked = Instant::now();
    let mut open_identity = match &target {
        AuditTarget::File(path) => std::fs::metadata(path).ok().map(|m| identity(&m)),
        AuditTarget::Stdout => None,
    };
    for mut text in lines {
        if let AuditTarget::File(path) = &target
            && checked.elapsed() >= REOPEN_CHECK
        {
            checked = Instant::now();
            let now = std::fs::metadata(path).ok().map(|m| identity(&m));
            if now.is_none() || now != open_identity {
                match open(path) {
                    Ok(file) => {
                        sink = Box::new(file);
                        open_identity = std::fs::metadata(path).ok().map(|m| identity(&m));
                    }
                    Err(error) => tracing::error!("{error:#}"),
                }
            }
        }
        text.push('\n');
        if let Err(error) = sink.write_all(text.as_bytes()).and_then(|()| sink.flush()) {
            tracing::error!(error = %error, "writing the audit log");
        }
    }
}

/// What `/readyz` asks: whether the database answers, when there is one.
#[derive(Clone, Default)]
pub struct Readiness(Option<agentgate_issuer::store::AnyStore>);

impl Readiness {
    /// Ready when `store` answers.
    pub fn store(store: agentgate_issuer::store::AnyStore) -> Self {
        Readiness(Some(store))
    }
}

/// `/healthz` (the process answers) and `/readyz` (and so does its database).
pub fn health_router(ready: Readiness) -> Router {
    let readyz = get(move || {
        let ready = ready.clone();
        async move {
            use agentgate_issuer::store::Store;
            let answers = match &ready.0 {
                Some(store) => store.client("").await.is_ok(),
                None => true,
            };
            if answers {
                (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response()
            } else {
                let detail = "the database does not answer; see the server's log";
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({ "status": "not ready", "detail": detail })),
                )
                    .into_response()
            }
        }
    });
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/readyz", readyz)
}

/// The flags of `dev` and `gateway` for the audit log and the metrics.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObserveArgs {
    /// Write one JSON line per MCP request on the gateway's routes to FILE
    /// (appended; `-` for stdout). `agentgate audit FILE` reads it.
    #[arg(long, env = "AGENTGATE_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (with /healthz and
    /// /readyz), on a listener of their own: keep it off the public network.
    #[arg(long, env = "AGENTGATE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ObserveArgs {
    /// These flags, each one unset taken from `other`.
    pub fn or(&self, other: ObserveArgs) -> ObserveArgs {
        ObserveArgs {
            audit_log: self.audit_log.clone().or(other.audit_log),
            metrics_listen: self.metrics_listen.or(other.metrics_listen),
        }
    }

    /// The observer, its audit log open and its metrics listener bound.
    pub async fn start(
        &self,
        ready: Readiness,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Arc<Observer>> {
        let observer = Arc::new(match &self.audit_log {
            Some(target) => Observer::with_log(&AuditTarget::parse(target))?,
            None => Observer::new(),
        });
        if let Some(addr) = self.metrics_listen {
            let (listener, local) = crate::serve::bind(addr).await?;
            let app = observer.metrics_router(ready);
            tokio::spawn(crate::serve::run(listener, app, shutdown.clone()));
            println!("agentgate: metrics at http://{local}/metrics");
        }
        Ok(observer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_time_in_rfc3339_and_no_empty_fields() {
        let entry = AuditEntry {
            time_ms: 1_795_300_000_042,
            route: "memory".into(),
            http_method: "POST".into(),
            decision: "allowed",
            status: 200,
            ..Default::default()
        };
        let value: Value = serde_json::from_str(&line(&entry)).unwrap();
        assert_eq!(value["time"], "2026-11-21T22:26:40.042Z");
        assert!(value.get("time_ms").is_none() && value.get("sub").is_none(), "{value}");
    }

    #[test]
    fn a_moved_log_is_reopened_and_a_truncated_one_appended_to() {
        let dir = std::env::temp_dir().join(format!("agentgate-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let observer = Observer::with_log(&AuditTarget::File(path.clone())).unwrap();
        let entry =
            |route: &str| AuditEntry { route: route.into(), decision: "allowed", ..Default::default() };
        let lines_of = |path: &Path| -> Vec<String> {
            std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
        };
        let wait_for = |path: &Path, n: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while lines_of(path).len() < n {
                assert!(Instant::now() < deadline, "{} has {:?}", path.display(), lines_of(path));
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        observer.record(&entry("first"));
        wait_for(&path, 1);
        // logrotate's default: the file is moved away, the next lines go to a new one.
        std::fs::rename(&path, dir.join("audit.jsonl.1")).unwrap();
        std::thread::sleep(REOPEN_CHECK + Duration::from_millis(100));
        observer.record(&entry("second"));
        wait_for(&path, 1);
        assert!(lines_of(&path)[0].contains("second"));
        assert_eq!(lines_of(&dir.join("audit.jsonl.1")).len(), 1, "nothing lost in the old one");
        // copytruncate: the file is emptied in place; appending starts over at 0.
        std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        observer.record(&entry("third"));
        wait_for(&path, 1);
        assert!(
            lines_of(&path)[0].starts_with('{') && lines_of(&path)[0].contains("third"),
            "{:?}",
            lines_of(&path)
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(observer.render().contains(r#"route="third""#), "counted as well");
    }
}
