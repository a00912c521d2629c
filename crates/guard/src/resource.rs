//! Resource and issuer identifiers: parsing, canonical comparison, well-known URIs.
//!
//! RFC 8707 names a protected resource by an absolute URI. Tokens carry it in `aud`,
//! and issuers are not consistent about trailing slashes or letter case, so the
//! guard compares *canonical* forms: scheme and host lowercased, default port
//! dropped, one trailing slash removed. Issuers, on the other hand, are compared
//! exactly (RFC 8414 §3.3, RFC 9207): a different spelling is a different issuer.

use url::Url;

use crate::error::ConfigError;

/// The URL of a protected resource (an MCP server), as configured and in canonical
/// form.
///
/// ```
/// use agentgate_guard::ResourceId;
///
/// let r = ResourceId::parse("https://MCP.example.com/mcp/").unwrap();
/// assert!(r.matches("https://mcp.example.com/mcp"));
/// assert!(r.matches("HTTPS://mcp.example.com:443/mcp/"));
/// assert!(!r.matches("https://mcp.example.com/other"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    configured: String,
    canonical: String,
    url: Url,
}

impl ResourceId {
    /// Parses a resource URL: absolute, `http` or `https`, with a host and without
    /// a fragment.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Resource { url: value.to_owned(), reason };
        let url = Url::parse(value).map_err(|_| bad("not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL has no host"));
        }
        if url.fragment().is_some() || value.contains('#') {
            return Err(bad("a resource URL must not have a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("a resource URL must not carry credentials"));
        }
        let canonical = canonical_form(&url);
        Ok(Self { configured: value.to_owned(), canonical, url })
    }

    /// The URL as configured: what the protected resource metadata publishes.
    pub fn as_str(&self) -> &str {
        &self.configured
    }

    /// The canonical form used for comparisons.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether an audience value names this resource (canonical comparison).
    /// Values that are not URLs match only when they equal the configured string.
    pub fn matches(&self, audience: &str) -> bool {
        if audience == self.configured {
            return true;
        }
        match Url::parse(audience) {
            Ok(url) if url.fragment().is_none() => canonical_form(&url) == self.canonical,
            _ => false,
        }
    }

    /// The path of the resource URL, without a trailing slash (`""` for the root).
    pub fn path(&self) -> &str {
        self.url.path().trim_end_matches('/')
    }

    /// The protected resource metadata URL at the path-inserted well-known location
    /// (RFC 9728 §3.1): `https://host/.well-known/oauth-protected-resource/<path>`.
    /// For a resource at the root this is the root well-known URL.
    pub fn metadata_url(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_path(&format!("{PRM_WELL_KNOWN}{}", self.path()));
        url.into()
    }

    /// The paths (on this server) where the metadata document is served: the
    /// path-inserted one and the root one (the same when the resource is the root).
    pub fn metadata_paths(&self) -> Vec<String> {
        let inserted = format!("{PRM_WELL_KNOWN}{}", self.path());
        if inserted == PRM_WELL_KNOWN { vec![inserted] } else { vec![inserted, PRM_WELL_KNOWN.to_owned()] }
    }

    /// The host (and port, when not the default) of the resource URL, e.g. for an
    /// allow-list of `Host` headers.
    pub fn authority(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_owned(),
        }
    }
}

/// The well-known path prefix of RFC 9728.
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

fn canonical_form(url: &Url) -> String {
    // `Url` already lowercases the scheme and host and drops a default port.
    let mut s: String = url.as_str().to_owned();
    if url.query().is_none() {
        while s.ends_with('/') && s.len() > url.scheme().len() + 3 {
            s.pop();
        }
    }
    s
}

/// Validates an issuer identifier (RFC 8414 §2): an `https` URL without query or
/// fragment. Plain `http` is accepted only for loopback hosts (local development
/// and tests) unless `allow_http` is set.
pub(crate) fn parse_issuer(value: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let bad = |reason| ConfigError::Issuer { url: value.to_owned(), reason };
    let url = Url::parse(value).map_err(|_| bad("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(bad("the issuer must use https (plain http is allowed only on loopback)"));
        }
        _ => return Err(bad("the scheme must be https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || value.contains('#') {
        return Err(bad("an issuer must not have a query or fragment"));
    }
    Ok(url)
}

/// Whether `url`'s host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`):
/// the one place where plain `http` is acceptable.
///
/// ```
/// let url = "http://127.0.0.1:6274/cb".parse().unwrap();
/// assert!(agentgate_guard::is_loopback(&url));
/// ```
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `scope` is a valid scope token (RFC 6749 §3.3: `%x21 / %x23-5B /
/// %x5D-7E`, at least one).
///
/// ```
/// assert!(agentgate_guard::is_valid_scope("mcp:tools"));
/// assert!(!agentgate_guard::is_valid_scope("two words"));
/// ```
pub fn is_valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

pub(crate) fn validate_scope(scope: &str) -> Result<(), ConfigError> {
    if is_valid_scope(scope) { Ok(()) } else { Err(ConfigError::Scope(scope.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_matching() {
        let r = ResourceId::parse("http://127.0.0.1:3005/mcp").unwrap();
        assert!(r.matches("http://127.0.0.1:3005/mcp"));
        assert!(r.matches("http://127.0.0.1:3005/mcp/"));
        assert!(r.matches("HTTP://127.0.0.1:3005/mcp"));
        assert!(!r.matches("http://127.0.0.1:3005/MCP"), "paths are case-sensitive");
        assert!(!r.matches("http://127.0.0.1:3006/mcp"));
        assert!(!r.matches("http://127.0.0.1:3005/mcp#x"));
        assert!(!r.matches("https://127.0.0.1:3005/mcp"));
        let root = ResourceId::parse("https://Example.COM").unwrap();
        assert!(root.matches("https://example.com/"));
        assert!(root.matches("https://example.com"));
        assert!(!root.matches("https://example.com.evil"));
    }

    #[test]
    fn metadata_locations() {
        let r = ResourceId::parse("https://example.com/public/mcp").unwrap();
        assert_eq!(r.metadata_url(), "https://example.com/.well-known/oauth-protected-resource/public/mcp");
        assert_eq!(
            r.metadata_paths(),
            vec!["/.well-known/oauth-protected-resource/public/mcp", PRM_WELL_KNOWN]
        );
        let root = ResourceId::parse("http://127.0.0.1:3005").unwrap();
        assert_eq!(root.metadata_url(), "http://127.0.0.1:3005/.well-known/oauth-protected-resource");
        assert_eq!(root.metadata_paths(), vec![PRM_WELL_KNOWN]);
    }

    #[test]
    fn refuses_bad_resources() {
        for bad in [
            "mcp.example.com",
            "https://example.com/mcp#frag",
            "ftp://example.com",
            "https://u:p@example.com/",
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn issuers() {
        assert!(parse_issuer("https://tenant.logto.app/oidc", false).is_ok());
        assert!(parse_issuer("http://127.0.0.1:4000", false).is_ok());
        assert!(parse_issuer("http://localhost:4000", false).is_ok());
        assert!(parse_issuer("http://auth.example.com", false).is_err());
        assert!(parse_issuer("http://auth.example.com", true).is_ok());
        assert!(parse_issuer("https://auth.example.com/?x=1", false).is_err());
    }

    #[test]
    fn scopes() {
        assert!(validate_scope("mcp:tools").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(validate_scope(bad).is_err(), "{bad:?}");
        }
    }
}
