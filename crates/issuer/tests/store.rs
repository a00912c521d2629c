//! One test suite for every store backend: each test below runs once against
//! SQLite (a fresh file) and once against PostgreSQL (a fresh schema on the
//! test server), so the two backends keep the same rules. The races are run
//! for real: on PostgreSQL through separate pooled connections, as two
//! instances would.

mod common;

use std::time::{Duration, Instant};

use agentgate_issuer::store::{
    AuthCode, Client, CodeRedemption, Grant, PgStore, Redemption, RefreshToken, Resource, ResourceScope,
    Session, SqliteStore, Store, StoreError, StoredKey, TokenFamily, UpstreamSignIn, User, UserLink, taken,
};
use common::TempDb;
use common::pg_schema::PgSchema;

/// Declares `$name` as two tests, `sqlite` and `postgres`, each calling the
/// suite function with a fresh store of that backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TempDb::new();
                    let store = super::SqliteStore::open(&db.url()).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let schema = super::PgSchema::new().await;
                    let store = super::PgStore::open(&schema.url()).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    people_are_unique_by_username_and_email,
    apps_keep_every_field_and_count_their_changes,
    resources_and_their_scopes,
    grants_are_replaced_listed_and_revoked_with_their_tokens,
    a_code_is_redeemed_once_and_only_while_its_app_and_person_are_as_read,
    racing_redemptions_of_one_code_exactly_one_wins_and_the_others_see_it,
    a_refresh_token_is_rotated_once_even_when_raced,
    key_rotations_leave_exactly_one_active_key_even_when_raced,
    sign_in_attempts_are_counted_exactly_when_raced,
    single_use_ids_sessions_and_revoked_tokens,
    purging_removes_only_what_expired,
    every_revocation_is_recorded_with_what_it_revokes,
    accounts_at_providers_tie_to_one_person_and_sign_ins_in_progress_are_taken_once,
    last_used_is_when_a_person_s_newest_token_for_an_app_was_issued,
);

fn person(username: &str, email: Option<&str>) -> User {
    User {
        id: agentgate_issuer::random_token(16),
        username: username.into(),
        email: email.map(str::to_owned),
        name: Some(format!("{username} liddell")),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: 100,
        ..User::default()
    }
}

