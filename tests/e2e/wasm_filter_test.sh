#!/usr/bin/env bash
# The real binary with a Proxy-Wasm filter (a hand-written WAT module, on V8) in front of a real
# nginx: headers added both ways, a local reply from the plugin, a trapping plugin answered 503
# (FAIL_CLOSED) or skipped (FAIL_OPEN), and the config errors a bad module gives.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
UP=$(free_port); PORT=$(free_port); PORT_OPEN=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

listener() {  # name port failure_policy
  cat <<YAML
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          route_config:
            virtual_hosts:
            - name: default
              domains: ["*"]
              routes:
              - match: { prefix: "/plain" }
                route: { cluster: nginx }
                typed_per_filter_config:
                  envoy.filters.http.wasm:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
              - match: { prefix: "/" }
                route: { cluster: nginx }
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: basic
                root_id: basic_root
                failure_policy: $3
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: from-config
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: { local: { filename: $SLUICE_TEST_WASM_DIR/filter_basic.wasm } }
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
}

{
  echo "static_resources:"
  echo "  listeners:"
  listener closed "$PORT" FAIL_CLOSED
  listener open "$PORT_OPEN" FAIL_OPEN
  cat <<YAML
  clusters:
  - name: nginx
    connect_timeout: 1s
    load_assignment:
      cluster_name: nginx
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
YAML
} > "$WORK/sluice.yaml"

# The first instance has an admin (later ones start from sluice.yaml beside it).
{
  echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }"
  cat "$WORK/sluice.yaml"
} > "$WORK/first.yaml"
"$SLUICE_BIN" -c "$WORK/first.yaml" --concurrency 1 -l info > "$WORK/sluice.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT/"

# Headers added both ways; the plugin configuration reached on_configure.
out=$(curl -sS -D - "http://127.0.0.1:$PORT/headers")
[[ $out == *"x-wasm: hello"* ]] || fail "response header from the plugin: $out"
[[ $out == *"wasm=from-config"* ]] || fail "request header from the plugin: $out"
pass "headers added on request and response"

# typed_per_filter_config disables the plugin on /plain.
out=$(curl -sS -D - "http://127.0.0.1:$PORT/plain")
[[ $out != *"x-wasm: hello"* ]] || fail "plugin ran on a route that disables it: $out"
pass "per-route disabled"

# A local reply from the plugin, with its headers; the upstream is not reached.
out=$(curl -sS -D - "http://127.0.0.1:$PORT/deny/me")
[[ $out == "HTTP/1.1 403"* && $out == *"x-denied: yes"* && $out == *"denied by wasm" ]] ||
  fail "local reply: $out"
pass "local reply 403 from the plugin"

# Request bodies are paused in the plugin until complete, then forwarded whole (nginx's /post
# answers with the length it got); past the listener's buffer limit (1 MiB): 413.
head -c 300000 /dev/zero > "$WORK/body"
out=$(curl -sS --data-binary @"$WORK/body" -H 'content-type: application/octet-stream' "http://127.0.0.1:$PORT/post")
[[ $out == "len=300000" ]] || fail "buffered request body: $out"
out=$(curl -sS -H 'transfer-encoding: chunked' --data-binary @"$WORK/body" "http://127.0.0.1:$PORT/post")
[[ $out == *"len="* ]] || fail "buffered chunked request body: $out"
head -c 2000000 /dev/zero > "$WORK/big"
code=$(curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$WORK/big" "http://127.0.0.1:$PORT/post")
[[ $code == 413 ]] || fail "request body over the buffer limit: $code"
pass "request body paused, resumed whole, 413 past the limit"

# A trapping plugin: FAIL_CLOSED answers 503 for that request and after (the VM is failed),
# while the FAIL_OPEN listener's own instance skips the plugin once it failed.
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/trap")
[[ $code == 503 ]] || fail "trap under FAIL_CLOSED: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/headers")
[[ $code == 503 ]] || fail "failed VM under FAIL_CLOSED still serving: $code"
# Logged once with the callback and the Wasm backtrace (names from the module's name section).
grep -q "failed in proxy_on_request_headers: RuntimeError: unreachable (wasm backtrace: .*proxy_on_request_headers@0x" "$WORK/sluice.log" ||
  fail "trap not logged with its callback and backtrace: $(grep 'failed' "$WORK/sluice.log")"
