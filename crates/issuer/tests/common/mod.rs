//! A fresh SQLite file per test, removed afterwards.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

pub mod pg_schema;

use agentgate_issuer::Issuer;
use agentgate_issuer::clients::{ApplicationType, NewClient};
use agentgate_issuer::scopes::add_resource;
use agentgate_issuer::store::SqliteStore;
use agentgate_issuer::tokens::{ClientCredentials, CodeExchange, CodeRequest, TokenResponse};
use agentgate_issuer::users::{self, NewUser};

/// The MCP server the tests' tokens are for.
pub const MCP: &str = "http://127.0.0.1:8080/mcp";

/// Adds alice (password "wonderland", no email); returns her id.
pub async fn alice(store: &SqliteStore) -> String {
    let alice = NewUser { username: "alice".into(), email: None, name: None, password: "wonderland".into() };
    users::add_user(store, alice, 1).await.unwrap().id
}

/// Adds alice (password "wonderland", no email) and the whoami resource at
/// [`MCP`] with its scope `mcp:tools`; returns alice's id.
pub async fn alice_and_whoami(store: &SqliteStore) -> String {
    let alice = alice(store).await;
    add_resource(store, MCP, "whoami", &[("mcp:tools", "Use the tools")], 1).await.unwrap();
    alice
}

/// A public, native, first-party app as an administrator registers it:
/// `name`, one redirect URI, `scopes`, nothing else.
pub fn native_app(name: &str, redirect_uri: &str, scopes: &str) -> NewClient {
    NewClient {
        name: name.into(),
        third_party: false,
        public: true,
        application_type: ApplicationType::Native,
        redirect_uris: vec![redirect_uri.into()],
        scopes: scopes.split(' ').map(str::to_owned).collect(),
        machine: false,
        logo_uri: None,
        client_uri: None,
        policy_uri: None,
        tos_uri: None,
        id_token_alg: Default::default(),
        post_logout_redirect_uris: vec![],
    }
}

// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A person's tokens for the public app `client_id` and [`MCP`]: a code for
/// `scopes`, sent to `redirect_uri`, exchanged.
pub async fn code_tokens(
    issuer: &Issuer<SqliteStore>,
    user_id: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: Vec<String>,
) -> TokenResponse {
    let request = CodeRequest {
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: redirect_uri.into(),
        code_challenge: CHALLENGE.into(),
        resource: MCP.into(),
        scopes,
        nonce: None,
        auth_time: 5,
    };
    let code = issuer.issue_code(request).await.unwrap();
    let credentials = ClientCredentials { client_id: Some(client_id.to_owned()), ..Default::default() };
    let exchange = CodeExchange {
        code: Some(&code),
        redirect_uri: Some(redirect_uri),
        code_verifier: Some(VERIFIER),
        resource: None,
    };
    issuer.exchange_code(&credentials, exchange).await.unwrap()
}

pub struct TempDb(std::path::PathBuf);

impl TempDb {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "agentgate-keys-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        Self(path)
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}
