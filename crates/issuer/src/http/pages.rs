//! The browser side: the authorization endpoint and the person's pages.
//! Handlers parse, call [`Issuer`] (`check_authorization`, `decide`,
//! `sign_in`…), and render a page or a redirect.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::client_address;
use super::form::Params;
use crate::authorize::{AuthorizationRequest, AuthorizeError, Next, RequestParams};
use crate::error::{ErrorCode, OAuthError};
use crate::forms::{FormPage, FormRefusal};
use crate::logout::LogoutRequest;
use crate::sessions::{BROWSER_COOKIE, KNOWN_BROWSER_SECS, KNOWN_COOKIE, SESSION_COOKIE, SignInOutcome};
use crate::store::{Client, Session, Store};
use crate::ui::{
    self, AccountApp, AccountLink, AccountPage, ConsentPage, HomePage, Link, MessagePage, ProviderButton,
    SignInPage, SignOutPage, Text, describe_scope,
};
use crate::{Issuer, now, random_token};

impl RequestParams for Params {
    fn param(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// What a browser sent: its cookies and language.
pub(super) struct Browser {
    pub(super) session_cookie: Option<String>,
    pub(super) browser_id: Option<String>,
    /// Who signed in with this browser before (the known-browser cookie).
    pub(super) known: Option<String>,
    accept_language: Option<String>,
}

impl Browser {
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        let mut browser = Self {
            session_cookie: None,
            browser_id: None,
            known: None,
            accept_language: headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
        for value in headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            for pair in value.split(';') {
                match pair.trim().split_once('=') {
                    Some((SESSION_COOKIE, v)) => browser.session_cookie = Some(v.to_owned()),
                    Some((BROWSER_COOKIE, v)) => browser.browser_id = Some(v.to_owned()),
                    Some((KNOWN_COOKIE, v)) => browser.known = Some(v.to_owned()),
                    _ => {}
                }
            }
        }
        browser
    }

    pub(super) fn text(&self, ui_locales: Option<&str>) -> &'static Text {
        ui::i18n::pick(ui_locales, self.accept_language.as_deref())
    }
}

/// Builds page responses with the right cookies and headers.
pub(super) struct Reply<'a, S> {
    pub(super) issuer: &'a Issuer<S>,
    cookies: Vec<String>,
    browser_id: String,
}

impl<'a, S: Store> Reply<'a, S> {
    /// Starts a reply; a browser without the form-token cookie gets one.
    pub(super) fn new(issuer: &'a Issuer<S>, browser: &Browser) -> Self {
        let mut reply = Self { issuer, cookies: Vec::new(), browser_id: String::new() };
        reply.browser_id = match &browser.browser_id {
            Some(id) => id.clone(),
            None => {
                let id = random_token(32);
                reply.cookie(BROWSER_COOKIE, &id, None);
                id
            }
        };
        reply
    }

    /// The browser token, for the account page's forms.
    fn csrf(&self) -> String {
        self.issuer.form_token(&self.browser_id)
    }

    /// The token of a page shown now: its form is taken once, for this page only.
    fn page_token(&self, page: FormPage<'_>) -> String {
        self.issuer.page_token(&self.browser_id, page, now())
    }

    /// `Set-Cookie`: HttpOnly, SameSite=Lax, Secure on https, scoped to the
    /// issuer's path. `max_age` `Some(0)` deletes; `None` is a browser-session cookie.
    pub(super) fn cookie(&mut self, name: &str, value: &str, max_age: Option<i64>) {
        let path = super::base_path(&self.issuer.settings.issuer);
        let path = if path.is_empty() { "/".to_owned() } else { path };
        let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        if self.issuer.settings.is_https() {
            cookie.push_str("; Secure");
        }
        self.cookies.push(cookie);
    }

    fn finish(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        response
    }

    fn html(self, status: StatusCode, body: String) -> Response {
        let response = (status, axum::response::Html(body)).into_response();
        self.finish(response)
    }

