//! The loopback redirect URI (RFC 8252 §7.3): a socket on 127.0.0.1 at a port
//! the system picks, where the person's browser comes back with the code.
//!
//! It answers exactly one `GET /callback?…` with a short page telling the
//! person they can close the tab, and hands the full URL to the agent, which
//! checks `state` and `iss` and exchanges the code. Anything else gets a 404.

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
}

impl CallbackListener {
    /// Listens on `127.0.0.1` at a free port.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let redirect_uri = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
        Ok(Self { listener, redirect_uri })
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
        loop {
            let (mut socket, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| AgentError::NotBack(format!("the listener failed: {e}")))?;
            let Some(target) = read_target(&mut socket).await else { continue };
            if !target.starts_with("/callback?") {
                let _ = socket
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                continue;
            }
            let page = "<!doctype html><meta charset=utf-8><title>agentgate</title>\
                        <p>You can close this tab and go back to the terminal.</p>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let base = self.redirect_uri.trim_end_matches("/callback");
            return Ok(format!("{base}{target}"));
        }
    }
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
        let uri = listener.redirect_uri().to_owned();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"), "{uri}");
        let browser = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let base = uri.trim_end_matches("/callback");
            let stray = http.get(format!("{base}/favicon.ico")).send().await.unwrap();
            assert_eq!(stray.status(), 404);
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
        let error = listener.wait(Duration::from_millis(50)).await.unwrap_err();
        assert!(error.to_string().contains("nobody came back"), "{error}");
    }
}
