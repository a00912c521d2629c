//! A browser for the tests: no automatic redirects, a cookie jar that checks
//! every cookie's attributes, and the pages it was shown.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// A browser: no automatic redirects, a cookie jar, the pages it was shown.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    language: &'static str,
}

/// One answer: status, Location, body.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// A hidden or text input's value, unescaped.
    pub fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no input {name} in {}", self.body))
            + marker.len();
        let raw = &self.body[start..start + self.body[start..].find('"').unwrap()];
        raw.replace("&#38;", "&")
            .replace("&amp;", "&")
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
    }

    /// The page token of the form whose action ends with `action` (pages with
    /// several forms: the sign-in page's providers, the account page).
    pub fn form_csrf(&self, action: &str) -> String {
        let marker = "action=\"";
        let form = self
            .body
            .match_indices(marker)
            .map(|(at, _)| at + marker.len())
            .find(|&start| self.body[start..start + self.body[start..].find('"').unwrap()].ends_with(action))
            .unwrap_or_else(|| panic!("no form for {action}: {}", self.body));
        let marker = "name=\"csrf\" value=\"";
        let start = form + self.body[form..].find(marker).unwrap() + marker.len();
        self.body[start..start + self.body[start..].find('"').unwrap()].to_owned()
    }

    /// The query parameters of the redirect.
    pub fn redirect_params(&self) -> HashMap<String, String> {
        let location = self
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("no redirect ({}): {}", self.status, self.body));
        url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
    }
}

impl Browser {
    pub fn new(language: &'static str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, cookies: HashMap::new(), language }
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let response =
            request.header(COOKIE, cookie).header("accept-language", self.language).send().await.unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap();
            assert!(attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"), "{set}");
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned());
        Page { status, location, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(url);
        self.send(request).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(url).form(form);
        self.send(request).await
    }

    /// Fills in the sign-in form shown on `page`.
    pub async fn sign_in(&mut self, base: &str, page: &Page, login: &str, password: &str) -> Page {
        let (csrf, request) = (page.form_csrf("/sign-in"), page.input("request"));
        let page = self
            .post(
                &format!("{base}/sign-in"),
                &[("csrf", &csrf), ("request", &request), ("login", login), ("password", password)],
            )
            .await;
        // Signed in: POST/redirect/GET back to the authorization endpoint, which
        // shows the consent page or sends the browser on to the app.
        match page.location.as_deref() {
            Some(next) if next.starts_with(&format!("{base}/authorize?")) => self.get(next).await,
            _ => page,
        }
    }

    /// Presses Allow or Deny on the consent `page`.
    pub async fn decide(&mut self, base: &str, page: &Page, decision: &str) -> Page {
        let (csrf, request, asked) = (page.input("csrf"), page.input("request"), page.input("asked"));
        self.post(
            &format!("{base}/consent"),
            &[("csrf", &csrf), ("request", &request), ("asked", &asked), ("decision", decision)],
        )
        .await
    }
}
