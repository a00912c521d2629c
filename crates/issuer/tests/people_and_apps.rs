//! People and apps in a real SQLite file: what is accepted, what is refused
//! (with nothing stored), and that everything survives a restart.

mod common;

use agentgate_issuer::clients::{self, ApplicationType, ClientError, NewClient};
use agentgate_issuer::store::{SqliteStore, Store};
use agentgate_issuer::users::{self, InvalidCredentials, NewUser, UserError};
use common::TempDb;

fn alice() -> NewUser {
    NewUser {
        username: "Alice".into(),
        email: Some("Alice@Example.com".into()),
        name: Some("Alice Liddell".into()),
        password: "wonderland".into(),
    }
}

#[tokio::test]
async fn people_sign_in_by_username_or_email_and_nothing_else() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let alice = users::add_user(&store, alice(), 1).await.unwrap();
    assert_eq!((alice.username.as_str(), alice.email.as_deref()), ("alice", Some("alice@example.com")));

    for login in ["alice", "ALICE", "alice@example.com", " Alice@Example.COM "] {
        assert_eq!(
            users::sign_in(&store, login, "wonderland").await.unwrap().unwrap().id,
            alice.id,
            "{login}"
        );
    }
    // A wrong password and an unknown account get the very same answer.
    assert_eq!(users::sign_in(&store, "alice", "Wonderland").await.unwrap(), Err(InvalidCredentials));
    assert_eq!(users::sign_in(&store, "nobody", "wonderland").await.unwrap(), Err(InvalidCredentials));

    users::set_password(&store, "alice@example.com", "looking-glass").await.unwrap();
    assert!(users::sign_in(&store, "alice", "wonderland").await.unwrap().is_err());
    assert!(users::sign_in(&store, "alice", "looking-glass").await.unwrap().is_ok());

    // A restart keeps her.
    let store = SqliteStore::open(&db.url()).await.unwrap();
    assert!(users::sign_in(&store, "alice", "looking-glass").await.unwrap().is_ok());
    users::remove_user(&store, "alice").await.unwrap();
    assert!(matches!(users::find(&store, "alice").await, Err(UserError::NotFound(_))));
}

#[tokio::test]
async fn bad_people_are_refused_and_nothing_is_stored() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    users::add_user(&store, alice(), 1).await.unwrap();
    let cases = [
        (NewUser { username: "ALICE".into(), email: None, ..alice() }, "username"),
        (NewUser { username: "alice2".into(), ..alice() }, "email"),
        (NewUser { username: "bob".into(), email: Some("alice@example.com".into()), ..alice() }, "email"),
        (NewUser { username: "bad name".into(), email: None, ..alice() }, "invalid username"),
        (NewUser { username: "bob".into(), email: Some("bob".into()), ..alice() }, "invalid email"),
        (NewUser { username: "bob".into(), email: None, password: "short".into(), ..alice() }, "at least 8"),
    ];
    for (user, why) in cases {
        let err = users::add_user(&store, user, 2).await.unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert_eq!(store.users().await.unwrap().len(), 1);
    assert!(matches!(users::set_password(&store, "alice", "short").await, Err(UserError::WeakPassword)));
    assert!(matches!(
        users::set_password(&store, "nobody", "long enough").await,
        Err(UserError::NotFound(_))
    ));
}

fn smartmail() -> NewClient {
    NewClient {
        name: "SmartMail AI".into(),
        third_party: true,
        public: true,
        application_type: ApplicationType::Native,
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        scopes: vec!["openid".into(), "profile".into(), "email".into(), "mcp:tools".into()],
        machine: false,
        logo_uri: None,
        client_uri: Some("https://smartmail.example".into()),
        policy_uri: None,
        tos_uri: None,
        id_token_alg: Default::default(),
        post_logout_redirect_uris: vec![],
    }
}

#[tokio::test]
async fn apps_register_with_their_rules_and_survive_a_restart() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let public = clients::register(&store, smartmail(), 1).await.unwrap();
    assert!(public.secret.is_none() && public.client.secret_hash.is_none());
    assert_eq!(public.client.grant_types, ["authorization_code", "refresh_token"]);

    let own = NewClient {
        name: "Official mail".into(),
        third_party: false,
        public: false,
        application_type: ApplicationType::Web,
        redirect_uris: vec!["https://mail.example/cb".into()],
        ..smartmail()
    };
    let confidential = clients::register(&store, own, 2).await.unwrap();
    let secret = confidential.secret.clone().unwrap();
    assert!(secret.len() >= 43, "256 bits");
    assert!(!confidential.client.secret_hash.as_ref().unwrap().contains(&secret), "only a hash is kept");

    let store = SqliteStore::open(&db.url()).await.unwrap();
    let again = clients::find(&store, &confidential.client.client_id).await.unwrap();
    assert_eq!(again, confidential.client);
    assert!(clients::secret_matches(&again, &secret));
    let smart = clients::find(&store, &public.client.client_id).await.unwrap();
    assert!(clients::redirect_uri_allowed(&smart, "http://127.0.0.1:49152/callback"));
    assert_eq!(store.clients().await.unwrap().len(), 2);
    clients::remove(&store, &public.client.client_id).await.unwrap();
    assert!(matches!(clients::find(&store, &public.client.client_id).await, Err(ClientError::NotFound(_))));
}

