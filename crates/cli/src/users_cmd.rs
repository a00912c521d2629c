//! `agentgate users add|list|remove|passwd|unlock`.

use std::io::BufRead;

use agentgate::data_dir::{DataArgs, print_json_list, rfc3339};
use agentgate_issuer::management::people::UserView;
use agentgate_issuer::store::{Store, User};
use agentgate_issuer::users::{self, NewUser};
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
