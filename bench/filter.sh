#!/usr/bin/env bash
# The cost of a Proxy-Wasm filter under load, measured for its target alone (part of `make
# bench`; alone: bench/filter.sh <build dir>). Three sluice processes in front of the same nginx:
#   none: no filter;  v8: add_header.wasm on V8;  null: the same source natively (sluice.add_header).
# Many short rounds, the three back to back in each, and per-round ratios: this machine drifts
# for minutes at a time between a state where the proxy's core is the bottleneck and slower ones
# where it is not, and a few long runs can land on different sides of a drift. Reported per
# variant: the median of the per-round rps ratios vs none with their quartiles and range, and
# the CPU a request costs (utime+stime / requests) with the median per-round difference to none.
# Target (the Wasm host issue): rps with the V8 filter >= 0.95 of none. Knobs: BENCH_FILTER_ROUNDS
# (15), BENCH_FILTER_SECONDS (3), BENCH_WORKERS, BENCH_CONNECTIONS. Writes bench/results/
# <stamp>-filter.md and .json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=sluice-bench-filter
source "$ROOT/bench/lib.sh"
bench_build "${1:-build}"
ADD_HEADER_WASM="$BUILD_DIR/extensions/add_header.wasm"
need_built "$ADD_HEADER_WASM"
ROUNDS=${BENCH_FILTER_ROUNDS:-15}
SECONDS_PER_RUN=${BENCH_FILTER_SECONDS:-3}
VARIANTS="none v8 null"

port UP
start_upstream
declare -A PORT ADMIN PID RPS CPU
for v in $VARIANTS; do port "PORT[$v]"; port "ADMIN[$v]"; done

declare -A ROWS
for workers in $WORKERS_LIST; do
  for v in $VARIANTS; do
    filters=""
    [[ $v == v8 ]] && filters=$(wasm_filter_yaml v8 "filename: $ADD_HEADER_WASM")
    [[ $v == null ]] && filters=$(wasm_filter_yaml null "inline_string: sluice.add_header")
    bench_proxy_yaml "${ADMIN[$v]}" "${PORT[$v]}" up "$filters" > "$WORK/$v.yaml"
    taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/$v.yaml" --concurrency "$workers" -l warning &
    PID[$v]=$!
    PIDS+=(${PID[$v]})
    wait_http "http://127.0.0.1:${PORT[$v]}/"
    if [[ $v != none ]]; then  # the filter really runs
      h=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:${PORT[$v]}/")
      [[ $h == *"x-bench: 1"* ]] || { echo "bench: $v: add_header did not run: $h" >&2; exit 1; }
    fi
    taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${WARMUP}s" "http://127.0.0.1:${PORT[$v]}/" > /dev/null
    RPS[$v]=""; CPU[$v]=""
  done
  for round in $(seq "$ROUNDS"); do
    line="bench: filter workers=$workers round=$round:"
    for v in $VARIANTS; do
      t0=$(cpu_ticks "${PID[$v]}")
      out=$(taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${SECONDS_PER_RUN}s" "http://127.0.0.1:${PORT[$v]}/")
      t1=$(cpu_ticks "${PID[$v]}")
      read -r -a f < <(wrk_figures "$out" "http://127.0.0.1:${PORT[$v]}/")
      c=$(us_per_request "$t0" "$t1" "${f[0]}")
      RPS[$v]+="${f[1]} "; CPU[$v]+="$c "
      line+=" $v ${f[1]} rps ${c} us/req"
    done
    echo "$line" >&2
  done
  for v in $VARIANTS; do
    read -r rps_med _ <<<"$(quartiles "${RPS[$v]}")"
    read -r cpu_med _ <<<"$(quartiles "${CPU[$v]}")"
    ratio_stats="- - -"; added="-"
    if [[ $v != none ]]; then
      ratio_stats=$(quartiles "$(per_round / "${RPS[$v]}" "${RPS[none]}")")
      read -r added _ <<<"$(quartiles "$(per_round - "${CPU[$v]}" "${CPU[none]}")")"
    fi
    ROWS[$workers,$v]="$rps_med $ratio_stats $cpu_med $added"
    ROWS[$workers,$v,runs]="$(json_list "${RPS[$v]}")|$(json_list "${CPU[$v]}")"
  done
  for v in $VARIANTS; do stop_pid "${PID[$v]}"; done
done

STAMP=${BENCH_STAMP:-$(date -u +%Y-%m-%dT%H%M%SZ)}
mkdir -p "$ROOT/bench/results"
BASE="$ROOT/bench/results/$STAMP-filter"
{
  echo "# Filter cost $STAMP"
  echo
  echo "Machine: $NCPU CPU(s), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); proxies on CPU(s) $PROXY_CPUS, wrk and nginx on $WRK_CPUS."
  echo "sluice $("$SLUICE" --version | awk '{print $3}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo "Load: wrk -t1 -c$CONNS, keep-alive, GET of a 17-byte body; $ROUNDS rounds of ${SECONDS_PER_RUN}s runs of none, v8 and"
  echo "null back to back. v8: extensions/add_header.wasm on V8; null: the same source natively"
  echo "(sluice.add_header); configuration: \`${ADD_HEADER_CONFIG//\\n/; }\`."
  echo "rps vs none: per-round ratios, median (quartiles; range). CPU: utime+stime per request, median;"
  echo "added: the per-round difference to none, median. Target: v8 rps vs none >= 0.95."
  echo
  echo "| workers | filter | rps | rps vs none | quartiles | range | CPU us/req | added CPU us/req |"
  echo "|---|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for v in $VARIANTS; do
      read -r r med q range c added <<<"${ROWS[$workers,$v]}"
      [[ $v == none ]] && med=1.00
      echo "| $workers | $v | $r | $med | $q | $range | $c | $added |"
    done
  done
} > "$BASE.md"
{
  printf '{"timestamp":"%s","cpus":%s,"connections":%s,"seconds":%s,"rounds":%s,"results":[' \
    "$STAMP" "$NCPU" "$CONNS" "$SECONDS_PER_RUN" "$ROUNDS"
  sep=""
  for workers in $WORKERS_LIST; do
    for v in $VARIANTS; do
      read -r r med q range c added <<<"${ROWS[$workers,$v]}"
      IFS='|' read -r rps_runs cpu_runs <<<"${ROWS[$workers,$v,runs]}"
      printf '%s{"workers":%s,"filter":"%s","rps":%s,"rps_vs_none":"%s","quartiles":"%s","range":"%s","cpu_us_per_request":%s,"added_cpu_us":"%s","rps_runs":[%s],"cpu_us_runs":[%s]}' \
        "$sep" "$workers" "$v" "$r" "$med" "$q" "$range" "$c" "$added" "$rps_runs" "$cpu_runs"
      sep=","
    done
  done
  echo "]}"
} > "$BASE.json"
cat "$BASE.md"
echo
echo "bench: wrote $BASE.md and $BASE.json"