    pub(super) fn redirect(self, location: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(value) = HeaderValue::from_str(location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        self.finish(response)
    }

    /// A message page; an error's links to the home page.
    pub(super) fn message(
        self,
        t: &'static Text,
        status: StatusCode,
        title: &str,
        message: &str,
    ) -> Response {
        let home = (status.is_client_error() || status.is_server_error())
            .then(|| Link { href: home_url(&self.issuer.settings), label: t.home.to_owned() });
        self.message_then(t, status, title, message, home)
    }

    /// A message page with a link to what to do next.
    pub(super) fn message_then(
        self,
        t: &'static Text,
        status: StatusCode,
        title: &str,
        message: &str,
        next: Option<Link>,
    ) -> Response {
        let page = MessagePage {
            t,
            title: title.to_owned(),
            message: message.to_owned(),
            is_error: status.is_client_error() || status.is_server_error(),
            next,
        };
        self.html(status, ui::render(&page))
    }

    /// The store failed: say so, and that trying again may work.
    pub(super) fn unavailable(self, t: &'static Text, error: &OAuthError) -> Response {
        self.message(t, StatusCode::SERVICE_UNAVAILABLE, t.error_title, &error.description)
    }

    pub(super) fn sign_in_page(
        self,
        t: &'static Text,
        request: &str,
        app: Option<&Client>,
        error: Option<String>,
        login: &str,
        status: StatusCode,
    ) -> Response {
        let providers = self
            .issuer
            .identity_providers()
            .map(|(id, name)| ProviderButton {
                action: self.issuer.settings.endpoint(&format!("/sign-in/{id}")),
                csrf: self.page_token(FormPage::SignInWith { request, provider: id }),
                label: t.continue_with.replace("{provider}", name),
            })
            .collect();
        let page = SignInPage {
            t,
            action: self.issuer.settings.endpoint("/sign-in"),
            csrf: self.page_token(FormPage::SignIn { request }),
            request: request.to_owned(),
            app_name: app.map(|c| c.name.as_str()),
            unverified: app.is_some_and(crate::clients::self_registered),
            error,
            login: login.to_owned(),
            providers,
            passwords: self.issuer.settings.passwords,
        };
        self.html(status, ui::render(&page))
    }

    async fn consent_page(
        self,
        t: &'static Text,
        request: &AuthorizationRequest,
        query: &str,
        ask: &[String],
        session: &Session,
        notice: Option<&str>,
    ) -> Response {
        let username = match self.issuer.store.user(&session.user_id).await {
            Ok(Some(user)) => user.username,
            _ => String::new(),
        };
        let client = &request.client;
        let host = url::Url::parse(&request.redirect_uri)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_default();
        let asked = ask.join(" ");
        let page = ConsentPage {
            t,
            action: self.issuer.settings.endpoint("/consent"),
            csrf: self.page_token(FormPage::Consent {
                request: query,
                session: &session.id_hash,
                asked: &asked,
            }),
            asked,
            notice: notice.map(str::to_owned),
            request: query.to_owned(),
            intro: t.consent_intro.replace("{app}", &client.name),
            permissions: ask.iter().map(|s| describe_scope(t, s, request.resource.as_ref())).collect(),
            redirect_note: t.consent_redirect.replace("{host}", &host),
            third_party: client.third_party,
            unverified: crate::clients::self_registered(client),
            document_note: (client.registration == crate::clients::registered_by::DOCUMENT)
                .then(|| url::Url::parse(&client.client_id).ok()?.host_str().map(str::to_owned))
                .flatten()
                .map(|host| t.document_note.replace("{host}", &host)),
            // A logo an app chose for itself could imitate anyone's.
            logo_uri: client.logo_uri.clone().filter(|_| !crate::clients::self_registered(client)),
            client_uri: client.client_uri.clone(),
            policy_uri: client.policy_uri.clone(),
            tos_uri: client.tos_uri.clone(),
            username,
        };
        self.html(StatusCode::OK, ui::render(&page))
    }
}

/// The request to carry on with after a fresh sign-in: `prompt=login` and
/// `max_age` are satisfied by it, so they are dropped from the continuation
/// (otherwise the consent step would ask for a sign-in again).
fn continuation(query: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "max_age" => {}
            "prompt" => {
                let rest: Vec<&str> = value.split(' ').filter(|p| *p != "login" && !p.is_empty()).collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            _ => {
                out.append_pair(&key, &value);
            }
        }
    }
    out.finish()
}

