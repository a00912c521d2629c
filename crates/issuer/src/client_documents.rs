//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! which the MCP spec asks authorization servers to support): a `client_id`
//! that is an https URL names a JSON document of client metadata, fetched
//! from that URL.
//!
//! Fetching a URL that anyone can put in an authorization request is a
//! server-side request forgery risk: the URL could point at the cloud metadata
//! service, the database next door, or this server itself. So:
//!
//! - the URL must be https, with a path, no fragment, no credentials, no `.`
//!   or `..` segments, and already in its normal form (the document's
//!   `client_id` must equal it byte for byte);
//! - its host is resolved here, every address that is loopback, private,
//!   link-local, multicast, unspecified or otherwise not on the public internet
//!   is dropped, and the connection goes to one of the addresses that passed
//!   (a DNS answer cannot change between the check and the connection); an IP
//!   literal is checked the same way; no proxy is used;
//! - redirects are not followed; the whole fetch has a short timeout, and at
//!   most [`MAX_DOCUMENT_BYTES`] are read;
//! - fetches are few at a time, and fewer per host (a slow host cannot delay
//!   other apps' documents); a host that could not be reached is not tried
//!   again for [`FAILURE_CACHE_SECS`], whatever URL on it is named;
//! - the answer must be `200` with a JSON content type.
//!
//! [`Settings::client_documents_allow_loopback`] lifts the loopback rule (and
//! allows plain http on loopback) so tests can serve documents locally; it is
//! for development only.
//!
//! A document is cached for as long as its `Cache-Control: max-age` (or
//! `Expires`) says, within [`MIN_CACHE_SECS`] and [`MAX_CACHE_SECS`]. The
//! app it describes is stored like any other (so grants and tokens can refer
//! to it) with `registration = "document"`, third-party, within the same scope
//! ceiling as self-registered apps. It authenticates with `none` (a public
//! client) or `private_key_jwt` with the public keys the document holds
//! (`jwks`) or points to (`jwks_uri`, fetched under the same rules; see
//! [`crate::client_assertions`]); a document can never hold a secret.
//!
//! [`Settings::client_documents_allow_loopback`]: crate::Settings::client_documents_allow_loopback

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgate_guard::error_chain;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::client_assertions::check_jwks;
use crate::clients::{self, registered_by};
use crate::registration::{ClientMetadata, check_metadata};
use crate::store::{Client, Store, StoreError};
use crate::{Issuer, now};

/// The most read of a metadata document (the draft suggests 5 kB).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// A document is kept at least this long, whatever its headers say (5 minutes).
pub const MIN_CACHE_SECS: i64 = 300;
/// A document is kept at most this long (1 day).
pub const MAX_CACHE_SECS: i64 = 24 * 3600;
/// The whole fetch, connection included, must finish within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many documents are kept in memory.
const MAX_CACHED: usize = 10_000;
/// A failed fetch is not tried again for this long, so repeated requests
/// naming a broken or hostile URL do not make the server fetch each time.
pub const FAILURE_CACHE_SECS: i64 = 30;
/// At most this many fetches run at once, all hosts together; more wait
/// their turn.
const MAX_CONCURRENT_FETCHES: usize = 16;
/// At most this many fetches from one host run at once, so a slow host holds
/// few turns and other apps' documents do not wait behind it. A fetch that
/// cannot get a turn from its host within the fetch timeout fails.
const MAX_FETCHES_PER_HOST: usize = 2;

