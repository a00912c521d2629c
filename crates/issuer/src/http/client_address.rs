//! Which address a request came from, for the per-address sign-in limit.
//!
//! Behind a reverse proxy every request arrives from the proxy, so the limit
//! would lock everyone out at once. A proxy the operator trusts names the client
//! in `X-Forwarded-For`; anyone else can write that header too, so it is read
//! only when the peer itself is a trusted proxy, and then from the right: each
//! proxy appends the address it saw, so the rightmost address that is not one
//! of ours is the first one no trusted party vouches for beyond.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The client address of a request that came from `peer`.
///
/// ```
/// # use agentgate_issuer::http::client_address;
/// let proxy = "10.0.0.1".parse().unwrap();
/// let mut headers = axum::http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
/// assert_eq!(client_address(Some(proxy), &headers, &[proxy]), Some("203.0.113.7".parse().unwrap()));
/// // The same header from a peer that is not a trusted proxy is ignored.
/// let stranger = "198.51.100.9".parse().unwrap();
/// assert_eq!(client_address(Some(stranger), &headers, &[proxy]), Some(stranger));
/// ```
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let mut forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    forwarded.reverse();
    for hop in forwarded {
        // A hop we cannot read ends the chain: what lies left of it is unvouched.
        let Ok(address) = hop.parse::<IpAddr>() else { return Some(peer) };
        if !trusted_proxies.contains(&address) {
            return Some(address);
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let spoofed = headers(&["1.2.3.4"]);
        assert_eq!(client_address(Some(ip("198.51.100.9")), &spoofed, &[]), Some(ip("198.51.100.9")));
    }

    #[test]
    fn a_client_cannot_hide_behind_a_forged_left_entry() {
        // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended what it saw.
        let proxy = ip("10.0.0.1");
        let chain = headers(&["1.2.3.4, 203.0.113.7"]);
        assert_eq!(client_address(Some(proxy), &chain, &[proxy]), Some(ip("203.0.113.7")));
    }

    #[test]
    fn chains_of_trusted_proxies_and_repeated_headers() {
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let chain = headers(&["203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_address(Some(a), &chain, &[a, b]), Some(ip("203.0.113.7")));
        assert_eq!(client_address(Some(a), &headers(&["::1, 2001:db8::5"]), &[a]), Some(ip("2001:db8::5")));
    }

    #[test]
    fn missing_or_unreadable_chains_fall_back_to_the_peer() {
        let proxy = ip("10.0.0.1");
        assert_eq!(client_address(Some(proxy), &HeaderMap::new(), &[proxy]), Some(proxy));
        assert_eq!(client_address(Some(proxy), &headers(&["1.2.3.4, junk"]), &[proxy]), Some(proxy));
        assert_eq!(client_address(None, &headers(&["1.2.3.4"]), &[proxy]), None);
    }
}
