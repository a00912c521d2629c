//! `agentgate apps add|list|show|remove`.

use agentgate::data_dir::{DataArgs, print_json_list, rfc3339};
use agentgate_issuer::clients::{self, ApplicationType, NewClient};
use agentgate_issuer::keys::Alg;
use agentgate_issuer::management::ADMIN_SCOPE;
use agentgate_issuer::store::{Client, Store};
use clap::{Args, Subcommand};
use serde_json::json;

/// Manage the apps (OAuth clients) that may ask people for access.
#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    command: AppsCommand,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// Register an app. A confidential app's secret is printed once.
    Add(AddArgs),
    /// List the apps.
    List,
    /// Show one app.
    Show {
        /// The client id (one that starts with `-` is still an id, not an option).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Remove an app.
    Remove {
        /// The client id.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The name people see on the consent page.
    name: String,
    /// A third-party app: people are always asked for consent.
    #[arg(long)]
    third_party: bool,
    /// A public app (no secret; PKCE). The default is confidential.
    #[arg(long, conflicts_with = "confidential")]
    public: bool,
    /// A confidential app with a secret (the default).
    #[arg(long)]
    confidential: bool,
    /// A native app (CLI, desktop, mobile): loopback redirects may change port.
    #[arg(long)]
    native: bool,
    /// A first-party machine-to-machine app (client_credentials only).
    #[arg(long, conflicts_with_all = ["public", "third_party", "redirect_uri"])]
    m2m: bool,
    /// With --m2m: may call the management API and register apps (scope agentgate:admin).
    #[arg(long, requires = "m2m")]
    admin: bool,
    /// A redirect URI; repeat for several.
    #[arg(long = "redirect-uri")]
    redirect_uri: Vec<String>,
    /// Where the app may send people after signing them out (RP-initiated logout); repeat for several.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uri: Vec<String>,
    /// The most this app may ever be granted (space- or comma-separated).
    #[arg(long, default_value = clients::DEFAULT_SCOPES)]
    scopes: String,
    /// Logo shown on the consent page (https).
    #[arg(long)]
    logo_uri: Option<String>,
    /// Home page shown on the consent page (https).
    #[arg(long)]
    client_uri: Option<String>,
    /// Privacy policy shown on the consent page (https).
    #[arg(long)]
    policy_uri: Option<String>,
    /// Terms of service shown on the consent page (https).
    #[arg(long)]
    tos_uri: Option<String>,
    /// How its ID tokens are signed: ES256, or RS256 for apps that can only check RSA.
    #[arg(long, default_value = "ES256", value_parser = parse_alg)]
    id_token_alg: Alg,
}

fn parse_alg(name: &str) -> Result<Alg, String> {
    Alg::parse(name).ok_or_else(|| format!("{name:?}: expected ES256 or RS256"))
}

fn kind(c: &Client) -> String {
    let party = if c.third_party { "third-party" } else { "first-party" };
    let access = if c.secret_hash.is_none() { "public" } else { "confidential" };
    let registered = if agentgate_issuer::clients::self_registered(c) { ", registered itself" } else { "" };
    format!("{party}, {access}, {}{registered}", c.application_type)
}

impl AppsArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let json = self.data.json;
        let data = self.data.open().await?;
        let store = &data.store;
        match self.command {
            AppsCommand::Add(a) => {
                let new = NewClient {
                    name: a.name,
                    third_party: a.third_party,
                    public: a.public,
                    application_type: if a.native { ApplicationType::Native } else { ApplicationType::Web },
                    redirect_uris: a.redirect_uri,
                    scopes: a
                        .scopes
                        .split([' ', ','])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .chain(a.admin.then(|| ADMIN_SCOPE.to_owned()))
                        .collect(),
                    machine: a.m2m,
                    logo_uri: a.logo_uri,
                    client_uri: a.client_uri,
                    policy_uri: a.policy_uri,
                    tos_uri: a.tos_uri,
                    id_token_alg: a.id_token_alg,
                    post_logout_redirect_uris: a.post_logout_redirect_uri,
                };
                let registered = clients::register(store, new, agentgate_issuer::now()).await?;
                if json {
                    let mut out = clients::describe(&registered.client);
                    out["client_secret"] = json!(registered.secret);
                    println!("{out}");
                } else {
                    println!("added {} ({})", registered.client.name, kind(&registered.client));
                    println!("client_id:     {}", registered.client.client_id);
                    if let Some(secret) = registered.secret {
                        println!("client_secret: {secret}   (shown only now)");
                    }
                }
            }
            AppsCommand::List => {
                let all = store.clients().await?;
                if json {
                    print_json_list(&all, clients::describe)?;
                } else if all.is_empty() {
                    println!("no apps yet: `agentgate apps add NAME --redirect-uri URI`");
                } else {
                    println!("{:<24}  {:<24}  KIND", "CLIENT ID", "NAME");
                    for c in &all {
                        println!("{:<24}  {:<24}  {}", c.client_id, c.name, kind(c));
                    }
                }
            }
            AppsCommand::Show { client_id } => {
                let c = clients::find(store, &client_id).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&clients::describe(&c))?);
                } else {
                    println!("{} ({})", c.name, kind(&c));
                    println!("client_id:      {}", c.client_id);
                    println!("redirect URIs:  {}", c.redirect_uris.join(" "));
                    println!("scopes:         {}", c.scopes.join(" "));
                    println!("grant types:    {}", c.grant_types.join(" "));
                    println!("created:        {}", rfc3339(c.created_at));
                }
            }
            AppsCommand::Remove { client_id } => {
                clients::remove(store, &client_id).await?;
                if json {
                    println!("{}", json!({"removed": client_id}));
                } else {
                    println!("removed {client_id}");
                }
            }
        }
        Ok(())
    }
}
