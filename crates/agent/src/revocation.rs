//! Signing out at the issuer: the kept tokens are revoked (RFC 7009) before
//! the file is forgotten, so a copy of the file left anywhere (a backup, a
//! synced folder) is worth nothing.
//!
//! The issuer is the one recorded with the tokens when they were granted; its
//! metadata (RFC 8414, else OpenID Connect discovery) must name exactly that
//! issuer, and tokens go only to the `revocation_endpoint` it advertises, over
//! https (or http on this machine), never following a redirect. The refresh
//! token goes first: revoking it ends the grant, and its access tokens with
//! it at most issuers (RFC 7009 §2.1); the access token follows for the
//! others, and an issuer that cannot revoke access tokens by themselves
//! (`unsupported_token_type`, as for JWTs at oidc-provider) is fine then.

use std::time::Duration;

use serde::Deserialize;

use crate::connect::{is_secure_or_local, printable};
use crate::credentials::Saved;

/// What became of the tokens at the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The issuer revoked them.
    Revoked,
    /// No tokens were kept.
    NothingKept,
    /// Tokens were kept but not the issuer that granted them.
    NoIssuer,
    /// The issuer advertises no revocation endpoint.
    NotOffered,
    /// The issuer does not know the app the tokens were granted to (its
    /// registration was dropped, or its data reset): they open nothing there
    /// any more.
    UnknownClient,
    /// The issuer could not be reached, or refused; the reason. Trying again
    /// later may work.
    Failed(String),
}

impl Revocation {
    /// Whether the tokens may be forgotten: nothing more can be done at the
    /// issuer (`Failed` is the one outcome worth another try).
    pub fn is_final(&self) -> bool {
        !matches!(self, Revocation::Failed(_))
    }
}

impl std::fmt::Display for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revocation::Revoked => f.write_str("its tokens were revoked at the issuer"),
            Revocation::NothingKept => f.write_str("no tokens were kept"),
            Revocation::NoIssuer => {
                f.write_str("the issuer of its tokens is not known; they stay valid until they expire")
            }
            Revocation::NotOffered => {
                f.write_str("the issuer offers no revocation; its tokens stay valid until they expire")
            }
            Revocation::UnknownClient => f.write_str(
                "the issuer no longer knows the app its tokens were granted to (invalid_client), so they \
                 open nothing there; forgotten here (a confidential app revokes with --client-id and \
                 --client-secret)",
            ),
            Revocation::Failed(reason) => write!(f, "the issuer did not revoke its tokens: {reason}"),
        }
    }
}

/// Revokes the tokens `saved` holds at the issuer that granted them. A
/// confidential client authenticates with `client_secret` the way the issuer
/// advertises (HTTP Basic unless it offers only `client_secret_post`); a
/// public one names its `client_id`.
pub async fn revoke(saved: &Saved, client_secret: Option<&str>) -> Revocation {
    let credentials = &saved.credentials;
    let Some(tokens) = credentials.token_response.as_ref() else { return Revocation::NothingKept };
    // The token response as the issuer sent it.
    let tokens = serde_json::to_value(tokens).unwrap_or_default();
    let token = |field: &str| tokens.get(field).and_then(|t| t.as_str());
    let (refresh, access) = (token("refresh_token"), token("access_token"));
    if refresh.is_none() && access.is_none() {
        return Revocation::NothingKept;
    }
    let Some(issuer) = credentials.issuer.as_deref() else { return Revocation::NoIssuer };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => return Revocation::Failed(e.to_string()),
    };
    let metadata = match issuer_metadata(&http, issuer).await {
        Ok(metadata) => metadata,
        Err(reason) => return Revocation::Failed(reason),
    };
    let Some(endpoint) = metadata.revocation_endpoint.as_deref() else { return Revocation::NotOffered };
    if !url::Url::parse(endpoint).is_ok_and(|url| is_secure_or_local(&url)) {
        return Revocation::Failed(format!(
            "its revocation endpoint {endpoint:?} is neither https nor on this machine"
        ));
    }
    let client = Client {
        http: &http,
        endpoint,
        id: &credentials.client_id,
        secret: client_secret,
        metadata: &metadata,
    };
    match (refresh, access) {
        (Some(refresh), access) => {
            if let Err(reason) = client.revoke(refresh, "refresh_token").await {
                return client.failed(reason);
            }
            if let Some(access) = access {
                // The grant is gone; most issuers ended its access tokens with it.
                if let Err(reason) = client.revoke(access, "access_token").await {
                    tracing::debug!(%reason, "the access token was not revoked by itself");
                }
            }
            Revocation::Revoked
        }
        (None, Some(access)) => match client.revoke(access, "access_token").await {
            Ok(()) => Revocation::Revoked,
            // It revokes refresh tokens only (as oidc-provider does for JWTs).
            Err(reason) if reason.ends_with(" unsupported_token_type") => Revocation::NotOffered,
            Err(reason) => client.failed(reason),
        },
        (None, None) => Revocation::NothingKept,
    }
}

