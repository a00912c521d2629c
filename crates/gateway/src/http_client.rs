//! A small HTTP/1.1 client for plain-HTTP upstreams, which drives each
//! upstream connection from the request that uses it.
//!
//! Why not a general client (reqwest, on hyper-util's pool)? That client runs
//! every connection in a task of its own and hands the answer over through a
//! channel, one frame at a time: the gateway's task wakes once per frame of
//! the upstream's answer and writes each frame to the agent as a TCP segment
//! of its own — three writes for one `tools/call` answered as a short SSE
//! stream. Here the connection is polled by the very task that forwards the
//! answer, so when one read brought the whole answer, every frame of it is
//! ready at once and leaves in one write: fewer wake-ups, fewer system calls,
//! and no channel between two tasks.
//!
//! A connection travels inside the answer's body while the answer streams,
//! and goes back to the pool once the answer has ended cleanly. An answer
//! dropped half-way (the agent went away) closes its connection, because
//! HTTP/1 has no way to skip the rest of a message. A pooled connection the
//! upstream has closed meanwhile is noticed when it is taken out, before any
//! byte is written; a request the connection never took is sent again on a
//! new one, so an upstream's idle timeout never turns into an agent's error.
//!
//! The upstream may listen on TCP or on a Unix socket (`http+unix://`): a
//! socket file is reached only by who may open it, and costs less per call
//! than loopback TCP.
//!
//! HTTPS upstreams go through reqwest instead (see `http_upstream`), where
//! certificate checking is reqwest's well-tested business.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

/// What a request carries to the upstream: the agent's body, read whole
/// within the route's bound (so it goes with a `Content-Length`).
pub(crate) type Outgoing = Full<Bytes>;

/// A connection to the upstream, over TCP or a Unix socket.
type Stream = Either<TcpStream, UnixStream>;

/// Where the upstream listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port`, as dialled.
    Tcp(String),
    /// A Unix socket's path.
    Unix(std::path::PathBuf),
}

/// Idle connections kept per upstream; more would only hold sockets.
const MAX_IDLE: usize = 32;
/// How long an idle connection is kept. Servers close idle connections on
/// their own clock (often 5 s to 2 min); one closed meanwhile costs nothing
/// but a new connection, so this only bounds what is held.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// No TCP connection could be made.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection was not made within the connect timeout.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// The connection was made, then the exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A pool of HTTP/1.1 connections to one upstream address.
#[derive(Debug)]
pub(crate) struct Client {
    address: Address,
    /// The `Host` header every request carries (HTTP/1.1 requires it).
    host: HeaderValue,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

/// One connection: the half that takes requests, and the half that does the
/// reading and writing when polled.
struct Link {
    sender: SendRequest<Outgoing>,
    connection: Connection<TokioIo<Stream>, Outgoing>,
}

struct Idle {
    link: Link,
    since: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("since", &self.since).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the upstream at `host` and `port`.
    pub(crate) fn new(host: &str, port: u16, connect_timeout: Duration) -> Self {
        // An IPv6 literal keeps its brackets in both the address and `Host`.
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let host = HeaderValue::from_str(&address).expect("a URL's host and port make a valid header value");
        Self { address: Address::Tcp(address), host, connect_timeout, idle: Mutex::new(Vec::new()) }
    }

    /// A client for the upstream on the Unix socket at `path` (`Host: localhost`).
    pub(crate) fn unix(path: std::path::PathBuf, connect_timeout: Duration) -> Self {
        let host = HeaderValue::from_static("localhost");
        Self { address: Address::Unix(path), host, connect_timeout, idle: Mutex::new(Vec::new()) }
    }

