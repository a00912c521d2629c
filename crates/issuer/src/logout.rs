//! OpenID Connect RP-Initiated Logout 1.0: an app sends the person to the
//! end-session endpoint to be signed out, and may ask to have them sent back.
//!
//! Two rules keep it from being abused. The place to send the person back to
//! must be registered for the app, exactly as redirect URIs are, or the
//! endpoint would be an open redirector; and the app is known only from a
//! `client_id` it states or from an ID token we signed (`id_token_hint`), the
//! two agreeing when both are given. The person is asked to confirm before a
//! session ends, so a link or an image on another site cannot sign them out.

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use crate::Issuer;
use crate::authorize::RequestParams;
use crate::clients::post_logout_redirect_uri_allowed;
use crate::error::OAuthError;
use crate::store::{Client, Store};

/// A checked logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The app that asked, when it said who it is.
    pub client: Option<Client>,
    /// Where to send the person afterwards (with `state`), when the app asked
    /// for a registered place.
    pub redirect: Option<String>,
}

impl<S: Store> Issuer<S> {
    /// Checks a logout request; an error is shown as a page, never redirected.
    pub async fn check_logout(&self, params: &impl RequestParams) -> Result<LogoutRequest, OAuthError> {
        let from_hint = match params.param("id_token_hint") {
            Some(hint) => Some(self.id_token_audience(hint).await?),
            None => None,
        };
        let client_id = match (params.param("client_id"), from_hint.as_deref()) {
            (Some(stated), Some(hinted)) if stated != hinted => {
                return Err(OAuthError::invalid_request("client_id is not the ID token's audience"));
            }
            (stated, hinted) => stated.or(hinted),
        };
        let client = match client_id {
            Some(id) => Some(
                self.store
                    .client(id)
                    .await?
                    .ok_or_else(|| OAuthError::invalid_request("the app is not registered here"))?,
            ),
            None => None,
        };
        let redirect = match params.param("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let client = client.as_ref().ok_or_else(|| {
                    OAuthError::invalid_request("post_logout_redirect_uri needs client_id or id_token_hint")
                })?;
                if !post_logout_redirect_uri_allowed(client, uri) {
                    return Err(OAuthError::invalid_request(
                        "post_logout_redirect_uri is not registered for this app",
                    ));
                }
                let mut url = url::Url::parse(uri)
                    .map_err(|_| OAuthError::invalid_request("post_logout_redirect_uri is not a URL"))?;
                if let Some(state) = params.param("state") {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url.to_string())
            }
        };
        Ok(LogoutRequest { client, redirect })
    }

    /// The audience (client id) of an ID token we signed. An expired hint is
    /// fine (the spec expects old ones); a forged or foreign one is not.
    async fn id_token_audience(&self, token: &str) -> Result<String, OAuthError> {
        let invalid = || OAuthError::invalid_request("id_token_hint is not an ID token from this issuer");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        // Our algorithms only; an access token is no ID token.
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256)
            || header.typ.as_deref() == Some("at+jwt")
        {
            return Err(invalid());
        }
        let kid = header.kid.as_deref().ok_or_else(invalid)?;
        let keys = self.keys_knowing(kid).await;
        let key = keys.verifying_key(kid).ok_or_else(invalid)?;
        // The key's own type must fit the algorithm, so an EC key id under
        // "RS256" (or the reverse) fails here.
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|_| invalid())?.claims;
        claims["aud"].as_str().map(str::to_owned).ok_or_else(invalid)
    }
}
