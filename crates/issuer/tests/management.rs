//! The management API: its plain functions on a real SQLite file (every
//! refusal names its field and stores nothing), then its HTTP face on a real
//! socket, where every operation its OpenAPI document lists refuses a caller
//! without a valid `agentgate:admin` token.

mod common;

use std::sync::Arc;

use agentgate_issuer::clients::{self, registered_by};
use agentgate_issuer::management::apps::{self, AppChanges, AppSpec};
use agentgate_issuer::management::people::{self, PasswordSpec, UserPatch, UserSpec};
use agentgate_issuer::management::resources::{self, ResourceChanges, ResourceSpec, ScopeView};
use agentgate_issuer::management::{ApiAuthError, ManagementError, api_resource, grants};
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{Session, SqliteStore, Store};
use agentgate_issuer::users;
use agentgate_issuer::{Issuer, Settings};
use common::{MCP, TempDb};
use serde_json::Value;

const CALLBACK: &str = "https://app.example/callback";
const LOOPBACK: &str = "http://127.0.0.1:33418/callback";

struct World {
    _db: TempDb,
    issuer: Issuer<SqliteStore>,
    kek: String,
    alice: String,
}

async fn world() -> World {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let alice = common::alice_and_whoami(&store).await;
    let (kek, text) = KeyEncryptionKey::generate();
    let issuer = Issuer::open(store, kek, Settings::new("http://127.0.0.1:8080")).await.unwrap();
    World { _db: db, issuer, kek: text, alice }
}

impl World {
    fn store(&self) -> &SqliteStore {
        self.issuer.store()
    }

    async fn app_count(&self) -> usize {
        self.store().clients().await.unwrap().len()
    }
}

/// A third-party web app a marketplace lists.
fn listed_app() -> AppSpec {
    serde_json::from_value(serde_json::json!({
        "name": "Listed agent",
        "third_party": true,
        "redirect_uris": [CALLBACK],
        "scopes": ["openid", "mcp:tools"],
    }))
    .unwrap()
}