/// Where an authorization goes next, rendered; a consent page shown again
/// says `notice` above it.
async fn proceed<S: Store>(
    reply: Reply<'_, S>,
    t: &'static Text,
    request: &AuthorizationRequest,
    query: &str,
    session: Option<&Session>,
    consented: bool,
    notice: Option<&str>,
) -> Response {
    let issuer = reply.issuer;
    match issuer.decide(request, session, consented, now()).await {
        Ok(Next::SignIn) => reply.sign_in_page(t, query, Some(&request.client), None, "", StatusCode::OK),
        Ok(Next::Consent(ask)) => match session {
            Some(session) => reply.consent_page(t, request, query, &ask, session, notice).await,
            None => reply.sign_in_page(t, query, Some(&request.client), None, "", StatusCode::OK),
        },
        Ok(Next::Redirect(location)) => reply.redirect(&location),
        Err(error) => {
            let location = issuer.error_redirect(&request.redirect_uri, request.state.as_deref(), &error);
            reply.redirect(&location)
        }
    }
}

/// Validates the carried request; an error is rendered as it must be.
pub(super) async fn check<S: Store>(
    issuer: &Issuer<S>,
    query: &str,
) -> Result<AuthorizationRequest, (StatusCode, String, Option<String>)> {
    let params =
        Params::parse(query.as_bytes()).map_err(|e| (StatusCode::BAD_REQUEST, e.description, None))?;
    issuer.check_authorization(&params).await.map_err(|e| match e {
        AuthorizeError::Page(message) => (StatusCode::BAD_REQUEST, message, None),
        AuthorizeError::Redirect(location) => (StatusCode::SEE_OTHER, String::new(), Some(location)),
    })
}

/// The authorization request a sign-in form carries (its query string),
/// checked again: `None` when the form is a sign-in of its own.
pub(super) async fn carried<S: Store>(
    issuer: &Issuer<S>,
    query: &str,
) -> Result<Option<AuthorizationRequest>, (StatusCode, String, Option<String>)> {
    if query.is_empty() { Ok(None) } else { check(issuer, query).await.map(Some) }
}

pub(super) fn check_failed<S: Store>(
    reply: Reply<'_, S>,
    t: &'static Text,
    failure: (StatusCode, String, Option<String>),
) -> Response {
    match failure {
        (_, _, Some(location)) => reply.redirect(&location),
        (status, message, None) => reply.message(t, status, t.error_title, &message),
    }
}

/// The verified request being continued and the browser's session; `Err` is
/// the page or redirect to send instead.
// The error is a whole response, sent at once; boxing it would buy nothing.
#[allow(clippy::result_large_err)]
async fn request_and_session<'a, S: Store>(
    reply: Reply<'a, S>,
    t: &'static Text,
    query: &str,
    browser: &Browser,
) -> Result<(Reply<'a, S>, AuthorizationRequest, Option<Session>), Response> {
    let issuer = reply.issuer;
    let request = match check(issuer, query).await {
        Ok(request) => request,
        Err(failure) => return Err(check_failed(reply, t, failure)),
    };
    match issuer.session_for(browser.session_cookie.as_deref(), now()).await {
        Ok(session) => Ok((reply, request, session)),
        Err(error) => Err(reply.unavailable(t, &error)),
    }
}

pub(super) async fn authorize<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let browser = Browser::from_headers(&headers);
    let query = query.unwrap_or_default();
    let ui_locales =
        Params::parse(query.as_bytes()).ok().and_then(|p| p.get("ui_locales").map(str::to_owned));
    let t = browser.text(ui_locales.as_deref());
    let reply = Reply::new(&issuer, &browser);
    let (reply, request, session) = match request_and_session(reply, t, &query, &browser).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    proceed(reply, t, &request, &query, session.as_ref(), false, None).await
}

/// A posted form, after its form token was checked.
pub(super) struct PostedForm<'a, S> {
    pub(super) params: Params,
    pub(super) browser: Browser,
    pub(super) reply: Reply<'a, S>,
    pub(super) t: &'static Text,
}

/// Parses a posted form of the account page and checks its browser token;
/// `Err` is the page to show.
// The error is a whole response, sent at once; boxing it would buy nothing.
#[allow(clippy::result_large_err)]
pub(super) fn posted_form<'a, S: Store>(
    issuer: &'a Issuer<S>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<PostedForm<'a, S>, Response> {
    let form = posted(issuer, headers, body);
    if !issuer.form_token_valid(form.browser.browser_id.as_deref(), form.params.get("csrf")) {
        let t = form.t;
        return Err(form.reply.message(t, StatusCode::FORBIDDEN, t.error_title, t.form_expired));
    }
    Ok(form)
}

