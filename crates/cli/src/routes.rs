//! Gateway routes: a public MCP path on this server and the upstream MCP
//! server behind it, as `agentgate gateway`, `dev --route` and the
//! configuration file's `[[route]]` describe them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgate_gateway::audit::AuditLayer;
use agentgate_gateway::policy::Policy;
use agentgate_gateway::provider_token::TokenFuture;
use agentgate_gateway::{
    AppDirectory, AppInfo, DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, HttpUpstream, Identity, Minter,
    NoProviderToken, Policed, ProviderTokens, StdioCommand, StdioOptions, StdioUpstream, UpstreamTokens,
};
use agentgate_guard::{AuthInfo, Guard};
use agentgate_issuer::Issuer;
use agentgate_issuer::store::{AnyStore, Store, Translations};
use agentgate_issuer::tokens::OnBehalf;
use agentgate_issuer::upstream::ProviderTokenError;
use anyhow::{Context, bail, ensure};
use axum::routing::{MethodRouter, any_service};
use serde::Deserialize;
use tower::Layer;

use crate::observe::Observer;

/// The scope a route needs when its configuration names none.
pub const DEFAULT_SCOPE: &str = "mcp:tools";

/// Where a route's MCP server is.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A Streamable HTTP endpoint.
    Http(url::Url),
    /// A program on stdio, run by `sh -c`.
    Stdio {
        /// The command line.
        command: String,
        /// Its environment beside the gateway's (`{person}` in values).
        env: Vec<(String, String)>,
        /// Its working directory.
        cwd: Option<PathBuf>,
    },
}

impl Upstream {
    /// An `http(s)://` URL is a Streamable HTTP upstream; anything else is a
    /// command line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        ensure!(!text.is_empty(), "the upstream is empty: give its URL or the program to run");
        if ["http://", "https://", "http+unix://"].iter().any(|scheme| text.starts_with(scheme)) {
            let url =
                url::Url::parse(text).map_err(|e| anyhow::anyhow!("upstream {text:?} is not a URL: {e}"))?;
            ensure!(
                url.scheme() != "http+unix" || agentgate_gateway::unix_socket(&url).is_some(),
                "upstream {text:?}: name the socket by its absolute path as the host, its slashes written %2F, \
                 e.g. http+unix://%2Frun%2Fnotes.sock/mcp"
            );
            return Ok(Upstream::Http(url));
        }
        Ok(Upstream::Stdio { command: text.to_owned(), env: Vec::new(), cwd: None })
    }
}

/// What a route tells its upstream about the caller (`identity` in the
/// configuration); see [`agentgate_gateway::identity`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Nothing.
    #[default]
    None,
    /// `X-Agentgate-*` headers, to an upstream on loopback or a Unix socket only.
    Headers,
    /// A short-lived token minted by this server's issuer for the upstream alone.
    Token,
}

impl std::str::FromStr for IdentityMode {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "none" => Ok(IdentityMode::None),
            "headers" => Ok(IdentityMode::Headers),
            "token" => Ok(IdentityMode::Token),
            other => bail!("identity {other:?}: expected none, headers or token"),
        }
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its path on this server, such as `/memory`.
    pub path: String,
    /// Its name in logs and errors.
    pub name: String,
    /// The MCP server behind it.
    pub upstream: Upstream,
    /// How long the upstream may stay silent (before and within an answer).
    pub timeout: Duration,
    /// The largest request body passed on.
    pub max_body_bytes: usize,
    /// The most stdio processes at once.
    pub max_processes: usize,
    /// A stdio process no request reached for this long is ended.
    pub idle_timeout: Duration,
    /// One stdio process for everyone.
    pub shared: bool,
    /// What the upstream is told about the caller.
    pub identity: IdentityMode,
    /// The audience of the tokens minted for the upstream (`identity =
    /// "token"`) [default: the upstream's URL].
    pub audience: Option<String>,
    /// The identity provider whose access token for the person the upstream
    /// gets (`X-Agentgate-Provider-Token`).
    pub provider_token: Option<String>,
    /// The scopes a token needs here, with the words the consent page shows
    /// [default: `mcp:tools`, "Use the tools of NAME"].
    pub scopes: BTreeMap<String, String>,
    /// The name and scope words in other languages.
    pub translations: Translations,
    /// What each tool, prompt and resource needs.
    pub policy: Policy,
    /// The scopes every request needs [default: the route's scopes that no
    /// rule of the policy names].
    pub require: Option<Vec<String>>,
    /// Whether the audit log keeps the arguments of calls.
    pub audit_arguments: bool,
}