out=$(curl -sS -D - "http://127.0.0.1:$PORT_OPEN/trap")
[[ $out == "HTTP/1.1 404"* || $out == "HTTP/1.1 200"* ]] || fail "trap under FAIL_OPEN: $out"
out=$(curl -sS -D - "http://127.0.0.1:$PORT_OPEN/headers")
[[ $out == "HTTP/1.1 200"* && $out != *"x-wasm: hello"* ]] || fail "FAIL_OPEN after failure: $out"
pass "trap: FAIL_CLOSED answers 503, FAIL_OPEN skips the plugin"

# Admin /wasm: both plugins, their limits, their VM per worker (failed now) and the last failure.
wasm=$(curl -sS "http://127.0.0.1:$ADMIN_PORT/wasm")
[[ $wasm == *'"name":"basic","root_id":"basic_root"'*'"failure_policy":"FAIL_CLOSED"'* ]] || fail "/wasm plugins: $wasm"
[[ $wasm == *'"limits":{"memory_limit_mb":64,"callback_cpu_ms":50,"startup_cpu_ms":2000}'* ]] || fail "/wasm limits: $wasm"
[[ $wasm == *'"vms":[{"thread":"worker 0","state":"failed"'* ]] || fail "/wasm VM state: $wasm"
[[ $wasm == *'"last_failure":{"time":"'*'","callback":"proxy_on_request_headers","reason":"trap","message":"RuntimeError: unreachable (wasm backtrace: '* ]] ||
  fail "/wasm last failure: $wasm"
[[ $wasm == *'"failure_policy":"FAIL_OPEN"'* ]] || fail "/wasm: the FAIL_OPEN plugin: $wasm"
# sluice_wasm_vms_active / memory_bytes (refreshed each second by the workers). The two plugins
# share one VM (same code and VM settings): it failed once, for both.
sleep 1.2
prom=$(curl -sS "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
[[ $prom == *'sluice_wasm_vms_active{plugin="basic"} 0'* ]] || fail "vms_active: $(grep sluice_wasm_vms <<<"$prom")"
[[ $prom == *'sluice_wasm_failures_total{plugin="basic",reason="trap"} 1'* ]] || fail "failures: $(grep sluice_wasm_fail <<<"$prom")"
pass "/wasm shows limits, VM states and the last failure with its backtrace"

# The proxy itself keeps serving after the crash: the /plain route does not use the plugin.
out=$(curl -sS "http://127.0.0.1:$PORT/plain")
[[ $out == *"nginx"* ]] || fail "proxy after plugin crash: $out"  # nginx's own 404 page
pass "proxy unaffected by the crash"

# Config errors: a missing module, a module that is not Wasm, a module without an ABI marker.
bad() {  # description yaml-file expected-substring
  if timeout 20 "$SLUICE_BIN" -c "$2" --concurrency 1 > "$WORK/bad.log" 2>&1; then fail "$1: started"; fi
  grep -q -- "$3" "$WORK/bad.log" || { cat "$WORK/bad.log" >&2; fail "$1: message"; }
  pass "config error: $1"
}
printf 'not wasm at all' > "$WORK/garbage.wasm"
printf '(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0))' > "$WORK/nomarker.wat"
wat2wasm "$WORK/nomarker.wat" -o "$WORK/nomarker.wasm"
for case in "missing:$WORK/nope.wasm:cannot read Wasm module" \
            "garbage:$WORK/garbage.wasm:cannot load file" \
            "no ABI marker:$WORK/nomarker.wasm:unknown Proxy-Wasm ABI version"; do
  IFS=: read -r what file msg <<<"$case"
  sed "s|$SLUICE_TEST_WASM_DIR/filter_basic.wasm|$file|" "$WORK/sluice.yaml" |
    sed "s/port_value: $PORT\b/port_value: $(free_port)/; s/port_value: $PORT_OPEN\b/port_value: $(free_port)/" \
      > "$WORK/bad.yaml"
  bad "$what" "$WORK/bad.yaml" "$msg"
done

# A plugin calling out from on_configure (tests/wasm/configure_callout.wat): the canary at load
# gets Ok for a known cluster, as in Envoy, so the configuration loads; an unknown cluster is
# BadArgument, and the plugin refuses its configuration.
callout_config() {  # cluster
  sed "s|$SLUICE_TEST_WASM_DIR/filter_basic.wasm|$SLUICE_TEST_WASM_DIR/configure_callout.wasm|; s/value: from-config/value: $1/" \
    "$WORK/sluice.yaml" |
    sed "s/port_value: $PORT\b/port_value: $(free_port)/; s/port_value: $PORT_OPEN\b/port_value: $(free_port)/"
}
callout_config nginx > "$WORK/callout.yaml"
timeout 20 "$SLUICE_BIN" -c "$WORK/callout.yaml" --concurrency 1 -l debug > "$WORK/callout.log" 2>&1 &
callout_pid=$!
for _ in $(seq 100); do grep -q "Wasm plugin(s) started" "$WORK/callout.log" && break; sleep 0.1; done
grep -q "worker 0: 2 of 2 Wasm plugin(s) started" "$WORK/callout.log" ||
  fail "plugin calling out in on_configure: $(cat "$WORK/callout.log")"
kill "$callout_pid"; wait "$callout_pid" 2>/dev/null || true
pass "proxy_http_call from on_configure works at load (the canary) and on the workers"
callout_config nope > "$WORK/callout-bad.yaml"
bad "on_configure calling out to an unknown cluster" "$WORK/callout-bad.yaml" "on_configure"

# A plugin that loops forever: the CPU watchdog stops the callback once it used its budget
# (sluice.wasm, here 200 ms of CPU), the VM is failed and the policy answers; the worker, and the
# routes without the plugin, keep serving.
LOOP_ADMIN=$(free_port)
{
  echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $LOOP_ADMIN } } }"
  sed "s/port_value: $PORT\b/port_value: $(free_port)/; s/port_value: $PORT_OPEN\b/port_value: $(free_port)/" "$WORK/sluice.yaml"
  echo "sluice: { wasm: { defaults: { callback_cpu_ms: 200 } } }"
} > "$WORK/loop.yaml"
LOOP_PORT=$(sed -n 's/.*port_value: \([0-9]*\).*/\1/p' "$WORK/loop.yaml" | sed -n 2p)
LOOP_OPEN=$(sed -n 's/.*port_value: \([0-9]*\).*/\1/p' "$WORK/loop.yaml" | sed -n 3p)
"$SLUICE_BIN" -c "$WORK/loop.yaml" --concurrency 1 -l info > "$WORK/loop.log" 2>&1 &
loop_pid=$!
PIDS+=($loop_pid)
wait_http "http://127.0.0.1:$LOOP_PORT/"
start=$(date +%s%N)
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$LOOP_PORT/loop")
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $code == 503 ]] || fail "a looping plugin under FAIL_CLOSED: $code"
(( elapsed < 5000 )) || fail "the looping callback was stopped after $elapsed ms"
grep -q "a callback used more than its CPU budget (200 ms)" "$WORK/loop.log" ||
  fail "the budget stop is not logged: $(cat "$WORK/loop.log")"
