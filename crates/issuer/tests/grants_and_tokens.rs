//! Codes, tokens, consent and revocation through the issuer's plain API, on a
//! real SQLite file: every rule of the token endpoint, failures included.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentgate_issuer::clients::{self, NewClient, Registered};
use agentgate_issuer::scopes::add_resource;
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{Client, SqliteStore, Store};
use agentgate_issuer::tokens::{ClientCredentials, CodeExchange, CodeRequest, OnBehalf};
use agentgate_issuer::users::{self, NewUser};
use agentgate_issuer::{ErrorCode, Issuer, Settings};
use common::{CHALLENGE, MCP, TempDb, VERIFIER};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:7777/callback";
// RFC 7636 Appendix B.

struct World {
    _db: TempDb,
    issuer: Arc<Issuer<SqliteStore>>,
    alice: String,
    agent: Client,
    machine: Registered,
}

/// How a public client presents itself: its id and no secret.
fn public(client: &Client) -> ClientCredentials {
    ClientCredentials { client_id: Some(client.client_id.clone()), ..Default::default() }
}

/// The exchange of `code` with the registered redirect URI and the right verifier.
fn exchange_of(code: &str) -> CodeExchange<'_> {
    CodeExchange {
        code: Some(code),
        redirect_uri: Some(REDIRECT),
        code_verifier: Some(VERIFIER),
        resource: None,
    }
}

fn app(name: &str, third_party: bool) -> NewClient {
    NewClient {
        third_party,
        ..common::native_app(name, REDIRECT, "openid profile email offline_access mcp:tools")
    }
}

async fn world() -> World {
    world_with(Settings::new("http://127.0.0.1:8080")).await
}

async fn world_with(settings: Settings) -> World {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let alice = users::add_user(
        &store,
        NewUser {
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            name: None,
            password: "wonderland".into(),
        },
        1,
    )
    .await
    .unwrap();
    add_resource(&store, MCP, "whoami", &[("mcp:tools", "Use the tools")], 1).await.unwrap();
    let agent = clients::register(&store, app("SmartMail AI", true), 1).await.unwrap().client;
    let machine = clients::register(
        &store,
        NewClient {
            public: false,
            machine: true,
            third_party: false,
            redirect_uris: vec![],
            ..app("Robot", false)
        },
        1,
    )
    .await
    .unwrap();
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = Issuer::open(store, kek, settings).await.unwrap();
    World { _db: db, issuer: Arc::new(issuer), alice: alice.id, agent, machine }
}

impl World {
    /// A code for alice and `app`.
    fn code_request(&self, app: &Client, scopes: &str) -> CodeRequest {
        CodeRequest {
            client_id: app.client_id.clone(),
            user_id: self.alice.clone(),
            redirect_uri: REDIRECT.into(),
            code_challenge: CHALLENGE.into(),
            resource: MCP.into(),
            scopes: scopes.split(' ').map(str::to_owned).collect(),
            nonce: Some("n-0S6".into()),
            auth_time: 5,
        }
    }

    async fn code(&self, scopes: &str) -> String {
        self.issuer.issue_code(self.code_request(&self.agent, scopes)).await.unwrap()
    }

    /// A code as the authorization endpoint issues it: kept by the issuer with
    /// the app as read now, for a one-trip exchange.
    async fn kept_code(&self, app: &Client, scopes: &str) -> String {
        let app = self.issuer.store().client(&app.client_id).await.unwrap().unwrap();
        self.issuer.issue_code_to(self.code_request(&app, scopes), Some(&app)).await.unwrap()
    }

    async fn exchange(&self, code: &str) -> Result<agentgate_issuer::tokens::TokenResponse, ErrorCode> {
        self.issuer
            .exchange_code(&public(&self.agent), CodeExchange { resource: Some(MCP), ..exchange_of(code) })
            .await
            .map_err(|e| e.code)
    }