impl Route {
    /// A route at `path` with the default bounds; its name is the path's
    /// last segment.
    pub fn new(path: &str, upstream: Upstream) -> anyhow::Result<Self> {
        ensure!(
            path.starts_with('/') && path.len() > 1 && !path.contains(['?', '#']),
            "a route's path must be a path such as \"/memory\", not {path:?}"
        );
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("mcp").to_owned();
        let stdio = StdioOptions::default();
        Ok(Self {
            path: path.to_owned(),
            name,
            upstream,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_processes: stdio.max_processes,
            idle_timeout: stdio.idle_timeout,
            shared: false,
            identity: IdentityMode::None,
            audience: None,
            provider_token: None,
            scopes: BTreeMap::new(),
            translations: Translations::default(),
            policy: Policy::new(),
            require: None,
            audit_arguments: false,
        })
    }

    /// The scopes every request needs: `require`, else the route's scopes
    /// that no rule names (those are needed only for what the rule covers).
    pub fn required_scopes(&self) -> Vec<String> {
        if let Some(require) = &self.require {
            return require.clone();
        }
        let ruled: Vec<&String> = self.policy.rules().flat_map(|(_, _, rule)| &rule.scopes).collect();
        self.scopes().into_keys().filter(|scope| !ruled.contains(&scope)).collect()
    }

    /// The consent page's words for each scope, with the names of what it
    /// opens when the policy says (`Change your memory (create_entities,
    /// delete_entities)`): names, not words, so the same in every language.
    fn consent_words(&self) -> (BTreeMap<String, String>, Translations) {
        let opens = |scope: &str| {
            let mut names: Vec<String> = self
                .policy
                .rules()
                .filter(|(_, _, rule)| rule.scopes.iter().any(|s| s == scope))
                .map(|(_, name, _)| name)
                .collect();
            names.sort_unstable();
            names
        };
        let with_names = |scope: &str, words: &str| -> String {
            let names = opens(scope);
            if names.is_empty() {
                return words.to_owned();
            }
            // The issuer keeps a scope's words to 200 characters.
            let mut text = format!("{words} (");
            for (i, name) in names.iter().enumerate() {
                let next = if i == 0 { name.to_string() } else { format!(", {name}") };
                if text.chars().count() + next.chars().count() + 1 > 199 {
                    text.push('…');
                    break;
                }
                text.push_str(&next);
            }
            text.push(')');
            text
        };
        let scopes =
            self.scopes().iter().map(|(scope, words)| (scope.clone(), with_names(scope, words))).collect();
        let mut translations = self.translations.clone();
        for texts in translations.values_mut() {
            for (scope, words) in texts.scopes.iter_mut() {
                *words = with_names(scope, words);
            }
        }
        (scopes, translations)
    }

