//! Signing in at the identity provider people already have: `agentgate serve`
//! with `[[provider]]` sections, node oidc-provider as the provider (its
//! development sign-in and consent pages), and a provider made here that
//! misbehaves on purpose. The whole flow, then every attack of the issue —
//! replayed and foreign state, mix-up, a wrong nonce, an ID token for another
//! audience or from another issuer, a provider that is down, slow or answers
//! garbage, an address that is someone else's, a callback with no sign-in —
//! each refused with nothing stored.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentgate_issuer::keys::{Alg, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::browser::{Browser, Page};
use support::flow::{REDIRECT, VERIFIER, authorize_url_on, jwt_claims, whoami};
use support::provider::{at_the_provider, begin, provider};
use support::setup::{PASSWORD, Setup};
use support::{Dev, Idp, free_port};

/// `agentgate serve` with `extra` and its whoami at /mcp; the third-party
/// app's client id.
fn serve(name: &str, extra: &str) -> (Setup, support::Process, String) {
    let setup = Setup::new(name, &format!("[whoami]\n{extra}"), 0o600);
    let app = setup.add_app("Outside agent", &["--third-party"], "openid profile email mcp:tools");
    let (process, _) = setup.serve(&[]);
    (setup, process, app)
}

/// The people the server knows, by username.
fn people(setup: &Setup) -> Vec<Value> {
    setup.json(&["users", "list", "--json"]).as_array().unwrap().clone()
}

