//! What an operator can tune, with defaults that suit most deployments.

/// The issuer's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier: the public base URL, without a trailing slash.
    pub issuer: String,
    /// Access-token lifetime in seconds (10 minutes).
    pub access_token_ttl: i64,
    /// ID-token lifetime in seconds (10 minutes).
    pub id_token_ttl: i64,
    /// Refresh-token lifetime in seconds, renewed on every rotation (14 days).
    pub refresh_token_ttl: i64,
    /// Seconds a rotated refresh token is still taken from its own app, as a
    /// retry whose answer was lost (5): it gets the successor given the first
    /// time, and the family lives on. 0: never; any reuse revokes the family.
    /// Counted in whole seconds of the store's clock: a retry is taken up to
    /// one second past it.
    pub refresh_overlap: i64,
    /// Authorization-code lifetime in seconds (1 minute).
    pub code_ttl: i64,
    /// Browser-session lifetime in seconds (12 hours).
    pub session_ttl: i64,
    /// The resource a token is for when an authorization request names none.
    pub default_resource: Option<String>,
    /// Failed sign-ins allowed per account per window (5).
    pub sign_in_failures_per_account: i64,
    /// Failed sign-ins allowed per client address per window (20).
    pub sign_in_failures_per_address: i64,
    /// The sign-in rate-limit window in seconds (15 minutes).
    pub sign_in_window: i64,
    /// Reverse proxies trusted to name the client in `X-Forwarded-For` (none).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Who may register apps through dynamic client registration (nobody).
    pub registration: crate::registration::RegistrationPolicy,
    /// Registrations allowed per client address per window (20).
    pub registrations_per_address: i64,
    /// The registration rate-limit window in seconds (1 hour).
    pub registration_window: i64,
    /// The scopes a self-registered app may have; `None` (the default): the
    /// OpenID scopes and every resource's scopes.
    pub registration_scopes: Option<Vec<String>>,
    /// Whether a `client_id` that is an https URL is fetched as the app's
    /// metadata document (no: like dynamic registration, it lets any agent in
    /// to ask people for consent, so an operator turns it on).
    pub client_documents: bool,
    /// Development only: documents may also come from loopback, over plain
    /// http (no).
    pub client_documents_allow_loopback: bool,
    /// Identity providers people may sign in with, beside or instead of
    /// passwords (none).
    pub identity_providers: Vec<crate::upstream::ProviderConfig>,
    /// Whether people may sign in with a password kept here (yes); with no,
    /// only through the identity providers.
    pub passwords: bool,
}

impl Settings {
    /// Default settings for an issuer at `issuer` (a trailing slash is dropped).
    ///
    /// ```
    /// let settings = agentgate_issuer::Settings::new("https://auth.example.com/");
    /// assert_eq!(settings.issuer, "https://auth.example.com");
    /// assert_eq!(settings.access_token_ttl, 600);
    /// ```
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            access_token_ttl: 600,
            id_token_ttl: 600,
            refresh_token_ttl: 14 * 24 * 3600,
            refresh_overlap: 5,
            code_ttl: 60,
            session_ttl: 12 * 3600,
            default_resource: None,
            sign_in_failures_per_account: 5,
            sign_in_failures_per_address: 20,
            sign_in_window: 15 * 60,
            trusted_proxies: Vec::new(),
            registration: Default::default(),
            registrations_per_address: 20,
            registration_window: 3600,
            registration_scopes: None,
            client_documents: false,
            client_documents_allow_loopback: false,
            identity_providers: Vec::new(),
            passwords: true,
        }
    }

    /// The URL of an endpoint of this issuer, e.g. `endpoint("/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Whether the issuer is served over https (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}
