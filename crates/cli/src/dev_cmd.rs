//! `agentgate dev`: the whole tutorial in one process — the issuer at the base
//! URL and the `whoami` MCP server at `/mcp`, guarded against that issuer with
//! the same checks as against an outside one — with demo data made on first run.

use std::net::SocketAddr;
use std::sync::Arc;

use agentgate::config::Config;
use agentgate::data_dir::DataArgs;
use agentgate::observe::{HEALTH_PATHS, ObserveArgs, Readiness, health_router};
use agentgate::routes::{Mounting, Route};
use agentgate::{serve, whoami};
use agentgate_guard::Guard;
use agentgate_issuer::clients::{self, ApplicationType, NewClient};
use agentgate_issuer::registration::RegistrationPolicy;
use agentgate_issuer::store::{AnyStore, Store};
use agentgate_issuer::upstream::{Admission, ClientSecret, ProviderConfig, ProviderKind};
use agentgate_issuer::users::{self, NewUser};
use agentgate_issuer::{Issuer, Settings};
use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

/// The scope the demo MCP server asks for.
const MCP_SCOPE: &str = "mcp:tools";
/// Names of the demo apps, also how a later run finds them.
const FIRST_PARTY_APP: &str = "agentgate demo app";
const THIRD_PARTY_APP: &str = "SmartMail AI";
/// Where the demo apps may be sent back to (any port: RFC 8252 loopback rule).
const DEMO_REDIRECT: &str = "http://127.0.0.1/callback";

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also fetch client metadata documents from loopback, over plain http
    /// (for agents and tests on this machine; never on a shared server).
    #[arg(long)]
    allow_loopback_client_documents: bool,
    /// Put an MCP server behind sign-in and consent at PATH: PATH=URL for a
    /// Streamable HTTP server, PATH=COMMAND for a program on stdio (one process
    /// per person), e.g. '/memory=npx -y @modelcontextprotocol/server-memory'.
    /// Repeat per server.
    #[arg(long = "route", value_name = "PATH=UPSTREAM")]
    routes: Vec<String>,
    /// Also the `[[route]]` tables of an agentgate.toml, with their policy and
    /// identity, its `[[provider]]` sections, and its `[audit]` and
    /// `metrics_listen` (flags win): tried behind dev's demo issuer, which
    /// stands in for the rest of it.
    #[arg(long, value_name = "FILE")]
    routes_from: Option<std::path::PathBuf>,
    /// Let people sign in at this OpenID Connect provider too (its issuer
    /// URL), where this server is registered with --identity-provider-client-id,
    /// its secret in AGENTGATE_IDENTITY_PROVIDER_CLIENT_SECRET, and the
    /// callback dev prints; anyone it signs in comes in.
    #[arg(long, value_name = "ISSUER", requires = "identity_provider_client_id")]
    identity_provider: Option<String>,
    /// This server's client id at --identity-provider.
    #[arg(long, value_name = "ID", requires = "identity_provider")]
    identity_provider_client_id: Option<String>,
    #[command(flatten)]
    observe: ObserveArgs,
    #[command(flatten)]
    data: DataArgs,
}

/// Where `--identity-provider`'s client secret is read from.
const SECRET_VARIABLE: &str = "AGENTGATE_IDENTITY_PROVIDER_CLIENT_SECRET";

impl DevArgs {
    /// The file's providers, and the one of the flags (id `provider`).
    fn identity_providers(&self, file: Option<&Config>) -> anyhow::Result<Vec<ProviderConfig>> {
        let mut providers = match file {
            Some(config) => config.providers()?,
            None => Vec::new(),
        };
        if let (Some(issuer), Some(client_id)) = (&self.identity_provider, &self.identity_provider_client_id)
        {
            // From the environment only: a command line is seen by `ps` and kept
            // in the shell's history.
            let secret =
                std::env::var(SECRET_VARIABLE).ok().filter(|s| !s.is_empty()).with_context(|| {
                    format!("--identity-provider needs its client secret: set {SECRET_VARIABLE}")
                })?;
            anyhow::ensure!(
                !providers.iter().any(|p| p.id == "provider"),
                "--identity-provider is the provider with id \"provider\", and the --routes-from file has one \
                 by that id already: rename it there"
            );
            let name = url::Url::parse(issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "your identity provider".into());
            let provider = ProviderConfig {
                id: "provider".into(),
                name,
                issuer: issuer.clone(),
                kind: ProviderKind::OpenIdConnect,
                client_id: client_id.clone(),
                client_secret: ClientSecret::new(secret),
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
                admit: Admission::Anyone,
                keep_refresh_token: false,
            };
            provider.check().map_err(anyhow::Error::msg)?;
            if !self.listen.ip().is_loopback() {
                tracing::warn!(
                    "--identity-provider lets in anyone {} signs in, and dev listens on {}: \
                     anyone who reaches it and has an account there comes in",
                    provider.name,
                    self.listen
                );
            }
            providers.push(provider);
        }
        Ok(providers)
    }

