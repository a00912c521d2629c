//! Signing in at an identity provider: the sign-in page's "Continue with …"
//! buttons post here, the browser goes to the provider, and comes back to the
//! provider's callback. The rules are `upstream`'s; these handlers parse, call
//! and render.

use std::sync::Arc;

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::client_address;
use super::form::Params;
use super::pages::{
    Browser, PostedForm, Reply, after_sign_in, carried, check_failed, posted, signed_in_form,
};
use crate::forms::{FormPage, FormRefusal};
use crate::sessions::{KNOWN_BROWSER_SECS, KNOWN_COOKIE, SESSION_COOKIE};
use crate::store::Store;
use crate::ui::{Link, Text};
use crate::upstream::{ProviderAnswer, Unfinished, Unlinked, UpstreamError};
use crate::{Issuer, now, random_token};

/// `POST /sign-in/{provider}`: a button of the sign-in page. Its page token
/// is taken once, and only for the request and provider of that page; then
/// the browser goes to the provider.
pub(super) async fn begin<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(provider): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let PostedForm { params, browser, reply, t } = posted(&issuer, &parts.headers, &body);
    let query = params.get("request").unwrap_or("").to_owned();
    let request = match carried(&issuer, &query).await {
        Ok(request) => request,
        Err(failure) => return check_failed(reply, t, failure),
    };
    let app = request.as_ref().map(|r| &r.client);
    let page = FormPage::SignInWith { request: &query, provider: &provider };
    match issuer.accept_page_token(browser.browser_id.as_deref(), params.get("csrf"), page, now()).await {
        Err(error) => return reply.unavailable(t, &error),
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => {
            let (status, message) = match refusal {
                FormRefusal::Foreign => (StatusCode::FORBIDDEN, t.form_expired),
                FormRefusal::Expired | FormRefusal::Used => (StatusCode::BAD_REQUEST, t.form_expired),
            };
            return reply.sign_in_page(t, &query, app, Some(message.to_owned()), "", status);
        }
    }
    // The page token was taken, so the browser has its id.
    let browser_id = browser.browser_id.unwrap_or_default();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let address = client_address(peer, &parts.headers, &issuer.settings.trusted_proxies);
    match issuer.begin_upstream_sign_in(&provider, &query, &browser_id, None, address, now()).await {
        Ok(location) => reply.redirect(&location),
        Err(error) => failure(reply, t, &Unfinished { error, request: Some(query) }),
    }
}

/// `GET /sign-in/{provider}/callback`: the provider's answer. Signed in, the
/// browser goes on with the authorization request it began with (or to its
/// account page); otherwise a page in its language says what happened and
/// what to do.
pub(super) async fn callback<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let browser = Browser::from_headers(&headers);
    let t = browser.text(None);
    let mut reply = Reply::new(&issuer, &browser);
    let params = Params::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let answer = ProviderAnswer {
        code: params.get("code").map(str::to_owned),
        state: params.get("state").map(str::to_owned),
        iss: params.get("iss").map(str::to_owned),
        error: params.get("error").map(str::to_owned),
        error_description: params.get("error_description").map(str::to_owned),
    };
    let now = now();
    let signed_in = match issuer.session_for(browser.session_cookie.as_deref(), now).await {
        Ok(session) => session.map(|s| s.user_id),
        Err(error) => return reply.unavailable(t, &error),
    };
    let browser_id = browser.browser_id.as_deref();
    let done =
        match issuer.finish_upstream_sign_in(&provider, &answer, browser_id, signed_in.as_deref(), now).await
        {
            Ok(done) => done,
            Err(unfinished) => return failure(reply, t, &unfinished),
        };
    if done.linked {
        // Linked to the person signed in: their session goes on.
        return reply.redirect(&issuer.settings.endpoint("/account"));
    }
    // Whoever was signed in with this browser before is not any more.
    if let Some(old) = &browser.session_cookie
        && let Err(error) = issuer.end_session(old).await
    {
        return reply.unavailable(t, &error);
    }
    let (cookie, _) = match issuer.start_session(&done.user.id, done.auth_time, now).await {
        Ok(started) => started,
        Err(error) => return reply.unavailable(t, &error),
    };
    reply.cookie(SESSION_COOKIE, &cookie, None);
    let known = issuer.known_cookie(&done.user.id, &random_token(16));
    reply.cookie(KNOWN_COOKIE, &known, Some(KNOWN_BROWSER_SECS));
    after_sign_in(reply, !done.request.is_empty(), &done.request)
}

