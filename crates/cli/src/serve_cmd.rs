//! `agentgate serve --config agentgate.toml`: the issuer, and the `whoami` MCP
//! server when the file asks for it, for real use: the public (https) issuer URL,
//! signing keys sealed with a key from the environment or a file, resources from
//! the configuration, and no demo data.

use std::net::SocketAddr;
use std::sync::Arc;

use agentgate::config::{Config, DEFAULT_FILE, WhoamiConfig};
use agentgate::data_dir::{DataArgs, configured_key_encryption_key};
use agentgate::observe::{Readiness, health_router};
use agentgate::routes::Mounting;
use agentgate::{serve, whoami};
use agentgate_guard::Guard;
use agentgate_issuer::Issuer;
use agentgate_issuer::revocations::Revocations;
use agentgate_issuer::scopes::declare_resource;
use agentgate_issuer::store::{AnyStore, Durability};
use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The issuer URL, instead of the file's `issuer`.
    #[arg(long, env = "AGENTGATE_ISSUER")]
    issuer: Option<String>,
    /// The address to listen on, instead of the file's `listen`.
    #[arg(long, env = "AGENTGATE_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data: DataArgs,
}

impl ServeArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let path = self.data.config.clone().unwrap_or_else(|| DEFAULT_FILE.into());
        let mut config = Config::load(&path)?;
        if let Some(issuer) = self.issuer {
            config.issuer = issuer;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        config.check()?;
        // The key first: a setup that cannot start leaves no database behind.
        let kek = configured_key_encryption_key(config.key_encryption_key_file.as_deref())?;
        let dir = self.data.open_with(Some(&config)).await?;
        declare_resources(&dir.store, &config).await?;
        let routes = config.routes()?;

        let (listener, local) = serve::bind(config.listen).await?;
        let issuer = Arc::new(
            Issuer::open(dir.store.clone(), kek, config.settings()?).await.context("opening the issuer")?,
        );
        tokio::spawn(issuer.clone().maintain());
        let shutdown = CancellationToken::new();
        let mut app = agentgate_issuer::http::router(issuer.clone());
        if let (Some(whoami), Some(url)) = (&config.whoami, config.whoami_url()) {
            let revocations = issuer.revocations();
            app =
                app.merge(whoami_router(&config.issuer, whoami, &url, local, revocations, shutdown.clone())?);
            println!("agentgate serve: whoami MCP server at {url}");
        }
        let ready = Readiness::store(dir.store.clone());
        let observer = config.observe().start(ready.clone(), &shutdown).await?;
        let around = Mounting { issuer: Some(issuer.clone()), observer };
        app = app.merge(health_router(ready));
        let origin = url::Url::parse(&config.issuer)?.origin().ascii_serialization();
        for route in &routes {
            app = app.merge(route.mount(&around, &origin).await?);
            println!("agentgate serve: route {origin}{} -> {}", route.path, route.describe());
        }
        if let AnyStore::Sqlite(sqlite) = &dir.store {
            // Read back from SQLite, so that what is said is what is in effect.
            let durability = match sqlite.durability().await? {
                Some(Durability::Crash) => {
                    "crash (synchronous=NORMAL: a power cut may take the last commits)"
                }
                Some(Durability::Power) => "power (synchronous=FULL: each commit synced)",
                None => "mixed (the connections disagree; restart the server)",
            };
            println!("agentgate serve: SQLite durability {durability}");
        }
        println!("agentgate serve: issuer {} listening on http://{local}", config.issuer);
        serve::run(listener, app, shutdown).await
    }
}

/// Creates or updates every resource of the file, and the whoami server's own.
async fn declare_resources(store: &AnyStore, config: &Config) -> anyhow::Result<()> {
    let now = agentgate_issuer::now();
    for resource in &config.resources {
        let scopes: Vec<(&str, &str)> =
            resource.scopes.iter().map(|(name, words)| (name.as_str(), words.as_str())).collect();
        declare_resource(store, &resource.url, &resource.name, &scopes, &resource.translations, now)
            .await
            .with_context(|| format!("resource {}", resource.url))?;
    }
    if let (Some(whoami), Some(url)) = (&config.whoami, config.whoami_url()) {
        whoami::declare_resource(store, &url, &whoami.scope)
            .await
            .with_context(|| format!("the whoami resource {url}"))?;
    }
    Ok(())
}

/// The whoami MCP server, guarded against this issuer over HTTP like any
/// outside one, and told in memory what it revokes.
fn whoami_router(
    issuer: &str,
    config: &WhoamiConfig,
    url: &str,
    local: SocketAddr,
    revocations: Arc<Revocations>,
    shutdown: CancellationToken,
) -> anyhow::Result<axum::Router> {
    let guard = Guard::builder(issuer, url)
        .scopes([config.scope.as_str()])
        .challenge_scopes(whoami::PERSON_SCOPES)
        .scopes_supported([config.scope.as_str()].into_iter().chain(whoami::PERSON_SCOPES))
        .resource_name("agentgate whoami")
        .revocation_check(revocations)
        .build()
        .context("configuring the whoami guard")?;
    let mut allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    allowed_hosts.push(guard.resource().authority());
    allowed_hosts.push(local.to_string());
    Ok(whoami::router(
        &guard,
        &config.path,
        whoami::McpOptions { stateless: false, json_response: false, allowed_hosts, shutdown },
    ))
}