fn app(client_id: &str) -> Client {
    Client {
        client_id: client_id.into(),
        name: "SmartMail AI".into(),
        third_party: true,
        application_type: "native".into(),
        secret_hash: Some("ab".repeat(32)),
        redirect_uris: vec!["http://127.0.0.1/callback".into(), "http://[::1]/callback".into()],
        scopes: vec!["openid".into(), "mcp:tools".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        logo_uri: Some("https://smartmail.example/logo.png".into()),
        client_uri: Some("https://smartmail.example".into()),
        policy_uri: None,
        tos_uri: Some("https://smartmail.example/terms".into()),
        created_at: 200,
        id_token_signed_response_alg: "RS256".into(),
        post_logout_redirect_uris: vec!["http://127.0.0.1/bye".into()],
        registration: "dynamic".into(),
        registration_token_hash: Some("cd".repeat(32)),
        token_endpoint_auth_method: "client_secret_post".into(),
        jwks: Some(r#"{"keys":[]}"#.into()),
        version: 41,
    }
}

fn family(id: &str, client: &Client, user: &User) -> TokenFamily {
    TokenFamily {
        id: id.into(),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        resource: "https://mcp.example/mcp".into(),
        scopes: vec!["openid".into(), "mcp:tools".into()],
        auth_time: 300,
        created_at: 310,
        revoked_at: None,
    }
}

fn refresh(token_hash: &str, family_id: &str) -> RefreshToken {
    RefreshToken {
        token_hash: token_hash.into(),
        family_id: family_id.into(),
        created_at: 310,
        expires_at: 10_000,
        rotated_at: None,
    }
}

fn code(code_hash: &str, client: &Client, user: &User) -> AuthCode {
    AuthCode {
        code_hash: code_hash.into(),
        client_id: client.client_id.clone(),
        user_id: user.id.clone(),
        redirect_uri: "http://127.0.0.1/callback".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        resource: "https://mcp.example/mcp".into(),
        scopes: vec!["openid".into(), "mcp:tools".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: 300,
        expires_at: 400,
        redeemed_at: None,
        family_id: None,
    }
}

/// A person, an app and a code of theirs, stored.
async fn person_app_and_code<S: Store>(store: &S, code_hash: &str) -> (User, Client, AuthCode) {
    let alice = person("alice", None);
    store.insert_user(&alice).await.unwrap();
    let smartmail = app("smartmail");
    store.insert_client(&smartmail).await.unwrap();
    let stored = code(code_hash, &smartmail, &alice);
    store.insert_code(&stored).await.unwrap();
    (alice, smartmail, stored)
}

fn redemption<'a>(
    code: &'a str,
    family: &'a TokenFamily,
    refresh: Option<&'a RefreshToken>,
    client_version: Option<i64>,
) -> CodeRedemption<'a> {
    CodeRedemption { code_hash: code, now: 320, family, refresh, client_version }
}

async fn people_are_unique_by_username_and_email<S: Store>(store: S) {
    let alice = person("alice", Some("alice@example.com"));
    store.insert_user(&alice).await.unwrap();
    assert_eq!(store.user(&alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.find_user_by_login("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.find_user_by_login("alice@example.com").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.find_user_by_login("bob").await.unwrap(), None);

    let same_name = person("alice", None);
    assert!(matches!(store.insert_user(&same_name).await, Err(StoreError::Conflict(taken::USERNAME))));
    let same_email = person("alicia", Some("alice@example.com"));
    assert!(matches!(store.insert_user(&same_email).await, Err(StoreError::Conflict(taken::EMAIL))));
    assert_eq!(store.users().await.unwrap(), vec![alice.clone()], "a refused person is not stored");

    let bob = person("bob", None);
    store.insert_user(&bob).await.unwrap();
    let bob_as_alice = User { email: Some("alice@example.com".into()), ..bob.clone() };
    assert!(matches!(store.update_user(&bob_as_alice).await, Err(StoreError::Conflict(taken::EMAIL))));
    assert_eq!(store.user(&bob.id).await.unwrap(), Some(bob.clone()), "a refused change changes nothing");

    assert!(store.set_password_hash(&bob.id, "new-hash").await.unwrap());
    assert_eq!(store.user(&bob.id).await.unwrap().unwrap().password_hash, "new-hash");
    assert!(!store.set_password_hash("nobody", "new-hash").await.unwrap());
    assert!(store.delete_user(&bob.id, 100).await.unwrap());
    assert!(!store.delete_user(&bob.id, 100).await.unwrap());
    let names: Vec<String> = store.users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice"]);
}

async fn apps_keep_every_field_and_count_their_changes<S: Store>(store: S) {
    let smartmail = app("smartmail");
    store.insert_client(&smartmail).await.unwrap();
    assert_eq!(store.client("smartmail").await.unwrap(), Some(smartmail.clone()), "every field comes back");
    let public = Client { secret_hash: None, jwks: None, logo_uri: None, ..app("public") };
    store.insert_client(&public).await.unwrap();
    assert_eq!(store.client("public").await.unwrap(), Some(public.clone()));
    assert!(matches!(store.insert_client(&app("smartmail")).await, Err(StoreError::Conflict(_))));

    let renamed = Client { name: "SmartMail".into(), version: 0, ..smartmail.clone() };
    assert_eq!(store.update_client(&renamed).await.unwrap(), Some(42), "the stored version goes up by one");
    assert_eq!(store.update_client(&renamed).await.unwrap(), Some(43));
    let stored = store.client("smartmail").await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.version, stored.created_at), ("SmartMail", 43, 200));
    assert_eq!(store.update_client(&app("nobody")).await.unwrap(), None);

    let names: Vec<String> = store.clients().await.unwrap().into_iter().map(|c| c.client_id).collect();
    assert_eq!(names, ["smartmail", "public"], "by name (\"SmartMail\" before \"SmartMail AI\")");
    assert!(store.delete_client("public", 100).await.unwrap());
    assert!(!store.delete_client("public", 100).await.unwrap());
    assert_eq!(store.client("public").await.unwrap(), None);
}

async fn resources_and_their_scopes<S: Store>(store: S) {
    let scope =
        |name: &str| ResourceScope { name: name.into(), description: format!("{name} in plain words") };
    let whoami = Resource {
        uri: "https://mcp.example/mcp".into(),
        canonical: "https://mcp.example/mcp".into(),
        name: "whoami".into(),
        scopes: vec![scope("mcp:read"), scope("mcp:tools")],
        translations: serde_json::from_value(serde_json::json!({
            "ja": {"name": "私は誰", "scopes": {"mcp:tools": "ツールを使う"}},
        }))
        .unwrap(),
        created_at: 1,
    };
    store.insert_resource(&whoami).await.unwrap();
    assert!(matches!(store.insert_resource(&whoami).await, Err(StoreError::Conflict(_))));
    let same_canonical = Resource { uri: "https://MCP.example/mcp".into(), ..whoami.clone() };
    assert!(matches!(store.put_resource(&same_canonical).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.resources().await.unwrap(), vec![whoami.clone()], "a refused resource is not stored");

    let narrower = Resource {
        name: "Who am I".into(),
        scopes: vec![scope("mcp:tools")],
        translations: Default::default(),
        ..whoami.clone()
    };
    store.put_resource(&narrower).await.unwrap();
    assert_eq!(store.resource_by_canonical("https://mcp.example/mcp").await.unwrap(), Some(narrower.clone()));
    assert!(store.delete_resource(&whoami.uri).await.unwrap());
    assert_eq!(store.resource_by_canonical("https://mcp.example/mcp").await.unwrap(), None);
    store.insert_resource(&whoami).await.unwrap();
    assert_eq!(store.resources().await.unwrap(), vec![whoami], "its old scopes went with it");
}

async fn grants_are_replaced_listed_and_revoked_with_their_tokens<S: Store>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let grant = Grant {
        user_id: alice.id.clone(),
        client_id: smartmail.client_id.clone(),
        resource: "https://mcp.example/mcp".into(),
        scopes: vec!["mcp:tools".into()],
        created_at: 1,
        updated_at: 1,
    };
    store.save_grant(&grant).await.unwrap();
    let wider = Grant { scopes: vec!["mcp:tools".into(), "openid".into()], updated_at: 2, ..grant.clone() };
    store.save_grant(&wider).await.unwrap();
    assert_eq!(store.grant(&alice.id, "smartmail", &grant.resource).await.unwrap(), Some(wider.clone()));
    assert_eq!(store.grants_of_user(&alice.id).await.unwrap(), vec![wider.clone()]);
    assert_eq!(store.grants_of_client("smartmail").await.unwrap(), vec![wider]);

    let tokens = family("family", &smartmail, &alice);
    let won = store.redeem_code(&redemption("code", &tokens, None, Some(smartmail.version))).await.unwrap();
    assert!(matches!(won, Redemption::Won(_)));
    assert!(store.revoke_grants(&alice.id, "smartmail", 500).await.unwrap());
    assert_eq!(store.grants_of_user(&alice.id).await.unwrap(), vec![]);
    assert_eq!(store.family("family").await.unwrap().unwrap().revoked_at, Some(500));
    assert!(!store.revoke_grants(&alice.id, "smartmail", 600).await.unwrap(), "nothing left to revoke");

    // A code issued before the revocation and not exchanged yet goes with it.
    store.insert_code(&code("pending", &smartmail, &alice)).await.unwrap();
    let late = family("late", &smartmail, &alice);
    store.save_grant(&grant).await.unwrap();
    assert!(store.revoke_grants(&alice.id, "smartmail", 700).await.unwrap());
    assert_eq!(store.code("pending").await.unwrap(), None);
    let attempt = redemption("pending", &late, None, Some(smartmail.version));
    assert_eq!(store.redeem_code(&attempt).await.unwrap(), Redemption::Stale);
    assert_eq!(store.family("late").await.unwrap(), None);
    assert!(store.code("code").await.unwrap().is_some(), "an exchanged code stays, to recognise a replay");
    assert_eq!(store.family("family").await.unwrap().unwrap().revoked_at, Some(500), "revoked once");
}

async fn a_code_is_redeemed_once_and_only_while_its_app_and_person_are_as_read<S: Store>(store: S) {
    let (alice, smartmail, stored) = person_app_and_code(&store, "code").await;
    assert_eq!(store.code("code").await.unwrap(), Some(stored.clone()));
    let tokens = family("first", &smartmail, &alice);
    let first_refresh = refresh("refresh-1", "first");

    // An app changed since it was read: nothing is redeemed or stored.
    let stale = redemption("code", &tokens, Some(&first_refresh), Some(smartmail.version + 1));
    assert_eq!(store.redeem_code(&stale).await.unwrap(), Redemption::Stale);
    assert_eq!(store.family("first").await.unwrap(), None);
    assert_eq!(store.refresh_token("refresh-1").await.unwrap(), None);
    assert_eq!(store.code("code").await.unwrap().unwrap().redeemed_at, None);

    let found = store.client_and_code("smartmail", "code").await.unwrap();
    assert_eq!(
        (found.client, found.code, found.user),
        (Some(smartmail.clone()), Some(stored), Some(alice.clone()))
    );

    let won = redemption("code", &tokens, Some(&first_refresh), Some(smartmail.version));
    assert_eq!(store.redeem_code(&won).await.unwrap(), Redemption::Won(alice.clone()));
    assert_eq!(store.family("first").await.unwrap(), Some(tokens.clone()));
    let (token, its_family) = store.refresh_token("refresh-1").await.unwrap().unwrap();
    assert_eq!((token, its_family), (first_refresh, tokens));
    let used = store.code("code").await.unwrap().unwrap();
    assert_eq!((used.redeemed_at, used.family_id.as_deref()), (Some(320), Some("first")));

    // A replay, with any version, learns who holds the code and stores nothing.
    let again = family("second", &smartmail, &alice);
    let replay = redemption("code", &again, None, None);
    assert_eq!(store.redeem_code(&replay).await.unwrap(), Redemption::AlreadyUsed("first".into()));
    assert_eq!(store.family("second").await.unwrap(), None);

    // A person removed since: their codes go with them.
    let bob = person("bob", None);
    store.insert_user(&bob).await.unwrap();
    store.insert_code(&code("bobs", &smartmail, &bob)).await.unwrap();
    store.delete_user(&bob.id, 100).await.unwrap();
    let bobs = family("bobs-family", &smartmail, &bob);
    assert_eq!(store.redeem_code(&redemption("bobs", &bobs, None, None)).await.unwrap(), Redemption::Stale);
    let found = store.client_and_code("nobody", "bobs").await.unwrap();
    assert!(found.client.is_none() && found.code.is_none() && found.user.is_none());
}

async fn racing_redemptions_of_one_code_exactly_one_wins_and_the_others_see_it<S: Store + Clone>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let racers = (0..8).map(|n| {
        let (store, alice, smartmail) = (store.clone(), alice.clone(), smartmail.clone());
        tokio::spawn(async move {
            let tokens = family(&format!("family-{n}"), &smartmail, &alice);
            let token = refresh(&format!("refresh-{n}"), &tokens.id);
            let attempt = redemption("code", &tokens, Some(&token), Some(smartmail.version));
            store.redeem_code(&attempt).await.unwrap()
        })
    });
    let mut outcomes = Vec::new();
    for racer in racers.collect::<Vec<_>>() {
        outcomes.push(racer.await.unwrap());
    }
    let winners = outcomes.iter().filter(|o| matches!(o, Redemption::Won(_))).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let holder = store.code("code").await.unwrap().unwrap().family_id.unwrap();
    for outcome in &outcomes {
        match outcome {
            Redemption::Won(_) => {}
            Redemption::AlreadyUsed(first) => assert_eq!(first, &holder, "every loser names the winner"),
            Redemption::Stale => panic!("a loser must learn the code was used, so it revokes: {outcomes:?}"),
        }
    }
    assert!(store.family(&holder).await.unwrap().is_some());
}

async fn a_refresh_token_is_rotated_once_even_when_raced<S: Store + Clone>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let tokens = family("family", &smartmail, &alice);
    let first = refresh("refresh-0", "family");
    store.redeem_code(&redemption("code", &tokens, Some(&first), None)).await.unwrap();

    let racers: Vec<_> = (1..=8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let next = refresh(&format!("refresh-{n}"), "family");
                store.rotate_refresh_token("refresh-0", 400, &next).await.unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    for (n, racer) in racers.into_iter().enumerate() {
        if racer.await.unwrap() {
            won.push(n + 1);
        }
    }
    assert_eq!(won.len(), 1, "exactly one rotation wins: {won:?}");
    assert_eq!(store.refresh_token("refresh-0").await.unwrap().unwrap().0.rotated_at, Some(400));
    for n in 1..=8 {
        let stored = store.refresh_token(&format!("refresh-{n}")).await.unwrap();
        assert_eq!(stored.is_some(), won == [n], "only the winner's successor is stored");
    }
    store.revoke_family("family", 500).await.unwrap();
    store.revoke_family("family", 600).await.unwrap();
    assert_eq!(store.family("family").await.unwrap().unwrap().revoked_at, Some(500));
}

fn key(kid: &str, created_at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: "ES256".into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        sealed_private: "sealed".into(),
        created_at,
        retired_at: None,
        publish_until: None,
    }
}

