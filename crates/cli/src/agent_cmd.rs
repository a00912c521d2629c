//! `agentgate agent`: the tutorial's third-party agent at the command line.
//! It signs the person in when a server asks (their browser, a loopback
//! redirect URI), keeps the tokens per server, and calls tools.

use std::path::PathBuf;
use std::time::Duration;

use agentgate_agent::{Agent, Headless, SystemBrowser, UserAgent, credentials, revocation};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Map, Value};

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
    /// Where tokens are kept, one file per server (mode 0600)
    /// [default: $XDG_CONFIG_HOME/agentgate/agent, else ~/.config/agentgate/agent]
    #[arg(long, env = "AGENTGATE_AGENT_DIR", global = true)]
    credentials_dir: Option<PathBuf>,
    /// On an error, also show what the libraries underneath said.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Sign in to an MCP server (when it asks for authorization) and keep the token.
    Login {
        /// The MCP server URL, e.g. http://127.0.0.1:8080/mcp.
        url: String,
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// List a server's tools.
    Tools {
        /// The MCP server URL.
        url: String,
        #[command(flatten)]
        sign_in: SignIn,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Call a tool.
    Call {
        /// The MCP server URL.
        url: String,
        /// The tool's name.
        tool: String,
        /// An argument as KEY=VALUE (VALUE is JSON if it parses as JSON, else a string); repeat.
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// All arguments as one JSON object (merged under the --arg ones).
        #[arg(long, value_name = "OBJECT")]
        json: Option<String>,
        #[command(flatten)]
        sign_in: SignIn,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show the servers the agent holds tokens for.
    Status {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Revoke the tokens of one server, or of every server, at their issuer, and forget them.
    Logout {
        /// The MCP server URL; every server when left out.
        url: Option<String>,
        /// The pre-registered client the tokens were granted to, if it is confidential...
        #[arg(long, env = "AGENTGATE_AGENT_CLIENT_ID")]
        client_id: Option<String>,
        /// ...and its secret, to authenticate the revocation.
        #[arg(long, env = "AGENTGATE_AGENT_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// Forget the tokens even when the issuer cannot revoke them now.
        #[arg(long)]
        forget_anyway: bool,
    },
}

/// How the person signs in, when a server asks.
#[derive(Debug, Args)]
struct SignIn {
    /// Do not open a browser: print the URL to open by hand. The browser
    /// opened is $BROWSER when set (the URL in place of %s, else last), else
    /// the system's (xdg-open, open).
    #[arg(long)]
    no_browser: bool,
    /// Follow the authorization server's redirects without a person (for test
    /// harnesses whose server approves by itself).
    #[arg(long, hide = true)]
    headless: bool,
    /// How long to wait for the person, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// A client id the issuer already knows this agent by.
    #[arg(long, env = "AGENTGATE_AGENT_CLIENT_ID")]
    client_id: Option<String>,
    /// That client's secret.
    #[arg(long, env = "AGENTGATE_AGENT_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The https URL of this agent's Client ID Metadata Document.
    #[arg(long, env = "AGENTGATE_AGENT_CLIENT_METADATA_URL")]
    client_metadata_url: Option<String>,
    /// The scopes to ask for, space-separated (e.g. "mcp:tools offline_access"),
    /// instead of those the server names.
    #[arg(long, value_name = "SCOPES")]
    scope: Option<String>,
    /// The loopback port the browser comes back to, for an app registered
    /// with one fixed redirect URI [default: a free port].
    #[arg(long, value_name = "PORT", default_value_t = 0, hide_default_value = true)]
    callback_port: u16,
}

#[derive(Debug, Args)]
struct OutputArg {
    /// `text` for people, `json` for the raw answer.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

impl AgentArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let verbose = self.verbose;
        self.run_command().await.map_err(|error| {
            let detail =
                error.chain().find_map(|e| e.downcast_ref::<agentgate_agent::AgentError>()?.detail());
            match detail {
                Some(detail) if verbose => anyhow::anyhow!("{error:#}\n  detail: {detail}"),
                Some(_) => anyhow::anyhow!("{error:#}\n  (--verbose shows the detail)"),
                None => error,
            }
        })
    }

    async fn run_command(self) -> anyhow::Result<()> {
        let dir = self
            .credentials_dir
            .or_else(credentials::default_dir)
            .context("no place for credentials: set HOME or --credentials-dir")?;
        match self.command {
            AgentCommand::Login { url, sign_in } => {
                let (agent, person) = agent(&dir, &sign_in);
                let session = agent.connect(&url, person.as_ref()).await?;
                let peer = session
                    .peer_info()
                    .and_then(|info| info.server_info.as_ref().map(|s| s.name.to_string()));
                let peer = peer.unwrap_or_default();
                session.cancel().await.ok();
                eprintln!(
                    "signed in to {url} {}",
                    if peer.is_empty() { String::new() } else { format!("({peer})") }
                );
            }
            AgentCommand::Tools { url, sign_in, output } => {
                let (agent, person) = agent(&dir, &sign_in);
                let mut connection = agent.open(&url, person.as_ref()).await?;
                let tools = connection.list_tools().await.context("listing the tools")?;
                connection.close().await;
                if output.output == Output::Json {
                    println!("{}", serde_json::to_string_pretty(&tools)?);
                } else {
                    for tool in tools {
                        println!("{:<24} {}", tool.name, tool.description.as_deref().unwrap_or(""));
                    }
                }
            }
            AgentCommand::Call { url, tool, args, json, sign_in, output } => {
                let arguments = arguments(&args, json.as_deref())?;
                let (agent, person) = agent(&dir, &sign_in);
                let mut connection = agent.open(&url, person.as_ref()).await?;
                let request = CallToolRequestParams::new(tool.clone()).with_arguments(arguments);
                let result =
                    connection.call_tool(request).await.with_context(|| format!("calling {tool}"))?;
                connection.close().await;
                if output.output == Output::Json {
                    println!("{}", serde_json::to_string_pretty(&result)?);
                } else {
                    print_result(&result)?;
                }
                if result.is_error == Some(true) {
                    bail!("the tool {tool} answered with an error");
                }
            }
            AgentCommand::Status { output } => status(&dir, output.output)?,
            AgentCommand::Logout { url, client_id, client_secret, forget_anyway } => {
                let secret = client_id.zip(client_secret);
                logout(&dir, url.as_deref(), secret.as_ref(), forget_anyway).await?
            }
        }
        Ok(())
    }
}

/// The agent and the person's way to the issuer, as the flags say.
fn agent(dir: &std::path::Path, sign_in: &SignIn) -> (Agent, Box<dyn UserAgent>) {
    let agent = Agent {
        client_id: sign_in.client_id.clone(),
        client_secret: sign_in.client_secret.clone(),
        client_metadata_url: sign_in.client_metadata_url.clone(),
        credentials_dir: Some(dir.to_owned()),
        scopes: sign_in.scope.as_ref().map(|s| s.split_whitespace().map(str::to_owned).collect()),
        callback_port: sign_in.callback_port,
        ..Agent::default()
    };
    let person: Box<dyn UserAgent> = if sign_in.headless {
        Box::new(Headless)
    } else {
        Box::new(SystemBrowser {
            open: !sign_in.no_browser,
            command: std::env::var("BROWSER").ok(),
            timeout: Duration::from_secs(sign_in.timeout),
        })
    };
    (agent, person)
}

/// The tool's arguments: `--json`'s object, then each `--arg` over it.
fn arguments(args: &[String], json: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let mut arguments = match json {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => object,
            _ => bail!("--json must be a JSON object, such as '{{\"city\": \"Tokyo\"}}'"),
        },
        None => Map::new(),
    };
    for arg in args {
        let Some((key, value)) = arg.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            bail!("--arg {arg:?} must be KEY=VALUE");
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        arguments.insert(key.to_owned(), value);
    }
    Ok(arguments)
}

/// A tool's answer for people: its structured result as indented JSON, else
/// its text, each other kind of content as JSON.
fn print_result(result: &CallToolResult) -> anyhow::Result<()> {
    if let Some(structured) = &result.structured_content {
        println!("{}", serde_json::to_string_pretty(structured)?);
        return Ok(());
    }
    for block in &result.content {
        let value = serde_json::to_value(block)?;
        match value.get("text").and_then(Value::as_str) {
            Some(text) => println!("{text}"),
            None => println!("{}", serde_json::to_string_pretty(&value)?),
        }
    }
    Ok(())
}

fn status(dir: &std::path::Path, output: Output) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rows: Vec<Value> = credentials::saved_in(dir)
        .into_iter()
        .map(|(_, saved)| {
            let c = &saved.credentials;
            // The token response as the issuer sent it: its `expires_in`.
            let expires_in = c
                .token_response
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|t| t.get("expires_in").and_then(Value::as_u64));
            let expires_at = c.token_received_at.zip(expires_in).map(|(at, ttl)| at + ttl);
            serde_json::json!({
                "server": saved.server,
                "issuer": c.issuer,
                "client_id": c.client_id,
                "scopes": c.granted_scopes,
                "signed_in": c.token_response.is_some(),
                "expires_in": expires_at.map(|at| at as i64 - now as i64),
            })
        })
        .collect();
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("not signed in anywhere: `agentgate agent login URL`");
    } else {
        for row in &rows {
            let expiry = match row["expires_in"].as_i64() {
                Some(s) if s > 0 => format!("access token for {s} more seconds"),
                Some(_) => "access token expired (refreshed on next use if possible)".into(),
                None => "no expiry known".into(),
            };
            println!("{}", row["server"].as_str().unwrap_or_default());
            println!("  issuer:    {}", row["issuer"].as_str().unwrap_or("-"));
            println!("  client_id: {}", row["client_id"].as_str().unwrap_or("-"));
            println!(
                "  scopes:    {}",
                row["scopes"].as_array().map_or(String::new(), |s| {
                    s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
                })
            );
            println!("  {expiry}");
        }
    }
    Ok(())
}

