//! What a person (or a developer) meets when something is off, against
//! `agentgate dev`: every page and answer says what this is and what to do
//! next; none is empty.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Dev;
use support::browser::Browser;
use support::flow::{REDIRECT, authorize_url, exchange};

const PASSWORD: &str = "wonderland";
const NEXT: &str = "Go back to the app you came from and start again.";

#[tokio::test]
async fn the_home_page_and_every_unknown_address_say_where_to_go() {
    let dev = Dev::start(PASSWORD);
    let mut browser = Browser::new("en");
    let home = browser.get(&format!("{}/", dev.base)).await;
    assert_eq!(home.status, StatusCode::OK);
    for link in ["/sign-in\"", "/account\"", "/.well-known/openid-configuration\""] {
        assert!(home.body.contains(&format!("href=\"{}{link}", dev.base)), "{link}: {}", home.body);
    }
    let html = |url: String| {
        let http = browser.http.clone();
        async move {
            let response = http.get(url).header("accept", "text/html,*/*;q=0.8").send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    // A browser gets a page, never an empty answer.
    let (status, body) = html(format!("{}/nowhere", dev.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no page at this address") && body.contains(">Home</a>"), "{body}");
    let (status, body) = html(format!("{}/consent", dev.base)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "the consent form's address, visited");
    assert!(body.contains("This address takes a form sent from one of this server"), "{body}");
    assert!(body.contains(NEXT), "{body}");
    let (status, body) = html(format!("{}/sign-out", dev.base)).await;
    assert_eq!((status, body.contains(">Home</a>")), (StatusCode::METHOD_NOT_ALLOWED, true));

    // A program gets JSON that names where the endpoints are.
    let response = reqwest::get(format!("{}/nowhere", dev.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "not_found");
    assert!(answer["error_description"].as_str().unwrap().contains("/.well-known/openid-configuration"));
}

#[tokio::test]
async fn an_app_this_server_no_longer_knows_is_told_to_register_again() {
    let dev = Dev::start(PASSWORD);
    let mut browser = Browser::new("en");
    // What an agent that kept its registration meets after the data was reset.
    let page = browser.get(&authorize_url(&dev, "an-id-from-before-the-reset", &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("the app must register again"), "{}", page.body);
    assert!(page.body.contains(NEXT), "{}", page.body);

    let token = |form: Vec<(&'static str, String)>| {
        let base = dev.base.clone();
        async move {
            let response =
                reqwest::Client::new().post(format!("{base}/token")).form(&form).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let refresh = |client_id: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "whatever".to_owned()),
            ("client_id", client_id.to_owned()),
        ]
    };
    let unknown = token(refresh("an-id-from-before-the-reset")).await;
    assert_eq!(unknown["error"], "invalid_client");
    assert!(unknown["error_description"].as_str().unwrap().contains("must register again"), "{unknown}");

    // A confidential app that forgot its secret is told so, not "unknown".
    let web = dev.add_app(&["Web app", "--confidential", "--redirect-uri", "https://app.example/cb"]);
    let no_secret = token(refresh(&web)).await;
    assert!(no_secret["error_description"].as_str().unwrap().contains("sent no secret"), "{no_secret}");
    let mut wrong = refresh(&web);
    wrong.push(("client_secret", "not-it".to_owned()));
    let wrong = token(wrong).await;
    assert_eq!(wrong["error_description"], "the client secret is not right");
}

#[tokio::test]
async fn a_request_without_scopes_and_discovery_speak_of_what_a_person_allows() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");
    let page = browser.get(&authorize_url(&dev, &app, &[("scope", "")])).await;
    let consent = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    assert!(consent.body.contains("It asks for no particular permission"), "{}", consent.body);
    assert!(!consent.body.contains("It will be able to:"), "{}", consent.body);

    let metadata = support::server_metadata(&dev.base).await;
    let scopes: Vec<&str> =
        metadata["scopes_supported"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"mcp:tools"), "{scopes:?}");
    assert!(
        !scopes.iter().any(|s| s.starts_with("agentgate:")),
        "machine scopes are not offered to people: {scopes:?}"
    );
}

#[tokio::test]
async fn the_account_page_tells_two_apps_of_one_name_apart() {
    let dev = Dev::start(PASSWORD);
    // One added by the operator, one that registered itself, with the same name.
    let added = dev.add_app(&[
        "Twin",
        "--third-party",
        "--public",
        "--native",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--scopes",
        "openid mcp:tools",
    ]);
    let registration = json!({"client_name": "Twin", "redirect_uris": [REDIRECT],
                             "token_endpoint_auth_method": "none", "scope": "openid mcp:tools"});
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/register", dev.base))
        .json(&registration)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registered = registered["client_id"].as_str().unwrap().to_owned();
    let mut browser = Browser::new("en");
    for (n, app) in [&added, &registered].into_iter().enumerate() {
        let mut page = browser.get(&authorize_url(&dev, app, &[("scope", "openid mcp:tools")])).await;
        if n == 0 {
            page = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
        }
        let back = browser.decide(&dev.base, &page, "allow").await;
        if n == 0 {
            let tokens = exchange(&dev, app, &back.redirect_params()["code"]).await;
            assert!(tokens["access_token"].is_string());
        }
    }
    let account = browser.get(&format!("{}/account", dev.base)).await;
    let body = &account.body;
    assert_eq!(body.matches("<strong>Twin</strong>").count(), 2, "{body}");
    let today = &agentgate_issuer::rfc3339(agentgate_issuer::now())[..10];
    assert!(body.contains(&format!("Added by this server&#39;s operator on {today}.")), "{body}");
    assert!(body.contains(&format!("Registered itself on {today}; nobody checked who made it.")), "{body}");
    assert_eq!(body.matches("Not verified").count(), 1, "the self-registered one is marked: {body}");
    assert!(body.contains("Sends you back to 127.0.0.1."), "{body}");
    assert!(body.contains(&format!("Last used {today}")), "the one whose code was exchanged: {body}");
    assert!(body.contains("Not used since you connected it."), "the other: {body}");
}

#[tokio::test]
async fn scope_words_follow_the_page_language_and_fall_back_to_the_default() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let consent_in = |language: &'static str| {
        let (dev, app) = (&dev, &app);
        async move {
            let mut browser = Browser::new(language);
            let page = browser.get(&authorize_url(dev, app, &[("scope", "openid mcp:tools")])).await;
            browser.sign_in(&dev.base, &page, "alice", PASSWORD).await.body
        }
    };
    // The demo resource speaks every language the pages do.
    for (language, words) in [
        ("en", "whoami MCP server — Use the whoami tool (mcp:tools)"),
        ("es", "servidor MCP whoami — Usar la herramienta whoami (mcp:tools)"),
        ("ja", "whoami MCP サーバー — whoami ツールを使う (mcp:tools)"),
    ] {
        let body = consent_in(language).await;
        assert!(body.contains(words), "{language}: {body}");
    }

    // An operator who gives Spanish words only: Japanese pages fall back to the default.
    let http = reqwest::Client::new();
    let admin = support::admin::machine_app(&dev, "Console", &["--admin"]);
    let token = support::admin::api_token(&http, &dev, &admin, "agentgate:admin").await;
    let resource: String = url::form_urlencoded::byte_serialize(dev.mcp_url().as_bytes()).collect();
    let texts = json!({"translations": {"es": {"scopes": {"mcp:tools": "Preguntar quién eres"}}}});
    let response = http
        .patch(format!("{}/api/v1/resources/{resource}", dev.base))
        .bearer_auth(&token)
        .json(&texts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let es = consent_in("es").await;
    assert!(es.contains("whoami MCP server — Preguntar quién eres (mcp:tools)"), "{es}");
    let ja = consent_in("ja").await;
    assert!(ja.contains("whoami MCP server — Use the whoami tool (mcp:tools)"), "{ja}");

    // A language the pages do not speak is refused, and changes nothing.
    let french = json!({"translations": {"fr": {"name": "Serveur"}}});
    let response = http
        .patch(format!("{}/api/v1/resources/{resource}", dev.base))
        .bearer_auth(&token)
        .json(&french)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let said: Value = response.json().await.unwrap();
    assert!(said.to_string().contains("en, es and ja"), "{said}");
    assert!(consent_in("es").await.contains("Preguntar quién eres"));
}

/// `agentgate dev`'s welcome, up to its last line, for `data_dir`.
fn dev_welcome(data_dir: &std::path::Path, password: &str) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("AGENTGATE_LOG", "warn")
        .env("AGENTGATE_DEMO_PASSWORD", password)
        .env_remove("AGENTGATE_KEY_ENCRYPTION_KEY")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("the official Python SDK") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    said
}

#[test]
fn dev_says_what_to_run_next_and_how_to_set_a_new_password() {
    let dir = std::env::temp_dir().join(format!("agentgate-welcome-{}", std::process::id()));
    let first = dev_welcome(&dir, PASSWORD);
    let mcp = first.lines().find_map(|l| l.trim().strip_prefix("MCP server:")).unwrap();
    let mcp = mcp.split_whitespace().next().unwrap();
    assert!(first.contains(&format!("agentgate agent call {mcp} whoami")), "{first}");
    assert!(first.contains("AGENTGATE_DEMO_PASSWORD (read on this first start only)"), "{first}");
    assert!(!first.contains(PASSWORD), "a password the person chose is not printed: {first}");
    // A second start keeps the first password, whatever the variable says, and says how to change it.
    let second = dev_welcome(&dir, "another password");
    assert!(!second.contains("another password"), "{second}");
    let flag = format!(" --data-dir {}", dir.display());
    assert!(second.contains(&format!("agentgate users passwd alice{flag}")), "{second}");
    assert!(second.contains(&format!("agentgate users unlock alice{flag}")), "{second}");
    let _ = std::fs::remove_dir_all(&dir);
}
