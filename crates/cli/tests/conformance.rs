//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! pinned in interop/package.json) in client mode: it runs `agentgate agent`
//! (through interop/conformance/agent.mjs, headless: the suite's authorization
//! server approves by itself) against the suite's own servers, which score
//! each step: discovery, registration (DCR, metadata document,
//! pre-registered), PKCE, scopes, step-up, retry limits, token endpoint
//! authentication, RFC 9207 `iss`, authorization server migration.
//!
//! Two releases run: the latest 0.1.x with `--suite auth`, and the newest 0.2
//! pre-release (npm alias `conformance-next`) with `--requirements 2026-07-28`,
//! whose servers speak the stateless 2026-07-28 wire. Of the latter, every
//! scored `auth/` scenario must pass; its other client scenarios (tool
//! arguments, multi-round-trip requests, `x-mcp-header` parameters) test an
//! MCP client's features beyond authorization and are reported, not required,
//! and its unscored extensions (client credentials, DPoP, enterprise-managed
//! authorization) are flows the agent does not implement.

mod support;

use std::process::{Command, Output};

#[test]
fn the_agent_passes_every_auth_scenario_of_the_conformance_suite() {
    let (out, summary) = run_suite("@modelcontextprotocol/conformance", &["--suite", "auth"]);
    assert!(out.status.success(), "the suite failed:\n{summary}");
    let total =
        summary.lines().find(|l| l.starts_with("Total:")).unwrap_or_else(|| panic!("no total:\n{summary}"));
    assert!(total.ends_with("0 failed, 0 warnings"), "{summary}");
    let scenarios = summary.lines().filter(|l| l.starts_with("✓ auth/")).count();
    assert!(scenarios >= 14, "every auth scenario ran and passed ({scenarios}):\n{summary}");
    assert!(!summary.contains("✗"), "{summary}");
}

#[test]
fn the_agent_passes_every_auth_scenario_the_2026_07_28_requirements_score() {
    // The scenarios the 2026-07-28 revision requires of clients, as the suite lists them.
    let listed =
        suite_command("conformance-next").args(["list", "--requirements", "2026-07-28"]).output().unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{listing}{}", String::from_utf8_lossy(&listed.stderr));
    let required = scored_auth_scenarios(&listing);
    assert!(required.len() >= 25, "the suite lists its auth scenarios:\n{listing}");

    let (_, summary) = run_suite("conformance-next", &["--requirements", "2026-07-28"]);
    for scenario in &required {
        let line = summary
            .lines()
            .find(|l| l.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(&format!("{scenario}:"))))
            .unwrap_or_else(|| panic!("{scenario} did not run:\n{summary}"));
        assert!(line.starts_with('✓') && line.ends_with(" 0 failed"), "{line}\n\n{summary}");
    }
}

/// The `auth/` client scenarios of `conformance list --requirements`: those
/// under "Client scenarios", before the unscored ones.
fn scored_auth_scenarios(listing: &str) -> Vec<String> {
    let client = listing.split("Client scenarios").nth(1).unwrap_or_default();
    let scored = client.split("never scored").next().unwrap_or_default();
    scored
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- auth/"))
        .map(|name| format!("auth/{name}"))
        .collect()
}

/// Runs the suite in `package` (under interop/node_modules) in client mode
/// against the agent; returns its output and the summary it printed.
fn run_suite(package: &str, selection: &[&str]) -> (Output, String) {
    let interop = support::interop_dir();
    let results =
        std::env::temp_dir().join(format!("agentgate-conformance-{package}-{}", std::process::id()));
    let agent = format!("{} {}", support::node().display(), interop.join("conformance/agent.mjs").display());
    let out = suite_command(package)
        .arg("client")
        .args(selection)
        .args(["--timeout", "60000", "--command", &agent, "-o"])
        .arg(&results)
        .env("AGENTGATE_BIN", env!("CARGO_BIN_EXE_agentgate"))
        .env("AGENTGATE_LOG", "warn")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&results);
    let report = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let summary = report.split("=== SUITE SUMMARY ===").nth(1).unwrap_or(&report).to_owned();
    (out, summary)
}

/// `node …/dist/index.js` of the suite in `package`.
fn suite_command(package: &str) -> Command {
    let suite = support::interop_dir().join("node_modules").join(package).join("dist/index.js");
    assert!(suite.exists(), "{} is missing: run `npm ci` in interop/", suite.display());
    let mut command = Command::new(support::node());
    command.arg(suite);
    command
}
