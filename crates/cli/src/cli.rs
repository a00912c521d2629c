//! Command-line interface. Every flag can also be set through the `AGENTGATE_…`
//! environment variable named in its help.

use std::net::SocketAddr;
use std::time::Duration;

use agentgate_guard::{ClientAuthMethod, Guard, PersonClaims, Verification};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use agentgate::{serve, whoami};

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

/// How the `whoami` server checks tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VerifyMode {
    /// JWT access tokens, checked with the issuer's keys (audience and scopes included).
    Jwt,
    /// The tutorial's mode: ask the issuer's userinfo endpoint (cannot check the audience).
    Userinfo,
    /// RFC 7662 introspection, with the client credentials given below.
    Introspection,
}

/// Where `whoami` finds the person's name, username and email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PersonSource {
    /// In the access token (agentgate's issuer, Keycloak, oidc-provider with extraTokenClaims).
    Token,
    /// Ask the issuer's userinfo endpoint, once per token (for issuers whose access tokens carry no profile).
    Userinfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum IntrospectionAuth {
    /// HTTP Basic (client_secret_basic).
    Basic,
    /// Form fields (client_secret_post).
    Post,
}

#[derive(Debug, Args)]
struct WhoamiArgs {
    /// The issuer URL, exactly as the issuer names itself (e.g. https://tenant.logto.app/oidc).
    #[arg(long, env = "AGENTGATE_ISSUER")]
    issuer: String,

    /// The public URL of this MCP endpoint: tokens must carry it in `aud`
    /// [default: http://<listen>/mcp]
    #[arg(long, env = "AGENTGATE_RESOURCE")]
    resource: Option<String>,

    /// How tokens are checked.
    #[arg(long, env = "AGENTGATE_VERIFY", value_enum, default_value_t = VerifyMode::Jwt)]
    verify: VerifyMode,

    /// Where the person's profile claims come from.
    #[arg(long, env = "AGENTGATE_PERSON_CLAIMS", value_enum, default_value_t = PersonSource::Token)]
    person_claims: PersonSource,

    /// Scopes every request needs (space- or comma-separated). Advertised in the metadata and the 401 challenge.
    #[arg(long, env = "AGENTGATE_SCOPES", value_delimiter = ',')]
    scopes: Vec<String>,

    /// Scopes a tool's calls need beyond --scopes, as TOOL=SCOPE[ SCOPE…]; repeat per tool.
    #[arg(
        long = "tool-scope",
        env = "AGENTGATE_TOOL_SCOPES",
        value_delimiter = ';',
        value_name = "TOOL=SCOPES"
    )]
    tool_scopes: Vec<String>,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AGENTGATE_LISTEN", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,

    /// Host names accepted in the Host header, beyond the resource's host and loopback (DNS-rebinding protection).
    #[arg(long = "allowed-host", env = "AGENTGATE_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,

    /// Client id for introspection (with --verify introspection).
    #[arg(long, env = "AGENTGATE_INTROSPECTION_CLIENT_ID")]
    introspection_client_id: Option<String>,

    /// Client secret for introspection (prefer the environment variable).
    #[arg(long, env = "AGENTGATE_INTROSPECTION_CLIENT_SECRET", hide_env_values = true)]
    introspection_client_secret: Option<String>,

    /// How to authenticate to the introspection endpoint.
    #[arg(long, env = "AGENTGATE_INTROSPECTION_AUTH", value_enum, default_value_t = IntrospectionAuth::Basic)]
    introspection_auth: IntrospectionAuth,

    /// Clock skew tolerated on exp/nbf, in seconds.
    #[arg(long, env = "AGENTGATE_LEEWAY", default_value_t = 60)]
    leeway: u64,

    /// Serve every request statelessly (no MCP sessions).
    #[arg(long, env = "AGENTGATE_STATELESS")]
    stateless: bool,

    /// With --stateless, answer plain JSON instead of SSE when possible.
    #[arg(long, env = "AGENTGATE_JSON_RESPONSE")]
    json_response: bool,

    /// The name published in the protected resource metadata.
    #[arg(long, env = "AGENTGATE_RESOURCE_NAME", default_value = "agentgate whoami")]
    resource_name: String,

    /// A documentation URL published in the protected resource metadata.
    #[arg(long, env = "AGENTGATE_DOCUMENTATION")]
    documentation: Option<String>,

    /// Accept a plain-http issuer that is not on loopback (private networks only).
    #[arg(long, env = "AGENTGATE_INSECURE_HTTP_ISSUER")]
    insecure_http_issuer: bool,
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
            Command::Users(args) => args.run().await,
            Command::Apps(args) => args.run().await,
            Command::Agent(args) => args.run().await,
            Command::Keys(args) => args.run().await,
            Command::Db(args) => args.run().await,
        }
    }
}

/// Splits list values given with spaces as well as commas.
fn split_words(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split([' ', ','])).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl WhoamiArgs {
    fn guard(&self, resource: &str) -> anyhow::Result<Guard> {
        let verification = match self.verify {
            VerifyMode::Jwt => Verification::Jwt,
            VerifyMode::Userinfo => Verification::Userinfo,
            VerifyMode::Introspection => {
                let (Some(id), Some(secret)) =
                    (&self.introspection_client_id, &self.introspection_client_secret)
                else {
                    bail!(
                        "--verify introspection needs --introspection-client-id and --introspection-client-secret"
                    );
                };
                Verification::Introspection {
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                    auth_method: match self.introspection_auth {
                        IntrospectionAuth::Basic => ClientAuthMethod::ClientSecretBasic,
                        IntrospectionAuth::Post => ClientAuthMethod::ClientSecretPost,
                    },
                }
            }
        };
        let mut builder = Guard::builder(&self.issuer, resource)
            .verification(verification)
            .scopes(split_words(&self.scopes))
            .leeway(Duration::from_secs(self.leeway))
            .resource_name(&self.resource_name)
            .person_claims(match self.person_claims {
                PersonSource::Token => PersonClaims::Token,
                PersonSource::Userinfo => PersonClaims::Userinfo,
            });
        if self.verify == VerifyMode::Userinfo && self.scopes.is_empty() {
            // The userinfo endpoint answers tokens that carry these.
            builder = builder.scopes_supported(["openid", "profile", "email"]);
        }
        for spec in &self.tool_scopes {
            let Some((tool, scopes)) = spec.split_once('=') else {
                bail!("--tool-scope {spec:?}: expected TOOL=SCOPE[ SCOPE…]");
            };
            builder = builder.tool_scopes(tool.trim(), split_words(&[scopes.to_owned()]));
        }
        if let Some(url) = &self.documentation {
            builder = builder.documentation(url);
        }
        if self.insecure_http_issuer {
            builder = builder.allow_insecure_http_issuer();
        }
        builder.build().context("invalid configuration")
    }

    async fn run(self) -> anyhow::Result<()> {
        let (listener, local) = serve::bind(self.listen).await?;
        let resource = self.resource.clone().unwrap_or_else(|| format!("http://{local}/mcp"));
        let guard = self.guard(&resource)?;
        let path = match guard.resource().path() {
            "" => "/mcp",
            path => path,
        }
        .to_owned();

        let mut allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        allowed_hosts.push(guard.resource().authority());
        allowed_hosts.extend(split_words(&self.allowed_hosts));
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
            issuer = %self.issuer, resource = %resource, verify = ?self.verify,
            metadata = %guard.metadata_url(), "whoami MCP server ready"
        );
        println!("agentgate whoami: listening on http://{local}{path}");
        serve::run(listener, app, shutdown).await
    }
}
