//! How the person gets to the authorization server and back: the "user agent"
//! of OAuth. The agent hands it the authorization URL and the loopback
//! redirect URI; it returns the URL the authorization server sent the person
//! back to.
//!
//! - [`SystemBrowser`] opens the person's browser (or only shows the URL) and
//!   waits at the loopback redirect URI: the real thing.
//! - [`Headless`] follows the authorization server's redirects itself, for test
//!   harnesses whose server approves without a person (the MCP conformance
//!   suite's). It never fills in a form.
//! - Tests implement [`UserAgent`] to drive sign-in and consent pages.

use std::time::Duration;

use reqwest::header::LOCATION;

use crate::{AgentError, CallbackListener};

/// Takes the person to the authorization URL and back.
#[async_trait::async_trait]
pub trait UserAgent: Send + Sync {
    /// Visits `authorization_url`; returns the URL the person came back to
    /// at `callback`'s redirect URI.
    async fn visit(&self, authorization_url: &str, callback: &CallbackListener)
    -> Result<String, AgentError>;
}

/// The person's own browser: opened on the authorization URL (unless told not
/// to), while the URL is also shown for them to open by hand.
#[derive(Debug, Clone)]
pub struct SystemBrowser {
    /// Try to open the browser; if false, only show the URL.
    pub open: bool,
    /// The command that opens it, as in `$BROWSER`: a program and its
    /// arguments separated by spaces, the URL in place of a `%s` or else
    /// last. `None` is the system's opener (`xdg-open`, or `open` on macOS).
    /// No shell runs it, and the URL is one argument (https, or http on this
    /// machine, percent-encoded); a command that hands it to a shell must
    /// quote it, since a query may hold `$`, `;` or `&`.
    pub command: Option<String>,
    /// How long to wait for the person to come back.
    pub timeout: Duration,
}

impl Default for SystemBrowser {
    fn default() -> Self {
        Self { open: true, command: None, timeout: Duration::from_secs(300) }
    }
}

impl SystemBrowser {
    /// The program and arguments that open `url`.
    fn opener(&self, url: &str) -> Option<(String, Vec<String>)> {
        let system = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        let command = self.command.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or(system);
        let mut words = command.split_whitespace().map(str::to_owned);
        let program = words.next()?;
        let mut args: Vec<String> = words.collect();
        match args.iter_mut().find(|a| a.contains("%s")) {
            Some(arg) => *arg = arg.replace("%s", url),
            None => args.push(url.to_owned()),
        }
        Some((program, args))
    }
}

#[async_trait::async_trait]
impl UserAgent for SystemBrowser {
    async fn visit(
        &self,
        authorization_url: &str,
        callback: &CallbackListener,
    ) -> Result<String, AgentError> {
        eprintln!("Sign in and allow access in your browser:\n\n  {authorization_url}\n");
        if let Some((program, args)) = self.opener(authorization_url).filter(|_| self.open) {
            // Started, not waited for: a browser may run as long as it likes.
            let opened = tokio::process::Command::new(program)
                .args(args)
                // The browser has no business with the agent's own secret.
                .env_remove("AGENTGATE_AGENT_CLIENT_SECRET")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(false)
                .spawn();
            if opened.is_err() {
                eprintln!("(could not open a browser: open the URL above yourself)");
            }
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return callback.wait(self.timeout).await;
        }
        // A spinner on the terminal while the person is away.
        let waiting = callback.wait(self.timeout);
        tokio::pin!(waiting);
        let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0;
        loop {
            let frame = frames[n % frames.len()];
            n += 1;
            tokio::select! {
                back = &mut waiting => {
                    eprint!("\r\x1b[2K");
                    return back;
                }
                _ = tick.tick() => eprint!("\r{frame} waiting for you to sign in and allow access…"),
            }
        }
    }
}

/// Follows the authorization server's redirects without a browser until one
/// points at the redirect URI. For test harnesses only: a real
/// authorization server shows a person a sign-in page, which this never
/// fills in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Headless;

/// The most redirects followed.
const MAX_REDIRECTS: usize = 20;

#[async_trait::async_trait]
impl UserAgent for Headless {
    async fn visit(
        &self,
        authorization_url: &str,
        callback: &CallbackListener,
    ) -> Result<String, AgentError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AgentError::NotBack(e.to_string()))?;
        let mut url = url::Url::parse(authorization_url).map_err(|e| AgentError::NotBack(e.to_string()))?;
        for _ in 0..MAX_REDIRECTS {
            let response =
                http.get(url.clone()).send().await.map_err(|e| AgentError::NotBack(e.to_string()))?;
            let Some(location) = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Err(AgentError::NotBack(format!(
                    "{url} answered {} without a redirect: it wants a person (headless mode is for test harnesses)",
                    response.status()
                )));
            };
            let next = url.join(location).map_err(|e| AgentError::NotBack(e.to_string()))?;
            if next.as_str().starts_with(callback.redirect_uri()) {
                return Ok(next.into());
            }
            url = next;
        }
        Err(AgentError::NotBack(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener(command: Option<&str>) -> (String, Vec<String>) {
        let browser = SystemBrowser { command: command.map(str::to_owned), ..SystemBrowser::default() };
        browser.opener("http://127.0.0.1:1/authorize?a=1&b=2").unwrap()
    }

    #[test]
    fn the_url_goes_last_or_in_place_of_percent_s() {
        let url = "http://127.0.0.1:1/authorize?a=1&b=2";
        assert_eq!(opener(Some("firefox")), ("firefox".into(), vec![url.into()]));
        assert_eq!(
            opener(Some("node person.mjs --x")),
            ("node".into(), vec!["person.mjs".into(), "--x".into(), url.into()])
        );
        assert_eq!(opener(Some("w3m %s -o x")), ("w3m".into(), vec![url.into(), "-o".into(), "x".into()]));
        let system = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        assert_eq!(opener(None), (system.into(), vec![url.into()]));
        assert_eq!(opener(Some("  ")), (system.into(), vec![url.into()]));
    }
}
