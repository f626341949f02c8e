#!/usr/bin/env bash
# The ratelimit extension (extensions/ratelimit/) on two workers, V8 and the null runtime: a token
# bucket per key (a header, else the client address) shared by the workers, so a limit of N lets
# exactly N requests through however they are spread; 429 with Retry-After and the
# x-ratelimit-* headers; a configuration reload changes the limits of live buckets; bad
# configurations are refused.
source "$(dirname "$0")/lib.sh"
require_extensions ratelimit
UP=$(free_port); FRONT=$(free_port); NATIVE=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
# config RUNTIME_V8_CONFIG: both listeners (the null one keyed by client address).
config() {
  sdk_bootstrap "$UP" "$(
    sdk_listener front "$FRONT" "$(sdk_filter limit v8 ratelimit "$1")"
    sdk_listener native "$NATIVE" "$(sdk_filter limit_native null ratelimit "tokens = 2\nrefill_per_minute = 1")"
  )"
  # Envoy's stats_tags: the plugin's name out of its metric names, and a fixed tag on every stat.
  cat <<'YAML'
stats_config:
  stats_tags:
  - { tag_name: plugin, regex: "^ratelimit\\.((.+?)\\.)" }
  - { tag_name: mesh, fixed_value: demo }
YAML
}
config "tokens = 5\nrefill_per_minute = 6\nkey = header:x-api-key" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
status() { curl -s -o /dev/null -w '%{http_code}' "${@:2}" "http://127.0.0.1:$1/"; }

# Twenty requests at once for key "a", over two workers: exactly five pass.
for i in $(seq 20); do (status "$FRONT" -H "x-api-key: a"; echo) > "$WORK/a.$i" & done
wait_jobs() { for job in $(jobs -p); do [[ " ${PIDS[*]} " == *" $job "* ]] || wait "$job"; done; }
wait_jobs
passed=$(cat "$WORK"/a.* | grep -c 200 || true)
limited=$(cat "$WORK"/a.* | grep -c 429 || true)
[[ $passed == 5 && $limited == 15 ]] || fail "key a: $passed passed, $limited limited (want 5 and 15)"
pass "a limit of 5 lets exactly 5 of 20 concurrent requests through, over two workers"

hdrs=$(curl -s -D - -o "$WORK/body" -H "x-api-key: a" "http://127.0.0.1:$FRONT/" | tr -d '\r')
# Retry-After: the seconds until a token is back, 10 at 6 a minute less the time since the
# bucket emptied (a loaded machine can take over a second between the two).
[[ $hdrs == "HTTP/1.1 429"* && $hdrs =~ retry-after:\ (8|9|10)$'\n' && $hdrs == *"x-ratelimit-limit: 5"* &&
   $hdrs == *"x-ratelimit-remaining: 0"* ]] || fail "429 headers: $hdrs"
[[ $(cat "$WORK/body") == "rate limited" ]] || fail "429 body: $(cat "$WORK/body")"
hdrs=$(curl -s -D - -o /dev/null -H "x-api-key: b" "http://127.0.0.1:$FRONT/" | tr -d '\r')
[[ $hdrs == "HTTP/1.1 200"* && $hdrs == *"x-ratelimit-remaining: 4"* ]] || fail "key b has its own bucket: $hdrs"
# No header: the client address is the key.
for i in 1 2 3 4 5; do [[ $(status "$FRONT") == 200 ]] || fail "address bucket, request $i"; done
[[ $(status "$FRONT") == 429 ]] || fail "the client address's bucket did not run out"
pass "429 with Retry-After and x-ratelimit-*; each key its own bucket; no header keys by address"

# The null runtime build, keyed by address: 2 then 429.
[[ $(status "$NATIVE") == 200 && $(status "$NATIVE") == 200 && $(status "$NATIVE") == 429 ]] ||
  fail "the null runtime's limit"
pass "the same extension on the null runtime"

# A reload with a faster refill: the empty bucket of "a" fills again within a second.
n=$(reloads)
config "tokens = 5\nrefill_per_second = 50\nkey = header:x-api-key" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
await_reload "$n"
sleep 0.3
[[ $(status "$FRONT" -H "x-api-key: a") == 200 ]] || fail "the reload's new rate did not refill key a"
pass "a configuration reload changes the limits of live buckets"

# Bad configurations are refused at reload; the running limits stay.
n=$(reloads)
config "refill_per_second = 5" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
await_reload "$n"
grep -q "'tokens' is required\|plugin configuration rejected" <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump")" ||
  fail "a configuration without tokens was not refused: $(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"last_update":{[^}]*}')"
[[ $(status "$FRONT" -H "x-api-key: c") == 200 ]] || fail "the running limit went away"
[[ $(stat_of ratelimit.limit.allowed) -ge 8 && $(stat_of ratelimit.limit.limited) -ge 16 ]] ||
  fail "counters: $(stat_of ratelimit.limit.allowed) allowed, $(stat_of ratelimit.limit.limited) limited"
pass "a bad configuration is refused and the running limits stay; counters"

prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
grep -qE '^ratelimit_allowed\{plugin="limit",mesh="demo"\} [0-9]+$' <<<"$prom" ||
  fail "stats_tags on the plugin's metric: $(grep ratelimit_allowed <<<"$prom")"
grep -qE '^ratelimit_limited\{plugin="limit_native",mesh="demo"\} [0-9]+$' <<<"$prom" || fail "the null plugin's metric"
grep -qE '^envoy_cluster_upstream_rq_total\{envoy_cluster_name="nginx",mesh="demo"\}' <<<"$prom" ||
  fail "the fixed tag on Envoy's stats: $(grep '^envoy_cluster_upstream_rq_total' <<<"$prom")"
grep -q '^ratelimit.limit.allowed: ' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats")" || fail "/stats keeps the full name"
check_prometheus "$prom" || fail "promtool refused the exposition"
pass "stats_config.stats_tags: a regex takes the plugin's name out into a label, a fixed tag goes on every stat"
