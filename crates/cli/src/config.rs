//! `agentgate.toml`: what `agentgate serve` runs, and where the other commands
//! find the data directory and the key-encryption key.
//!
//! ```toml
//! issuer = "https://auth.example.com"      # the public URL people and agents see
//! listen = "127.0.0.1:8080"                # behind a TLS-terminating proxy
//! data_dir = "/var/lib/agentgate"
//! # database_url = "postgres://agentgate@db.internal/agentgate"  # several instances
//! # durability = "crash"                   # SQLite: "power" syncs each commit (see the README)
//! key_encryption_key_file = "/etc/agentgate/kek"   # or AGENTGATE_KEY_ENCRYPTION_KEY
//! trusted_proxies = ["127.0.0.1"]
//!
//! [registration]                           # agents nobody registered by hand
//! policy = "open"                          # RFC 7591: "token" (the default), "open" or "off"
//! client_documents = true                  # Client ID Metadata Documents (default false)
//!
//! [[resource]]
//! url = "https://mcp.example.com/mcp"
//! name = "Mail MCP server"
//! scopes = { "mail:read" = "Read your mail" }
//! [resource.translations.es]              # the consent page in Spanish (es, ja)
//! name = "Servidor MCP de correo"
//! scopes = { "mail:read" = "Leer tu correo" }
//!
//! [whoami]                                 # the tutorial's MCP server, in this process
//! path = "/mcp"
//!
//! [audit]                                  # one JSON line per MCP request on a route
//! file = "/var/log/agentgate/audit.jsonl"  # or "-" for stdout; `agentgate audit` reads it
//! # metrics_listen = "127.0.0.1:9464"      # (top level) /metrics, /healthz, /readyz
//!
//! [[route]]                                # an MCP server behind sign-in and consent
//! path = "/memory"                         # agents connect at the issuer's origin + path
//! upstream = "npx -y @modelcontextprotocol/server-memory"  # a command (stdio) or an http(s) URL
//! env = { MEMORY_FILE_PATH = "/var/lib/agentgate/memory/{person}.jsonl" }  # {person}: the person's id
//! # name = "Memory"  scopes = { "memory" = "Use your memory" }  timeout = 30  max_body_bytes = 4194304
//! # max_processes = 32  idle_timeout = 600  shared_process = false  cwd = "/srv/memory"
//! # identity = "none"                      # or "headers" (loopback or Unix socket only), or "token" (+ audience)
//! # [route.tools.delete_entities]           # per-tool policy: scopes beyond the route's, and who may
//! # scopes = ["memory:write"]              #   (needs `memory:write` in the route's `scopes`)
//! # apps = ["first-party"]                 #   first-party, third-party, or client ids
//! ```
//!
//! Relative paths are read from the configuration file's folder, so a file and
//! its data can move together. Unknown keys are errors: a misspelt setting must
//! not be silently ignored in an auth server.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use agentgate_issuer::Settings;
use agentgate_issuer::store::Durability;

use agentgate_gateway::policy::{Apps, Kind, Rule};

use crate::routes::{IdentityMode, Route, Upstream, seconds};
use agentgate_issuer::registration::RegistrationPolicy;
use agentgate_issuer::upstream::{Admission, ClientSecret, OAuth2Provider, ProviderConfig, ProviderKind};
use anyhow::{Context, bail, ensure};
use serde::Deserialize;

/// The default configuration file name.
pub const DEFAULT_FILE: &str = "agentgate.toml";

/// A parsed, checked configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The issuer identifier: the public base URL (https; plain http only on loopback).
    pub issuer: String,
    /// The address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The data directory (SQLite database).
    pub data_dir: Option<PathBuf>,
    /// The database, instead of the data directory's SQLite file:
    /// `postgres://…` for several instances on one database.
    pub database_url: Option<String>,
    /// What a commit on SQLite survives: `crash` (the default) or `power`
    /// (see [`Durability`]); PostgreSQL's is the server's own setting.
    pub durability: Option<Durability>,
    /// A file holding the base64 key-encryption key (32 bytes); readable by its owner only.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for sign-in limits).
    #[serde(default)]
    pub trusted_proxies: Vec<IpAddr>,
    /// The resource a token is for when an authorization request names none.
    pub default_resource: Option<String>,
    /// Token and session lifetimes.
    #[serde(default)]
    pub lifetimes: Lifetimes,
    /// Sign-in attempt limits.
    #[serde(default)]
    pub sign_in: SignInLimits,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration: RegistrationConfig,
    /// The MCP servers (API resources) tokens may be issued for.
    #[serde(default, rename = "resource")]
    pub resources: Vec<ResourceConfig>,
    /// The tutorial's `whoami` MCP server, served in this process when present.
    pub whoami: Option<WhoamiConfig>,
    /// MCP servers behind this server's sign-in and consent (`[[route]]`).
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// The audit log of the routes' requests.
    pub audit: Option<AuditConfig>,
    /// Where Prometheus metrics are served (`/metrics`, with `/healthz` and
    /// `/readyz`), on a listener of their own.
    pub metrics_listen: Option<SocketAddr>,
    /// Identity providers people may sign in with (`[[provider]]`).
    #[serde(default, rename = "provider")]
    pub providers: Vec<ProviderSection>,
}