/// Why a metadata document could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The `client_id` is not a URL a document may be fetched from.
    #[error("{url:?} is not a URL client metadata (a document or its keys) may be fetched from: {reason}")]
    BadUrl {
        /// The client id.
        url: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// Its host is (or resolves only to) an address that is not on the public internet.
    #[error("{0:?} is on a private or reserved address; it was not fetched")]
    ForbiddenAddress(String),
    /// The fetch failed: no answer, a redirect, a status other than 200, too
    /// large, not JSON.
    #[error("the client metadata at {url:?} could not be fetched: {reason}")]
    Fetch {
        /// The client id.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The document breaks a rule.
    #[error("the client metadata at {url:?} is not acceptable: {reason}")]
    Invalid {
        /// The client id.
        url: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `client_id` names a metadata document rather than a registered app.
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Whether an address is one a document may never be fetched from: anything
/// not on the public internet.
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: an IPv4 address in disguise
                || (s[0] == 0x2002) // 6to4: likewise
                || s[..6] == [0; 6] // IPv4-compatible and other ::/96 forms
                || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0) // IPv4-translated, ::ffff:0:0/96
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: an IPv4 address in disguise
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only, 100::/64
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || a >= 240 // reserved
}

/// Checks a document URL before anything is fetched.
pub fn check_url(client_id: &str, allow_loopback: bool) -> Result<Url, DocumentError> {
    let bad = |reason| DocumentError::BadUrl { url: client_id.to_owned(), reason };
    let url = Url::parse(client_id).map_err(|_| bad("not a URL"))?;
    if url.as_str() != client_id {
        return Err(bad("it is not in normal form (the document's client_id must equal it exactly)"));
    }
    let loopback_host = agentgate_guard::is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback_host => {}
        _ => return Err(bad("it must be an https URL")),
    }
    if url.fragment().is_some() {
        return Err(bad("it must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry credentials"));
    }
    if url.path() == "/" {
        return Err(bad("it must have a path"));
    }
    if client_id.split(['?', '#']).next().unwrap_or_default().split('/').any(|s| s == "." || s == "..") {
        return Err(bad("it must not have . or .. path segments"));
    }
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => None,
        None => return Err(bad("it must have a host")),
    };
    if let Some(ip) = literal
        && !address_allowed(ip, allow_loopback)
    {
        return Err(DocumentError::ForbiddenAddress(client_id.to_owned()));
    }
    Ok(url)
}

fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    !forbidden_address(ip) || (allow_loopback && ip.is_loopback())
}

/// The resolver's refusal: the host has no address a document may come from.
#[derive(Debug)]
struct NoPublicAddress(String);

impl std::fmt::Display for NoPublicAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has no public address", self.0)
    }
}

impl std::error::Error for NoPublicAddress {}

/// DNS for document fetches: the system resolver, minus every address a
/// document may not come from. reqwest connects only to what this returns.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            match guard_addresses(&host, found, allow_loopback) {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as Addrs),
                Err(refused) => Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// What a name resolved to, minus every address a document may not come
/// from; refused when nothing is left.
fn guard_addresses(
    host: &str,
    found: Vec<SocketAddr>,
    allow_loopback: bool,
) -> Result<Vec<SocketAddr>, NoPublicAddress> {
    let allowed: Vec<SocketAddr> =
        found.into_iter().filter(|a| address_allowed(a.ip(), allow_loopback)).collect();
    if allowed.is_empty() { Err(NoPublicAddress(host.to_owned())) } else { Ok(allowed) }
}

/// A fetched document and how long it may be used.
#[derive(Debug, Clone)]
struct Cached {
    client: Client,
    until: i64,
}

/// Fetches, checks and caches metadata documents.
pub struct ClientDocuments {
    http: reqwest::Client,
    allow_loopback: bool,
    cache: Mutex<HashMap<String, Cached>>,
    /// URLs whose last fetch failed: until when, and why.
    failures: Mutex<HashMap<String, (i64, String)>>,
    /// Anyone can make the server fetch (an authorization request is enough),
    /// so fetches are few at a time...
    fetching: tokio::sync::Semaphore,
    /// ...and fewer per host: the turns of each host with fetches under way
    /// or waiting (an idle host has no entry).
    hosts: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Hosts whose last fetch could not reach them: until when, and why.
    host_failures: Mutex<HashMap<String, (i64, String)>>,
}

