//! The loopback redirect URI (RFC 8252 §7.3): a socket on 127.0.0.1 at a port
//! the system picks, where the person's browser comes back with the code.
//!
//! It waits for the one `GET /callback?…` whose `state` is this sign-in's,
//! answers it with a short page telling the person they can close the tab,
//! and hands the full URL to the agent, which checks `iss` and exchanges the
//! code. Any other page is a 404; a callback with another `state` (a forged
//! one, from a page probing loopback ports) is a 400 and changes nothing.
//! Connections are read concurrently, so a silent one cannot hold the door.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::AgentError;

/// The largest request head read from the browser.
const MAX_HEAD: usize = 16 * 1024;

/// A listening loopback redirect URI.
#[derive(Debug)]
pub struct CallbackListener {
    listener: TcpListener,
    redirect_uri: String,
    state: std::sync::OnceLock<String>,
}

impl CallbackListener {
    /// Listens on `127.0.0.1` at a free port.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let redirect_uri = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
        Ok(Self { listener, redirect_uri, state: std::sync::OnceLock::new() })
    }

    /// The `state` of the authorization request whose answer to wait for; set
    /// once, before [`wait`](Self::wait). Until it is set, no callback counts.
    pub fn expect_state(&self, state: &str) {
        let _ = self.state.set(state.to_owned());
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits up to `timeout` for the browser to come back; returns the full
    /// callback URL (with `code`, `state` and `iss`, or `error`).
    pub async fn wait(&self, timeout: Duration) -> Result<String, AgentError> {
        tokio::time::timeout(timeout, self.next_callback()).await.map_err(|_| {
            AgentError::NotBack(format!("nobody came back to {} within {timeout:?}", self.redirect_uri))
        })?
    }

    async fn next_callback(&self) -> Result<String, AgentError> {
        let (arrived, mut arrivals) = tokio::sync::mpsc::channel(16);
        let base = self.redirect_uri.trim_end_matches("/callback").to_owned();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (mut socket, _) =
                        accepted.map_err(|e| AgentError::NotBack(format!("the listener failed: {e}")))?;
                    let arrived = arrived.clone();
                    tokio::spawn(async move {
                        if let Some(target) = read_target(&mut socket).await {
                            let _ = arrived.send((socket, target)).await;
                        }
                    });
                }
                Some((mut socket, target)) = arrivals.recv() => {
                    let url = format!("{base}{target}");
                    if !target.starts_with("/callback?") {
                        respond(&mut socket, "404 Not Found", "Not here.").await;
                    } else if self.state.get().is_none_or(|state| query_param(&url, "state").as_deref() != Some(state)) {
                        respond(&mut socket, "400 Bad Request", "This sign-in answer is not for this agent.").await;
                    } else {
                        respond(&mut socket, "200 OK", "You can close this tab and go back to the terminal.").await;
                        return Ok(url);
                    }
                }
            }
        }
    }
}

/// A query parameter of `url`.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A small HTML answer, then the connection closes.
async fn respond(socket: &mut tokio::net::TcpStream, status: &str, message: &str) {
    let page = format!("<!doctype html><meta charset=utf-8><title>agentgate</title><p>{message}</p>");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = socket.write_all(answer.as_bytes()).await;
}

/// The request target of a `GET`, if the head is one.
async fn read_target(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_browser_comes_back_with_the_code() {
        let listener = CallbackListener::bind().await.unwrap();
        listener.expect_state("s");
        let uri = listener.redirect_uri().to_owned();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"), "{uri}");
        let browser = tokio::spawn(async move {
            // A connection that never speaks does not hold the door.
            let _silent = tokio::net::TcpStream::connect(
                uri.trim_start_matches("http://").trim_end_matches("/callback"),
            )
            .await
            .unwrap();
            let http = reqwest::Client::new();
            let base = uri.trim_end_matches("/callback");
            let stray = http.get(format!("{base}/favicon.ico")).send().await.unwrap();
            assert_eq!(stray.status(), 404);
            // A forged answer (another state, an error included) is turned away.
            for forged in ["code=evil&state=other", "error=access_denied&state=other", "code=evil"] {
                let refused = http.get(format!("{uri}?{forged}")).send().await.unwrap();
                assert_eq!(refused.status(), 400, "{forged}");
            }
            let back = http
                .get(format!("{uri}?code=c&state=s&iss=https%3A%2F%2Fauth.example"))
                .send()
                .await
                .unwrap();
            (back.status(), back.text().await.unwrap())
        });
        let url = listener.wait(Duration::from_secs(10)).await.unwrap();
        assert!(url.ends_with("/callback?code=c&state=s&iss=https%3A%2F%2Fauth.example"), "{url}");
        let (status, page) = browser.await.unwrap();
        assert_eq!(status, 200);
        assert!(page.contains("close this tab"));
    }

    #[tokio::test]
    async fn nobody_coming_back_is_a_clear_error() {
        let listener = CallbackListener::bind().await.unwrap();
        listener.expect_state("s");
        let error = listener.wait(Duration::from_millis(50)).await.unwrap_err();
        assert!(error.to_string().contains("nobody came back"), "{error}");
    }
}
