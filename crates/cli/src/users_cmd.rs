//! `agentgate users add|list|remove|passwd|unlock|links|link|unlink`.

use std::io::BufRead;

use agentgate::data_dir::{DataArgs, print_json_list, rfc3339};
use agentgate_issuer::Issuer;
use agentgate_issuer::management::people::UserView;
use agentgate_issuer::store::{Store, StoreError, User, UserLink};
use agentgate_issuer::users::{self, NewUser};
use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use serde_json::json;

/// Manage the people who can sign in.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a person. The password is read from standard input with
    /// --password-stdin, else generated and printed once.
    Add {
        /// The sign-in name (letters, digits, '.', '_', '-').
        username: String,
        /// An email address, also usable to sign in.
        #[arg(long)]
        email: Option<String>,
        /// The display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the people.
    List,
    /// Remove a person.
    Remove {
        /// Username or email.
        login: String,
    },
    /// Set a person's password (from standard input with --password-stdin, else
    /// generated and printed once).
    Passwd {
        /// Username or email.
        login: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Let a person locked out by failed sign-ins (theirs or someone else's)
    /// sign in again at once, from any browser.
    Unlock {
        /// Username or email.
        login: String,
    },
    /// List a person's accounts at identity providers.
    Links {
        /// Username or email.
        login: String,
    },
    /// Tie an account at an identity provider to a person, so that they sign
    /// in with it (for `people = "existing"`, or before their first sign-in).
    Link {
        /// Username or email.
        login: String,
        /// The provider's `id` in the configuration's [[provider]] sections.
        #[arg(long)]
        provider: String,
        /// Their account's subject at the provider (its `sub`).
        #[arg(long)]
        subject: String,
    },
    /// Untie an account at an identity provider from a person.
    Unlink {
        /// Username or email.
        login: String,
        /// The provider's `id` in the configuration.
        #[arg(long)]
        provider: String,
        /// The account's subject at the provider.
        #[arg(long)]
        subject: String,
    },
}

/// The password to use, and whether it was generated (and must be shown).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((agentgate_issuer::random_token(12), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
}

/// A person as `--json` shows them: as the management API does.
fn describe(user: &User) -> serde_json::Value {
    json!(UserView::from(user))
}

/// An account at a provider as `--json` shows it.
fn describe_link(link: &UserLink) -> serde_json::Value {
    json!({
        "provider": link.provider,
        "issuer": link.issuer,
        "subject": link.subject,
        "made_at_sign_in": link.made_at_sign_in,
        "created_at": rfc3339(link.created_at),
        "signed_in_at": link.signed_in_at.map(rfc3339),
    })
}

/// The issuer of the provider `id` of the configuration `data` names.
fn provider_issuer(data: &DataArgs, id: &str) -> anyhow::Result<String> {
    let config = data.load_config()?.with_context(|| {
        format!("name the configuration (--config agentgate.toml) whose [[provider]] {id} this is")
    })?;
    let section = config.providers.iter().find(|p| p.id == id);
    let section = section.with_context(|| {
        let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
        format!("the configuration has no [[provider]] with id {id:?} (it has: {})", ids.join(", "))
    })?;
    section.accounts_issuer()
}

impl UsersArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let json = self.data.json;
        let data = self.data.open().await?;
        let store = &data.store;
        match self.command {
            UsersCommand::Add { username, email, name, password_stdin } => {
                let (password, generated) = password(password_stdin)?;
                let user = users::add_user(
                    store,
                    NewUser { username, email, name, password: password.clone() },
                    agentgate_issuer::now(),
                )
                .await?;
                let shown = generated.then_some(password);
                if json {
                    let mut out = describe(&user);
                    out["password"] = json!(shown);
                    println!("{out}");
                } else {
                    println!("added {} (sub {})", user.username, user.id);
                    if let Some(password) = shown {
                        println!("password: {password}   (shown only now)");
                    }
                }
            }
            UsersCommand::List => {
                let all = store.users().await?;
                if json {
                    print_json_list(&all, describe)?;
                } else if all.is_empty() {
                    println!("no users yet: `agentgate users add NAME`");
                } else {
                    println!("{:<24}  {:<30}  {:<24}  CREATED", "USERNAME", "EMAIL", "NAME");
                    for u in &all {
                        println!(
                            "{:<24}  {:<30}  {:<24}  {}",
                            u.username,
                            u.email.as_deref().unwrap_or("-"),
                            u.name.as_deref().unwrap_or("-"),
                            rfc3339(u.created_at)
                        );
                    }
                }
            }
            UsersCommand::Remove { login } => {
                let user = users::remove_user(store, &login).await?;
                if json {
                    println!("{}", describe(&user));
                } else {
                    println!("removed {}", user.username);
                }
            }
            UsersCommand::Links { login } => {
                let user = users::find(store, &login).await?;
                let links = store.user_links(&user.id).await?;
                if json {
                    print_json_list(&links, describe_link)?;
                } else if links.is_empty() {
                    println!("{} signs in with no identity provider", user.username);
                } else {
                    println!("{:<16}  {:<30}  {:<20}  ISSUER", "PROVIDER", "SUBJECT", "LINKED");
                    for link in &links {
                        println!(
                            "{:<16}  {:<30}  {:<20}  {}",
                            link.provider,
                            link.subject,
                            rfc3339(link.created_at),
                            link.issuer
                        );
                    }
                }
            }
            UsersCommand::Link { login, provider, subject } => {
                let issuer = provider_issuer(&self.data, &provider)?;
                let user = users::find(store, &login).await?;
                let link = UserLink {
                    issuer,
                    subject,
                    provider,
                    made_at_sign_in: false,
                    user_id: user.id.clone(),
                    created_at: agentgate_issuer::now(),
                    signed_in_at: None,
                };
                match store.insert_user_link(&link).await {
                    Err(StoreError::Conflict(_)) => {
                        let owner =
                            store.user_by_link(&link.issuer, &link.subject).await?.map(|(u, _)| u.username);
                        bail!(
                            "that account is already tied to {}; `agentgate users unlink` it there first",
                            owner.unwrap_or_else(|| "someone".into())
                        );
                    }
                    other => other?,
                }
                if json {
                    println!("{}", describe_link(&link));
                } else {
                    println!("linked {} to {} at {}", user.username, link.subject, link.provider);
                }
            }
            UsersCommand::Unlink { login, provider, subject } => {
                let issuer = provider_issuer(&self.data, &provider)?;
                let user = users::find(store, &login).await?;
                let kept = store.kept_refresh_token(&user.id, &issuer).await?;
                let unlinked = if kept.is_some_and(|(account, _)| account == subject) {
                    // Through an issuer of this configuration, which revokes
                    // the account's kept token at the provider.
                    let config = self.data.load_config()?.context("the configuration")?;
                    let settings =
                        config.settings().context("the configuration's providers (to revoke there)")?;
                    let kek = data.key_encryption_key().await?;
                    let issuer_here = Issuer::open(store.clone(), kek, settings).await?;
                    issuer_here.drop_provider_account(&user.id, &issuer, &subject).await?
                } else {
                    store.delete_user_link(&user.id, &issuer, &subject).await?
                };
                ensure!(
                    unlinked,
                    "{} has no account {subject} at {provider}; `agentgate users links {}` lists theirs",
                    user.username,
                    user.username
                );
                if json {
                    println!("{}", json!({"unlinked": subject, "provider": provider}));
                } else {
                    println!("unlinked {subject} at {provider} from {}", user.username);
                }
            }
            UsersCommand::Unlock { login } => {
                let user = users::unlock(store, &login).await?;
                if json {
                    println!("{}", json!({"unlocked": user.username}));
                } else {
                    println!("unlocked {}: failed sign-ins are forgotten", user.username);
                }
            }
            UsersCommand::Passwd { login, password_stdin } => {
                let (password, generated) = password(password_stdin)?;
                users::set_password(store, &login, &password).await?;
                let shown = generated.then_some(password);
                if json {
                    println!("{}", json!({"login": login, "password": shown}));
                } else {
                    println!("password changed for {login}");
                    if let Some(password) = shown {
                        println!("password: {password}   (shown only now)");
                    }
                }
            }
        }
        Ok(())
    }
}