/// The field an `Invalid` refusal names, or a panic.
fn invalid_field<T: std::fmt::Debug>(result: Result<T, ManagementError>) -> String {
    match result {
        Err(ManagementError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn is_conflict<T>(result: &Result<T, ManagementError>) -> bool {
    matches!(result, Err(ManagementError::Conflict { .. }))
}

#[tokio::test]
async fn a_refused_app_names_its_field_and_stores_nothing() {
    let w = world().await;
    let before = w.app_count().await;
    type Break = fn(&mut AppSpec);
    let cases: [(Break, &str); 6] = [
        (|a| a.redirect_uris.push("http://app.example/cb".into()), "redirect_uris[1]"),
        (
            |a| a.post_logout_redirect_uris = vec!["javascript:alert(1)".into()],
            "post_logout_redirect_uris[0]",
        ),
        (|a| a.scopes = Some(vec!["openid".into(), "agentgate:admin".into()]), "scopes[1]"),
        (|a| a.name = " ".into(), "name"),
        (|a| a.logo_uri = Some("http://app.example/logo.png".into()), "logo_uri"),
        (|a| a.machine = true, "machine"),
    ];
    for (change, field) in cases {
        let mut spec = listed_app();
        change(&mut spec);
        assert_eq!(invalid_field(apps::create_app(w.store(), spec, 1).await), field);
    }
    assert_eq!(w.app_count().await, before, "nothing stored");

    let made = apps::create_app(w.store(), listed_app(), 1).await.unwrap();
    assert_eq!(w.app_count().await, before + 1);
    assert!(made.app.third_party && !made.app.public && made.app.registration == registered_by::ADMIN);
    let stored = clients::find(w.store(), &made.app.client_id).await.unwrap();
    assert!(clients::secret_matches(&stored, made.client_secret.as_deref().unwrap()));
}

#[tokio::test]
async fn a_change_is_checked_whole_and_keeps_what_it_may_not_touch() {
    let w = world().await;
    let made = apps::create_app(w.store(), listed_app(), 1).await.unwrap();
    let id = made.app.client_id.clone();
    let before = clients::find(w.store(), &id).await.unwrap();

    // A good name with a bad redirect URI: neither is stored.
    let bad = AppChanges {
        name: Some("Renamed".into()),
        redirect_uris: Some(vec![CALLBACK.into(), "https://*.example/cb".into()]),
        ..Default::default()
    };
    assert_eq!(invalid_field(apps::change_app(w.store(), &id, bad, "").await), "redirect_uris[1]");
    assert_eq!(clients::find(w.store(), &id).await.unwrap(), before);

    let good = AppChanges {
        name: Some("Renamed".into()),
        scopes: Some(vec!["openid".into()]),
        logo_uri: Some(Some("https://app.example/logo.png".into())),
        ..Default::default()
    };
    let changed = apps::change_app(w.store(), &id, good, "").await.unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.scopes.as_slice()),
        ("Renamed", ["openid".to_owned()].as_slice())
    );
    let stored = clients::find(w.store(), &id).await.unwrap();
    assert_eq!(stored.logo_uri.as_deref(), Some("https://app.example/logo.png"));
    assert!(clients::secret_matches(&stored, made.client_secret.as_deref().unwrap()), "the secret stays");
    assert_eq!((stored.created_at, &stored.grant_types), (before.created_at, &before.grant_types));

    // null clears an optional URL; a missing field leaves it.
    let cleared = AppChanges { logo_uri: Some(None), ..Default::default() };
    assert_eq!(apps::change_app(w.store(), &id, cleared, "").await.unwrap().logo_uri, None);
    // An app that registered itself is never made first-party.
    let mut dynamic = clients::find(w.store(), &id).await.unwrap();
    dynamic.registration = registered_by::DYNAMIC.into();
    w.store().update_client(&dynamic).await.unwrap();
    let trusted = AppChanges { third_party: Some(false), ..Default::default() };
    assert!(is_conflict(&apps::change_app(w.store(), &id, trusted, "").await));
    assert!(clients::find(w.store(), &id).await.unwrap().third_party);
    let missing = apps::change_app(w.store(), "nope", AppChanges::default(), "").await;
    assert!(matches!(missing, Err(ManagementError::NotFound(_))), "{missing:?}");
}

#[tokio::test]
async fn a_rotated_secret_retires_the_old_one_and_public_apps_have_none() {
    let w = world().await;
    let made = apps::create_app(w.store(), listed_app(), 1).await.unwrap();
    let id = made.app.client_id;
    let new = apps::rotate_secret(w.store(), &id).await.unwrap();
    let stored = clients::find(w.store(), &id).await.unwrap();
    assert!(clients::secret_matches(&stored, &new.client_secret));
    assert!(!clients::secret_matches(&stored, made.client_secret.as_deref().unwrap()));

    let public = AppSpec { public: true, ..listed_app() };
    let public = apps::create_app(w.store(), public, 1).await.unwrap();
    assert!(public.client_secret.is_none());
    assert!(is_conflict(&apps::rotate_secret(w.store(), &public.app.client_id).await));
    assert_eq!(clients::find(w.store(), &public.app.client_id).await.unwrap().secret_hash, None);
}

#[tokio::test]
async fn an_app_known_by_its_document_is_read_and_removed_but_not_changed() {
    let w = world().await;
    let public = AppSpec { public: true, ..listed_app() };
    let made = apps::create_app(w.store(), public, 1).await.unwrap().app;
    let mut documented = clients::find(w.store(), &made.client_id).await.unwrap();
    documented.client_id = "https://agent.example/client.json".into();
    documented.registration = registered_by::DOCUMENT.into();
    w.store().insert_client(&documented).await.unwrap();
    let id = documented.client_id.clone();
    let documented = clients::find(w.store(), &id).await.unwrap();

    let rename = AppChanges { name: Some("Mine now".into()), ..Default::default() };
    assert!(is_conflict(&apps::change_app(w.store(), &id, rename, "").await));
    assert!(is_conflict(&apps::rotate_secret(w.store(), &id).await));
    assert_eq!(clients::find(w.store(), &id).await.unwrap(), documented, "unchanged");
    assert_eq!(apps::app(w.store(), &id).await.unwrap().registration, "document");
    apps::delete_app(w.store(), &id, "").await.unwrap();
    assert!(matches!(apps::delete_app(w.store(), &id, "").await, Err(ManagementError::NotFound(_))));
}

#[tokio::test]
async fn people_are_checked_and_a_taken_login_changes_nothing() {
    let w = world().await;
    let bob = UserSpec {
        username: "Bob".into(),
        email: Some("Bob@Example.com".into()),
        name: Some("Bob".into()),
        password: "correct horse".into(),
    };
    let bob = people::create_user(w.store(), bob, 1).await.unwrap();
    assert_eq!((bob.username.as_str(), bob.email.as_deref()), ("bob", Some("bob@example.com")));

    let weak = UserSpec { username: "carol".into(), email: None, name: None, password: "short".into() };
    assert_eq!(invalid_field(people::create_user(w.store(), weak, 1).await), "password");
    let taken =
        UserSpec { username: "alice".into(), email: None, name: None, password: "long enough".into() };
    assert!(is_conflict(&people::create_user(w.store(), taken, 1).await));
    assert_eq!(w.store().users().await.unwrap().len(), 2, "alice and bob only");

    // Taking alice's username, or an invalid email, changes nothing at all.
    let steal = UserPatch { username: Some("ALICE".into()), name: Some(None), ..Default::default() };
    assert!(is_conflict(&people::change_user(w.store(), &bob.id, steal).await));
    let bad_email = UserPatch { email: Some(Some("not-an-email".into())), ..Default::default() };
    assert_eq!(invalid_field(people::change_user(w.store(), &bob.id, bad_email).await), "email");
    assert_eq!(people::user(w.store(), &bob.id).await.unwrap(), bob);

    let rename = UserPatch { username: Some("robert".into()), email: Some(None), name: Some(None) };
    let robert = people::change_user(w.store(), &bob.id, rename).await.unwrap();
    assert_eq!((robert.username.as_str(), robert.email.clone(), robert.name.clone()), ("robert", None, None));

    let session =
        Session { id_hash: "h".into(), user_id: bob.id.clone(), auth_time: 1, expires_at: i64::MAX };
    w.store().insert_session(&session).await.unwrap();
    let weak = PasswordSpec { password: "1234567".into() };
    assert_eq!(invalid_field(people::set_password(w.store(), &bob.id, weak).await), "password");
    let new = PasswordSpec { password: "battery staple".into() };
    people::set_password(w.store(), &bob.id, new).await.unwrap();
    assert!(users::sign_in(w.store(), "robert", "battery staple").await.unwrap().is_ok());
    assert!(users::sign_in(w.store(), "robert", "correct horse").await.unwrap().is_err());
    assert_eq!(w.store().session("h").await.unwrap(), None, "a new password ends the browser sessions");

    people::delete_user(w.store(), &bob.id).await.unwrap();
    assert!(matches!(people::user(w.store(), &bob.id).await, Err(ManagementError::NotFound(_))));
}

#[tokio::test]
async fn resources_are_checked_and_agentgates_own_is_not_the_apis() {
    let w = world().await;
    let scope = |name: &str| ScopeView { name: name.into(), description: format!("Use {name}") };
    let calendar = ResourceSpec {
        uri: "https://calendar.example/mcp".into(),
        name: "Calendar".into(),
        scopes: vec![scope("calendar:read")],
        translations: serde_json::from_value(serde_json::json!({
            "es": {"name": "Calendario", "scopes": {"calendar:read": "Ver tu calendario"}},
        }))
        .unwrap(),
    };
    let made = resources::create_resource(w.store(), w.issuer.settings(), calendar.clone(), 1).await.unwrap();
    assert_eq!(made.scopes, [scope("calendar:read")]);
    assert_eq!(made.translations, calendar.translations, "kept as given");
    assert!(is_conflict(&resources::create_resource(w.store(), w.issuer.settings(), calendar, 1).await));

    let twice = ResourceChanges { scopes: Some(vec![scope("a"), scope("a")]), ..Default::default() };
    let reserved = ResourceChanges { scopes: Some(vec![scope("agentgate:admin")]), ..Default::default() };
    let long = ScopeView { name: "b".into(), description: "x".repeat(201) };
    let too_long = ResourceChanges { scopes: Some(vec![long]), ..Default::default() };
    for changes in [twice, reserved, too_long] {
        let result = resources::change_resource(w.store(), w.issuer.settings(), &made.uri, changes).await;
        assert_eq!(invalid_field(result), "scopes");
    }
    // Translations only for the pages' languages, for defined scopes, that fit a page.
    for texts in [
        serde_json::json!({"fr": {"name": "Calendrier"}}),
        serde_json::json!({"es": {"scopes": {"calendar:write": "Cambiar tu calendario"}}}),
        serde_json::json!({"ja": {"name": " "}}),
        serde_json::json!({"ja": {"scopes": {"calendar:read": "x".repeat(201)}}}),
    ] {
        let changes = ResourceChanges {
            translations: Some(serde_json::from_value(texts.clone()).unwrap()),
            ..Default::default()
        };
        let result = resources::change_resource(w.store(), w.issuer.settings(), &made.uri, changes).await;
        assert_eq!(invalid_field(result), "translations", "{texts}");
    }
    assert_eq!(resources::resource(w.store(), &made.uri).await.unwrap(), made, "unchanged");

    let api = api_resource(w.issuer.settings());
    let rename = ResourceChanges { name: Some("Mine".into()), ..Default::default() };
    let settings = w.issuer.settings();
    assert!(is_conflict(&resources::change_resource(w.store(), settings, &api, rename).await));
    assert!(is_conflict(&resources::delete_resource(w.store(), settings, &api).await));
    assert_eq!(resources::resource(w.store(), &api).await.unwrap().name, "agentgate management API");

    let more = ResourceChanges {
        scopes: Some(vec![scope("calendar:read"), scope("calendar:write")]),
        ..Default::default()
    };
    let changed = resources::change_resource(w.store(), settings, &made.uri, more).await.unwrap();
    assert_eq!((changed.name.as_str(), changed.scopes.len()), ("Calendar", 2));
    assert_eq!(changed.translations, made.translations, "a change that leaves them out keeps them");
    resources::delete_resource(w.store(), settings, &made.uri).await.unwrap();
    assert!(matches!(resources::resource(w.store(), &made.uri).await, Err(ManagementError::NotFound(_))));
}

#[tokio::test]
async fn grants_are_listed_by_person_or_app_and_revoked_with_their_tokens() {
    let w = world().await;
    let native = serde_json::json!({
        "name": "Desk agent", "third_party": true, "public": true, "application_type": "native",
        "redirect_uris": [LOOPBACK], "scopes": ["openid", "offline_access", "mcp:tools"],
    });
    let app = apps::create_app(w.store(), serde_json::from_value(native).unwrap(), 1).await.unwrap().app;
    w.issuer.record_consent(&w.alice, &app.client_id, MCP, &["mcp:tools".to_owned()]).await.unwrap();
    let scopes = vec!["openid".into(), "offline_access".into(), "mcp:tools".into()];
    let tokens = common::code_tokens(&w.issuer, &w.alice, &app.client_id, LOOPBACK, scopes).await;
    assert!(w.issuer.validate_access_token(&tokens.access_token).await.is_ok());

    let by_user = grants::grants(w.store(), Some(&w.alice), None).await.unwrap();
    let by_app = grants::grants(w.store(), None, Some(&app.client_id)).await.unwrap();
    assert_eq!(by_user, by_app);
    assert_eq!((by_user.len(), by_user[0].scopes.as_slice()), (1, ["mcp:tools".to_owned()].as_slice()));
    assert!(grants::grants(w.store(), Some(&w.alice), Some("other")).await.unwrap().is_empty());
    assert_eq!(invalid_field(grants::grants(w.store(), None, None).await), "user_id");

    grants::revoke(w.store(), &w.alice, &app.client_id, agentgate_issuer::now()).await.unwrap();
    assert!(grants::grants(w.store(), Some(&w.alice), None).await.unwrap().is_empty());
    assert!(
        w.issuer.validate_access_token(&tokens.access_token).await.is_err(),
        "the access token is revoked"
    );
    let client = clients::find(w.store(), &app.client_id).await.unwrap();
    let refresh = tokens.refresh_token.as_deref();
    assert!(refresh.is_some(), "offline_access gives a refresh token");
    assert!(w.issuer.refresh(&client, refresh, None, None).await.is_err(), "so is the refresh token");
    let again = grants::revoke(w.store(), &w.alice, &app.client_id, agentgate_issuer::now()).await;
    assert!(matches!(again, Err(ManagementError::NotFound(_))), "{again:?}");

    // A first-party app holds no grant, but revoking still ends its tokens.
    let own = serde_json::json!({
        "name": "Own agent", "third_party": false, "public": true, "application_type": "native",
        "redirect_uris": [LOOPBACK], "scopes": ["openid", "mcp:tools"],
    });
    let own = apps::create_app(w.store(), serde_json::from_value(own).unwrap(), 1).await.unwrap().app;
    let tokens =
        common::code_tokens(&w.issuer, &w.alice, &own.client_id, LOOPBACK, vec!["mcp:tools".into()]).await;
    assert!(grants::grants(w.store(), None, Some(&own.client_id)).await.unwrap().is_empty());
    grants::revoke(w.store(), &w.alice, &own.client_id, agentgate_issuer::now()).await.unwrap();
    assert!(w.issuer.validate_access_token(&tokens.access_token).await.is_err());
}

#[tokio::test]
async fn a_removed_or_demoted_machine_app_loses_the_api_at_once_but_cannot_lock_itself_out() {
    let w = world().await;
    let admin = apps::create_app(w.store(), machine(&["agentgate:admin"]), 1).await.unwrap().app;
    let other = apps::create_app(w.store(), machine(&["agentgate:admin"]), 1).await.unwrap().app;
    let admin_token = token(&w.issuer, &admin.client_id, "agentgate:admin").await;
    let other_token = token(&w.issuer, &other.client_id, "agentgate:admin").await;
    assert!(
        admin_call(&w.issuer, &admin_token).await.is_ok()
            && admin_call(&w.issuer, &other_token).await.is_ok()
    );

    // Neither may take its own way in.
    let demote = || AppChanges { scopes: Some(vec![]), ..Default::default() };
    assert!(is_conflict(&apps::change_app(w.store(), &admin.client_id, demote(), &admin.client_id).await));
    assert!(is_conflict(&apps::delete_app(w.store(), &admin.client_id, &admin.client_id).await));
    assert!(admin_call(&w.issuer, &admin_token).await.is_ok());

    // Another admin app may, and the token stops working at once.
    apps::change_app(w.store(), &admin.client_id, demote(), &other.client_id).await.unwrap();
    assert_eq!(
        admin_call(&w.issuer, &admin_token).await.unwrap_err(),
        ApiAuthError::InsufficientScope("agentgate:admin")
    );
    apps::delete_app(w.store(), &admin.client_id, &other.client_id).await.unwrap();
    assert_eq!(admin_call(&w.issuer, &admin_token).await.unwrap_err(), ApiAuthError::Invalid);
    assert!(w.issuer.validate_access_token(&admin_token).await.is_err(), "for introspection too");
    assert!(admin_call(&w.issuer, &other_token).await.is_ok());
}

/// Whether `token` may make management calls.
async fn admin_call(
    issuer: &Issuer<SqliteStore>,
    token: &str,
) -> Result<serde_json::Map<String, Value>, ApiAuthError> {
    issuer.authorize_api_call(Some(token), "agentgate:admin").await
}

/// A first-party machine app with `scopes`.
fn machine(scopes: &[&str]) -> AppSpec {
    let spec =
        serde_json::json!({ "name": "Machine", "third_party": false, "machine": true, "scopes": scopes });
    serde_json::from_value(spec).unwrap()
}

/// A client-credentials token from `issuer` for the management API.
async fn token(issuer: &Issuer<SqliteStore>, client_id: &str, scope: &str) -> String {
    let api = api_resource(issuer.settings());
    let app = clients::find(issuer.store(), client_id).await.unwrap();
    issuer.client_credentials(&app, Some(scope), Some(&api)).await.unwrap().access_token
}

/// Serves `issuer` on a port-0 socket; returns its base URL.
async fn serve(issuer: Issuer<SqliteStore>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = agentgate_issuer::http::router(Arc::new(issuer));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn every_operation_refuses_callers_without_a_valid_admin_token() {
    let w = world().await;
    let machine = |scopes: &[&str]| {
        let spec =
            serde_json::json!({ "name": "Machine", "third_party": false, "machine": true, "scopes": scopes });
        serde_json::from_value::<AppSpec>(spec).unwrap()
    };
    let admin = apps::create_app(w.store(), machine(&["agentgate:admin"]), 1).await.unwrap();
    let registrar = apps::create_app(w.store(), machine(&["agentgate:register"]), 1).await.unwrap();
    let valid_admin = token(&w.issuer, &admin.app.client_id, "agentgate:admin").await;
    let register_only = token(&w.issuer, &registrar.app.client_id, "agentgate:register").await;
    // The same issuer (same store and keys) minting tokens that are born expired.
    let mut expiring = Settings::new("http://127.0.0.1:8080");
    expiring.access_token_ttl = -1;
    let kek = KeyEncryptionKey::from_base64(&w.kek).unwrap();
    let minter = Issuer::open(w.store().clone(), kek, expiring).await.unwrap();
    let expired = token(&minter, &admin.app.client_id, "agentgate:admin").await;
    let base = serve(w.issuer).await;

    let http = reqwest::Client::new();
    let doc: Value =
        http.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let path =
                path.replace("{client_id}", &admin.app.client_id).replace("{id}", "x").replace("{uri}", "x");
            operations.push((method.to_uppercase(), format!("{base}{path}?user_id=x&client_id=x")));
        }
    }
    assert_eq!(operations.len(), 23, "every operation of the document");

    let callers = [
        (None, 401, "Bearer".to_owned()),
        (Some("garbage"), 401, "Bearer error=\"invalid_token\"".to_owned()),
        (Some(expired.as_str()), 401, "Bearer error=\"invalid_token\"".to_owned()),
        (
            Some(register_only.as_str()),
            403,
            "Bearer error=\"insufficient_scope\", scope=\"agentgate:admin\"".to_owned(),
        ),
    ];
    for (method, url) in &operations {
        for (token, status, challenge) in &callers {
            let mut request = http.request(method.parse().unwrap(), url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            // A body that would be refused (400) shows the token is checked first.
            let response = request.header("content-type", "application/json").body("{").send().await.unwrap();
            assert_eq!(response.status().as_u16(), *status, "{method} {url} with {token:?}");
            assert_eq!(response.headers()["www-authenticate"], challenge.as_str());
            assert_eq!(response.headers()["cache-control"], "no-store");
        }
    }
    // The admin token itself is accepted (the app it names exists).
    let one = http.get(format!("{base}/api/v1/apps/{}", admin.app.client_id)).bearer_auth(&valid_admin);
    assert_eq!(one.send().await.unwrap().status(), 200);
    assert_eq!(operations.iter().filter(|(m, _)| m == "DELETE").count(), 5);
}

#[tokio::test]
async fn accounts_at_providers_are_tied_listed_and_untied_by_configured_provider() {
    let w = world().await;
    let store = w.store();
    let spec = |provider: &str, subject: &str| people::LinkSpec {
        provider: provider.into(),
        subject: subject.into(),
    };
    const LOGTO: &str = "https://tenant.logto.app/oidc";

    let unknown = people::link(store, &w.alice, spec("github", "1"), None, 10).await;
    assert_eq!(invalid_field(unknown), "provider", "a provider the configuration does not name");
    let empty = people::link(store, &w.alice, spec("logto", ""), Some(LOGTO), 10).await;
    assert_eq!(invalid_field(empty), "subject");
    assert!(matches!(
        people::link(store, "nobody", spec("logto", "s-1"), Some(LOGTO), 10).await,
        Err(ManagementError::NotFound(_))
    ));
    assert!(people::links(store, &w.alice).await.unwrap().is_empty(), "nothing was tied");

    let tied = people::link(store, &w.alice, spec("logto", "s-1"), Some(LOGTO), 10).await.unwrap();
    assert_eq!((tied.issuer.as_str(), tied.subject.as_str(), tied.made_at_sign_in), (LOGTO, "s-1", false));
    assert_eq!(people::links(store, &w.alice).await.unwrap(), vec![tied]);
    let bob = people::create_user(
        store,
        UserSpec { username: "bob".into(), email: None, name: None, password: "correct horse".into() },
        10,
    )
    .await
    .unwrap();
    assert!(is_conflict(&people::link(store, &bob.id, spec("logto", "s-1"), Some(LOGTO), 10).await));

    assert!(w.issuer.drop_provider_account(&w.alice, LOGTO, "s-1").await.unwrap());
    assert!(!w.issuer.drop_provider_account(&w.alice, LOGTO, "s-1").await.unwrap(), "gone already");
    assert!(people::links(store, &w.alice).await.unwrap().is_empty());
}
