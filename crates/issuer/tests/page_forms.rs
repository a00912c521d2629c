//! Page tokens through the issuer's plain API, with the clock in the test's
//! hand: a token is taken once, only for the page it was made for, in the
//! browser it was shown to, and only for a few minutes.

mod common;

use agentgate_issuer::forms::{CONSENT_FORM_SECS, FormPage, FormRefusal, SIGN_IN_FORM_SECS};
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::SqliteStore;
use agentgate_issuer::{Issuer, Settings};
use common::TempDb;

const NOW: i64 = 1_000_000;

async fn issuer(db: &TempDb, kek: KeyEncryptionKey) -> Issuer<SqliteStore> {
    let store = SqliteStore::open(&db.url()).await.unwrap();
    Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await.unwrap()
}

fn consent<'a>(request: &'a str, session: &'a str, asked: &'a str) -> FormPage<'a> {
    FormPage::Consent { request, session, asked }
}

#[tokio::test]
async fn a_page_token_is_taken_once_for_its_own_page_and_browser_only() {
    let db = TempDb::new();
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = issuer(&db, kek).await;
    let page = consent("client_id=a&scope=mcp%3Atools", "session-1", "mcp:tools");
    let token = issuer.page_token("browser-1", page, NOW);
    let take = |browser: &'static str, token: String, page: FormPage<'static>, at: i64| {
        let issuer = &issuer;
        async move { issuer.accept_page_token(Some(browser), Some(&token), page, at).await.unwrap() }
    };

    // Not for another request, session, list of scopes, kind of page or browser.
    for (what, other) in [
        ("request", consent("client_id=b&scope=mcp%3Atools", "session-1", "mcp:tools")),
        ("session", consent("client_id=a&scope=mcp%3Atools", "session-2", "mcp:tools")),
        ("scopes", consent("client_id=a&scope=mcp%3Atools", "session-1", "mcp:tools email")),
        ("page", FormPage::SignIn { request: "client_id=a&scope=mcp%3Atools" }),
    ] {
        assert_eq!(take("browser-1", token.clone(), other, NOW).await, Err(FormRefusal::Foreign), "{what}");
    }
    assert_eq!(take("browser-2", token.clone(), page, NOW).await, Err(FormRefusal::Foreign), "browser");
    let mut forged = token.clone();
    forged.replace_range(..1, "2");
    assert_eq!(take("browser-1", forged, page, NOW).await, Err(FormRefusal::Foreign), "its time changed");
    assert_eq!(take("browser-1", "garbage".into(), page, NOW).await, Err(FormRefusal::Foreign));
    assert_eq!(
        issuer.accept_page_token(Some("browser-1"), None, page, NOW).await.unwrap(),
        Err(FormRefusal::Foreign)
    );

    // Late: refused, and not used up by the refusals above.
    let late = NOW + CONSENT_FORM_SECS + 1;
    assert_eq!(take("browser-1", token.clone(), page, late).await, Err(FormRefusal::Expired));
    // In time: once.
    assert_eq!(take("browser-1", token.clone(), page, NOW + 10).await, Ok(()));
    assert_eq!(take("browser-1", token.clone(), page, NOW + 11).await, Err(FormRefusal::Used));

    // A sign-in page lives longer than a consent page.
    let sign_in = FormPage::SignIn { request: "" };
    let token = issuer.page_token("browser-1", sign_in, NOW);
    assert_eq!(
        take("browser-1", token.clone(), sign_in, NOW + SIGN_IN_FORM_SECS + 1).await,
        Err(FormRefusal::Expired)
    );
    assert_eq!(take("browser-1", token, sign_in, NOW + CONSENT_FORM_SECS + 1).await, Ok(()));
}

#[tokio::test]
async fn instances_sharing_the_key_and_the_store_agree_on_page_tokens() {
    let db = TempDb::new();
    let (kek, text) = KeyEncryptionKey::generate();
    let first = issuer(&db, kek).await;
    let second = issuer(&db, KeyEncryptionKey::from_base64(&text).unwrap()).await;
    let page = FormPage::SignIn { request: "client_id=a" };
    let token = first.page_token("browser-1", page, NOW);
    assert_eq!(second.accept_page_token(Some("browser-1"), Some(&token), page, NOW).await.unwrap(), Ok(()));
    assert_eq!(
        first.accept_page_token(Some("browser-1"), Some(&token), page, NOW).await.unwrap(),
        Err(FormRefusal::Used),
        "used on one instance is used on all"
    );
    let (other_kek, _) = KeyEncryptionKey::generate();
    let other_db = TempDb::new();
    let stranger = issuer(&other_db, other_kek).await;
    let token = first.page_token("browser-1", page, NOW);
    assert_eq!(
        stranger.accept_page_token(Some("browser-1"), Some(&token), page, NOW).await.unwrap(),
        Err(FormRefusal::Foreign),
        "another key-encryption key, another issuer"
    );
}
