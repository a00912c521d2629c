//! `agentgate db copy --from URL --to URL`: moves a whole issuer from one
//! database to another, e.g. from the SQLite file of a single instance to the
//! PostgreSQL database of several.

use agentgate::data_dir::without_password;
use agentgate_issuer::store::AnyStore;
use agentgate_issuer::store::copy::copy_all;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// Manage the database itself.
#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Copy everything (people, apps, grants, sessions, codes, tokens, signing
    /// keys) into an empty database, in one transaction. Tokens issued before
    /// the copy keep working against the copy; the instances using it need the
    /// same key-encryption key. Stop the instances writing to the source first.
    Copy {
        /// The database to copy: `sqlite://PATH` (which must exist) or `postgres://…`.
        #[arg(long, env = "AGENTGATE_COPY_FROM", hide_env_values = true)]
        from: String,
        /// The empty database to copy into (made up to date first).
        #[arg(long, env = "AGENTGATE_COPY_TO", hide_env_values = true)]
        to: String,
        /// Print JSON instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
}

impl DbArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let DbCommand::Copy { from, to, json } = self.command;
        if from == to {
            bail!("--from and --to name the same database");
        }
        if let Some(path) = sqlite_path(&from)
            && !std::path::Path::new(path).is_file()
        {
            bail!("there is no database at {path} (--from)");
        }
        let open = |url: String| async move {
            AnyStore::open(&url).await.with_context(|| format!("opening {}", without_password(&url)))
        };
        let (source, destination) = (open(from.clone()).await?, open(to.clone()).await?);
        let copied = copy_all(&source, &destination)
            .await
            .with_context(|| format!("copying into {}; nothing was written", without_password(&to)))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&copied)?);
        } else {
            for table in &copied {
                println!("{:>8}  {}", table.rows, table.table);
            }
            println!("copied {} into {}", without_password(&from), without_password(&to));
        }
        Ok(())
    }
}

/// The file a `sqlite:` URL names, without its query.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_paths() {
        assert_eq!(super::sqlite_path("sqlite:///var/lib/a.db?mode=rwc"), Some("/var/lib/a.db"));
        assert_eq!(super::sqlite_path("sqlite://data/a.db"), Some("data/a.db"));
        assert_eq!(super::sqlite_path("sqlite:a.db"), Some("a.db"));
        assert_eq!(super::sqlite_path("postgres://db/a"), None);
    }
}