/// Exchanges the code of the redirect on `page` as `app`; the token answer.
async fn exchange(base: &str, app: &str, page: &Page) -> Value {
    let code = page.redirect_params()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", app),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_comes_in_through_oidc_provider_and_every_forged_answer_is_refused() {
    let (idp, other) = (Idp::start(&[]), Idp::start(&[]));
    let extra = provider("outside", "Outside ID", &idp.issuer, "anyone")
        + &provider("other", "Other ID", &other.issuer, "anyone");
    let (setup, _serve, app) = serve("providers", &extra);
    let base = setup.issuer();

    // The sign-in page offers both, beside the password form.
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &[])).await;
    for words in ["Continue with Outside ID", "Continue with Other ID", "name=\"password\""] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }

    // alice signs in at her provider, comes back, consents; her tokens are
    // agentgate's, with the profile her provider gave.
    let to_provider = begin(&mut browser, &base, &app, "outside").await;
    let location = to_provider.location.clone().expect("sent to the provider");
    let sent = url::Url::parse(&location).unwrap();
    let asked: HashMap<_, _> = sent.query_pairs().into_owned().collect();
    assert!(location.starts_with(&idp.issuer), "{location}");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert!(asked["nonce"].len() >= 43 && asked["state"].len() >= 43, "{asked:?}");
    assert_eq!(asked["redirect_uri"], format!("{base}/sign-in/outside/callback"));
    let callback = at_the_provider(&location, "alice").await;
    let back = browser.get(&callback).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let consent = browser.get(back.location.as_deref().unwrap()).await;
    assert!(consent.body.contains("Allow access?"), "{}", consent.body);
    let allowed = browser.decide(&base, &consent, "allow").await;
    let tokens = exchange(&base, &app, &allowed).await;
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["iss"], base.as_str(), "agentgate's token, not the provider's: {id_token}");
    assert_eq!(
        (id_token["name"].as_str(), id_token["email"].as_str(), id_token["email_verified"].as_bool()),
        (Some("Alice Liddell"), Some("alice@example.com"), Some(true)),
        "{id_token}"
    );
    assert_eq!(id_token["preferred_username"], "alice");
    let made = people(&setup);
    assert_eq!(made.len(), 1, "{made:?}");
    // Her account at the provider is her only way in: it cannot be unlinked.
    let unlink = format!("{base}/account/unlink");
    let page = browser.get(&format!("{base}/account")).await;
    let csrf = page.form_csrf(&unlink);
    let form = [("csrf", csrf.as_str()), ("issuer", idp.issuer.as_str()), ("subject", "alice")];
    let kept = browser.post(&unlink, &form).await;
    assert_eq!(kept.status, StatusCode::CONFLICT, "{}", kept.body);
    assert!(kept.body.contains("only way to sign in"), "{}", kept.body);

    // An app that asks for a fresh sign-in has the provider asked for one.
    let mut fresh = Browser::new("en");
    let page = fresh.get(&authorize_url_on(&base, &app, &[("prompt", "login"), ("max_age", "60")])).await;
    let action = format!("{base}/sign-in/outside");
    let form = [("csrf", page.form_csrf(&action)), ("request", page.input("request"))];
    let sent = fresh.post(&action, &[("csrf", &form[0].1), ("request", &form[1].1)]).await;
    let asked: HashMap<_, _> =
        url::Url::parse(sent.location.as_deref().unwrap()).unwrap().query_pairs().into_owned().collect();
    assert_eq!((asked["prompt"].as_str(), asked["max_age"].as_str()), ("login", "60"), "{asked:?}");

    // The same answer again: the sign-in was taken.
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST, "{}", replayed.body);
    assert!(replayed.body.contains("no sign-in started in this browser"), "{}", replayed.body);

    // An answer begun in one browser, delivered to another (login CSRF).
    let mut attacker = Browser::new("en");
    let started = begin(&mut attacker, &base, &app, "outside").await.location.unwrap();
    let attackers_answer = at_the_provider(&started, "bob").await;
    let mut victim = Browser::new("en");
    let fed = victim.get(&attackers_answer).await;
    assert_eq!(fed.status, StatusCode::BAD_REQUEST, "{}", fed.body);
    assert!(!victim.cookies.contains_key("agentgate_session"), "the victim is not signed in as bob");
    assert_eq!(attacker.get(&attackers_answer).await.status, StatusCode::BAD_REQUEST, "and it is spent");

    // Mix-up: the answer of one provider sent to the other's callback, or
    // claiming to come from the other.
    let mut browser = Browser::new("en");
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let answer = at_the_provider(&started, "alice").await;
    let mixed = answer.replace("/sign-in/outside/callback", "/sign-in/other/callback");
    assert_eq!(browser.get(&mixed).await.status, StatusCode::BAD_REQUEST);
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let answer = url::Url::parse(&at_the_provider(&started, "alice").await).unwrap();
    let mut forged = answer.clone();
    forged.query_pairs_mut().clear().extend_pairs(answer.query_pairs().map(|(k, v)| {
        let v = if k == "iss" { other.issuer.clone().into() } else { v };
        (k, v)
    }));
    let refused = browser.get(forged.as_str()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);

    // A callback with no sign-in in progress, and the person who said no.
    let stray = browser.get(&format!("{base}/sign-in/outside/callback?code=abc&state=def")).await;
    assert_eq!(stray.status, StatusCode::BAD_REQUEST);
    assert!(stray.body.contains("Try again"), "a way on: {}", stray.body);
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let state =
        url::Url::parse(&started).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let denied =
        format!("{base}/sign-in/outside/callback?error=access_denied&state={state}&iss={}", idp.issuer);
    let page = browser.get(&denied).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("Outside ID did not sign you in"), "{}", page.body);

    assert_eq!(people(&setup).len(), 1, "none of that made anyone");
}

/// What a made-up provider does wrong in its token answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spoil {
    Nothing,
    Garbage,
    Nonce,
    Audience,
    Issuer,
    Slow,
}

