#!/usr/bin/env bash
# Issuer benchmark: agentgate's issuer (`agentgate dev`) beside node oidc-provider, in
# one run, on one machine: token exchanges per second, full headless authorization
# flows per second (fresh browser: sign-in and consent each time) and flows with a
# signed-in session; time from start to ready; peak memory idle and under load.
#
#   bench/issuer.sh                       build (release), measure, write bench/results/issuer.{md,json}
#   DURATION=5 ROUNDS=1 bench/issuer.sh   a quick look
#
# Both servers are pinned to SERVER_CPU (0) and loaded one at a time; the load driver
# (src/bin/issuer-load.rs) runs on LOAD_CPU (1). oidc-provider is bench/idp/provider.mjs:
# the library of interop/ set up like `agentgate dev` (ES256 tokens, one public client,
# PKCE, a resource with scope mcp:tools, devInteractions for sign-in and consent).
#
# Knobs: DURATION (20 s measured per run), WARMUP (3 s), CONCURRENCY (16), ROUNDS (3:
# runs per server and mode, interleaved; the tables show medians), BATCH (500 codes
# minted per exchange batch), MODES (exchange session-flow flow), READY_RUNS (10),
# IDLE_WAIT (5 s after ready before idle memory is read), SERVER_CPU, LOAD_CPU,
# AG_PORT (4200), IDP_PORT (4100).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-3}"
CONCURRENCY="${CONCURRENCY:-16}"
ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-500}"
MODES="${MODES:-exchange session-flow flow}"
READY_RUNS="${READY_RUNS:-10}"
IDLE_WAIT="${IDLE_WAIT:-5}"
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
AG_PORT="${AG_PORT:-4200}"
IDP_PORT="${IDP_PORT:-4100}"
PASSWORD=wonderland

# shellcheck source=../scripts/lib.sh
source "$root/scripts/lib.sh"
ensure_dev_null
ensure_node
ensure_interop_packages

step "building (release)"
(cd "$root" && cargo build --release --quiet -p agentgate -p agentgate-bench)
bin="$root/target/release"

work="$(mktemp -d /tmp/agentgate-issuer-bench.XXXXXX)"
out="$work/runs.jsonl"
: >"$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

unset AGENTGATE_KEY_ENCRYPTION_KEY
export AGENTGATE_DEMO_PASSWORD="$PASSWORD" AGENTGATE_LOG=warn
export IDP_PORT RESOURCE="http://127.0.0.1:$IDP_PORT/mcp"
driver() { taskset -c "$LOAD_CPU" "$bin/issuer-load" "$@"; }
ag_cmd() { echo "$bin/agentgate" dev --listen "127.0.0.1:$AG_PORT" --data-dir "$1"; }
idp_cmd="node $here/idp/provider.mjs"
ag_url="http://127.0.0.1:$AG_PORT"
idp_url="http://127.0.0.1:$IDP_PORT"
discovery=/.well-known/openid-configuration

# -------------------------------------------------------------- time to ready
step "time to ready ($READY_RUNS starts each)"
# shellcheck disable=SC2046
driver ready --label agentgate-fresh --runs "$READY_RUNS" --url "$ag_url$discovery" --marker "  issuer:" \
  --fresh-dir "$work/ready" -- taskset -c "$SERVER_CPU" $(ag_cmd "$work/ready") >>"$out"
# The data directory the last fresh start left behind: every later start reuses it.
# shellcheck disable=SC2046
driver ready --label agentgate-existing --runs "$READY_RUNS" --url "$ag_url$discovery" --marker "  issuer:" \
  -- taskset -c "$SERVER_CPU" $(ag_cmd "$work/ready") >>"$out"
# shellcheck disable=SC2086
driver ready --label oidc-provider --runs "$READY_RUNS" --url "$idp_url$discovery" \
  --marker "ISSUER=" -- taskset -c "$SERVER_CPU" $idp_cmd >>"$out"

# -------------------------------------------------------------- idle memory
# start NAME MARKER COMMAND...: starts a server pinned to SERVER_CPU, waits for MARKER
# on its stdout; sets $started to its PID.
start() {
  local name="$1" marker="$2"; shift 2
  taskset -c "$SERVER_CPU" "$@" >"$work/$name.log" 2>&1 & # taskset execs: $! is the server
  started=$!
  pids+=("$started")
  for _ in $(seq 300); do
    grep -q "^$marker" "$work/$name.log" && return 0
    sleep 0.05
  done
  echo "$name did not start; see $work/$name.log" >&2
  exit 1
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
memory() { # NAME PID -> one JSON line
  awk -v name="$1" '/^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} /^RssAnon:/ {anon=$2} /^RssFile:/ {file=$2} /^Threads:/ {t=$2}
    END {printf "{\"label\":\"%s\",\"mode\":\"idle\",\"vmrss_kb\":%d,\"vmhwm_kb\":%d,\"rss_anon_kb\":%d,\"rss_file_kb\":%d,\"threads\":%d}\n", name, rss, hwm, anon, file, t}' \
    "/proc/$2/status"
}

step "idle memory (${IDLE_WAIT} s after ready)"
# shellcheck disable=SC2046
start agentgate-first "  issuer:" $(ag_cmd "$work/dev")
sleep "$IDLE_WAIT"
memory agentgate-fresh "$started" >>"$out"
stop "$started"
# shellcheck disable=SC2046
start agentgate "  issuer:" $(ag_cmd "$work/dev")
ag_pid=$started
sleep "$IDLE_WAIT"
memory agentgate-existing "$ag_pid" >>"$out"
# shellcheck disable=SC2086
start oidc-provider "ISSUER=" $idp_cmd
idp_pid=$started
sleep "$IDLE_WAIT"
memory oidc-provider "$idp_pid" >>"$out"

client_id="$("$bin/agentgate" apps list --json --data-dir "$work/dev" |
  python3 -c 'import json,sys; print(next(a["client_id"] for a in json.load(sys.stdin) if a["name"] == "SmartMail AI"))')"

# -------------------------------------------------------------- load
common=(--concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --batch "$BATCH")
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    step "round $round/$ROUNDS: $mode"
    driver "$mode" "${common[@]}" --label agentgate --pid "$ag_pid" --issuer "$ag_url" \
      --client-id "$client_id" --resource "$ag_url/mcp" | tee -a "$out"
    driver "$mode" "${common[@]}" --label oidc-provider --pid "$idp_pid" --issuer "$idp_url" \
      --client-id agentgate-bench --resource "$idp_url/mcp" | tee -a "$out"
  done
done
memory agentgate-after-load "$ag_pid" >>"$out"
memory oidc-provider-after-load "$idp_pid" >>"$out"

# -------------------------------------------------------------- report
mkdir -p "$here/results"
commit="$(git -C "$root" rev-parse --short HEAD)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no | wc -l)"
machine="$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
versions="agentgate $("$bin/agentgate" --version 2>/dev/null | awk '{print $2}'), oidc-provider $(node -p "require('$root/interop/node_modules/oidc-provider/package.json').version"), node $(node --version)"
DATE="$(date -u +%FT%TZ)" COMMIT="$commit" DIRTY="$dirty" MACHINE="$machine" VERSIONS="$versions" \
KNOBS="DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY ROUNDS=$ROUNDS BATCH=$BATCH READY_RUNS=$READY_RUNS IDLE_WAIT=$IDLE_WAIT SERVER_CPU=$SERVER_CPU LOAD_CPU=$LOAD_CPU" \
  python3 "$here/issuer_report.py" "$out" "$here/results/issuer.md" "$here/results/issuer.json"
cat "$here/results/issuer.md"
rm -rf "$work"