    /// The scopes a token needs here and their words: the configured ones,
    /// else [`DEFAULT_SCOPE`].
    pub fn scopes(&self) -> BTreeMap<String, String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        BTreeMap::from([(DEFAULT_SCOPE.to_owned(), format!("Use the tools of {}", self.name))])
    }

    /// Checks what can be checked before anything starts: the scopes, and
    /// that the identity setting fits the upstream. `own_issuer` says whether
    /// this server's issuer is here to mint tokens.
    pub fn check(&self, own_issuer: bool) -> anyhow::Result<()> {
        for scope in self.scopes.keys() {
            ensure!(
                agentgate_guard::is_valid_scope(scope),
                "route {}: {scope:?} is not a valid scope",
                self.path
            );
        }
        let declared = self.scopes();
        for (kind, name, rule) in self.policy.rules() {
            for scope in &rule.scopes {
                ensure!(
                    declared.contains_key(scope),
                    "route {}: the {kind} {name:?} needs the scope {scope:?}, which the route's `scopes` does not \
                     describe; add it there with the words the consent page shows",
                    self.path
                );
            }
        }
        for scope in self.require.iter().flatten() {
            ensure!(
                declared.contains_key(scope),
                "route {}: `require` names {scope:?}, which the route's `scopes` does not describe",
                self.path
            );
        }
        match (&self.upstream, self.identity) {
            (_, IdentityMode::None) => {}
            (Upstream::Stdio { .. }, _) => bail!(
                "route {}: a program on stdio has no headers to carry the caller's identity; \
                 drop `identity` and use {{person}} in its env or cwd (it runs once per person)",
                self.path
            ),
            (Upstream::Http(url), IdentityMode::Headers) => ensure!(
                agentgate_guard::is_loopback(url) || agentgate_gateway::unix_socket(url).is_some(),
                "route {}: identity = \"headers\" sends X-Agentgate-Sub to whoever is at {url}, and anyone \
                 who reaches that address could send them too: only an upstream on loopback or a Unix socket \
                 may trust them; use identity = \"token\" for another host",
                self.path
            ),
            (Upstream::Http(_), IdentityMode::Token) => ensure!(
                own_issuer,
                "route {}: identity = \"token\" needs agentgate's own issuer to sign the upstream's token \
                 (agentgate serve or dev); in front of an outside issuer use --identity headers",
                self.path
            ),
        }
        if self.audience.is_some() {
            ensure!(
                self.identity == IdentityMode::Token,
                "route {}: `audience` is for identity = \"token\"; drop it or set the identity",
                self.path
            );
        }
        if let Some(audience) = &self.audience {
            url::Url::parse(audience)
                .with_context(|| format!("route {}: audience {audience:?} is not a URL", self.path))?;
        }
        if let Some(provider) = &self.provider_token {
            self.check_provider_token(provider, own_issuer)?;
        }
        Ok(())
    }

    /// A provider token goes only where it can be trusted: from this
    /// server's issuer, to an upstream over TLS, on loopback or on a socket.
    fn check_provider_token(&self, provider: &str, own_issuer: bool) -> anyhow::Result<()> {
        ensure!(
            own_issuer,
            "route {}: provider_token needs agentgate's own issuer, where people sign in with {provider:?} \
             (agentgate serve or dev)",
            self.path
        );
        match &self.upstream {
            Upstream::Stdio { .. } => bail!(
                "route {}: provider_token is sent in a header, and a program on stdio has none; \
                 put the MCP server behind an http URL",
                self.path
            ),
            Upstream::Http(url) => ensure!(
                url.scheme() == "https"
                    || agentgate_guard::is_loopback(url)
                    || agentgate_gateway::unix_socket(url).is_some(),
                "route {}: provider_token sends the person's token at {provider:?} to {url}, in the clear; \
                 use an https URL, or an upstream on loopback or a Unix socket",
                self.path
            ),
        }
        Ok(())
    }

    /// The audience of the tokens minted for the upstream.
    pub fn token_audience(&self) -> Option<String> {
        match (&self.upstream, self.identity) {
            (Upstream::Http(url), IdentityMode::Token) => {
                Some(self.audience.clone().unwrap_or_else(|| url.to_string()))
            }
            _ => None,
        }
    }

    /// `PATH=UPSTREAM`, as `agentgate dev --route` takes it.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let Some((path, upstream)) = spec.split_once('=') else {
            bail!(
                "--route {spec:?}: expected PATH=UPSTREAM, e.g. '/memory=npx -y @modelcontextprotocol/server-memory'"
            );
        };
        Self::new(path.trim(), Upstream::parse(upstream)?)
    }

    /// What the route forwards to, for logs and the welcome text.
    pub fn describe(&self) -> String {
        match &self.upstream {
            Upstream::Http(url) => url.to_string(),
            Upstream::Stdio { command, .. } => format!("stdio: {command}"),
        }
    }

    /// The route and its metadata (at its own path only, beside other
    /// resources on the same host), behind `guard`.
    pub fn router(&self, guard: &Guard, around: &Mounting) -> anyhow::Result<axum::Router> {
        let service = self.service(guard, around)?;
        Ok(axum::Router::new().route(&self.path, service).merge(guard.path_metadata_router()))
    }

    /// Refuses a path the issuer's own pages and endpoints use, or `taken`
    /// (another MCP endpoint on the same server).
    pub fn check_beside_issuer(&self, taken: &[&str]) -> anyhow::Result<()> {
        let first = self.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        ensure!(
            !agentgate_issuer::http::ROOTS.contains(&first)
                && !taken.iter().any(|t| t.trim_start_matches('/') == first),
            "route {}: the issuer or another MCP endpoint already serves /{first}; choose another path",
            self.path
        );
        Ok(())
    }

    /// The route's service, behind `guard`, mounted as `around` says.
    pub fn service(&self, guard: &Guard, around: &Mounting) -> anyhow::Result<MethodRouter> {
        self.check(around.issuer.is_some())?;
        Ok(match &self.upstream {
            Upstream::Http(url) => {
                let identity = match (self.identity, self.token_audience(), &around.issuer) {
                    (IdentityMode::Headers, _, _) => Identity::Headers,
                    (IdentityMode::Token, Some(audience), Some(issuer)) => {
                        Identity::Token(Arc::new(UpstreamTokens::new(IssuerMinter(issuer.clone()), audience)))
                    }
                    _ => Identity::None,
                };
                let mut upstream =
                    HttpUpstream::with_limits(&self.name, url.clone(), self.timeout, self.max_body_bytes)
                        .with_identity(identity);
                if let (Some(provider), Some(issuer)) = (&self.provider_token, &around.issuer) {
                    ensure!(
                        issuer.keeps_refresh_tokens(provider) == Some(true),
                        "route {}: provider_token = {provider:?} needs a [[provider]] with that id and \
                         keep_refresh_token = true",
                        self.path
                    );
                    let tokens = IssuerProviderTokens { issuer: issuer.clone(), provider: provider.clone() };
                    upstream = upstream.with_provider_token(Arc::new(tokens));
                }
                self.layered(guard, around, upstream)
            }
            Upstream::Stdio { command, env, cwd } => {
                let command = StdioCommand { command: command.clone(), cwd: cwd.clone(), env: env.clone() };
                let options = StdioOptions {
                    max_processes: self.max_processes,
                    idle_timeout: self.idle_timeout,
                    shared: self.shared,
                    timeout: self.timeout,
                    max_body_bytes: self.max_body_bytes,
                };
                let upstream = StdioUpstream::new(&self.name, command, options);
                around.observer.watch(&self.name, &upstream);
                self.layered(guard, around, upstream)
            }
        })
    }

    /// `upstream` behind the policy, the guard and the audit: the audit
    /// outermost, to see what the guard refuses too.
    fn layered<S>(&self, guard: &Guard, around: &Mounting, upstream: S) -> MethodRouter
    where
        S: tower::Service<
                http::Request<axum::body::Body>,
                Response = http::Response<axum::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
    {
        let mut policed = Policed::new(&self.name, self.policy.clone(), guard.clone(), upstream)
            .max_body_bytes(self.max_body_bytes)
            .timeout(self.timeout)
            .record_arguments(self.audit_arguments);
        if let Some(issuer) = &around.issuer {
            policed = policed.apps(Arc::new(IssuerApps::new(issuer.clone())));
        }
        let audit = AuditLayer::new(&self.name, around.observer.clone());
        any_service(audit.layer(guard.layer().layer(policed)))
    }

    /// The route beside this server's own issuer: its resource declared at
    /// `origin` + path (the consent page names it and its scopes), its guard
    /// against `issuer` with revocations told in memory, and tokens for the
    /// upstream minted by that issuer when the route says so.
    pub async fn mount(&self, around: &Mounting, origin: &str) -> anyhow::Result<axum::Router> {
        let issuer = around.issuer.as_ref().expect("a route beside an issuer");
        let store = issuer.store();
        let url = format!("{origin}{}", self.path);
        let (scopes, translations) = self.consent_words();
        let words: Vec<(&str, &str)> = scopes.iter().map(|(s, w)| (s.as_str(), w.as_str())).collect();
        let now = agentgate_issuer::now();
        agentgate_issuer::scopes::declare_resource(store, &url, &self.name, &words, &translations, now)
            .await
            .with_context(|| format!("the resource of route {}", self.path))?;
        let guard = Guard::builder(&issuer.settings().issuer, &url)
            .scopes(self.required_scopes())
            .scopes_supported(scopes.keys())
            .resource_name(&self.name)
            .revocation_check(issuer.revocations())
            .build()
            .with_context(|| format!("configuring the guard of route {}", self.path))?;
        self.router(&guard, around)
    }
}