    pub async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.data.config.is_none(),
            "agentgate dev makes its own demo setup and takes no configuration file: use \
             `agentgate serve --config FILE`, or `agentgate dev --routes-from FILE` to try its routes \
             (or unset AGENTGATE_CONFIG)"
        );
        let file = self.routes_from.as_deref().map(Config::load).transpose()?;
        let mut routes = Vec::new();
        for section in file.iter().flat_map(|config| &config.routes) {
            routes.push(section.route()?);
        }
        for spec in &self.routes {
            routes.push(Route::parse(spec)?);
        }
        let mut taken: Vec<&str> = [&["/mcp"][..], &HEALTH_PATHS[..]].concat();
        for route in &routes {
            route.check_beside_issuer(&taken)?;
            route.check(true)?;
            taken.push(&route.path);
        }
        let observe = match &file {
            Some(config) => self.observe.or(config.observe()),
            None => self.observe.clone(),
        };
        let (listener, local) = serve::bind(self.listen).await?;
        let base = format!("http://{local}");
        let mcp_url = format!("{base}/mcp");
        let dir = self.data.open().await?;
        let kek = dir.key_encryption_key().await?;
        let store = dir.store.clone();
        let demo = demo_data(&store, &mcp_url).await?;

        let mut settings = Settings::new(&base);
        settings.default_resource = Some(mcp_url.clone());
        settings.identity_providers = self.identity_providers(file.as_ref())?;
        // Any MCP client may come in, registered by itself or by its metadata
        // document, as the tutorial's agents expect.
        settings.registration = RegistrationPolicy::Open;
        settings.client_documents = true;
        settings.client_documents_allow_loopback = self.allow_loopback_client_documents;
        let issuer =
            Arc::new(Issuer::open(store.clone(), kek, settings).await.context("opening the issuer")?);
        tokio::spawn(issuer.clone().maintain());

        let guard = Guard::builder(&base, &mcp_url)
            .scopes([MCP_SCOPE])
            .challenge_scopes(whoami::PERSON_SCOPES)
            .scopes_supported([MCP_SCOPE].into_iter().chain(whoami::PERSON_SCOPES))
            .resource_name("agentgate whoami (dev)")
            // A token revoked here is refused at /mcp from the next call on.
            .revocation_check(issuer.revocations())
            .build()
            .context("configuring the guard")?;
        let shutdown = CancellationToken::new();
        let mcp = whoami::router(
            &guard,
            "/mcp",
            whoami::McpOptions {
                stateless: false,
                json_response: false,
                allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), local.to_string()],
                shutdown: shutdown.clone(),
            },
        );
        let ready = Readiness::store(store.clone());
        let around = Mounting {
            issuer: Some(issuer.clone()),
            observer: observe.start(ready.clone(), &shutdown).await?,
        };
        let mut app = agentgate_issuer::http::router(issuer.clone()).merge(mcp).merge(health_router(ready));
        for route in &routes {
            app = app.merge(route.mount(&around, &base).await?);
        }
        // How the commands it suggests find this data directory.
        let data_flag = match &self.data.data_dir {
            Some(path) => format!(" --data-dir {}", path.display()),
            None => String::new(),
        };
        // What this start adds to the tutorial's system.
        let mut more: Vec<String> = routes
            .iter()
            .map(|route| {
                let scopes: Vec<String> = route.scopes().into_keys().collect();
                format!(
                    "gateway route:   {base}{}  ({}, scope: {})",
                    route.path,
                    route.describe(),
                    scopes.join(" ")
                )
            })
            .collect();
        more.extend(issuer.identity_providers().map(|(id, name)| {
            format!(
                "sign in with:    {name}  (register this callback there: {})",
                issuer.upstream_callback(id)
            )
        }));
        print_welcome(&base, &mcp_url, &demo, &data_flag, &more);
        serve::run(listener, app, shutdown).await
    }
}

/// Alice's password, as far as this start knows it.
enum DemoPassword {
    /// Made up on this first start: printed once.
    Generated(String),
    /// Taken from `AGENTGATE_DEMO_PASSWORD` on this first start.
    Chosen,
    /// Set on an earlier start: the variable no longer counts.
    Kept,
}

