#!/usr/bin/env bash
# The gateway's own cost, side by side in one run:
#   http:  authenticated `tools/call whoami` against a fast Rust MCP server
#          (whoami-unguarded: rmcp, no auth of its own), directly ("direct") and
#          through `agentgate dev --route /gw=<that server>` ("gateway"), and
#          through the gateway's forwarding alone, with no guard, policy or
#          audit (bench/src/bin/proxy-unguarded.rs: "bare-proxy"), the floor
#          that proxying itself costs, and through nginx (Debian's, one
#          process, bench/nginx/proxy.conf.in: "nginx") as a reference proxy;
#          and through a route to the same server on a Unix socket
#          ("gateway-unix": whoami-unguarded unix:PATH, http+unix:// upstream);
#   stdio: `tools/call echo` against server-everything on stdio, through the npm
#          `supergateway` bridge (stdio to Streamable HTTP, stateful, no auth:
#          "supergateway"), through the npm `mcp-proxy` bridge (likewise no auth:
#          "mcp-proxy") and through `agentgate dev --route /stdio=<command>`
#          with sign-in, consent and tokens ("gateway-stdio");
#          and in the http mode, FastMCP's proxy (fastmcp 4.1.6, pinned in
#          bench/fastmcp) in front of the same upstream with its JWT check of the
#          same token ("fastmcp-proxy").
#
#   memory: the RSS each idle MCP session costs the gateway (HTTP and stdio routes) and
#          supergateway, and each stdio process (one per person) the gateway and
#          the program cost; SESSIONS idle sessions, PEOPLE people.
#
#   bench/gateway.sh                  build (release), then ROUNDS rounds of each
#   MODES=stdio ROUNDS=3 DURATION=5 bench/gateway.sh
#
# The upstreams and the gateways share SERVER_CPU (UPSTREAM_CPU moves the fast
# HTTP upstream: UPSTREAM_CPU=0 SERVER_CPU=1 gives it a core of its own, the
# gateway sharing the load's); the load driver (issuer-load,
# one MCP session per worker, every answer checked) runs on LOAD_CPU. Per run it
# prints calls/s, the CPU µs per call of the process in front (gateway or
# supergateway; 0 for direct, whose upstream's CPU is the whole figure; the stdio
# programs' own CPU is in neither) and errors; then the medians and the ratios.
# Knobs: MODES ("http stdio memory"), SESSIONS (200), PEOPLE (8), ROUNDS (5), DURATION (10 s), CONCURRENCY (16),
# SERVER_CPU (0), LOAD_CPU (1), UPSTREAM_CPU (SERVER_CPU), PORT (4311), UPSTREAM_PORT (4312), BRIDGE_PORT (4313),
# FASTMCP_PORT (4314), MCP_PROXY_PORT (4315), BARE_PORT (4316), NGINX_PORT (4317).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib.sh"
ensure_dev_null
MODES="${MODES:-http stdio memory}" SESSIONS="${SESSIONS:-200}" PEOPLE="${PEOPLE:-8}" ROUNDS="${ROUNDS:-5}" DURATION="${DURATION:-10}" CONCURRENCY="${CONCURRENCY:-16}"
SERVER_CPU="${SERVER_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}" UPSTREAM_CPU="${UPSTREAM_CPU:-${SERVER_CPU:-0}}" PORT="${PORT:-4311}" UPSTREAM_PORT="${UPSTREAM_PORT:-4312}"
BRIDGE_PORT="${BRIDGE_PORT:-4313}" FASTMCP_PORT="${FASTMCP_PORT:-4314}" MCP_PROXY_PORT="${MCP_PROXY_PORT:-4315}"
BARE_PORT="${BARE_PORT:-4316}" NGINX_PORT="${NGINX_PORT:-4317}"
ensure_node
ensure_interop_packages
if [[ " $MODES " == *" http "* ]] && ! command -v nginx >/dev/null; then apt_install nginx-light; fi
(cd "$root" && cargo build --release --quiet -p agentgate -p agentgate-bench)
bin="$root/target/release"
work="$(mktemp -d /tmp/agentgate-gateway-bench.XXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export AGENTGATE_DEMO_PASSWORD=wonderland AGENTGATE_LOG=warn
unset AGENTGATE_KEY_ENCRYPTION_KEY

upstream="http://127.0.0.1:$UPSTREAM_PORT/mcp"
everything="$(command -v node) $root/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio"
taskset -c "$UPSTREAM_CPU" "$bin/whoami-unguarded" "127.0.0.1:$UPSTREAM_PORT" >"$work/upstream.log" 2>&1 &
pids+=($!)
socket="$work/upstream.sock"
taskset -c "$UPSTREAM_CPU" "$bin/whoami-unguarded" "unix:$socket" >"$work/upstream-unix.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -S "$socket" ] && break; sleep 0.05; done
taskset -c "$SERVER_CPU" node "$root/interop/node_modules/supergateway/dist/index.js" --stdio "$everything" \
  --outputTransport streamableHttp --stateful --port "$BRIDGE_PORT" --logLevel none >"$work/bridge.log" 2>&1 &