/// What a route is mounted beside: this server's issuer, when it has one (it
/// signs the upstream's tokens and knows which apps are first-party), and the
/// observer its requests are reported to.
#[derive(Clone)]
pub struct Mounting {
    /// The issuer of `serve` and `dev`; none for `agentgate gateway`.
    pub issuer: Option<Arc<Issuer<AnyStore>>>,
    /// Where audit entries go.
    pub observer: Arc<Observer>,
}

/// This server's issuer, naming apps and people and placing apps as first-
/// or third-party, for the policy and the audit log. Answers are kept a
/// minute: names and kinds seldom change, and a removed app's or person's
/// tokens are refused by the guard anyway.
struct IssuerApps {
    issuer: Arc<Issuer<AnyStore>>,
    apps: Kept<AppInfo>,
    people: Kept<String>,
}

/// Answers kept for [`KEPT_FOR`], [`MAX_KEPT`] at most (then all are dropped).
type Kept<T> = Mutex<HashMap<String, (Option<T>, Instant)>>;
const KEPT_FOR: Duration = Duration::from_secs(60);
const MAX_KEPT: usize = 10_000;

impl IssuerApps {
    fn new(issuer: Arc<Issuer<AnyStore>>) -> Self {
        Self { issuer, apps: Mutex::default(), people: Mutex::default() }
    }
}

