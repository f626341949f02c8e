#!/usr/bin/env bash
# Installs the npm packages of the project's two Node folders with `npm ci` from their committed
# lock files:
# - tests/assemblyscript: the AssemblyScript SDK tests (the pinned @solo-io/proxy-runtime SDK and
#   assemblyscript compiler);
# - hub/web: the hub's web UI (Vite, marked, DOMPurify) and playwright-core, which drives
#   Debian's chromium in its end-to-end test (no browser is downloaded).
# Idempotent: a folder is skipped when its node_modules is at least as new as its lock file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "deps-npm: npm/node not found; install Node.js and npm (scripts/deps.sh does) and rerun" >&2
  exit 1
fi

# npm_ci DIR PACKAGE...: npm ci in DIR unless its stamp is newer than package*.json; reports the
# versions of PACKAGE... afterwards.
npm_ci() {
  local dir=$1; shift
  local mods=$dir/node_modules
  local stamp=$mods/.sluice-npm-ci   # written after a successful npm ci
  if [[ ! -f $dir/package-lock.json ]]; then
    echo "deps-npm: $dir/package-lock.json is missing" >&2
    exit 1
  fi
  if [[ -f $stamp && ! $dir/package-lock.json -nt $stamp && ! $dir/package.json -nt $stamp ]]; then
    echo "deps-npm: $mods is up to date with package-lock.json"
    return 0
  fi
  if [[ -d $mods ]]; then
    echo "deps-npm: package-lock.json is newer than $mods: reinstalling with npm ci"
  else
    # (platform-specific optional packages, e.g. rolldown bindings for other systems, left out)
    echo "deps-npm: installing $(node -p "Object.entries(require('$dir/package-lock.json').packages).filter(([k, v]) => k && !v.optional).map(([k, v]) => k.replace(/^.*node_modules\//, '') + '@' + v.version).join(' ')") into $mods (npm ci)"
  fi
  # playwright-core never downloads browsers; the variable keeps it that way should that change.
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
  echo "deps-npm: done ($(cd "$dir" && node -p "process.argv.slice(1).map(p => p + '@' + require('./node_modules/' + p + '/package.json').version).join(', ')" "$@"))"
}

npm_ci "$root/tests/assemblyscript" assemblyscript @solo-io/proxy-runtime
npm_ci "$root/hub/web" vite marked dompurify playwright-core
