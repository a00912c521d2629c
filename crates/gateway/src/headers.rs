//! Which headers cross the gateway, each way.
//!
//! A proxy forwards end-to-end headers and drops hop-by-hop ones (RFC 9110
//! §7.6.1). The gateway also drops what belongs to the gateway's own origin
//! and must never reach the upstream or come back from it:
//!
//! - `Authorization`: the agent's token stops at the gateway (the guard has
//!   already taken it out; it is dropped here too, whoever calls this);
//! - `Cookie` and `Set-Cookie`: the gateway may share its origin with the
//!   issuer, whose sign-in session is a cookie; an upstream must neither read
//!   it nor set cookies on that origin;
//! - the headers that tell an upstream who is calling
//!   ([`IDENTITY_PREFIX`]): only the gateway sets them, so a client's own are
//!   removed before anything else.
//!
//! Everything else — `Mcp-Session-Id`, `Mcp-Protocol-Version`,
//! `Last-Event-ID`, `Accept`, content headers, headers nobody here knows —
//! passes unchanged.

use http::{HeaderMap, HeaderName, header};

/// The prefix of the headers by which the gateway tells an upstream who is
/// calling. A client cannot send them: they are removed from every request.
pub const IDENTITY_PREFIX: &str = "x-agentgate-";

/// Headers of one connection, never forwarded (RFC 9110 §7.6.1), and those of
/// the gateway's own origin.
const DROPPED: [HeaderName; 12] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::AUTHORIZATION,
    header::COOKIE,
];

/// The headers of a client's request that go on to the upstream.
pub fn to_upstream(headers: &HeaderMap) -> HeaderMap {
    end_to_end(headers, |name| name.as_str().starts_with(IDENTITY_PREFIX))
}

/// The headers of an upstream's answer that go back to the client: never a
/// cookie for the gateway's origin, nor an identity header (an upstream that
/// echoes request headers would otherwise hand the agent the person's token
/// at their provider).
pub fn to_client(headers: &HeaderMap) -> HeaderMap {
    end_to_end(headers, |name| name == header::SET_COOKIE || name.as_str().starts_with(IDENTITY_PREFIX))
}

/// `headers` without the hop-by-hop ones (including those the `Connection`
/// header names), the gateway's own, and those `also_dropped` picks.
fn end_to_end(headers: &HeaderMap, also_dropped: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if DROPPED.contains(name) || also_dropped(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort();
        names
    }

    #[test]
    fn credentials_and_spoofed_identity_never_reach_the_upstream() {
        let out = to_upstream(&map(&[
            ("authorization", "Bearer secret"),
            ("cookie", "agentgate_session=abc"),
            ("x-agentgate-sub", "admin"),
            ("X-AgentGate-Client-Id", "trusted-app"),
            ("host", "gateway.example"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("mcp-session-id", "s1"),
            ("mcp-protocol-version", "2025-11-25"),
            ("last-event-id", "e7"),
            ("x-custom", "kept"),
        ]));
        assert_eq!(names(&out), ["last-event-id", "mcp-protocol-version", "mcp-session-id", "x-custom"]);
    }

    #[test]
    fn an_upstream_cannot_set_cookies_on_the_gateways_origin_nor_echo_identity_headers() {
        let out = to_client(&map(&[
            ("set-cookie", "agentgate_session=evil; Path=/"),
            ("x-agentgate-provider-token", "the person's token at their provider"),
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "s1"),
            ("transfer-encoding", "chunked"),
        ]));
        assert_eq!(names(&out), ["content-type", "mcp-session-id"]);
    }
}