#[tokio::test]
async fn bad_apps_are_refused_and_nothing_is_stored() {
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    let cases = [
        (NewClient { name: " ".into(), ..smartmail() }, "name"),
        (NewClient { redirect_uris: vec![], ..smartmail() }, "at least one redirect URI"),
        (NewClient { redirect_uris: vec!["javascript:alert(1)".into()], ..smartmail() }, "never allowed"),
        (
            NewClient {
                application_type: ApplicationType::Web,
                redirect_uris: vec!["http://mail.example/cb".into()],
                ..smartmail()
            },
            "loopback",
        ),
        (NewClient { redirect_uris: vec!["https://a.example/cb#x".into()], ..smartmail() }, "fragment"),
        (NewClient { scopes: vec!["two words".into()], ..smartmail() }, "invalid scope"),
        (NewClient { logo_uri: Some("http://cdn.example/logo.png".into()), ..smartmail() }, "logo_uri"),
        (NewClient { machine: true, ..smartmail() }, "machine-to-machine"),
    ];
    for (client, why) in cases {
        let err = clients::register(&store, client, 1).await.unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert!(store.clients().await.unwrap().is_empty());

    let machine =
        NewClient { machine: true, public: false, third_party: false, redirect_uris: vec![], ..smartmail() };
    let m2m = clients::register(&store, machine, 1).await.unwrap();
    assert_eq!(m2m.client.grant_types, ["client_credentials"]);
}

#[tokio::test]
async fn resources_are_checked_and_declared_resources_follow_their_declaration() {
    use agentgate_issuer::scopes::{AddResourceError, add_resource, declare_resource};
    let db = TempDb::new();
    let store = SqliteStore::open(&db.url()).await.unwrap();
    const MAIL: &str = "https://mail.example.com/mcp";
    let none = agentgate_issuer::store::Translations::new();

    // Refused before anything is stored.
    for (uri, name, scope) in [
        ("mail.example.com/mcp", "Mail", "mail:read"),
        ("https://mail.example.com/mcp#x", "Mail", "mail:read"),
        (MAIL, " ", "mail:read"),
        (MAIL, "Mail", "openid"),
        (MAIL, "Mail", "two words"),
    ] {
        let error = declare_resource(&store, uri, name, &[(scope, "x")], &none, 1).await.unwrap_err();
        assert!(
            matches!(
                error,
                AddResourceError::InvalidUri(_)
                    | AddResourceError::InvalidName
                    | AddResourceError::InvalidScope(_)
            ),
            "{uri} {name:?} {scope:?}: {error}"
        );
    }
    assert!(store.resources().await.unwrap().is_empty());

    declare_resource(
        &store,
        MAIL,
        "Mail",
        &[("mail:read", "Read your mail"), ("mail:send", "Send mail")],
        &none,
        1,
    )
    .await
    .unwrap();
    // The next start declares it again, renamed, with one scope fewer and one changed.
    declare_resource(&store, MAIL, "Mailbox", &[("mail:read", "Read your messages")], &none, 2)
        .await
        .unwrap();
    let stored = store.resources().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "Mailbox");
    assert_eq!(stored[0].created_at, 1, "declaring again keeps the first creation time");
    let scopes: Vec<_> = stored[0].scopes.iter().map(|s| (s.name.as_str(), s.description.as_str())).collect();
    assert_eq!(scopes, [("mail:read", "Read your messages")]);

    // add_resource refuses a URL that is taken; another URL with the same canonical form conflicts too.
    assert!(add_resource(&store, MAIL, "Again", &[], 3).await.is_err());
    assert!(declare_resource(&store, "HTTPS://MAIL.example.com/mcp", "Same", &[], &none, 3).await.is_err());
    assert_eq!(store.resources().await.unwrap()[0].name, "Mailbox", "a refused change changes nothing");
}
