//! Where the agent keeps what it got: one JSON file per MCP server, readable by
//! the user alone (mode 0600, in a 0700 directory), under the user's config
//! directory (`$XDG_CONFIG_HOME/agentgate/agent`, else
//! `~/.config/agentgate/agent`).
//!
//! A file holds the client id the server's issuer knows the agent by, the
//! tokens, the scopes granted, and the issuer that granted them; rmcp discards
//! the tokens when the server names another issuer, so credentials are never
//! offered to an issuer that did not issue them. Writes go to a temporary file
//! renamed into place: a crash never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use rmcp::transport::auth::{AuthError, CredentialStore, StoredCredentials};

/// The default directory for credentials.
pub fn default_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("agentgate").join("agent"))
}

/// The credentials of one MCP server, in one file.
#[derive(Debug, Clone)]
pub struct FileCredentials {
    path: PathBuf,
    server: String,
}

/// What a credentials file holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// The MCP server the credentials are for.
    pub server: String,
    /// rmcp's credentials: client id, tokens, granted scopes, issuer.
    pub credentials: StoredCredentials,
}

/// Every credentials file in `dir`, with what it holds (unreadable files are
/// skipped).
pub fn saved_in(dir: &Path) -> Vec<(PathBuf, Saved)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(PathBuf, Saved)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| {
            let saved = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some((path, saved))
        })
        .collect();
    found.sort_by(|a, b| a.1.server.cmp(&b.1.server));
    found
}

impl FileCredentials {
    /// The file for `server` (an MCP server URL) in `dir`.
    ///
    /// ```
    /// let store = agentgate_agent::FileCredentials::for_server("/tmp/creds".as_ref(), "http://127.0.0.1:8080/mcp");
    /// assert!(store.path().ends_with("http_127.0.0.1_8080_mcp.json"));
    /// ```
    pub fn for_server(dir: &Path, server: &str) -> Self {
        let name: String = server
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        let name = name.trim_matches('_').replace("___", "_");
        Self { path: dir.join(format!("{name}.json")), server: server.to_owned() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is stored, if anything (and if it is this server's).
    pub fn read(&self) -> Result<Option<StoredCredentials>, AuthError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| self.failed(e))?;
                Ok((saved.server == self.server).then_some(saved.credentials))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn write(&self, credentials: &StoredCredentials) -> Result<(), AuthError> {
        let dir = self.path.parent().ok_or_else(|| self.failed("no parent directory"))?;
        create_private_dir(dir).map_err(|e| self.failed(e))?;
        let saved = Saved { server: self.server.clone(), credentials: credentials.clone() };
        let json = serde_json::to_vec_pretty(&saved).map_err(|e| self.failed(e))?;
        let temporary = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(|e| self.failed(e))?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(|e| self.failed(e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.failed(e))
    }

    fn failed(&self, reason: impl std::fmt::Display) -> AuthError {
        AuthError::CredentialStoreError(format!("{}: {reason}", self.path.display()))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[async_trait::async_trait]
impl CredentialStore for FileCredentials {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        self.read()
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        self.write(&credentials)
    }

    async fn clear(&self) -> Result<(), AuthError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.failed(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credentials_are_kept_private_and_whole() {
        let dir = std::env::temp_dir().join(format!("agentgate-agent-creds-{}", std::process::id()));
        let store = FileCredentials::for_server(&dir, "https://mcp.example/mcp");
        assert!(store.load().await.unwrap().is_none());
        let stored = StoredCredentials::new("client-1".into(), None, vec!["mcp:tools".into()], Some(1))
            .with_issuer(Some("https://auth.example".into()));
        store.save(stored).await.unwrap();
        let back = store.load().await.unwrap().unwrap();
        assert_eq!(
            (back.client_id.as_str(), back.issuer.as_deref()),
            ("client-1", Some("https://auth.example"))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let listed = saved_in(&dir);
        assert_eq!((listed.len(), listed[0].1.server.as_str()), (1, "https://mcp.example/mcp"));
        // Another server whose name files the same way never reads them.
        let twin = FileCredentials::for_server(&dir, "https://mcp.example?mcp");
        assert_eq!(twin.path(), store.path());
        assert!(twin.load().await.unwrap().is_none());
        store.clear().await.unwrap();
        assert!(store.load().await.unwrap().is_none());
        store.clear().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
