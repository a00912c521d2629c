//! `agentgate audit`: the audit log of the gateway's routes, filtered and
//! printed as a table (or as its own JSON lines, for `jq`).

use std::io::BufRead;
use std::path::PathBuf;

use agentgate::config::{Config, DEFAULT_FILE};
use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The audit log; `-` reads standard input [default: the `[audit] file` of
    /// the configuration file]
    file: Option<PathBuf>,
    /// Only this person: their subject or username.
    #[arg(long)]
    person: Option<String>,
    /// Only this app: its client id or name.
    #[arg(long)]
    app: Option<String>,
    /// Only this route (its name).
    #[arg(long)]
    route: Option<String>,
    /// Only this tool, prompt or resource.
    #[arg(long)]
    tool: Option<String>,
    /// Only this decision: allowed, refused or failed.
    #[arg(long)]
    decision: Option<String>,
    /// Only since then: a duration back from now (30s, 10m, 2h, 7d), a date
    /// (2026-12-04) or a UTC time (2026-12-04T10:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Print the matching lines as they are (JSON), not a table.
    #[arg(long)]
    json: bool,
    /// The configuration file naming the audit log.
    #[arg(long, env = "AGENTGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// What an entry must match.
struct Filter {
    person: Option<String>,
    app: Option<String>,
    route: Option<String>,
    tool: Option<String>,
    decision: Option<String>,
    /// Entries at or after this time, as the log writes times.
    since: Option<String>,
}

impl Filter {
    fn matches(&self, entry: &Value) -> bool {
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let either = |wanted: &Option<String>, a: &str, b: &str| {
            wanted.as_deref().is_none_or(|w| field(a) == Some(w) || field(b) == Some(w))
        };
        either(&self.person, "sub", "username")
            && either(&self.app, "client_id", "app")
            && either(&self.route, "route", "route")
            && either(&self.tool, "name", "name")
            && either(&self.decision, "decision", "decision")
            && self.since.as_deref().is_none_or(|since| field("time").is_some_and(|t| t >= since))
    }
}

/// `since` as a time the log's lines compare with as text (RFC 3339, UTC,
/// milliseconds): a duration back from `now`, a date or a time.
fn since_time(since: &str, now: i64) -> anyhow::Result<String> {
    let as_log_time = |seconds: i64| {
        let time = agentgate_issuer::rfc3339(seconds);
        format!("{}.000Z", time.trim_end_matches('Z'))
    };
    if let Some(unit) = since.chars().last().filter(char::is_ascii_alphabetic)
        && let Ok(n) = since[..since.len() - 1].parse::<i64>()
    {
        let seconds = match unit {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            'd' => n * 86_400,
            _ => bail!("--since {since:?}: a duration ends in s, m, h or d"),
        };
        return Ok(as_log_time(now - seconds));
    }
    let bytes = since.as_bytes();
    let shaped = |pattern: &str| {
        bytes.len() == pattern.len()
            && pattern.bytes().zip(bytes).all(|(p, b)| if p == b'0' { b.is_ascii_digit() } else { p == *b })
    };
    if shaped("0000-00-00") {
        return Ok(format!("{since}T00:00:00.000Z"));
    }
    if shaped("0000-00-00T00:00:00Z") {
        return Ok(format!("{}.000Z", since.trim_end_matches('Z')));
    }
    bail!(
        "--since {since:?}: give a duration (10m, 2h, 7d), a date (2026-12-04) or a UTC time (2026-12-04T10:00:00Z)"
    )
}

impl AuditArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        if let Some(decision) = &self.decision {
            ensure!(
                ["allowed", "refused", "failed"].contains(&decision.as_str()),
                "--decision {decision:?}: expected allowed, refused or failed"
            );
        }
        let since = self.since.as_deref().map(|s| since_time(s, agentgate_issuer::now())).transpose()?;
        let filter = Filter {
            person: self.person.clone(),
            app: self.app.clone(),
            route: self.route.clone(),
            tool: self.tool.clone(),
            decision: self.decision.clone(),
            since,
        };
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let path = self.config.clone().unwrap_or_else(|| DEFAULT_FILE.into());
                let config =
                    Config::load(&path).context("no audit log named, so the configuration's is read")?;
                match config.audit {
                    Some(audit) => audit.file,
                    None => bail!(
                        "{} has no [audit] file; name the audit log: agentgate audit FILE",
                        path.display()
                    ),
                }
            }
        };
        let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let opened = std::fs::File::open(&file)
                .with_context(|| format!("reading the audit log {}", file.display()))?;
            Box::new(std::io::BufReader::new(opened))
        };
        if !self.json {
            println!(
                "{:<24}  {:<16}  {:<20}  {:<12}  {:<28}  {:<30}  {:>6}  {:>8}",
                "TIME", "PERSON", "APP", "ROUTE", "METHOD", "DECISION", "STATUS", "MS"
            );
        }
        let mut unreadable = 0usize;
        for line in reader.lines() {
            let line = line.context("reading the audit log")?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                unreadable += 1;
                continue;
            };
            if !filter.matches(&entry) {
                continue;
            }
            if self.json {
                println!("{line}");
            } else {
                println!("{}", row(&entry));
            }
        }
        if unreadable > 0 {
            eprintln!("agentgate audit: {unreadable} lines were not audit entries and were skipped");
        }
        Ok(())
    }
}

