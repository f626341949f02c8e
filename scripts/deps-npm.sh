#!/usr/bin/env bash
# Installs the npm packages the AssemblyScript SDK tests need (tests/assemblyscript: the pinned
# @solo-io/proxy-runtime SDK and assemblyscript compiler) with `npm ci` from the committed lock file.
# Idempotent: does nothing when node_modules is at least as new as package-lock.json.
set -euo pipefail
dir=$(cd "$(dirname "$0")/.." && pwd)/tests/assemblyscript
mods=$dir/node_modules
stamp=$mods/.sluice-npm-ci   # written after a successful npm ci

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "deps-npm: npm/node not found; install Node.js and npm (scripts/deps.sh does) and rerun" >&2
  exit 1
fi
if [[ ! -f $dir/package-lock.json ]]; then
  echo "deps-npm: $dir/package-lock.json is missing" >&2
  exit 1
fi
if [[ -f $stamp && ! $dir/package-lock.json -nt $stamp && ! $dir/package.json -nt $stamp ]]; then
  echo "deps-npm: $mods is up to date with package-lock.json"
  exit 0
fi
if [[ -d $mods ]]; then
  echo "deps-npm: package-lock.json is newer than $mods: reinstalling with npm ci"
else
  echo "deps-npm: installing $(node -p "Object.entries(require('$dir/package-lock.json').packages).filter(([k]) => k).map(([k, v]) => k.replace('node_modules/', '') + '@' + v.version).join(' ')") into $mods (npm ci)"
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
touch "$stamp"
echo "deps-npm: done ($(cd "$dir" && node -p "['assemblyscript', '@solo-io/proxy-runtime'].map(p => p + '@' + require('./node_modules/' + p + '/package.json').version).join(', ')"))"
