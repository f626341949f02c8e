#!/usr/bin/env bash
# Builds the hub's web UI (hub/web, Vite) into OUT_DIR, the folder `sluice hub serve --web-dir`
# serves. Idempotent: OUT_DIR is emptied and rebuilt each time. Needs hub/web/node_modules,
# installed by `make deps` (scripts/deps-npm.sh runs npm ci there).
set -euo pipefail
if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
web=$(cd "$(dirname "$0")/.." && pwd)/hub/web
out=$1
[[ $out == /* ]] || out=$PWD/$out   # npm runs in hub/web: make a relative OUT_DIR absolute
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "build-hub-web: npm/node not found; run make deps" >&2
  exit 1
fi
if [[ ! -x $web/node_modules/.bin/vite ]]; then
  echo "build-hub-web: $web/node_modules is missing (or has no vite); run make deps (it runs npm ci there)" >&2
  exit 1
fi
mkdir -p "$out"
(cd "$web" && npm run --silent build -- --outDir "$out" --emptyOutDir --logLevel warn)
[[ -f $out/index.html ]] || { echo "build-hub-web: the build wrote no $out/index.html" >&2; exit 1; }
echo "build-hub-web: built the web UI into $out"
