#!/usr/bin/env bash
# Tail latency (bench/tail.sh <build dir>): sluice, nginx and haproxy as reverse proxies in front
# of the same nginx upstream, with the same worker count (1, then 2), driven by wrk two ways:
#   saturated: 64 connections, each sending its next request as soon as the answer is in (the
#              load of bench/run.sh: the proxy's core is busy all the time, so latency is mostly
#              waiting in line);
#   paced:     the same 64 connections, each waiting BENCH_TAIL_PACE_MS between an answer and its
#              next request (a wrk Lua delay()), so every proxy gets the same rate, well below what
#              it can do: latency is the proxy's own path, not a queue.
# Runs are interleaved; each figure is the median of BENCH_TAIL_RUNS (default 5: a p99 moves more than
# a median). Besides wrk's percentiles, the script reads each proxy's /proc/<pid>/task/*/schedstat
# around every run: CPU time and time spent runnable but waiting for the core, per request. That
# is the split of where a request's time goes that a tail needs: on the core, waiting for it, or
# neither (waiting for the network or the upstream).
# Writes bench/results/<stamp>-tail.md and .json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=sluice-tail
export BENCH_RUNS=${BENCH_TAIL_RUNS:-5}
source "$ROOT/bench/lib.sh"
bench_build "${1:-build}"
PACE_MS=${BENCH_TAIL_PACE_MS:-4}
# direct: wrk to the upstream, the floor of the others; sluice-noyield: sluice with its workers'
# core sharing off (--worker-yield-us 0), to show what it does to the 2-worker tail.
SERVERS="direct sluice sluice-noyield nginx haproxy"
LOADS=${BENCH_TAIL_LOADS:-"saturated paced"}  # e.g. BENCH_TAIL_LOADS=paced BENCH_WORKERS=1
port UP; port NX; port HA; port SL; port ADM; port SL0; port ADM0

# wrk calls delay() after each answer and waits that many ms before the connection's next request;
# its latency clock starts when the request is written, so the pause is not counted. The pause is
# drawn from an exponential distribution of mean PACE_MS: a fixed one keeps all 64 connections in
# step, and the proxy would see bursts of 64 requests instead of a steady rate.
cat > "$WORK/paced.lua" <<LUA
math.randomseed(os.time())
function delay() return math.floor(-$PACE_MS * math.log(1 - math.random()) + 0.5) end
LUA

start_sluice() {  # workers
  bench_proxy_yaml "$ADM" "$SL" up "" > "$WORK/sluice.yaml"
  taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/sluice.yaml" --concurrency "$1" -l warning &
  SLUICE_PID=$!
  bench_proxy_yaml "$ADM0" "$SL0" up "" > "$WORK/sluice-noyield.yaml"
  taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/sluice-noyield.yaml" --concurrency "$1" \
    --worker-yield-us 0 -l warning &
  SLUICE_NOYIELD_PID=$!
  wait_http "http://127.0.0.1:$SL/"
  wait_http "http://127.0.0.1:$SL0/"
}

# sched_ns "pid..." -> "run_ns wait_ns" summed over every thread of every given process: time on
# a CPU and time runnable in a run queue (/proc/<pid>/task/<tid>/schedstat, kernel schedstats).
sched_ns() {
  local p
  for p in $1; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
    awk '{ run += $1; wait += $2 } END { printf "%.0f %.0f\n", run, wait }'
}

# run_one URL LOAD "pid..." -> "rps p50 p90 p99 max cpu_us_per_req wait_us_per_req" (the last
# two "-" without pids)
run_one() {
  local script=() out s0 s1 f
  [[ $2 == paced ]] && script=(-s "$WORK/paced.lua")
  s0=$(sched_ns "$3")
  out=$(taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency "${script[@]}" "$1")
  s1=$(sched_ns "$3")
  read -r -a f < <(wrk_figures "$out" "$1")
  if [[ -z $3 ]]; then
    echo "${f[*]:1} - -"
    return
  fi
  read -r run0 wait0 <<<"$s0"
  read -r run1 wait1 <<<"$s1"
  awk -v n="${f[0]}" -v run=$((run1 - run0)) -v wait=$((wait1 - wait0)) -v figures="${f[*]:1}" \
    'BEGIN { printf "%s %.3f %.3f\n", figures, run / 1000 / n, wait / 1000 / n }'
}

[[ -r /proc/self/schedstat ]] || { echo "bench: /proc/<pid>/schedstat is missing (kernel without schedstats)" >&2; exit 1; }
start_upstream
declare -A RESULTS RANGE RUN_P99
for workers in $WORKERS_LIST; do
  start_sluice "$workers"
  start_nginx_proxy "$workers"
  start_haproxy "$workers"
  declare -A url pids col
  url[direct]="http://127.0.0.1:$UP/"; pids[direct]=""
  url[sluice]="http://127.0.0.1:$SL/"; pids[sluice]=$SLUICE_PID
  url[sluice-noyield]="http://127.0.0.1:$SL0/"; pids[sluice-noyield]=$SLUICE_NOYIELD_PID
  url[nginx]="http://127.0.0.1:$NX/"; pids[nginx]="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
  url[haproxy]="http://127.0.0.1:$HA/"; pids[haproxy]=$HAPROXY_PID
  for name in $SERVERS; do
    taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${WARMUP}s" "${url[$name]}" > /dev/null
  done
  for load in $LOADS; do
    for name in $SERVERS; do for k in 1 2 3 4 5 6 7; do col[$name,$k]=""; done; done
    for run in $(seq "$RUNS"); do
      for name in $SERVERS; do
        read -r -a f < <(run_one "${url[$name]}" "$load" "${pids[$name]}")
        echo "bench: tail workers=$workers $load run=$run $name: ${f[0]} rps, p50 ${f[1]} p90 ${f[2]} p99 ${f[3]} max ${f[4]} ms; per request ${f[5]} us on CPU, ${f[6]} us waiting for it" >&2
        for k in 1 2 3 4 5 6 7; do col[$name,$k]+="${f[$((k - 1))]} "; done
      done
    done
    for name in $SERVERS; do
      RESULTS[$workers,$load,$name]="$(for k in 1 2 3 4 5 6 7; do median <<<"${col[$name,$k]}"; done | tr '\n' ' ')"
      RANGE[$workers,$load,$name]=$(range <<<"${col[$name,4]}")
      RUN_P99[$workers,$load,$name]=${col[$name,4]}
    done
  done
  stop_pid "$SLUICE_PID"; stop_pid "$SLUICE_NOYIELD_PID"; stop_pid "$NGINX_PID"; stop_pid "$HAPROXY_PID"