/// A form of the account page posted by a signed-in person: the form and
/// their session; `Err` is the page to show (the sign-in page, for someone
/// no longer signed in).
pub(super) async fn signed_in_form<'a, S: Store>(
    issuer: &'a Issuer<S>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(PostedForm<'a, S>, Session), Response> {
    let form = posted_form(issuer, headers, body)?;
    match issuer.session_for(form.browser.session_cookie.as_deref(), now()).await {
        Ok(Some(session)) => Ok((form, session)),
        Ok(None) => Err(form.reply.redirect(&issuer.settings.endpoint("/sign-in"))),
        Err(error) => Err(form.reply.unavailable(form.t, &error)),
    }
}

/// Parses a posted form, its token not checked yet.
pub(super) fn posted<'a, S: Store>(
    issuer: &'a Issuer<S>,
    headers: &HeaderMap,
    body: &[u8],
) -> PostedForm<'a, S> {
    let browser = Browser::from_headers(headers);
    let params = Params::parse(body).unwrap_or_default();
    let ui_locales = params
        .get("request")
        .and_then(|q| Params::parse(q.as_bytes()).ok())
        .and_then(|p| p.get("ui_locales").map(str::to_owned));
    let t = browser.text(ui_locales.as_deref());
    let reply = Reply::new(issuer, &browser);
    PostedForm { params, browser, reply, t }
}

/// The issuer's own address, for the home page (`/` under its path).
fn home_url(settings: &crate::Settings) -> String {
    format!("{}/", settings.issuer)
}

/// `GET /`: what this server is, and where to go.
pub(super) async fn home<S: Store>(State(issuer): State<Arc<Issuer<S>>>, headers: HeaderMap) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    let s = &issuer.settings;
    let page = HomePage {
        t,
        sign_in: s.endpoint("/sign-in"),
        account: s.endpoint("/account"),
        discovery: s.endpoint("/.well-known/openid-configuration"),
    };
    Reply::new(&issuer, &browser).html(StatusCode::OK, ui::render(&page))
}

/// Whether the request comes from a browser (it takes HTML), not a program.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// An address nothing answers: a page for a browser, JSON for a program, and
/// either way where to look instead.
pub(super) async fn not_found<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    if !wants_html(&headers) {
        let description = format!(
            "nothing is served at this address; this server's endpoints are in {}",
            issuer.settings.endpoint("/.well-known/openid-configuration")
        );
        return json_refusal(StatusCode::NOT_FOUND, "not_found", &description);
    }
    Reply::new(&issuer, &browser).message(t, StatusCode::NOT_FOUND, t.not_found_title, t.not_found)
}

/// A known address asked with a method it does not take (a form's address
/// visited, say).
pub(super) async fn wrong_method<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    if !wants_html(&headers) {
        let description =
            "this address does not take this method; see the discovery document for what each takes";
        return json_refusal(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", description);
    }
    Reply::new(&issuer, &browser).message(t, StatusCode::METHOD_NOT_ALLOWED, t.error_title, t.wrong_method)
}

fn json_refusal(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    (status, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], axum::Json(body))
        .into_response()
}

pub(super) async fn sign_in_page<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    Reply::new(&issuer, &browser).sign_in_page(t, "", None, None, "", StatusCode::OK)
}

