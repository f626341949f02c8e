#!/usr/bin/env bash
# Proxy-Wasm timers through the real binary, on both runtimes, with the ticker extension: every
# worker starts its plugin instances when it starts, so ticks run before any request; a plugin
# that sets its period to 0 stops ticking; a value one request publishes in shared data reaches
# every worker on its next tick.
source "$(dirname "$0")/lib.sh"
require_extensions ticker
UP=$(free_port)
start_nginx "$UP"

for rt in v8 null; do
  PORT=$(free_port); ADMIN_PORT=$(free_port)
  sdk_bootstrap "$UP" "$(
    sdk_listener main "$PORT" "$(
      sdk_filter tick_fast "$rt" ticker "period_ms = 20"
      sdk_filter tick_three "$rt" ticker "period_ms = 10\nstop_after = 3"
    )"
  )" > "$WORK/sluice-$rt.yaml"
  start_sluice "$WORK/sluice-$rt.yaml"

  # No request reaches the listener here: the ticks come from the workers alone. tick_three stops
  # after 3 ticks per VM: 2 workers make 6 (the canary, on the main thread, has no timer).
  six() { [[ $(stat_of ticker.tick_three.ticks_total) == 6 ]]; }
  wait_until "$rt: tick_three never reached 6 ticks ($(stat_of ticker.tick_three.ticks_total))" six
  fast_before=$(stat_of ticker.tick_fast.ticks_total)
  more() { [[ $(stat_of ticker.tick_fast.ticks_total) -gt $((fast_before + 4)) ]]; }
  wait_until "$rt: tick_fast stopped ticking" more
  [[ $(stat_of ticker.tick_three.ticks_total) == 6 ]] || fail "$rt: tick_three ticked after period 0"
  pass "$rt: both workers tick without traffic; period 0 stops the timer"

  prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
  grep -q '^# TYPE ticker_tick_fast_interval_ms histogram$' <<<"$prom" ||
    fail "$rt: the histogram 'ticker.tick_fast.interval-ms' is not sanitized in Prometheus"
  pass "$rt: a plugin metric name with '-' is sanitized for Prometheus"

  # Publish a value through one worker; every worker serves it once it has ticked.
  out=$(curl -s -D - -o /dev/null -H 'x-ticker-set: v-one' "http://127.0.0.1:$PORT/")
  [[ $out == *"x-ticker-ticks: "* ]] || fail "$rt: no x-ticker-ticks header: $out"
  everywhere() {
    local v
    for _ in $(seq 10); do  # fresh connections: both workers answer some
      v=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/" | tr -d '\r' | sed -n 's/^x-ticker-value: //p')
      [[ $v == v-one ]] || return 1
    done
  }
  wait_until "$rt: the published value did not reach every worker" everywhere
  pass "$rt: a value published in shared data is picked up by every worker's tick"

  ! grep -q "failed:" "$WORK/sluice.log" || fail "$rt: plugin failure logged"
  stop_sluice
done
