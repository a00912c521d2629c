//! The data directory: the SQLite database and, in development, the
//! key-encryption key.

use std::path::{Path, PathBuf};

use agentgate_issuer::seal::{DEV_KEK_FILE, KEK_ENV, KeyEncryptionKey};
use agentgate_issuer::store::{SqliteStore, Store};
use anyhow::{Context, bail};

/// Options every command on the data directory takes.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// The data directory (database, development key-encryption key).
    #[arg(long, env = "AGENTGATE_DATA_DIR", default_value = ".agentgate", global = true)]
    pub data_dir: PathBuf,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl DataArgs {
    /// Opens the data directory.
    pub async fn open(&self) -> anyhow::Result<DataDir> {
        DataDir::open(&self.data_dir).await
    }
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
    /// The store in it.
    pub store: SqliteStore,
}

impl DataDir {
    /// Opens `path` (creating it, private to this user, if needed) and its database.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        create_private_dir(path)?;
        let url = format!("sqlite://{}", path.join(DATABASE_FILE).display());
        let store = SqliteStore::open(&url).await.with_context(|| format!("opening {url}"))?;
        Ok(Self { path: path.to_owned(), store })
    }

    /// The key-encryption key: from `AGENTGATE_KEY_ENCRYPTION_KEY` when set, else
    /// the development key file in the data directory. That file is made only
    /// while there are no keys to open: once keys exist, a missing key is an
    /// error, never a silent new key that opens nothing.
    pub async fn key_encryption_key(&self) -> anyhow::Result<KeyEncryptionKey> {
        if let Some(key) = KeyEncryptionKey::from_env()? {
            return Ok(key);
        }
        let empty = self.store.signing_keys().await?.is_empty();
        match KeyEncryptionKey::from_dev_file(&self.path, empty)? {
            Some(key) => Ok(key),
            None => bail!(
                "the signing keys in {} are sealed, and no key-encryption key was found: set {KEK_ENV} \
                 or restore {}",
                self.path.display(),
                self.path.join(DEV_KEK_FILE).display()
            ),
        }
    }
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).with_context(|| format!("creating the data directory {}", path.display()))
}

/// Seconds since the epoch as an RFC 3339 UTC time.
pub fn rfc3339(secs: i64) -> String {
    // Civil-from-days (H. Hinnant's algorithm), to avoid a date library for one format.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_300_000), "2026-11-21T22:26:40Z");
    }
}