/// The kept answer for `key`, else `look_up`'s (kept; a failure is not).
async fn kept<T, F>(kept: &Kept<T>, key: &str, look_up: F) -> Option<T>
where
    T: Clone,
    F: std::future::Future<Output = Result<Option<T>, agentgate_issuer::store::StoreError>>,
{
    if let Some((answer, at)) = kept.lock().expect("never poisoned").get(key)
        && at.elapsed() < KEPT_FOR
    {
        return answer.clone();
    }
    let answer = match look_up.await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(error = %agentgate_guard::error_chain(&error), "looking up an app or a person for a route");
            return None;
        }
    };
    let mut kept = kept.lock().expect("never poisoned");
    if kept.len() >= MAX_KEPT {
        kept.clear();
    }
    kept.insert(key.to_owned(), (answer.clone(), Instant::now()));
    answer
}

impl AppDirectory for IssuerApps {
    fn app<'a>(
        &'a self,
        client_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<AppInfo>> + Send + 'a>> {
        Box::pin(kept(&self.apps, client_id, async move {
            let client = self.issuer.store().client(client_id).await?;
            Ok(client.map(|c| AppInfo { name: c.name, third_party: c.third_party }))
        }))
    }

    fn username<'a>(
        &'a self,
        sub: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(kept(&self.people, sub, async move {
            Ok(self.issuer.store().user(sub).await?.map(|user| user.username))
        }))
    }
}

/// This server's issuer, signing tokens for a route's upstream.
struct IssuerMinter(Arc<Issuer<AnyStore>>);

impl Minter for IssuerMinter {
    fn mint(&self, caller: &AuthInfo, audience: &str, expires_at: i64) -> Result<String, String> {
        // The guard accepts tokens without `client_id` from outside issuers;
        // this issuer's always carry one.
        let client_id = caller.client_id.as_deref().ok_or("the agent's token names no client")?;
        Ok(self.0.mint_on_behalf(&OnBehalf {
            subject: &caller.subject,
            client_id,
            scopes: &caller.scopes,
            jti: caller.claims.get("jti").and_then(|v| v.as_str()),
            claims: &caller.claims,
            audience,
            expires_at,
        }))
    }
}

/// This server's issuer, trading the refresh token it keeps for a person at
/// `provider` for an access token there.
struct IssuerProviderTokens {
    issuer: Arc<Issuer<AnyStore>>,
    provider: String,
}