bridge_pid=$!
pids+=($bridge_pid)
# shellcheck disable=SC2086 # the command's words, as mcp-proxy wants them after --
taskset -c "$SERVER_CPU" node "$root/interop/node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs" --port "$MCP_PROXY_PORT" \
  --server stream -- $everything >"$work/mcp-proxy.log" 2>&1 &
mcp_proxy_pid=$!
pids+=($mcp_proxy_pid)
taskset -c "$SERVER_CPU" "$bin/agentgate" dev --listen "127.0.0.1:$PORT" --data-dir "$work/dev" \
  --route "/gw=$upstream" --route "/gwu=http+unix://${socket//\//%2F}/mcp" --route "/stdio=$everything" >"$work/dev.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
for _ in $(seq 200); do grep -q "^  issuer:" "$work/dev.log" && break; sleep 0.05; done
taskset -c "$SERVER_CPU" "$bin/proxy-unguarded" "127.0.0.1:$BARE_PORT" "$upstream" >"$work/bare.log" 2>&1 &
bare_pid=$!
pids+=($bare_pid)
if [[ " $MODES " == *" http "* ]]; then
  sed -e "s|@WORK@|$work|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
    "$root/bench/nginx/proxy.conf.in" >"$work/nginx.conf"
  taskset -c "$SERVER_CPU" nginx -c "$work/nginx.conf" -p "$work" >"$work/nginx.log" 2>&1 &
  nginx_pid=$!
  pids+=($nginx_pid)
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break; sleep 0.05; done
fi
for port in "$BRIDGE_PORT" "$MCP_PROXY_PORT" "$BARE_PORT"; do
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done
# FastMCP's proxy, from its own pinned venv, checking the dev issuer's tokens for /gw.
if [[ " $MODES " == *" http "* ]]; then
  fastmcp="$root/bench/fastmcp"
  if [ ! -x "$fastmcp/.venv/bin/python" ] || [ "$fastmcp/requirements.txt" -nt "$fastmcp/.venv/.stamp" ]; then
    rm -rf "$fastmcp/.venv" && python3 -m venv "$fastmcp/.venv"
    "$fastmcp/.venv/bin/pip" install --quiet --no-deps --disable-pip-version-check -r "$fastmcp/requirements.txt"
    "$fastmcp/.venv/bin/pip" check >/dev/null && touch "$fastmcp/.venv/.stamp"
  fi
  issuer="http://127.0.0.1:$PORT"
  UPSTREAM="$upstream" ISSUER="$issuer" AUDIENCE="$issuer/gw" JWKS_URI="$issuer/jwks" PORT="$FASTMCP_PORT" taskset -c "$SERVER_CPU" "$fastmcp/.venv/bin/python" "$fastmcp/proxy.py" \
    >"$work/fastmcp.log" 2>&1 &
  fastmcp_pid=$!
  pids+=($fastmcp_pid)
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$FASTMCP_PORT") 2>/dev/null && break; sleep 0.05; done
fi
client_id="$("$bin/agentgate" apps list --json --data-dir "$work/dev" |
  python3 -c 'import json,sys; print(next(a["client_id"] for a in json.load(sys.stdin) if a["name"] == "SmartMail AI"))')"
base="http://127.0.0.1:$PORT"
labels=()
for mode in $MODES; do
  case "$mode" in
    http) labels+=(direct nginx bare-proxy gateway gateway-unix fastmcp-proxy) ;;
    stdio) labels+=(supergateway mcp-proxy gateway-stdio) ;;
    memory) ;;
    *) echo "MODES: http, stdio or memory, not $mode" >&2; exit 2 ;;
  esac
