#!/usr/bin/env bash
# Hot reload under load: wrk keeps 16 keep-alive connections busy while the config file and a
# module file change 20 times between two versions that set different response headers, with an
# invalid config and an invalid module in between. Every answer must be a 2xx with no socket
# error, and each version must be the one answering soon after its change.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR to the built test modules}"
require_extensions add_header
command -v wrk > /dev/null || fail "wrk is needed"

UP=$(free_port); FRONT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
two_module_versions

config() {  # X_CONFIG_VALUE
  local filters
  filters="$(sdk_filter tagger v8 add_header "response.set.x-config = $1")
$(wasm_http_filter basic v8 "filename: $WORK/module.wasm" "configured")"
  sdk_bootstrap "$UP" "$(sdk_listener front "$FRONT" "$filters")"
}
replace() {  # SOURCE_FILE TARGET: a rename-write, as editors and deploy tools do
  cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
}
header_of() {  # NAME
  curl -s -D - -o /dev/null "http://127.0.0.1:$FRONT/" | tr -d '\r' | sed -n "s/^$1: //Ip"
}
# answers NAME VALUE: until a fresh request gets VALUE (10 s at most: "soon", not a timing test).
answers() {
  for _ in $(seq 200); do [[ $(header_of "$1") == "$2" ]] && return 0; sleep 0.05; done
  fail "$1: $2 never answered after its change"
}

config a > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
answers x-config a

wrk -t2 -c16 -d30s "http://127.0.0.1:$FRONT/" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
PIDS+=($WRK)
sleep 1

modules=(hello hallo)
for i in $(seq 1 20); do
  if (( i % 2 )); then
    value=v$i
    config "$value" > "$WORK/next.yaml"
    replace "$WORK/next.yaml" "$WORK/sluice.yaml"
    answers x-config "$value"
  else
    m=${modules[$(( (i / 2) % 2 ))]}
    replace "$WORK/$m.wasm" "$WORK/module.wasm"
    answers x-wasm "$m"
  fi
  if (( i == 7 )); then  # an invalid config: rejected, nothing changes
    n=$(reloads)
    printf 'static_resources: { listeners: [ { name: front } ] ' > "$WORK/broken.yaml"
    replace "$WORK/broken.yaml" "$WORK/sluice.yaml"
    await_reload "$n"
    [[ $(header_of x-config) == v7 ]] || fail "an invalid config changed what serves"
    replace "$WORK/next.yaml" "$WORK/sluice.yaml"
  fi
  if (( i == 12 )); then  # an invalid module: rejected, nothing changes
    n=$(reloads)
    printf '\0asm\1\0\0\0garbage' > "$WORK/broken.wasm"
    replace "$WORK/broken.wasm" "$WORK/module.wasm"
    await_reload "$n"
    [[ $(header_of x-wasm) == "$m" ]] || fail "an invalid module changed what serves"
    replace "$WORK/$m.wasm" "$WORK/module.wasm"
  fi
done
pass "20 changes answered, each soon after it was made"
accepted=$(stat_of sluice.config_reloads_total.accepted)
rejected=$(stat_of sluice.config_reloads_total.rejected)
(( accepted >= 20 && rejected >= 2 )) || fail "reloads: $accepted accepted, $rejected rejected"

wait "$WRK" || fail "wrk failed: $(cat "$WORK/wrk.txt")"
cat "$WORK/wrk.txt"
grep -q 'requests in' "$WORK/wrk.txt" || fail "wrk printed no summary"
grep -q 'Non-2xx' "$WORK/wrk.txt" && fail "non-2xx answers during reloads"
grep -q 'Socket errors' "$WORK/wrk.txt" && fail "socket errors during reloads"
requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/wrk.txt")
(( requests > 1000 )) || fail "wrk made only $requests requests"
pass "under load through $accepted accepted and $rejected rejected reloads: $requests requests, all 2xx, no socket errors"

# The VMs of replaced plugins are gone once their streams ended: per worker, one VM per live
# plugin (tagger and basic), nothing left over from the 20 versions.
sleep 1.5
active=$(stat_of wasm.envoy.wasm.runtime.v8.active)
(( active <= 4 )) || fail "$active V8 VMs still active after the reloads (want at most 2 per worker)"
grep -q 'ERROR: AddressSanitizer' "$WORK/sluice.log" && fail "sanitizer report"
stop_sluice
pass "replaced plugin VMs released ($active active)"