pub(super) async fn sign_in<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let PostedForm { params, browser, mut reply, t } = posted(&issuer, &parts.headers, &body);
    let query = params.get("request").unwrap_or("").to_owned();
    let login = params.get("login").unwrap_or("");
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let address = client_address(peer, &parts.headers, &issuer.settings.trusted_proxies);
    let request = match carried(&issuer, &query).await {
        Ok(request) => request,
        Err(failure) => return check_failed(reply, t, failure),
    };
    let app = request.as_ref().map(|r| &r.client);
    let page = FormPage::SignIn { request: &query };
    let csrf = params.get("csrf");
    match issuer.accept_page_token(browser.browser_id.as_deref(), csrf, page, now()).await {
        Err(error) => return reply.unavailable(t, &error),
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => {
            // Sent twice (a double click) after the first signed in: go on.
            if refusal == FormRefusal::Used
                && let Ok(Some(_)) = issuer.session_for(browser.session_cookie.as_deref(), now()).await
            {
                return after_sign_in(reply, request.is_some(), &query);
            }
            let (status, message) = match refusal {
                FormRefusal::Foreign => (StatusCode::FORBIDDEN, t.form_expired),
                FormRefusal::Expired | FormRefusal::Used => (StatusCode::BAD_REQUEST, t.sign_in_again),
            };
            return reply.sign_in_page(t, &query, app, Some(message.to_owned()), login, status);
        }
    }
    if !issuer.settings.passwords {
        let message = passwords_off(&issuer, t);
        return reply.sign_in_page(t, &query, app, Some(message), login, StatusCode::FORBIDDEN);
    }
    let password = params.get("password").unwrap_or("");
    let outcome = issuer.sign_in(login, password, address, browser.known.as_deref(), now()).await;
    match outcome {
        Err(error) => reply.unavailable(t, &error),
        Ok(SignInOutcome::Invalid) => reply.sign_in_page(
            t,
            &query,
            app,
            Some(t.invalid_credentials.to_owned()),
            login,
            StatusCode::UNAUTHORIZED,
        ),
        Ok(SignInOutcome::Limited(seconds)) => {
            let minutes = ((seconds + 59) / 60).max(1).to_string();
            let message = t.too_many_attempts.replace("{minutes}", &minutes);
            let mut page =
                reply.sign_in_page(t, &query, app, Some(message), login, StatusCode::TOO_MANY_REQUESTS);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            page
        }
        Ok(SignInOutcome::SignedIn { cookie, known, .. }) => {
            // Whoever was signed in with this browser before is not any more.
            if let Some(old) = &browser.session_cookie
                && let Err(error) = issuer.end_session(old).await
            {
                return reply.unavailable(t, &error);
            }
            reply.cookie(SESSION_COOKIE, &cookie, None);
            reply.cookie(KNOWN_COOKIE, &known, Some(KNOWN_BROWSER_SECS));
            after_sign_in(reply, request.is_some(), &query)
        }
    }
}

/// That this server takes no passwords, and what it takes instead.
fn passwords_off<S: Store>(issuer: &Issuer<S>, t: &Text) -> String {
    let names: Vec<&str> = issuer.identity_providers().map(|(_, name)| name).collect();
    t.passwords_off.replace("{providers}", &names.join(", "))
}

/// Where a browser goes once signed in: POST/redirect/GET back to the
/// authorization endpoint (which now finds the session; reloading the next
/// page never offers to post the password again), or to the account page.
pub(super) fn after_sign_in<S: Store>(reply: Reply<'_, S>, continues: bool, query: &str) -> Response {
    let settings = &reply.issuer.settings;
    let location = match continues {
        false => settings.endpoint("/account"),
        true => format!("{}?{}", settings.endpoint("/authorize"), continuation(query)),
    };
    reply.redirect(&location)
}

/// The consent form. A decision counts only with the token of the consent
/// page this browser's session was shown for this request, once, within
/// minutes, and only for what that page asked: anything else decides nothing.
pub(super) async fn consent<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PostedForm { params, browser, reply, t } = posted(&issuer, &headers, &body);
    let query = params.get("request").unwrap_or("").to_owned();
    let (reply, request, session) = match request_and_session(reply, t, &query, &browser).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(session) = session else {
        // Signed out since the page was shown: sign in, then see it again.
        return proceed(reply, t, &request, &query, None, false, None).await;
    };
    let asked = params.get("asked").unwrap_or("");
    let page = FormPage::Consent { request: &query, session: &session.id_hash, asked };
    match issuer.accept_page_token(browser.browser_id.as_deref(), params.get("csrf"), page, now()).await {
        Err(error) => return reply.unavailable(t, &error),
        Ok(Err(FormRefusal::Foreign)) => {
            return reply.message(t, StatusCode::FORBIDDEN, t.error_title, t.form_expired);
        }
        // Late or sent again: nothing is decided, no code is sent. The person
        // sees what is asked now, or (a double click) where to go on.
        Ok(Err(FormRefusal::Expired | FormRefusal::Used)) => {
            return match issuer.consent_asked(&request, &session.user_id).await {
                Err(error) => reply.unavailable(t, &error),
                Ok(Some(ask)) => {
                    reply.consent_page(t, &request, &query, &ask, &session, Some(t.consent_again)).await
                }
                Ok(None) => {
                    let href = format!("{}?{query}", issuer.settings.endpoint("/authorize"));
                    let next = Link { href, label: t.continue_to_app.replace("{app}", &request.client.name) };
                    reply.message_then(t, StatusCode::CONFLICT, t.consent_title, t.consent_made, Some(next))
                }
            };
        }
        Ok(Ok(())) => {}
    }
    match params.get("decision") {
        Some("allow") => {
            let now_asked = match issuer.consent_asked(&request, &session.user_id).await {
                Ok(asked) => asked.unwrap_or_default(),
                Err(error) => return reply.unavailable(t, &error),
            };
            let shown: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            // The grant changed since the page was shown: ask again for what it did not show.
            let unseen = now_asked.iter().any(|scope| !shown.contains(&scope.as_str()));
            proceed(reply, t, &request, &query, Some(&session), !unseen, unseen.then_some(t.consent_again))
                .await
        }
        Some("deny") => {
            let error = OAuthError::new(ErrorCode::AccessDenied, "the person denied the request");
            let location = issuer.error_redirect(&request.redirect_uri, request.state.as_deref(), &error);
            reply.redirect(&location)
        }
        _ => reply.message(t, StatusCode::BAD_REQUEST, t.error_title, "Choose Allow or Deny."),
    }
}

