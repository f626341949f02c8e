#!/usr/bin/env bash
# Proxy-Wasm shared data and plugin metrics through the real binary, on both runtimes: the
# rate_limit extension keeps one token bucket for the process in shared data (CAS), two workers
# take tokens concurrently, and exactly N requests get through for N tokens. Its metrics show in
# /stats and /stats/prometheus, merged across the workers, and promtool accepts the exposition.
source "$(dirname "$0")/lib.sh"
require_extensions rate_limit
UP=$(free_port)
start_nginx "$UP"

TOKENS=300 CLIENTS=8 PER_CLIENT=60  # 480 requests for 300 tokens

# client N URL: PER_CLIENT requests on one keep-alive connection; one status code per line.
client() {
  local args=()
  for _ in $(seq "$PER_CLIENT"); do args+=(-o /dev/null "$2"); done
  curl -s -w '%{http_code}\n' "${args[@]}" > "$WORK/codes.$1"
}

for rt in v8 null; do
  PORT=$(free_port); PORT_REFILL=$(free_port); ADMIN_PORT=$(free_port)
  sdk_bootstrap "$UP" "$(
    sdk_listener main "$PORT" "$(sdk_filter rl "$rt" rate_limit "tokens = $TOKENS" limits)"
    sdk_listener refill "$PORT_REFILL" \
      "$(sdk_filter rl_refill "$rt" rate_limit "tokens = 3\nrefill_per_second = 20" limits)"
  )" > "$WORK/sluice-$rt.yaml"
  start_sluice "$WORK/sluice-$rt.yaml"

  # Several clients at once, on connections the kernel spreads over the two workers.
  pids=()
  for c in $(seq "$CLIENTS"); do client "$c" "http://127.0.0.1:$PORT/" & pids+=($!); done
  wait "${pids[@]}"
  allowed=$(cat "$WORK"/codes.* | grep -c '^200$' || true)
  denied=$(cat "$WORK"/codes.* | grep -c '^429$' || true)
  total=$((CLIENTS * PER_CLIENT))
  [[ $allowed == "$TOKENS" && $denied == $((total - TOKENS)) ]] ||
    fail "$rt: $allowed allowed, $denied denied of $total for $TOKENS tokens"
  pass "$rt: exactly $TOKENS of $total concurrent requests pass for $TOKENS tokens"

  # Both workers answer, and both see the empty bucket (VM 1 is the canary, which serves none).
  vms=$(for _ in $(seq 30); do
          curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/" | tr -d '\r' | sed -n 's/^x-ratelimit-vm: //p'
        done | sort -u | tr '\n' ' ')
  [[ $vms == "2 3 " ]] || fail "$rt: denials came from VMs '$vms', expected '2 3 '"
  pass "$rt: both workers' VMs share the one bucket"

  # Plugin metrics, merged across the workers, under the names the plugin gave.
  [[ $(stat_of rate_limit.rl.allowed_total) == "$TOKENS" ]] || fail "$rt: allowed_total $(stat_of rate_limit.rl.allowed_total)"
  [[ $(stat_of rate_limit.rl.denied_total) == $((total - TOKENS + 30)) ]] || fail "$rt: denied_total"
  [[ $(stat_of rate_limit.rl.tokens_remaining) == 0 ]] || fail "$rt: tokens_remaining"
  [[ $(stat_of rate_limit.rl.cas_attempts) == "count=$((total + 30)) "* ]] ||
    fail "$rt: cas_attempts $(stat_of rate_limit.rl.cas_attempts)"
  text=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats")
  ! grep -q wasmcustom <<<"$text" || fail "$rt: the hidden namespace shows in /stats"
  curl -s "http://127.0.0.1:$ADMIN_PORT/stats?filter=^rate_limit\.rl\.allowed&format=json" |
    grep -q "{\"name\":\"rate_limit.rl.allowed_total\",\"value\":$TOKENS}" || fail "$rt: /stats json"
  pass "$rt: plugin metrics in /stats, merged across workers"

  prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
  grep -q "^rate_limit_rl_allowed_total $TOKENS$" <<<"$prom" || fail "$rt: prometheus counter"
  grep -q "^rate_limit_rl_tokens_remaining 0$" <<<"$prom" || fail "$rt: prometheus gauge"
  grep -q "^rate_limit_rl_cas_attempts_bucket{le=\"+Inf\"} $((total + 30))$" <<<"$prom" ||
    fail "$rt: prometheus histogram"
  grep -q '^# TYPE rate_limit_rl_cas_attempts histogram$' <<<"$prom" || fail "$rt: histogram type"
  ! grep -q wasmcustom <<<"$prom" || fail "$rt: the hidden namespace shows in Prometheus"
  check_prometheus "$prom" || fail "$rt: promtool rejects /stats/prometheus with plugin metrics"
  pass "$rt: plugin metrics in /stats/prometheus (promtool accepts it)"

  # A bucket that refills: emptied, then it lets a request through again.
  # (30 requests over one keep-alive connection: quick enough to outrun a refill of 20/s even
  # on a loaded machine, where separate curl runs may each take longer than 50 ms.)
  urls=(); for _ in $(seq 30); do urls+=(-o /dev/null "http://127.0.0.1:$PORT_REFILL/"); done
  curl -s "${urls[@]}"
  [[ $(stat_of rate_limit.rl_refill.denied_total) -gt 0 ]] || fail "$rt: the small bucket never ran dry"
  refilled() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_REFILL/") == 200 ]]; }
  wait_until "$rt: the bucket never refilled" refilled
  pass "$rt: the bucket refills over time"

  ! grep -q "failed:" "$WORK/sluice.log" || fail "$rt: plugin failure logged"
  stop_sluice
done