async fn key_rotations_leave_exactly_one_active_key_even_when_raced<S: Store + Clone>(store: S) {
    store.rotate_signing_key(&key("k0", 10), 0).await.unwrap();
    store.rotate_signing_key(&key("k1", 20), 900).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys[0], key("k1", 20), "the active key first");
    assert_eq!((keys[1].retired_at, keys[1].publish_until), (Some(20), Some(900)));

    let racers: Vec<_> = (2..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.rotate_signing_key(&key(&format!("k{n}"), 30 + n), 990).await })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap().unwrap();
    }
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 10);
    let active: Vec<&str> = keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.kid.as_str()).collect();
    assert_eq!(active.len(), 1, "one active key after racing rotations: {active:?}");
    assert_eq!(keys[0].kid, active[0]);
    let published = keys.iter().filter(|k| k.publish_until.is_some()).count();
    assert_eq!(published, 9, "every other key was retired by a rotation and stays published for a while");
}

async fn sign_in_attempts_are_counted_exactly_when_raced<S: Store + Clone>(store: S) {
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.count_attempt("account:alice", 1_000, 60).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for racer in racers {
        counts.push(racer.await.unwrap());
    }
    counts.sort();
    assert_eq!(counts, (1..=20).collect::<Vec<i64>>(), "every attempt counted once");
    assert_eq!(store.attempts("account:alice", 1_030, 60).await.unwrap(), (20, 1_000));
    assert_eq!(store.attempts("account:alice", 1_060, 60).await.unwrap(), (0, 1_060), "the window is over");
    assert_eq!(store.count_attempt("account:alice", 1_061, 60).await.unwrap(), 1, "a new window starts");
    store.clear_attempts("account:alice").await.unwrap();
    assert_eq!(store.attempts("account:alice", 1_062, 60).await.unwrap(), (0, 1_062));
}

