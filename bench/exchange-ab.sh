#!/usr/bin/env bash
# Token exchanges (or MCP calls) per second of two agentgate binaries, side by
# side: each round starts each binary's `agentgate dev` on a fresh data
# directory (pinned to SERVER_CPU) and drives it with `issuer-load MODE` (on
# LOAD_CPU), the binaries taking turns. For changes to the exchange path (or
# the guarded /mcp), where two whole benchmark runs would differ by more than
# the change.
#
#   bench/exchange-ab.sh OLD_BINARY NEW_BINARY            (build both with --release first)
#   MODE=mcp bench/exchange-ab.sh OLD_BINARY NEW_BINARY   tools/call whoami on /mcp instead
#   OLD_FLAGS="--durability crash" NEW_FLAGS="--durability power" \
#     bench/exchange-ab.sh target/release/agentgate target/release/agentgate
#                                           one binary, two settings (flags for `dev`)
#
# Prints one line per run: label, operations/s, server CPU µs per operation,
# context switches per operation, server CPU %; then the medians.
# Knobs: MODE (exchange; or mcp), ROUNDS (8), DURATION (10 s), CONCURRENCY (16),
# BATCH (500), SERVER_CPU (0), LOAD_CPU (1), PORT (4301), OLD_FLAGS and NEW_FLAGS (none).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
ROUNDS="${ROUNDS:-8}" DURATION="${DURATION:-10}" CONCURRENCY="${CONCURRENCY:-16}" BATCH="${BATCH:-500}"
SERVER_CPU="${SERVER_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}" PORT="${PORT:-4301}" MODE="${MODE:-exchange}"
read -r -a old_flags <<<"${OLD_FLAGS:-}"
read -r -a new_flags <<<"${NEW_FLAGS:-}"
(cd "$root" && cargo build --release --quiet -p agentgate-bench)
load="$root/target/release/issuer-load"
work="$(mktemp -d /tmp/agentgate-exchange-ab.XXXXXX)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
export AGENTGATE_DEMO_PASSWORD=wonderland AGENTGATE_LOG=warn
unset AGENTGATE_KEY_ENCRYPTION_KEY
for round in $(seq "$ROUNDS"); do
  for label in old new; do
    bin="$1" flags=("${old_flags[@]}")
    [ "$label" = new ] && bin="$2" flags=("${new_flags[@]}")
    dir="$work/$label-$round"
    taskset -c "$SERVER_CPU" "$bin" dev --listen "127.0.0.1:$PORT" --data-dir "$dir" "${flags[@]}" >"$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do grep -q "^  issuer:" "$dir.log" && break; sleep 0.05; done
    client_id="$("$bin" apps list --json --data-dir "$dir" |
      python3 -c 'import json,sys; print(next(a["client_id"] for a in json.load(sys.stdin) if a["name"] == "SmartMail AI"))')"
    taskset -c "$LOAD_CPU" "$load" "$MODE" --mcp "http://127.0.0.1:$PORT/mcp" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2 \
      --batch "$BATCH" --label "$label" --pid "$pid" --issuer "http://127.0.0.1:$PORT" --client-id "$client_id" \
      --resource "http://127.0.0.1:$PORT/mcp" 2>/dev/null >>"$work/runs.jsonl"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    tail -1 "$work/runs.jsonl" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["label"], round(d["per_s"]), d["server_cpu_us_per_op"], d["server_switches_per_op"], d["server_cpu_pct"], "errors:", d["errors"], d.get("first_error", ""))'
  done
done
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
for label in ("old", "new"):
    mine = [r for r in runs if r["label"] == label]
    med = lambda key: statistics.median(r[key] for r in mine)
    print(f"median {label}: {med('per_s'):.0f}/s, {med('server_cpu_us_per_op'):.0f} µs CPU, {med('server_switches_per_op'):.1f} switches per operation")
old, new = ([r["per_s"] for r in runs if r["label"] == l] for l in ("old", "new"))
print(f"new / old: {statistics.median(new) / statistics.median(old):.3f}")
PY