done
for round in $(seq "$ROUNDS"); do
  for label in "${labels[@]}"; do
    # The token is for the gateway's route; direct and supergateway check none.
    case "$label" in
      direct) url="$upstream" pid="$gateway_pid" resource="$base/gw" tool=(--tool whoami) ;;
      nginx) url="http://127.0.0.1:$NGINX_PORT/mcp" pid="$nginx_pid" resource="$base/gw" tool=(--tool whoami) ;;
      bare-proxy) url="http://127.0.0.1:$BARE_PORT/mcp" pid="$bare_pid" resource="$base/gw" tool=(--tool whoami) ;;
      gateway) url="$base/gw" pid="$gateway_pid" resource="$base/gw" tool=(--tool whoami) ;;
      gateway-unix) url="$base/gwu" pid="$gateway_pid" resource="$base/gwu" tool=(--tool whoami) ;;
      fastmcp-proxy) url="http://127.0.0.1:$FASTMCP_PORT/mcp" pid="$fastmcp_pid" resource="$base/gw" tool=(--tool whoami) ;;
      supergateway) url="http://127.0.0.1:$BRIDGE_PORT/mcp" pid="$bridge_pid" resource="$base/stdio" tool=(--tool echo) ;;
      mcp-proxy) url="http://127.0.0.1:$MCP_PROXY_PORT/mcp" pid="$mcp_proxy_pid" resource="$base/stdio" tool=(--tool echo) ;;
      gateway-stdio) url="$base/stdio" pid="$gateway_pid" resource="$base/stdio" tool=(--tool echo) ;;
    esac
    [ "${tool[1]}" = echo ] && tool+=(--arguments '{"message":"hi"}')
    taskset -c "$LOAD_CPU" "$bin/issuer-load" mcp --mcp "$url" "${tool[@]}" --concurrency "$CONCURRENCY" \
      --duration "$DURATION" --warmup 2 --label "$label" --pid "$pid" --issuer "$base" --client-id "$client_id" \
      --resource "$resource" 2>"$work/load.err" >>"$work/runs.jsonl" || { echo "$label failed:" >&2; grep -m3 -v "^ *[0-9]*:\\|^ *at " "$work/load.err" >&2; exit 1; }
    tail -1 "$work/runs.jsonl" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["label"], round(d["per_s"]), "calls/s;", d["server_cpu_us_per_op"], "CPU µs/call in front; errors:", d["errors"], d.get("first_error", ""))'
  done
done
# The resident memory of a process and all its descendants, in KiB.
tree_rss() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" 2>/dev/null); do
    [ "$pid" = "$1" ] || { total=$((total + $(tree_rss "$pid"))); continue; }
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
if [[ " $MODES " == *" memory "* ]]; then
  for target in gw stdio bridge; do
    url="$base/$target" pid="$gateway_pid" resource="$base/$target"
    [ "$target" = bridge ] && url="http://127.0.0.1:$BRIDGE_PORT/mcp" pid="$bridge_pid" resource="$base/stdio"
    before=$(tree_rss "$pid")
    count=$SESSIONS
    # supergateway --stateful starts a program per session: fewer of them.
    [ "$target" = bridge ] && count=$PEOPLE
    "$bin/issuer-load" sessions --mcp "$url" --concurrency "$count" --label "idle-$target" --pid "$pid" \
      --issuer "$base" --client-id "$client_id" --resource "$resource" 2>/dev/null >>"$work/memory.jsonl"
    after=$(tree_rss "$pid")
    tail -1 "$work/memory.jsonl" | python3 -c "import json,sys; d=json.load(sys.stdin); print(f'{d[\"label\"]}: {d[\"sessions\"]} idle sessions, {d[\"bytes_per_session\"]/1024:.1f} KiB each in the process in front; with its programs {($after - $before) / $count:.0f} KiB each')"
  done
  # One stdio process per person: PEOPLE people, one idle session each.
  before_gateway=$(awk '/^VmRSS/ {print $2}' "/proc/$gateway_pid/status") before_tree=$(tree_rss "$gateway_pid")
  for n in $(seq "$PEOPLE"); do
    printf 'wonderland\n' | "$bin/agentgate" users add "person$n" --password-stdin --data-dir "$work/dev" >/dev/null
    "$bin/issuer-load" sessions --mcp "$base/stdio" --concurrency 1 --login "person$n" --label "person$n" \
      --pid "$gateway_pid" --issuer "$base" --client-id "$client_id" --resource "$base/stdio" 2>/dev/null >/dev/null
  done
  after_gateway=$(awk '/^VmRSS/ {print $2}' "/proc/$gateway_pid/status") after_tree=$(tree_rss "$gateway_pid")
  echo "stdio processes: $PEOPLE people, $(( (after_gateway - before_gateway) / PEOPLE )) KiB each in the gateway," \
    "$(( (after_tree - before_tree - after_gateway + before_gateway) / PEOPLE )) KiB each for the program"
fi
[ -s "$work/runs.jsonl" ] || exit 0
python3 - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
med = {}
for label in dict.fromkeys(r["label"] for r in runs):
    mine = [r for r in runs if r["label"] == label]
    med[label] = (statistics.median(r["per_s"] for r in mine), statistics.median(r["server_cpu_us_per_op"] for r in mine))
    print(f"median {label}: {med[label][0]:.0f} calls/s, {med[label][1]:.1f} CPU µs per call in front")
for a, b in (("gateway", "direct"), ("bare-proxy", "direct"), ("nginx", "direct"), ("gateway", "fastmcp-proxy"), ("gateway-stdio", "supergateway"), ("gateway-stdio", "mcp-proxy")):
    if a in med and b in med:
        print(f"{a} / {b}: {med[a][0] / med[b][0]:.3f} of the calls per second")
if "gateway" in med and "bare-proxy" in med:
    print(f"the checks (guard, policy, audit) add {med['gateway'][1] - med['bare-proxy'][1]:.1f} CPU µs per call to the forwarding's {med['bare-proxy'][1]:.1f}")
PY
