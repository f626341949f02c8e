#!/usr/bin/env bash
# V8 lives in libsluice-v8.so, loaded on first use: a proxy with no V8 plugin never maps libnode
# (and runs without the object at all); one with a V8 plugin loads it; a missing, broken or
# foreign object is a start-up error that says which file and why; so is `hub serve` without V8.
source "$(dirname "$0")/lib.sh"
require_extensions add_header
P=$(free_port); ADMIN_PORT=$(free_port)
MODULE=$SLUICE_BUILD_DIR/libsluice-v8.so
[[ -f $MODULE ]] || fail "$MODULE is missing: build first"

config() {  # RUNTIME: add_header on that runtime in front of a direct response
  sdk_bootstrap 1 "$(sdk_listener front "$P" "$(sdk_filter add "$1" add_header \
    "response.set.x-added = $1")" '- { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "hello" } } }')"
}
maps_libnode() { grep -q 'libnode\.so' "/proc/$1/maps"; }

# No V8 plugin: no libnode, and the object is not even needed.
config null > "$WORK/null.yaml"
SLUICE_V8_MODULE=/nonexistent/libsluice-v8.so start_sluice "$WORK/null.yaml"
out=$(curl -s -D - "http://127.0.0.1:$P/")
grep -qi '^x-added: null' <<<"$out" || fail "the null plugin did not run: $out"
! maps_libnode "$SLUICE_PID" || fail "libnode is mapped by a proxy with no V8 plugin"
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SLUICE_PID/status")
kill "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null || true
pass "no V8 plugin: libnode never mapped (RSS $rss KiB), and libsluice-v8.so not needed"

# A V8 plugin: the object next to the binary (the build folder) is loaded.
config v8 > "$WORK/v8.yaml"
start_sluice "$WORK/v8.yaml"
out=$(curl -s -D - "http://127.0.0.1:$P/")
grep -qi '^x-added: v8' <<<"$out" || fail "the V8 plugin did not run: $out"
maps_libnode "$SLUICE_PID" || fail "a V8 plugin ran without libnode mapped?"
grep -q 'libsluice-v8\.so' "/proc/$SLUICE_PID/maps" || fail "libsluice-v8.so is not mapped"
kill "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null || true
pass "a V8 plugin loads libsluice-v8.so and libnode"

# start_fails WHAT EXPECTED [env...]: sluice -c v8.yaml exits non-zero, its output matching EXPECTED.
start_fails() {
  local what=$1 expected=$2 out rc
  shift 2
  set +e
  out=$(env "$@" timeout 20 "$SLUICE_BIN" -c "$WORK/v8.yaml" --concurrency 1 2>&1); rc=$?
  set -e
  [[ $rc -ne 0 && $rc -ne 124 ]] || fail "$what: sluice did not refuse to start (rc $rc): $out"
  grep -qE "$expected" <<<"$out" || fail "$what: unclear error: $out"
}
start_fails "missing object" \
  'runtime envoy.wasm.runtime.v8 is unavailable: libsluice-v8.so not found \(looked for /nonexistent/libsluice-v8.so\).*SLUICE_V8_MODULE' \
  SLUICE_V8_MODULE=/nonexistent/libsluice-v8.so
printf 'not an ELF file' > "$WORK/libsluice-v8.so"
start_fails "broken object" "cannot load $WORK/libsluice-v8.so: .*(invalid ELF header|file too short)" \
  SLUICE_V8_MODULE="$WORK/libsluice-v8.so"
start_fails "object of another build" \
  "was built from another version of Sluice \(interface 0000000000000000, this executable's [0-9a-f]{16}\)" \
  SLUICE_V8_MODULE="$SLUICE_BUILD_DIR/tests/v8_module/libsluice-v8.so"
start_fails "a shared object that is not Sluice's" "is not Sluice's V8 runtime" \
  SLUICE_V8_MODULE="$(ls /usr/lib/x86_64-linux-gnu/libz.so.1)"
pass "missing, broken, foreign and other-build objects: start-up errors naming the file"

# The hub compiles every pushed module with V8: without it, it does not start.
HUB=$(free_port)
set +e
out=$(SLUICE_V8_MODULE=/nonexistent/libsluice-v8.so timeout 20 "$SLUICE_BIN" hub serve \
  --listen "127.0.0.1:$HUB" --data-dir "$WORK/hub" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "libsluice-v8.so not found" <<<"$out" || fail "hub serve: rc $rc: $out"
pass "hub serve refuses to start without V8"
echo "v8_module: all passed"
