//! The authorization endpoint's rules, free of HTTP.
//!
//! [`Issuer::check_authorization`] validates a request in two stages. Until the
//! client and its redirect URI are verified, an error can only be shown as a
//! page ([`AuthorizeError::Page`]): redirecting to an unverified URI would make
//! the issuer an open redirector. After that, errors go back to the client
//! ([`AuthorizeError::Redirect`]) with `state` and, per RFC 9207, `iss`.
//!
//! [`Issuer::decide`] then says what happens next for a signed-in person (or
//! nobody): sign in, ask consent, or send the code.

use url::Url;

use crate::client_documents::{DocumentError, is_document_url};
use crate::clients::redirect_uri_allowed;
use crate::error::{ErrorCode, OAuthError};
use crate::store::{Client, Resource, Session, Store};
use crate::tokens::{CodeRequest, resource_uri};
use crate::{Issuer, pkce, scopes};

/// The page for an app this server does not know, and what to do about it.
pub const UNKNOWN_APP: &str = "The app that sent you here is not registered with this server. If it worked \
    before, this server no longer knows its registration (its data may have been reset): the app must register \
    again. In the app, remove or sign out of this server, then connect again.";

/// A verified authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The app.
    pub client: Client,
    /// Where the answer goes (verified for this app).
    pub redirect_uri: String,
    /// Echoed back.
    pub state: Option<String>,
    /// The scopes it gets (after the app's ceiling).
    pub scopes: Vec<String>,
    /// The resource the token is for.
    pub resource: Option<Resource>,
    /// PKCE challenge (S256).
    pub code_challenge: String,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// `prompt` values.
    pub prompt: Vec<String>,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// `ui_locales`.
    pub ui_locales: Option<String>,
}

/// Why an authorization request failed, and how to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Before the redirect URI was verified: show this message as a page.
    Page(String),
    /// Send the error back to the client.
    Redirect(String),
}

/// What happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The person must sign in.
    SignIn,
    /// The person must allow these scopes.
    Consent(Vec<String>),
    /// Done: send the browser here (the redirect URI with the code).
    Redirect(String),
}

/// The lookups an authorization request needs, as plain parameters.
pub trait RequestParams {
    /// One parameter (absent when missing or empty).
    fn param(&self, name: &str) -> Option<&str>;
}

impl<S: Store> Issuer<S> {
    /// Validates an authorization request.
    pub async fn check_authorization(
        &self,
        params: &impl RequestParams,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_owned());
        let client_id = params.param("client_id").ok_or_else(|| page("The request has no client_id."))?;
        let client = if self.settings.client_documents && is_document_url(client_id) {
            // An app nobody registered, named by the URL of its metadata document.
            match self.document_client(client_id).await {
                Ok(client) => client,
                Err(DocumentError::Store(error)) => {
                    return Err(AuthorizeError::Page(OAuthError::from(error).description));
                }
                // The document's own faults help its developer; why a fetch
                // failed could tell an outsider about this server's network.
                Err(error @ (DocumentError::BadUrl { .. } | DocumentError::Invalid { .. })) => {
                    return Err(AuthorizeError::Page(format!("The app could not be identified: {error}.")));
                }
                Err(error) => {
                    tracing::info!(%error, "client metadata document refused");
                    return Err(page(
                        "The app could not be identified: its metadata document could not be fetched.",
                    ));
                }
            }
        } else {
            match self.store.client(client_id).await {
                Ok(Some(client)) if self.check_client_source(&client).is_ok() => client,
                Ok(_) => return Err(page(UNKNOWN_APP)),
                Err(error) => return Err(AuthorizeError::Page(OAuthError::from(error).description)),
            }
        };
        let redirect_uri =
            params.param("redirect_uri").ok_or_else(|| page("The request has no redirect_uri."))?;
        if !redirect_uri_allowed(&client, redirect_uri) {
            return Err(page(
                "The app asked to send you to an address it has not registered. Nothing was sent.",
            ));
        }
        let state = params.param("state").map(str::to_owned);
        let back = |error: OAuthError| {
            AuthorizeError::Redirect(self.error_redirect(redirect_uri, state.as_deref(), &error))
        };