/// One identity provider (`[[provider]]`): an OpenID Connect provider people
/// sign in at, found by its issuer URL; GitHub; or another plain OAuth 2.0
/// provider with a user endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// In URLs and links (`/sign-in/ID/callback`): lowercase letters, digits, `-`.
    pub id: String,
    /// On the sign-in page: "Continue with NAME" [default: the id].
    pub name: Option<String>,
    /// "oidc" (the default), "github", or "oauth2".
    #[serde(default)]
    pub kind: ProviderKindName,
    /// The provider's issuer identifier (an OAuth 2.0 provider's: the name its
    /// accounts go by here) [default for github: `https://github.com`].
    pub issuer: Option<String>,
    /// An OAuth 2.0 provider's endpoints (for github: to override GitHub's,
    /// for GitHub Enterprise).
    pub authorization_endpoint: Option<String>,
    /// Where the code is redeemed.
    pub token_endpoint: Option<String>,
    /// Where the person's profile is read.
    pub user_endpoint: Option<String>,
    /// GitHub-shaped list of the person's addresses with `verified` flags.
    pub emails_endpoint: Option<String>,
    /// Which fields of the user endpoint's answer hold the profile (oauth2).
    #[serde(default)]
    pub fields: FieldsSection,
    /// "client_secret_basic" (the default for oauth2) or "client_secret_post".
    pub token_endpoint_auth: Option<String>,
    /// This server's client id there.
    pub client_id: String,
    /// Its secret, written here (prefer the next two)…
    pub client_secret: Option<ClientSecret>,
    /// …or in this environment variable…
    pub client_secret_env: Option<String>,
    /// …or in this file (readable by its owner only).
    pub client_secret_file: Option<PathBuf>,
    /// The scopes asked for [default: openid profile email].
    pub scopes: Option<Vec<String>>,
    /// Who may come in as a new person: "anyone", "existing" (only people
    /// linked beforehand) or "email-domains" (with `email_domains`).
    pub people: PeopleRule,
    /// With `people = "email-domains"`: the domains whose verified addresses
    /// come in.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Keep the provider's refresh token (sealed) at each sign-in, for routes
    /// whose `provider_token` names this provider.
    #[serde(default)]
    pub keep_refresh_token: bool,
}

/// `kind` of a `[[provider]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindName {
    /// OpenID Connect.
    #[default]
    Oidc,
    /// GitHub.
    Github,
    /// Another plain OAuth 2.0 provider.
    Oauth2,
}

/// `[provider.fields]`: which fields of an OAuth 2.0 user endpoint's answer
/// hold the profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsSection {
    /// The stable id [default: id].
    pub subject: Option<String>,
    /// The username [default: login].
    pub username: Option<String>,
    /// The display name [default: name].
    pub name: Option<String>,
    /// The address [default: email].
    pub email: Option<String>,
    /// Whether the address is verified [default: none: not verified].
    pub email_verified: Option<String>,
    /// A picture's URL [default: avatar_url].
    pub picture: Option<String>,
}

/// `people` of a `[[provider]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeopleRule {
    /// Anyone the provider signs in.
    Anyone,
    /// Only people linked beforehand.
    Existing,
    /// People with a verified address at `email_domains`.
    EmailDomains,
}

impl ProviderSection {
    /// How it says who signed in, the name its accounts go by, and the scopes
    /// asked for unless the section says.
    fn kind_and_issuer(&self) -> anyhow::Result<(ProviderKind, String, Vec<String>)> {
        let id = &self.id;
        let oauth2_keys =
            [&self.authorization_endpoint, &self.token_endpoint, &self.user_endpoint, &self.emails_endpoint];
        let scopes = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match self.kind {
            ProviderKindName::Oidc => {
                ensure!(
                    oauth2_keys.iter().all(|k| k.is_none()) && self.token_endpoint_auth.is_none(),
                    "provider {id}: an OpenID Connect provider's endpoints come from its discovery; \
                     drop the *_endpoint keys (or set kind = \"oauth2\")"
                );
                let issuer =
                    self.issuer.clone().with_context(|| format!("provider {id}: name its issuer"))?;
                Ok((ProviderKind::OpenIdConnect, issuer, scopes(&["openid", "profile", "email"])))
            }
            ProviderKindName::Github | ProviderKindName::Oauth2 => {
                let mut oauth2 = OAuth2Provider::github();
                if self.kind == ProviderKindName::Oauth2 {
                    let need = |key: &Option<String>, name: &str| {
                        key.clone().with_context(|| format!("provider {id}: kind = \"oauth2\" needs {name}"))
                    };
                    oauth2.authorization_endpoint =
                        need(&self.authorization_endpoint, "authorization_endpoint")?;
                    oauth2.token_endpoint = need(&self.token_endpoint, "token_endpoint")?;
                    oauth2.user_endpoint = need(&self.user_endpoint, "user_endpoint")?;
                    oauth2.emails_endpoint = self.emails_endpoint.clone();
                    oauth2.secret_in_body = false;
                    let f = &self.fields;
                    let or = |value: &Option<String>, default: &str| {
                        value.clone().unwrap_or_else(|| default.to_owned())
                    };
                    oauth2.fields.subject = or(&f.subject, "id");
                    oauth2.fields.username = or(&f.username, "login");
                    oauth2.fields.name = or(&f.name, "name");
                    oauth2.fields.email = or(&f.email, "email");
                    oauth2.fields.email_verified = f.email_verified.clone();
                    oauth2.fields.picture = or(&f.picture, "avatar_url");
                } else {
                    // GitHub Enterprise: the same API elsewhere.
                    for (key, slot) in [
                        (&self.authorization_endpoint, &mut oauth2.authorization_endpoint),
                        (&self.token_endpoint, &mut oauth2.token_endpoint),
                        (&self.user_endpoint, &mut oauth2.user_endpoint),
                    ] {
                        if let Some(value) = key {
                            *slot = value.clone();
                        }
                    }
                    if let Some(emails) = &self.emails_endpoint {
                        oauth2.emails_endpoint = Some(emails.clone());
                    }
                }
                match self.token_endpoint_auth.as_deref() {
                    None => {}
                    Some("client_secret_basic") => oauth2.secret_in_body = false,
                    Some("client_secret_post") => oauth2.secret_in_body = true,
                    Some(other) => bail!(
                        "provider {id}: token_endpoint_auth {other:?}: use client_secret_basic or client_secret_post"
                    ),
                }
                let issuer = match (&self.issuer, self.kind) {
                    (Some(issuer), _) => issuer.clone(),
                    (None, ProviderKindName::Github) => "https://github.com".to_owned(),
                    (None, _) => bail!("provider {id}: name the issuer its accounts go by (its base URL)"),
                };
                let default_scopes = if self.kind == ProviderKindName::Github {
                    scopes(&["read:user", "user:email"])
                } else {
                    Vec::new()
                };
                Ok((ProviderKind::OAuth2(Box::new(oauth2)), issuer, default_scopes))
            }
        }
    }

