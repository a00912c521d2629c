#!/usr/bin/env bash
# The gateway's own cost: authenticated `tools/call whoami` per second against a
# fast Rust MCP server (whoami-unguarded: rmcp, no auth of its own), directly and
# through `agentgate dev --route /gw=<that server>`, side by side in one run.
#
#   bench/gateway.sh                  build (release), then ROUNDS rounds of each
#   ROUNDS=3 DURATION=5 bench/gateway.sh
#
# The upstream and the gateway share SERVER_CPU; the load driver (issuer-load,
# one MCP session per worker, answers checked) runs on LOAD_CPU. Per run it prints
# calls/s, the gateway's CPU µs per call (0 for direct: the upstream's own CPU is
# in the direct run's figure) and errors; then the medians and the ratio.
# Knobs: ROUNDS (5), DURATION (10 s), CONCURRENCY (16), SERVER_CPU (0), LOAD_CPU (1),
# PORT (4311), UPSTREAM_PORT (4312).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-5}" DURATION="${DURATION:-10}" CONCURRENCY="${CONCURRENCY:-16}"
SERVER_CPU="${SERVER_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}" PORT="${PORT:-4311}" UPSTREAM_PORT="${UPSTREAM_PORT:-4312}"
(cd "$root" && cargo build --release --quiet -p agentgate -p agentgate-bench)
bin="$root/target/release"
work="$(mktemp -d /tmp/agentgate-gateway-bench.XXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export AGENTGATE_DEMO_PASSWORD=wonderland AGENTGATE_LOG=warn
unset AGENTGATE_KEY_ENCRYPTION_KEY

upstream="http://127.0.0.1:$UPSTREAM_PORT/mcp"
taskset -c "$SERVER_CPU" "$bin/whoami-unguarded" "127.0.0.1:$UPSTREAM_PORT" >"$work/upstream.log" 2>&1 &
pids+=($!)
taskset -c "$SERVER_CPU" "$bin/agentgate" dev --listen "127.0.0.1:$PORT" --data-dir "$work/dev" \
  --route "/gw=$upstream" >"$work/dev.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
for _ in $(seq 200); do grep -q "^  issuer:" "$work/dev.log" && break; sleep 0.05; done
client_id="$("$bin/agentgate" apps list --json --data-dir "$work/dev" |
  python3 -c 'import json,sys; print(next(a["client_id"] for a in json.load(sys.stdin) if a["name"] == "SmartMail AI"))')"
base="http://127.0.0.1:$PORT"
for round in $(seq "$ROUNDS"); do
  for label in direct gateway; do
    url="$upstream"; pid="$gateway_pid"
    [ "$label" = gateway ] && url="$base/gw"
    # direct: the token is for the route and not checked by the upstream; the
    # gateway process is idle, so its CPU per call is ~0.
    taskset -c "$LOAD_CPU" "$bin/issuer-load" mcp --mcp "$url" --concurrency "$CONCURRENCY" --duration "$DURATION" \
      --warmup 2 --label "$label" --pid "$pid" --issuer "$base" --client-id "$client_id" --resource "$base/gw" \
      2>/dev/null >>"$work/runs.jsonl"
    tail -1 "$work/runs.jsonl" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["label"], round(d["per_s"]), "calls/s;", d["server_cpu_us_per_op"], "gateway CPU µs/call; errors:", d["errors"], d.get("first_error", ""))'
  done
done
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
med = {}
for label in ("direct", "gateway"):
    mine = [r for r in runs if r["label"] == label]
    med[label] = (statistics.median(r["per_s"] for r in mine), statistics.median(r["server_cpu_us_per_op"] for r in mine))
    print(f"median {label}: {med[label][0]:.0f} calls/s, gateway CPU {med[label][1]:.1f} µs per call")
print(f"gateway / direct: {med['gateway'][0] / med['direct'][0]:.3f} of the calls per second")
PY
