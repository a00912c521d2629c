//! `agentgate dev` as a real process, driven like a browser over real sockets:
//! sign-in, consent, the code, the token, and the guarded `whoami` call; and
//! every refusal of the authorization endpoint and the pages.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::Dev;
use support::browser::Browser;
use support::flow::{REDIRECT, authorize_url, exchange, jwt_claims, whoami};

const PASSWORD: &str = "wonderland";

#[tokio::test]
async fn a_third_party_agent_gets_alice_s_consent_and_calls_whoami() {
    let dev = Dev::start(PASSWORD);
    let agent = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en-US,en;q=0.9");

    let sign_in = browser.get(&authorize_url(&dev, &agent, &[])).await;
    assert_eq!(sign_in.status, StatusCode::OK);
    for text in [
        "<label for=\"login\">Username or email</label>",
        "<label for=\"password\">Password</label>",
        ">Sign in</button>",
        "SmartMail AI",
    ] {
        assert!(sign_in.body.contains(text), "{text} missing: {}", sign_in.body);
    }

    let wrong = browser.sign_in(&dev.base, &sign_in, "alice", "not her password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The username, email or password is not right."));
    let unknown = browser.sign_in(&dev.base, &wrong, "nobody", "not her password").await;
    // Each page's form token is its own; all else is the same.
    let without_token = |page: &support::browser::Page| page.body.replace(&page.input("csrf"), "");
    assert_eq!(
        without_token(&unknown).replace("nobody", "alice"),
        without_token(&wrong),
        "no hint whether the account exists"
    );

    let consent = browser.sign_in(&dev.base, &unknown, "alice@example.com", PASSWORD).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    for text in [
        "SmartMail AI wants to access your account.",
        "127.0.0.1:7777",
        ">Allow</button>",
        ">Deny</button>",
        "Use the whoami tool",
        "See your name and username",
    ] {
        assert!(consent.body.contains(text), "{text} missing: {}", consent.body);
    }
    let back = browser.decide(&dev.base, &consent, "allow").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert!(back.location.as_deref().unwrap().starts_with(REDIRECT));
    let params = back.redirect_params();
    assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("xyz", dev.base.as_str()));

    let tokens = exchange(&dev, &agent, &params["code"]).await;
    let access_token = tokens["access_token"].as_str().expect("an access token");
    let answer = whoami(&dev.mcp_url(), access_token).await.unwrap();
    assert_eq!(answer["token"]["client_id"], agent.as_str());
    assert_eq!(answer["token"]["audience"], serde_json::json!([format!("{}/mcp", dev.base)]));
    assert_eq!(answer["person"]["sub"], jwt_claims(tokens["id_token"].as_str().unwrap())["sub"]);
    // What alice allowed (profile, not email) is what the MCP server learns of her.
    assert_eq!(
        (answer["person"]["username"].as_str(), answer["person"]["name"].as_str()),
        (Some("alice"), Some("Alice"))
    );
    assert_eq!(answer["person"]["email"], Value::Null, "email was not granted: {answer}");
    assert_eq!(jwt_claims(tokens["id_token"].as_str().unwrap())["preferred_username"], "alice");

    // The code is single use.
    assert_eq!(exchange(&dev, &agent, &params["code"]).await["error"], "invalid_grant");

    // Consent is remembered: the next authorization goes straight back...
    let again = browser.get(&authorize_url(&dev, &agent, &[])).await;
    assert!(again.redirect_params().contains_key("code"), "{}", again.body);
    // ...unless the app asks for more, or for consent again.
    let more =
        browser.get(&authorize_url(&dev, &agent, &[("scope", "openid profile email mcp:tools")])).await;
    assert!(
        more.body.contains("See your email address") && !more.body.contains("See your name"),
        "{}",
        more.body
    );
    let forced = browser.get(&authorize_url(&dev, &agent, &[("prompt", "consent")])).await;
    assert!(forced.body.contains(">Allow</button>"));

    // The account page lists the app; disconnecting asks consent again.
    let account = browser.get(&format!("{}/account", dev.base)).await;
    assert!(account.body.contains("SmartMail AI"), "{}", account.body);
    let csrf = account.input("csrf");
    let done = browser
        .post(&format!("{}/account/disconnect", dev.base), &[("csrf", &csrf), ("client_id", &agent)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let after = browser.get(&authorize_url(&dev, &agent, &[])).await;
    assert!(after.body.contains(">Allow</button>"), "consent asked again after disconnecting");
}

#[tokio::test]
async fn first_party_apps_skip_consent_and_deny_returns_access_denied() {
    let dev = Dev::start(PASSWORD);
    let own = dev.client_id("agentgate demo app");
    let mut browser = Browser::new("en");
    let sign_in = browser.get(&authorize_url(&dev, &own, &[])).await;
    let back = browser.sign_in(&dev.base, &sign_in, "alice", PASSWORD).await;
    assert!(
        back.redirect_params().contains_key("code"),
        "no consent page for a first-party app: {}",
        back.body
    );

    let agent = dev.client_id("SmartMail AI");
    let consent = browser.get(&authorize_url(&dev, &agent, &[])).await;
    let denied = browser.decide(&dev.base, &consent, "deny").await.redirect_params();
    assert_eq!(denied["error"], "access_denied");
    assert_eq!((denied["state"].as_str(), denied["iss"].as_str()), ("xyz", dev.base.as_str()));
    assert!(!denied.contains_key("code"));

    // prompt=none with no consent yet: an error, not a page.
    let none = browser.get(&authorize_url(&dev, &agent, &[("prompt", "none")])).await.redirect_params();
    assert_eq!(none["error"], "consent_required");
    // prompt=login shows the sign-in form although a session exists; then continues.
    let login = browser.get(&authorize_url(&dev, &own, &[("prompt", "login")])).await;
    assert!(login.body.contains("name=\"password\""));
    let back = browser.sign_in(&dev.base, &login, "alice", PASSWORD).await;
    assert!(back.redirect_params().contains_key("code"));
}

#[tokio::test]
async fn errors_before_the_redirect_is_verified_are_pages_and_after_are_redirects() {
    let dev = Dev::start(PASSWORD);
    let agent = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    for (name, extra) in [
        ("unregistered redirect", vec![("redirect_uri", "https://attacker.example/callback")]),
        ("other loopback path", vec![("redirect_uri", "http://127.0.0.1:7777/other")]),
        ("no redirect_uri", vec![("redirect_uri", "")]),
        ("unknown client", vec![("client_id", "nobody")]),
    ] {
        let page = browser.get(&authorize_url(&dev, &agent, &extra)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{name}");
        assert!(page.location.is_none(), "{name}: never redirected");
    }
    let repeated = browser.get(&format!("{}&state=again", authorize_url(&dev, &agent, &[]))).await;
    assert_eq!((repeated.status, repeated.location), (StatusCode::BAD_REQUEST, None), "a repeated parameter");
    for (name, extra, error) in [
        ("PKCE missing", [("code_challenge", "")], "invalid_request"),
        ("PKCE plain", [("code_challenge_method", "plain")], "invalid_request"),
        ("unknown resource", [("resource", "https://elsewhere.example/mcp")], "invalid_target"),
        ("unknown scope", [("scope", "openid admin")], "invalid_scope"),
        ("token flow", [("response_type", "token")], "unsupported_response_type"),
    ] {
        let params = browser.get(&authorize_url(&dev, &agent, &extra)).await.redirect_params();
        assert_eq!(params["error"], error, "{name}");
        assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("xyz", dev.base.as_str()), "{name}");
    }
}

#[tokio::test]
async fn forms_without_the_form_token_are_refused() {
    let dev = Dev::start(PASSWORD);
    let agent = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let sign_in = browser.get(&authorize_url(&dev, &agent, &[])).await;
    let request = sign_in.input("request");
    let url = format!("{}/sign-in", dev.base);
    for csrf in ["", "forged", &sign_in.input("csrf")[1..]] {
        let page = browser
            .post(&url, &[("csrf", csrf), ("request", &request), ("login", "alice"), ("password", PASSWORD)])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(!browser.cookies.contains_key("agentgate_session"));
    }
    // Another browser's token does not fit this browser.
    let mut other = Browser::new("en");
    let page = other
        .post(
            &url,
            &[
                ("csrf", &sign_in.input("csrf")),
                ("request", &request),
                ("login", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let consent = browser.sign_in(&dev.base, &sign_in, "alice", PASSWORD).await;
    let page = browser
        .post(
            &format!("{}/consent", dev.base),
            &[("request", &consent.input("request")), ("decision", "allow")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_account() {
    let dev = Dev::start(PASSWORD);
    let mut browser = Browser::new("es");
    let mut page = browser.get(&format!("{}/sign-in", dev.base)).await;
    assert!(page.body.contains("Usuario o correo electrónico"), "Spanish from Accept-Language");
    for _ in 0..5 {
        page = browser.sign_in(&dev.base, &page, "alice", "wrong").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let limited = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(limited.body.contains("Demasiados intentos fallidos"), "{}", limited.body);
    // An account nobody has gets the same treatment: the limit reveals nothing.
    let mut page = limited;
    for _ in 0..5 {
        page = browser.sign_in(&dev.base, &page, "nobody", "wrong").await;
    }
    assert_eq!(
        browser.sign_in(&dev.base, &page, "nobody", "wrong").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn apps_sign_people_out_only_to_registered_places_and_only_once_confirmed() {
    let dev = Dev::start(PASSWORD);
    let signed_out = "http://127.0.0.1:7777/signed-out";
    let app = dev.add_app(&[
        "Mail client",
        "--public",
        "--native",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--post-logout-redirect-uri",
        "http://127.0.0.1/signed-out",
        "--scopes",
        "openid mcp:tools",
    ]);
    let agent = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let sign_in = browser.get(&authorize_url(&dev, &app, &[("scope", "openid mcp:tools")])).await;
    let back = browser.sign_in(&dev.base, &sign_in, "alice", PASSWORD).await;
    let tokens = exchange(&dev, &app, &back.redirect_params()["code"]).await;
    let id_token = tokens["id_token"].as_str().expect("an ID token").to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut forged = id_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let end_session = |query: &[(&str, &str)]| {
        let mut url = url::Url::parse(&format!("{}/end-session", dev.base)).unwrap();
        url.query_pairs_mut().extend_pairs(query);
        url.to_string()
    };
    let account = format!("{}/account", dev.base);

    // Every doubtful request is a page, never a redirect, and signs no one out.
    for (name, query) in [
        (
            "unregistered place",
            vec![("client_id", app.as_str()), ("post_logout_redirect_uri", "https://attacker.example/")],
        ),
        (
            "another app's place",
            vec![("client_id", agent.as_str()), ("post_logout_redirect_uri", signed_out)],
        ),
        ("no app named", vec![("post_logout_redirect_uri", signed_out)]),
        ("forged hint", vec![("id_token_hint", forged.as_str()), ("post_logout_redirect_uri", signed_out)]),
        ("access token as hint", vec![("id_token_hint", access_token.as_str())]),
        (
            "hint and client_id disagree",
            vec![("id_token_hint", id_token.as_str()), ("client_id", agent.as_str())],
        ),
    ] {
        let page = browser.get(&end_session(&query)).await;
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::BAD_REQUEST, None), "{name}");
    }
    assert_eq!(browser.get(&account).await.status, StatusCode::OK, "still signed in");

    // A valid request asks first: the GET alone (a link, an image) ends nothing.
    let query =
        [("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", signed_out), ("state", "s1")];
    let confirm = browser.get(&end_session(&query)).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Sign out?") && confirm.body.contains("Mail client"), "{}", confirm.body);
    assert_eq!(browser.get(&account).await.status, StatusCode::OK, "not signed out by a GET");
    let sign_out = format!("{}/sign-out", dev.base);
    let no_token = browser.post(&sign_out, &[("request", &confirm.input("request"))]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "the form token is required");

    let done = browser
        .post(&sign_out, &[("csrf", &confirm.input("csrf")), ("request", &confirm.input("request"))])
        .await;
    assert_eq!(done.location.as_deref(), Some(format!("{signed_out}?state=s1").as_str()));
    assert_eq!(
        browser.get(&account).await.status,
        StatusCode::SEE_OTHER,
        "signed out: the account page sends to sign-in"
    );

    // Nobody signed in: nothing to confirm, straight back to the app.
    let again =
        browser.get(&end_session(&[("client_id", &app), ("post_logout_redirect_uri", signed_out)])).await;
    assert_eq!(again.location.as_deref(), Some(signed_out));
}
