#!/usr/bin/env bash
# Token exchanges per second on the store a team picks: `agentgate serve` on its
# SQLite file, one instance on PostgreSQL, and two instances on one PostgreSQL
# database with the exchanges spread over both (as a round-robin load balancer
# would), side by side in one run, the three taking turns.
#
#   bench/instances.sh                        build (release), measure, write bench/results/instances.{md,json}
#   DURATION=5 ROUNDS=1 bench/instances.sh    a quick look
#
# Servers are pinned to SERVER_CPU (0), the load driver (src/bin/issuer-load.rs,
# `exchange` mode: codes minted untimed through the issuer URL, `POST /token`
# timed) to LOAD_CPU (1). PostgreSQL is the one scripts/lib.sh finds or starts at
# 127.0.0.1:5432 (or BENCH_DATABASE_URL), unpinned: it shares both CPUs with the
# rest, as a database server next to the instances would. Each run gets a fresh
# data directory or PostgreSQL schema.
#
# Knobs: DURATION (10 s measured per run), WARMUP (2 s), CONCURRENCY (16), ROUNDS
# (3), BATCH (500), SERVER_CPU, LOAD_CPU, PORT (4400; the second instance PORT+1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
DURATION="${DURATION:-10}" WARMUP="${WARMUP:-2}" CONCURRENCY="${CONCURRENCY:-16}" ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-500}" SERVER_CPU="${SERVER_CPU:-0}" LOAD_CPU="${LOAD_CPU:-1}" PORT="${PORT:-4400}"
SERVER="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# shellcheck source=../scripts/lib.sh
source "$root/scripts/lib.sh"
ensure_dev_null
[ -n "${BENCH_DATABASE_URL:-}" ] || ensure_postgres

step "building (release)"
(cd "$root" && cargo build --release --quiet -p agentgate -p agentgate-bench)
bin="$root/target/release"

work="$(mktemp -d /tmp/agentgate-instances-bench.XXXXXX)"
out="$work/runs.jsonl"
: >"$out"
pids=()
schemas=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for schema in "${schemas[@]}"; do psql -q "$SERVER" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
unset AGENTGATE_KEY_ENCRYPTION_KEY AGENTGATE_DATABASE_URL AGENTGATE_DATA_DIR
export AGENTGATE_LOG=warn

# A setup folder: agentgate.toml, a key-encryption key, alice and a public
# third-party app; prints the app's client id. $2 is the database URL, or "".
setup() {
  local dir="$1" database_url="$2"
  mkdir -p "$dir"
  head -c 32 /dev/urandom | base64 >"$dir/kek"
  chmod 600 "$dir/kek"
  {
    echo "issuer = \"http://127.0.0.1:$PORT\""
    echo "listen = \"127.0.0.1:$PORT\""
    echo "data_dir = \"data\""
    echo "key_encryption_key_file = \"kek\""
    [ -z "$database_url" ] || echo "database_url = \"$database_url\""
    echo '[[resource]]'
    echo "url = \"http://127.0.0.1:$PORT/mcp\""
    echo 'name = "whoami"'
    echo 'scopes = { "mcp:tools" = "Use the tools" }'
  } >"$dir/agentgate.toml"
  printf wonderland | "$bin/agentgate" users add alice --password-stdin --config "$dir/agentgate.toml" >/dev/null
  "$bin/agentgate" apps add "SmartMail AI" --third-party --public --native --json \
    --redirect-uri http://127.0.0.1:7777/callback --scopes "openid profile mcp:tools" \
    --config "$dir/agentgate.toml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])'
}

# Starts `agentgate serve` for $1 listening on port $2; prints its PID once it listens.
serve() {
  local dir="$1" port="$2" log="$1/serve-$2.log"
  AGENTGATE_LISTEN="127.0.0.1:$port" taskset -c "$SERVER_CPU" \
    "$bin/agentgate" serve --config "$dir/agentgate.toml" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do grep -q "listening on" "$log" && break; sleep 0.05; done
  grep -q "listening on" "$log" || { cat "$log" >&2; return 1; }
  echo "$pid"
}

for round in $(seq "$ROUNDS"); do
  for target in sqlite postgres-1 postgres-2; do
    dir="$work/$target-$round"
    database_url=""
    if [ "$target" != sqlite ]; then
      schema="agentgate_bench_${round}_${target//-/_}_$$"
      schemas+=("$schema")
      psql -q "$SERVER" -c "CREATE SCHEMA $schema" >/dev/null
      separator='?'; [[ "$SERVER" == *\?* ]] && separator='&'
      database_url="$SERVER${separator}options=-c%20search_path%3D$schema"
    fi
    client_id="$(setup "$dir" "$database_url")"
    server_pids=("$(serve "$dir" "$PORT")")
    endpoints=(--token-endpoint "http://127.0.0.1:$PORT/token")
    if [ "$target" = postgres-2 ]; then
      server_pids+=("$(serve "$dir" "$((PORT + 1))")")
      endpoints+=(--token-endpoint "http://127.0.0.1:$((PORT + 1))/token")
    fi
    pid_args=()
    for pid in "${server_pids[@]}"; do pid_args+=(--pid "$pid"); done
    taskset -c "$LOAD_CPU" "$bin/issuer-load" exchange --issuer "http://127.0.0.1:$PORT" \
      --client-id "$client_id" --resource "http://127.0.0.1:$PORT/mcp" --concurrency "$CONCURRENCY" \
      --duration "$DURATION" --warmup "$WARMUP" --batch "$BATCH" --label "$target" \
      "${pid_args[@]}" "${endpoints[@]}" 2>"$dir/load.err" >>"$out" || { cat "$dir/load.err" >&2; exit 1; }
    for pid in "${server_pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    tail -1 "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%11s: %.0f exchanges/s, %s µs instance CPU each, %s errors" % (d["label"], d["per_s"], d.get("server_cpu_us_per_op"), d.get("errors")), file=sys.stderr)'
  done
done

mkdir -p "$here/results"
python3 - "$out" "$here/results/instances" "$DURATION" "$CONCURRENCY" "$ROUNDS" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
base, duration, concurrency, rounds = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
json.dump(runs, open(base + ".json", "w"), indent=1)
labels = ["sqlite", "postgres-1", "postgres-2"]
med = lambda label, key: statistics.median(r[key] for r in runs if r["label"] == label and key in r)
sqlite = med("sqlite", "per_s")
lines = [
    f"Token exchanges (`POST /token`, code + PKCE → access and ID token), {concurrency} in flight, "
    f"{duration} s measured per run, median of {rounds} interleaved runs. Instance CPU is the "
    "agentgate processes' own (PostgreSQL's is not in it).",
    "",
    "| store | exchanges/s | vs SQLite | instance CPU µs / exchange | errors |",
    "|---|---:|---:|---:|---:|",
]
for label in labels:
    rate = med(label, "per_s")
    errors = sum(r.get("errors", 0) for r in runs if r["label"] == label)
    lines.append(f"| {label} | {rate:.0f} | {rate / sqlite:.2f}× | {med(label, 'server_cpu_us_per_op'):.0f} | {errors} |")
open(base + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