out=$(curl -sS --max-time 5 "http://127.0.0.1:$LOOP_PORT/plain")
[[ $out == *"nginx"* ]] || fail "the worker after a looping plugin: $out"
stats=$(curl -s "http://127.0.0.1:$LOOP_ADMIN/stats/prometheus")
grep -q '^sluice_wasm_failures_total{plugin="basic",reason="cpu"} 1$' <<<"$stats" ||
  fail "the CPU failure is not counted: $(grep -i wasm <<<"$stats")"
grep -q '^envoy_wasm_envoy_wasm_runtime_v8_active ' <<<"$stats" || fail "no wasm runtime gauge"
sleep 1.3  # past the first self-healing backoff: FAIL_CLOSED named explicitly does not heal
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LOOP_PORT/headers")
[[ $code == 503 ]] || fail "an explicit FAIL_CLOSED VM was replaced: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$LOOP_OPEN/loop")
[[ $code == 404 || $code == 200 ]] || fail "a looping plugin under FAIL_OPEN: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LOOP_OPEN/headers")
[[ $code == 200 ]] || fail "FAIL_OPEN after the stopped loop: $code"
kill "$loop_pid"; wait "$loop_pid" 2>/dev/null || true
pass "a looping plugin is stopped by the CPU watchdog (${elapsed} ms); the worker keeps serving"

# sluice.wasm names plugins by config.name; unknown names and unknown settings are errors.
sed 's/^sluice: .*/sluice: { wasm: { plugins: { nosuch: { callback_cpu_ms: 5 } } } }/' "$WORK/loop.yaml" > "$WORK/bad.yaml"
bad "sluice.wasm.plugins naming no plugin" "$WORK/bad.yaml" "no Wasm plugin is named 'nosuch'"
sed 's/^sluice: .*/sluice: { oci: { insecure_registry: [] } }/' "$WORK/loop.yaml" > "$WORK/bad.yaml"
bad "an unknown sluice setting" "$WORK/bad.yaml" "unknown field"