/// What the first run made, to print.
struct Demo {
    password: DemoPassword,
    first_party: String,
    third_party: String,
}

/// Makes the demo resource, person and apps unless they exist.
async fn demo_data(store: &AnyStore, mcp_url: &str) -> anyhow::Result<Demo> {
    let now = agentgate_issuer::now();
    let canonical = agentgate_issuer::scopes::canonical_resource(mcp_url).context("the MCP URL")?;
    if store.resource_by_canonical(&canonical).await?.is_none() {
        whoami::declare_resource(store, mcp_url, MCP_SCOPE).await?;
    }
    let mut password = DemoPassword::Kept;
    if store.users().await?.is_empty() {
        let chosen = std::env::var("AGENTGATE_DEMO_PASSWORD").ok().filter(|p| !p.is_empty());
        let secret = chosen.clone().unwrap_or_else(|| agentgate_issuer::random_token(12));
        let alice = NewUser {
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice".into()),
            password: secret.clone(),
        };
        users::add_user(store, alice, now).await?;
        password = if chosen.is_some() { DemoPassword::Chosen } else { DemoPassword::Generated(secret) };
    }
    let existing = store.clients().await?;
    let mut ids = Vec::new();
    for (name, third_party) in [(FIRST_PARTY_APP, false), (THIRD_PARTY_APP, true)] {
        let id = match existing.iter().find(|c| c.name == name) {
            Some(client) => client.client_id.clone(),
            None => {
                let app = NewClient {
                    name: name.into(),
                    third_party,
                    public: true,
                    application_type: ApplicationType::Native,
                    redirect_uris: vec![DEMO_REDIRECT.into()],
                    scopes: ["openid", "profile", "email", "offline_access", MCP_SCOPE]
                        .map(String::from)
                        .to_vec(),
                    machine: false,
                    logo_uri: None,
                    client_uri: None,
                    policy_uri: None,
                    tos_uri: None,
                    id_token_alg: Default::default(),
                    post_logout_redirect_uris: vec![],
                };
                clients::register(store, app, now).await?.client.client_id
            }
        };
        ids.push(id);
    }
    Ok(Demo { password, first_party: ids[0].clone(), third_party: ids[1].clone() })
}

/// What dev prints once it listens: where everything is, the demo's
/// accounts, `more` (its gateway routes and identity providers), and what to
/// try next.
fn print_welcome(base: &str, mcp_url: &str, demo: &Demo, data_flag: &str, more: &[String]) {
    println!("agentgate dev is ready");
    println!();
    println!("  issuer:          {base}");
    println!("  MCP server:      {mcp_url}  (tool: whoami, scope: {MCP_SCOPE})");
    println!("  your account:    {base}/account");
    for line in more {
        println!("  {line}");
    }
    println!();
    match &demo.password {
        DemoPassword::Generated(password) => println!(
            "  sign in as alice with password {password}  (shown once; set AGENTGATE_DEMO_PASSWORD to choose)"
        ),
        DemoPassword::Chosen => {
            println!(
                "  sign in as alice with the password in AGENTGATE_DEMO_PASSWORD (read on this first start only)"
            )
        }
        DemoPassword::Kept => println!(
            "  sign in as alice with the password of the first start; a new one: agentgate users passwd alice{data_flag}"
        ),
    }
    println!("  locked out after wrong passwords? agentgate users unlock alice{data_flag}");
    println!("  first-party app: {}  ({FIRST_PARTY_APP}, no consent screen)", demo.first_party);
    println!("  third-party app: {}  ({THIRD_PARTY_APP}, asks for consent)", demo.third_party);
    println!("  redirect URIs:   {DEMO_REDIRECT} on any port");
    println!();
    println!(
        "Try next (each client gets a 401, finds this issuer, and sends you here to sign in and allow it):"
    );
    println!("  agentgate agent call {mcp_url} whoami");
    println!("      this project's agent: opens your browser, then prints alice's claims and the token's");
    println!("  npx @modelcontextprotocol/inspector");
    println!(
        "      MCP Inspector's page: connect to {mcp_url} (Streamable HTTP); it signs you in; Tools > whoami"
    );
    println!("  interop/python/.venv/bin/python interop/python/agent.py --url {mcp_url} --password PASSWORD");
    println!(
        "      the official Python SDK (from a clone, after scripts/test): signs alice in by itself, calls whoami"
    );
}
