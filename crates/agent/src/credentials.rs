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
    /// The file for `server` (an MCP server URL) in `dir`: named after its
    /// host, plus a hash of the whole URL so that no two servers share one.
    ///
    /// ```
    /// use agentgate_agent::FileCredentials;
    /// let a = FileCredentials::for_server("/tmp/creds".as_ref(), "http://127.0.0.1:8080/mcp");
    /// let b = FileCredentials::for_server("/tmp/creds".as_ref(), "http://127.0.0.1:8080/mcp2");
    /// assert!(a.path().file_name().unwrap().to_str().unwrap().starts_with("127.0.0.1_8080-"));
    /// assert_ne!(a.path(), b.path());
    /// ```
    pub fn for_server(dir: &Path, server: &str) -> Self {
        let host = url::Url::parse(server)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}_{}", u.port_or_known_default().unwrap_or(0))))
            .unwrap_or_default();
        let host: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        Self { path: dir.join(format!("{host}-{:016x}.json", fnv1a(server))), server: server.to_owned() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is stored, if anything (and if it is this server's). A file others
    /// could read or write is refused: its tokens may be known, or not ours.
    pub fn read(&self) -> Result<Option<StoredCredentials>, AuthError> {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(&self.path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(self.failed("others may read or write it; remove it and sign in again"));
            }
        }
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
        // A fresh name, created exclusively (never an existing file or a
        // symbolic link someone planted), readable by the user alone.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let temporary = self.path.with_extension(format!("{}-{nanos}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
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

/// The directory, made if missing, and in any case closed to everyone but the
/// user (which fails if it is someone else's).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// FNV-1a, 64 bits: a stable file-name hash (not a secret).
fn fnv1a(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
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
        // Another server on the same host has a file of its own.
        let twin = FileCredentials::for_server(&dir, "https://mcp.example/mcp?x");
        assert_ne!(twin.path(), store.path());
        assert!(twin.load().await.unwrap().is_none());
        // A file others can read is refused.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(store.load().await.is_err());
            std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        store.clear().await.unwrap();
        assert!(store.load().await.unwrap().is_none());
        store.clear().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
