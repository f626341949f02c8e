#!/usr/bin/env bash
# The telemetry extension's cost (part of `make bench`; alone: bench/telemetry.sh <build dir>).
# wrk drives, side by side in one run, three sluice processes in front of the same nginx:
#   none: no filter;  null: telemetry (stats_inbound, `{}`) on the null runtime (sluice.telemetry);
#   v8: the same source as telemetry.wasm on V8.
# Every request carries the peer metadata a client sidecar sends (captured from a sluice running
# stats_outbound, so it is the real header), which the server side decodes (then caches by id),
# strips, answers with its own, and reports Istio's standard metrics with full labels.
# Measured: rps, p50/p99, CPU per request (utime+stime of the proxy over the run / requests), RSS.
# Runs interleaved; each figure the median of BENCH_RUNS. Writes bench/results/<stamp>-telemetry
# .md, .json and .png (gnuplot). Targets: V8 CPU/request <= 1.10 x null; rps with telemetry
# >= 0.90 x without.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VARIANTS=${BENCH_TELEMETRY_VARIANTS:-"none null v8"}
BENCH_NAME=sluice-bench-telemetry
source "$ROOT/bench/lib.sh"
bench_build "${1:-build}"
source "$ROOT/bench/telemetry_lib.sh"
need_built "$TELEMETRY_WASM"

port UP
telemetry_upstream
telemetry_peer_headers

# Five rounds by default (the other scripts take three): the V8 / null / none ratios are this
# script's targets, and close to them.
RUNS=${BENCH_RUNS:-5}
declare -A PORT ADMIN PID RESULTS RANGES RSS RUN_RPS RUN_CPU
for v in $VARIANTS; do port "PORT_$v"; port "ADMIN_$v"; done
for v in $VARIANTS; do PORT[$v]=$(eval echo "\$PORT_$v"); ADMIN[$v]=$(eval echo "\$ADMIN_$v"); done

run_wrk() {  # url pid -> "rps p50 p99 cpu_us"
  local out t0 t1 f
  t0=$(cpu_ticks "$2")
  out=$(taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency "${HEADERS[@]}" "$1")
  t1=$(cpu_ticks "$2")
  read -r -a f < <(wrk_figures "$out" "$1")
  echo "${f[1]} ${f[2]} ${f[4]} $(us_per_request "$t0" "$t1" "${f[0]}")"
}

for workers in $WORKERS_LIST; do
  for v in $VARIANTS; do
    runtime=$v; [[ $v == none ]] && runtime=""
    telemetry_config "$WORK/$v.yaml" "${ADMIN[$v]}" "${PORT[$v]}" stats_inbound "$runtime"
    taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/$v.yaml" --concurrency "$workers" -l warning &
    PID[$v]=$!
    PIDS+=(${PID[$v]})
    wait_http "http://127.0.0.1:${PORT[$v]}/"
  done
  # The plugin really runs: the answer carries the server's metadata, the metric the client's.
  for v in null v8; do
    [[ " $VARIANTS " == *" $v "* ]] || continue
    h=$(curl -fsS -D - -o /dev/null "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}/")
    [[ $h == *"x-envoy-peer-metadata-id: sidecar~10.0.0.1~reviews"* ]] ||
      { echo "bench: $v: telemetry did not answer with its metadata: $h" >&2; exit 1; }
    # Read whole before grep: grep -q stopping early would fail curl (and the pipe) at random.
    metrics=$(curl -fsS "http://127.0.0.1:${ADMIN[$v]}/stats/prometheus")
    grep -q '^istio_requests_total{reporter="destination",source_workload="productpage-v1",' <<<"$metrics" ||
      { echo "bench: $v: istio_requests_total is missing the client's labels" >&2; exit 1; }
  done
  for v in $VARIANTS; do
    taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${WARMUP}s" "${HEADERS[@]}" "http://127.0.0.1:${PORT[$v]}/" > /dev/null
  done
  declare -A rps p50 p99 cpu
  for v in $VARIANTS; do rps[$v]=""; p50[$v]=""; p99[$v]=""; cpu[$v]=""; done
  for run in $(seq "$RUNS"); do
    for v in $VARIANTS; do
      read -r r a b c < <(run_wrk "http://127.0.0.1:${PORT[$v]}/" "${PID[$v]}")
      echo "bench: telemetry workers=$workers run=$run $v: $r rps, p50 $a ms, p99 $b ms, cpu $c us/req" >&2
      rps[$v]+="$r "; p50[$v]+="$a "; p99[$v]+="$b "; cpu[$v]+="$c "
    done
  done
  for v in $VARIANTS; do
    RESULTS[$workers,$v]="$(median <<<"${rps[$v]}") $(median <<<"${p50[$v]}") $(median <<<"${p99[$v]}") $(median <<<"${cpu[$v]}")"
    RANGES[$workers,$v]="$(range <<<"${rps[$v]}") $(range <<<"${cpu[$v]}")"
    RUN_RPS[$workers,$v]=${rps[$v]}; RUN_CPU[$workers,$v]=${cpu[$v]}
    RSS[$workers,$v]=$(awk '/^VmRSS:/ {print $2}' "/proc/${PID[$v]}/status")
    stop_pid "${PID[$v]}"
  done