impl ProviderTokens for IssuerProviderTokens {
    fn access_token<'a>(&'a self, caller: &'a AuthInfo) -> TokenFuture<'a> {
        let (issuer, provider, person) = (self.issuer.clone(), self.provider.clone(), caller.subject.clone());
        Box::pin(async move {
            // In a task of its own: a rotated refresh token is stored even if
            // the agent goes away meanwhile.
            let now = agentgate_issuer::now();
            let asked =
                tokio::spawn(async move { issuer.provider_access_token(&person, &provider, now).await });
            match asked.await {
                Ok(Ok(access)) => Ok(access.access_token),
                Ok(Err(
                    error @ (ProviderTokenError::NotKept { .. } | ProviderTokenError::UnknownProvider),
                )) => Err(NoProviderToken::SignInNeeded(error.to_string())),
                Ok(Err(ProviderTokenError::Provider(error))) => {
                    // The provider's words and addresses stay in this log.
                    tracing::warn!(provider = %self.provider, error = %error, "no access token from the provider");
                    Err(NoProviderToken::ProviderFailed(
                        "it failed or answered what cannot be used; its operator finds why in this server's log"
                            .into(),
                    ))
                }
                Ok(Err(ProviderTokenError::Store(_))) | Err(_) => {
                    Err(NoProviderToken::Internal("this server's database failed".into()))
                }
            }
        })
    }
}

/// A positive, finite number of seconds from a flag or a setting.
pub fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    ensure!(value.is_finite() && value > 0.0, "{what} must be a positive number of seconds, not {value}");
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_a_path_and_an_url_or_a_command() {
        let http = Route::parse("/notes=http://127.0.0.1:8000/mcp").unwrap();
        assert!(matches!(http.upstream, Upstream::Http(_)) && http.name == "notes");
        let stdio = Route::parse("/tools/memory = npx -y @modelcontextprotocol/server-memory").unwrap();
        assert_eq!(stdio.path, "/tools/memory");
        assert_eq!(stdio.name, "memory");
        assert!(matches!(&stdio.upstream, Upstream::Stdio { command, .. } if command.starts_with("npx -y")));
        for (bad, reason) in [
            ("/memory", "expected PATH=UPSTREAM"),
            ("memory=npx x", "must be a path"),
            ("/=npx x", "must be a path"),
            ("/m=", "the upstream is empty"),
            ("/m=http://[::1", "is not a URL"),
        ] {
            let error = Route::parse(bad).unwrap_err().to_string();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
        for taken in ["/token=x", "/.well-known/x=x", "/mcp/more=x", "/api=x"] {
            let error = Route::parse(taken).unwrap().check_beside_issuer(&["/mcp"]).unwrap_err().to_string();
            assert!(error.contains("choose another path"), "{taken}: {error}");
        }
        Route::parse("/memory=x").unwrap().check_beside_issuer(&["/mcp"]).unwrap();
    }

    #[test]
    fn a_scope_a_rule_names_is_needed_only_for_what_it_covers_and_its_words_name_it() {
        use agentgate_gateway::policy::{Kind, Rule};
        let mut route = Route::parse("/memory=npx x").unwrap();
        route.scopes = BTreeMap::from([
            ("mcp:tools".to_owned(), "Use your memory".to_owned()),
            ("memory:write".to_owned(), "Change your memory".to_owned()),
        ]);
        let write = || Rule { scopes: vec!["memory:write".into()], apps: vec![] };
        for tool in ["create_entities", "delete_entities"] {
            route.policy = route.policy.clone().with(Kind::Tool, tool, write());
        }
        assert_eq!(route.required_scopes(), ["mcp:tools"]);
        let (words, _) = route.consent_words();
        assert_eq!(words["memory:write"], "Change your memory (create_entities, delete_entities)");
        assert_eq!(words["mcp:tools"], "Use your memory");

        // However many tools, the words stay within the issuer's 200 characters.
        for n in 0..40 {
            route.policy =
                route.policy.clone().with(Kind::Tool, format!("a_rather_long_tool_name_{n}"), write());
        }
        let (words, _) = route.consent_words();
        let text = &words["memory:write"];
        assert!(
            text.chars().count() <= 200 && text.ends_with("…)"),
            "{} chars: {text}",
            text.chars().count()
        );
        route.require = Some(vec![]);
        assert!(route.required_scopes().is_empty(), "`require` says");
    }
}
