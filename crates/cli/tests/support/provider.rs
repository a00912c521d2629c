//! Signing in at an identity provider, for the tests: a `[[provider]]`
//! section for node oidc-provider (its client `agentgate-upstream`), the
//! sign-in page's "Continue with …" button, and a person at oidc-provider's
//! development pages.

use std::collections::HashMap;

use reqwest::StatusCode;

use super::browser::{Browser, Page};
use super::flow::authorize_url_on;

/// A `[[provider]]` section.
pub fn provider(id: &str, name: &str, issuer: &str, people: &str) -> String {
    format!(
        "[[provider]]\nid = \"{id}\"\nname = \"{name}\"\nissuer = \"{issuer}\"\nclient_id = \"agentgate-upstream\"\n\
         client_secret = \"agentgate-upstream-secret\"\npeople = \"{people}\"\n"
    )
}

/// Presses "Continue with …" for `provider` on the sign-in page of `app`'s
/// authorization request: the answer (a redirect to the provider, or a page).
pub async fn begin(browser: &mut Browser, base: &str, app: &str, provider: &str) -> Page {
    let page =
        browser.get(&authorize_url_on(base, app, &[("scope", "openid profile email mcp:tools")])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let action = format!("{base}/sign-in/{provider}");
    let csrf = page.form_csrf(&action);
    let request = page.input("request");
    browser.post(&action, &[("csrf", &csrf), ("request", &request)]).await
}

/// A person at oidc-provider's development pages: follows its redirects,
/// signs in as `user` and consents, until it sends the browser back to
/// agentgate; that URL (the callback, with code, state and iss).
pub async fn at_the_provider(start: &str, user: &str) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut jar: HashMap<String, String> = HashMap::new();
    let mut url = start.to_owned();
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..12 {
        let cookie = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = match form.take() {
            Some(fields) => http.post(&url).form(&fields),
            None => http.get(&url),
        };
        let answer = request.header("cookie", cookie).send().await.unwrap();
        for set in answer.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            jar.insert(name.to_owned(), value.to_owned());
        }
        if let Some(location) = answer.headers().get("location") {
            let next = url::Url::parse(&url).unwrap().join(location.to_str().unwrap()).unwrap().to_string();
            if next.contains("/sign-in/") && next.contains("/callback") {
                return next;
            }
            url = next;
            continue;
        }
        let body = answer.text().await.unwrap();
        let action = body.split("action=\"").nth(1).and_then(|rest| rest.split('"').next());
        let action = action.unwrap_or_else(|| panic!("no form at {url}: {body}"));
        url = url::Url::parse(&url).unwrap().join(action).unwrap().to_string();
        let prompt = if body.contains("name=\"password\"") { "login" } else { "consent" };
        let mut fields = vec![("prompt".to_owned(), prompt.to_owned())];
        if prompt == "login" {
            fields.push(("login".into(), user.into()));
            fields.push(("password".into(), "any".into()));
        }
        form = Some(fields);
    }
    panic!("oidc-provider did not send the browser back (last: {url})")
}
