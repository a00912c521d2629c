//! `agentgate keys list|rotate`.

use agentgate_issuer::keys::{self, Alg, KeyStatus};
use agentgate_issuer::store::Store;
use clap::{Args, Subcommand};
use serde_json::json;

use agentgate::data_dir::{DataArgs, print_json_list, rfc3339};

/// Manage the issuer's signing keys.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List the signing keys and their status.
    List,
    /// Make a new signing key of each algorithm in use (or of --alg); each old one
    /// stops signing at once and stays in the JWKS until the tokens it signed
    /// have expired.
    Rotate {
        /// How long the old key's public part stays published, in seconds.
        #[arg(long, default_value_t = keys::DEFAULT_KEEP_PUBLISHED_SECS)]
        keep_published: i64,
        /// Only this algorithm (ES256 or RS256); RS256 makes the first RSA key if none exists.
        #[arg(long, value_parser = |name: &str| Alg::parse(name).ok_or(format!("{name:?}: expected ES256 or RS256")))]
        alg: Option<Alg>,
    },
}

impl KeysArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let json = self.data.json;
        let data = self.data.open().await?;
        if let KeysCommand::Rotate { keep_published, alg } = self.command {
            anyhow::ensure!(keep_published >= 0, "--keep-published must not be negative");
            let kek = data.key_encryption_key().await?;
            let now = agentgate_issuer::now();
            let in_use: Vec<Alg> = match alg {
                Some(alg) => vec![alg],
                None => {
                    let stored = data.store.signing_keys().await?;
                    let mut algs: Vec<Alg> = Alg::ALL
                        .into_iter()
                        .filter(|a| stored.iter().any(|k| k.retired_at.is_none() && k.alg == a.as_str()))
                        .collect();
                    if algs.is_empty() {
                        algs.push(Alg::Es256);
                    }
                    algs
                }
            };
            for alg in in_use {
                let kid = keys::rotate(&data.store, &kek, now, keep_published, alg).await?;
                if !json {
                    println!("new {alg} signing key {kid}");
                }
            }
        }
        let now = agentgate_issuer::now();
        let stored = data.store.signing_keys().await?;
        if json {
            return print_json_list(&stored, |k| {
                let (status, until) = match keys::status(k, now) {
                    KeyStatus::Active => ("active", None),
                    KeyStatus::Retiring(until) => ("published", Some(until)),
                    KeyStatus::Expired => ("expired", None),
                };
                json!({"kid": k.kid, "alg": k.alg, "created_at": k.created_at, "status": status, "published_until": until})
            });
        }
        if stored.is_empty() {
            println!(
                "no signing keys yet: the first is made when the issuer first starts (or by `agentgate keys rotate`)"
            );
            return Ok(());
        }
        println!("{:<44}  {:<6}  {:<20}  STATUS", "KID", "ALG", "CREATED");
        for k in &stored {
            let status = match keys::status(k, now) {
                KeyStatus::Active => "active (signs new tokens)".to_owned(),
                KeyStatus::Retiring(until) => format!("published until {}", rfc3339(until)),
                KeyStatus::Expired => "expired".to_owned(),
            };
            println!("{:<44}  {:<6}  {:<20}  {status}", k.kid, k.alg, rfc3339(k.created_at));
        }
        Ok(())
    }
}
