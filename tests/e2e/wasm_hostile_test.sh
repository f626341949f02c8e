#!/usr/bin/env bash
# A hostile plugin (tests/wasm/hostile_http.wat, V8, FAIL_RELOAD) on one listener while another
# listener serves under wrk: unbounded recursion, a 1 MiB log line carrying a forged log line,
# 10,000 host calls with bad pointers per request, a trap in on_log after the response; then
# endless loops in on_request_body, on_log and on_tick. The
# other listener answers every request with a 2xx; each hostile request gets its policy's answer;
# failures and restarts are counted; the log line is cut and cannot forge lines; and the proxy's
# RSS after 1,000 hostile requests is within 20% of what it was before them.
source "$(dirname "$0")/lib.sh"
small_asan_quarantine  # RSS is bounded below
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
command -v wrk > /dev/null || fail "wrk is needed"
UP=$(free_port); BAD=$(free_port); GOOD=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

# hostile_filter BACKOFF [CONFIGURATION [VM_CONFIGURATION]]: FAIL_RELOAD with
# reload_config.backoff.base_interval BACKOFF (1ms: a fresh VM for the very next request).
hostile_filter() {
  wasm_http_filter hostile v8 "filename: $SLUICE_TEST_WASM_DIR/hostile_http.wasm" "${2:-}" |
    sed "s/^\(                name: hostile\)$/\1\n                failure_policy: FAIL_RELOAD\n                reload_config: { backoff: { base_interval: $1, max_interval: $1 } }/" |
    sed "s/^\(                vm_config:\)$/\1\n                  configuration: { \"@type\": type.googleapis.com\/google.protobuf.StringValue, value: \"${3:-}\" }/"
}
# hostile_config BACKOFF [CONFIGURATION [VM_CONFIGURATION]]; start-up callbacks get 500 ms of CPU.
hostile_config() {
  sdk_bootstrap "$UP" "$(
    sdk_listener bad "$BAD" "$(hostile_filter "$@")"
    sdk_listener good "$GOOD" "$(wasm_http_filter basic v8 "filename: $SLUICE_TEST_WASM_DIR/filter_basic.wasm" "x")"
  )"
  printf 'sluice: { wasm: { plugins: { hostile: { startup_cpu_ms: 500 } } } }\n'
}
hostile_config 0.001s > "$WORK/hostile.yaml"
grep -q 'failure_policy: FAIL_RELOAD' "$WORK/hostile.yaml" || fail "test config: no policy"
grep -q 'configuration: { "@type": type.googleapis.com/google.protobuf.StringValue, value: "" }' "$WORK/hostile.yaml" || fail "test config: no VM configuration"
SLUICE_CONCURRENCY=2 start_sluice "$WORK/hostile.yaml"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SLUICE_PID/status"; }

# hostile N: N rounds of the four hostile requests over keep-alive connections, 20 ms apart
# (past the 1 ms reload backoff: every request meets a fresh VM if the last failed); prints the
# status codes' tally, e.g. "404:300 503:100" (nginx has none of these paths: a 404 is an answer
# from the upstream, the plugin let the request through).
hostile() {
  local urls=() i path
  for i in $(seq "$1"); do
    for path in recurse log pointers on-log; do urls+=(-o /dev/null "http://127.0.0.1:$BAD/$path"); done
  done
  curl -s --rate 50/s -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }'
}