    /// Sends `request` (origin-form URI, no `Host`: both are set here) and
    /// returns the upstream's answer as soon as its head has arrived; the
    /// body streams from the upstream as the caller reads it.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Outgoing>,
    ) -> Result<Response<Answer>, ClientError> {
        request.headers_mut().insert(http::header::HOST, self.host.clone());
        loop {
            let (link, reused) = match self.checkout().await {
                Some(link) => (link, true),
                None => (self.dial().await?, false),
            };
            match link.exchange(request).await {
                Ok((head, body, link)) => {
                    let lease = link.map(|link| Lease { link, client: self.clone() });
                    return Ok(head.map(|()| Answer { body, lease }));
                }
                // The upstream closed a pooled connection before it took the
                // request: nothing was sent, so sending it anew is safe.
                Err(Unsent::Returned(again, _)) if reused => request = *again,
                Err(Unsent::Returned(_, error) | Unsent::Failed(error)) => {
                    return Err(ClientError::Http(error));
                }
            }
        }
    }

    /// The newest idle connection that is still open, if any.
    async fn checkout(&self) -> Option<Link> {
        loop {
            let idle = self.idle.lock().expect("the pool's lock is never poisoned").pop()?;
            if idle.since.elapsed() >= IDLE_FOR {
                continue;
            }
            let mut link = idle.link;
            // One poll without waiting: a connection the upstream closed
            // reads its end now, and is dropped here.
            if poll_fn(|cx| Poll::Ready(link.is_usable(cx))).await {
                return Some(link);
            }
        }
    }

    async fn dial(&self) -> Result<Link, ClientError> {
        let connect = async {
            match &self.address {
                Address::Tcp(address) => {
                    let stream = TcpStream::connect(address).await?;
                    // Answers are small and latency is the point; Nagle only delays them.
                    stream.set_nodelay(true)?;
                    Ok(Either::Left(stream))
                }
                Address::Unix(path) => UnixStream::connect(path).await.map(Either::Right),
            }
        };
        let stream: Stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::ConnectTimeout(self.connect_timeout))?
            .map_err(ClientError::Connect)?;
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(stream)).await?;
        Ok(Link { sender, connection })
    }

    fn release(&self, link: Link) {
        let mut idle = self.idle.lock().expect("the pool's lock is never poisoned");
        idle.retain(|entry| entry.since.elapsed() < IDLE_FOR);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { link, since: Instant::now() });
        }
    }
}

/// A request the connection did not send, and why.
enum Unsent {
    /// The connection closed before taking it: the request comes back whole.
    Returned(Box<Request<Outgoing>>, hyper::Error),
    /// The request was taken, and the exchange failed.
    Failed(hyper::Error),
}

impl Link {
    fn is_usable(&mut self, cx: &mut Context<'_>) -> bool {
        if Pin::new(&mut self.connection).poll(cx).is_ready() {
            return false;
        }
        matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }

    /// Sends `request` and drives the connection until the answer's head is
    /// in. Gives back the head, the body, and the connection unless it ended.
    async fn exchange(
        self,
        request: Request<Outgoing>,
    ) -> Result<(Response<()>, Incoming, Option<Link>), Unsent> {
        let Link { mut sender, connection } = self;
        let mut connection = Some(connection);
        let answer = {
            let mut answer = pin!(sender.try_send_request(request));
            poll_fn(|cx| {
                if let Some(open) = connection.as_mut()
                    && let Poll::Ready(outcome) = Pin::new(open).poll(cx)
                {
                    // The connection ended (closed or broken). Whatever it
                    // read is already in the answer; an error reaches the
                    // answer's future too.
                    if let Err(error) = outcome {
                        tracing::debug!(error = %agentgate_guard::error_chain(&error), "upstream connection ended");
                    }
                    connection = None;
                }
                answer.as_mut().poll(cx)
            })
            .await
        };
        match answer {
            Ok(response) => {
                let (head, body) = response.into_parts();
                let link = connection.map(|connection| Link { sender, connection });
                Ok((Response::from_parts(head, ()), body, link))
            }
            Err(mut error) => match error.take_message() {
                Some(request) => Err(Unsent::Returned(Box::new(request), error.into_error())),
                None => Err(Unsent::Failed(error.into_error())),
            },
        }
    }
}

