//! The data directory: the SQLite database and, in development, the
//! key-encryption key; or, with a database URL, the database it names.

use std::path::{Path, PathBuf};

use agentgate_issuer::seal::{DEV_KEK_FILE, KEK_ENV, KeyEncryptionKey};
use agentgate_issuer::store::{AnyStore, Durability, Store};
use anyhow::{Context, bail};

use crate::config::Config;

/// Options every command on the data directory takes.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// The data directory (database, development key-encryption key)
    /// [default: the configuration's `data_dir`, else .agentgate]
    #[arg(long, env = "AGENTGATE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// A configuration file: its data directory and key-encryption key are used
    /// (`agentgate serve` reads ./agentgate.toml when none is named).
    #[arg(long, env = "AGENTGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The database, instead of the data directory's SQLite file:
    /// `postgres://USER@HOST/DB` (several instances may share it) or
    /// `sqlite://PATH` [default: the configuration's `database_url`]
    #[arg(long, env = "AGENTGATE_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// What a commit on SQLite survives: crash (the process may die; the
    /// default) or power (a power cut too: each commit synced)
    /// [default: the configuration's `durability`, else crash]
    #[arg(long, env = "AGENTGATE_DURABILITY", global = true, value_parser = parse_durability)]
    pub durability: Option<Durability>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl DataArgs {
    /// The configuration file named by `--config`, loaded (not yet checked).
    pub fn load_config(&self) -> anyhow::Result<Option<Config>> {
        self.config.as_deref().map(Config::load).transpose()
    }

    /// Opens the data directory, with the configuration file if one was named.
    pub async fn open(&self) -> anyhow::Result<DataDir> {
        self.open_with(self.load_config()?.as_ref()).await
    }

    /// Opens the data directory: `--data-dir`, else `config`'s, else `.agentgate`.
    /// With a configuration, the key-encryption key must come from it or the
    /// environment: the development key file is for `agentgate dev` only.
    pub async fn open_with(&self, config: Option<&Config>) -> anyhow::Result<DataDir> {
        let path = self
            .data_dir
            .clone()
            .or_else(|| config.and_then(|c| c.data_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let kek = match config {
            Some(config) => KekSource::Configured(config.key_encryption_key_file.clone()),
            None => KekSource::Development,
        };
        let database_url =
            self.database_url.as_deref().or_else(|| config.and_then(|c| c.database_url.as_deref()));
        let chosen = self.durability.or_else(|| config.and_then(|c| c.durability));
        if chosen.is_some() && database_url.is_some_and(|url| !url.starts_with("sqlite:")) {
            tracing::warn!(
                "durability is SQLite's setting; on PostgreSQL the server's own synchronous_commit decides"
            );
        }
        let durability = chosen.unwrap_or_default();
        DataDir::open(&path, kek, database_url, durability).await
    }
}

/// `crash` or `power`.
fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "crash" => Ok(Durability::Crash),
        "power" => Ok(Durability::Power),
        other => Err(format!("{other:?}: expected crash or power")),
    }
}

/// The data directory when neither the command line nor a configuration names one.
pub const DEFAULT_DATA_DIR: &str = ".agentgate";

/// Where the key-encryption key comes from when `AGENTGATE_KEY_ENCRYPTION_KEY` is unset.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// A generated key kept in the data directory (`agentgate dev`, no configuration).
    Development,
    /// The configuration's `key_encryption_key_file`, if it names one.
    Configured(Option<PathBuf>),
}

/// Prints `items` as a pretty JSON array, each through `describe` (the `--json`
/// form of every `list` command).
pub fn print_json_list<T>(items: &[T], describe: impl Fn(&T) -> serde_json::Value) -> anyhow::Result<()> {
    let list: Vec<_> = items.iter().map(describe).collect();
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "agentgate.db";

/// An opened data directory.
pub struct DataDir {
    path: PathBuf,
    kek: KekSource,
    /// The store: the directory's SQLite file, or the database URL's.
    pub store: AnyStore,
}

impl DataDir {
    /// Opens the database at `database_url`, else the one in `path`. The
    /// directory is made (private to this user) only when something is kept
    /// in it: the SQLite file, or the development key-encryption key.
    pub async fn open(
        path: &Path,
        kek: KekSource,
        database_url: Option<&str>,
        durability: Durability,
    ) -> anyhow::Result<Self> {
        if database_url.is_none() || matches!(kek, KekSource::Development) {
            create_private_dir(path)?;
        }
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", path.join(DATABASE_FILE).display()),
        };
        let store = AnyStore::open_durable(&url, durability)
            .await
            .with_context(|| format!("opening {}", without_password(&url)))?;
        Ok(Self { path: path.to_owned(), kek, store })
    }

    /// The key-encryption key: from `AGENTGATE_KEY_ENCRYPTION_KEY` when set, else
    /// from where [`KekSource`] says. The development key file is made only while
    /// there are no keys to open: once keys exist, a missing key is an error,
    /// never a silent new key that opens nothing.
    pub async fn key_encryption_key(&self) -> anyhow::Result<KeyEncryptionKey> {
        if let Some(key) = KeyEncryptionKey::from_env()? {
            return Ok(key);
        }
        match &self.kek {
            KekSource::Configured(file) => configured_key_encryption_key(file.as_deref()),
            KekSource::Development => {
                let empty = self.store.signing_keys().await?.is_empty();
                match KeyEncryptionKey::from_dev_file(&self.path, empty)? {
                    Some(key) => Ok(key),
                    None => bail!(
                        "the signing keys in {} are sealed, and no key-encryption key was found: set \
                         {KEK_ENV} or restore {}",
                        self.path.display(),
                        self.path.join(DEV_KEK_FILE).display()
                    ),
                }
            }
        }
    }
}

/// The key-encryption key of a configured (not development) setup: from
/// `AGENTGATE_KEY_ENCRYPTION_KEY`, else from `file`; never generated.
pub fn configured_key_encryption_key(file: Option<&Path>) -> anyhow::Result<KeyEncryptionKey> {
    if let Some(key) = KeyEncryptionKey::from_env()? {
        return Ok(key);
    }
    match file {
        Some(file) => Ok(KeyEncryptionKey::from_file(file)?),
        None => bail!(
            "no key-encryption key: set {KEK_ENV} or key_encryption_key_file in the configuration \
             (make one with `openssl rand -base64 32`)"
        ),
    }
}

/// `url` as it may be shown: without the password a database URL may carry.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "the database URL (which could not be parsed)".to_owned(),
    }
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).with_context(|| format!("creating the data directory {}", path.display()))
}

pub use agentgate_issuer::rfc3339;

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls_are_shown_without_their_password() {
        let shown = super::without_password("postgres://agentgate:hunter2@db.internal:5432/agentgate");
        assert_eq!(shown, "postgres://agentgate:***@db.internal:5432/agentgate");
        assert!(!super::without_password("postgres://:hunter2@db/x").contains("hunter2"));
        assert!(!super::without_password("postgres://a:hunter2@[bad/x").contains("hunter2"));
        assert_eq!(
            super::without_password("sqlite:///var/lib/agentgate.db"),
            "sqlite:///var/lib/agentgate.db"
        );
    }
}