/// A provider made for the tests: discovery, an authorization endpoint that
/// sends the browser straight back (as if the person signed in), a token
/// endpoint whose ID token `spoil` spoils, and its keys. Its issuer URL.
async fn made_up_provider(spoil: Spoil) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let key = Arc::new(SigningKey::generate(Alg::Es256).0);
    let nonces: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let metadata = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    });
    let (auth_nonces, token_nonces, jwks_key, token_key) = (nonces.clone(), nonces, key.clone(), key);
    let (auth_issuer, token_issuer) = (issuer.clone(), issuer.clone());
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(metadata) }))
        .route(
            "/auth",
            axum::routing::get(move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
                let code = agentgate_issuer::random_token(16);
                auth_nonces.lock().unwrap().insert(code.clone(), q["nonce"].clone());
                let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
                back.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]).append_pair("iss", &auth_issuer);
                async move { axum::response::Redirect::to(back.as_str()) }
            }),
        )
        .route(
            "/token",
            axum::routing::post(move |body: String| {
                let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let code = form.get("code").cloned().unwrap_or_default();
                let nonce = token_nonces.lock().unwrap().remove(&code).unwrap_or_default();
                let now = agentgate_issuer::now();
                let mut claims = json!({ "iss": token_issuer, "aud": "agentgate-upstream", "sub": "made-up-1",
                    "nonce": nonce, "iat": now, "exp": now + 300, "name": "Carol", "email": "carol@example.com",
                    "email_verified": true, "preferred_username": "carol" });
                match spoil {
                    Spoil::Nonce => claims["nonce"] = "another sign-in's".into(),
                    Spoil::Audience => claims["aud"] = "someone-else".into(),
                    Spoil::Issuer => claims["iss"] = "https://evil.example".into(),
                    _ => {}
                }
                let id_token = token_key.sign_jwt("JWT", &claims);
                async move {
                    match spoil {
                        Spoil::Garbage => "<html>not a token</html>".to_owned(),
                        Spoil::Slow => {
                            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                            String::new()
                        }
                        _ => json!({ "access_token": "opaque", "token_type": "Bearer", "id_token": id_token }).to_string(),
                    }
                }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = json!({ "keys": [jwks_key.public_jwk()] });
                async move { axum::Json(jwks) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_errs_lies_or_is_gone_signs_nobody_in_and_says_so() {
    let mut extra = String::new();
    let spoils = [
        ("garbage", Spoil::Garbage, "could not be trusted"),
        ("nonce", Spoil::Nonce, "could not be trusted"),
        ("audience", Spoil::Audience, "could not be trusted"),
        ("issuer", Spoil::Issuer, "could not be trusted"),
        ("slow", Spoil::Slow, "could not be reached"),
    ];
    for (id, spoil, _) in spoils {
        extra += &provider(id, id, &made_up_provider(spoil).await, "anyone");
    }
    extra += &provider("down", "Down", &format!("http://127.0.0.1:{}", free_port()), "anyone");
    extra += &provider("good", "Good", &made_up_provider(Spoil::Nothing).await, "anyone");
    let (setup, _serve, app) = serve("provider-faults", &extra);
    let base = setup.issuer();

    for (id, _, words) in spoils {
        let mut browser = Browser::new("en");
        let to_provider = begin(&mut browser, &base, &app, id).await;
        let back = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(to_provider.location.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        let callback = back.headers()["location"].to_str().unwrap().to_owned();
        let page = browser.get(&callback).await;
        assert!(page.status == StatusCode::BAD_GATEWAY, "{id}: {} {}", page.status, page.body);
        assert!(page.body.contains(words) && page.body.contains("Try again"), "{id}: {}", page.body);
        assert!(!browser.cookies.contains_key("agentgate_session"), "{id}: nobody signed in");
    }
    let mut browser = Browser::new("ja");
    let page = begin(&mut browser, &base, &app, "down").await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);
    assert!(page.body.contains("Down に接続できませんでした"), "in the person's language: {}", page.body);
    assert!(people(&setup).is_empty(), "nobody was made: {:?}", people(&setup));

    // The honest one lets carol in.
    let mut browser = Browser::new("en");
    let to_provider = begin(&mut browser, &base, &app, "good").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = http.get(to_provider.location.as_deref().unwrap()).send().await.unwrap();
    let page = browser.get(back.headers()["location"].to_str().unwrap()).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let made = people(&setup);
    assert_eq!((made.len(), made[0]["username"].as_str()), (1, Some("carol")), "{made:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn who_may_come_in_is_the_operators_choice_and_an_address_is_no_key() {
    let idp = Idp::start(&[]);
    let extra = provider("outside", "Outside ID", &idp.issuer, "email-domains")
        + "email_domains = [\"example.org\"]\n";
    let (setup, _serve, app) = serve("provider-admission", &extra);
    let base = setup.issuer();
    // alice's address is verified, at example.com: not one of the domains.
    let mut browser = Browser::new("en");
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let page = browser.get(&at_the_provider(&started, "alice").await).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("example.org"), "{}", page.body);
    assert!(people(&setup).is_empty());

    // bob's unverified address is an existing person's here: no takeover.
    let extra = provider("outside", "Outside ID", &idp.issuer, "anyone");
    let (setup, _serve, app) = serve("provider-takeover", &extra);
    let out = setup.run(
        &["users", "add", "robert", "--email", "bob@example.com", "--password-stdin"],
        &[],
        PASSWORD,
    );
    assert!(out.status.success());
    let base = setup.issuer();
    let mut browser = Browser::new("en");
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let page = browser.get(&at_the_provider(&started, "bob").await).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("already uses the email address"), "{}", page.body);
    assert!(!browser.cookies.contains_key("agentgate_session"));
    let known = people(&setup);
    assert_eq!(known.len(), 1, "robert alone: {known:?}");

    // No passwords at all: the page has none to type, and none is taken.
    let extra = provider("outside", "Outside ID", &idp.issuer, "existing") + "[sign_in]\npasswords = false\n";
    let (setup, _serve, app) = serve("provider-only", &extra);
    setup.add_person("alice");
    let base = setup.issuer();
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &[])).await;
    assert!(
        page.body.contains("Continue with Outside ID") && !page.body.contains("name=\"password\""),
        "{}",
        page.body
    );
    let refused = browser
        .post(
            &format!("{base}/sign-in"),
            &[("csrf", ""), ("request", ""), ("login", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert!(!refused.status.is_redirection(), "no password signs anyone in: {}", refused.status);
    // people = "existing": an account tied to nobody gets no new person.
    let started = begin(&mut browser, &base, &app, "outside").await.location.unwrap();
    let page = browser.get(&at_the_provider(&started, "alice").await).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("Your Outside ID account cannot be used to sign in here"), "{}", page.body);
}

/// The page token of the account page's form that posts to `action`.
async fn account_form(browser: &mut Browser, base: &str, action: &str) -> (Page, String) {
    let page = browser.get(&format!("{base}/account")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.form_csrf(action);
    (page, csrf)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_person_links_their_account_and_then_signs_in_with_it() {
    let idp = Idp::start(&[]);
    let extra = provider("outside", "Outside ID", &idp.issuer, "existing");
    let (setup, _serve, app) = serve("provider-link", &extra);
    setup.add_person("alice");
    let base = setup.issuer();

    // alice signs in with her password, and links her account at the provider.
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &[])).await;
    browser.sign_in(&base, &page, "alice", PASSWORD).await;
    let link = format!("{base}/account/link/outside");
    let (page, csrf) = account_form(&mut browser, &base, &link).await;
    assert!(page.body.contains("Link your Outside ID account"), "{}", page.body);
    let to_provider = browser.post(&link, &[("csrf", &csrf)]).await;
    let back = browser.get(&at_the_provider(to_provider.location.as_deref().unwrap(), "alice").await).await;
    assert_eq!(back.location.as_deref(), Some(format!("{base}/account").as_str()), "{}", back.body);
    let page = browser.get(&format!("{base}/account")).await;
    assert!(
        page.body.contains("Accounts you sign in with") && page.body.contains("Outside ID"),
        "{}",
        page.body
    );

    // In another browser, "existing" lets her in through the provider, as alice.
    let mut other = Browser::new("en");
    let started = begin(&mut other, &base, &app, "outside").await.location.unwrap();
    let back = other.get(&at_the_provider(&started, "alice").await).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let consent = other.get(back.location.as_deref().unwrap()).await;
    assert!(consent.body.contains("Allow access?"), "{}", consent.body);
    assert_eq!(people(&setup).len(), 1, "no new person: alice herself");
    // bob's account is tied to nobody: still no way in.
    let mut bobs = Browser::new("en");
    let started = begin(&mut bobs, &base, &app, "outside").await.location.unwrap();
    assert_eq!(bobs.get(&at_the_provider(&started, "bob").await).await.status, StatusCode::FORBIDDEN);

    // A link begun while signed in ends only while still signed in. (The
    // account page's forms share one token: the sign-out form's will do.)
    let (_, token) = account_form(&mut browser, &base, &format!("{base}/sign-out")).await;
    let to_provider = browser.post(&link, &[("csrf", &token)]).await;
    browser.post(&format!("{base}/sign-out"), &[("csrf", &token)]).await;
    let late = browser.get(&at_the_provider(to_provider.location.as_deref().unwrap(), "bob").await).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.body);
    assert!(
        setup.json(&["users", "links", "alice", "--json"]).as_array().unwrap().len() == 1,
        "bob was not tied to alice"
    );

    // Unlinking: alice has a password, so her one link may go.
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &[])).await;
    browser.sign_in(&base, &page, "alice", PASSWORD).await;
    let unlink = format!("{base}/account/unlink");
    let (_, csrf) = account_form(&mut browser, &base, &unlink).await;
    let links = setup.json(&["users", "links", "alice", "--json"]);
    let issuer = links[0]["issuer"].as_str().unwrap().to_owned();
    let subject = links[0]["subject"].as_str().unwrap().to_owned();
    assert_eq!((links[0]["provider"].as_str(), subject.as_str()), (Some("outside"), "alice"), "{links}");
    let done = browser.post(&unlink, &[("csrf", &csrf), ("issuer", &issuer), ("subject", &subject)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(setup.json(&["users", "links", "alice", "--json"]), serde_json::json!([]));

    // The operator ties accounts with the CLI: by the provider's id in the file.
    let linked =
        setup.json(&["users", "link", "alice", "--provider", "outside", "--subject", "alice", "--json"]);
    assert_eq!(
        (linked["issuer"].as_str(), linked["subject"].as_str()),
        (Some(idp.issuer.as_str()), Some("alice"))
    );
    setup.add_person("robert");
    let taken =
        setup.run(&["users", "link", "robert", "--provider", "outside", "--subject", "alice"], &[], "");
    assert!(support::setup::stderr_of(&taken).contains("already tied to alice"));
    let unknown = setup.run(&["users", "link", "robert", "--provider", "github", "--subject", "1"], &[], "");
    assert!(
        support::setup::stderr_of(&unknown).contains("no [[provider]] with id \"github\" (it has: outside)")
    );
    let unlinked =
        setup.run(&["users", "unlink", "alice", "--provider", "outside", "--subject", "alice"], &[], "");
    assert!(unlinked.status.success(), "{}", String::from_utf8_lossy(&unlinked.stderr));
    let again =
        setup.run(&["users", "unlink", "alice", "--provider", "outside", "--subject", "alice"], &[], "");
    assert!(support::setup::stderr_of(&again).contains("has no account alice at outside"));
}

/// A provider shaped like GitHub, made for the tests: its authorize and
/// access_token endpoints (the secret in the body, PKCE checked, errors said
/// with 200 as GitHub does), `/user` and `/user/emails`. `refuse`: every code
/// is "bad_verification_code". Its base URL.
async fn github_shaped(refuse: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let challenges: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (asked, redeemed) = (challenges.clone(), challenges);
    type Query = axum::extract::Query<HashMap<String, String>>;
    let app = axum::Router::new()
        .route(
            "/login/oauth/authorize",
            axum::routing::get(move |axum::extract::Query(q): Query| {
                let code = agentgate_issuer::random_token(10);
                asked.lock().unwrap().insert(code.clone(), q["code_challenge"].clone());
                let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
                back.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]);
                async move { axum::response::Redirect::to(back.as_str()) }
            }),
        )
        .route(
            "/login/oauth/access_token",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let challenge = redeemed.lock().unwrap().remove(form.get("code").map_or("", String::as_str));
                let verified = challenge.is_some_and(|c| {
                    agentgate_issuer::pkce::verify(form.get("code_verifier").map_or("", String::as_str), &c).is_ok()
                });
                let secret_in_body = form.get("client_secret").map(String::as_str) == Some("agentgate-upstream-secret")
                    && form.get("client_id").map(String::as_str) == Some("agentgate-upstream")
                    && headers.get("authorization").is_none();
                let answer = if verified && secret_in_body && !refuse {
                    json!({ "access_token": "gho_test", "token_type": "bearer", "scope": "read:user,user:email" })
                } else {
                    json!({ "error": "bad_verification_code", "error_description": "The code passed is incorrect or expired." })
                };
                async move { axum::Json(answer) }
            }),
        )
        .route(
            "/user",
            axum::routing::get(|headers: http::HeaderMap| async move {
                if headers.get("authorization").is_none_or(|v| v != "Bearer gho_test") || headers.get("user-agent").is_none() {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "message": "Requires authentication" })));
                }
                let user = json!({ "id": 4242, "login": "octo-carol", "name": "Carol", "email": null,
                    "avatar_url": "https://avatars.example/u/4242" });
                (StatusCode::OK, axum::Json(user))
            }),
        )
        .route(
            "/user/emails",
            axum::routing::get(|| async {
                axum::Json(json!([
                    { "email": "carol@work.example", "primary": false, "verified": true },
                    { "email": "carol@example.com", "primary": true, "verified": true },
                ]))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A `kind = "github"` section whose endpoints are the made-up GitHub's.
fn github_section(id: &str, base: &str) -> String {
    format!(
        "[[provider]]\nid = \"{id}\"\nname = \"GitHub\"\nkind = \"github\"\nclient_id = \"agentgate-upstream\"\n\
         client_secret = \"agentgate-upstream-secret\"\npeople = \"anyone\"\n\
         authorization_endpoint = \"{base}/login/oauth/authorize\"\ntoken_endpoint = \"{base}/login/oauth/access_token\"\n\
         user_endpoint = \"{base}/user\"\nemails_endpoint = \"{base}/user/emails\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_comes_in_through_a_github_shaped_provider_with_their_verified_address() {
    // Another GitHub (Enterprise), under its own name for accounts.
    let extra = github_section("github", &github_shaped(false).await)
        + &github_section("refusing", &github_shaped(true).await)
        + "issuer = \"https://github.refusing.example\"\n";
    let (setup, _serve, app) = serve("provider-github", &extra);
    let base = setup.issuer();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let mut browser = Browser::new("en");
    let to_github = begin(&mut browser, &base, &app, "github").await.location.unwrap();
    let asked: HashMap<_, _> = url::Url::parse(&to_github).unwrap().query_pairs().into_owned().collect();
    assert_eq!(asked["scope"], "read:user user:email", "GitHub's scopes, not OpenID Connect's");
    let back = http.get(&to_github).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&back).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let consent = browser.get(page.location.as_deref().unwrap()).await;
    let allowed = browser.decide(&base, &consent, "allow").await;
    let tokens = exchange(&base, &app, &allowed).await;
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (id_token["preferred_username"].as_str(), id_token["name"].as_str(), id_token["picture"].as_str()),
        (Some("octo-carol"), Some("Carol"), Some("https://avatars.example/u/4242")),
        "{id_token}"
    );
    assert_eq!(id_token["email"], "carol@example.com", "the primary verified address: {id_token}");
    assert_eq!(id_token["email_verified"], true);
    let links = setup.json(&["users", "links", "octo-carol", "--json"]);
    assert_eq!(
        (links[0]["issuer"].as_str(), links[0]["subject"].as_str()),
        (Some("https://github.com"), Some("4242"))
    );

    // A code GitHub refuses (said with 200, as it does): a page, and nobody.
    let mut browser = Browser::new("en");
    let to_github = begin(&mut browser, &base, &app, "refusing").await.location.unwrap();
    let back = http.get(&to_github).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&back).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);
    assert_eq!(people(&setup).len(), 1, "carol alone");
}

