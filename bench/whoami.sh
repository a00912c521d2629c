#!/usr/bin/env bash
# Load benchmark: authenticated `tools/call whoami` per second and latency, agentgate
# beside the tutorial's own four servers, in one run, on one machine.
#
#   bench/whoami.sh                 build (release), start everything, load, stop
#   DURATION=10 bench/whoami.sh     shorter runs (every knob of the anchors harness applies)
#
# It drives the anchors harness (../shared/anchors, or $ANCHORS): node oidc-provider
# as the issuer, the tutorial's Python and Node servers, wrk with a Lua script that
# checks every answer. agentgate runs three ways, each pinned to the same CPU as the
# reference servers (wrk and the issuer get the other one):
#   agentgate-userinfo  agentgate whoami --verify userinfo   (the tutorial's mode)
#   agentgate-jwt       agentgate whoami --verify jwt        (the default)
#   agentgate-noguard   the same server without the guard    (the guard's own cost)
# Results go to bench/results/ (bench.md, bench.json); RESULTS.md quotes them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
anchors="${ANCHORS:-$root/../shared/anchors}"
[ -x "$anchors/run_all.sh" ] || { echo "the anchors harness is not at $anchors (set ANCHORS)" >&2; exit 1; }
cpu="${SERVER_CPU:-0}"
results_name="results-agentgate"

echo "== building (release)" >&2
(cd "$root" && cargo build --release --quiet -p agentgate -p agentgate-bench)
bin="$root/target/release"

echo "== anchors: install and start" >&2
"$anchors/run_all.sh" install
"$anchors/run_all.sh" start

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$anchors/run_all.sh" stop || true
}
trap cleanup EXIT

issuer=http://127.0.0.1:4000
start() { # name port command...
  local name="$1" port="$2"; shift 2
  taskset -c "$cpu" "$@" >"/tmp/agentgate-bench-$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/mcp" && return 0
    sleep 0.1
  done
  echo "$name did not start; see /tmp/agentgate-bench-$name.log" >&2
  exit 1
}
start agentgate-userinfo 3005 "$bin/agentgate" whoami --issuer "$issuer" --verify userinfo \
  --resource http://127.0.0.1:3005 --listen 127.0.0.1:3005
start agentgate-jwt 3006 "$bin/agentgate" whoami --issuer "$issuer" --scopes whoami \
  --resource http://127.0.0.1:3006 --listen 127.0.0.1:3006
start agentgate-noguard 3007 "$bin/whoami-unguarded" 127.0.0.1:3007

export EXTRA_TARGETS="agentgate-userinfo=http://127.0.0.1:3005=userinfo,agentgate-jwt=http://127.0.0.1:3006=jwt,agentgate-noguard=http://127.0.0.1:3007=jwt"
RESULTS="$results_name" "$anchors/run_all.sh" load

mkdir -p "$here/results"
cp "$anchors/$results_name/bench.md" "$anchors/$results_name/bench.json" "$here/results/"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD)"
  echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "servers pinned to CPU $cpu; issuer and wrk on the other CPU"
  echo "knobs: DURATION=${DURATION:-20} WARMUP=${WARMUP:-3} CONCURRENCY=${CONCURRENCY:-16} WRK_THREADS=${WRK_THREADS:-1}"
} >"$here/results/run.txt"
cat "$here/results/bench.md"