pub(super) async fn account<S: Store>(State(issuer): State<Arc<Issuer<S>>>, headers: HeaderMap) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    let reply = Reply::new(&issuer, &browser);
    let session = match issuer.session_for(browser.session_cookie.as_deref(), now()).await {
        Ok(Some(session)) => session,
        Ok(None) => return reply.redirect(&issuer.settings.endpoint("/sign-in")),
        Err(error) => {
            return reply.unavailable(t, &error);
        }
    };
    let user = issuer.store.user(&session.user_id).await.ok().flatten();
    let apps = match issuer.connected_apps(&session.user_id).await {
        Ok(apps) => apps,
        Err(error) => {
            return reply.unavailable(t, &error);
        }
    };
    let mut listed = Vec::new();
    for app in apps {
        let mut permissions = Vec::new();
        for grant in &app.grants {
            let resource = match crate::scopes::canonical_resource(&grant.resource) {
                Some(canonical) => issuer.store.resource_by_canonical(&canonical).await.ok().flatten(),
                None => None,
            };
            permissions.extend(grant.scopes.iter().map(|s| describe_scope(t, s, resource.as_ref())));
        }
        let last_used = issuer.store.last_used(&session.user_id, &app.client.client_id).await.ok().flatten();
        let details = app_details(t, &app.client, last_used);
        listed.push(AccountApp {
            unverified: crate::clients::self_registered(&app.client),
            client_id: app.client.client_id,
            name: app.client.name,
            details,
            permissions,
        });
    }
    let links = match issuer.linked_accounts(&session.user_id).await {
        Ok(links) => links,
        Err(error) => return reply.unavailable(t, &error.into()),
    };
    let csrf = reply.csrf();
    let linkable = issuer
        .identity_providers()
        .filter(|(id, _)| !links.iter().any(|l| l.provider == *id))
        .map(|(id, name)| ProviderButton {
            action: issuer.settings.endpoint(&format!("/account/link/{id}")),
            csrf: csrf.clone(),
            label: t.link_with.replace("{provider}", name),
        })
        .collect();
    let links = links
        .into_iter()
        .map(|link| AccountLink {
            provider: issuer.provider_name(&link.issuer).map_or_else(|| link.issuer.clone(), str::to_owned),
            issuer: link.issuer,
            subject: link.subject,
        })
        .collect();
    let page = AccountPage {
        t,
        csrf,
        username: user.map(|u| u.username).unwrap_or_default(),
        apps: listed,
        disconnect_action: issuer.settings.endpoint("/account/disconnect"),
        sign_out_action: issuer.settings.endpoint("/sign-out"),
        links,
        unlink_action: issuer.settings.endpoint("/account/unlink"),
        linkable,
    };
    reply.html(StatusCode::OK, ui::render(&page))
}