    /// The name its accounts go by here (its issuer), without reading its secret.
    pub fn accounts_issuer(&self) -> anyhow::Result<String> {
        Ok(self.kind_and_issuer()?.1)
    }

    /// The issuer's view of it: its secret read, its rules checked.
    pub fn provider(&self) -> anyhow::Result<ProviderConfig> {
        let id = &self.id;
        let secret = match (&self.client_secret, &self.client_secret_env, &self.client_secret_file) {
            (Some(secret), None, None) => secret.clone(),
            (None, Some(name), None) => ClientSecret::new(std::env::var(name).with_context(|| {
                format!("provider {id}: client_secret_env names {name}, which is not set")
            })?),
            (None, None, Some(path)) => ClientSecret::new(
                agentgate_issuer::seal::read_private_file(path)
                    .with_context(|| format!("provider {id}: client_secret_file"))?
                    .trim(),
            ),
            _ => bail!(
                "provider {id}: give its secret once: client_secret, client_secret_env or client_secret_file"
            ),
        };
        let admit = match (self.people, self.email_domains.is_empty()) {
            (PeopleRule::Anyone, true) => Admission::Anyone,
            (PeopleRule::Existing, true) => Admission::Existing,
            (PeopleRule::EmailDomains, false) => {
                Admission::EmailDomains(self.email_domains.iter().map(|d| d.trim().to_lowercase()).collect())
            }
            (PeopleRule::EmailDomains, true) => {
                bail!("provider {id}: people = \"email-domains\" needs email_domains = [\"example.com\", …]")
            }
            (_, false) => bail!("provider {id}: email_domains goes with people = \"email-domains\""),
        };
        let (kind, issuer, default_scopes) = self.kind_and_issuer()?;
        let scopes = self.scopes.clone().unwrap_or(default_scopes);
        let config = ProviderConfig {
            id: id.clone(),
            name: self.name.clone().unwrap_or_else(|| id.clone()),
            issuer,
            kind,
            client_id: self.client_id.clone(),
            client_secret: secret,
            scopes,
            admit,
            keep_refresh_token: self.keep_refresh_token,
        };
        config.check().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// The audit log: one JSON line per MCP request on a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The file lines are appended to; `-` for stdout.
    pub file: PathBuf,
}

impl Config {
    /// The observer flags this file sets.
    pub fn observe(&self) -> crate::observe::ObserveArgs {
        crate::observe::ObserveArgs {
            audit_log: self.audit.as_ref().map(|a| a.file.display().to_string()),
            metrics_listen: self.metrics_listen,
        }
    }
}

/// One gateway route: a path here and the MCP server behind it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Its path on this server (its resource URL is the issuer's origin + path).
    pub path: String,
    /// An `http(s)://` URL (Streamable HTTP) or a command line (stdio, run by `sh -c`).
    pub upstream: String,
    /// Its name on the consent page and in logs [default: the path's last segment].
    pub name: Option<String>,
    /// The stdio program's environment beside the server's (`{person}` in values).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The stdio program's working directory (`{person}` allowed).
    pub cwd: Option<PathBuf>,
    /// The scopes a token needs here, and the words for each.
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
    /// The name and scope words in other languages (`[route.translations.es]`).
    #[serde(default)]
    pub translations: agentgate_issuer::store::Translations,
    /// Seconds the upstream may stay silent (before and within an answer).
    pub timeout: Option<f64>,
    /// The largest request body passed on, in bytes.
    pub max_body_bytes: Option<usize>,
    /// The most stdio processes at once (one per person).
    pub max_processes: Option<usize>,
    /// Seconds after which a stdio process nobody used is ended.
    pub idle_timeout: Option<f64>,
    /// One stdio process for everyone, for servers that keep no state.
    #[serde(default)]
    pub shared_process: bool,
    /// What the upstream is told about the caller: none, headers or token.
    #[serde(default)]
    pub identity: IdentityMode,
    /// The audience of the tokens minted for the upstream [default: its URL].
    pub audience: Option<String>,
    /// The id of a `[[provider]]` that keeps refresh tokens: the upstream gets
    /// the person's access token there as `X-Agentgate-Provider-Token`.
    pub provider_token: Option<String>,
    /// The scopes every request needs [default: the route's scopes no rule names].
    pub require: Option<Vec<String>>,
    /// Whether the audit log keeps the arguments of calls (off: they may hold
    /// the person's data).
    #[serde(default)]
    pub audit_arguments: bool,
    /// What each tool needs (`[route.tools.NAME]`).
    #[serde(default)]
    pub tools: BTreeMap<String, RuleConfig>,
    /// What each prompt needs (`[route.prompts.NAME]`).
    #[serde(default)]
    pub prompts: BTreeMap<String, RuleConfig>,
    /// What each resource needs, by URI (`[route.resources."URI"]`).
    #[serde(default)]
    pub resources: BTreeMap<String, RuleConfig>,
}

