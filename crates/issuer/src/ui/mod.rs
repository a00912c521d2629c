//! The person's pages: sign-in, consent, account, and messages. Server-rendered
//! HTML (askama, escaped by default) that works without JavaScript; every field
//! has a `<label for>`; the words come from [`i18n`].

pub mod i18n;

use askama::Template;

use crate::store::Resource;
pub use i18n::Text;

/// The sign-in page.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage<'a> {
    /// Words.
    pub t: &'static Text,
    /// Where the form posts.
    pub action: String,
    /// The form token.
    pub csrf: String,
    /// The authorization request being continued (its query string), or empty.
    pub request: String,
    /// The app the person is signing in to, if any.
    pub app_name: Option<&'a str>,
    /// Whether that app registered itself (shown as not verified).
    pub unverified: bool,
    /// What went wrong last time.
    pub error: Option<String>,
    /// The login typed last time.
    pub login: String,
    /// A button per identity provider.
    pub providers: Vec<ProviderButton>,
    /// Whether the password form is shown.
    pub passwords: bool,
}

/// "Continue with …": a form that begins a sign-in at an identity provider.
pub struct ProviderButton {
    /// Where the form posts.
    pub action: String,
    /// Its page token.
    pub csrf: String,
    /// The button's words.
    pub label: String,
}

/// The page that asks before an app signs the person out (RP-initiated logout).
#[derive(Template)]
#[template(path = "sign_out.html")]
pub struct SignOutPage {
    /// Words.
    pub t: &'static Text,
    /// Where the form posts.
    pub action: String,
    /// The form token.
    pub csrf: String,
    /// The logout request being continued (its parameters), or empty.
    pub request: String,
    /// The app that asked, if it said.
    pub app_name: Option<String>,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    /// Words.
    pub t: &'static Text,
    /// Where the form posts.
    pub action: String,
    /// The form token.
    pub csrf: String,
    /// The authorization request being continued.
    pub request: String,
    /// The scopes asked, space-separated: what the decision is about.
    pub asked: String,
    /// Said above the page when it is shown again (an expired or repeated decision).
    pub notice: Option<String>,
    /// "{app} wants to access your account."
    pub intro: String,
    /// Each permission asked, in plain words.
    pub permissions: Vec<String>,
    /// "you will be sent back to {host}".
    pub redirect_note: String,
    /// Whether to show the third-party warning.
    pub third_party: bool,
    /// Whether the app registered itself (shown as not verified, without its logo).
    pub unverified: bool,
    /// "This app describes itself at {host}", for an app known by its metadata document.
    pub document_note: Option<String>,
    /// The app's logo.
    pub logo_uri: Option<String>,
    /// The app's home page.
    pub client_uri: Option<String>,
    /// The app's privacy policy.
    pub policy_uri: Option<String>,
    /// The app's terms.
    pub tos_uri: Option<String>,
    /// Who is signed in.
    pub username: String,
}

/// One connected app on the account page.
pub struct AccountApp {
    /// Its id, for the disconnect form.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// Whether it registered itself (nobody checked who made it).
    pub unverified: bool,
    /// How it came here and when, where it sends the person back, when it
    /// was last used: what tells two apps of one name apart.
    pub details: Vec<String>,
    /// What it may do, in plain words.
    pub permissions: Vec<String>,
}

/// A time for people: `2026-12-03 18:02 UTC`.
pub fn when(secs: i64) -> String {
    let stamp = crate::rfc3339(secs);
    format!("{} {} UTC", &stamp[..10], &stamp[11..16])
}

/// Where an app sends the person back: the hosts (or app schemes) of its
/// redirect URIs, each once.
pub fn redirect_places(redirect_uris: &[String]) -> Vec<String> {
    let mut places: Vec<String> = Vec::new();
    for uri in redirect_uris {
        let place = match url::Url::parse(uri) {
            Ok(url) => url.host_str().map_or_else(|| format!("{}:", url.scheme()), str::to_owned),
            Err(_) => continue,
        };
        if !places.contains(&place) {
            places.push(place);
        }
    }
    places
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// Words.
    pub t: &'static Text,
    /// The form token.
    pub csrf: String,
    /// Who is signed in.
    pub username: String,
    /// Connected apps.
    pub apps: Vec<AccountApp>,
    /// Where disconnect forms post.
    pub disconnect_action: String,
    /// Where the sign-out form posts.
    pub sign_out_action: String,
    /// The person's accounts at identity providers.
    pub links: Vec<AccountLink>,
    /// Where unlink forms post.
    pub unlink_action: String,
    /// "Link …" buttons, one per provider the person has no account of yet.
    pub linkable: Vec<ProviderButton>,
}

/// An account at an identity provider, on the account page.
pub struct AccountLink {
    /// The provider's name (or issuer, once no longer configured).
    pub provider: String,
    /// The provider's issuer, for the unlink form.
    pub issuer: String,
    /// The account's subject at the provider.
    pub subject: String,
}

/// The issuer's home page: what this server is, and where to go.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Words.
    pub t: &'static Text,
    /// The sign-in page.
    pub sign_in: String,
    /// The account page.
    pub account: String,
    /// The discovery document.
    pub discovery: String,
}

/// A page with one message.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Words.
    pub t: &'static Text,
    /// The heading.
    pub title: String,
    /// The message.
    pub message: String,
    /// Shown as an error.
    pub is_error: bool,
    /// What to do next, as a link.
    pub next: Option<Link>,
}

/// A link on a page.
pub struct Link {
    /// Where it goes.
    pub href: String,
    /// What it says.
    pub label: String,
}

/// A scope in plain words: OpenID scopes from the texts, a resource's scopes
/// from the description its operator wrote, in the page's language where
/// there is one.
pub fn describe_scope(t: &Text, scope: &str, resource: Option<&Resource>) -> String {
    match scope {
        "openid" => t.scope_openid.to_owned(),
        "profile" => t.scope_profile.to_owned(),
        "email" => t.scope_email.to_owned(),
        "offline_access" => t.scope_offline_access.to_owned(),
        other => match resource.and_then(|r| Some((r.name_in(t.lang), r.describe_in(other, t.lang)?))) {
            Some((name, words)) => format!("{name} — {words} ({other})"),
            None => other.to_owned(),
        },
    }
}

/// Renders a template; a template error is a bug, reported as plain text.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|error| {
        tracing::error!(%error, "template failed");
        "internal error".to_owned()
    })
}
