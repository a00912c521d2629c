//! Password guessing against `agentgate dev`: bounded per account whatever
//! the login and the address, yet it never locks alice out of a browser she
//! signed in with before; `agentgate users unlock` and the management API let
//! her in from a new one.

mod support;

use reqwest::StatusCode;
use support::Dev;
use support::browser::{Browser, Page};

const PASSWORD: &str = "wonderland";

/// Signs in at the sign-in page as `login`; the answer.
async fn attempt(browser: &mut Browser, dev: &Dev, login: &str, password: &str) -> Page {
    let page = browser.get(&format!("{}/sign-in", dev.base)).await;
    browser.sign_in(&dev.base, &page, login, password).await
}

/// Whether the answer is a sign-in: to the account page.
fn signed_in(page: &Page) -> bool {
    page.status == StatusCode::SEE_OTHER && page.location.as_deref().is_some_and(|l| l.ends_with("/account"))
}

fn agentgate(dev: &Dev, args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentgate"))
        .args(args)
        .arg("--data-dir")
        .arg(&dev.data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_does_not_lock_alice_out_of_her_known_browser() {
    let dev = Dev::start(PASSWORD);
    agentgate(&dev, &["users", "add", "bob", "--password-stdin"], "bob-password\n");
    let mut hers = Browser::new("en");
    assert!(signed_in(&attempt(&mut hers, &dev, "alice", PASSWORD).await));
    let known = hers.cookies.get("agentgate_known").cloned().expect("her browser is known now");
    let account = hers.get(&format!("{}/account", dev.base)).await;
    hers.post(&format!("{}/sign-out", dev.base), &[("csrf", &account.input("csrf"))]).await;
    assert!(!hers.cookies.contains_key("agentgate_session") && hers.cookies.contains_key("agentgate_known"));

    // Someone guesses, by username and by email: five guesses in all, then nothing.
    let mut attacker = Browser::new("en");
    for login in ["alice", "alice@example.com", "Alice", "alice", "alice@example.com"] {
        assert_eq!(
            attempt(&mut attacker, &dev, login, "guess").await.status,
            StatusCode::UNAUTHORIZED,
            "{login}"
        );
    }
    let limited = attempt(&mut attacker, &dev, "alice@example.com", "guess").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "however the account is named");
    assert_eq!(attempt(&mut attacker, &dev, "alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // A browser alice never used waits too, even with her password, and a
    // made-up known-browser cookie changes nothing.
    let mut new_laptop = Browser::new("en");
    assert_eq!(attempt(&mut new_laptop, &dev, "alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    let mut forger = Browser::new("en");
    // Another browser id under her signature.
    let parts: Vec<&str> = known.split('.').collect();
    let other = if parts[1].starts_with('x') { "y" } else { "x" };
    let forged = format!("{}.{other}{}.{}", parts[0], &parts[1][1..], parts[2]);
    forger.cookies.insert("agentgate_known".into(), forged);
    assert_eq!(attempt(&mut forger, &dev, "alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // Her own browser signs her in.
    assert!(
        signed_in(&attempt(&mut hers, &dev, "alice", PASSWORD).await),
        "her known browser is not locked out"
    );

    // Her cookie is hers: it does nothing for bob, once bob is locked out.
    let mut bobs_attacker = Browser::new("en");
    for _ in 0..5 {
        attempt(&mut bobs_attacker, &dev, "bob", "guess").await;
    }
    let mut with_her_cookie = Browser::new("en");
    with_her_cookie.cookies.insert("agentgate_known".into(), known.clone());
    let page = attempt(&mut with_her_cookie, &dev, "bob", "bob-password").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);

    // Guessing from her own browser locks that browser alone, after five.
    let account = hers.get(&format!("{}/account", dev.base)).await;
    hers.post(&format!("{}/sign-out", dev.base), &[("csrf", &account.input("csrf"))]).await;
    for _ in 0..5 {
        assert_eq!(attempt(&mut hers, &dev, "alice", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt(&mut hers, &dev, "alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // `agentgate users unlock` lets her in from the new laptop at once.
    agentgate(&dev, &["users", "unlock", "alice"], "");
    assert!(signed_in(&attempt(&mut new_laptop, &dev, "alice", PASSWORD).await));
}

#[tokio::test]
async fn the_management_api_unlocks_a_person() {
    let dev = Dev::start(PASSWORD);
    let admin = support::admin::machine_app(&dev, "Marketplace", &["--admin"]);
    let http = reqwest::Client::new();
    let token = support::admin::api_token(&http, &dev, &admin, "agentgate:admin").await;
    let mut attacker = Browser::new("en");
    for _ in 0..5 {
        attempt(&mut attacker, &dev, "alice", "guess").await;
    }
    let mut browser = Browser::new("en");
    assert_eq!(attempt(&mut browser, &dev, "alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    let unlock = |id: String| {
        let (http, token, base) = (http.clone(), token.clone(), dev.base.clone());
        async move {
            let url = format!("{base}/api/v1/users/{id}/unlock");
            http.post(url).bearer_auth(token).send().await.unwrap().status()
        }
    };
    assert_eq!(unlock("nobody".into()).await, StatusCode::NOT_FOUND);
    assert_eq!(unlock(dev.user_id("alice")).await, StatusCode::NO_CONTENT);
    assert!(signed_in(&attempt(&mut browser, &dev, "alice", PASSWORD).await));
}