/// A fetch's turn at its host; given back when dropped, and the host's entry
/// removed once no fetch holds or waits for one.
struct HostTurn<'a> {
    documents: &'a ClientDocuments,
    host: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for HostTurn<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut hosts = self.documents.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let idle = hosts.get(&self.host).is_some_and(|turns| {
            Arc::strong_count(turns) == 1 && turns.available_permits() == MAX_FETCHES_PER_HOST
        });
        if idle {
            hosts.remove(&self.host);
        }
    }
}

/// What fetches are counted by: the host name or address, whatever the port
/// (a host can open as many ports as it likes).
fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_ascii_lowercase()
}

impl std::fmt::Debug for ClientDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDocuments")
            .field("allow_loopback", &self.allow_loopback)
            .finish_non_exhaustive()
    }
}

impl ClientDocuments {
    /// A fetcher; `allow_loopback` is for development only.
    pub fn new(allow_loopback: bool) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("agentgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls builds");
        Self {
            http,
            allow_loopback,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES),
            hosts: Mutex::new(HashMap::new()),
            host_failures: Mutex::new(HashMap::new()),
        }
    }

    /// A turn at `url`'s host, within the fetch timeout.
    async fn host_turn(&self, url: &Url) -> Result<HostTurn<'_>, DocumentError> {
        let host = host_of(url);
        let turns = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let turns = hosts
                .entry(host.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_FETCHES_PER_HOST)));
            turns.clone()
        };
        // The turn is made before waiting, so the host's entry lives while we wait.
        let mut turn = HostTurn { documents: self, host, permit: None };
        match tokio::time::timeout(FETCH_TIMEOUT, turns.acquire_owned()).await {
            Ok(Ok(permit)) => {
                turn.permit = Some(permit);
                Ok(turn)
            }
            _ => Err(DocumentError::Fetch {
                url: url.to_string(),
                reason: format!("{MAX_FETCHES_PER_HOST} fetches from its host were already under way"),
            }),
        }
    }

    /// Why `url`'s host could not be reached moments ago, if it could not.
    fn recent_host_failure(&self, url: &Url, now: i64) -> Option<String> {
        let failures = self.host_failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(&host_of(url)).filter(|(until, _)| *until > now).map(|(_, why)| why.clone())
    }

    fn remember_host_failure(&self, url: &Url, why: &str, now: i64) {
        let mut failures = self.host_failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_CACHED {
            failures.retain(|_, (until, _)| *until > now);
            if failures.len() >= MAX_CACHED {
                return;
            }
        }
        failures.insert(host_of(url), (now + FAILURE_CACHE_SECS, why.to_owned()));
    }

    fn cached(&self, client_id: &str, now: i64) -> Option<Client> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(client_id).filter(|c| c.until > now).map(|c| c.client.clone())
    }

    fn remember(&self, client: &Client, until: i64, now: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            // Forget what has expired; if that is not enough, this one is not
            // cached (it is fetched again next time): memory stays bounded.
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                return;
            }
        }
        cache.insert(client.client_id.clone(), Cached { client: client.clone(), until });
    }

    /// Why the last fetch of `url` failed, if it failed moments ago.
    fn recent_failure(&self, url: &str, now: i64) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(url).filter(|(until, _)| *until > now).map(|(_, why)| why.clone())
    }

    fn remember_failure(&self, url: &str, why: String, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_CACHED {
            failures.retain(|_, (until, _)| *until > now);
            if failures.len() >= MAX_CACHED {
                return;
            }
        }
        failures.insert(url.to_owned(), (now + FAILURE_CACHE_SECS, why));
    }

    /// Fetches the document at `url`: its metadata and how many seconds it may
    /// be cached.
    async fn fetch<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<(T, i64), DocumentError> {
        let failed = |reason: String| DocumentError::Fetch { url: url.to_string(), reason };
        if let Some(why) = self.recent_host_failure(url, now()) {
            return Err(failed(format!(
                "its host could not be reached less than {FAILURE_CACHE_SECS} seconds ago ({why})"
            )));
        }
        let _host_turn = self.host_turn(url).await?;
        let _turn = self.fetching.acquire().await.map_err(|_| failed("shutting down".into()))?;
        // Not reaching the host (no connection, no answer in time) counts
        // against the host, whatever URL on it comes next.
        let unreachable = |e: reqwest::Error| {
            let why = error_chain(&e);
            self.remember_host_failure(url, &why, now());
            failed(why)
        };
        let mut response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if agentgate_guard::caused_by::<NoPublicAddress>(&e) {
                    DocumentError::ForbiddenAddress(url.to_string())
                } else {
                    unreachable(e)
                }
            })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(failed(format!("it answered a redirect ({status}); redirects are not followed")));
        }
        if status != reqwest::StatusCode::OK {
            return Err(failed(format!("it answered HTTP {status}")));
        }
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(failed(format!("its content type is {content_type:?}, not JSON")));
        }
        let ttl = cache_seconds(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(failed(format!("it is larger than {MAX_DOCUMENT_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = serde_json::from_slice(&body).map_err(|e| DocumentError::Invalid {
            url: url.to_string(),
            reason: format!("it is not a JSON object of the expected shape: {e}"),
        })?;
        Ok((parsed, ttl))
    }
}