/// The page for a sign-in that did not finish: what happened, in words, and
/// a way to try again (the sign-in page of the same request).
fn failure<S: Store>(reply: Reply<'_, S>, t: &'static Text, unfinished: &Unfinished) -> Response {
    let settings = &reply.issuer.settings;
    let provider = match &unfinished.error {
        UpstreamError::Refused { provider, .. }
        | UpstreamError::Unreachable { provider, .. }
        | UpstreamError::BadAnswer { provider, .. }
        | UpstreamError::BadIdToken { provider, .. }
        | UpstreamError::NotAdmitted { provider, .. }
        | UpstreamError::LinkTaken { provider }
        | UpstreamError::EmailTaken { provider } => provider.clone(),
        _ => String::new(),
    };
    let words = |text: &str| text.replace("{provider}", &provider);
    tracing::info!(reason = %unfinished.error, "a sign-in at an identity provider did not finish");
    let (status, message) = match &unfinished.error {
        UpstreamError::UnknownProvider => {
            return reply.message(t, StatusCode::NOT_FOUND, t.not_found_title, t.not_found);
        }
        UpstreamError::NoSignInInProgress | UpstreamError::WrongProvider | UpstreamError::IssuerMismatch => {
            (StatusCode::BAD_REQUEST, t.upstream_no_sign_in.to_owned())
        }
        UpstreamError::Refused { .. } => (StatusCode::UNAUTHORIZED, words(t.upstream_refused)),
        UpstreamError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, words(t.upstream_unreachable)),
        UpstreamError::BadAnswer { .. } | UpstreamError::BadIdToken { .. } => {
            (StatusCode::BAD_GATEWAY, words(t.upstream_bad_answer))
        }
        UpstreamError::NotAdmitted { domains: None, .. } => {
            (StatusCode::FORBIDDEN, words(t.upstream_not_admitted))
        }
        UpstreamError::NotAdmitted { domains: Some(domains), .. } => {
            (StatusCode::FORBIDDEN, words(t.upstream_not_admitted_domains).replace("{domains}", domains))
        }
        UpstreamError::EmailTaken { .. } => (StatusCode::CONFLICT, words(t.upstream_email_taken)),
        UpstreamError::LinkTaken { .. } => (StatusCode::CONFLICT, words(t.upstream_link_taken)),
        UpstreamError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, t.error_next.to_owned()),
        UpstreamError::RequestTooLong => (StatusCode::BAD_REQUEST, t.error_next.to_owned()),
        UpstreamError::TooMany(seconds) => {
            let minutes = ((seconds + 59) / 60).max(1).to_string();
            let message = t.too_many_attempts.replace("{minutes}", &minutes);
            let mut page = reply.message(t, StatusCode::TOO_MANY_REQUESTS, t.upstream_failed_title, &message);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return page;
        }
    };
    let again = match unfinished.request.as_deref() {
        Some(request) if !request.is_empty() => format!("{}?{request}", settings.endpoint("/authorize")),
        _ => settings.endpoint("/sign-in"),
    };
    let next = Some(Link { href: again, label: t.try_again.to_owned() });
    reply.message_then(t, status, t.upstream_failed_title, &message, next)
}

/// `POST /account/link/{provider}`: the account page's "Link …" button. The
/// signed-in person goes to the provider; the account they sign in with
/// there is tied to them when they come back (still signed in here).
pub(super) async fn link<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(provider): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let (PostedForm { browser, reply, t, .. }, session) =
        match signed_in_form(&issuer, &parts.headers, &body).await {
            Ok(signed_in) => signed_in,
            Err(page) => return page,
        };
    let browser_id = browser.browser_id.unwrap_or_default();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let address = client_address(peer, &parts.headers, &issuer.settings.trusted_proxies);
    let begun = issuer
        .begin_upstream_sign_in(&provider, "", &browser_id, Some(&session.user_id), address, now())
        .await;
    match begun {
        Ok(location) => reply.redirect(&location),
        Err(error) => failure(reply, t, &Unfinished { error, request: None }),
    }
}

/// `POST /account/unlink`: unties an account at a provider from the
/// signed-in person, unless it is their last way to sign in.
pub(super) async fn unlink<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (PostedForm { params, reply, t, .. }, session) = match signed_in_form(&issuer, &headers, &body).await
    {
        Ok(signed_in) => signed_in,
        Err(page) => return page,
    };
    let (issuer_id, subject) = (params.get("issuer").unwrap_or(""), params.get("subject").unwrap_or(""));
    match issuer.unlink_account(&session.user_id, issuer_id, subject).await {
        Ok(Unlinked::LastWayIn) => {
            let back =
                Some(Link { href: issuer.settings.endpoint("/account"), label: t.account_title.to_owned() });
            reply.message_then(t, StatusCode::CONFLICT, t.error_title, t.last_way_in, back)
        }
        Ok(Unlinked::Done | Unlinked::NotTheirs) => reply.redirect(&issuer.settings.endpoint("/account")),
        Err(error) => reply.unavailable(t, &error.into()),
    }
}
