//! Counters for Prometheus, kept from the same [`AuditEntry`]s the audit log
//! gets, and rendered in its text exposition format (version 0.0.4).
//!
//! Every label takes few values — route names from the configuration, MCP
//! method names from the specification (anything else is `other`), decision
//! and reason codes from this crate — so no agent can grow the series without
//! bound by sending made-up methods.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::audit::AuditEntry;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The methods counted by name; any other is `other`.
const METHODS: [&str; 22] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/templates/list",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "batch",
];

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (route, method, decision) → requests.
    requests: BTreeMap<(String, &'static str, &'static str), u64>,
    /// (route, reason) → refusals and failures.
    refusals: BTreeMap<(String, String), u64>,
    /// route → latency of the answers that came from the upstream.
    latency: BTreeMap<String, Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The label for a method: its own name when the specification has it.
fn method_label(entry: &AuditEntry) -> &'static str {
    match entry.method.as_deref() {
        Some(method) => METHODS.iter().find(|m| **m == method).copied().unwrap_or("other"),
        None => match entry.http_method.as_str() {
            "GET" => "GET",
            "DELETE" => "DELETE",
            _ => "other",
        },
    }
}

impl Metrics {
    /// No requests yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request.
    ///
    /// ```
    /// use agentgate_gateway::audit::AuditEntry;
    /// use agentgate_gateway::metrics::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// let entry = AuditEntry { route: "memory".into(), method: Some("tools/call".into()), decision: "allowed", latency_ms: 3.0, ..Default::default() };
    /// metrics.record(&entry);
    /// assert!(metrics.render(&[]).contains(r#"agentgate_gateway_requests_total{route="memory",method="tools/call",decision="allowed"} 1"#));
    /// ```
    pub fn record(&self, entry: &AuditEntry) {
        let mut state = self.state.lock().expect("the metrics are never poisoned");
        *state.requests.entry((entry.route.clone(), method_label(entry), entry.decision)).or_default() += 1;
        if let Some(reason) = &entry.reason {
            *state.refusals.entry((entry.route.clone(), reason.clone())).or_default() += 1;
        }
        // The upstream answered (or failed to) only for what passed the guard and the policy.
        if entry.decision != "refused" {
            let histogram = state.latency.entry(entry.route.clone()).or_default();
            let seconds = entry.latency_ms / 1000.0;
            for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *count += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    /// Every counter in the text format, and `processes`: the live stdio
    /// processes of each route that runs programs.
    pub fn render(&self, processes: &[(&str, usize)]) -> String {
        let state = self.state.lock().expect("the metrics are never poisoned");
        let mut out = String::new();
        out.push_str("# HELP agentgate_gateway_requests_total MCP requests on gateway routes, by method and decision.\n");
        out.push_str("# TYPE agentgate_gateway_requests_total counter\n");
        for ((route, method, decision), n) in &state.requests {
            let _ = writeln!(
                out,
                "agentgate_gateway_requests_total{{route=\"{}\",method=\"{method}\",decision=\"{decision}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP agentgate_gateway_refusals_total Requests refused or failed, by reason.\n");
        out.push_str("# TYPE agentgate_gateway_refusals_total counter\n");
        for ((route, reason), n) in &state.refusals {
            let _ = writeln!(
                out,
                "agentgate_gateway_refusals_total{{route=\"{}\",reason=\"{}\"}} {n}",
                escape(route),
                escape(reason)
            );
        }
        out.push_str(
            "# HELP agentgate_gateway_upstream_seconds Time to the start of the upstream's answer.\n",
        );
        out.push_str("# TYPE agentgate_gateway_upstream_seconds histogram\n");
        for (route, histogram) in &state.latency {
            let route = escape(route);
            for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "agentgate_gateway_upstream_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "agentgate_gateway_upstream_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "agentgate_gateway_upstream_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "agentgate_gateway_upstream_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        out.push_str("# HELP agentgate_gateway_stdio_processes Programs running for stdio routes.\n");
        out.push_str("# TYPE agentgate_gateway_stdio_processes gauge\n");
        for (route, live) in processes {
            let _ = writeln!(out, "agentgate_gateway_stdio_processes{{route=\"{}\"}} {live}", escape(route));
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: Option<&str>, decision: &'static str, reason: Option<&str>, ms: f64) -> AuditEntry {
        AuditEntry {
            route: "memory".into(),
            http_method: "POST".into(),
            method: method.map(str::to_owned),
            decision,
            reason: reason.map(str::to_owned),
            latency_ms: ms,
            ..Default::default()
        }
    }

    #[test]
    fn requests_refusals_and_latency_are_counted_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.record(&entry(Some("tools/call"), "allowed", None, 2.0));
        metrics.record(&entry(Some("tools/call"), "allowed", None, 40.0));
        metrics.record(&entry(Some("tools/call"), "refused", Some("policy"), 0.1));
        metrics.record(&entry(Some("made/up/by/an/agent"), "allowed", None, 1.0));
        metrics.record(&entry(None, "refused", Some("no_token"), 0.1));
        let text = metrics.render(&[("memory", 2)]);
        for line in [
            r#"agentgate_gateway_requests_total{route="memory",method="tools/call",decision="allowed"} 2"#,
            r#"agentgate_gateway_requests_total{route="memory",method="tools/call",decision="refused"} 1"#,
            r#"agentgate_gateway_requests_total{route="memory",method="other",decision="allowed"} 1"#,
            r#"agentgate_gateway_refusals_total{route="memory",reason="policy"} 1"#,
            r#"agentgate_gateway_refusals_total{route="memory",reason="no_token"} 1"#,
            r#"agentgate_gateway_upstream_seconds_bucket{route="memory",le="0.0025"} 2"#,
            r#"agentgate_gateway_upstream_seconds_bucket{route="memory",le="0.05"} 3"#,
            r#"agentgate_gateway_upstream_seconds_count{route="memory"} 3"#,
            r#"agentgate_gateway_stdio_processes{route="memory"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(!text.contains("made/up"), "an agent's method is no label");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
