//! One MCP server process on stdio, shared by the sessions of one person.
//!
//! stdio carries newline-delimited JSON-RPC both ways. Several sessions (a
//! person's two agents, or every caller of a shared process) write into the
//! same stdin, and their request ids may collide: each request therefore goes
//! in under an id of the gateway's own, unique in this process, and its
//! answer comes back under the client's id again. Nothing else in a message
//! is touched.
//!
//! What the process sends goes where it belongs:
//!
//! - an answer, to the request that waits for it;
//! - `notifications/progress`, to the request whose `progressToken` it names
//!   (each request's token, too, goes in as one of the gateway's own and comes
//!   back as the client's: two sessions' tokens may collide as their ids do);
//! - any other request or notification, to the streams that [`crate::delivery`]
//!   picks: those of one person through one app, or none.
//!
//! The ids that come back are mapped the other way with the same care: a
//! `notifications/cancelled` reaches the process only for a request of the
//! sender's own session, under the gateway's id, and an answer to the
//! process's request only from the owner it was asked of.
//!
//! Every queue is bounded. A stream whose client stops reading loses its place
//! — its request ends — rather than grow the gateway's memory; stdin is a
//! bounded queue that callers wait on, within the route's timeout.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::delivery::{self, Asked, Owner};

/// The longest line a process may write: one JSON-RPC message.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Messages waiting for one stream before its client counts as gone.
pub(crate) const STREAM_QUEUE: usize = 256;
/// Messages waiting for the process's stdin.
const STDIN_QUEUE: usize = 64;

/// How to start the process.
#[derive(Debug, Clone)]
pub struct StdioCommand {
    /// The command line, run by `sh -c` (so quoting and `NAME=value` prefixes
    /// work as in a shell); `{person}` is replaced as in `env`.
    pub command: String,
    /// The working directory; `{person}` is replaced as in `env`.
    pub cwd: Option<PathBuf>,
    /// Environment variables set for the process beside the gateway's own;
    /// `{person}` in a value becomes a file-name-safe form of the person's
    /// subject, so that each person's process can keep its own files.
    pub env: Vec<(String, String)>,
}

/// A message for one stream: a JSON-RPC message to pass on as it is.
pub(crate) type StreamSender = mpsc::Sender<Value>;

/// A request waiting for its answer.
struct Pending {
    /// The client's id, given back on the answer.
    id: Value,
    owner: Owner,
    /// The session it came in (none: sessionless).
    session: Option<String>,
    /// The progress token the process knows (the gateway's), and the client's.
    progress: Option<(Value, Value)>,
    stream: StreamSender,
    /// Whether the answer is an SSE stream, which can carry the process's own
    /// messages too (a JSON answer carries the answers only).
    sse: bool,
}

/// Where a request goes in, and how its answer goes out.
pub(crate) struct Asker<'a> {
    /// Whose it is.
    pub owner: &'a Owner,
    /// The session it came in.
    pub session: Option<&'a str>,
}

/// A GET stream: whose it is, where its messages go, and which opening of the
/// session's stream it is (a later one replaces it).
type Listener = (Owner, StreamSender, u64);

/// A running process.
pub(crate) struct Process {
    pub pid: u32,
    stdin: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, Pending>>,
    /// The GET streams of the sessions on this process, by session id.
    listeners: Mutex<HashMap<String, Listener>>,
    /// The process's own requests that went to an agent, and to whom.
    asked: Mutex<Asked>,
    next_id: AtomicU64,
    /// Cancelled when the process has ended (or is being ended).
    pub ended: CancellationToken,
    last_used: Mutex<Instant>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish_non_exhaustive()
    }
}

/// `subject` as a file name: ASCII letters and digits stay, every other byte
/// becomes `_` and two hex digits, so two subjects never meet in one name.
pub(crate) fn file_safe(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02x}"));
        }
    }
    out
}

