//! A fresh SQLite file per test, removed afterwards.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use agentgate_issuer::scopes::add_resource;
use agentgate_issuer::store::SqliteStore;
use agentgate_issuer::users::{self, NewUser};

/// The MCP server the tests' tokens are for.
pub const MCP: &str = "http://127.0.0.1:8080/mcp";

/// Adds alice (password "wonderland", no email) and the whoami resource at
/// [`MCP`] with its scope `mcp:tools`; returns alice's id.
pub async fn alice_and_whoami(store: &SqliteStore) -> String {
    let alice = NewUser { username: "alice".into(), email: None, name: None, password: "wonderland".into() };
    let alice = users::add_user(store, alice, 1).await.unwrap();
    add_resource(store, MCP, "whoami", &[("mcp:tools", "Use the tools")], 1).await.unwrap();
    alice.id
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
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}