/// What one tool, prompt or resource of a route needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Scopes needed on top of the route's own.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Who may use it at all: `first-party`, `third-party` or client ids [default: every app].
    #[serde(default)]
    pub apps: Vec<String>,
}

impl RouteConfig {
    /// The route this section describes, checked.
    pub fn route(&self) -> anyhow::Result<Route> {
        let mut upstream = Upstream::parse(&self.upstream).with_context(|| format!("route {}", self.path))?;
        match &mut upstream {
            Upstream::Stdio { env, cwd, .. } => {
                *env = self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                cwd.clone_from(&self.cwd);
            }
            Upstream::Http(_) => ensure!(
                self.env.is_empty()
                    && self.cwd.is_none()
                    && self.max_processes.is_none()
                    && self.idle_timeout.is_none()
                    && !self.shared_process,
                "route {}: env, cwd, max_processes, idle_timeout and shared_process are for a program on \
                 stdio, and this upstream is a URL",
                self.path
            ),
        }
        let mut route = Route::new(&self.path, upstream)?;
        if let Some(name) = &self.name {
            route.name.clone_from(name);
        }
        if let Some(timeout) = self.timeout {
            route.timeout = seconds(&format!("route {}: timeout", self.path), timeout)?;
        }
        if let Some(idle) = self.idle_timeout {
            route.idle_timeout = seconds(&format!("route {}: idle_timeout", self.path), idle)?;
        }
        for (name, value) in [("max_body_bytes", self.max_body_bytes), ("max_processes", self.max_processes)]
        {
            ensure!(value != Some(0), "route {}: {name} must be at least 1", self.path);
        }
        route.max_body_bytes = self.max_body_bytes.unwrap_or(route.max_body_bytes);
        route.max_processes = self.max_processes.unwrap_or(route.max_processes);
        route.shared = self.shared_process;
        route.identity = self.identity;
        route.audience.clone_from(&self.audience);
        route.provider_token.clone_from(&self.provider_token);
        route.scopes.clone_from(&self.scopes);
        route.translations.clone_from(&self.translations);
        route.require.clone_from(&self.require);
        route.audit_arguments = self.audit_arguments;
        for (kind, rules) in
            [(Kind::Tool, &self.tools), (Kind::Prompt, &self.prompts), (Kind::Resource, &self.resources)]
        {
            for (name, rule) in rules {
                let apps = rule.apps.iter().map(|a| Apps::parse(a)).collect();
                route.policy = route.policy.with(kind, name, Rule { scopes: rule.scopes.clone(), apps });
            }
        }
        route.check(true)?;
        Ok(route)
    }
}

/// Lifetimes in seconds; each absent one keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifetimes {
    pub access_token: Option<i64>,
    pub id_token: Option<i64>,
    pub refresh_token: Option<i64>,
    /// Seconds a rotated refresh token is still taken from its own app as a
    /// retry (0: never).
    pub refresh_overlap: Option<i64>,
    pub authorization_code: Option<i64>,
    pub session: Option<i64>,
}

/// Failed sign-ins allowed per window.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInLimits {
    pub failures_per_account: Option<i64>,
    pub failures_per_address: Option<i64>,
    /// The window, in seconds.
    pub window: Option<i64>,
    /// Whether people may sign in with a password kept here [default: true];
    /// false leaves only the identity providers.
    pub passwords: Option<bool>,
}

fn token_policy() -> RegistrationPolicy {
    RegistrationPolicy::Token
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            policy: token_policy(),
            per_address: None,
            window: None,
            scopes: None,
            client_documents: false,
        }
    }
}

/// Who may register apps themselves, how often, and with which scopes at most.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// `token` (the default: an initial access token is needed), `open` or `off`.
    #[serde(default = "token_policy")]
    pub policy: RegistrationPolicy,
    /// Registrations allowed per client address per window.
    pub per_address: Option<i64>,
    /// The window, in seconds.
    pub window: Option<i64>,
    /// The scopes a self-registered app may have (default: the OpenID scopes and
    /// every resource's scopes).
    pub scopes: Option<Vec<String>>,
    /// Whether apps known only by the URL of their metadata document are accepted.
    #[serde(default)]
    pub client_documents: bool,
}

/// One API resource: its URL, a name for the consent page, and its scopes with
/// the plain words that explain each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    pub url: String,
    pub name: String,
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
    /// The name and scope words in other languages (`[resource.translations.es]`).
    #[serde(default)]
    pub translations: agentgate_issuer::store::Translations,
}

/// The in-process `whoami` MCP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoamiConfig {
    /// Its path on this server (its resource URL is the issuer's origin + path).
    #[serde(default = "default_whoami_path")]
    pub path: String,
    /// The scope every call needs.
    #[serde(default = "default_whoami_scope")]
    pub scope: String,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_whoami_path() -> String {
    "/mcp".to_owned()
}