[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BAD/") == 200 ]] || fail "plain request through the hostile plugin"
out=$(hostile 1)
[[ $out == "404:3 503:1 " ]] || fail "one round: want 3 passed to the upstream and the recursion's 503, got $out"
pass "each hostile request gets its answer: recursion 503 (FAIL_RELOAD), the others reach the upstream"

# Warm up (VM churn reaches its steady state), then measure around 1,000 more.
hostile 50 > /dev/null
rss_before=$(rss)
wrk -t1 -c4 -d60s "http://127.0.0.1:$GOOD/" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
PIDS+=($WRK)
out=$(hostile 250)
kill -INT "$WRK" 2>/dev/null || true
wait "$WRK" 2>/dev/null || true
# Each recursion gets its 503; a request that follows a failure closer than the 1 ms reload
# backoff (a slow stack overflow on a loaded machine) gets one too: a few, not many.
ok=$(sed -n 's/.*404:\([0-9]*\).*/\1/p' <<<"$out"); failed=$(sed -n 's/.*503:\([0-9]*\).*/\1/p' <<<"$out")
(( ${ok:-0} + ${failed:-0} == 1000 && ${failed:-0} >= 250 && ${failed:-0} <= 300 )) ||
  fail "1,000 hostile requests: $out"
rss_after=$(rss)
cat "$WORK/wrk.txt"
grep -q 'requests in' "$WORK/wrk.txt" || fail "wrk printed no summary"
grep -q 'Non-2xx' "$WORK/wrk.txt" && fail "the good listener answered non-2xx during the attack"
grep -q 'Socket errors' "$WORK/wrk.txt" && fail "socket errors on the good listener during the attack"
pass "the other listener served every request with a 2xx during the attack"

(( rss_after * 100 <= rss_before * 120 )) || fail "RSS grew from $rss_before KiB to $rss_after KiB over 1,000 hostile requests"
pass "RSS $rss_before KiB before, $rss_after KiB after 1,000 hostile requests"

prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
traps=$(sed -n 's/^sluice_wasm_failures_total{plugin="hostile",reason="trap"} //p' <<<"$prom")
restarts=$(sed -n 's/^sluice_wasm_vm_restarts_total{plugin="hostile"} //p' <<<"$prom")
(( traps >= 2 * 251 && restarts >= 2 * 251 - 2 )) || fail "counted $traps traps and $restarts restarts (want >= 502)"
grep -q "failed in proxy_on_log" "$WORK/sluice.log" || fail "the on_log trap is not logged with its callback"
grep -q "RangeError: Maximum call stack size exceeded (wasm backtrace: recurse@" "$WORK/sluice.log" ||
  fail "the recursion is not logged with its backtrace"
pass "$traps traps and $restarts VM restarts counted, logged with their callback and backtrace"

grep -q '^\[error\] forged' "$WORK/sluice.log" && fail "a plugin forged a log line"
longest=$(awk '{ if (length($0) > max) max = length($0) } END { print max }' "$WORK/sluice.log")
(( longest < 20000 )) || fail "a log line of $longest bytes: the plugin's 1 MiB line was not cut"
grep -q 'bytes cut' "$WORK/sluice.log" || fail "the cut log line does not say so"
pass "the 1 MiB log line is cut to $longest bytes and cannot forge a line"

# Endless loops in the other callback types: the CPU watchdog stops each one (reason cpu).
cpu() { curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" | sed -n 's/^sluice_wasm_failures_total{plugin="hostile",reason="cpu"} //p'; }
cpu_before=$(cpu); cpu_before=${cpu_before:-0}
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary 'body' "http://127.0.0.1:$BAD/body")
[[ $code == 503 ]] || fail "a loop in on_request_body: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BAD/quiet")
[[ $code == 404 ]] || fail "a loop in on_log (after the response): $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$BAD/headers-loop")
[[ $code == 503 ]] || fail "a loop in on_response_headers: $code"
# on_response_body runs once the response headers went out: the stream can only be cut short.
curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$BAD/slow-body" || true
curl -s -o /dev/null "http://127.0.0.1:$BAD/tick"
wait_until "the looping tick stopped" grep -q "failed in proxy_on_tick: a callback used more than its CPU budget" "$WORK/sluice.log"
grep -q "failed in proxy_on_request_body: a callback used more than its CPU budget" "$WORK/sluice.log" || fail "body loop not logged"
grep -q "failed in proxy_on_log: a callback used more than its CPU budget" "$WORK/sluice.log" || fail "on_log loop not logged"
grep -q "failed in proxy_on_response_headers: a callback used more than its CPU budget" "$WORK/sluice.log" || fail "response headers loop not logged"
grep -q "failed in proxy_on_response_body: a callback used more than its CPU budget" "$WORK/sluice.log" || fail "response body loop not logged"
(( $(cpu) >= cpu_before + 5 )) || fail "cpu failures: $(cpu), were $cpu_before"
pass "endless loops in on_request_body, on_response_headers, on_response_body, on_log and on_tick are stopped and counted"

# At reload time: a plugin configuration whose on_configure loops, and a VM configuration whose
# on_vm_start traps, are caught on the main thread before anything switches: the reload is
# rejected, the running VMs are untouched and keep answering.
for bad in "L:" ":T"; do
  n=$(reloads)
  hostile_config 0.001s "${bad%%:*}" "${bad##*:}" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/hostile.yaml"
  await_reload "$n"
  dump=$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"last_update":{[^}]*}')
  [[ $dump == *'"state":"REJECTED"'* ]] || fail "a hostile start ($bad) was not rejected: $dump"
  codes=$(curl -s -w '%{http_code}\n' -o /dev/null "http://127.0.0.1:$BAD/" -o /dev/null "http://127.0.0.1:$GOOD/" | tr '\n' ' ')
  [[ $codes == "200 200 " ]] || fail "serving after the rejected reload ($bad): $codes"
done
grep -q "proxy_on_configure.*CPU budget\|CPU budget.*proxy_on_configure" "$WORK/sluice.log" || fail "on_configure loop at reload not logged"
grep -q "proxy_on_vm_start" "$WORK/sluice.log" || fail "on_vm_start trap at reload not logged"
pass "at reload, a looping on_configure and a trapping on_vm_start reject the reload; the old VMs serve"

# FAIL_RELOAD's backoff (reload_config.backoff, here 2 s by a hot reload): after a failure,
# requests get 503 until the backoff is over, then a fresh VM answers.
n=$(reloads)
hostile_config 2s > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/hostile.yaml"
await_reload "$n"
grep -q '"state":"ACCEPTED"' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump")" || fail "backoff reload"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BAD/recurse")
[[ $code == 503 ]] || fail "recursion with a 2 s backoff: $code"
# Both workers may serve: ask over one keep-alive connection (one worker) right away.
codes=$(curl -s -w '%{http_code}\n' -o /dev/null "http://127.0.0.1:$BAD/recurse" -o /dev/null "http://127.0.0.1:$BAD/" | tr '\n' ' ')
[[ $codes == "503 503 " ]] || fail "within the backoff: $codes"
sleep 2.3
codes=$(curl -s -w '%{http_code}\n' -o /dev/null "http://127.0.0.1:$BAD/" -o /dev/null "http://127.0.0.1:$BAD/" | tr '\n' ' ')
[[ $codes == "200 200 " ]] || fail "after the backoff: $codes"
pass "FAIL_RELOAD waits for reload_config.backoff before a fresh VM"

[[ $(curl -s "http://127.0.0.1:$ADMIN_PORT/ready") == LIVE ]] || fail "/ready after the attack"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BAD/") == 200 ]] || fail "the hostile listener after the attack"
stop_sluice
pass "the proxy stays ready"