        if params.param("response_type") != Some("code") {
            return Err(back(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "response_type must be code",
            )));
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(back(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this app may not use the code flow",
            )));
        }
        for unsupported in ["request", "request_uri"] {
            if params.param(unsupported).is_some() {
                let code = if unsupported == "request" {
                    "request_not_supported"
                } else {
                    "request_uri_not_supported"
                };
                let description = format!("{unsupported} is not supported; send the parameters in the query");
                let url = self.redirect_with(
                    redirect_uri,
                    &[("error", code), ("error_description", &description)],
                    state.as_deref(),
                );
                return Err(AuthorizeError::Redirect(url));
            }
        }
        if params.param("response_mode").is_some_and(|m| m != "query") {
            return Err(back(OAuthError::invalid_request("only response_mode=query is supported")));
        }
        let code_challenge =
            pkce::check_challenge(params.param("code_challenge"), params.param("code_challenge_method"))
                .map_err(|e| back(OAuthError::invalid_request(e.to_string())))?;
        let resource = scopes::find_resource(&self.store, &self.settings, params.param("resource"))
            .await
            .map_err(back)?;
        let asked = scopes::parse_scope(params.param("scope")).map_err(back)?;
        let scopes = scopes::resolve(&client, &asked, resource.as_ref()).map_err(back)?;
        let prompt: Vec<String> = params
            .param("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) =
            prompt.iter().find(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
        {
            return Err(back(OAuthError::invalid_request(format!("prompt value {bad:?} is not supported"))));
        }
        if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
            return Err(back(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            )));
        }
        let max_age = match params.param("max_age") {
            None => None,
            Some(text) => Some(text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                back(OAuthError::invalid_request("max_age must be a non-negative number of seconds"))
            })?),
        };
        Ok(AuthorizationRequest {
            redirect_uri: redirect_uri.to_owned(),
            state,
            scopes,
            resource,
            code_challenge,
            nonce: params.param("nonce").map(str::to_owned),
            prompt,
            max_age,
            ui_locales: params.param("ui_locales").map(str::to_owned),
            client,
        })
    }

    /// What happens next for `request`, given the browser's session;
    /// `consented` says the person just pressed Allow. (After a sign-in, the
    /// browser comes back with `prompt=login` and `max_age` taken out of the
    /// request: the sign-in it just did satisfies them.)
    pub async fn decide(
        &self,
        request: &AuthorizationRequest,
        session: Option<&Session>,
        consented: bool,
        now: i64,
    ) -> Result<Next, OAuthError> {
        let prompt = |value: &str| request.prompt.iter().any(|p| p == value);
        let session = session
            .filter(|s| !prompt("login") && request.max_age.is_none_or(|age| now - s.auth_time <= age));
        let Some(session) = session else {
            if prompt("none") {
                return Err(OAuthError::new(ErrorCode::LoginRequired, "the person must sign in"));
            }
            return Ok(Next::SignIn);
        };
        let resource = resource_uri(request.resource.as_ref());
        if consented {
            if request.client.third_party {
                self.record_consent(&session.user_id, &request.client.client_id, &resource, &request.scopes)
                    .await?;
            }
        } else if let Some(ask) = self.consent_asked(request, &session.user_id).await? {
            if prompt("none") {
                return Err(OAuthError::new(ErrorCode::ConsentRequired, "the person must allow this app"));
            }
            return Ok(Next::Consent(ask));
        }
        let code = self
            .issue_code_to(
                CodeRequest {
                    client_id: request.client.client_id.clone(),
                    user_id: session.user_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    resource,
                    scopes: request.scopes.clone(),
                    nonce: request.nonce.clone(),
                    auth_time: session.auth_time,
                },
                Some(&request.client),
            )
            .await?;
        Ok(Next::Redirect(self.redirect_with(
            &request.redirect_uri,
            &[("code", &code)],
            request.state.as_deref(),
        )))
    }

    /// What the person must be asked to allow before `request` goes on
    /// (see [`Issuer::consent_needed`]): `None` when nothing.
    pub async fn consent_asked(
        &self,
        request: &AuthorizationRequest,
        user_id: &str,
    ) -> Result<Option<Vec<String>>, OAuthError> {
        let resource = resource_uri(request.resource.as_ref());
        let force = request.prompt.iter().any(|p| p == "consent");
        self.consent_needed(&request.client, user_id, &resource, &request.scopes, force).await
    }

    /// The redirect URI carrying an OAuth error, `state` and `iss`.
    pub fn error_redirect(&self, redirect_uri: &str, state: Option<&str>, error: &OAuthError) -> String {
        self.redirect_with(
            redirect_uri,
            &[("error", error.code.as_str()), ("error_description", &error.description)],
            state,
        )
    }

    /// `redirect_uri` with `pairs`, then `state` and `iss` (RFC 9207), added to
    /// whatever query it already has.
    fn redirect_with(&self, redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> String {
        let Ok(mut url) = Url::parse(redirect_uri) else { return redirect_uri.to_owned() };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.settings.issuer);
        }
        url.into()
    }
}
