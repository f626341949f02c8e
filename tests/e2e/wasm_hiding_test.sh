#!/usr/bin/env bash
# Hiding secrets from a plugin (sluice.wasm.plugins.<name>.hide_*): a probe plugin (our SDK, on
# V8) tries every way to see or change Authorization, Cookie and the client's address (the
# header map's value, pairs and size, the request.headers properties, source.address, and
# add/replace/remove/set_pairs writes). It sees none of them, its writes do not reach the
# upstream, and each ignored write is counted. The same plugin without hiding sees them all.
source "$(dirname "$0")/lib.sh"
PROBE=$SLUICE_BUILD_DIR/tests/sdk/sdk_probe.wasm
[[ -f $PROBE ]] || fail "$PROBE is missing: build the tests first"
UP=$(free_port); PORT=$(free_port); PORT_OPEN=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

probe_filter() {  # name: the probe's root context ("probe") under plugin name NAME
  wasm_http_filter "$1" v8 "filename: $PROBE" "" | sed 's/^                name: \(.*\)$/                name: \1\n                root_id: probe/'
}
sdk_bootstrap "$UP" "$(
  sdk_listener hidden "$PORT" "$(probe_filter probe)"
  sdk_listener open "$PORT_OPEN" "$(probe_filter probe_open)"
)" > "$WORK/hide.yaml"
cat >> "$WORK/hide.yaml" <<'YAML'
sluice:
  wasm:
    plugins:
      probe: { hide_request_headers: [Authorization, cookie], hide_client_address: true }
YAML
start_sluice "$WORK/hide.yaml"

ask() {  # port
  curl -sS --max-time 5 -H "x-probe: hidden" -H "Authorization: Bearer secret" \
    -H "Cookie: session=1" -H "X-Forwarded-For: 203.0.113.7" "http://127.0.0.1:$1/echo-secrets"
}
out=$(ask "$PORT")
[[ $out == "auth=Bearer secret cookie=session=1 xff=203.0.113.7"* ]] ||
  fail "the upstream did not get the hidden headers untouched: $out"
[[ $out == *"saw=get=absent pairs=false size_matches=true prop=absent map=false src=absent xff=absent" ]] ||
  fail "the plugin saw a hidden value: $out"
pass "hidden headers and client address: invisible to the plugin, untouched by its writes"

[[ $(stat_of sluice.wasm.probe.hidden_header_writes_total) == 3 ]] ||
  fail "ignored writes counted: $(stat_of sluice.wasm.probe.hidden_header_writes_total)"
prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
grep -q '^sluice_wasm_hidden_header_writes_total{plugin="probe"} 3$' <<<"$prom" ||
  fail "prometheus series: $(grep hidden <<<"$prom")"
check_prometheus "$prom" || fail "promtool rejects the exposition"
grep -q "plugin 'probe' tried to write the hidden header" "$WORK/sluice.log" || fail "no log line"
pass "ignored writes of hidden headers are counted (sluice_wasm_hidden_header_writes_total) and logged"

# The same plugin without hiding sees everything (the probe is not blind by itself).
out=$(ask "$PORT_OPEN")
[[ $out == *"saw=get=Bearer secret pairs=true size_matches=true prop=Bearer secret map=true src=127.0.0.1"* ]] ||
  fail "without hiding: $out"
pass "without hide_* the plugin sees the headers and the address, as in Envoy"
