//! Dynamic client registration (RFC 7591) and registration management
//! (RFC 7592) through the issuer's plain API, on a real SQLite file: what an
//! agent may register, every refusal (with nothing stored), the registration
//! access token, the rate limit and the policy.

mod common;

use std::net::IpAddr;

use agentgate_issuer::clients::{ApplicationType, NewClient};
use agentgate_issuer::registration::{
    ClientMetadata, RegistrationErrorCode, RegistrationFailure, RegistrationPolicy, SelfRegistered,
};
use agentgate_issuer::seal::KeyEncryptionKey;
use agentgate_issuer::store::{SqliteStore, Store};
use agentgate_issuer::tokens::{ClientCredentials, TokenResponse};
use agentgate_issuer::{Issuer, Settings};
use common::{MCP, TempDb};

const LOOPBACK: &str = "http://127.0.0.1:33418/callback";

struct World {
    _db: TempDb,
    issuer: Issuer<SqliteStore>,
    alice: String,
}

async fn world_with(change: impl FnOnce(&mut Settings)) -> World {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let alice = common::alice_and_whoami(&store).await;
    let mut settings = Settings::new("http://127.0.0.1:8080");
    settings.registration = RegistrationPolicy::Open;
    settings.registrations_per_address = 1000;
    change(&mut settings);
    let (kek, _) = KeyEncryptionKey::generate();
    let issuer = Issuer::open(store, kek, settings).await.unwrap();
    World { _db: db, issuer, alice }
}

async fn world() -> World {
    world_with(|_| {}).await
}

/// What the TypeScript and Python SDK clients send, give or take the name.
fn agent() -> ClientMetadata {
    ClientMetadata {
        client_name: Some("Roaming agent".into()),
        redirect_uris: Some(vec![LOOPBACK.into()]),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        response_types: Some(vec!["code".into()]),
        token_endpoint_auth_method: Some("none".into()),
        application_type: Some("native".into()),
        ..Default::default()
    }
}

/// An app as an administrator registers it.
fn hand_registered(scopes: &[&str], third_party: bool, public: bool, machine: bool) -> NewClient {
    NewClient {
        name: "App".into(),
        third_party,
        public,
        application_type: ApplicationType::Native,
        redirect_uris: if machine { vec![] } else { vec![LOOPBACK.into()] },
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        machine,
        logo_uri: None,
        client_uri: None,
        policy_uri: None,
        tos_uri: None,
        id_token_alg: Default::default(),
        post_logout_redirect_uris: vec![],
    }
}

fn address(n: u8) -> Option<IpAddr> {
    Some(IpAddr::from([192, 0, 2, n]))
}

impl World {
    async fn register(&self, metadata: &ClientMetadata) -> Result<SelfRegistered, RegistrationErrorCode> {
        self.issuer.register_dynamic(metadata, None, address(1), 100).await.map_err(|e| match e {
            RegistrationFailure::Refused(e) => e.code,
            other => panic!("store: {other}"),
        })
    }

    /// Alice's tokens for app `client_id`: a code for `scopes`, exchanged.
    async fn tokens_for(&self, client_id: &str, scopes: Vec<String>) -> TokenResponse {
        common::code_tokens(&self.issuer, &self.alice, client_id, LOOPBACK, scopes).await
    }

    async fn client_count(&self) -> usize {
        self.issuer.store().clients().await.unwrap().len()
    }
}

