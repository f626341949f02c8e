#!/usr/bin/env bash
# Builds the AssemblyScript test filters (assembly/*.ts) with the pinned SDK and compiler into
# OUT_DIR (default ${SLUICE_BUILD_DIR:-/tmp}/assemblyscript), then checks each module against the
# host's import table. A module is rebuilt only when its source, the lock file or the flags changed
# (a key file next to each .wasm records them). Each compile is bounded by a timeout.
#   tests/assemblyscript/build.sh [OUT_DIR [NAME...]]   (NAME: only assembly/NAME.ts)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src_root=$(cd "$here/../.." && pwd)
out=${1:-${SLUICE_BUILD_DIR:-/tmp}/assemblyscript}
only=("${@:2}")
asc=$here/node_modules/.bin/asc
# The flags the SDK documents: abort() goes to its abort_proc_exit (logs, then WASI proc_exit).
flags=(--use abort=abort_proc_exit -O)
timeout_s=${ASC_TIMEOUT:-120}

die() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || die "node is not installed; run 'make deps'"
[[ -x $asc && -f $here/node_modules/@solo-io/proxy-runtime/assembly/index.ts ]] ||
  die "the AssemblyScript SDK is not installed in $here/node_modules; run 'make deps' (scripts/deps-npm.sh)"
# node_modules must match the lock file (npm ci writes node_modules/.package-lock.json).
for pkg in assemblyscript @solo-io/proxy-runtime; do
  want=$(node -p "require('$here/package-lock.json').packages['node_modules/$pkg'].version")
  have=$(node -p "require('$here/node_modules/$pkg/package.json').version")
  [[ $want == "$have" ]] || die "$pkg $have installed but the lock file pins $want; run 'make deps'"
done

mkdir -p "$out"
lock_sum=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
built=()
sources=("$here"/assembly/*.ts)
if [[ ${#only[@]} -gt 0 ]]; then
  sources=()
  for n in "${only[@]}"; do sources+=("$here/assembly/$n.ts"); done
fi
for ts in "${sources[@]}"; do
  [[ -f $ts ]] || die "no such AssemblyScript filter: $ts"
  name=$(basename "$ts" .ts)
  wasm=$out/$name.wasm
  key="$(sha256sum "$ts" | cut -d' ' -f1) $lock_sum ${flags[*]}"
  if [[ -f $wasm && -f $wasm.key && $(cat "$wasm.key") == "$key" ]]; then
    echo "assemblyscript: $name.wasm up to date"
  else
    echo "assemblyscript: asc assembly/$name.ts ${flags[*]} -> $wasm"
    start=$SECONDS
    # The SDK's own sources give one harmless AS201 warning (usize->u32 in toString); keep the log.
    if ! (cd "$here" && timeout "$timeout_s" "$asc" "assembly/$name.ts" -b "$wasm.tmp" "${flags[@]}") \
        > "$out/$name.log" 2>&1; then
      cat "$out/$name.log" >&2
      rm -f "$wasm.tmp"
      die "asc failed (or took over ${timeout_s}s) for $name.ts"
    fi
    mv "$wasm.tmp" "$wasm"
    echo "$key" > "$wasm.key"
    echo "assemblyscript: $name.wasm built in $((SECONDS - start))s"
  fi
  built+=("$wasm")
done

# Every module but the deliberate clear_route_cache one must link against the host as 0.2.0.
checked=()
for w in "${built[@]}"; do [[ $(basename "$w") == clear_route_cache.wasm ]] || checked+=("$w"); done
node "$here/check_module.js" "$src_root/src/wasm/abi/host_functions.cc" "${checked[@]}"
if [[ -f $out/clear_route_cache.wasm ]] &&
  node "$here/check_module.js" "$src_root/src/wasm/abi/host_functions.cc" \
    "$out/clear_route_cache.wasm" 2>/dev/null; then
  die "check_module.js accepted clear_route_cache.wasm, which imports proxy_clear_route_cache"
fi