/// What tells an app apart on the account page: how and when it came, where
/// it sends the person back, when it was last used.
fn app_details(t: &Text, client: &Client, last_used: Option<i64>) -> Vec<String> {
    use crate::clients::registered_by;
    let date = &ui::when(client.created_at)[..10];
    let came = match client.registration.as_str() {
        registered_by::DOCUMENT => {
            let host = url::Url::parse(&client.client_id).ok().and_then(|u| u.host_str().map(str::to_owned));
            t.app_describes_itself.replace("{host}", &host.unwrap_or_default()).replace("{date}", date)
        }
        registered_by::DYNAMIC => t.app_registered_itself.replace("{date}", date),
        _ => t.app_added_by_operator.replace("{date}", date),
    };
    let mut details = vec![came];
    let places = ui::redirect_places(&client.redirect_uris);
    if !places.is_empty() {
        details.push(t.app_sends_back.replace("{places}", &places.join(", ")));
    }
    details.push(match last_used {
        Some(at) => t.app_last_used.replace("{when}", &ui::when(at)),
        None => t.app_never_used.to_owned(),
    });
    details
}

pub(super) async fn disconnect<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (PostedForm { params, reply, t, .. }, session) = match signed_in_form(&issuer, &headers, &body).await
    {
        Ok(signed_in) => signed_in,
        Err(page) => return page,
    };
    let Some(client_id) = params.get("client_id") else {
        return reply.message(t, StatusCode::BAD_REQUEST, t.error_title, "No app was named.");
    };
    match issuer.disconnect(&session.user_id, client_id).await {
        Ok(_) => reply.redirect(&issuer.settings.endpoint("/account")),
        Err(error) => reply.unavailable(t, &error),
    }
}

/// The end-session endpoint (GET query or POST form): checks the app's logout
/// request, then asks the person to confirm; without a session there is
/// nothing to end and the person goes straight on.
pub(super) async fn end_session<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let text = match parts.method {
        axum::http::Method::POST => String::from_utf8_lossy(&body).into_owned(),
        _ => parts.uri.query().unwrap_or("").to_owned(),
    };
    let browser = Browser::from_headers(&parts.headers);
    let params = Params::parse(text.as_bytes());
    let ui_locales = params.as_ref().ok().and_then(|p| p.get("ui_locales").map(str::to_owned));
    let t = browser.text(ui_locales.as_deref());
    let reply = Reply::new(&issuer, &browser);
    let logout = match checked_logout(&issuer, &text).await {
        Ok(logout) => logout,
        Err(error) => return reply.message(t, StatusCode::BAD_REQUEST, t.error_title, &error.description),
    };
    match issuer.session_for(browser.session_cookie.as_deref(), now()).await {
        Ok(Some(_)) => {
            let page = SignOutPage {
                t,
                action: issuer.settings.endpoint("/sign-out"),
                csrf: reply.csrf(),
                request: text,
                app_name: logout.client.map(|c| c.name),
            };
            reply.html(StatusCode::OK, ui::render(&page))
        }
        Ok(None) => signed_out(reply, t, logout.redirect.as_deref()),
        Err(error) => reply.unavailable(t, &error),
    }
}

/// The sign-out form (from the account page, or confirming an app's logout
/// request, which is checked again): ends the session.
pub(super) async fn sign_out<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PostedForm { params, browser, mut reply, t } = match posted_form(&issuer, &headers, &body) {
        Ok(form) => form,
        Err(page) => return page,
    };
    let redirect = match params.get("request") {
        None => None,
        Some(request) => match checked_logout(&issuer, request).await {
            Ok(logout) => logout.redirect,
            Err(error) => {
                return reply.message(t, StatusCode::BAD_REQUEST, t.error_title, &error.description);
            }
        },
    };
    if let Some(cookie) = &browser.session_cookie
        && let Err(error) = issuer.end_session(cookie).await
    {
        return reply.unavailable(t, &error);
    }
    reply.cookie(SESSION_COOKIE, "", Some(0));
    signed_out(reply, t, redirect.as_deref())
}

/// An app's logout request (its query or form text), parsed and checked.
async fn checked_logout<S: Store>(issuer: &Issuer<S>, text: &str) -> Result<LogoutRequest, OAuthError> {
    issuer.check_logout(&Params::parse(text.as_bytes())?).await
}

/// After a sign-out: back to the app when it asked for a registered place,
/// else a page saying so.
fn signed_out<S: Store>(reply: Reply<'_, S>, t: &'static Text, redirect: Option<&str>) -> Response {
    match redirect {
        Some(location) => reply.redirect(location),
        None => reply.message(t, StatusCode::OK, t.sign_out, t.signed_out),
    }
}
