//! Signing in at an identity provider: the sign-in page's "Continue with …"
//! buttons post here, the browser goes to the provider, and comes back to the
//! provider's callback. The rules are `upstream`'s; these handlers parse, call
//! and render.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::form::Params;
use super::pages::{Browser, PostedForm, Reply, after_sign_in, check, check_failed, posted};
use crate::forms::{FormPage, FormRefusal};
use crate::sessions::{KNOWN_BROWSER_SECS, KNOWN_COOKIE, SESSION_COOKIE};
use crate::store::Store;
use crate::ui::{Link, Text};
use crate::upstream::{ProviderAnswer, Unfinished, UpstreamError};
use crate::{Issuer, now, random_token};

/// `POST /sign-in/{provider}`: a button of the sign-in page. Its page token
/// is taken once, and only for the request and provider of that page; then
/// the browser goes to the provider.
pub(super) async fn begin<S: Store>(
    State(issuer): State<Arc<Issuer<S>>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PostedForm { params, browser, reply, t } = posted(&issuer, &headers, &body);
    let query = params.get("request").unwrap_or("").to_owned();
    let request = if query.is_empty() {
        None
    } else {
        match check(&issuer, &query).await {
            Ok(request) => Some(request),
            Err(failure) => return check_failed(reply, t, failure),
        }
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
    match issuer.begin_upstream_sign_in(&provider, &query, &browser_id, None, now()).await {
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
    let done =
        match issuer.finish_upstream_sign_in(&provider, &answer, browser.browser_id.as_deref(), now).await {
            Ok(done) => done,
            Err(unfinished) => return failure(reply, t, &unfinished),
        };
    let (cookie, _) = match issuer.start_session(&done.user.id, now).await {
        Ok(started) => started,
        Err(error) => return reply.unavailable(t, &error),
    };
    reply.cookie(SESSION_COOKIE, &cookie, None);
    let known = issuer.known_cookie(&done.user.id, &random_token(16));
    reply.cookie(KNOWN_COOKIE, &known, Some(KNOWN_BROWSER_SECS));
    let continues = !done.request.is_empty() && !done.linked;
    after_sign_in(reply, continues, &done.request)
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
    };
    let again = match unfinished.request.as_deref() {
        Some(request) if !request.is_empty() => format!("{}?{request}", settings.endpoint("/authorize")),
        _ => settings.endpoint("/sign-in"),
    };
    let next = Some(Link { href: again, label: t.try_again.to_owned() });
    reply.message_then(t, status, t.upstream_failed_title, &message, next)
}