async fn single_use_ids_sessions_and_revoked_tokens<S: Store + Clone>(store: S) {
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.first_use("assertion-jti", 2_000).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    for racer in racers {
        firsts += usize::from(racer.await.unwrap());
    }
    assert_eq!(firsts, 1, "an assertion id is accepted once");

    let alice = person("alice", None);
    store.insert_user(&alice).await.unwrap();
    let session =
        Session { id_hash: "session".into(), user_id: alice.id.clone(), auth_time: 5, expires_at: 99 };
    store.insert_session(&session).await.unwrap();
    store.insert_session(&Session { id_hash: "other".into(), ..session.clone() }).await.unwrap();
    assert_eq!(store.session("session").await.unwrap(), Some(session.clone()));
    store.delete_session("session").await.unwrap();
    assert_eq!(store.session("session").await.unwrap(), None);
    store.delete_sessions_of(&alice.id).await.unwrap();
    assert_eq!(store.session("other").await.unwrap(), None);

    assert!(!store.access_token_revoked("jti").await.unwrap());
    store.revoke_access_token("jti", 700, 100).await.unwrap();
    store.revoke_access_token("jti", 700, 100).await.unwrap();
    assert!(store.access_token_revoked("jti").await.unwrap());
}

async fn last_used_is_when_a_person_s_newest_token_for_an_app_was_issued<S: Store>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    assert_eq!(store.last_used(&alice.id, "smartmail").await.unwrap(), None, "no token yet");
    let tokens = family("family", &smartmail, &alice);
    store.redeem_code(&redemption("code", &tokens, Some(&refresh("r1", "family")), None)).await.unwrap();
    let first = refresh("r1", "family").created_at.max(tokens.created_at);
    assert_eq!(store.last_used(&alice.id, "smartmail").await.unwrap(), Some(first));
    let later = RefreshToken { created_at: 9_000, ..refresh("r2", "family") };
    assert!(store.rotate_refresh_token("r1", 9_000, &later).await.unwrap());
    assert_eq!(store.last_used(&alice.id, "smartmail").await.unwrap(), Some(9_000), "a refresh is a use");
    assert_eq!(store.last_used(&alice.id, "other").await.unwrap(), None);
}