/// One entry as a table row.
fn row(entry: &Value) -> String {
    let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("");
    let person = if text("username").is_empty() { text("sub") } else { text("username") };
    let app = if text("app").is_empty() { text("client_id") } else { text("app") };
    let method = match (text("method"), text("name")) {
        ("", _) => text("http_method").to_owned(),
        (method, "") => method.to_owned(),
        (method, name) => format!("{method} {name}"),
    };
    let decision = match text("reason") {
        "" => text("decision").to_owned(),
        reason => format!("{} ({reason})", text("decision")),
    };
    let status = entry.get("status").and_then(Value::as_u64).unwrap_or(0);
    let ms = entry.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0);
    format!(
        "{:<24}  {:<16}  {:<20}  {:<12}  {:<28}  {:<30}  {status:>6}  {ms:>8.1}",
        text("time"),
        cut(if person.is_empty() { "-" } else { person }, 16),
        cut(if app.is_empty() { "-" } else { app }, 20),
        cut(text("route"), 12),
        cut(&method, 28),
        cut(&decision, 30)
    )
}

/// `text` in at most `width` characters.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(width - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_takes_durations_dates_and_times() {
        let now = 1_795_300_000; // 2026-11-21T22:26:40Z
        assert_eq!(since_time("10m", now).unwrap(), "2026-11-21T22:16:40.000Z");
        assert_eq!(since_time("1d", now).unwrap(), "2026-11-20T22:26:40.000Z");
        assert_eq!(since_time("2026-12-04", now).unwrap(), "2026-12-04T00:00:00.000Z");
        assert_eq!(since_time("2026-12-04T10:00:00Z", now).unwrap(), "2026-12-04T10:00:00.000Z");
        for bad in ["yesterday", "10y", "2026-12-4", "2026-12-04 10:00"] {
            assert!(since_time(bad, now).is_err(), "{bad}");
        }
        // The same second's entries count as since then.
        let filter = Filter {
            person: None,
            app: None,
            route: None,
            tool: None,
            decision: None,
            since: Some(since_time("2026-12-04T10:00:00Z", now).unwrap()),
        };
        assert!(filter.matches(&json!({ "time": "2026-12-04T10:00:00.001Z" })));
        assert!(!filter.matches(&json!({ "time": "2026-12-04T09:59:59.999Z" })));
    }

    #[test]
    fn a_person_and_an_app_match_by_id_or_name() {
        let entry = json!({ "sub": "u1", "username": "alice", "client_id": "c1", "app": "SmartMail AI", "decision": "allowed" });
        let filter = |person: Option<&str>, app: Option<&str>| Filter {
            person: person.map(str::to_owned),
            app: app.map(str::to_owned),
            route: None,
            tool: None,
            decision: None,
            since: None,
        };
        assert!(filter(Some("alice"), Some("c1")).matches(&entry));
        assert!(filter(Some("u1"), Some("SmartMail AI")).matches(&entry));
        assert!(!filter(Some("bob"), None).matches(&entry));
        assert!(!filter(None, Some("smartmail ai")).matches(&entry), "exact names");
        let row = row(
            &json!({ "time": "t", "username": "alice", "app": "A", "route": "memory", "method": "tools/call",
            "name": "delete_entities", "decision": "refused", "reason": "policy", "status": 200, "latency_ms": 1.25 }),
        );
        assert!(row.contains("tools/call delete_entities") && row.contains("refused (policy)"), "{row}");
    }
}