/// How long a document may be cached, from `Cache-Control` (`no-store`,
/// `no-cache`, `max-age`) or `Expires`, within the bounds.
fn cache_seconds(headers: &reqwest::header::HeaderMap) -> i64 {
    let cache_control = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    let asked = if cache_control.iter().any(|d| d == "no-store" || d == "no-cache") {
        0
    } else if let Some(age) =
        cache_control.iter().find_map(|d| d.strip_prefix("max-age=")?.parse::<i64>().ok())
    {
        age
    } else {
        headers
            .get(reqwest::header::EXPIRES)
            .and_then(|v| v.to_str().ok())
            .and_then(httpdate_seconds)
            .map_or(0, |at| at - now())
    };
    asked.clamp(MIN_CACHE_SECS, MAX_CACHE_SECS)
}

/// Seconds since the epoch of an HTTP date (RFC 9110 IMF-fixdate only).
fn httpdate_seconds(text: &str) -> Option<i64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    if !(1..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
        || h < 0
        || m < 0
        || s < 0
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Checks a fetched document for `url` and turns it into the app it
/// describes. Pure: nothing is stored.
pub fn check_document(
    url: &str,
    metadata: &ClientMetadata,
    ceiling: &[String],
) -> Result<Client, DocumentError> {
    let invalid = |reason: String| DocumentError::Invalid { url: url.to_owned(), reason };
    if metadata.client_id.as_deref() != Some(url) {
        return Err(invalid(format!(
            "its client_id ({:?}) is not the URL it was fetched from",
            metadata.client_id.as_deref().unwrap_or("missing")
        )));
    }
    if metadata.client_secret.is_some() {
        return Err(invalid("it holds a client_secret, which a public document must not".into()));
    }
    if metadata.client_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(invalid("client_name is required".into()));
    }
    let method = match metadata.token_endpoint_auth_method.as_deref() {
        None | Some("none") => "none",
        Some("private_key_jwt") => "private_key_jwt",
        Some(other) => {
            return Err(invalid(format!(
                "token_endpoint_auth_method {other:?} is not allowed: a document cannot hold a secret \
                 (use none or private_key_jwt)"
            )));
        }
    };
    // The keys of a private_key_jwt app: inline here, or fetched from jwks_uri by the caller.
    let jwks = match (method, &metadata.jwks, &metadata.jwks_uri) {
        ("none", _, _) => None,
        (_, Some(jwks), None) => Some(check_jwks(jwks).map_err(invalid)?),
        (_, None, Some(_)) => None,
        _ => {
            return Err(invalid(
                "private_key_jwt needs the app's public keys: jwks or jwks_uri, one of them".into(),
            ));
        }
    };
    let as_public = ClientMetadata {
        token_endpoint_auth_method: Some("none".into()),
        client_id: None,
        ..metadata.clone()
    };
    let (new, grant_types) = check_metadata(&as_public, ceiling).map_err(|e| invalid(e.description))?;
    let registered = clients::prepare(new, now()).map_err(|e| invalid(e.to_string()))?;
    Ok(Client {
        client_id: url.to_owned(),
        grant_types,
        registration: registered_by::DOCUMENT.into(),
        token_endpoint_auth_method: method.into(),
        jwks,
        ..registered.client
    })
}