/// What `revocations_since` says, as (kind, id, when) sorted.
async fn revocations<S: Store>(store: &S, since: i64) -> Vec<(&'static str, String, i64)> {
    let mut found: Vec<_> = store
        .revocations_since(since)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.kind.as_str(), r.id, r.revoked_at))
        .collect();
    found.sort();
    found
}

async fn every_revocation_is_recorded_with_what_it_revokes<S: Store>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let first = family("f1", &smartmail, &alice);
    store.redeem_code(&redemption("code", &first, None, None)).await.unwrap();
    assert!(revocations(&store, 0).await.is_empty(), "nothing revoked yet");

    // A family, once: revoking it again (or one that does not exist) records nothing new.
    store.revoke_family("f1", 500).await.unwrap();
    store.revoke_family("f1", 600).await.unwrap();
    store.revoke_family("no-such-family", 600).await.unwrap();
    assert_eq!(revocations(&store, 0).await, [("family", "f1".to_owned(), 500)]);

    // Disconnecting: every live family between the two, and only those.
    store.insert_code(&code("code2", &smartmail, &alice)).await.unwrap();
    store.redeem_code(&redemption("code2", &family("f2", &smartmail, &alice), None, None)).await.unwrap();
    assert!(store.revoke_grants(&alice.id, "smartmail", 700).await.unwrap());
    assert_eq!(revocations(&store, 650).await, [("family", "f2".to_owned(), 700)]);

    // One access token; an app and a person, only when they existed.
    store.revoke_access_token("f9.jti", 9_000, 800).await.unwrap();
    assert!(store.delete_client("smartmail", 900).await.unwrap());
    assert!(!store.delete_client("smartmail", 950).await.unwrap());
    assert!(store.delete_user(&alice.id, 1_000).await.unwrap());
    assert!(!store.delete_user("nobody", 1_000).await.unwrap());
    assert_eq!(
        revocations(&store, 750).await,
        [
            ("client", "smartmail".to_owned(), 900),
            ("person", alice.id.clone(), 1_000),
            ("token", "f9.jti".to_owned(), 800),
        ]
    );

    // Kept as long as asked, then purged.
    store.purge_expired(1_200, 600).await.unwrap();
    assert_eq!(revocations(&store, 0).await.len(), 4, "only f1 (at 500) is over 600 s old at 1,200");
    store.purge_expired(2_000, 600).await.unwrap();
    assert!(revocations(&store, 0).await.is_empty());
}

async fn purging_removes_only_what_expired<S: Store>(store: S) {
    let (alice, smartmail, _) = person_app_and_code(&store, "old-code").await;
    let mut fresh = code("fresh-code", &smartmail, &alice);
    fresh.expires_at = 5_000;
    store.insert_code(&fresh).await.unwrap();
    let tokens = family("family", &smartmail, &alice);
    let kept = RefreshToken { expires_at: 5_000, ..refresh("kept", "family") };
    store.redeem_code(&redemption("fresh-code", &tokens, Some(&kept), None)).await.unwrap();
    let session = |id: &str, expires_at| Session {
        id_hash: id.into(),
        user_id: alice.id.clone(),
        auth_time: 1,
        expires_at,
    };
    store.insert_session(&session("old", 900)).await.unwrap();
    store.insert_session(&session("new", 5_000)).await.unwrap();
    store.revoke_access_token("old-jti", 900, 100).await.unwrap();
    store.revoke_access_token("new-jti", 5_000, 100).await.unwrap();

    store.purge_expired(1_000, 60).await.unwrap();
    assert_eq!(store.code("old-code").await.unwrap(), None, "expired (at 400) for longer than the 60 s kept");
    assert!(store.code("fresh-code").await.unwrap().is_some());
    assert!(store.refresh_token("kept").await.unwrap().is_some());
    assert_eq!(store.session("old").await.unwrap(), None);
    assert!(store.session("new").await.unwrap().is_some());
    assert!(!store.access_token_revoked("old-jti").await.unwrap());
    assert!(store.access_token_revoked("new-jti").await.unwrap());
}

/// Reopening runs the migrations again, which must change nothing.
#[tokio::test]
async fn sqlite_reopened_keeps_everything() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    drop(store);
    let store = SqliteStore::open(&db.url()).await.unwrap();
    assert_eq!(store.user(&alice.id).await.unwrap(), Some(alice));
    assert_eq!(store.client("smartmail").await.unwrap(), Some(smartmail));
}