fn default_whoami_scope() -> String {
    "mcp:tools".to_owned()
}

impl Config {
    /// Reads and parses `path`; relative paths in it become relative to its folder.
    /// Call [`Config::check`] after applying command-line overrides.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("in the configuration file {}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let cwds = config.routes.iter_mut().filter_map(|r| r.cwd.as_mut());
        let audit = config.audit.as_mut().map(|a| &mut a.file).filter(|f| f.as_os_str() != "-");
        let secrets = config.providers.iter_mut().filter_map(|p| p.client_secret_file.as_mut());
        let files =
            [&mut config.data_dir, &mut config.key_encryption_key_file].into_iter().flatten().chain(secrets);
        for file in files.chain(cwds).chain(audit) {
            if file.is_relative() {
                *file = folder.join(&*file);
            }
        }
        Ok(config)
    }

    /// Checks what the types cannot: the issuer URL, positive lifetimes and limits,
    /// the whoami path.
    pub fn check(&self) -> anyhow::Result<()> {
        check_issuer(&self.issuer)?;
        let l = &self.lifetimes;
        let s = &self.sign_in;
        for (name, value) in [
            ("lifetimes.access_token", l.access_token),
            ("lifetimes.id_token", l.id_token),
            ("lifetimes.refresh_token", l.refresh_token),
            ("lifetimes.authorization_code", l.authorization_code),
            ("lifetimes.session", l.session),
            ("sign_in.failures_per_account", s.failures_per_account),
            ("sign_in.failures_per_address", s.failures_per_address),
            ("sign_in.window", s.window),
            ("registration.per_address", self.registration.per_address),
            ("registration.window", self.registration.window),
        ] {
            if let Some(value) = value {
                ensure!(value > 0, "{name} must be a positive number, not {value}");
            }
        }
        ensure!(
            l.refresh_overlap.is_none_or(|o| (0..=300).contains(&o)),
            "lifetimes.refresh_overlap must be from 0 (off) to 300 seconds, not {}",
            l.refresh_overlap.unwrap_or_default()
        );
        // Rate-limit windows are purged after a day.
        ensure!(
            self.registration.window.is_none_or(|w| w <= 86_400),
            "registration.window may be at most 86400 seconds (a day)"
        );
        for scope in self.registration.scopes.iter().flatten() {
            ensure!(
                agentgate_guard::is_valid_scope(scope),
                "registration.scopes: {scope:?} is not a valid scope"
            );
        }
        if let Some(whoami) = &self.whoami {
            ensure!(
                whoami.path.starts_with('/') && whoami.path.len() > 1 && !whoami.path.contains(['?', '#']),
                "whoami.path must be a path such as \"/mcp\", not {:?}",
                whoami.path
            );
            ensure!(
                !crate::observe::HEALTH_PATHS.contains(&whoami.path.as_str()),
                "whoami.path {}: health checks answer there; choose another path",
                whoami.path
            );
        }
        self.routes()?;
        self.providers()?;
        Ok(())
    }

    /// The gateway routes, each checked, and checked against each other, the
    /// issuer's own paths, the whoami server and the file's resources.
    pub fn routes(&self) -> anyhow::Result<Vec<Route>> {
        let origin = url::Url::parse(&self.issuer)?.origin().ascii_serialization();
        let mut taken: Vec<&str> = self.whoami.iter().map(|w| w.path.as_str()).collect();
        taken.extend(crate::observe::HEALTH_PATHS);
        let mut own: Vec<String> = self.whoami_url().into_iter().collect();
        let mut routes = Vec::new();
        for section in &self.routes {
            let route = section.route()?;
            route.check_beside_issuer(&taken)?;
            taken.push(&section.path);
            let url = format!("{origin}{}", route.path);
            ensure!(
                !self.resources.iter().any(|r| r.url == url),
                "route {}: its resource {url} is also a [[resource]]; the route declares it, so remove that section",
                route.path
            );
            own.push(url);
            routes.push(route);
        }
        for route in &routes {
            if let Some(audience) = route.token_audience() {
                ensure!(
                    !own.contains(&audience),
                    "route {}: the upstream's tokens would be for {audience}, which this server serves itself; \
                     a token minted for the upstream must be good there only",
                    route.path
                );
            }
        }
        Ok(routes)
    }

    /// The identity providers, their secrets read.
    pub fn providers(&self) -> anyhow::Result<Vec<ProviderConfig>> {
        let mut seen = Vec::new();
        let mut providers = Vec::new();
        for section in &self.providers {
            ensure!(
                !seen.contains(&&section.id),
                "provider {}: two [[provider]] sections have this id",
                section.id
            );
            seen.push(&section.id);
            let provider = section.provider()?;
            // An account is (issuer, subject): two sections for one issuer
            // would share its people and their kept tokens.
            if let Some(twin) = providers.iter().find(|p: &&ProviderConfig| p.issuer == provider.issuer) {
                bail!(
                    "provider {}: provider {} has the same issuer {}; keep one",
                    provider.id,
                    twin.id,
                    provider.issuer
                );
            }
            if provider.keep_refresh_token && matches!(provider.kind, ProviderKind::OAuth2(_)) {
                tracing::warn!(
                    provider = %provider.id,
                    "keep_refresh_token: GitHub gives refresh tokens only to GitHub Apps whose user tokens \
                     expire (an OAuth App gives none), and other OAuth 2.0 providers may give none"
                );
            }
            providers.push(provider);
        }
        ensure!(
            self.sign_in.passwords != Some(false) || !providers.is_empty(),
            "sign_in.passwords = false needs at least one [[provider]]: nobody could sign in"
        );
        Ok(providers)
    }

    /// The issuer's settings (with the providers' secrets read).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::new(&self.issuer);
        let l = &self.lifetimes;
        let s = &self.sign_in;
        let set = |target: &mut i64, value: Option<i64>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        set(&mut settings.access_token_ttl, l.access_token);
        set(&mut settings.id_token_ttl, l.id_token);
        set(&mut settings.refresh_token_ttl, l.refresh_token);
        set(&mut settings.refresh_overlap, l.refresh_overlap);
        set(&mut settings.code_ttl, l.authorization_code);
        set(&mut settings.session_ttl, l.session);
        set(&mut settings.sign_in_failures_per_account, s.failures_per_account);
        set(&mut settings.sign_in_failures_per_address, s.failures_per_address);
        set(&mut settings.sign_in_window, s.window);
        let r = &self.registration;
        settings.registration = r.policy;
        set(&mut settings.registrations_per_address, r.per_address);
        set(&mut settings.registration_window, r.window);
        settings.registration_scopes = r.scopes.clone();
        settings.client_documents = r.client_documents;
        settings.default_resource = self.default_resource.clone();
        settings.trusted_proxies = self.trusted_proxies.clone();
        settings.identity_providers = self.providers()?;
        settings.passwords = s.passwords.unwrap_or(true);
        Ok(settings)
    }

    /// The whoami server's resource URL: the issuer's origin and the configured path.
    pub fn whoami_url(&self) -> Option<String> {
        let whoami = self.whoami.as_ref()?;
        let issuer = url::Url::parse(&self.issuer).ok()?;
        Some(format!("{}{}", issuer.origin().ascii_serialization(), whoami.path))
    }
}