/// `agentgate dev --identity-provider`: the tutorial's system, where someone
/// who has an account at an OpenID Connect provider signs in with it and
/// whoami returns them; without the provider's secret dev refuses to start.
#[tokio::test(flavor = "multi_thread")]
async fn dev_lets_people_in_through_the_provider_on_its_command_line() {
    let idp = Idp::start(&[]);
    let flags =
        ["--identity-provider", idp.issuer.as_str(), "--identity-provider-client-id", "agentgate-upstream"];
    let data_dir = std::env::temp_dir().join(format!("agentgate-dev-no-secret-{}", std::process::id()));
    let no_secret = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(flags)
        .env_remove("AGENTGATE_IDENTITY_PROVIDER_CLIENT_SECRET")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    let said = String::from_utf8_lossy(&no_secret.stderr);
    assert!(!no_secret.status.success(), "{said}");
    assert!(said.contains("AGENTGATE_IDENTITY_PROVIDER_CLIENT_SECRET"), "says what to set: {said}");

    let secret = [("AGENTGATE_IDENTITY_PROVIDER_CLIENT_SECRET", "agentgate-upstream-secret")];
    let dev = Dev::start_with_env(PASSWORD, &flags, &secret);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    // alice at the provider has the demo alice's address: no way into her account.
    let started = begin(&mut browser, &dev.base, &app, "provider").await.location.unwrap();
    let refused = browser.get(&at_the_provider(&started, "alice").await).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("link 127.0.0.1 from your account page"), "{}", refused.body);
    let to_provider = begin(&mut browser, &dev.base, &app, "provider").await;
    let location = to_provider.location.expect("sent to the provider");
    assert!(location.starts_with(&idp.issuer), "{location}");
    let back = browser.get(&at_the_provider(&location, "bob").await).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let consent = browser.get(back.location.as_deref().unwrap()).await;
    let allowed = browser.decide(&dev.base, &consent, "allow").await;
    let tokens = exchange(&dev.base, &app, &allowed).await;
    let access_token = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
    let claims = whoami(&dev.mcp_url(), access_token).await.unwrap();
    let person = &claims["person"];
    assert_eq!(person["name"], "Bob Builder", "whoami returns the person who signed in: {claims}");
    assert_eq!(person["sub"], dev.user_id("bob").as_str(), "{claims}");
}