/// The log is copied back into the database however the writes are split
/// between the store's two connections: here every commit is a redemption.
#[tokio::test]
async fn sqlite_log_stays_bounded_while_only_codes_are_redeemed() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let codes: Vec<String> = (0..1000).map(|n| format!("code-{n}")).collect();
    for hash in &codes {
        store.insert_code(&code(hash, &smartmail, &alice)).await.unwrap();
    }
    // Start from an empty log, so that what follows is all redemptions. The
    // store's own copy of the log may be under way: then this one is refused.
    let wal = format!("{}-wal", db.path().display());
    let outside = rusqlite::Connection::open(db.path()).unwrap();
    let emptied =
        || outside.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)).unwrap() == 0;
    eventually("the log could not be emptied", emptied).await;
    drop(outside);
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);

    for (n, hash) in codes.iter().enumerate() {
        let tokens = family(&format!("family-{n}"), &smartmail, &alice);
        let token = refresh(&format!("refresh-{n}"), &tokens.id);
        let won = store.redeem_code(&redemption(hash, &tokens, Some(&token), None)).await.unwrap();
        assert!(matches!(won, Redemption::Won(_)), "{won:?}");
    }
    let pages = log_pages(&db);
    // A redemption writes about seven pages, so 1,000 of them without a
    // checkpoint leave about 7,500; the log restarts after 4,000, or some
    // redemptions later when the store's copying thread was copying then
    // (on a loaded machine, for a while).
    assert!((1..=6000).contains(&pages), "{pages} pages in the log");
    assert_eq!(store.code("code-999").await.unwrap().unwrap().family_id.as_deref(), Some("family-999"));
}

/// How many pages the SQLite log (`-wal`) of `db` grew to: a page is 4 KiB
/// and a 24-byte header; the log starts with 32 bytes.
fn log_pages(db: &TempDb) -> u64 {
    let wal = format!("{}-wal", db.path().display());
    std::fs::metadata(wal).unwrap().len().saturating_sub(32) / (4096 + 24)
}

/// Waits up to 5 s for `done`; fails, saying `what`, if it never is.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What is committed is copied into the database file soon after, not only
/// once the log reaches the mark (4,000 pages; these writes make a few hundred).
#[tokio::test]
async fn sqlite_log_is_copied_into_the_database_file_before_the_mark() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let (alice, smartmail, _) = person_app_and_code(&store, "code").await;
    let file_size = || std::fs::metadata(db.path()).unwrap().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = file_size();
    for n in 0..200 {
        store.insert_code(&code(&format!("code-{n}"), &smartmail, &alice)).await.unwrap();
    }
    // In WAL mode the database file grows only when a checkpoint copies pages into it.
    eventually(&format!("nothing copied: the file stayed at {before} bytes"), || file_size() > before).await;
    // The premise: the log never reached the mark, so no commit copied it.
    let pages = log_pages(&db);
    assert!(pages < 4000, "{pages} pages in the log");
}

/// The store's two connections must share one database: one in memory
/// cannot be.
#[tokio::test]
async fn sqlite_in_memory_is_refused() {
    let refused = SqliteStore::open("sqlite::memory:").await;
    assert!(matches!(refused, Err(StoreError::InMemory)), "{refused:?}");
}

/// Several instances starting at once on a new database: one applies each
/// migration, the others wait and find it applied; then each sees what
/// another wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_starting_at_once_share_one_schema() {
    let schema = PgSchema::new().await;
    let url = schema.url();
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::open_with(&url, 2).await })
        })
        .collect();
    let mut instances = Vec::new();
    for instance in opening {
        instances.push(instance.await.unwrap().expect("every instance opens"));
    }
    let (alice, smartmail, _) = person_app_and_code(&instances[0], "code").await;
    for instance in &instances[1..] {
        assert_eq!(instance.user(&alice.id).await.unwrap(), Some(alice.clone()));
        assert_eq!(instance.client("smartmail").await.unwrap(), Some(smartmail.clone()));
    }
    let reopened = PgStore::open(&url).await.unwrap();
    assert_eq!(reopened.users().await.unwrap(), vec![alice]);
}

#[tokio::test]
async fn a_url_of_another_kind_is_refused() {
    for url in ["mysql://localhost/agentgate", "sqlite://x.db"] {
        assert!(matches!(PgStore::open(url).await, Err(StoreError::UnsupportedUrl(_))), "{url}");
    }
    let refused = SqliteStore::open("postgres://localhost/agentgate").await;
    assert!(matches!(refused, Err(StoreError::UnsupportedUrl(_))));
}

/// Everything a store holds, read through the store: what a copy must keep.
async fn contents<S: Store>(store: &S, user: &User) -> impl PartialEq + std::fmt::Debug {
    (
        store.signing_keys().await.unwrap(),
        store.users().await.unwrap(),
        store.clients().await.unwrap(),
        store.resources().await.unwrap(),
        store.grants_of_user(&user.id).await.unwrap(),
        store.code("code").await.unwrap(),
        store.refresh_token("refresh").await.unwrap(),
        store.session("session").await.unwrap(),
        store.attempts("account:alice", 1_010, 60).await.unwrap(),
        store.access_token_revoked("jti").await.unwrap(),
        store.revocations_since(0).await.unwrap(),
    )
}