#[derive(Deserialize)]
struct IssuerMetadata {
    issuer: String,
    revocation_endpoint: Option<String>,
    revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The client at the revocation endpoint.
struct Client<'a> {
    http: &'a reqwest::Client,
    endpoint: &'a str,
    id: &'a str,
    secret: Option<&'a str>,
    metadata: &'a IssuerMetadata,
}

impl Client<'_> {
    async fn revoke(&self, token: &str, hint: &str) -> Result<(), String> {
        let mut request = self.http.post(self.endpoint);
        let mut form = vec![("token", token), ("token_type_hint", hint)];
        match self.secret {
            Some(secret) if self.posts_secret() => {
                form.extend([("client_id", self.id), ("client_secret", secret)])
            }
            // RFC 6749 §2.3.1: both form-encoded before they are joined.
            Some(secret) => request = request.basic_auth(form_encode(self.id), Some(form_encode(secret))),
            None => form.push(("client_id", self.id)),
        }
        // RFC 7009 §2.2: 200 whether or not the token was still valid.
        let response = request.form(&form).send().await.map_err(|e| format!("{}: {e}", self.endpoint))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let error = body.get("error").and_then(|e| e.as_str()).unwrap_or_default();
        Err(format!("{} answered {status} {}", self.endpoint, printable(error, 100)).trim_end().to_owned())
    }

    /// What a refused revocation means: for an app that sent no secret,
    /// `invalid_client` says the issuer no longer knows it.
    fn failed(&self, reason: String) -> Revocation {
        if self.secret.is_none() && reason.ends_with(" invalid_client") {
            Revocation::UnknownClient
        } else {
            Revocation::Failed(reason)
        }
    }

    /// `client_secret_post` when that is all the issuer takes; else Basic,
    /// RFC 8414's default.
    fn posts_secret(&self) -> bool {
        self.metadata.revocation_endpoint_auth_methods_supported.as_ref().is_some_and(|methods| {
            methods.iter().any(|m| m == "client_secret_post")
                && !methods.iter().any(|m| m == "client_secret_basic")
        })
    }
}

/// `application/x-www-form-urlencoded`, as HTTP Basic client credentials are.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The issuer's metadata, from the first well-known URI that has it; it must
/// name exactly `issuer`.
async fn issuer_metadata(http: &reqwest::Client, issuer: &str) -> Result<IssuerMetadata, String> {
    let mut last = String::new();
    for url in metadata_urls(issuer)? {
        let response = match http.get(&url).header("accept", "application/json").send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                last = format!("{url} answered {}", response.status());
                continue;
            }
            Err(e) => {
                last = format!("{url}: {e}");
                continue;
            }
        };
        let metadata: IssuerMetadata = match response.json().await {
            Ok(metadata) => metadata,
            Err(e) => {
                last = format!("{url} is not authorization server metadata: {e}");
                continue;
            }
        };
        if metadata.issuer != issuer {
            return Err(format!(
                "{url} names the issuer {:?}, not {issuer:?}",
                printable(&metadata.issuer, 200)
            ));
        }
        return Ok(metadata);
    }
    Err(format!("no metadata for {issuer} ({last})"))
}

/// Where an issuer's metadata may be, in RFC 8414 §5's order: its well-known
/// URI inserted before the issuer's path, then OpenID Connect discovery's
/// inserted, then appended. Only for an https issuer, or http on this machine.
fn metadata_urls(issuer: &str) -> Result<Vec<String>, String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("the issuer {issuer:?} is not a URL: {e}"))?;
    if !is_secure_or_local(&url) {
        return Err(format!("the issuer {issuer} is neither https nor on this machine"));
    }
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let mut urls = vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
    ];
    if !path.is_empty() {
        urls.push(format!("{origin}{path}/.well-known/openid-configuration"));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_rfc_8414_says() {
        assert_eq!(
            metadata_urls("https://id.example").unwrap(),
            [
                "https://id.example/.well-known/oauth-authorization-server",
                "https://id.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://id.example/tenant/oidc").unwrap(),
            [
                "https://id.example/.well-known/oauth-authorization-server/tenant/oidc",
                "https://id.example/.well-known/openid-configuration/tenant/oidc",
                "https://id.example/tenant/oidc/.well-known/openid-configuration"
            ]
        );
        assert!(metadata_urls("not a url").is_err());
        assert!(
            metadata_urls("http://id.example").is_err(),
            "tokens never go over plain http off this machine"
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("a:b%c+d e"), "a%3Ab%25c%2Bd+e");
    }
}
