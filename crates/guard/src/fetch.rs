//! Outbound HTTP to the issuer: one client, bounded time and bounded size.
//!
//! Every document the guard fetches (metadata, JWKS, userinfo, introspection)
//! comes from a server it trusts by configuration, but it still refuses to follow
//! redirects, waits at most a few seconds, and never reads more than a fixed number
//! of bytes: a slow or broken issuer must not be able to pin the server's memory or
//! its tasks.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

/// The most the guard reads of any answer from the issuer.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Why an outbound call did not produce a usable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("could not reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} did not answer valid JSON: {reason}")]
    NotJson { url: String, reason: String },
    #[error("too many calls to the issuer are already in flight; not calling {url}")]
    Busy { url: String },
}

impl From<FetchError> for crate::AuthError {
    /// Whatever went wrong talking to the issuer, the token could not be checked.
    fn from(error: FetchError) -> Self {
        crate::AuthError::IssuerUnavailable(error.to_string())
    }
}

/// The client used for every call to the issuer.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("agentgate-guard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with rustls builds")
}

/// Sends `request` and returns the status and (bounded) body.
pub(crate) async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<(u16, Bytes), FetchError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| FetchError::Unreachable { url: url.to_owned(), reason: error_chain(&e) })?;
    let status = response.status().as_u16();
    if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
        return Err(FetchError::TooLarge { url: url.to_owned() });
    }
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(FetchError::TooLarge { url: url.to_owned() });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(FetchError::Unreachable { url: url.to_owned(), reason: error_chain(&e) });
            }
        }
    }
    Ok((status, body.freeze()))
}

/// GETs a JSON document; any status but 200 is an error.
pub(crate) async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, FetchError> {
    let (status, body) = send(client.get(url).header("accept", "application/json"), url).await?;
    if status != 200 {
        return Err(FetchError::Status { url: url.to_owned(), status });
    }
    parse_json(&body, url)
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], url: &str) -> Result<T, FetchError> {
    serde_json::from_slice(body)
        .map_err(|e| FetchError::NotJson { url: url.to_owned(), reason: e.to_string() })
}

/// Whether `error`, or anything among its causes, is an `E`.
///
/// ```
/// let io = std::io::Error::other("disk");
/// assert!(agentgate_guard::caused_by::<std::io::Error>(&io));
/// assert!(!agentgate_guard::caused_by::<std::fmt::Error>(&io));
/// ```
pub fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and every cause under it, joined with `": "` — what a log line or
/// a refusal needs to say why an outbound call failed.
///
/// ```
/// let io = std::io::Error::other("connection reset");
/// assert_eq!(agentgate_guard::error_chain(&io), "connection reset");
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