/// An issuer URL must be https, or plain http on a loopback host (to try things
/// on one machine); no query, fragment or credentials.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(issuer).with_context(|| format!("issuer {issuer:?} is not a URL"))?;
    ensure!(
        url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none(),
        "issuer {issuer:?} must have no query, fragment or credentials"
    );
    match url.scheme() {
        "https" => Ok(()),
        "http" if agentgate_guard::is_loopback(&url) => Ok(()),
        "http" => bail!(
            "issuer {issuer:?} must be https: tokens and passwords cross this URL (plain http is \
             accepted only on loopback, for trying things on one machine)"
        ),
        other => bail!("issuer {issuer:?}: unsupported scheme {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn identity_providers_take_their_secret_once_and_say_who_comes_in() {
        let with = |extra: &str| {
            let text = format!(
                "issuer = \"https://auth.example.com\"\n[[provider]]\nid = \"logto\"\n\
                 issuer = \"https://tenant.logto.app/oidc\"\nclient_id = \"c\"\n{extra}"
            );
            parse(&text)
        };
        let config =
            with("client_secret = \"s\"\npeople = \"email-domains\"\nemail_domains = [\"Example.com\"]\n")
                .unwrap();
        let settings = config.settings().unwrap();
        let logto = &settings.identity_providers[0];
        assert_eq!((logto.id.as_str(), logto.name.as_str()), ("logto", "logto"));
        assert_eq!(logto.admit, Admission::EmailDomains(vec!["example.com".into()]));
        assert_eq!(logto.scopes, ["openid", "profile", "email"]);
        assert!(settings.passwords, "passwords stay unless turned off");
        assert!(!format!("{logto:?}").contains("\"s\""), "the secret is not in Debug: {logto:?}");
        // Any variable that is set will do: PATH always is.
        assert!(with("client_secret_env = \"PATH\"\npeople = \"anyone\"\n").is_ok());

        for (extra, words) in [
            ("people = \"anyone\"\n", "give its secret once"),
            (
                "client_secret = \"s\"\nclient_secret_env = \"X\"\npeople = \"anyone\"\n",
                "give its secret once",
            ),
            (
                "client_secret_env = \"AGENTGATE_TEST_UNSET_SECRET\"\npeople = \"anyone\"\n",
                "which is not set",
            ),
            ("client_secret = \"s\"\n", "missing field `people`"),
            ("client_secret = \"s\"\npeople = \"everyone\"\n", "unknown variant"),
            ("client_secret = \"s\"\npeople = \"email-domains\"\n", "needs email_domains"),
            (
                "client_secret = \"s\"\npeople = \"anyone\"\nemail_domains = [\"a.example\"]\n",
                "goes with people",
            ),
            ("client_secret = \"s\"\npeople = \"anyone\"\nscopes = [\"profile\"]\n", "must include openid"),
            (
                "client_secret = \"s\"\npeople = \"anyone\"\n[sign_in]\npasswords = false\n[[provider]]\nid = \"logto\"\nissuer = \"https://b.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\npeople = \"anyone\"\n",
                "two [[provider]] sections",
            ),
            (
                "client_secret = \"s\"\npeople = \"anyone\"\n[[provider]]\nid = \"again\"\nissuer = \"https://tenant.logto.app/oidc\"\nclient_id = \"c2\"\nclient_secret = \"s\"\npeople = \"anyone\"\n",
                "has the same issuer",
            ),
        ] {
            let error = format!("{:#}", with(extra).unwrap_err());
            assert!(error.contains(words), "{extra}: {error}");
        }
        let bad_id = parse(
            "issuer = \"https://a.example\"\n[[provider]]\nid = \"Log To\"\nissuer = \"https://b.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\npeople = \"anyone\"\n",
        );
        assert!(format!("{:#}", bad_id.unwrap_err()).contains("lowercase letters"));
        let nobody = parse("issuer = \"https://a.example\"\n[sign_in]\npasswords = false\n");
        assert!(format!("{:#}", nobody.unwrap_err()).contains("nobody could sign in"));
    }

    #[test]
    fn github_and_other_oauth2_providers_name_their_endpoints() {
        let with = |extra: &str| {
            parse(&format!(
                "issuer = \"https://auth.example.com\"\n[[provider]]\nid = \"gh\"\nclient_id = \"c\"\n\
                 client_secret = \"s\"\npeople = \"anyone\"\n{extra}"
            ))
        };
        let github = with("kind = \"github\"\n").unwrap().settings().unwrap().identity_providers.remove(0);
        assert_eq!(github.issuer, "https://github.com");
        assert_eq!(github.scopes, ["read:user", "user:email"]);
        assert_eq!(github.kind, ProviderKind::OAuth2(Box::new(OAuth2Provider::github())));
        let other = with(
            "kind = \"oauth2\"\nissuer = \"https://git.example\"\nauthorization_endpoint = \"https://git.example/a\"\n\
             token_endpoint = \"https://git.example/t\"\nuser_endpoint = \"https://git.example/u\"\n\
             [provider.fields]\nsubject = \"uid\"\nemail_verified = \"email_confirmed\"\n",
        )
        .unwrap()
        .settings()
        .unwrap()
        .identity_providers
        .remove(0);
        let ProviderKind::OAuth2(oauth2) = other.kind else { panic!("{other:?}") };
        assert_eq!((oauth2.fields.subject.as_str(), oauth2.fields.username.as_str()), ("uid", "login"));
        assert_eq!(oauth2.fields.email_verified.as_deref(), Some("email_confirmed"));
        assert!(!oauth2.secret_in_body && oauth2.emails_endpoint.is_none());
        for (extra, words) in [
            ("kind = \"oauth2\"\nissuer = \"https://git.example\"\n", "needs authorization_endpoint"),
            (
                "kind = \"oauth2\"\nauthorization_endpoint = \"https://g/a\"\ntoken_endpoint = \"https://g/t\"\nuser_endpoint = \"https://g/u\"\n",
                "name the issuer",
            ),
            (
                "issuer = \"https://idp.example\"\ntoken_endpoint = \"https://idp.example/t\"\n",
                "come from its discovery",
            ),
            (
                "kind = \"github\"\ntoken_endpoint_auth = \"private_key_jwt\"\n",
                "use client_secret_basic or client_secret_post",
            ),
            ("kind = \"github\"\nuser_endpoint = \"http://api.example/user\"\n", "must be an https URL"),
            ("kind = \"gitlab\"\n", "unknown variant"),
        ] {
            let error = format!("{:#}", with(extra).unwrap_err());
            assert!(error.contains(words), "{extra}: {error}");
        }
    }

    #[test]
    fn a_full_file_sets_everything() {
        let config = parse(
            r#"
            issuer = "https://auth.example.com/tenant"
            listen = "0.0.0.0:9000"
            trusted_proxies = ["10.0.0.1"]
            default_resource = "https://auth.example.com/mcp"
            [lifetimes]
            access_token = 300
            [sign_in]
            failures_per_account = 3
            [registration]
            policy = "open"
            client_documents = true
            per_address = 5
            scopes = ["openid", "mail:read"]
            [[resource]]
            url = "https://mail.example.com/mcp"
            name = "Mail"
            scopes = { "mail:read" = "Read your mail" }
            [resource.translations.ja]
            name = "メール"
            scopes = { "mail:read" = "メールを読む" }
            [whoami]
            "#,
        )
        .unwrap();
        let settings = config.settings().unwrap();
        assert_eq!(settings.issuer, "https://auth.example.com/tenant");
        assert_eq!(settings.access_token_ttl, 300);
        assert_eq!(settings.id_token_ttl, 600, "absent lifetimes keep their default");
        assert_eq!(settings.sign_in_failures_per_account, 3);
        assert_eq!(settings.registration, RegistrationPolicy::Open);
        assert_eq!((settings.registrations_per_address, settings.registration_window), (5, 3600));
        assert_eq!(settings.registration_scopes, Some(vec!["openid".into(), "mail:read".into()]));
        let defaults = parse("issuer = \"https://a.example\"").unwrap().settings().unwrap();
        assert_eq!(
            defaults.registration,
            RegistrationPolicy::Token,
            "an initial access token unless configured"
        );
        assert!(settings.client_documents);
        assert!(!defaults.client_documents, "off unless configured");
        assert_eq!(settings.trusted_proxies, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.resources[0].scopes["mail:read"], "Read your mail");
        let japanese = &config.resources[0].translations["ja"];
        assert_eq!(
            (japanese.name.as_deref(), japanese.scopes["mail:read"].as_str()),
            (Some("メール"), "メールを読む")
        );
        assert_eq!(config.whoami_url().unwrap(), "https://auth.example.com/mcp");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, reason) in [
            ("issuer = \"http://auth.example.com\"", "must be https"),
            ("issuer = \"https://auth.example.com?x=1\"", "no query"),
            ("issuer = \"ftp://auth.example.com\"", "unsupported scheme"),
            ("issuer = \"https://a.example\"\nlisten = \"nowhere\"", "socket address"),
            ("issuer = \"https://a.example\"\nisuer = \"typo\"", "unknown field"),
            ("issuer = \"https://a.example\"\n[lifetimes]\naccess_token = 0", "positive"),
            ("issuer = \"https://a.example\"\n[lifetimes]\nrefresh_overlap = -1", "from 0 (off) to 300"),
            ("issuer = \"https://a.example\"\n[lifetimes]\nrefresh_overlap = 301", "from 0 (off) to 300"),
            ("issuer = \"https://a.example\"\n[whoami]\npath = \"mcp\"", "whoami.path"),
            ("issuer = \"https://a.example\"\n[registration]\npolicy = \"anyone\"", "unknown variant"),
            ("issuer = \"https://a.example\"\n[registration]\nper_address = 0", "positive"),
            ("issuer = \"https://a.example\"\n[registration]\nwindow = 86401", "at most 86400"),
            ("issuer = \"https://a.example\"\n[registration]\nscopes = [\"a b\"]", "not a valid scope"),
            ("listen = \"127.0.0.1:1\"", "missing field `issuer`"),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn routes_take_their_upstream_bounds_scopes_and_identity_from_the_file() {
        let config = parse(
            r#"
            issuer = "https://auth.example.com/tenant"
            [whoami]
            [[route]]
            path = "/memory"
            upstream = "npx -y @modelcontextprotocol/server-memory"
            env = { MEMORY_FILE_PATH = "/var/lib/memory/{person}.jsonl" }
            max_processes = 4
            idle_timeout = 60
            [[route]]
            path = "/notes"
            name = "Notes"
            upstream = "http://127.0.0.1:9000/mcp"
            scopes = { "notes:read" = "Read your notes" }
            timeout = 2.5
            identity = "token"
            [route.translations.es]
            name = "Notas"
            "#,
        )
        .unwrap();
        let routes = config.routes().unwrap();
        let (memory, notes) = (&routes[0], &routes[1]);
        assert!(
            matches!(&memory.upstream, Upstream::Stdio { env, .. } if env[0].1.ends_with("{person}.jsonl"))
        );
        assert_eq!((memory.max_processes, memory.idle_timeout.as_secs()), (4, 60));
        assert_eq!(memory.scopes()["mcp:tools"], "Use the tools of memory");
        assert_eq!((notes.name.as_str(), notes.timeout.as_millis()), ("Notes", 2500));
        assert_eq!(notes.scopes().into_keys().collect::<Vec<_>>(), ["notes:read"]);
        assert_eq!(
            notes.token_audience().as_deref(),
            Some("http://127.0.0.1:9000/mcp"),
            "the upstream's URL"
        );
        assert_eq!(notes.translations["es"].name.as_deref(), Some("Notas"));
        assert_eq!(memory.identity, IdentityMode::None);

        for (text, reason) in [
            ("[whoami]\n[[route]]\npath = \"/mcp\"\nupstream = \"npx x\"", "choose another path"),
            ("[[route]]\npath = \"/token\"\nupstream = \"npx x\"", "choose another path"),
            (
                "[[route]]\npath = \"/a\"\nupstream = \"npx x\"\n[[route]]\npath = \"/a\"\nupstream = \"npx y\"",
                "choose another path",
            ),
            (
                "[[resource]]\nurl = \"https://a.example/a\"\nname = \"A\"\n[[route]]\npath = \"/a\"\nupstream = \"npx x\"",
                "also a [[resource]]",
            ),
            ("[[route]]\npath = \"/a\"\nupstream = \"\"", "the upstream is empty"),
            ("[[route]]\npath = \"/a\"\nupstream = \"npx x\"\nidentity = \"cookie\"", "unknown variant"),
            (
                "[[route]]\npath = \"/a\"\nupstream = \"npx x\"\n[route.tools.t]\nscopes = [\"w\"]",
                "does not describe",
            ),
            ("[[route]]\npath = \"/a\"\nupstream = \"npx x\"\nrequire = [\"w\"]", "does not describe"),
            (
                "[[route]]\npath = \"/a\"\nupstream = \"npx x\"\nprovider_token = \"p\"",
                "a program on stdio has none",
            ),
            (
                "[[route]]\npath = \"/a\"\nupstream = \"http://10.0.0.2/mcp\"\nprovider_token = \"p\"",
                "in the clear",
            ),
            (
                "[[route]]\npath = \"/a\"\nupstream = \"npx x\"\n[route.tools.t]\nscope = [\"w\"]",
                "unknown field",
            ),
        ] {
            let error =
                format!("{:#}", parse(&format!("issuer = \"https://a.example\"\n{text}")).unwrap_err());
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn loopback_http_is_allowed_for_local_trials() {
        parse("issuer = \"http://127.0.0.1:8080\"").unwrap();
        parse("issuer = \"http://localhost:8080\"").unwrap();
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = std::env::temp_dir().join(format!("agentgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agentgate.toml");
        let text = "issuer = \"https://a.example\"\ndata_dir = \"data\"\n\
                    [[route]]\npath = \"/m\"\nupstream = \"npx x\"\ncwd = \"memory/{person}\"\n";
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.routes[0].cwd.as_deref(), Some(dir.join("memory/{person}").as_path()));
        assert_eq!(config.data_dir.unwrap(), dir.join("data"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
