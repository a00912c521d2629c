//! Revocation reaches the MCP server: whatever revokes a token at the issuer of
//! `agentgate dev` — a replayed code, a reused refresh token, `/revoke`,
//! Disconnect on the account page, the management API — makes `/mcp` of the
//! same process refuse it on the next call, and a change the CLI makes from
//! another process (`apps remove`, `users remove`) within seconds.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::Dev;
use support::browser::Browser;
use support::flow::{authorize_url, exchange, mcp_answer, token_request};

const PASSWORD: &str = "wonderland";
const REVOKED: &str = "The access token was revoked; get a new one (sign in again).";

/// Alice authorizes `app` in `browser` (signing in and allowing when asked),
/// with `extra` request parameters: the token response.
async fn alice_tokens(dev: &Dev, browser: &mut Browser, app: &str, extra: &[(&str, &str)]) -> Value {
    let mut page = browser.get(&authorize_url(dev, app, extra)).await;
    if page.body.contains("name=\"password\"") {
        page = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    }
    if page.body.contains(">Allow</button>") {
        page = browser.decide(&dev.base, &page, "allow").await;
    }
    let tokens = exchange(dev, app, &page.redirect_params()["code"]).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    tokens
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// `/mcp` accepts the token.
async fn accepted(dev: &Dev, token: &str) {
    let (status, why) = mcp_answer(&dev.mcp_url(), token).await;
    assert_eq!(status, 200, "{why}");
}

/// `/mcp` refuses the token as revoked, at once.
async fn refused(dev: &Dev, token: &str, after: &str) {
    assert_eq!(mcp_answer(&dev.mcp_url(), token).await, (401, REVOKED.to_owned()), "after {after}");
}

/// `/mcp` refuses the token as revoked within `limit`; how long it took.
async fn refused_within(dev: &Dev, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let answer = mcp_answer(&dev.mcp_url(), token).await;
        if answer == (401, REVOKED.to_owned()) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still {answer:?} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn agentgate(dev: &Dev, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(args)
        .arg("--data-dir")
        .arg(&dev.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_replayed_code_and_a_reused_refresh_token_stop_their_tokens_at_mcp() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let mut browser = Browser::new("en");

    // A code presented twice: everything its first exchange issued is revoked.
    let mut page = browser.get(&authorize_url(&dev, &app, &[])).await;
    page = browser.sign_in(&dev.base, &page, "alice", PASSWORD).await;
    let code = browser.decide(&dev.base, &page, "allow").await.redirect_params()["code"].clone();
    let tokens = exchange(&dev, &app, &code).await;
    accepted(&dev, access(&tokens)).await;
    assert_eq!(exchange(&dev, &app, &code).await["error"], "invalid_grant");
    refused(&dev, access(&tokens), "a code replay").await;

    // A refresh token used twice: the whole family goes, the new access token too.
    let offline = [("scope", "openid profile mcp:tools offline_access"), ("prompt", "consent")];
    let tokens = alice_tokens(&dev, &mut browser, &app, &offline).await;
    let old_refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();
    let refresh = |token: String| {
        let (dev, app) = (&dev, app.clone());
        async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", &token), ("client_id", &app)];
            token_request(dev, &form).await
        }
    };
    let rotated = refresh(old_refresh.clone()).await;
    accepted(&dev, access(&rotated)).await;
    accepted(&dev, access(&tokens)).await;
    // Once its successor is in use, the old token is no retry but a reuse.
    let next = refresh(rotated["refresh_token"].as_str().unwrap().to_owned()).await;
    accepted(&dev, access(&next)).await;
    assert_eq!(refresh(old_refresh).await["error"], "invalid_grant");
    for revoked in [&next, &rotated, &tokens] {
        refused(&dev, access(revoked), "a refresh-token reuse").await;
    }
}

#[tokio::test]
async fn revoke_and_disconnect_stop_tokens_at_mcp_and_nothing_else() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let own = dev.client_id("agentgate demo app");
    let mut browser = Browser::new("en");
    let revoke = |token: String, client_id: String| {
        let base = dev.base.clone();
        async move {
            let form = [("token", token.as_str()), ("client_id", client_id.as_str())];
            let response =
                reqwest::Client::new().post(format!("{base}/revoke")).form(&form).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };

    // /revoke of one access token: that token, not its siblings.
    let first = alice_tokens(&dev, &mut browser, &app, &[]).await;
    let second = alice_tokens(&dev, &mut browser, &app, &[]).await;
    revoke(access(&first).to_owned(), app.clone()).await;
    refused(&dev, access(&first), "/revoke of the access token").await;
    accepted(&dev, access(&second)).await;

    // /revoke of a refresh token: its family.
    let offline = [("scope", "openid mcp:tools offline_access"), ("prompt", "consent")];
    let family = alice_tokens(&dev, &mut browser, &own, &offline).await;
    accepted(&dev, access(&family)).await;
    revoke(family["refresh_token"].as_str().unwrap().to_owned(), own.clone()).await;
    refused(&dev, access(&family), "/revoke of the refresh token").await;

    // Disconnect on the account page: every token of that app for alice, and
    // the page says so before she presses it.
    let other_app = alice_tokens(&dev, &mut browser, &own, &[]).await;
    let account = browser.get(&format!("{}/account", dev.base)).await;
    assert!(
        account.body.contains("Disconnecting stops the app at once"),
        "the account page says what Disconnect does: {}",
        account.body
    );
    let csrf = account.input("csrf");
    let done = browser
        .post(&format!("{}/account/disconnect", dev.base), &[("csrf", &csrf), ("client_id", &app)])
        .await;
    assert_eq!(done.status, 303);
    refused(&dev, access(&second), "Disconnect").await;
    accepted(&dev, access(&other_app)).await;
}

#[tokio::test]
async fn the_cli_removing_an_app_or_a_person_stops_their_tokens_within_seconds() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let own = dev.client_id("agentgate demo app");
    let mut browser = Browser::new("en");
    let smartmail = alice_tokens(&dev, &mut browser, &app, &[]).await;
    let demo = alice_tokens(&dev, &mut browser, &own, &[]).await;

    // Another process changes the data: the server reads what was revoked
    // every two seconds.
    agentgate(&dev, &["apps", "remove", &app]);
    let took = refused_within(&dev, access(&smartmail), Duration::from_secs(5)).await;
    eprintln!("apps remove reached /mcp after {took:?}");
    accepted(&dev, access(&demo)).await;

    agentgate(&dev, &["users", "remove", "alice"]);
    refused_within(&dev, access(&demo), Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_management_api_revoking_a_grant_or_removing_a_person_stops_their_tokens_at_mcp() {
    let dev = Dev::start(PASSWORD);
    let app = dev.client_id("SmartMail AI");
    let admin = support::admin::machine_app(&dev, "Marketplace", &["--admin"]);
    let http = reqwest::Client::new();
    let token = support::admin::api_token(&http, &dev, &admin, "agentgate:admin").await;
    let mut browser = Browser::new("en");
    let alice = dev.user_id("alice");

    let tokens = alice_tokens(&dev, &mut browser, &app, &[]).await;
    let grants = format!("{}/api/v1/grants?client_id={app}&user_id={alice}", dev.base);
    assert_eq!(http.delete(&grants).bearer_auth(&token).send().await.unwrap().status(), 204);
    refused(&dev, access(&tokens), "DELETE /api/v1/grants").await;

    let tokens = alice_tokens(&dev, &mut browser, &app, &[]).await;
    let person = format!("{}/api/v1/users/{alice}", dev.base);
    assert_eq!(http.delete(&person).bearer_auth(&token).send().await.unwrap().status(), 204);
    refused(&dev, access(&tokens), "DELETE /api/v1/users").await;
}