/// A store with a row in every table.
async fn filled<S: Store>(store: &S) -> User {
    let (alice, smartmail, _) = person_app_and_code(store, "code").await;
    store.rotate_signing_key(&key("k0", 10), 0).await.unwrap();
    store.rotate_signing_key(&key("k1", 20), 900).await.unwrap();
    let scope = ResourceScope { name: "mcp:tools".into(), description: "Use the tools".into() };
    let resource = Resource {
        uri: "https://mcp.example/mcp".into(),
        canonical: "https://mcp.example/mcp".into(),
        name: "whoami".into(),
        scopes: vec![scope],
        translations: Default::default(),
        created_at: 1,
    };
    store.insert_resource(&resource).await.unwrap();
    let grant = Grant {
        user_id: alice.id.clone(),
        client_id: smartmail.client_id.clone(),
        resource: resource.uri.clone(),
        scopes: vec!["mcp:tools".into()],
        created_at: 1,
        updated_at: 2,
    };
    store.save_grant(&grant).await.unwrap();
    let tokens = family("family", &smartmail, &alice);
    let token = refresh("refresh", "family");
    store.redeem_code(&redemption("code", &tokens, Some(&token), None)).await.unwrap();
    let session =
        Session { id_hash: "session".into(), user_id: alice.id.clone(), auth_time: 5, expires_at: 99 };
    store.insert_session(&session).await.unwrap();
    store.count_attempt("account:alice", 1_000, 60).await.unwrap();
    store.revoke_access_token("jti", 700, 100).await.unwrap();
    assert!(store.first_use("assertion", 700).await.unwrap());
    let link = UserLink {
        issuer: "https://logto.example".into(),
        subject: "s-1".into(),
        provider: "logto".into(),
        made_at_sign_in: true,
        user_id: alice.id.clone(),
        created_at: 5,
        signed_in_at: Some(6),
    };
    store.insert_user_link(&link).await.unwrap();
    let begun = UpstreamSignIn {
        state_hash: "state".into(),
        provider: "logto".into(),
        browser_hash: "browser".into(),
        request: String::new(),
        link_user: Some(alice.id.clone()),
        expires_at: 700,
    };
    store.insert_upstream_sign_in(&begun).await.unwrap();
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_keeps_every_row_both_ways_and_only_into_an_empty_database() {
    use agentgate_issuer::store::AnyStore;
    use agentgate_issuer::store::copy::{CopyError, TABLES, copy_all};

    let db = TempDb::new();
    let sqlite = AnyStore::open(&db.url()).await.unwrap();
    let alice = filled(&sqlite).await;
    let schema = PgSchema::new().await;
    let postgres = AnyStore::open(&schema.url()).await.unwrap();

    let copied = copy_all(&sqlite, &postgres).await.unwrap();
    assert_eq!(copied.len(), TABLES.len());
    assert!(copied.iter().all(|table| table.rows > 0), "a row in every table: {copied:?}");
    assert_eq!(contents(&postgres, &alice).await, contents(&sqlite, &alice).await);
    assert!(!postgres.first_use("assertion", 700).await.unwrap(), "used ids stay used");

    // Into a database that holds anything: refused, and nothing written.
    let other = TempDb::new();
    let nonempty = AnyStore::open(&other.url()).await.unwrap();
    let bob = person("bob", None);
    nonempty.insert_user(&bob).await.unwrap();
    let refused = copy_all(&postgres, &nonempty).await;
    assert!(matches!(refused, Err(CopyError::NotEmpty { table: "users", rows: 1 })), "{refused:?}");
    assert_eq!(nonempty.users().await.unwrap(), vec![bob]);
    assert!(nonempty.clients().await.unwrap().is_empty());

    // And back, from PostgreSQL into a new SQLite file.
    let back = TempDb::new();
    let returned = AnyStore::open(&back.url()).await.unwrap();
    copy_all(&postgres, &returned).await.unwrap();
    assert_eq!(contents(&returned, &alice).await, contents(&sqlite, &alice).await);
}

/// The copy names every table; a table a migration adds must be added there.
#[tokio::test]
async fn the_copy_names_every_table_of_the_schema() {
    use sqlx::Connection;
    let db = TempDb::new();
    drop(SqliteStore::open(&db.url()).await.unwrap());
    let mut conn = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name != 'agentgate_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut copied: Vec<&str> = agentgate_issuer::store::copy::TABLES.to_vec();
    copied.sort_unstable();
    tables.sort_unstable();
    assert_eq!(tables, copied);
}

#[tokio::test]
async fn each_durability_reaches_both_sqlite_connections_that_write() {
    use agentgate_issuer::store::Durability;
    for durability in [Durability::Crash, Durability::Power] {
        let db = common::TempDb::new();
        let store = SqliteStore::open_durable(&db.url(), durability).await.unwrap();
        assert_eq!(store.durability().await.unwrap(), Some(durability));
    }
    let db = common::TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    assert_eq!(store.durability().await.unwrap(), Some(Durability::Crash), "the default");
}

async fn accounts_at_providers_tie_to_one_person_and_sign_ins_in_progress_are_taken_once<S: Store>(store: S) {
    const LOGTO: &str = "https://logto.example";
    let alice = person("alice", Some("alice@example.com"));
    let bob = person("bob", Some("bob@example.com"));
    store.insert_user(&alice).await.unwrap();
    store.insert_user(&bob).await.unwrap();
    let link = |user: &User, issuer: &str, subject: &str| UserLink {
        issuer: issuer.into(),
        subject: subject.into(),
        provider: "logto".into(),
        made_at_sign_in: false,
        user_id: user.id.clone(),
        created_at: 10,
        signed_in_at: None,
    };
    store.insert_user_link(&link(&alice, LOGTO, "s-1")).await.unwrap();
    let again = store.insert_user_link(&link(&bob, LOGTO, "s-1")).await;
    assert!(matches!(again, Err(StoreError::Conflict(taken::PROVIDER_ACCOUNT))), "one person per account");
    let found = store.user_by_link(LOGTO, "s-1").await.unwrap().unwrap();
    assert_eq!((found.0.id.as_str(), found.1.provider.as_str()), (alice.id.as_str(), "logto"));
    assert_eq!(
        store.user_by_link("https://other.example", "s-1").await.unwrap(),
        None,
        "a sub is its issuer's"
    );

    // A new person with their account, both or neither.
    let carol = person("carol", Some("carol@example.com"));
    let taken_email = User { email: Some("bob@example.com".into()), ..person("carol", None) };
    let failed = store.insert_user_with_link(&taken_email, &link(&taken_email, LOGTO, "s-3")).await;
    assert!(matches!(failed, Err(StoreError::Conflict(taken::EMAIL))), "{failed:?}");
    assert_eq!(store.user_by_link(LOGTO, "s-3").await.unwrap(), None, "no link without its person");
    let tied_already = store.insert_user_with_link(&carol, &link(&carol, LOGTO, "s-1")).await;
    assert!(matches!(tied_already, Err(StoreError::Conflict(taken::PROVIDER_ACCOUNT))));
    assert!(store.user(&carol.id).await.unwrap().is_none(), "no person without their link");
    store.insert_user_with_link(&carol, &link(&carol, LOGTO, "s-3")).await.unwrap();
    assert_eq!(store.user_by_link(LOGTO, "s-3").await.unwrap().unwrap().0, carol);

    // A sign-in refreshes the profile; an address another person has is refused whole.
    let refreshed = User {
        name: Some("Alice L".into()),
        email_verified: true,
        picture: Some("https://p/a.png".into()),
        ..alice.clone()
    };
    store.refresh_profile(&refreshed, LOGTO, "s-1", 20).await.unwrap();
    assert_eq!(store.user(&alice.id).await.unwrap().unwrap(), refreshed);
    assert_eq!(store.user_links(&alice.id).await.unwrap()[0].signed_in_at, Some(20));
    let taking = User { email: Some("bob@example.com".into()), ..refreshed.clone() };
    assert!(matches!(store.refresh_profile(&taking, LOGTO, "s-1", 30).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.user(&alice.id).await.unwrap().unwrap(), refreshed, "nothing changed");
    assert_eq!(store.user_links(&alice.id).await.unwrap()[0].signed_in_at, Some(20));

    // A kept refresh token: replaced only while it is still the one read.
    assert_eq!(store.kept_refresh_token(&alice.id, LOGTO).await.unwrap(), None);
    assert!(store.keep_refresh_token(LOGTO, "s-1", Some("sealed-1"), None).await.unwrap());
    let kept = Some(("s-1".to_owned(), "sealed-1".to_owned()));
    assert_eq!(store.kept_refresh_token(&alice.id, LOGTO).await.unwrap(), kept);
    assert_eq!(store.kept_refresh_token(&bob.id, LOGTO).await.unwrap(), None, "alice's account, not bob's");
    assert!(!store.keep_refresh_token(LOGTO, "s-1", Some("sealed-3"), Some("sealed-0")).await.unwrap());
    assert!(store.keep_refresh_token(LOGTO, "s-1", Some("sealed-2"), Some("sealed-1")).await.unwrap());
    assert_eq!(store.kept_refresh_token(&alice.id, LOGTO).await.unwrap().unwrap().1, "sealed-2");
    assert!(store.keep_refresh_token(LOGTO, "s-1", None, None).await.unwrap());
    assert_eq!(store.kept_refresh_token(&alice.id, LOGTO).await.unwrap(), None, "dropped");
    assert!(store.keep_refresh_token(LOGTO, "s-1", Some("sealed-4"), None).await.unwrap());

    assert!(!store.delete_user_link(&bob.id, LOGTO, "s-1").await.unwrap(), "not bob's to remove");
    store.delete_user(&alice.id, 40).await.unwrap();
    assert_eq!(store.user_by_link(LOGTO, "s-1").await.unwrap(), None, "gone with the person");
    assert!(store.keep_refresh_token(LOGTO, "s-3", Some("sealed-5"), None).await.unwrap());
    assert!(store.delete_user_link(&carol.id, LOGTO, "s-3").await.unwrap());
    assert!(store.user_links(&carol.id).await.unwrap().is_empty());
    assert_eq!(store.kept_refresh_token(&carol.id, LOGTO).await.unwrap(), None, "gone with the link");

    let begun = UpstreamSignIn {
        state_hash: "h-1".into(),
        provider: "logto".into(),
        browser_hash: "b".into(),
        request: "client_id=x".into(),
        link_user: None,
        expires_at: 100,
    };
    store.insert_upstream_sign_in(&begun).await.unwrap();
    store
        .insert_upstream_sign_in(&UpstreamSignIn { state_hash: "h-2".into(), ..begun.clone() })
        .await
        .unwrap();
    let (first, second) =
        tokio::join!(store.take_upstream_sign_in("h-1", 50), store.take_upstream_sign_in("h-1", 50));
    let taken: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![begun.clone()], "taken once, raced or not");
    assert_eq!(store.take_upstream_sign_in("h-2", 100).await.unwrap(), None, "expired");
    assert_eq!(store.take_upstream_sign_in("h-2", 50).await.unwrap(), None, "and gone");
}