# A memory bomb (tests/wasm/memory_bomb.wat grows its memory until refused): the VM's memory
# stops at sluice.wasm's memory_limit_mb, and the plugin goes on working within it. A module
# whose initial memory is already past the limit is refused at load.
memory_config() {  # limit-mb
  sed "s|$SLUICE_TEST_WASM_DIR/filter_basic.wasm|$SLUICE_TEST_WASM_DIR/memory_bomb.wasm|" "$WORK/loop.yaml" |
    sed "s/^sluice: .*/sluice: { wasm: { defaults: { memory_limit_mb: $1 } } }/"
}
memory_config 8 > "$WORK/bomb.yaml"
"$SLUICE_BIN" -c "$WORK/bomb.yaml" --concurrency 1 -l info > "$WORK/bomb.log" 2>&1 &
bomb_pid=$!
PIDS+=($bomb_pid)
wait_http "http://127.0.0.1:$LOOP_PORT/"
for i in 1 2 3; do
  out=$(curl -sS --max-time 5 "http://127.0.0.1:$LOOP_PORT/bomb")
  [[ $out == 08 ]] || fail "memory bomb $i: the plugin ended with '$out' MiB (limit 8)"
done
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$bomb_pid/status")
(( rss < 400000 )) || fail "memory bomb: sluice RSS $rss KiB"
kill "$bomb_pid"; wait "$bomb_pid" 2>/dev/null || true
pass "a memory bomb stops at memory_limit_mb (8 MiB), and the plugin keeps answering"
memory_config 1 > "$WORK/bad.yaml"
bad "initial memory past memory_limit_mb" "$WORK/bad.yaml" "with a memory limit of 1 MiB"

# Self-healing: with no failure_policy (503s meanwhile, as FAIL_CLOSED) and with FAIL_OPEN
# (skipped meanwhile), a failed VM is replaced after a backoff (1 s at first); a FAIL_CLOSED named
# explicitly stays failed (Envoy's behaviour, checked in the loop test above too).
HEAL_ADMIN=$(free_port)
{
  echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $HEAL_ADMIN } } }"
  sed "s/port_value: $PORT\b/port_value: $(free_port)/; s/port_value: $PORT_OPEN\b/port_value: $(free_port)/" "$WORK/sluice.yaml" |
    sed '0,/failure_policy: FAIL_CLOSED/{/failure_policy: FAIL_CLOSED/d}'
} > "$WORK/heal.yaml"
HEAL_PORT=$(sed -n 's/.*port_value: \([0-9]*\).*/\1/p' "$WORK/heal.yaml" | sed -n 2p)
HEAL_OPEN=$(sed -n 's/.*port_value: \([0-9]*\).*/\1/p' "$WORK/heal.yaml" | sed -n 3p)
grep -c "failure_policy" "$WORK/heal.yaml" | grep -qx 1 || fail "heal.yaml: expected one failure_policy left"
"$SLUICE_BIN" -c "$WORK/heal.yaml" --concurrency 1 -l info > "$WORK/heal.log" 2>&1 &
heal_pid=$!
PIDS+=($heal_pid)
wait_http "http://127.0.0.1:$HEAL_PORT/"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEAL_PORT/trap")
[[ $code == 503 ]] || fail "unset policy, trap: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HEAL_PORT/headers")
[[ $code == 503 ]] || fail "unset policy, right after the trap (within the backoff): $code"
out=$(curl -sS -D - "http://127.0.0.1:$HEAL_OPEN/headers")
[[ $out == "HTTP/1.1 200"* && $out != *"x-wasm: hello"* ]] || fail "FAIL_OPEN within the backoff: $out"
sleep 1.3
out=$(curl -sS -D - "http://127.0.0.1:$HEAL_PORT/headers")
[[ $out == "HTTP/1.1 200"* && $out == *"x-wasm: hello"* ]] || fail "unset policy after the backoff: $out"
out=$(curl -sS -D - "http://127.0.0.1:$HEAL_OPEN/headers")
[[ $out == "HTTP/1.1 200"* && $out == *"x-wasm: hello"* ]] || fail "FAIL_OPEN after the backoff: $out"
stats=$(curl -s "http://127.0.0.1:$HEAL_ADMIN/stats/prometheus")
grep -q '^sluice_wasm_vm_restarts_total{plugin="basic"} [12]$' <<<"$stats" ||
  fail "restarts not counted: $(grep -i restart <<<"$stats")"
kill "$heal_pid"; wait "$heal_pid" 2>/dev/null || true
pass "a failed VM is replaced after a backoff (no policy: 503 meanwhile; FAIL_OPEN: skipped)"