impl<S: Store> Issuer<S> {
    /// The app whose `client_id` is the URL of its metadata document: from the
    /// cache while fresh, else fetched, checked and stored.
    pub async fn document_client(&self, client_id: &str) -> Result<Client, DocumentError> {
        let now = now();
        if let Some(client) = self.documents.cached(client_id, now) {
            return Ok(client);
        }
        let url = check_url(client_id, self.settings.client_documents_allow_loopback)?;
        if let Some(why) = self.documents.recent_failure(client_id, now) {
            return Err(DocumentError::Fetch {
                url: client_id.to_owned(),
                reason: format!("it failed less than {FAILURE_CACHE_SECS} seconds ago ({why})"),
            });
        }
        let fetched = match self.documents.fetch::<ClientMetadata>(&url).await {
            Ok((metadata, ttl)) => {
                match check_document(client_id, &metadata, &self.registration_ceiling().await?) {
                    Ok(client) => self.with_fetched_keys(client, metadata.jwks_uri.as_deref(), ttl).await,
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let (mut client, ttl) = match fetched {
            Ok(found) => found,
            Err(
                error @ (DocumentError::Fetch { .. }
                | DocumentError::ForbiddenAddress(_)
                | DocumentError::Invalid { .. }),
            ) => {
                self.documents.remember_failure(client_id, error.to_string(), now);
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        self.store_document_client(&mut client).await?;
        self.documents.remember(&client, now + ttl, now);
        tracing::info!(client_id, "fetched a client metadata document");
        Ok(client)
    }

    /// A `private_key_jwt` app whose document names a `jwks_uri`: its keys,
    /// fetched with the same guard as documents; cached no longer than either.
    async fn with_fetched_keys(
        &self,
        mut client: Client,
        jwks_uri: Option<&str>,
        ttl: i64,
    ) -> Result<(Client, i64), DocumentError> {
        let (Some(jwks_uri), None) = (jwks_uri, &client.jwks) else { return Ok((client, ttl)) };
        if client.token_endpoint_auth_method != "private_key_jwt" {
            return Ok((client, ttl));
        }
        let url = check_url(jwks_uri, self.settings.client_documents_allow_loopback)?;
        let (jwks, keys_ttl) = self.documents.fetch::<serde_json::Value>(&url).await?;
        let invalid = |reason| DocumentError::Invalid { url: jwks_uri.to_owned(), reason };
        client.jwks = Some(check_jwks(&jwks).map_err(invalid)?);
        Ok((client, ttl.min(keys_ttl)))
    }

    /// Stores the app a document describes, or refreshes the stored copy; never
    /// touches an app registered another way under the same id.
    async fn store_document_client(&self, client: &mut Client) -> Result<(), DocumentError> {
        let conflict = || DocumentError::Invalid {
            url: client.client_id.clone(),
            reason: "an app registered another way already has this client_id".into(),
        };
        for _ in 0..2 {
            match self.store.client(&client.client_id).await? {
                Some(stored) if stored.registration != registered_by::DOCUMENT => return Err(conflict()),
                Some(stored) => {
                    client.created_at = stored.created_at;
                    client.version = self.store.update_client(client).await?.unwrap_or(stored.version);
                    return Ok(());
                }
                // Two first fetches may race: the loser finds the row on its second look.
                None => match self.store.insert_client(client).await {
                    Err(StoreError::Conflict(_)) => continue,
                    other => return Ok(other?),
                },
            }
        }
        Err(conflict())
    }

    /// Refuses an app known by its metadata document when documents are off:
    /// the stored copy must not outlive the setting.
    pub(crate) fn check_client_source(&self, client: &Client) -> Result<(), crate::error::OAuthError> {
        if client.registration == registered_by::DOCUMENT && !self.settings.client_documents {
            return Err(crate::error::OAuthError::invalid_client(
                "apps known by their metadata document are not accepted here",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_off_the_public_internet_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2001:db8::1",
            "::127.0.0.1",
        ] {
            assert!(forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.215.14"] {
            assert!(!forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_name_that_resolves_off_the_public_internet_is_refused() {
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 443);
        for private in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fd00::1", "::ffff:10.0.0.1"] {
            assert!(guard_addresses("agent.example", vec![at(private)], false).is_err(), "{private}");
        }
        // A name with a public and a private address keeps only the public one:
        // the connection can only go there.
        let mixed = vec![at("10.0.0.1"), at("93.184.215.14"), at("169.254.169.254")];
        assert_eq!(guard_addresses("agent.example", mixed, false).unwrap(), [at("93.184.215.14")]);
        // The development setting lets loopback through, and nothing else private.
        assert_eq!(guard_addresses("localhost", vec![at("127.0.0.1")], true).unwrap(), [at("127.0.0.1")]);
        assert!(guard_addresses("agent.example", vec![at("10.0.0.1")], true).is_err());
    }

    #[test]
    fn document_urls_are_checked_before_any_fetch() {
        assert!(check_url("https://agent.example/client.json", false).is_ok());
        assert!(check_url("https://agent.example/oauth/client?v=2", false).is_ok());
        for bad in [
            "http://agent.example/client.json",
            "https://agent.example",
            "https://agent.example/",
            "https://agent.example/client.json#x",
            "https://user:pw@agent.example/client.json",
            "https://agent.example/a/../client.json",
            "https://agent.example/./client.json",
            "https://AGENT.example/client.json",
            "https://agent.example:443/client.json",
            "not a url",
        ] {
            assert!(matches!(check_url(bad, false), Err(DocumentError::BadUrl { .. })), "{bad}");
        }
        for forbidden in [
            "https://127.0.0.1/client.json",
            "https://10.0.0.1/client.json",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/client.json",
            "https://[::ffff:7f00:1]/client.json",
        ] {
            assert!(
                matches!(check_url(forbidden, false), Err(DocumentError::ForbiddenAddress(_))),
                "{forbidden}"
            );
        }
        // The development setting opens loopback, plain http included, and nothing else.
        assert!(check_url("http://127.0.0.1:8000/client.json", true).is_ok());
        assert!(check_url("https://[::1]/client.json", true).is_ok());
        assert!(check_url("http://10.0.0.1/client.json", true).is_err());
        assert!(check_url("https://10.0.0.1/client.json", true).is_err());
    }

    #[test]
    fn caching_follows_the_headers_within_bounds() {
        use reqwest::header::{CACHE_CONTROL, EXPIRES, HeaderMap, HeaderValue};
        let with = |name, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            h
        };
        assert_eq!(cache_seconds(&with(CACHE_CONTROL, "public, max-age=3600")), 3600);
        assert_eq!(cache_seconds(&with(CACHE_CONTROL, "max-age=5")), MIN_CACHE_SECS);
        assert_eq!(cache_seconds(&with(CACHE_CONTROL, "max-age=99999999")), MAX_CACHE_SECS);
        assert_eq!(cache_seconds(&with(CACHE_CONTROL, "no-store, max-age=3600")), MIN_CACHE_SECS);
        assert_eq!(cache_seconds(&HeaderMap::new()), MIN_CACHE_SECS);
        assert_eq!(
            cache_seconds(&with(EXPIRES, "Sun, 06 Nov 1994 08:49:37 GMT")),
            MIN_CACHE_SECS,
            "in the past"
        );
        assert_eq!(httpdate_seconds("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(httpdate_seconds("yesterday"), None);
        assert_eq!(httpdate_seconds("Sun, 06 Nov 99999999999999999 08:49:37 GMT"), None, "no overflow");
        assert_eq!(httpdate_seconds("Sun, 06 Nov 1994 99999999999999:49:37 GMT"), None);
    }
}
