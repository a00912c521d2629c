//! The sign-in and consent forms of `agentgate dev`, attacked. A decision
//! counts only for the one request whose consent page this browser's session
//! was shown, once; a decision for another request, posted again, or posted
//! from another browser or session gives no code and changes nothing. The
//! sign-in form likewise. (Expiry is tested with the clock in hand, in
//! `crates/issuer/tests/page_forms.rs`.)

mod support;

use reqwest::StatusCode;
use support::Dev;
use support::browser::{Browser, Page};
use support::flow::authorize_url;

const PASSWORD: &str = "wonderland";

/// The consent form of `page`, with `request` in place of its own when given.
async fn post_decision(browser: &mut Browser, dev: &Dev, page: &Page, request: Option<&str>) -> Page {
    let own = page.input("request");
    let fields = [
        ("csrf", page.input("csrf")),
        ("request", request.unwrap_or(&own).to_owned()),
        ("asked", page.input("asked")),
        ("decision", "allow".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post(&format!("{}/consent", dev.base), &fields).await
}

/// The query of an authorization request URL.
fn query_of(url: &str) -> String {
    url.split_once('?').unwrap().1.to_owned()
}

/// Alice's consent page for `app`, signing in first in a fresh browser.
async fn consent_page(dev: &Dev, browser: &mut Browser, app: &str) -> Page {
    let page = browser.get(&authorize_url(dev, app, &[])).await;
    let page = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    assert!(page.body.contains(">Allow</button>"), "{}", page.body);
    page
}

/// Whether alice's account page lists any app.
async fn connected(browser: &mut Browser, dev: &Dev) -> bool {
    let account = browser.get(&format!("{}/account", dev.base)).await;
    assert_eq!(account.status, StatusCode::OK);
    !account.body.contains("No app is connected to your account.")
}

#[tokio::test]
async fn a_decision_for_a_request_whose_page_was_never_shown_gives_no_code() {
    let dev = Dev::start(PASSWORD);
    let smartmail = dev.client_id("SmartMail AI");
    let other = dev.add_app(&[
        "Other agent",
        "--third-party",
        "--public",
        "--native",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--scopes",
        "openid profile mcp:tools",
    ]);
    let mut browser = Browser::new("en");
    let shown = consent_page(&dev, &mut browser, &smartmail).await;

    // Alice's own form token, for a request whose page she never saw: another
    // app's, or the same app's with another state or more scopes.
    for (what, request) in [
        ("another app", query_of(&authorize_url(&dev, &other, &[]))),
        ("another state", query_of(&authorize_url(&dev, &smartmail, &[("state", "other")]))),
        (
            "more scopes",
            query_of(&authorize_url(&dev, &smartmail, &[("scope", "openid profile email mcp:tools")])),
        ),
    ] {
        let page = post_decision(&mut browser, &dev, &shown, Some(&request)).await;
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::FORBIDDEN, None), "{what}");
        assert!(page.body.contains("This form has expired or was not sent from this site"), "{what}");
    }
    assert!(!connected(&mut browser, &dev).await, "no grant was stored");
    let again = browser.get(&authorize_url(&dev, &other, &[])).await;
    assert!(again.body.contains(">Allow</button>"), "the other app still asks: {}", again.body);

    // The page that was shown still works, once.
    let back = post_decision(&mut browser, &dev, &shown, None).await;
    assert!(back.redirect_params().contains_key("code"));
}

#[tokio::test]
async fn a_decision_is_taken_once_and_a_replay_after_disconnect_brings_nothing_back() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let shown = consent_page(&dev, &mut browser, &app).await;
    let first = post_decision(&mut browser, &dev, &shown, None).await;
    assert!(first.redirect_params().contains_key("code"));

    // Posted again (a double click, or a replay): no code, and a way on.
    let again = post_decision(&mut browser, &dev, &shown, None).await;
    assert_eq!((again.status, again.location.as_deref()), (StatusCode::CONFLICT, None));
    assert!(again.body.contains("You already chose on this page"), "{}", again.body);
    assert!(again.body.contains("Continue to SmartMail AI"), "{}", again.body);

    // Alice disconnects the app; the captured form, posted again, brings nothing back.
    let account = browser.get(&format!("{}/account", dev.base)).await;
    let csrf = account.input("csrf");
    browser.post(&format!("{}/account/disconnect", dev.base), &[("csrf", &csrf), ("client_id", &app)]).await;
    let replay = post_decision(&mut browser, &dev, &shown, None).await;
    assert_eq!((replay.status, replay.location.as_deref()), (StatusCode::OK, None));
    assert!(replay.body.contains("Nothing was decided"), "{}", replay.body);
    assert!(replay.body.contains(">Allow</button>"), "she is asked again: {}", replay.body);
    assert!(!connected(&mut browser, &dev).await, "the grant did not come back");
}

#[tokio::test]
async fn another_browser_or_session_cannot_use_a_decision() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let shown = consent_page(&dev, &mut browser, &app).await;

    // Alice, signed in on another browser, posting this browser's form.
    let mut other = Browser::new("en");
    let page = other.get(&format!("{}/sign-in", dev.base)).await;
    other.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    let page = post_decision(&mut other, &dev, &shown, None).await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::FORBIDDEN, None), "another browser");

    // This browser, signed in again since: a new session, so the old page is not its.
    let account = browser.get(&format!("{}/account", dev.base)).await;
    browser.post(&format!("{}/sign-out", dev.base), &[("csrf", &account.input("csrf"))]).await;
    let page = browser.get(&format!("{}/sign-in", dev.base)).await;
    browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    let page = post_decision(&mut browser, &dev, &shown, None).await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::FORBIDDEN, None), "another session");
    assert!(!connected(&mut browser, &dev).await);
}

#[tokio::test]
async fn a_sign_in_form_is_taken_once() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let shown = browser.get(&authorize_url(&dev, &app, &[])).await;
    let wrong = browser.sign_in(&dev.base, &shown, "alice", "not her password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    // The first page's form again, now with the right password: refused, nobody signed in.
    let replay = browser.sign_in(&dev.base, &shown, "alice", PASSWORD).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("This sign-in page had expired or was already sent"), "{}", replay.body);
    assert!(!browser.cookies.contains_key("agentgate_session"));

    // The page it was answered with works; sent twice (a double click), the
    // second goes on as the first did.
    let consent = browser.sign_in(&dev.base, &replay, "alice", PASSWORD).await;
    assert!(consent.body.contains(">Allow</button>"), "{}", consent.body);
    let twice = browser.sign_in(&dev.base, &replay, "alice", PASSWORD).await;
    assert!(twice.body.contains(">Allow</button>"), "{}", twice.body);

    // A sign-in form for one request cannot be posted for another.
    let mut fresh = Browser::new("en");
    let page = fresh.get(&authorize_url(&dev, &app, &[])).await;
    let other = query_of(&authorize_url(&dev, &app, &[("state", "other")]));
    let posted = fresh
        .post(
            &format!("{}/sign-in", dev.base),
            &[("csrf", &page.input("csrf")), ("request", &other), ("login", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    assert!(!fresh.cookies.contains_key("agentgate_session"));
}
