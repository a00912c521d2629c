#!/usr/bin/env python3
"""Turns the JSON lines of bench/issuer.sh into results/issuer.md and issuer.json.

Usage: issuer_report.py RUNS.jsonl OUT.md OUT.json (run metadata in the environment:
DATE, COMMIT, DIRTY, MACHINE, VERSIONS, KNOBS).
"""
import json
import os
import statistics
import sys

runs_path, md_path, json_path = sys.argv[1:4]
lines = [json.loads(l) for l in open(runs_path) if l.strip()]
meta = {k.lower(): os.environ.get(k, "") for k in ("DATE", "COMMIT", "DIRTY", "MACHINE", "VERSIONS", "KNOBS")}

MODES = [
    ("exchange", "token exchanges (code + PKCE → tokens)"),
    ("session-flow", "flows with a session (authorize → code → token)"),
    ("flow", "full flows, fresh browser (authorize → sign-in → consent → code → token)"),
]
SERVERS = ["agentgate", "oidc-provider"]
TARGET_RATIO = 3.0
TARGET_IDLE_MB = 30.0
TARGET_READY_MS = 200.0


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mib(kb):
    return None if kb is None else kb / 1024.0


def fmt(x, digits=0, thousands=True):
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}" if thousands else f"{x:.0f}"
    return f"{x:,.{digits}f}"