/// Another `agentgate serve` as the provider: a team's own agentgate, where
/// carol has a password, lets her into this one. The provider's pages are
/// visited with their own cookie jar, as a browser keeps one per site.
#[tokio::test(flavor = "multi_thread")]
async fn another_agentgate_is_a_provider_like_any_other() {
    let front = Setup::new("front", "[whoami]\n", 0o600);
    let app = front.add_app("Outside agent", &["--third-party"], "openid profile email mcp:tools");
    let team = Setup::new("team", "", 0o600);
    let out = team.run(
        &[
            "users",
            "add",
            "carol",
            "--name",
            "Carol Danvers",
            "--email",
            "carol@team.example",
            "--password-stdin",
        ],
        &[],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let callback = format!("{}/sign-in/team/callback", front.issuer());
    let registered = team.json(&[
        "apps",
        "add",
        "agentgate in front",
        "--confidential",
        "--redirect-uri",
        &callback,
        "--scopes",
        "openid profile email",
        "--json",
    ]);
    let section = format!(
        "[[provider]]\nid = \"team\"\nname = \"Team ID\"\nissuer = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = \"{}\"\npeople = \"anyone\"\n",
        team.issuer(),
        registered["client_id"].as_str().unwrap(),
        registered["client_secret"].as_str().unwrap_or_else(|| panic!("{registered}")),
    );
    let mut config = std::fs::read_to_string(front.config()).unwrap();
    config.push_str(&section);
    std::fs::write(front.config(), config).unwrap();
    let (_team_serve, _) = team.serve(&[]);
    let (_front_serve, _) = front.serve(&[]);
    let base = front.issuer();

    let mut browser = Browser::new("en");
    let mut at_team = Browser::new("en");
    let location =
        begin(&mut browser, &base, &app, "team").await.location.expect("sent to the team's agentgate");
    assert!(location.starts_with(&format!("{}/authorize?", team.issuer())), "{location}");
    let sign_in = at_team.get(&location).await;
    assert_eq!(sign_in.status, StatusCode::OK, "{}", sign_in.body);
    let back = at_team.sign_in(&team.issuer(), &sign_in, "carol", PASSWORD).await;
    let answer = back.location.clone().unwrap_or_else(|| panic!("{}: {}", back.status, back.body));
    assert!(answer.starts_with(&callback), "{answer}");
    let signed_in = browser.get(&answer).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    let consent = browser.get(signed_in.location.as_deref().unwrap()).await;
    let allowed = browser.decide(&base, &consent, "allow").await;
    let tokens = exchange(&base, &app, &allowed).await;
    let access_token = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
    let claims = whoami(&format!("{base}/mcp"), access_token).await.unwrap();
    let person = &claims["person"];
    assert_eq!(
        (person["username"].as_str(), person["name"].as_str()),
        (Some("carol"), Some("Carol Danvers")),
        "{claims}"
    );
    assert_eq!(
        person["sub"],
        front.user_id("carol").as_str(),
        "this server's person, not the team's: {claims}"
    );
    assert_ne!(person["sub"], team.user_id("carol").as_str());
}

/// `keep_refresh_token` and a route's `provider_token`: the MCP server behind
/// the gateway gets the person's access token at oidc-provider, which
/// oidc-provider's userinfo accepts as hers; what is kept is sealed (the
/// stored value is no refresh token there); an agent cannot send its own; a
/// person who signed in with a password gets 403 and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_acts_at_the_provider_for_the_person_with_the_token_the_gateway_hands_it() {
    let idp = Idp::start(&[]);
    let (upstream, seen) = support::upstream::recording_upstream(0).await;
    let extra = provider("outside", "Outside ID", &idp.issuer, "anyone")
        + "keep_refresh_token = true\n"
        + &format!("[[route]]\npath = \"/echo\"\nupstream = \"{upstream}\"\nprovider_token = \"outside\"\n");
    // A route may hand out only what a provider keeps.
    let not_kept = Setup::new("not-kept", &extra.replace("keep_refresh_token = true\n", ""), 0o600);
    let refused = not_kept.run(&["serve"], &[], "");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("keep_refresh_token = true"), "{said}");

    let (setup, _serve, app) = serve("kept", &extra);
    setup.add_person("dave");
    let base = setup.issuer();
    let route = format!("{base}/echo");
    let for_route = [("resource", route.as_str()), ("scope", "openid mcp:tools")];

    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &for_route)).await;
    let action = format!("{base}/sign-in/outside");
    let (csrf, request) = (page.form_csrf(&action), page.input("request"));
    let sent = browser.post(&action, &[("csrf", &csrf), ("request", &request)]).await;
    let location = sent.location.expect("sent to the provider");
    let asked: HashMap<_, _> = url::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
    assert!(asked["scope"].contains("offline_access") && asked["prompt"] == "consent", "{asked:?}");
    let back = browser.get(&at_the_provider(&location, "alice").await).await;
    let consent = browser.get(back.location.as_deref().unwrap_or_else(|| panic!("{}", back.body))).await;
    let allowed = browser.decide(&base, &consent, "allow").await;
    let tokens = exchange(&base, &app, &allowed).await;
    let token = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));

    let forged = "forged-by-the-agent";
    let answer = support::gateway::post(&route, token)
        .header("x-agentgate-provider-token", forged)
        .json(&support::gateway::initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{}", answer.text().await.unwrap());
    let handed = seen.lock().unwrap()[0]["x-agentgate-provider-token"].to_str().unwrap().to_owned();
    assert_ne!(handed, forged);
    assert!(!seen.lock().unwrap()[0].contains_key("authorization"), "the agent's token stops at the gateway");
    let userinfo: Value = reqwest::Client::new()
        .get(format!("{}/me", idp.issuer))
        .bearer_auth(&handed)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], "alice", "the provider's own token for her: {userinfo}");

    // What is stored is sealed: the provider takes it for no refresh token.
    let db = setup.dir.join("data").join("agentgate.db");
    let mut conn =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
    let stored: (String,) = sqlx::query_as("SELECT refresh_token FROM user_links WHERE subject = 'alice'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", stored.0.as_str())];
    let tried = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer))
        .basic_auth("agentgate-upstream", Some("agentgate-upstream-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(tried.status(), StatusCode::BAD_REQUEST);
    assert_eq!(tried.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // dave signed in with his password: nothing is kept for him there.
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url_on(&base, &app, &for_route)).await;
    let consent = browser.sign_in(&base, &page, "dave", PASSWORD).await;
    let allowed = browser.decide(&base, &consent, "allow").await;
    let tokens = exchange(&base, &app, &allowed).await;
    let token = tokens["access_token"].as_str().unwrap();
    let refused =
        support::gateway::post(&route, token).json(&support::gateway::initialize()).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let error = refused.json::<Value>().await.unwrap()["error"].clone();
    assert_eq!(error["data"]["reason"], "provider_sign_in_needed", "{error}");
    assert!(error["message"].as_str().unwrap().contains("sign in with Outside ID"), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing reached the upstream for dave");

    // The operator unlinks alice's account (she still has a way in: a
    // password set for her): the kept token goes, revoked at the provider.
    let out = setup.run(&["users", "passwd", "alice", "--password-stdin"], &[], PASSWORD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        setup.run(&["users", "unlink", "alice", "--provider", "outside", "--subject", "alice"], &[], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<(String,)> =
        sqlx::query_as("SELECT subject FROM user_links").fetch_all(&mut conn).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