#[tokio::test]
async fn a_native_agent_registers_itself_and_signs_alice_in() {
    let w = world().await;
    let made = w.register(&agent()).await.unwrap();
    let client = &made.client;
    assert!(made.secret.is_none(), "a public app gets no secret");
    assert!(made.registration_token.len() >= 43, "256 bits");
    assert!(client.third_party, "a self-registered app always asks for consent");
    assert_eq!(client.registration, "dynamic");
    assert_eq!(client.application_type, "native");
    assert_eq!(client.token_endpoint_auth_method, "none");
    assert_eq!(client.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(client.scopes, ["openid", "profile", "email", "offline_access", "mcp:tools"], "the ceiling");
    assert_ne!(
        client.registration_token_hash.as_deref(),
        Some(made.registration_token.as_str()),
        "kept hashed"
    );

    // The app it registered works: a code for alice, exchanged without a secret,
    // from a loopback port other than the registered one (RFC 8252 §7.3 is the
    // authorization endpoint's business; the token endpoint wants the same URI).
    let tokens = w.tokens_for(&client.client_id, vec!["openid".into(), "mcp:tools".into()]).await;
    assert_eq!(tokens.scope, "openid mcp:tools");
}

#[tokio::test]
async fn application_type_decides_the_redirect_rules_and_is_inferred_when_missing() {
    let w = world().await;
    let native = |uris: &[&str], kind: Option<&str>| ClientMetadata {
        redirect_uris: Some(uris.iter().map(|u| u.to_string()).collect()),
        application_type: kind.map(str::to_owned),
        ..agent()
    };
    for (metadata, kind) in [
        (native(&[LOOPBACK], None), "native"),
        (native(&["com.example.agent:/callback"], None), "native"),
        (native(&["https://agent.example/callback"], None), "web"),
        (native(&["https://agent.example/callback"], Some("web")), "web"),
        (native(&["https://agent.example/callback", LOOPBACK], Some("native")), "native"),
    ] {
        let made = w.register(&metadata).await.unwrap();
        assert_eq!(made.client.application_type, kind, "{:?}", metadata.redirect_uris);
    }
    // A web app may not listen on the person's device; nor may one that mixes.
    for metadata in
        [native(&[LOOPBACK], Some("web")), native(&["https://agent.example/callback", LOOPBACK], None)]
    {
        assert_eq!(w.register(&metadata).await.unwrap_err(), RegistrationErrorCode::InvalidRedirectUri);
    }
}

#[tokio::test]
async fn bad_metadata_is_refused_with_the_right_error_and_nothing_is_stored() {
    use RegistrationErrorCode::{InvalidClientMetadata as Metadata, InvalidRedirectUri as Redirect};
    let w = world().await;
    let before = w.client_count().await;
    let uris = |uris: &[&str]| Some(uris.iter().map(|u| u.to_string()).collect::<Vec<_>>());
    let strings = |items: &[&str]| Some(items.iter().map(|u| u.to_string()).collect::<Vec<_>>());
    let cases = [
        (ClientMetadata { redirect_uris: None, ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&[]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["javascript:alert(1)"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["data:text/html,hi"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["http://127.0.0.1:1/cb#frag"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["https://*.agent.example/cb"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["http://agent.example/cb"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["myapp:/cb"]), ..agent() }, Redirect),
        (ClientMetadata { redirect_uris: uris(&["https://u:p@agent.example/cb"]), ..agent() }, Redirect),
        (ClientMetadata { post_logout_redirect_uris: uris(&["javascript:alert(1)"]), ..agent() }, Redirect),
        (ClientMetadata { token_endpoint_auth_method: Some("private_key_jwt".into()), ..agent() }, Metadata),
        (ClientMetadata { grant_types: strings(&["client_credentials"]), ..agent() }, Metadata),
        (ClientMetadata { grant_types: strings(&["refresh_token"]), ..agent() }, Metadata),
        (ClientMetadata { grant_types: strings(&["implicit", "authorization_code"]), ..agent() }, Metadata),
        (ClientMetadata { response_types: strings(&["token"]), ..agent() }, Metadata),
        (ClientMetadata { scope: Some("openid agentgate:admin".into()), ..agent() }, Metadata),
        (ClientMetadata { scope: Some("mail:read".into()), ..agent() }, Metadata),
        (ClientMetadata { application_type: Some("desktop".into()), ..agent() }, Metadata),
        (ClientMetadata { id_token_signed_response_alg: Some("none".into()), ..agent() }, Metadata),
        (ClientMetadata { id_token_signed_response_alg: Some("HS256".into()), ..agent() }, Metadata),
        (ClientMetadata { logo_uri: Some("http://agent.example/logo.png".into()), ..agent() }, Metadata),
        (ClientMetadata { client_uri: Some("javascript:alert(1)".into()), ..agent() }, Metadata),
        (ClientMetadata { client_name: Some(" ".into()), ..agent() }, Metadata),
        (ClientMetadata { client_name: Some("x".repeat(101)), ..agent() }, Metadata),
        (ClientMetadata { client_id: Some("chosen-by-me".into()), ..agent() }, Metadata),
        (ClientMetadata { client_secret: Some("chosen-by-me".into()), ..agent() }, Metadata),
        (
            ClientMetadata {
                application_type: Some("web".into()),
                redirect_uris: uris(&["https://agent.example/cb"]),
                post_logout_redirect_uris: uris(&["http://127.0.0.1:1/bye"]),
                ..agent()
            },
            Redirect,
        ),
        (ClientMetadata { redirect_uris: Some(vec![LOOPBACK.into(); 11]), ..agent() }, Metadata),
        (
            ClientMetadata {
                redirect_uris: Some(vec![format!("{LOOPBACK}?{}", "x".repeat(2000))]),
                ..agent()
            },
            Metadata,
        ),
        (ClientMetadata { client_name: Some("Mail\u{202e}gpj.exe".into()), ..agent() }, Metadata),
        (ClientMetadata { client_name: Some("Mail\nAI".into()), ..agent() }, Metadata),
    ];
    for (n, (metadata, expected)) in cases.iter().enumerate() {
        assert_eq!(w.register(metadata).await.unwrap_err(), *expected, "case {n}: {metadata:?}");
    }
    assert_eq!(w.client_count().await, before, "nothing was stored");
    // A narrower scope is fine, and is what the app then has.
    let narrow =
        w.register(&ClientMetadata { scope: Some("openid mcp:tools".into()), ..agent() }).await.unwrap();
    assert_eq!(narrow.client.scopes, ["openid", "mcp:tools"]);
}

#[tokio::test]
async fn an_agent_that_names_no_grant_types_gets_no_refresh_tokens() {
    let w = world().await;
    let made = w.register(&ClientMetadata { grant_types: None, ..agent() }).await.unwrap();
    assert_eq!(made.client.grant_types, ["authorization_code"], "RFC 7591's default");
    assert!(!made.client.scopes.iter().any(|s| s == "offline_access"), "nothing to ask offline_access for");
    let inconsistent =
        ClientMetadata { grant_types: None, scope: Some("openid offline_access".into()), ..agent() };
    assert_eq!(w.register(&inconsistent).await.unwrap_err(), RegistrationErrorCode::InvalidClientMetadata);
    let tokens = w.tokens_for(&made.client.client_id, vec!["mcp:tools".into()]).await;
    assert!(tokens.refresh_token.is_none());
}

#[tokio::test]
async fn an_update_keeps_the_secret_and_is_refused_once_registration_is_off() {
    let w = world().await;
    let metadata =
        ClientMetadata { token_endpoint_auth_method: Some("client_secret_basic".into()), ..agent() };
    let made = w.register(&metadata).await.unwrap();
    let secret = made.secret.unwrap();
    let id = made.client.client_id.clone();
    let update = ClientMetadata {
        client_id: Some(id.clone()),
        client_secret: Some(secret.clone()),
        client_name: Some("Renamed".into()),
        ..metadata.clone()
    };
    w.issuer.update_registration(&made.client, &update).await.unwrap();
    let credentials =
        ClientCredentials { client_id: Some(id.clone()), client_secret: Some(secret), ..Default::default() };
    assert_eq!(w.issuer.authenticate_client(&credentials).await.unwrap().name, "Renamed", "same secret");

    // With registration off, apps may no longer change themselves.
    let off = world_with(|s| s.registration = RegistrationPolicy::Off).await;
    let change = ClientMetadata { client_id: Some(id), ..agent() };
    match off.issuer.update_registration(&made.client, &change).await {
        Err(RegistrationFailure::Refused(e)) => assert_eq!(e.code, RegistrationErrorCode::NotFound),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_confidential_agent_gets_a_secret_that_authenticates_it() {
    let w = world().await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let metadata = ClientMetadata { token_endpoint_auth_method: Some(method.into()), ..agent() };
        let made = w.register(&metadata).await.unwrap();
        let secret = made.secret.expect("a confidential app gets a secret");
        assert_eq!(made.client.token_endpoint_auth_method, method);
        let id = made.client.client_id.clone();
        let with = |secret: &str| ClientCredentials {
            client_id: Some(id.clone()),
            client_secret: Some(secret.into()),
            ..Default::default()
        };
        assert_eq!(w.issuer.authenticate_client(&with(&secret)).await.unwrap().client_id, id);
        assert!(w.issuer.authenticate_client(&with("guess")).await.is_err());
    }
    // RFC 7591's default method is client_secret_basic.
    let default = ClientMetadata { token_endpoint_auth_method: None, ..agent() };
    assert!(w.register(&default).await.unwrap().secret.is_some());
}

#[tokio::test]
async fn the_registration_token_reads_and_updates_only_its_own_app() {
    let w = world().await;
    let mine = w.register(&agent()).await.unwrap();
    let other = w.register(&agent()).await.unwrap();
    let id = mine.client.client_id.as_str();
    let i = &w.issuer;
    let refused = |r: Result<_, RegistrationFailure>| match r {
        Err(RegistrationFailure::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    };

    assert_eq!(i.registered_app(id, Some(&mine.registration_token)).await.unwrap().client_id, id);
    for token in [None, Some(""), Some("guess"), Some(other.registration_token.as_str())] {
        assert_eq!(
            refused(i.registered_app(id, token).await),
            RegistrationErrorCode::InvalidToken,
            "{token:?}"
        );
    }
    assert_eq!(
        refused(i.registered_app("no-such-app", Some(&mine.registration_token)).await),
        RegistrationErrorCode::InvalidToken,
        "an unknown app gets the same answer"
    );

    // Update: new name and redirect URI; the id, the token and the rules stay.
    let current = i.registered_app(id, Some(&mine.registration_token)).await.unwrap();
    let changed = ClientMetadata {
        client_id: Some(id.into()),
        client_name: Some("Roaming agent 2".into()),
        redirect_uris: Some(vec!["http://127.0.0.1:40000/cb".into()]),
        ..agent()
    };
    let updated = i.update_registration(&current, &changed).await.unwrap();
    assert_eq!((updated.client_id.as_str(), updated.name.as_str()), (id, "Roaming agent 2"));
    assert_eq!(updated.redirect_uris, ["http://127.0.0.1:40000/cb"]);
    let stored = i.store().client(id).await.unwrap().unwrap();
    assert_eq!(stored, updated);
    assert!(stored.third_party);
    assert!(i.registered_app(id, Some(&mine.registration_token)).await.is_ok(), "the token still works");

    // Refused updates change nothing.
    for bad in [
        ClientMetadata { client_id: None, ..changed.clone() },
        ClientMetadata { client_id: Some(other.client.client_id.clone()), ..changed.clone() },
        ClientMetadata { token_endpoint_auth_method: Some("client_secret_basic".into()), ..changed.clone() },
        ClientMetadata { redirect_uris: Some(vec!["javascript:alert(1)".into()]), ..changed.clone() },
        ClientMetadata { client_secret: Some("guess".into()), ..changed.clone() },
        ClientMetadata { scope: Some("agentgate:admin".into()), ..changed.clone() },
    ] {
        assert!(i.update_registration(&stored, &bad).await.is_err(), "{bad:?}");
    }
    assert_eq!(i.store().client(id).await.unwrap().unwrap(), stored);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let w = world_with(|s| s.registrations_per_address = 3).await;
    for _ in 0..3 {
        w.issuer.register_dynamic(&agent(), None, address(7), 100).await.unwrap();
    }
    let before = w.client_count().await;
    match w.issuer.register_dynamic(&agent(), None, address(7), 160).await {
        Err(RegistrationFailure::Refused(e)) => {
            assert_eq!(
                e.code,
                RegistrationErrorCode::TooManyRequests(3600 - 60),
                "retry when the window ends"
            );
        }
        other => panic!("expected the limit, got {other:?}"),
    }
    // Bad requests count too, so the limit also stops probing.
    assert!(w.issuer.register_dynamic(&ClientMetadata::default(), None, address(7), 160).await.is_err());
    assert_eq!(w.client_count().await, before);
    // Another address is not affected, and the window ends.
    assert!(w.issuer.register_dynamic(&agent(), None, address(8), 160).await.is_ok());
    assert!(w.issuer.register_dynamic(&agent(), None, address(7), 100 + 3600).await.is_ok());
}

#[tokio::test]
async fn ipv6_addresses_share_a_limit_per_64_and_unknown_addresses_share_one() {
    let w = world_with(|s| s.registrations_per_address = 2).await;
    let v6 = |host: u16| Some(IpAddr::from([0x2001, 0xdb8, 1, 2, 0, 0, 0, host]));
    assert!(w.issuer.register_dynamic(&agent(), None, v6(1), 100).await.is_ok());
    assert!(w.issuer.register_dynamic(&agent(), None, v6(2), 100).await.is_ok());
    assert!(w.issuer.register_dynamic(&agent(), None, v6(3), 100).await.is_err(), "same /64");
    let elsewhere = Some(IpAddr::from([0x2001, 0xdb8, 1, 3, 0, 0, 0, 1]));
    assert!(w.issuer.register_dynamic(&agent(), None, elsewhere, 100).await.is_ok());
    assert!(w.issuer.register_dynamic(&agent(), None, None, 100).await.is_ok());
    assert!(w.issuer.register_dynamic(&agent(), None, None, 100).await.is_ok());
    assert!(
        w.issuer.register_dynamic(&agent(), None, None, 100).await.is_err(),
        "no address is no exemption"
    );
}

#[tokio::test]
async fn registration_is_off_unless_turned_on() {
    let w = world_with(|s| s.registration = Settings::new("http://x").registration).await;
    let before = w.client_count().await;
    assert_eq!(w.register(&agent()).await.unwrap_err(), RegistrationErrorCode::NotFound);
    assert_eq!(w.client_count().await, before);
}

#[tokio::test]
async fn a_configured_ceiling_bounds_what_agents_may_register() {
    let w = world_with(|s| s.registration_scopes = Some(vec!["openid".into(), "mcp:tools".into()])).await;
    assert_eq!(w.register(&agent()).await.unwrap().client.scopes, ["openid", "mcp:tools"]);
    let wider = ClientMetadata { scope: Some("openid email".into()), ..agent() };
    assert_eq!(w.register(&wider).await.unwrap_err(), RegistrationErrorCode::InvalidClientMetadata);
}

#[tokio::test]
async fn the_token_policy_needs_an_initial_access_token_for_the_management_api() {
    use agentgate_issuer::clients;
    use agentgate_issuer::management::api_resource;
    let machine = |scopes: &[&str]| hand_registered(scopes, false, false, true);
    let w = world_with(|s| s.registration = RegistrationPolicy::Token).await;
    let api = api_resource(w.issuer.settings());
    let token_for = |scopes: &'static [&'static str], scope: Option<&'static str>, resource: &'static str| {
        let (issuer, api) = (&w.issuer, api.clone());
        async move {
            let app = clients::register(issuer.store(), machine(scopes), 1).await.unwrap();
            let resource = if resource == "api" { api } else { resource.to_owned() };
            issuer.client_credentials(&app.client, scope, Some(&resource)).await.unwrap().access_token
        }
    };
    let refused = |result: Result<SelfRegistered, RegistrationFailure>| match result {
        Err(RegistrationFailure::Refused(e)) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let issuer = &w.issuer;
    let register = |token: Option<String>| async move {
        issuer.register_dynamic(&agent(), token.as_deref(), address(1), 100).await
    };

    assert_eq!(refused(register(None).await), RegistrationErrorCode::InvalidToken);
    assert_eq!(refused(register(Some("garbage".into())).await), RegistrationErrorCode::InvalidToken);
    let for_mcp = token_for(&["mcp:tools"], Some("mcp:tools"), MCP).await;
    assert_eq!(
        refused(register(Some(for_mcp)).await),
        RegistrationErrorCode::InvalidToken,
        "another audience"
    );
    let no_scope = token_for(&["agentgate:register"], None, "api").await;
    assert_eq!(refused(register(Some(no_scope)).await), RegistrationErrorCode::InsufficientScope);
    let registrar = token_for(&["agentgate:register"], Some("agentgate:register"), "api").await;
    let admin = token_for(&["agentgate:admin"], Some("agentgate:admin"), "api").await;
    let before = w.client_count().await;
    assert!(register(Some(registrar)).await.is_ok());
    assert!(register(Some(admin)).await.is_ok());
    assert_eq!(w.client_count().await, before + 2);

    // An expired token is refused too.
    let expired = world_with(|s| {
        s.registration = RegistrationPolicy::Token;
        s.access_token_ttl = -1;
    })
    .await;
    let app = clients::register(expired.issuer.store(), machine(&["agentgate:admin"]), 1).await.unwrap();
    let api = api_resource(expired.issuer.settings());
    let token = expired
        .issuer
        .client_credentials(&app.client, Some("agentgate:admin"), Some(&api))
        .await
        .unwrap()
        .access_token;
    let result = expired.issuer.register_dynamic(&agent(), Some(&token), address(1), 100).await;
    assert_eq!(refused(result), RegistrationErrorCode::InvalidToken);
}

#[tokio::test]
async fn only_first_party_machine_apps_may_hold_agentgates_own_scopes() {
    use agentgate_issuer::clients::{self, ClientError};
    let w = world().await;
    let app =
        |third_party, public, machine| hand_registered(&["agentgate:admin"], third_party, public, machine);
    for (third_party, public) in [(true, true), (true, false), (false, true), (false, false)] {
        let result = clients::register(w.issuer.store(), app(third_party, public, false), 1).await;
        assert!(matches!(result, Err(ClientError::ReservedScope(_))), "{third_party} {public}: {result:?}");
    }
    assert!(clients::register(w.issuer.store(), app(false, false, true), 1).await.is_ok());
    // Self-registered apps never see them in their ceiling, even when configured.
    let configured =
        world_with(|s| s.registration_scopes = Some(vec!["openid".into(), "agentgate:admin".into()])).await;
    assert_eq!(configured.register(&agent()).await.unwrap().client.scopes, ["openid"]);
}

#[tokio::test]
async fn narrowing_a_registration_narrows_what_its_refresh_tokens_give() {
    let w = world().await;
    let metadata = ClientMetadata { scope: Some("openid offline_access mcp:tools".into()), ..agent() };
    let made = w.register(&metadata).await.unwrap();
    let id = made.client.client_id.clone();
    let tokens = w.tokens_for(&id, vec!["openid".into(), "offline_access".into(), "mcp:tools".into()]).await;
    assert_eq!(tokens.scope, "openid offline_access mcp:tools");

    // The app narrows its own registration (RFC 7592): mcp:tools is gone.
    let narrower = ClientMetadata {
        client_id: Some(id.clone()),
        scope: Some("openid offline_access".into()),
        ..agent()
    };
    let client = w.issuer.update_registration(&made.client, &narrower).await.unwrap();
    let refreshed = w.issuer.refresh(&client, tokens.refresh_token.as_deref(), None, None).await.unwrap();
    assert_eq!(refreshed.scope, "openid offline_access", "what it may no longer have is dropped");
    let asked = w.issuer.refresh(&client, refreshed.refresh_token.as_deref(), Some("mcp:tools"), None).await;
    assert_eq!(asked.unwrap_err().code, agentgate_issuer::ErrorCode::InvalidScope);
}