done

mkdir -p "$ROOT/bench/results"
STAMP=${BENCH_STAMP:-$(date -u +%Y-%m-%dT%H%M%SZ)}
BASE="$ROOT/bench/results/$STAMP-telemetry"
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "# Telemetry benchmark $STAMP"
  echo
  echo "Machine: $NCPU CPU(s), $CPU; proxies on CPU(s) $PROXY_CPUS, wrk and nginx on $WRK_CPUS."
  echo "sluice $("$SLUICE" --version | awk '{print $3}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))."
  echo "Load: wrk -t1 -c$CONNS -d${DURATION}s, keep-alive, GET of a 17-byte body, each request with the"
  echo "peer metadata a client sidecar sends (${#PEER_METADATA} bytes of base64). Median of $RUNS interleaved runs (range);"
  echo "ratios: the median (range) of the per-round ratios, none, null and v8 running back to back in each round."
  echo "Telemetry: stats_inbound, configuration \`{}\` (Istio's standard metrics and labels, metadata exchange)."
  echo "CPU us/req: the proxy's utime+stime over a run / the requests wrk counted. RSS: VmRSS after the runs."
  echo "Targets: V8 CPU/request <= 1.10 x null; rps with telemetry >= 0.90 x without."
  echo
  echo "| workers | telemetry | rps (range) | rps vs none (range) | p50 ms | p99 ms | CPU us/req (range) | CPU vs none | CPU vs null (range) | RSS KiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for v in $VARIANTS; do
      read -r r a b c <<<"${RESULTS[$workers,$v]}"
      read -r rr cr <<<"${RANGES[$workers,$v]}"
      read -r vs vs_range < <(paired "${RUN_RPS[$workers,$v]}" "${RUN_RPS[$workers,none]}")
      read -r cpu_vs _ < <(paired "${RUN_CPU[$workers,$v]}" "${RUN_CPU[$workers,none]}")
      [[ $v == none ]] || vs+=" ($vs_range)"
      vs_null=-
      if [[ $v == v8 && " $VARIANTS " == *" null "* ]]; then
        read -r vs_null vs_null_range < <(paired "${RUN_CPU[$workers,v8]}" "${RUN_CPU[$workers,null]}")
        vs_null+=" ($vs_null_range)"
      fi
      echo "| $workers | $v | $r ($rr) | $vs | $a | $b | $c ($cr) | $cpu_vs | $vs_null | ${RSS[$workers,$v]} |"
    done
  done
} > "$BASE.md"
{
  printf '{"timestamp":"%s","cpus":%s,"connections":%s,"duration_s":%s,"runs":%s,"results":[' \
    "$STAMP" "$NCPU" "$CONNS" "$DURATION" "$RUNS"
  first=1
  for workers in $WORKERS_LIST; do
    for v in $VARIANTS; do
      read -r r a b c <<<"${RESULTS[$workers,$v]}"
      read -r rr cr <<<"${RANGES[$workers,$v]}"
      (( first )) || printf ','
      first=0
      printf '{"workers":%s,"telemetry":"%s","rps":%s,"rps_range":"%s","p50_ms":%s,"p99_ms":%s,"cpu_us_per_request":%s,"cpu_us_range":"%s","rss_kib":%s,"rps_runs":[%s],"cpu_us_runs":[%s]}' \
        "$workers" "$v" "$r" "$rr" "$a" "$b" "$c" "$cr" "${RSS[$workers,$v]}" \
        "$(json_list "${RUN_RPS[$workers,$v]}")" "$(json_list "${RUN_CPU[$workers,$v]}")"
    done
  done
  echo "]}"
} > "$BASE.json"

# The plot: CPU per request and rps relative to no telemetry, per worker count.
if command -v gnuplot > /dev/null; then
  for workers in $WORKERS_LIST; do
    for v in $VARIANTS; do
      read -r _ _ _ c <<<"${RESULTS[$workers,$v]}"
      read -r vs _ < <(paired "${RUN_RPS[$workers,$v]}" "${RUN_RPS[$workers,none]}")
      echo "\"$v, $workers worker(s)\" $c $vs"
    done
  done > "$WORK/plot.dat"
  gnuplot <<GNUPLOT
set terminal pngcairo size 900,420 font "Liberation Sans,10"
set output "$BASE.png"
set multiplot layout 1,2 title "Telemetry cost, $STAMP ($NCPU CPUs, wrk -c$CONNS)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30
set grid ytics
set title "CPU per request (us)"
set yrange [0:*]
plot "$WORK/plot.dat" using 2:xtic(1) notitle lc rgb "#3b6ea8"
set title "rps relative to no telemetry"
set yrange [0:1.1]
plot "$WORK/plot.dat" using 3:xtic(1) notitle lc rgb "#5a9e4b", 0.9 with lines dt 2 lc rgb "#b03a2e" title "target 0.90"
unset multiplot
GNUPLOT
  echo "bench: wrote $BASE.png" >&2
else
  echo "bench: gnuplot is missing (make deps installs gnuplot-nox): no plot" >&2
fi
cat "$BASE.md"
echo
echo "bench: wrote $BASE.md and $BASE.json"
