//! Command-line interface. Every flag can also be set through the `AGENTGATE_…`
//! environment variable named in its help.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use agentgate::{serve, whoami};

use crate::guard_args::GuardArgs;

/// agentgate: let third-party AI agents into an MCP server, with the user's consent.
#[derive(Debug, Parser)]
#[command(name = "agentgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole tutorial in one process: the issuer, with sign-in and consent,
    /// and the `whoami` MCP server at /mcp guarded by it; makes demo data on first run.
    Dev(crate::dev_cmd::DevArgs),
    /// Run the issuer (and, if configured, the `whoami` MCP server) from a
    /// configuration file: the public https issuer URL, no demo data.
    Serve(crate::serve_cmd::ServeArgs),
    /// Run the tutorial's `whoami` MCP server, protected by a token guard, against an
    /// outside OpenID Connect / OAuth 2.0 issuer (Logto, Keycloak, Auth0…).
    Whoami(Box<WhoamiArgs>),
    /// Put the guard in front of an MCP server that knows nothing of OAuth: agents
    /// reach it only with a token from the issuer, which never reaches the server.
    Gateway(Box<crate::gateway_cmd::GatewayArgs>),
    /// Read the audit log of the gateway's routes: who called what through which
    /// app, and what was decided; filtered by person, app, route, tool, decision or time.
    Audit(crate::audit_cmd::AuditArgs),
    /// Manage the people who can sign in: `add`, `list`, `remove`, `passwd`.
    Users(crate::users_cmd::UsersArgs),
    /// Manage the apps (OAuth clients): `add`, `list`, `show`, `remove`.
    Apps(crate::apps_cmd::AppsArgs),
    /// Manage the issuer's signing keys: `list`, `rotate`.
    Keys(crate::keys_cmd::KeysArgs),
    /// Manage the database: `copy` (e.g. from SQLite to PostgreSQL).
    Db(crate::db_cmd::DbArgs),
    /// Be the agent: sign in to an MCP server and call its tools
    /// (`login`, `tools`, `call`, `status`, `logout`).
    Agent(crate::agent_cmd::AgentArgs),
}

#[derive(Debug, Args)]
struct WhoamiArgs {
    #[command(flatten)]
    guard: GuardArgs,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,

    /// Host names accepted in the Host header, beyond the resource's host and loopback (DNS-rebinding protection).
    #[arg(long = "allowed-host", env = "AGENTGATE_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,

    /// Serve every request statelessly (no MCP sessions).
    #[arg(long, env = "AGENTGATE_STATELESS")]
    stateless: bool,

    /// With --stateless, answer plain JSON instead of SSE when possible.
    #[arg(long, env = "AGENTGATE_JSON_RESPONSE")]
    json_response: bool,
}

impl Cli {
    /// The log filter when `AGENTGATE_LOG` is not set: servers log what they
    /// do; the agent, a command a person runs, shows only what went wrong, and
    /// not rmcp's own reports of the challenges it answers.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Agent(_) => "warn,rmcp=off",
            _ => "info",
        }
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Dev(args) => args.run().await,
            Command::Serve(args) => args.run().await,
            Command::Whoami(args) => args.run().await,
            Command::Gateway(args) => args.run().await,
            Command::Audit(args) => args.run().await,
            Command::Users(args) => args.run().await,
            Command::Apps(args) => args.run().await,
            Command::Agent(args) => args.run().await,
            Command::Keys(args) => args.run().await,
            Command::Db(args) => args.run().await,
        }
    }
}

impl WhoamiArgs {
    async fn run(self) -> anyhow::Result<()> {
        let (listener, local) = serve::bind(self.listen).await?;
        let resource = self.guard.resource.clone().unwrap_or_else(|| format!("http://{local}/mcp"));
        let guard = self.guard.guard(&resource, "agentgate whoami")?;
        let path = match guard.resource().path() {
            "" => "/mcp",
            path => path,
        }
        .to_owned();

        let mut allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        allowed_hosts.push(guard.resource().authority());
        allowed_hosts.extend(crate::guard_args::split_words(&self.allowed_hosts));
        let shutdown = CancellationToken::new();
        let app = whoami::router(
            &guard,
            &path,
            whoami::McpOptions {
                stateless: self.stateless,
                json_response: self.json_response,
                allowed_hosts,
                shutdown: shutdown.clone(),
            },
        );
        tracing::info!(
            issuer = %self.guard.issuer, resource = %resource, verify = ?self.guard.verify,
            metadata = %guard.metadata_url(), "whoami MCP server ready"
        );
        println!("agentgate whoami: listening on http://{local}{path}");
        serve::run(listener, app, shutdown).await
    }
}