/// A connection lent to one answer, going back to its pool when the answer
/// has ended cleanly.
struct Lease {
    link: Link,
    client: Arc<Client>,
}

/// The body of an upstream's answer. Reading it drives the connection it
/// arrives on, in the reader's own task.
pub(crate) struct Answer {
    body: Incoming,
    lease: Option<Lease>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(lease) = this.lease.as_mut()
            && Pin::new(&mut lease.link.connection).poll(cx).is_ready()
        {
            // The connection ended: what it read is in the body's channel,
            // and an end before the message's end reaches the body as an
            // error (never as a clean, truncated end).
            this.lease = None;
        }
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none()
            && let Some(lease) = this.lease.take()
        {
            lease.client.release(lease.link);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// How the test upstream treats a connection after its first answer.
    #[derive(Clone, Copy)]
    enum After {
        /// Keeps it open for the next request.
        KeepAlive,
        /// Closes it a moment later without a word, as an idle timeout does.
        CloseSoon,
    }

    /// An upstream on port 0 that answers every request with `answer` and
    /// counts the connections it accepts.
    async fn upstream(answer: &'static str, after: After) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        let Ok(read) = socket.read(&mut buffer).await else { return };
                        if read == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buffer[..read]);
                        // Every request here is a head without a body.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            socket.write_all(answer.as_bytes()).await.unwrap();
                            if let After::CloseSoon = after {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    const HELLO: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
                         2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";

    fn get() -> Request<Outgoing> {
        Request::get("/mcp").body(Full::default()).unwrap()
    }

    async fn text(client: &Arc<Client>) -> Result<String, ClientError> {
        let answer = client.send(get()).await?;
        let bytes = answer.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn one_connection_carries_one_request_after_another() {
        let (port, accepted) = upstream(HELLO, After::KeepAlive).await;
        let client = Arc::new(Client::new("127.0.0.1", port, Duration::from_secs(5)));
        for _ in 0..3 {
            assert_eq!(text(&client).await.unwrap(), "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "the first connection went back to the pool");
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
        let (port, accepted) = upstream(HELLO, After::CloseSoon).await;
        let client = Arc::new(Client::new("127.0.0.1", port, Duration::from_secs(5)));
        assert_eq!(text(&client).await.unwrap(), "hello");
        assert_eq!(client.idle.lock().unwrap().len(), 1, "the answer ended before the close");
        // Give the upstream's close time to arrive, as it would while idle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(text(&client).await.unwrap(), "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error_not_a_clean_end() {
        // A chunk of 10 bytes announced, 3 sent, then the connection closes.
        let cut = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nabc";
        let (port, _) = upstream(cut, After::CloseSoon).await;
        let client = Arc::new(Client::new("127.0.0.1", port, Duration::from_secs(5)));
        let error = text(&client).await.expect_err("a truncated answer must not look complete");
        assert!(matches!(error, ClientError::Http(_)), "{error:?}");
    }

    #[tokio::test]
    async fn an_answer_dropped_half_way_does_not_go_back_to_the_pool() {
        let endless = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
        let (port, accepted) = upstream(endless, After::KeepAlive).await;
        let client = Arc::new(Client::new("127.0.0.1", port, Duration::from_secs(5)));
        let mut body = client.send(get()).await.unwrap().into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first");
        drop(body);
        assert!(
            client.idle.lock().unwrap().is_empty(),
            "a connection mid-answer cannot take another request"
        );
        let answer = client.send(get()).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_that_is_not_listening_is_a_connect_error() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let client = Arc::new(Client::new("127.0.0.1", port, Duration::from_secs(5)));
        let error = client.send(get()).await.err().expect("nothing listens there");
        assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
    }

    #[test]
    fn an_ipv6_host_keeps_its_brackets() {
        assert_eq!(
            Client::new("::1", 8080, Duration::from_secs(1)).address,
            Address::Tcp("[::1]:8080".into())
        );
        assert_eq!(Client::new("[::1]", 8080, Duration::from_secs(1)).host, "[::1]:8080");
    }
}
