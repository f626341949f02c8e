#!/usr/bin/env bash
# A hostile plugin built with the C++ SDK (tests/sdk/hostile_extension.cc, V8, FAIL_RELOAD,
# 16 MiB memory, 400 ms CPU per callback) on one listener while another serves under wrk: a
# memory bomb (malloc until refused, then abort), a leak across requests up to the memory limit,
# an endless loop, unbounded recursion, a store outside linear memory and abort(). Each misdeed gets the
# policy's 503 and a fresh VM for the next request; the other listener answers every request
# with a 2xx; failures are counted by reason; and 40 memory bombs (16 MiB each) leave the
# proxy's RSS within 20% of where it was.
source "$(dirname "$0")/lib.sh"
small_asan_quarantine  # RSS is bounded below
: "${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR}"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
MODULE=$SLUICE_BUILD_DIR/tests/sdk/sdk_hostile.wasm
[[ -f $MODULE ]] || fail "$MODULE is not built"
command -v wrk > /dev/null || fail "wrk is needed"
UP=$(free_port); BAD=$(free_port); GOOD=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

hostile_filter() {
  wasm_http_filter hostile v8 "filename: $MODULE" "" |
    sed "s/^\(                name: hostile\)$/\1\n                failure_policy: FAIL_RELOAD\n                reload_config: { backoff: { base_interval: 0.001s, max_interval: 0.001s } }/"
}
{
  sdk_bootstrap "$UP" "$(
    sdk_listener bad "$BAD" "$(hostile_filter)"
    sdk_listener good "$GOOD" "$(wasm_http_filter basic v8 "filename: $SLUICE_TEST_WASM_DIR/filter_basic.wasm" "x")"
  )"
  # The CPU budget is well above a memory bomb's cost (about 100 ms of page faults, more on a
  # loaded machine), so only the endless loop is stopped for CPU.
  printf 'sluice: { wasm: { plugins: { hostile: { memory_limit_mb: 16, callback_cpu_ms: 400 } } } }\n'
} > "$WORK/sluice.yaml"
SLUICE_CONCURRENCY=1 start_sluice "$WORK/sluice.yaml"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SLUICE_PID/status"; }
alive() { curl -s -D - -o /dev/null "http://127.0.0.1:$BAD/" | tr -d '\r' | sed -n 's/^x-hostile-sdk: //p'; }
# misdeed ACTION [N [RATE]]: N requests (default 1) with x-hostile: ACTION over one connection,
# RATE a second (default 50), so that each starts past the 1 ms reload backoff and meets a fresh
# VM if the last failed; prints their status codes' tally, e.g. "503:3 ".
misdeed() {
  local urls=() i
  for i in $(seq "${2:-1}"); do urls+=(-o /dev/null "http://127.0.0.1:$BAD/"); done
  curl -s --max-time 60 --rate "${3:-50}/s" -H "x-hostile: $1" -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c |
    awk '{ printf "%s:%s ", $2, $1 }'
}
failures() {
  local n
  n=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" |
    sed -n "s/^sluice_wasm_failures_total{plugin=\"hostile\",reason=\"$1\"} //p")
  echo "${n:-0}"
}

[[ $(alive) == "alive, keeping 0 MiB" ]] || fail "a plain request through the SDK plugin: '$(alive)'"

wrk -t1 -c4 -d60s "http://127.0.0.1:$GOOD/" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
PIDS+=($WRK)

for action in grow loop recurse oob abort; do
  out=$(misdeed "$action")
  [[ $out == "503:1 " ]] || fail "$action: $out"
  [[ $(alive) == "alive, keeping 0 MiB" ]] || fail "a fresh VM after $action: '$(alive)'"
done
# (Our SDK's modules take a stream's first two callbacks in one fused call: the log names both.)
grep -q "failed in proxy_on_context_create+proxy_on_request_headers: a callback used more than its CPU budget (400 ms)" "$WORK/sluice.log" ||
  fail "the loop is not logged"
grep -q "memory access out of bounds (wasm backtrace: (anonymous namespace)::recurse(int)@" "$WORK/sluice.log" ||
  fail "the recursion is not logged"
grep -q "memory access out of bounds (wasm backtrace: (anonymous namespace)::HostileStream::on_request_headers" "$WORK/sluice.log" ||
  fail "the stray store is not logged"
grep -q "RuntimeError: unreachable (wasm backtrace: abort@" "$WORK/sluice.log" || fail "abort() is not logged"
pass "a memory bomb, an endless loop, recursion, a stray store and abort() each get a 503 and a fresh VM"

# The leak: 1 MiB kept per request; the 16 MiB limit ends the VM (503) and the next one starts
# empty.
out=$(misdeed leak 40)
[[ $out =~ ^200:([0-9]+)\ 503:([0-9]+)\ $ ]] || fail "40 leaking requests: $out"
(( BASH_REMATCH[2] >= 2 && BASH_REMATCH[1] >= 20 )) || fail "40 leaking requests: $out"
kept=$(alive); kept=${kept#alive, keeping }; kept=${kept% MiB}
(( kept < 16 )) || fail "the leak outgrew the limit: $kept MiB"
pass "a leak across requests stops at memory_limit_mb: $out"

# 40 memory bombs of 16 MiB each: VMs are replaced, not accumulated. (A bomb takes V8 about
# 100 ms, growing memory 1 MiB at a time: 5 a second leaves each its fresh VM.)
# RSS is read at rest: past the 1 s sweep that ends replaced VMs, after a plain request.
settled_rss() { sleep 1.5; alive > /dev/null; rss; }
misdeed grow 5 5 > /dev/null
rss_before=$(settled_rss)
out=$(misdeed grow 40 5)
[[ $out == "503:40 " ]] || fail "40 memory bombs: $out"
rss_after=$(settled_rss)
(( rss_after * 100 <= rss_before * 120 )) || fail "RSS grew from $rss_before KiB to $rss_after KiB over 40 memory bombs"
pass "RSS $rss_before KiB before, $rss_after KiB after 40 memory bombs (640 MiB of Wasm memory)"

kill -INT "$WRK" 2>/dev/null || true
wait "$WRK" 2>/dev/null || true
cat "$WORK/wrk.txt"
grep -q 'requests in' "$WORK/wrk.txt" || fail "wrk printed no summary"
grep -q 'Non-2xx' "$WORK/wrk.txt" && fail "the good listener answered non-2xx during the attack"
grep -q 'Socket errors' "$WORK/wrk.txt" && fail "socket errors on the good listener during the attack"
pass "the other listener served every request with a 2xx meanwhile"

(( $(failures cpu) == 1 && $(failures trap) >= 20 )) ||
  fail "failures counted: $(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" | grep "^sluice_wasm_failures_total{plugin=\"hostile\"")"
[[ $(curl -s "http://127.0.0.1:$ADMIN_PORT/ready") == LIVE ]] || fail "/ready after the attack"
pass "failures counted by reason (trap $(failures trap), cpu $(failures cpu), memory $(failures memory)); the proxy stays ready"