    async fn active(&self, token: &str) -> bool {
        self.issuer.introspect(token).await.unwrap()["active"] == Value::Bool(true)
    }
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

fn header(jwt: &str) -> Value {
    use base64::Engine;
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

#[tokio::test]
async fn a_code_becomes_rfc9068_tokens_once() {
    let w = world().await;
    let code = w.code("openid profile email offline_access mcp:tools").await;
    let tokens = w.exchange(&code).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 600);
    assert_eq!(tokens.scope, "openid profile email offline_access mcp:tools");

    assert_eq!(header(&tokens.access_token)["typ"], "at+jwt");
    assert_eq!(header(&tokens.access_token)["alg"], "ES256");
    let at = claims(&tokens.access_token);
    assert_eq!(at["iss"], "http://127.0.0.1:8080");
    assert_eq!(at["sub"], w.alice.as_str());
    assert_eq!(at["aud"], MCP);
    assert_eq!(at["client_id"], w.agent.client_id.as_str());
    assert_eq!(at["scope"], "openid profile email offline_access mcp:tools");
    assert_eq!(at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(), 600);
    assert!(at["jti"].as_str().is_some_and(|j| j.len() > 20));

    let id = claims(tokens.id_token.as_deref().unwrap());
    assert_eq!(header(tokens.id_token.as_deref().unwrap())["typ"], "JWT");
    assert_eq!((id["aud"].as_str(), id["nonce"].as_str()), (Some(w.agent.client_id.as_str()), Some("n-0S6")));
    assert_eq!((id["email"].as_str(), id["auth_time"].as_i64()), (Some("alice@example.com"), Some(5)));

    let refresh = tokens.refresh_token.unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits");
    assert!(w.active(&tokens.access_token).await && w.active(&refresh).await);

    // Replay: refused, and what the first exchange issued is revoked.
    assert_eq!(w.exchange(&code).await.unwrap_err(), ErrorCode::InvalidGrant);
    assert!(!w.active(&tokens.access_token).await, "access token revoked by the replay");
    assert!(!w.active(&refresh).await, "refresh token revoked by the replay");
}

#[tokio::test]
async fn a_failed_exchange_consumes_nothing() {
    let w = world().await;
    let code = w.code("mcp:tools").await;
    let i = &w.issuer;
    let wrong_verifier = VERIFIER.replace('d', "e");
    let agent = public(&w.agent);
    let machine = ClientCredentials {
        client_id: Some(w.machine.client.client_id.clone()),
        client_secret: w.machine.secret.clone(),
        ..Default::default()
    };
    let exchange = exchange_of(&code);
    let cases = [
        (
            i.exchange_code(&agent, CodeExchange { code_verifier: None, ..exchange }).await,
            ErrorCode::InvalidRequest,
        ),
        (
            i.exchange_code(&agent, CodeExchange { code_verifier: Some(&wrong_verifier), ..exchange }).await,
            ErrorCode::InvalidGrant,
        ),
        (
            i.exchange_code(&agent, CodeExchange { code_verifier: Some(CHALLENGE), ..exchange }).await,
            ErrorCode::InvalidGrant,
        ),
        (
            i.exchange_code(
                &agent,
                CodeExchange { redirect_uri: Some("http://127.0.0.1:7777/other"), ..exchange },
            )
            .await,
            ErrorCode::InvalidGrant,
        ),
        (
            i.exchange_code(&agent, CodeExchange { redirect_uri: None, ..exchange }).await,
            ErrorCode::InvalidGrant,
        ),
        (
            i.exchange_code(
                &agent,
                CodeExchange { resource: Some("http://127.0.0.1:8080/other"), ..exchange },
            )
            .await,
            ErrorCode::InvalidTarget,
        ),
        (i.exchange_code(&machine, exchange).await, ErrorCode::InvalidGrant),
        (
            i.exchange_code(&agent, CodeExchange { code: Some("not-a-code"), ..exchange }).await,
            ErrorCode::InvalidGrant,
        ),
        (i.exchange_code(&agent, CodeExchange { code: None, ..exchange }).await, ErrorCode::InvalidRequest),
    ];
    for (n, (result, expected)) in cases.into_iter().enumerate() {
        assert_eq!(result.map(|_| ()).unwrap_err().code, expected, "case {n}");
    }
    // After all that, the right exchange still works: nothing was consumed.
    let tokens = w.exchange(&code).await.unwrap();
    assert_eq!(tokens.scope, "mcp:tools");
    assert!(tokens.id_token.is_none(), "no openid, no ID token");
    assert!(tokens.refresh_token.is_some(), "an OAuth request from an app that may refresh gets one");
}

/// Eight exchanges of `code` at once: how many got tokens (the others must
/// have been refused with `invalid_grant`).
async fn concurrent_winners(w: &World, code: &str) -> usize {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (issuer, agent, code) = (w.issuer.clone(), public(&w.agent), code.to_owned());
            tokio::spawn(async move { issuer.exchange_code(&agent, exchange_of(&code)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.code, ErrorCode::InvalidGrant),
        }
    }
    won
}

#[tokio::test]
async fn two_concurrent_redemptions_of_one_code_exactly_one_wins() {
    for _ in 0..5 {
        let w = world().await;
        let code = w.code("openid mcp:tools").await;
        assert_eq!(concurrent_winners(&w, &code).await, 1);
    }
}

#[tokio::test]
async fn a_token_request_dropped_halfway_leaves_no_transaction_open() {
    // A client may hang up at any moment, and the server then drops its
    // request wherever it was. Were the redemption's transaction left open on
    // the shared connection, the next one would fail and roll back the writes
    // made in between. Drop exchanges at many points, then check that the next
    // exchange and its refresh token work.
    let w = world().await;
    for step in 0..100u64 {
        let abandoned = w.code("openid offline_access mcp:tools").await;
        let _ = tokio::time::timeout(Duration::from_micros(step * 30), w.exchange(&abandoned)).await;
        let code = w.code("openid offline_access mcp:tools").await;
        let tokens = w.exchange(&code).await.unwrap_or_else(|e| panic!("step {step}: {e:?}"));
        let refreshed = w.issuer.refresh(&w.agent, tokens.refresh_token.as_deref(), None, None).await;
        assert!(refreshed.is_ok(), "step {step}: {:?}", refreshed.err());
    }
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let mut settings = Settings::new("http://127.0.0.1:8080");
    settings.code_ttl = -1;
    let w = world_with(settings).await;
    let code = w.code("mcp:tools").await;
    let err = w.issuer.exchange_code(&public(&w.agent), exchange_of(&code)).await;
    assert_eq!(err.unwrap_err().description, "authorization code expired");
}

#[tokio::test]
async fn refresh_rotates_narrows_and_reuse_revokes_the_family() {
    let w = world().await;
    let first = w.exchange(&w.code("openid offline_access mcp:tools").await).await.unwrap();
    let r1 = first.refresh_token.unwrap();
    let i = &w.issuer;

    // Wider than granted: refused, nothing rotated.
    let wider = i.refresh(&w.agent, Some(&r1), Some("openid email"), None).await.unwrap_err();
    assert_eq!(wider.code, ErrorCode::InvalidScope);
    let other = i.refresh(&w.agent, Some(&r1), None, Some("http://127.0.0.1:8080/other")).await.unwrap_err();
    assert_eq!(other.code, ErrorCode::InvalidTarget);
    let foreign = i.refresh(&w.machine.client, Some(&r1), None, None).await.unwrap_err();
    assert_eq!(foreign.code, ErrorCode::UnauthorizedClient, "a machine app has no refresh grant");

    let second = i.refresh(&w.agent, Some(&r1), Some("mcp:tools"), Some(MCP)).await.unwrap();
    assert_eq!(second.scope, "mcp:tools");
    assert_eq!(claims(&second.access_token)["aud"], MCP, "resource kept");
    let r2 = second.refresh_token.unwrap();
    assert_ne!(r1, r2);
    // The narrower scope does not shrink the grant: the next refresh may widen back.
    let third = i.refresh(&w.agent, Some(&r2), None, None).await.unwrap();
    assert_eq!(third.scope, "openid offline_access mcp:tools");
    assert!(third.id_token.is_some());
    let r3 = third.refresh_token.unwrap();
    assert!(w.active(&third.access_token).await && w.active(&r3).await);

    // r1 was rotated out: presenting it again revokes the whole family.
    assert_eq!(i.refresh(&w.agent, Some(&r1), None, None).await.unwrap_err().code, ErrorCode::InvalidGrant);
    assert!(!w.active(&r3).await);
    assert!(!w.active(&third.access_token).await);
    assert_eq!(i.refresh(&w.agent, Some(&r3), None, None).await.unwrap_err().code, ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_refresh_whose_answer_was_lost_is_retried_and_the_family_lives_on() {
    let w = world().await;
    let i = &w.issuer;
    let first = w.exchange(&w.code("openid offline_access mcp:tools").await).await.unwrap();
    let r1 = first.refresh_token.unwrap();

    // The rotation commits, and its answer never reaches the app: it tries again.
    let lost = i.refresh(&w.agent, Some(&r1), None, None).await.unwrap();
    let retried = i.refresh(&w.agent, Some(&r1), Some("mcp:tools"), None).await.unwrap();
    assert_eq!(retried.refresh_token, lost.refresh_token, "the successor given the first time");
    assert_ne!(retried.access_token, lost.access_token, "with an access token of its own");
    assert_eq!(retried.scope, "mcp:tools", "a retry may narrow like any refresh");
    let r2 = retried.refresh_token.unwrap();
    assert_ne!(r2, r1);
    assert!(w.active(&r2).await && w.active(&retried.access_token).await, "the family lives on");

    // The successor in use, the old token is no retry any more: reuse.
    let next = i.refresh(&w.agent, Some(&r2), None, None).await.unwrap();
    let reuse = i.refresh(&w.agent, Some(&r1), None, None).await.unwrap_err();
    assert_eq!(reuse.code, ErrorCode::InvalidGrant);
    assert!(!w.active(next.refresh_token.as_deref().unwrap()).await, "reuse revoked the family");
}

#[tokio::test]
async fn a_retry_by_another_app_after_the_overlap_or_with_none_revokes_the_family() {
    // Another app holding the token (a thief) within the overlap.
    let w = world().await;
    let other = clients::register(w.issuer.store(), app("Other agent", true), 1).await.unwrap().client;
    let r1 = w.exchange(&w.code("offline_access mcp:tools").await).await.unwrap().refresh_token.unwrap();
    let r2 = w.issuer.refresh(&w.agent, Some(&r1), None, None).await.unwrap().refresh_token.unwrap();
    let stolen = w.issuer.refresh(&other, Some(&r1), None, None).await.unwrap_err();
    assert_eq!(stolen.code, ErrorCode::InvalidGrant);
    assert!(!w.active(&r2).await, "the family is revoked");

    // The app itself, once the overlap is over.
    let w = world_with(Settings { refresh_overlap: 1, ..Settings::new("http://127.0.0.1:8080") }).await;
    let r1 = w.exchange(&w.code("offline_access mcp:tools").await).await.unwrap().refresh_token.unwrap();
    let r2 = w.issuer.refresh(&w.agent, Some(&r1), None, None).await.unwrap().refresh_token.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        w.issuer.refresh(&w.agent, Some(&r1), None, None).await.unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    assert!(!w.active(&r2).await);

    // No overlap at all: the first retry is reuse.
    let w = world_with(Settings { refresh_overlap: 0, ..Settings::new("http://127.0.0.1:8080") }).await;
    let r1 = w.exchange(&w.code("offline_access mcp:tools").await).await.unwrap().refresh_token.unwrap();
    let r2 = w.issuer.refresh(&w.agent, Some(&r1), None, None).await.unwrap().refresh_token.unwrap();
    assert_eq!(
        w.issuer.refresh(&w.agent, Some(&r1), None, None).await.unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    assert!(!w.active(&r2).await);
}

#[tokio::test]
async fn a_third_party_app_cannot_watch_another_apps_refresh_token() {
    let w = world().await;
    let r1 = w.exchange(&w.code("offline_access mcp:tools").await).await.unwrap().refresh_token.unwrap();
    let spy = clients::register(w.issuer.store(), NewClient { public: false, ..app("Spy", true) }, 1)
        .await
        .unwrap();
    let seen = w.issuer.introspect_for(&spy.client, &r1).await.unwrap();
    assert_eq!(seen, serde_json::json!({ "active": false }), "a stranger learns nothing of it");
    let own = w.issuer.introspect_for(&w.agent, &r1).await.unwrap();
    assert_eq!(own["active"], true, "its own app sees it");
    let operator = w.issuer.introspect_for(&w.machine.client, &r1).await.unwrap();
    assert_eq!(operator["active"], true, "a first-party app (a resource server of the operator's) sees it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_of_one_token_leave_exactly_one_live_successor() {
    let w = world().await;
    let r1 = w.exchange(&w.code("offline_access mcp:tools").await).await.unwrap().refresh_token.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (issuer, agent, r1) = (w.issuer.clone(), w.agent.clone(), r1.clone());
            tokio::spawn(async move { issuer.refresh(&agent, Some(&r1), None, None).await })
        })
        .collect();
    let mut successors = std::collections::BTreeSet::new();
    for task in tasks {
        let answer = task.await.unwrap().expect("every racer gets an answer");
        successors.insert(answer.refresh_token.unwrap());
    }
    assert_eq!(successors.len(), 1, "one successor for all: {successors:?}");
    let r2 = successors.pop_first().unwrap();
    assert!(w.active(&r2).await);
    assert!(w.issuer.refresh(&w.agent, Some(&r2), None, None).await.is_ok(), "and it works");
}

#[tokio::test]
async fn openid_requests_get_refresh_tokens_only_with_offline_access() {
    let w = world().await;
    let tokens = w.exchange(&w.code("openid mcp:tools").await).await.unwrap();
    assert!(tokens.refresh_token.is_none());
}

#[tokio::test]
async fn disconnecting_an_app_revokes_its_tokens_at_once() {
    let w = world().await;
    let i = &w.issuer;
    i.record_consent(&w.alice, &w.agent.client_id, MCP, &["openid".into(), "mcp:tools".into()])
        .await
        .unwrap();
    let tokens = w.exchange(&w.code("openid offline_access mcp:tools").await).await.unwrap();
    let refresh = tokens.refresh_token.unwrap();
    let apps = i.connected_apps(&w.alice).await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].client.name, "SmartMail AI");
    // Codes issued before and not exchanged yet: one this instance keeps in
    // memory, one it does not (as if another instance had issued it).
    let kept = w.kept_code(&w.agent, "openid mcp:tools").await;
    let stored = w.code("openid mcp:tools").await;

    assert!(i.disconnect(&w.alice, &w.agent.client_id).await.unwrap());
    for code in [kept, stored] {
        assert_eq!(w.exchange(&code).await.unwrap_err(), ErrorCode::InvalidGrant, "a code from before");
    }
    assert!(i.connected_apps(&w.alice).await.unwrap().is_empty());
    assert_eq!(
        i.refresh(&w.agent, Some(&refresh), None, None).await.unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    assert!(!w.active(&tokens.access_token).await);
    assert!(i.validate_access_token(&tokens.access_token).await.is_err(), "userinfo refuses it too");
    // Consent is asked again from scratch.
    let asked = i.consent_needed(&w.agent, &w.alice, MCP, &["mcp:tools".into()], false).await.unwrap();
    assert_eq!(asked.unwrap(), ["mcp:tools"]);
}

#[tokio::test]
async fn consent_asks_only_for_what_was_not_granted() {
    let w = world().await;
    let i = &w.issuer;
    let scopes = |s: &str| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let ask = |client: Client, resource: &'static str, wanted: &'static str, force: bool| {
        let (i, alice) = (i.clone(), w.alice.clone());
        async move { i.consent_needed(&client, &alice, resource, &scopes(wanted), force).await.unwrap() }
    };
    let agent = || w.agent.clone();
    assert_eq!(ask(agent(), MCP, "openid mcp:tools", false).await.unwrap(), scopes("openid mcp:tools"));
    assert_eq!(
        ask(agent(), MCP, "", false).await.unwrap(),
        Vec::<String>::new(),
        "asked once even for nothing"
    );
    i.record_consent(&w.alice, &w.agent.client_id, MCP, &scopes("openid mcp:tools")).await.unwrap();
    assert_eq!(ask(agent(), MCP, "mcp:tools openid", false).await, None);
    assert_eq!(
        ask(agent(), MCP, "mcp:tools openid", true).await.unwrap(),
        scopes("mcp:tools openid"),
        "prompt=consent"
    );
    assert_eq!(ask(agent(), MCP, "openid email", false).await.unwrap(), ["email"]);
    // Per resource: a grant for the MCP server is not a grant for no resource.
    assert_eq!(ask(agent(), "", "openid", false).await.unwrap(), ["openid"]);
    i.record_consent(&w.alice, &w.agent.client_id, MCP, &scopes("email")).await.unwrap();
    assert_eq!(ask(agent(), MCP, "openid email mcp:tools", false).await, None);
    // A first-party app never asks.
    let own = clients::register(i.store(), app("Own app", false), 1).await.unwrap().client;
    assert_eq!(ask(own, MCP, "openid mcp:tools", true).await, None);
}

#[tokio::test]
async fn client_authentication_rules() {
    let w = world().await;
    let i = &w.issuer;
    let id = w.machine.client.client_id.clone();
    let secret = w.machine.secret.clone().unwrap();
    let creds =
        |basic: Option<(&str, &str)>, form_id: Option<&str>, form_secret: Option<&str>| ClientCredentials {
            basic: basic.map(|(a, b)| (a.to_owned(), b.to_owned())),
            client_id: form_id.map(str::to_owned),
            client_secret: form_secret.map(str::to_owned),
            ..Default::default()
        };
    // A well-formed assertion from an app that does not use private_key_jwt.
    let key = agentgate_issuer::keys::SigningKey::generate(agentgate_issuer::keys::Alg::Es256).0;
    let now = agentgate_issuer::now();
    let claims = serde_json::json!({"iss": id, "sub": id, "aud": "http://127.0.0.1:8080", "jti": "j", "exp": now + 60});
    let jwt = key.sign_jwt("JWT", &claims);
    let asserted = |kind: &str, secret: Option<&str>| ClientCredentials {
        client_assertion_type: Some(kind.to_owned()),
        client_assertion: Some(jwt.clone()),
        ..creds(None, None, secret)
    };
    let bearer_type = agentgate_issuer::client_assertions::ASSERTION_TYPE;
    let ok = [creds(Some((&id, &secret)), None, None), creds(None, Some(&id), Some(&secret))];
    for c in &ok {
        assert_eq!(i.authenticate_client(c).await.unwrap().client_id, id);
    }
    let public = creds(None, Some(&w.agent.client_id), None);
    assert_eq!(i.authenticate_client(&public).await.unwrap().client_id, w.agent.client_id);
    let refused = [
        (creds(Some((&id, "wrong")), None, None), ErrorCode::InvalidClient),
        (creds(None, Some(&id), None), ErrorCode::InvalidClient),
        (creds(None, Some(&id), Some("")), ErrorCode::InvalidClient),
        (creds(Some((&id, &secret)), None, Some(&secret)), ErrorCode::InvalidRequest),
        (creds(Some((&id, &secret)), Some(&w.agent.client_id), None), ErrorCode::InvalidRequest),
        (creds(None, Some("nobody"), None), ErrorCode::InvalidClient),
        (creds(None, None, None), ErrorCode::InvalidClient),
        (creds(None, Some(&w.agent.client_id), Some("anything")), ErrorCode::InvalidClient),
        (asserted(bearer_type, None), ErrorCode::InvalidClient),
        (asserted("urn:example:other", None), ErrorCode::InvalidClient),
        (asserted(bearer_type, Some(&secret)), ErrorCode::InvalidRequest),
        (
            ClientCredentials { client_assertion: None, ..asserted(bearer_type, None) },
            ErrorCode::InvalidRequest,
        ),
    ];
    // The code grant reads the client together with the code: the same rules
    // apply there, and a refused client consumes nothing.
    let code = w.code("mcp:tools").await;
    for (n, (c, error)) in refused.iter().enumerate() {
        assert_eq!(i.authenticate_client(c).await.unwrap_err().code, *error, "case {n}");
        assert_eq!(
            i.exchange_code(c, exchange_of(&code)).await.unwrap_err().code,
            *error,
            "exchange, case {n}"
        );
    }
    assert!(i.exchange_code(&public, exchange_of(&code)).await.is_ok());
}

#[tokio::test]
async fn client_credentials_for_machines_only() {
    let w = world().await;
    let i = &w.issuer;
    let machine = &w.machine.client;
    let tokens = i.client_credentials(machine, Some("mcp:tools"), Some(MCP)).await.unwrap();
    let at = claims(&tokens.access_token);
    assert_eq!((at["sub"].as_str(), at["aud"].as_str()), (Some(machine.client_id.as_str()), Some(MCP)));
    assert!(tokens.refresh_token.is_none() && tokens.id_token.is_none());
    assert!(w.active(&tokens.access_token).await);
    assert_eq!(
        i.client_credentials(machine, Some("openid"), Some(MCP)).await.unwrap_err().code,
        ErrorCode::InvalidScope
    );
    assert_eq!(
        i.client_credentials(machine, None, Some("https://elsewhere.example/")).await.unwrap_err().code,
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        i.client_credentials(&w.agent, None, Some(MCP)).await.unwrap_err().code,
        ErrorCode::UnauthorizedClient
    );

    // Revocation of one access token (RFC 7009), only by its own client.
    i.revoke(&w.agent, &tokens.access_token).await.unwrap();
    assert!(w.active(&tokens.access_token).await, "another client cannot revoke it");
    i.revoke(machine, &tokens.access_token).await.unwrap();
    assert!(!w.active(&tokens.access_token).await);
}

#[tokio::test]
async fn only_our_access_tokens_pass_validation() {
    let w = world().await;
    let tokens = w.exchange(&w.code("openid mcp:tools").await).await.unwrap();
    let i = &w.issuer;
    assert!(i.validate_access_token(&tokens.access_token).await.is_ok());
    let id_token = tokens.id_token.unwrap();
    assert!(i.validate_access_token(&id_token).await.is_err(), "an ID token is not an access token");
    assert!(!w.active(&id_token).await);
    let mut parts: Vec<String> = tokens.access_token.split('.').map(str::to_owned).collect();
    parts[1] = id_token.split('.').nth(1).unwrap().to_owned();
    assert!(i.validate_access_token(&parts.join(".")).await.is_err(), "payload swap");
    assert!(i.validate_access_token("garbage").await.is_err());
    assert_eq!(i.introspect("garbage").await.unwrap(), serde_json::json!({"active": false}));
}

#[tokio::test]
async fn a_token_minted_on_behalf_of_a_person_lives_and_dies_with_the_agents_grant() {
    let w = world().await;
    let i = &w.issuer;
    i.record_consent(
        &w.alice,
        &w.agent.client_id,
        MCP,
        &["openid".into(), "profile".into(), "mcp:tools".into()],
    )
    .await
    .unwrap();
    let tokens = w.exchange(&w.code("openid profile mcp:tools").await).await.unwrap();
    let agent = claims(&tokens.access_token);
    let person: serde_json::Map<String, Value> = agent.as_object().unwrap().clone();
    let scopes: Vec<String> = vec!["mcp:tools".into()];
    let expires_at = agent["exp"].as_i64().unwrap() - 10;
    let minted = i.mint_on_behalf(&OnBehalf {
        subject: agent["sub"].as_str().unwrap(),
        client_id: &w.agent.client_id,
        scopes: &scopes,
        jti: agent["jti"].as_str(),
        claims: &person,
        audience: "http://127.0.0.1:9000/mcp",
        expires_at,
    });
    let at = claims(&minted);
    assert_eq!(at["aud"], "http://127.0.0.1:9000/mcp");
    assert_eq!(
        (at["sub"].clone(), at["act"]["sub"].clone()),
        (agent["sub"].clone(), w.agent.client_id.clone().into())
    );
    assert_eq!((at["exp"].as_i64(), at["preferred_username"].as_str()), (Some(expires_at), Some("alice")));
    assert_eq!(at["auth_time"], agent["auth_time"]);
    assert!(at.get("nonce").is_none() && at.get("azp").is_none(), "nothing but the person's claims: {at}");
    assert_ne!(at["jti"], agent["jti"], "a token of its own");
    assert!(i.validate_access_token(&minted).await.is_ok());
    assert!(w.active(&minted).await);

    assert!(i.disconnect(&w.alice, &w.agent.client_id).await.unwrap());
    assert!(
        !w.active(&minted).await,
        "the person took the agent's access back: the upstream's token goes too"
    );
    assert!(i.validate_access_token(&minted).await.is_err());
}

#[tokio::test]
async fn a_restart_keeps_grants_refresh_tokens_and_keys() {
    let db = TempDb::new();
    let (kek, kek_text) = KeyEncryptionKey::generate();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let alice = common::alice_and_whoami(&store).await;
    let agent = clients::register(&store, app("SmartMail AI", true), 1).await.unwrap().client;
    let issuer = Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await.unwrap();
    issuer.record_consent(&alice, &agent.client_id, MCP, &["mcp:tools".into()]).await.unwrap();
    let code = issuer
        .issue_code(CodeRequest {
            client_id: agent.client_id.clone(),
            user_id: alice.clone(),
            redirect_uri: REDIRECT.into(),
            code_challenge: CHALLENGE.into(),
            resource: MCP.into(),
            scopes: vec!["mcp:tools".into()],
            nonce: None,
            auth_time: 5,
        })
        .await
        .unwrap();
    let tokens = issuer.exchange_code(&public(&agent), exchange_of(&code)).await.unwrap();
    let kid = issuer.keys().active().kid().to_owned();
    drop(issuer);

    let store = SqliteStore::open(&db.url()).await.unwrap();
    let kek = KeyEncryptionKey::from_base64(&kek_text).unwrap();
    let issuer = Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await.unwrap();
    assert_eq!(issuer.keys().active().kid(), kid);
    assert!(issuer.validate_access_token(&tokens.access_token).await.is_ok());
    assert_eq!(issuer.consent_needed(&agent, &alice, MCP, &["mcp:tools".into()], false).await.unwrap(), None);
    let refreshed = issuer.refresh(&agent, tokens.refresh_token.as_deref(), None, None).await.unwrap();
    assert_eq!(refreshed.scope, "mcp:tools");
}

#[tokio::test]
async fn an_app_registered_for_rs256_gets_rs256_id_tokens_and_es256_access_tokens() {
    use agentgate_issuer::keys::Alg;
    let w = world().await;
    let legacy = clients::register(
        w.issuer.store(),
        NewClient { id_token_alg: Alg::Rs256, ..app("Legacy OIDC app", true) },
        1,
    )
    .await
    .unwrap()
    .client;
    assert!(w.issuer.keys().active_for(Alg::Rs256).is_none(), "no RSA key before one is needed");
    let code = w
        .issuer
        .issue_code(CodeRequest {
            client_id: legacy.client_id.clone(),
            user_id: w.alice.clone(),
            redirect_uri: REDIRECT.into(),
            code_challenge: CHALLENGE.into(),
            resource: MCP.into(),
            scopes: vec!["openid".into(), "offline_access".into(), "mcp:tools".into()],
            nonce: None,
            auth_time: 5,
        })
        .await
        .unwrap();
    let tokens = w
        .issuer
        .exchange_code(&public(&legacy), CodeExchange { resource: Some(MCP), ..exchange_of(&code) })
        .await
        .unwrap();
    let id_token = tokens.id_token.unwrap();
    assert_eq!(header(&id_token)["alg"], "RS256");
    assert_eq!(header(&tokens.access_token)["alg"], "ES256", "access tokens stay ES256");

    // The ID token verifies with the published RSA key, as the app would check it.
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(w.issuer.keys().jwks().clone()).unwrap();
    let jwk = jwks.find(header(&id_token)["kid"].as_str().unwrap()).expect("the RSA key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[legacy.client_id.as_str()]);
    validation.set_issuer(&["http://127.0.0.1:8080"]);
    let decoded = jsonwebtoken::decode::<Value>(
        &id_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(decoded.claims["sub"], w.alice.as_str());

    // Refreshing uses the same key; other apps keep ES256.
    let refreshed = w.issuer.refresh(&legacy, tokens.refresh_token.as_deref(), None, None).await.unwrap();
    assert_eq!(header(refreshed.id_token.as_deref().unwrap())["kid"], header(&id_token)["kid"]);
    let other = w.exchange(&w.code("openid mcp:tools").await).await.unwrap();
    assert_eq!(header(other.id_token.as_deref().unwrap())["alg"], "ES256");
}

#[tokio::test]
async fn a_redemption_that_fails_halfway_leaves_nothing_behind() {
    use agentgate_issuer::store::{CodeRedemption, Redemption, RefreshToken, TokenFamily};
    let w = world().await;
    let store = w.issuer.store();
    // A first exchange stores a refresh token; a second redemption that tries to
    // store the very same token hash fails on the table's key, after its code was
    // already marked redeemed inside the transaction.
    let first = w.exchange(&w.code("openid offline_access mcp:tools").await).await.unwrap();
    let taken = agentgate_issuer::hash_secret(first.refresh_token.as_deref().unwrap());
    let code = w.code("openid offline_access mcp:tools").await;
    let code_hash = agentgate_issuer::hash_secret(&code);
    let family_of = |id: &str| TokenFamily {
        id: id.into(),
        client_id: w.agent.client_id.clone(),
        user_id: w.alice.clone(),
        resource: MCP.into(),
        scopes: vec!["openid".into()],
        auth_time: 5,
        created_at: 10,
        revoked_at: None,
    };
    let clash = RefreshToken {
        token_hash: taken,
        family_id: "f-clash".into(),
        created_at: 10,
        expires_at: 99,
        rotated_at: None,
    };
    let version = store.client(&w.agent.client_id).await.unwrap().unwrap().version;
    let attempt = |family: &'static str, refresh: Option<RefreshToken>, client_version: Option<i64>| {
        let (family, code_hash) = (family_of(family), code_hash.clone());
        async move {
            let redemption = CodeRedemption {
                code_hash: &code_hash,
                now: 10,
                family: &family,
                refresh: refresh.as_ref(),
                client_version,
            };
            store.redeem_code(&redemption).await
        }
    };
    assert!(attempt("f-clash", Some(clash), Some(version)).await.is_err());

    // Rolled back: the code is not redeemed, the family does not exist, and the
    // connection is usable at once (no transaction left open on it).
    let stored = store.code(&code_hash).await.unwrap().unwrap();
    assert_eq!((stored.redeemed_at, stored.family_id), (None, None));
    assert!(store.family("f-clash").await.unwrap().is_none());

    // The app as checked at another version (changed since): nothing is redeemed.
    assert_eq!(attempt("f-old", None, Some(version + 1)).await.unwrap(), Redemption::Stale);
    assert_eq!(store.code(&code_hash).await.unwrap().unwrap().redeemed_at, None);
    assert!(store.family("f-old").await.unwrap().is_none());

    let won = attempt("f-ok", None, Some(version)).await.unwrap();
    assert!(matches!(&won, Redemption::Won(user) if user.id == w.alice), "{won:?}");
    let again = attempt("f-late", None, Some(version)).await.unwrap();
    assert_eq!(again, Redemption::AlreadyUsed("f-ok".into()));
}

// A code the issuer kept when it issued it is redeemed in one trip to the store,
// checked against the app as read then. The store redeems it only while the app
// is unchanged and the person exists; otherwise the exchange reads everything
// afresh. None of the rules may loosen on the way.

#[tokio::test]
async fn a_kept_code_is_exchanged_once_and_a_replay_revokes_its_tokens() {
    let w = world().await;
    let code = w.kept_code(&w.agent, "openid offline_access mcp:tools").await;
    let tokens = w.exchange(&code).await.unwrap();
    assert!(w.active(&tokens.access_token).await);
    assert_eq!(w.exchange(&code).await.unwrap_err(), ErrorCode::InvalidGrant);
    assert!(!w.active(&tokens.access_token).await, "the replay revoked what the code gave");
    let refreshed = w.issuer.refresh(&w.agent, tokens.refresh_token.as_deref(), None, None).await;
    assert_eq!(refreshed.unwrap_err().code, ErrorCode::InvalidGrant);

    // A wrong verifier on a kept code changes nothing: the right one still works.
    let code = w.kept_code(&w.agent, "openid mcp:tools").await;
    let wrong = CodeExchange { code_verifier: Some("x".repeat(43).leak()), ..exchange_of(&code) };
    assert_eq!(
        w.issuer.exchange_code(&public(&w.agent), wrong).await.unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    assert!(w.exchange(&code).await.is_ok());
}

#[tokio::test]
async fn a_kept_code_is_not_redeemed_once_its_app_or_its_person_is_gone() {
    let w = world().await;
    let code = w.kept_code(&w.agent, "openid mcp:tools").await;
    clients::remove(w.issuer.store(), &w.agent.client_id).await.unwrap();
    assert_eq!(w.exchange(&code).await.unwrap_err(), ErrorCode::InvalidClient);
    // Removing the app removed its codes with it.
    assert_eq!(w.issuer.store().code(&agentgate_issuer::hash_secret(&code)).await.unwrap(), None);

    let w = world().await;
    let code = w.kept_code(&w.agent, "openid mcp:tools").await;
    assert!(w.issuer.store().delete_user(&w.alice, agentgate_issuer::now()).await.unwrap());
    // Removing the person removed their codes with them.
    assert_eq!(w.exchange(&code).await.unwrap_err(), ErrorCode::InvalidGrant);
    assert_eq!(w.issuer.store().code(&agentgate_issuer::hash_secret(&code)).await.unwrap(), None);
}

#[tokio::test]
async fn a_kept_code_of_a_changed_app_follows_the_app_as_it_is_now() {
    let w = world().await;
    let mail = clients::register(w.issuer.store(), NewClient { public: false, ..app("Mail", true) }, 1)
        .await
        .unwrap();
    let with_secret = |secret: &str| ClientCredentials {
        client_id: Some(mail.client.client_id.clone()),
        client_secret: Some(secret.to_owned()),
        ..Default::default()
    };
    let old_secret = mail.secret.clone().unwrap();
    let code = w.kept_code(&mail.client, "openid mcp:tools").await;

    // The secret is changed after the code was issued: the old one no longer works
    // (the kept copy of the app still had it), and the code is still unused.
    let new_secret =
        agentgate_issuer::management::apps::rotate_secret(w.issuer.store(), &mail.client.client_id)
            .await
            .unwrap();
    let refused = w.issuer.exchange_code(&with_secret(&old_secret), exchange_of(&code)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidClient);
    assert!(
        w.issuer.exchange_code(&with_secret(&new_secret.client_secret), exchange_of(&code)).await.is_ok()
    );

    // Renamed after the code was issued: the exchange reads it afresh and goes through.
    let code = w.kept_code(&w.agent, "openid mcp:tools").await;
    let mut renamed = w.issuer.store().client(&w.agent.client_id).await.unwrap().unwrap();
    renamed.name = "SmartMail AI 2".into();
    assert!(w.issuer.store().update_client(&renamed).await.unwrap().is_some());
    assert!(w.exchange(&code).await.is_ok());
}

#[tokio::test]
async fn two_concurrent_redemptions_of_one_kept_code_exactly_one_wins() {
    for _ in 0..5 {
        let w = world().await;
        let code = w.kept_code(&w.agent, "openid mcp:tools").await;
        assert_eq!(concurrent_winners(&w, &code).await, 1);
    }
}

#[tokio::test]
async fn another_app_presenting_a_kept_code_gets_the_usual_answer_and_the_code_stays() {
    let w = world().await;
    let other = clients::register(w.issuer.store(), app("Other agent", true), 1).await.unwrap().client;
    let code = w.kept_code(&w.agent, "openid mcp:tools").await;
    let refused = w.issuer.exchange_code(&public(&other), exchange_of(&code)).await.unwrap_err();
    assert_eq!(
        (refused.code, refused.description.as_str()),
        (ErrorCode::InvalidGrant, "authorization code was issued to another client")
    );
    assert!(w.exchange(&code).await.is_ok(), "the code is still its app's");
}
