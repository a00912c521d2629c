//! The flags that configure a guard against an outside issuer, shared by the
//! commands that serve an MCP endpoint (`whoami`, `gateway`).

use std::time::Duration;

use agentgate_guard::{ClientAuthMethod, Guard, PersonClaims, Verification};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// How the server checks tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyMode {
    /// JWT access tokens, checked with the issuer's keys (audience and scopes included).
    Jwt,
    /// The tutorial's mode: ask the issuer's userinfo endpoint (cannot check the audience).
    Userinfo,
    /// RFC 7662 introspection, with the client credentials given below.
    Introspection,
}

/// Where the server finds the person's name, username and email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PersonSource {
    /// In the access token (agentgate's issuer, Keycloak, oidc-provider with extraTokenClaims).
    Token,
    /// Ask the issuer's userinfo endpoint, once per token (for issuers whose access tokens carry no profile).
    Userinfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IntrospectionAuth {
    /// HTTP Basic (client_secret_basic).
    Basic,
    /// Form fields (client_secret_post).
    Post,
}

/// How tokens are checked, against which issuer, for which resource.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The issuer URL, exactly as the issuer names itself (e.g. https://tenant.logto.app/oidc).
    #[arg(long, env = "AGENTGATE_ISSUER")]
    pub issuer: String,

    /// The public URL of this MCP endpoint: tokens must carry it in `aud`
    /// [default: http://<listen>/mcp]
    #[arg(long, env = "AGENTGATE_RESOURCE")]
    pub resource: Option<String>,

    /// How tokens are checked.
    #[arg(long, env = "AGENTGATE_VERIFY", value_enum, default_value_t = VerifyMode::Jwt)]
    pub verify: VerifyMode,

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

    /// The name published in the protected resource metadata [default: the command's]
    #[arg(long, env = "AGENTGATE_RESOURCE_NAME")]
    resource_name: Option<String>,

    /// A documentation URL published in the protected resource metadata.
    #[arg(long, env = "AGENTGATE_DOCUMENTATION")]
    documentation: Option<String>,

    /// Accept a plain-http issuer that is not on loopback (private networks only).
    #[arg(long, env = "AGENTGATE_INSECURE_HTTP_ISSUER")]
    insecure_http_issuer: bool,
}

/// Splits list values given with spaces as well as commas.
pub fn split_words(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split([' ', ','])).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl GuardArgs {
    /// The guard for `resource`, named `default_name` in its metadata unless
    /// --resource-name says otherwise.
    pub fn guard(&self, resource: &str, default_name: &str) -> anyhow::Result<Guard> {
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
            .resource_name(self.resource_name.as_deref().unwrap_or(default_name))
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
}