summary = {}
for mode, _ in MODES:
    for server in SERVERS:
        rs = [r for r in lines if r.get("mode") == mode and r.get("label") == server]
        if not rs:
            continue
        summary[(mode, server)] = {
            "runs": len(rs),
            "per_s": med([r["per_s"] for r in rs]),
            "per_s_all": [r["per_s"] for r in rs],
            "p50_ms": med([r["p50_ms"] for r in rs]),
            "p99_ms": med([r["p99_ms"] for r in rs]),
            "cpu_us": med([r.get("server_cpu_us_per_op") for r in rs]),
            "cpu_pct": med([r.get("server_cpu_pct") for r in rs]),
            "switches": med([r.get("server_switches_per_op") for r in rs]),
            "driver_pct": med([r.get("driver_cpu_pct") for r in rs]),
            "peak_kb": max((r.get("server_vmhwm_kb") or 0) for r in rs) or None,
            "ok": sum(r["ok"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "first_error": next((r["first_error"] for r in rs if r.get("first_error")), None),
        }

md = []
md.append("# Issuer benchmark (bench/issuer.sh)")
md.append("")
md.append(f"- date: {meta['date']}")
md.append(f"- commit: {meta['commit']}" + (f" plus uncommitted changes ({meta['dirty']} tracked files)" if meta["dirty"] not in ("", "0") else ""))
md.append(f"- machine: {meta['machine']}; both servers pinned to one CPU, loaded one at a time; the driver on the other")
md.append(f"- versions: {meta['versions']}")
md.append(f"- knobs: {meta['knobs']}")
md.append("")
md.append("## Throughput (medians of the rounds)")
md.append("")
md.append("| what | server | per s | p50 ms | p99 ms | server CPU µs/op | server CPU % | server context switches/op | driver CPU % | peak RSS MiB | ok / errors |")
md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios = {}
for mode, title in MODES:
    for server in SERVERS:
        s = summary.get((mode, server))
        if not s:
            continue
        md.append(
            f"| {title} | {server} | {fmt(s['per_s'])} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} | "
            f"{fmt(s['cpu_us'])} | {fmt(s['cpu_pct'])} | {fmt(s['switches'], 1)} | {fmt(s['driver_pct'])} | {fmt(mib(s['peak_kb']), 1)} | "
            f"{s['ok']:,} / {s['errors']} |"
        )
    a, o = summary.get((mode, "agentgate")), summary.get((mode, "oidc-provider"))
    if a and o and o["per_s"]:
        ratios[mode] = a["per_s"] / o["per_s"]
md.append("")
md.append("Ratios agentgate / oidc-provider (per s): " + ", ".join(f"{m} **{r:.2f}×**" for m, r in ratios.items()))
md.append("")
md.append("Every run, per s: " + "; ".join(
    f"{m}/{s}: {', '.join(fmt(x) for x in summary[(m, s)]['per_s_all'])}"
    for m, _ in MODES for s in SERVERS if (m, s) in summary))
errors = [(k, v["first_error"]) for k, v in summary.items() if v["first_error"]]
for (mode, server), e in errors:
    md.append("")
    md.append(f"First error, {server} {mode}: `{e[:300]}`")

md.append("")
md.append("## Time to ready (median of the starts)")
md.append("")
md.append("| server | data | starts | to readiness line ms | to first 200 on discovery ms | range (200) ms |")
md.append("|---|---|---:|---:|---:|---:|")
ready = {r["label"]: r for r in lines if r.get("mode") == "ready"}
for label, server, data in [
    ("agentgate-fresh", "agentgate dev", "fresh data dir"),
    ("agentgate-existing", "agentgate dev", "existing data dir"),
    ("oidc-provider", "oidc-provider", "in memory"),
]:
    r = ready.get(label)
    if r:
        md.append(
            f"| {server} | {data} | {r['runs']} | {r['line_ms_median']:.1f} | {r['http_ms_median']:.1f} | "
            f"{min(r['http_ms']):.1f}–{max(r['http_ms']):.1f} |"
        )

md.append("")
md.append("## Memory")
md.append("")
md.append("| server | when | VmRSS MiB | of which anonymous | of which files (binary, libraries) | VmHWM (peak) MiB | threads |")
md.append("|---|---|---:|---:|---:|---:|---:|")
idle = {r["label"]: r for r in lines if r.get("mode") == "idle"}
for label, server, when in [
    ("agentgate-fresh", "agentgate dev", "idle, first start (fresh data dir)"),
    ("agentgate-existing", "agentgate dev", "idle, restart (existing data dir)"),
    ("agentgate-after-load", "agentgate dev", "after all load runs"),
    ("oidc-provider", "oidc-provider", "idle"),
    ("oidc-provider-after-load", "oidc-provider", "after all load runs"),
]:
    r = idle.get(label)
    if r:
        md.append(
            f"| {server} | {when} | {mib(r['vmrss_kb']):.1f} | {fmt(mib(r.get('rss_anon_kb')), 1)} | "
            f"{fmt(mib(r.get('rss_file_kb')), 1)} | {mib(r['vmhwm_kb']):.1f} | {r['threads']} |"
        )
md.append("")
md.append("Peak RSS under load, per mode (VmHWM reset through /proc/PID/clear_refs before each run; the largest of the rounds):")
md.append("")
md.append("| what | agentgate MiB | oidc-provider MiB |")
md.append("|---|---:|---:|")
for mode, title in MODES:
    a, o = summary.get((mode, "agentgate")), summary.get((mode, "oidc-provider"))
    if a or o:
        md.append(f"| {mode} | {fmt(mib(a and a['peak_kb']), 1)} | {fmt(mib(o and o['peak_kb']), 1)} |")

md.append("")
md.append("## Against the targets")
md.append("")
md.append("| target | measured | |")
md.append("|---|---|---|")
if "exchange" in ratios:
    r = ratios["exchange"]
    md.append(f"| token exchanges ≥ {TARGET_RATIO:.0f}× oidc-provider | {r:.2f}× | {'met' if r >= TARGET_RATIO else '**not met**'} |")
idle_cases = [(k, w) for k, w in (("agentgate-existing", "restart"), ("agentgate-fresh", "first start")) if k in idle]
if idle_cases:
    # Idle memory is what the server keeps resident while it waits (VmRSS); the
    # peak (VmHWM) of a first start also counts its one-off password hashing and
    # is in the memory table above.
    parts = [
        f"{w}: {mib(idle[k]['vmrss_kb']):.1f} MiB ({'met' if mib(idle[k]['vmrss_kb']) * 1.048576 <= TARGET_IDLE_MB else 'not met'})"
        for k, w in idle_cases
    ]
    every = all(mib(idle[k]["vmrss_kb"]) * 1.048576 <= TARGET_IDLE_MB for k, _ in idle_cases)
    md.append(f"| idle memory ≤ {TARGET_IDLE_MB:.0f} MB (resident while idle, VmRSS) | {'; '.join(parts)} | {'met' if every else '**not met on every start**'} |")
ready_ms = [ready[k]["http_ms_median"] for k in ("agentgate-fresh", "agentgate-existing") if k in ready]
if ready_ms:
    md.append(f"| ready ≤ {TARGET_READY_MS:.0f} ms | first 200: {', '.join(f'{x:.1f}' for x in ready_ms)} ms (fresh, existing) | {'met' if max(ready_ms) <= TARGET_READY_MS else '**not met**'} |")

text = "\n".join(md) + "\n"
open(md_path, "w").write(text)
json.dump(
    {
        "meta": meta,
        "summary": {f"{m}/{s}": v for (m, s), v in summary.items()},
        "ratios": ratios,
        "runs": lines,
    },
    open(json_path, "w"),
    indent=1,
)