done

# rounds_lower "a1 a2 ..." "b1 b2 ...": in how many rounds a was below b. With p99s that swing
# by a factor of two from round to round on this machine, that count says more about "no worse"
# than a ratio of medians: two proxies that are level are lower in about half the rounds.
rounds_lower() {  # (lib.sh's per_round pairs the rounds; a negative difference is a lower p99)
  per_round - "$1" "$2" | tr ' ' '\n' | awk '$1 + 0 < 0 { k++ } END { print k + 0 }'
}

STAMP=${BENCH_STAMP:-$(date -u +%Y-%m-%dT%H%M%SZ)}
OUT_DIR="$ROOT/bench/results"
mkdir -p "$OUT_DIR"
MD="$OUT_DIR/$STAMP-tail.md"
JSON="$OUT_DIR/$STAMP-tail.json"
{
  echo "# Tail latency $STAMP"
  echo
  echo "Machine: $(nproc) CPU(s), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | awk '{print $1, $2}'); proxies on CPU(s) $PROXY_CPUS, wrk and the upstream nginx on $WRK_CPUS."
  echo "sluice $("$SLUICE" --version 2>/dev/null | head -1 | awk '{print $NF}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)), nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*nginx/||'), haproxy $(/usr/sbin/haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}')."
  echo "Load: wrk -t1 -c$CONNS -d${DURATION}s, keep-alive, GET of a 17-byte body. saturated: no pause between"
  echo "requests; paced: each connection pauses ${PACE_MS} ms after each answer. Median of $RUNS interleaved runs"
  echo "(p99 range in brackets); p99 vs: the median of the per-round ratios (lower k/n: in how many"
  echo "of the n rounds this server's p99 was below the other's). CPU and wait: the"
  echo "proxy's threads' time on a CPU and time runnable but waiting for one"
  echo "(/proc/<pid>/task/*/schedstat), per request."
  echo
  echo "| workers | load | server | rps | p50 ms | p90 ms | p99 ms (range) | max ms | p99 vs nginx | p99 vs haproxy | CPU us/req | wait us/req |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for load in $LOADS; do
      for name in $SERVERS; do
        read -r -a f <<<"${RESULTS[$workers,$load,$name]}"
        local_ng=-; local_ha=-
        if [[ $name != direct ]]; then
          read -r local_ng _ < <(paired "${RUN_P99[$workers,$load,$name]}" "${RUN_P99[$workers,$load,nginx]}")
          read -r local_ha _ < <(paired "${RUN_P99[$workers,$load,$name]}" "${RUN_P99[$workers,$load,haproxy]}")
          [[ $name != nginx ]] && local_ng+=" (lower $(rounds_lower "${RUN_P99[$workers,$load,$name]}" "${RUN_P99[$workers,$load,nginx]}")/$RUNS)"
          [[ $name != haproxy ]] && local_ha+=" (lower $(rounds_lower "${RUN_P99[$workers,$load,$name]}" "${RUN_P99[$workers,$load,haproxy]}")/$RUNS)"
        fi
        echo "| $workers | $load | $name | ${f[0]} | ${f[1]} | ${f[2]} | ${f[3]} (${RANGE[$workers,$load,$name]}) | ${f[4]} | $local_ng | $local_ha | ${f[5]} | ${f[6]} |"
      done
    done
  done
} > "$MD"
jnum() { if [[ $1 == - ]]; then echo null; else echo "$1"; fi; }
{
  echo "{\"stamp\": \"$STAMP\", \"runs\": $RUNS, \"seconds\": $DURATION, \"connections\": $CONNS, \"pace_ms\": $PACE_MS, \"results\": ["
  sep=""
  for workers in $WORKERS_LIST; do
    for load in $LOADS; do
      for name in $SERVERS; do
        read -r -a f <<<"${RESULTS[$workers,$load,$name]}"
        printf '%s{"workers": %s, "load": "%s", "server": "%s", "rps": %s, "p50_ms": %s, "p90_ms": %s, "p99_ms": %s, "p99_range_ms": "%s", "max_ms": %s, "cpu_us_per_request": %s, "wait_us_per_request": %s, "round_p99_ms": [%s]}' \
          "$sep" "$workers" "$load" "$name" "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${RANGE[$workers,$load,$name]}" "${f[4]}" "$(jnum "${f[5]}")" "$(jnum "${f[6]}")" \
          "$(tr -s ' ' '\n' <<<"${RUN_P99[$workers,$load,$name]}" | grep -v '^$' | paste -sd, -)"
        sep=$',\n'
      done
    done
  done
  echo "]}"
} > "$JSON"
cat "$MD"
echo "bench: wrote $MD and $JSON" >&2