impl Process {
    /// Starts `command` for `person` (the subject, or `None` for a shared
    /// process). Its stderr goes to the log under the route's name.
    pub fn start(route: &str, command: &StdioCommand, person: Option<&str>) -> std::io::Result<Arc<Self>> {
        let person = person.map(file_safe).unwrap_or_else(|| "shared".to_owned());
        let mut child = tokio::process::Command::new("sh");
        // `{person}` is letters, digits, `-` and `_` only: safe in a command line.
        child.arg("-c").arg(command.command.replace("{person}", &person));
        if let Some(cwd) = &command.cwd {
            child.current_dir(cwd.to_string_lossy().replace("{person}", &person));
        }
        for (name, value) in &command.env {
            child.env(name, value.replace("{person}", &person));
        }
        child.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Its own process group, so that ending it also ends what it started
        // (`npx` runs the server as a child of its own).
        child.process_group(0).kill_on_drop(true);
        let mut child = child.spawn()?;
        let pid = child.id().unwrap_or_default();
        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(STDIN_QUEUE);
        let process = Arc::new(Process {
            pid,
            stdin: stdin_tx,
            pending: Mutex::default(),
            listeners: Mutex::default(),
            asked: Mutex::default(),
            next_id: AtomicU64::new(1),
            ended: CancellationToken::new(),
            last_used: Mutex::new(Instant::now()),
        });

        let mut stdin = child.stdin.take().expect("stdin is piped");
        let ended = process.ended.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    line = stdin_rx.recv() => match line {
                        Some(line) => if stdin.write_all(&line).await.is_err() { break },
                        None => break,
                    },
                    _ = ended.cancelled() => break,
                }
            }
        });

        let stderr = child.stderr.take().expect("stderr is piped");
        let name = route.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(route = %name, pid, "{line}");
            }
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = process.clone();
        let name = route.to_owned();
        tokio::spawn(async move {
            let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
            loop {
                tokio::select! {
                    line = lines.next() => match line {
                        Some(Ok(line)) => reader.route_from_process(&name, &line),
                        Some(Err(error)) => {
                            tracing::warn!(route = %name, pid, %error, "the process wrote what is not a message; ending it");
                            break;
                        }
                        None => break,
                    },
                    _ = reader.ended.cancelled() => break,
                }
            }
            reader.ended.cancel();
            // Ends the whole group, then reaps the child.
            // SAFETY: killpg with a pid this task owns; a stale group is ESRCH.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            let status = child.wait().await;
            tracing::info!(route = %name, pid, status = ?status.ok(), "MCP server process ended");
            reader.fail_pending(&name);
        });
        Ok(process)
    }

    /// Whether the process still runs.
    pub fn is_alive(&self) -> bool {
        !self.ended.is_cancelled()
    }

    /// Ends the process.
    pub fn end(&self) {
        self.ended.cancel();
    }

    /// How long since a client last sent it something.
    pub fn idle_for(&self) -> Duration {
        self.last_used.lock().unwrap().elapsed()
    }

    /// Writes `owner`'s notification. A cancellation names the request by
    /// the client's id: it goes on under the gateway's id, and only for a
    /// request of the sender's own that is still in flight (else it is
    /// dropped: the request was answered already, or was never theirs).
    pub async fn notify(
        &self,
        mut message: Value,
        from: &Asker<'_>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let Some(theirs) = message.pointer("/params/requestId") else { return Ok(()) };
            let ours = self
                .pending
                .lock()
                .unwrap()
                .iter()
                .find(|(_, p)| {
                    p.owner == *from.owner && p.session.as_deref() == from.session && p.id == *theirs
                })
                .map(|(ours, _)| *ours);
            let Some(ours) = ours else { return Ok(()) };
            message["params"]["requestId"] = Value::from(ours);
        }
        self.write(&message, timeout).await
    }

    /// Whether `owner` may answer the process's request `message` answers
    /// (nothing changes: to check a batch before any of it is written).
    pub fn may_answer(&self, message: &Value, owner: &Owner) -> bool {
        self.asked.lock().unwrap().may_answer(message.get("id").unwrap_or(&Value::Null), owner)
    }

    /// Writes `owner`'s answer to a request of the process's; refused unless
    /// that request went to `owner`, once.
    pub async fn answer(&self, message: &Value, owner: &Owner, timeout: Duration) -> Result<(), SendError> {
        let id = message.get("id").unwrap_or(&Value::Null);
        if !self.asked.lock().unwrap().take(id, owner) {
            return Err(SendError::NotAsked);
        }
        self.write(message, timeout).await
    }

    /// Writes a request; its answer (and its progress, and when `sse` the
    /// process's messages for its owner) will go to `stream`. Returns the
    /// gateway's id for it, for [`Process::forget`].
    pub async fn request(
        &self,
        mut message: Value,
        from: &Asker<'_>,
        stream: StreamSender,
        sse: bool,
        timeout: Duration,
    ) -> Result<u64, SendError> {
        let ours = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = std::mem::replace(&mut message["id"], Value::from(ours));
        let progress = message.pointer_mut("/params/_meta/progressToken").map(|token| {
            let theirs = std::mem::replace(token, Value::from(format!("agentgate-{ours}")));
            (token.clone(), theirs)
        });
        let session = from.session.map(str::to_owned);
        let pending = Pending { id, owner: from.owner.clone(), session, progress, stream, sse };
        self.pending.lock().unwrap().insert(ours, pending);
        if let Err(error) = self.write(&message, timeout).await {
            self.forget(ours);
            return Err(error);
        }
        Ok(ours)
    }

    /// Drops a request nobody waits for any more.
    pub fn forget(&self, ours: u64) {
        self.pending.lock().unwrap().remove(&ours);
    }

    /// Opens the GET stream of `owner`'s `session`, replacing an earlier one
    /// (whose stream then ends). Returns which opening it is, for
    /// [`Process::unlisten`].
    pub fn listen(&self, session: &str, owner: &Owner, stream: StreamSender) -> u64 {
        let opening = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.listeners.lock().unwrap().insert(session.to_owned(), (owner.clone(), stream, opening));
        opening
    }

    /// Closes the GET stream of `session` (`opening`: only that one, not one
    /// that replaced it since; `None`: whichever is open).
    pub fn unlisten(&self, session: &str, opening: Option<u64>) {
        let mut listeners = self.listeners.lock().unwrap();
        if listeners.get(session).is_some_and(|(_, _, open)| opening.is_none_or(|o| o == *open)) {
            listeners.remove(session);
        }
    }

    async fn write(&self, message: &Value, timeout: Duration) -> Result<(), SendError> {
        *self.last_used.lock().unwrap() = Instant::now();
        let mut line = serde_json::to_vec(message).expect("a JSON value serializes");
        line.push(b'\n');
        match tokio::time::timeout(timeout, self.stdin.send(line.into())).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Err(_)) => Err(SendError::Ended),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// One line from the process's stdout.
    fn route_from_process(&self, route: &str, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let Ok(mut message) = serde_json::from_str::<Value>(line) else {
            // Servers that print banners on stdout exist; the line is not MCP.
            tracing::warn!(route, pid = self.pid, "the process wrote a line that is not JSON; ignored");
            return;
        };
        let is_answer = message.get("method").is_none() && message.get("id").is_some();
        if is_answer {
            let pending = message["id"].as_u64().and_then(|ours| self.pending.lock().unwrap().remove(&ours));
            match pending {
                Some(pending) => {
                    message["id"] = pending.id;
                    // A full queue means a client that stopped reading: its request ends.
                    let _ = pending.stream.try_send(message);
                }
                None => tracing::debug!(route, pid = self.pid, "an answer to no request in flight; dropped"),
            }
            return;
        }
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        if method == "notifications/progress" {
            // Only the gateway's tokens are known to the process: a token
            // that matches no request is nobody's, and is dropped.
            let pending = self.pending.lock().unwrap();
            let token = message.pointer("/params/progressToken");
            let found = pending.values().find_map(|p| {
                p.progress.as_ref().filter(|(ours, _)| Some(ours) == token).map(|(_, theirs)| (theirs, p))
            });
            if let Some((theirs, p)) = found {
                message["params"]["progressToken"] = theirs.clone();
                let _ = p.stream.try_send(message);
            }
            return;
        }
        let in_flight = self
            .pending
            .lock()
            .unwrap()
            .values()
            .map(|p| (p.owner.clone(), p.sse.then(|| p.stream.clone())))
            .collect();
        let listening = self
            .listeners
            .lock()
            .unwrap()
            .values()
            .map(|(owner, stream, _)| (owner.clone(), stream.clone()))
            .collect();
        let id = message.get("id").filter(|id| !id.is_null()).cloned();
        match delivery::audience(&method, id.is_some(), in_flight, listening) {
            Ok((owner, targets)) => {
                if let (Some(id), Some(owner)) = (id, owner) {
                    self.asked.lock().unwrap().note(id, owner);
                }
                for target in targets {
                    let _ = target.try_send(message.clone());
                }
            }
            Err(why) => {
                tracing::debug!(
                    route,
                    pid = self.pid,
                    method,
                    "a message from the process for no one: {}",
                    why.words()
                );
                // A request nobody may answer is answered here, so that the
                // process does not wait for it.
                if let Some(id) = id {
                    let error = serde_json::json!({ "jsonrpc": "2.0", "id": id,
                        "error": { "code": -32603, "message": why.words() } });
                    let mut line = serde_json::to_vec(&error).expect("a JSON value serializes");
                    line.push(b'\n');
                    let _ = self.stdin.try_send(line.into());
                }
            }
        }
    }

    /// The process ended: every request in flight gets an error saying so.
    fn fail_pending(&self, route: &str) {
        let pending: Vec<Pending> = self.pending.lock().unwrap().drain().map(|(_, p)| p).collect();
        for p in pending {
            let error = crate::fault::Fault::Broken {
                route: route.to_owned(),
                detail: "its process ended before answering; the next request starts a fresh one".into(),
            };
            let _ = p
                .stream
                .try_send(serde_json::json!({ "jsonrpc": "2.0", "id": p.id, "error": error.error_object() }));
        }
        self.listeners.lock().unwrap().clear();
    }
}

/// Why a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// stdin stayed full for the whole timeout.
    Timeout,
    /// The process has ended.
    Ended,
    /// An answer to a request the process did not send to this owner.
    NotAsked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_become_distinct_file_names() {
        assert_eq!(file_safe("alice-1"), "alice-1");
        assert_eq!(file_safe("../etc"), "_2e_2e_2fetc");
        assert_ne!(file_safe("a/b"), file_safe("a_2fb"), "the escape itself is escaped");
    }
}