/// The access token `credentials` hold, if any.
fn access_token(credentials: &rmcp::transport::auth::StoredCredentials) -> Option<String> {
    let tokens = serde_json::to_value(credentials.token_response.as_ref()?).ok()?;
    tokens.get("access_token").and_then(Value::as_str).map(str::to_owned)
}

/// Revokes and forgets the tokens of `url`, or of every server. Tokens the
/// issuer could not revoke (it is down, or refused) are kept for another try,
/// unless `forget_anyway`. `secret` is a confidential client's id and secret.
async fn logout(
    dir: &std::path::Path,
    url: Option<&str>,
    secret: Option<&(String, String)>,
    forget_anyway: bool,
) -> anyhow::Result<()> {
    // The server as the agent files it: the URL in its normal form.
    let url = url.map(|url| url::Url::parse(url).map_or_else(|_| url.to_owned(), String::from));
    let mut removed = 0;
    if let Some(url) = &url {
        // Even a file that no longer reads.
        let file = credentials::FileCredentials::for_server(dir, url);
        if credentials::saved_in(dir).iter().all(|(path, _)| path != file.path()) && file.path().exists() {
            std::fs::remove_file(file.path())
                .with_context(|| format!("removing {}", file.path().display()))?;
            eprintln!("signed out of {url} (its credentials file was unreadable)");
            removed += 1;
        }
    }
    let mut kept = Vec::new();
    let all = credentials::saved_in(dir);
    for (path, saved) in &all {
        if url.as_ref().is_some_and(|url| *url != saved.server) {
            continue;
        }
        let secret = secret.filter(|(id, _)| *id == saved.credentials.client_id).map(|(_, s)| s.as_str());
        let mut revocation = revocation::revoke(saved, secret).await;
        // Another agent process may have refreshed the tokens meanwhile: the
        // new ones are revoked too before the file goes.
        let now = credentials::FileCredentials::for_server(dir, &saved.server).read().ok().flatten();
        if let Some(now) = now.filter(|now| access_token(now) != access_token(&saved.credentials)) {
            revocation = revocation::revoke(
                &credentials::Saved { server: saved.server.clone(), credentials: now },
                secret,
            )
            .await;
        }
        if !revocation.is_final() && !forget_anyway {
            eprintln!("still signed in to {}: {revocation}", saved.server);
            kept.push(saved.server.clone());
            continue;
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        eprintln!("signed out of {}: {revocation}", saved.server);
        removed += 1;
        // At many issuers one app has one grant per person: revoking it ends
        // the tokens of every server reached through it.
        if url.is_some() && revocation == revocation::Revocation::Revoked {
            let (issuer, client) = (&saved.credentials.issuer, &saved.credentials.client_id);
            let same_grant = |(p, o): &&(std::path::PathBuf, credentials::Saved)| {
                p != path && o.credentials.issuer == *issuer && o.credentials.client_id == *client
            };
            for (_, other) in all.iter().filter(same_grant) {
                eprintln!(
                    "note: {} was reached through the same app at that issuer: its tokens may have ended too",
                    other.server
                );
            }
        }
    }
    if !kept.is_empty() {
        bail!("the tokens of {} are kept: try again later, or add --forget-anyway", kept.join(", "));
    }
    if removed == 0 {
        match url.as_deref() {
            Some(url) => bail!("no tokens kept for {url}"),
            None => eprintln!("not signed in anywhere"),
        }
    }
    Ok(())
}
