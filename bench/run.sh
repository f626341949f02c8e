#!/usr/bin/env bash
# `make bench`: wrk drives, on loopback and side by side in one run, (a) the upstream directly
# (nginx serving a small fixed body), (b) sluice in front of it, (c) sluice with the add_header
# Proxy-Wasm example on V8 and (d) the same extension on the null runtime, (e) nginx as a reverse
# proxy in front of it, (f) haproxy in front of it, (g) sluice and (h) nginx terminating TLS in
# front of it, (i) sluice and (j) nginx serving HTTP/2 (h2c, driven by h2load); each proxy with
# the same worker count (1, then 2), keep-alive, 64 connections (h2: 16 x 4 streams), small GET. Runs are interleaved; each figure is the median of
# BENCH_RUNS runs. Sluice's CPU time per request comes from /proc/<pid>/stat (utime + stime over
# each run, divided by the requests wrk counted). Then, on the proxies' core with nothing else
# running: the Google Benchmark wasm_call_bench (BENCH_GB_REPS repetitions) and wasm_vm_rss.
# Results go to bench/results/ as markdown and JSON. See bench/README.md. Last, bench/telemetry.sh
# (the telemetry extension: none / null / V8) writes <stamp>-telemetry.md, .json and .png, and
# bench/tail.sh (p50-p99 of sluice, nginx and haproxy, saturated and paced) <stamp>-tail.md, .json,
# and bench/instructions.sh (callgrind: instructions per request without a filter, with the
# add_header and telemetry extensions on null and V8) <stamp>-instructions.md, .json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_build "${1:-build}"
ADD_HEADER_WASM="$BUILD_DIR/extensions/add_header.wasm"
need_built "$ADD_HEADER_WASM"
GB_BIN="$BUILD_DIR/bench/wasm_call_bench"
RSS_BIN="$BUILD_DIR/bench/wasm_vm_rss"
GB_REPS=${BENCH_GB_REPS:-3}
GB_MIN_TIME=${BENCH_GB_MIN_TIME:-0.3}
# In this order within each round: sluice between nginx and haproxy, the filter variants right
# after sluice, each HTTPS and HTTP/2 pair back to back (ratios are taken per round, see paired).
SERVERS="direct nginx sluice haproxy sluice-v8 sluice-null sluice-callout-v8 sluice-callout-null sluice-tls nginx-tls sluice-h2 nginx-h2"
SLUICES="sluice sluice-v8 sluice-null sluice-callout-v8 sluice-callout-null sluice-tls"
HTTP_AUTH_WASM="$BUILD_DIR/extensions/http_auth.wasm"
# http_auth asks the upstream (nginx answers 200 to any path) before each request is proxied.
HTTP_AUTH_CONFIG='cluster = up\npath = /auth-check\nauthority = bench'
need_built "$HTTP_AUTH_WASM"
port UP; port NX; port HA; port NXS; port NXH
command -v h2load >/dev/null || { echo "bench: h2load is missing (make deps installs nghttp2-client)" >&2; exit 1; }
# TLS termination (sluice-tls, nginx-tls): one self-signed certificate for both.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.pem" -days 2 \
  -subj "/CN=localhost" 2>/dev/null
declare -A SL_PORT ADMIN_PORT SLUICE_PIDS
for v in $SLUICES; do port "SL_PORT[$v]"; port "ADMIN_PORT[$v]"; done

start_sluice() {  # workers variant (sluice | sluice-v8 | sluice-null | ... | sluice-tls)
  local filters="" tls="name: plain" scheme=http
  case $2 in
    sluice-tls)
      scheme=https
      tls="name: tls
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [ { certificate_chain: { filename: $WORK/tls.pem }, private_key: { filename: $WORK/tls.key } } ]" ;;
    sluice-v8) filters=$(wasm_filter_yaml v8 "filename: $ADD_HEADER_WASM") ;;
    sluice-null) filters=$(wasm_filter_yaml null "inline_string: sluice.add_header") ;;
    sluice-callout-v8)
      filters=$(wasm_filter_yaml v8 "filename: $HTTP_AUTH_WASM" http_auth "$HTTP_AUTH_CONFIG") ;;
    sluice-callout-null)
      filters=$(wasm_filter_yaml null "inline_string: sluice.http_auth" http_auth "$HTTP_AUTH_CONFIG") ;;
  esac
  bench_proxy_yaml "${ADMIN_PORT[$2]}" "${SL_PORT[$2]}" up "$filters" "$tls" > "$WORK/$2.yaml"
  taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/$2.yaml" --concurrency "$1" -l warning &
  SLUICE_PIDS[$2]=$!
  wait_http "$scheme://127.0.0.1:${SL_PORT[$2]}/"
  if [[ $2 == sluice-v8 || $2 == sluice-null ]]; then
    local h
    h=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:${SL_PORT[$2]}/")
    [[ $h == *"x-bench: 1"* ]] || { echo "bench: $2: add_header did not run: $h" >&2; exit 1; }
  fi
}

# nginx terminating TLS in front of the same upstream (the HTTPS peer of sluice-tls).
start_nginx_tls() {  # workers
  nginx_conf "$WORK/proxy-tls.conf" "$1" "upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NXS ssl; ssl_certificate $WORK/tls.pem; ssl_certificate_key $WORK/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:1m;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  taskset -c "$PROXY_CPUS" /usr/sbin/nginx -c "$WORK/proxy-tls.conf" -e "$WORK/nginx-error.log" &
  NGINX_TLS_PID=$!
  wait_http "https://127.0.0.1:$NXS/"
}

# nginx serving h2c (prior knowledge) in front of the same upstream (the HTTP/2 peer of sluice,
# whose AUTO listener takes h2c on its plain port).
start_nginx_h2() {  # workers
  nginx_conf "$WORK/proxy-h2.conf" "$1" "upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NXH http2;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  taskset -c "$PROXY_CPUS" /usr/sbin/nginx -c "$WORK/proxy-h2.conf" -e "$WORK/nginx-error.log" &
  NGINX_H2_PID=$!
  for _ in $(seq 100); do curl -fsS --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$NXH/" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: nginx h2c never answered" >&2; exit 1
}

# run_wrk URL [pid] -> "rps p50_ms p99_ms cpu_us_per_request" (the last "-" without a pid)
run_wrk() {
  local out t0 t1 cpu="-" f
  [[ -n ${2:-} ]] && t0=$(cpu_ticks "$2")
  out=$(taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency "$1")
  [[ -n ${2:-} ]] && t1=$(cpu_ticks "$2")
  read -r -a f < <(wrk_figures "$out" "$1")
  [[ -n ${2:-} ]] && cpu=$(us_per_request "$t0" "$t1" "${f[0]}")
  echo "${f[1]} ${f[2]} ${f[4]} $cpu"
}

# run_h2load URL pid -> "rps mean_ms - cpu_us_per_request" (h2load reports no percentiles)
run_h2load() {
  local out t0 t1
  t0=$(cpu_ticks "$2")
  out=$(taskset -c "$WRK_CPUS" h2load -t 1 -c "$((CONNS / 4))" -m 4 -D "$DURATION" "$1" 2>&1)
  t1=$(cpu_ticks "$2")
  local reqs rps mean failed
  reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  [[ ${failed:-0} == 0 ]] || echo "bench: warning: $failed failed h2 requests to $1" >&2
  rps=$(awk '/^finished in/ {print $4}' <<<"$out")
  mean=$(to_ms "$(awk '/^time for request:/ {print $6}' <<<"$out")")
  local cpu
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }')
  echo "$rps $mean - $cpu"
}

start_upstream
declare -A RESULTS RANGES IDLE_RSS RUN_RPS RUN_CPU
for workers in $WORKERS_LIST; do
  for v in $SLUICES; do start_sluice "$workers" "$v"; done
  # RSS after one request (each worker that took it has started its plugin instance).
  for v in $SLUICES; do
    IDLE_RSS[$workers,$v]=$(awk '/^VmRSS:/ {print $2}' "/proc/${SLUICE_PIDS[$v]}/status")
  done
  if [[ $workers == "${WORKERS_LIST%% *}" ]]; then RSS_KB=${IDLE_RSS[$workers,sluice]}; fi
  start_nginx_proxy "$workers"
  start_nginx_tls "$workers"
  start_nginx_h2 "$workers"
  start_haproxy "$workers"
  declare -A rps p50 p99 cpu
  for name in $SERVERS; do rps[$name]=""; p50[$name]=""; p99[$name]=""; cpu[$name]=""; done
  # Warm-up (V8 tiers hot functions up in the background on the proxies' core): not measured.
  for name in $SERVERS; do
    case $name in
      direct) url="http://127.0.0.1:$UP/" ;;
      sluice-tls) url="https://127.0.0.1:${SL_PORT[$name]}/" ;;
      sluice-h2) url="http://127.0.0.1:${SL_PORT[sluice]}/" ;;
      sluice*) url="http://127.0.0.1:${SL_PORT[$name]}/" ;;
      nginx) url="http://127.0.0.1:$NX/" ;;
      nginx-tls) url="https://127.0.0.1:$NXS/" ;;
      haproxy) url="http://127.0.0.1:$HA/" ;;
      nginx-h2) url="http://127.0.0.1:$NXH/" ;;
    esac
    if [[ $name == *-h2 ]]; then
      taskset -c "$WRK_CPUS" h2load -t 1 -c "$((CONNS / 4))" -m 4 -D "$WARMUP" "$url" > /dev/null 2>&1
    else
      taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${WARMUP}s" "$url" > /dev/null
    fi
  done
  for run in $(seq "$RUNS"); do
    # Interleaved: each run measures every server once, so drift hits all of them alike.
    for name in $SERVERS; do
      pid=""
      case $name in
        direct) url="http://127.0.0.1:$UP/" ;;
        sluice-tls) url="https://127.0.0.1:${SL_PORT[$name]}/"; pid=${SLUICE_PIDS[$name]} ;;
        sluice-h2) url="http://127.0.0.1:${SL_PORT[sluice]}/"; pid=${SLUICE_PIDS[sluice]} ;;
        sluice*) url="http://127.0.0.1:${SL_PORT[$name]}/"; pid=${SLUICE_PIDS[$name]} ;;
        # nginx's work happens in its worker processes; haproxy is one process.
        nginx) url="http://127.0.0.1:$NX/"; pid="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
        nginx-tls) url="https://127.0.0.1:$NXS/"; pid="$NGINX_TLS_PID $(pgrep -P "$NGINX_TLS_PID" | tr '\n' ' ')" ;;
        haproxy) url="http://127.0.0.1:$HA/"; pid=$HAPROXY_PID ;;
        nginx-h2) url="http://127.0.0.1:$NXH/"; pid="$NGINX_H2_PID $(pgrep -P "$NGINX_H2_PID" | tr '\n' ' ')" ;;
      esac
      if [[ $name == *-h2 ]]; then
        read -r r a b c < <(run_h2load "$url" "$pid")
      else
        read -r r a b c < <(run_wrk "$url" "$pid")
      fi
      echo "bench: workers=$workers run=$run $name: $r rps, p50 $a ms, p99 $b ms, cpu $c us/req" >&2
      rps[$name]+="$r "; p50[$name]+="$a "; p99[$name]+="$b "; [[ $c == - ]] || cpu[$name]+="$c "
    done
  done
  for name in $SERVERS; do
    c=-; [[ -n ${cpu[$name]} ]] && c=$(median <<<"${cpu[$name]}")
    RESULTS[$workers,$name]="$(median <<<"${rps[$name]}") $(median <<<"${p50[$name]}") $(median <<<"${p99[$name]}") $c"
    cr=-; [[ -n ${cpu[$name]} ]] && cr=$(range <<<"${cpu[$name]}")
    RANGES[$workers,$name]="$(range <<<"${rps[$name]}") $cr"
    RUN_RPS[$workers,$name]=${rps[$name]}; RUN_CPU[$workers,$name]=${cpu[$name]}
  done
  for v in $SLUICES; do stop_pid "${SLUICE_PIDS[$v]}"; done
  stop_pid "$NGINX_PID"; stop_pid "$NGINX_TLS_PID"; stop_pid "$NGINX_H2_PID"; stop_pid "$HAPROXY_PID"
done

# The Google Benchmark and the RSS program, on the proxies' core, with the servers stopped.
GB_CSV="$WORK/gb.csv"; GB_JSON="$WORK/gb.json"; RSS_OUT="$WORK/rss.jsonl"
if [[ -x $GB_BIN ]]; then
  echo "bench: wasm_call_bench ($GB_REPS repetitions)" >&2
  SLUICE_BENCH_ADD_HEADER_WASM="$ADD_HEADER_WASM" taskset -c "$PROXY_CPUS" "$GB_BIN" \
    --benchmark_repetitions="$GB_REPS" --benchmark_min_time="$GB_MIN_TIME" \
    --benchmark_format=csv --benchmark_out="$GB_JSON" --benchmark_out_format=json \
    > "$GB_CSV" 2> "$WORK/gb.err" || { cat "$WORK/gb.err" >&2; echo "bench: wasm_call_bench failed" >&2; }
else
  echo "bench: $GB_BIN not built (libbenchmark-dev missing?): no Google Benchmark figures" >&2
fi
if [[ -x $RSS_BIN ]]; then
  SLUICE_BENCH_ADD_HEADER_WASM="$ADD_HEADER_WASM" taskset -c "$PROXY_CPUS" "$RSS_BIN" all 1 11 51 \
    > "$RSS_OUT" || echo "bench: wasm_vm_rss failed" >&2
fi
# gb_stat NAME -> "median min max unit" over the repetitions (real time), or nothing.
gb_stat() {
  [[ -s $GB_CSV ]] || return 0
  awk -F, -v want="$1" '
    { for (i = 1; i <= NF; i++) gsub(/"/, "", $i) }
    $1 == want && $3 != "" { v[++n] = $3; unit = $5 }
    END {
      if (!n) exit
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      printf "%s %s %s %s\n", v[int((n + 1) / 2)], v[1], v[n], unit
    }' "$GB_CSV"
}
gb_first() {  # NAME -> "value unit" of its first repetition
  [[ -s $GB_CSV ]] || return 0
  awk -F, -v want="$1" '{ for (i = 1; i <= NF; i++) gsub(/"/, "", $i) }
    $1 == want && $3 != "" { printf "%.4g %s", $3, $5; exit }' "$GB_CSV"
}
fmt_range() {  # "median min max unit" [divisor] -> "M unit (min-max)"
  [[ -n $1 ]] || { echo "n/a"; return; }
  awk -v s="$1" -v d="${2:-1}" 'BEGIN { split(s, a, " "); printf "%.4g %s (%.4g-%.4g)", a[1] / d, a[4], a[2] / d, a[3] / d }'
}
first() { awk '{print $1}' <<<"$1"; }

# Report.
mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
MD="$ROOT/bench/results/$STAMP.md"
JSON="$ROOT/bench/results/$STAMP.json"
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
NGINX_V=$(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///')
HAPROXY_V=$(/usr/sbin/haproxy -v | awk 'NR == 1 {print $3}')
WRK_V=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo unknown)
SLUICE_V=$("$SLUICE" --version | awk '{print $3}')
cache_var() { awk -F= -v k="$1" '$1 ~ "^" k ":" {print $2; exit}' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; }
V8_H="$(cache_var LIBNODE_INCLUDE_DIR)/v8-version.h"
V8_V=$(awk '/define V8_(MAJOR|MINOR)_VERSION|define V8_BUILD_NUMBER|define V8_PATCH_LEVEL/ {v = v (v == "" ? "" : ".") $3} END {print v}' "$V8_H" 2>/dev/null)
[[ -n $V8_V ]] || V8_V=unknown
CXX_V=$("$(cache_var CMAKE_CXX_COMPILER)" --version 2>/dev/null | head -1 || true)
BUILD_TYPE=$(cache_var CMAKE_BUILD_TYPE)
GB_V=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo unknown)
rss_of() { awk -v rt="$1" -F'"per_extra_vm_kib":' '$0 ~ "\"runtime\":\"" rt "\"" {sub(/}.*/, "", $2); print $2}' "$RSS_OUT" 2>/dev/null; }
RSS_V8=$(rss_of v8); RSS_NULL=$(rss_of null)

# Google Benchmark figures (medians over the repetitions).
CALL_V8=$(gb_stat BM_CallEmpty/v8); CALL_NULL=$(gb_stat BM_CallEmpty/null)
HOST_V8=$(gb_stat BM_HostCallEmpty/v8); HOST_NULL=$(gb_stat BM_HostCallEmpty/null)
HOST_V8_LEAF=$(gb_stat BM_HostCallEmpty/v8_leaf)
FR_NONE=$(gb_stat BM_FilterRequest/none); FR_V8=$(gb_stat BM_FilterRequest/v8)
FR_NULL=$(gb_stat BM_FilterRequest/null)
# Per 100 increments (one on_tick of the cas_increment plugin).
CAS1_V8=$(gb_stat BM_SharedDataCasIncrement/v8/threads:1); CAS1_NULL=$(gb_stat BM_SharedDataCasIncrement/null/threads:1)
CAS2_V8=$(gb_stat BM_SharedDataCasIncrement/v8/threads:2); CAS2_NULL=$(gb_stat BM_SharedDataCasIncrement/null/threads:2)
added_us() { [[ -n $1 && -n $2 ]] && awk -v a="$(first "$1")" -v b="$(first "$2")" 'BEGIN {printf "%.2f", (a - b) / 1000}' || echo n/a; }
FR_ADD_V8=$(added_us "$FR_V8" "$FR_NONE"); FR_ADD_NULL=$(added_us "$FR_NULL" "$FR_NONE")
host_per_call() { [[ -n $1 ]] && awk -v a="$(first "$1")" 'BEGIN {printf "%.1f", a / 1000}' || echo n/a; }
gb_real() { local st; st=$(gb_stat "$1"); fmt_range "$st"; }

{
  echo "# Benchmark $STAMP"
  echo
  echo "Machine: $NCPU CPU(s), $CPU. Proxies (and the Google Benchmark, run afterwards) pinned to CPU(s) $PROXY_CPUS, wrk and the upstream to $WRK_CPUS."
  echo "Versions: sluice $SLUICE_V ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $BUILD_TYPE, $CXX_V), V8 $V8_V (libnode), nginx $NGINX_V, haproxy $HAPROXY_V, wrk $WRK_V, Google Benchmark $GB_V."
  echo "Load: wrk -t1 -c$CONNS -d${DURATION}s, keep-alive, GET of a 17-byte body; median of $RUNS interleaved runs after a ${WARMUP}s warm-up of each server."
  echo "Sluice idle RSS (no Wasm plugin): $((RSS_KB / 1024)) MiB ($RSS_KB KiB)."
  echo
  echo "CPU us/req: the server's utime+stime over each run divided by the requests wrk counted"
  echo "(median): what a request costs it, whatever share of the core it got on a busy machine."
  echo "Ratios (\"vs\"): the median of the per-round ratios (range in brackets where shown); the two"
  echo "servers of a ratio ran in the same round, seconds apart, so a slow stretch of the machine"
  echo "hits both."
  echo
  echo "| workers | server | rps | p50 ms | p99 ms | rps vs nginx | rps vs haproxy | CPU us/req | CPU vs nginx |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for name in $SERVERS; do
      [[ $name == *-h2 ]] && continue  # in the HTTP/2 table
      read -r r a b c <<<"${RESULTS[$workers,$name]}"
      read -r vs_n vs_n_range < <(paired "${RUN_RPS[$workers,$name]}" "${RUN_RPS[$workers,nginx]}")
      read -r vs_h vs_h_range < <(paired "${RUN_RPS[$workers,$name]}" "${RUN_RPS[$workers,haproxy]}")
      [[ $name == sluice ]] && vs_n+=" ($vs_n_range)" && vs_h+=" ($vs_h_range)"
      cpu_n=-
      [[ $c != - ]] && read -r cpu_n _ < <(paired "${RUN_CPU[$workers,$name]}" "${RUN_CPU[$workers,nginx]}")
      [[ $name == direct ]] && vs_n="-" && vs_h="-"
      # HTTPS rows are compared with each other in their own table below.
      [[ $name == *-tls ]] && vs_n="-" && vs_h="-" && cpu_n="-"
      echo "| $workers | $name | $r | $a | $b | $vs_n | $vs_h | $c | $cpu_n |"
    done
  done
  echo
  echo "## HTTPS termination: sluice-tls vs nginx-tls"
  echo
  echo "Both terminate TLS (OpenSSL 3, RSA 2048, TLS 1.3 negotiated by wrk) and proxy plain HTTP to the same"
  echo "upstream; keep-alive, so the figures are dominated by the record layer, not handshakes. Target: sluice-tls >= nginx-tls."
  echo
  echo "| workers | server | rps (range) | p50 ms | p99 ms | rps vs nginx-tls | CPU us/req | CPU vs nginx-tls |"
  echo "|---|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for name in sluice-tls nginx-tls; do
      read -r r a b c <<<"${RESULTS[$workers,$name]}"
      read -r rr _ <<<"${RANGES[$workers,$name]}"
      read -r vs vs_range < <(paired "${RUN_RPS[$workers,$name]}" "${RUN_RPS[$workers,nginx-tls]}")
      read -r cpu_t _ < <(paired "${RUN_CPU[$workers,$name]}" "${RUN_CPU[$workers,nginx-tls]}")
      [[ $name == sluice-tls ]] && vs+=" ($vs_range)"
      echo "| $workers | $name | $r ($rr) | $a | $b | $vs | $c | $cpu_t |"
    done
  done
  echo
  echo "## HTTP/2 (h2c): sluice-h2 vs nginx-h2"
  echo
  echo "h2load -t1 -c$((CONNS / 4)) -m4 (64 streams in flight) with prior knowledge against sluice's AUTO"
  echo "listener and nginx's h2c listener (listen ... http2); both proxy HTTP/1.1 to the same upstream. Target: sluice-h2 >= nginx-h2."
  echo
  echo "| workers | server | rps (range) | mean ms | rps vs nginx-h2 | CPU us/req | CPU vs nginx-h2 |"
  echo "|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for name in sluice-h2 nginx-h2; do
      read -r r a _ c <<<"${RESULTS[$workers,$name]}"
      read -r rr _ <<<"${RANGES[$workers,$name]}"
      read -r vs vs_range < <(paired "${RUN_RPS[$workers,$name]}" "${RUN_RPS[$workers,nginx-h2]}")
      read -r cpu_h _ < <(paired "${RUN_CPU[$workers,$name]}" "${RUN_CPU[$workers,nginx-h2]}")
      [[ $name == sluice-h2 ]] && vs+=" ($vs_range)"
      echo "| $workers | $name | $r ($rr) | $a | $vs | $c | $cpu_h |"
    done
  done
  echo
  echo "## Proxy-Wasm filter: add_header vs no filter"
  echo
  echo "sluice-v8 runs extensions/add_header.wasm on V8, sluice-null the same source compiled natively"
  echo "(sluice.add_header) on the null runtime; configuration: \`${ADD_HEADER_CONFIG//\\n/; }\`."
  echo "CPU is sluice's utime+stime over each wrk run divided by the requests wrk counted (median, range over runs);"
  echo "added = the median of the per-round differences to sluice without a filter (the two ran seconds"
  echo "apart in each round). Targets: rps ratio >= 0.95, added CPU < 2 us/request on V8."
  echo "RSS: VmRSS after the first request (one worker has started its plugin instance)."
  echo "sluice-callout-v8/-null run extensions/http_auth (V8 / null): every request first waits for an"
  echo "http_call to the upstream (the same nginx, answering 200), then is proxied: a callout round trip per request."
  echo
  echo "| workers | server | rps (range) | rps vs no filter (range) | CPU us/req (range) | added CPU us/req | RSS KiB |"
  echo "|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    for name in $SLUICES; do
      [[ $name == sluice-tls ]] && continue  # in the HTTPS table
      read -r r _ _ c <<<"${RESULTS[$workers,$name]}"
      read -r rr cr <<<"${RANGES[$workers,$name]}"
      read -r vs vs_range < <(paired "${RUN_RPS[$workers,$name]}" "${RUN_RPS[$workers,sluice]}")
      read -r added _ <<<"$(quartiles "$(per_round - "${RUN_CPU[$workers,$name]}" "${RUN_CPU[$workers,sluice]}")")"
      [[ $name == sluice ]] && added="-" || vs+=" ($vs_range)"
      echo "| $workers | $name | $r ($rr) | $vs | $c ($cr) | $added | ${IDLE_RSS[$workers,$name]} |"
    done
  done
  echo
  echo "## Google Benchmark: wasm_call_bench"
  echo
  if [[ -s $GB_CSV ]]; then
    echo "Median of $GB_REPS repetitions (min-max), wall time, --benchmark_min_time=$GB_MIN_TIME, on CPU $PROXY_CPUS."
    echo
    echo "| measure | V8 | null | V8/null | target |"
    echo "|---|---|---|---|---|"
    echo "| host -> module, empty call | $(fmt_range "$CALL_V8") | $(fmt_range "$CALL_NULL") | $(ratio "$(first "$CALL_V8")" "$(first "$CALL_NULL")") | V8 120 ns, null 15 ns |"
    echo "| module -> host, empty host call | $(fmt_range "$HOST_V8" 1000)/call | $(fmt_range "$HOST_NULL" 1000)/call | $(ratio "$(first "$HOST_V8")" "$(first "$HOST_NULL")") | V8 40 ns, null 15 ns |"
    echo "| the same, bound as a leaf (V8 fast API call) | $(fmt_range "$HOST_V8_LEAF" 1000)/call | | $(ratio "$(first "$HOST_V8_LEAF")" "$(first "$HOST_NULL")") | |"
    echo "| compile add_header, first repetition (cold) | $(gb_first BM_Compile/v8/process_time/real_time) | $(gb_first BM_Compile/null/process_time/real_time) | | |"
    echo "| compile add_header, all repetitions (see README) | $(gb_real BM_Compile/v8/process_time/real_time) | $(gb_real BM_Compile/null/process_time/real_time) | | |"
    echo "| instantiate add_header | $(gb_real BM_Instantiate/v8/process_time/real_time) | $(gb_real BM_Instantiate/null/process_time/real_time) | | |"
    echo "| create + initialize + start_root | $(gb_real BM_StartInstance/v8/process_time/real_time) | $(gb_real BM_StartInstance/null/process_time/real_time) | | |"
    echo "| one request through the filter, added over none ($(fmt_range "$FR_NONE")) | $FR_ADD_V8 us | $FR_ADD_NULL us | $(ratio "$FR_ADD_V8" "$FR_ADD_NULL") | V8 < 2 us |"
    echo "| RSS per extra VM (wasm_vm_rss, 1 -> 51 VMs) | ${RSS_V8:-n/a} KiB | ${RSS_NULL:-n/a} KiB | | < 2048 KiB |"
    echo "| shared-data CAS increment (get + set) from a module, 1 VM | $(fmt_range "$CAS1_V8" 100) | $(fmt_range "$CAS1_NULL" 100) | $(ratio "$(first "$CAS1_V8")" "$(first "$CAS1_NULL")") | |"
    echo "| the same, 2 VMs on 2 threads, one key (per thread) | $(fmt_range "$CAS2_V8" 100) | $(fmt_range "$CAS2_NULL" 100) | $(ratio "$(first "$CAS2_V8")" "$(first "$CAS2_NULL")") | |"
    echo
    echo "Every benchmark:"
    echo
    echo "| benchmark | median | min | max | unit | label |"
    echo "|---|---|---|---|---|---|"
    awk -F, '
      NR == 1 { next }
      { for (i = 1; i <= NF; i++) gsub(/"/, "", $i) }
      $1 ~ /_(mean|median|stddev|cv)$/ || $3 == "" { next }
      !($1 in seen) { seen[$1] = 1; order[++m] = $1 }
      { n[$1]++; v[$1, n[$1]] = $3; unit[$1] = $5; label[$1] = $8 }
      END {
        for (k = 1; k <= m; k++) {
          b = order[k]; c = n[b]
          for (i = 1; i <= c; i++) a[i] = v[b, i]
          for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
          printf "| %s | %.4g | %.4g | %.4g | %s | %s |\n", b, a[int((c + 1) / 2)], a[1], a[c], unit[b], label[b]
        }
      }' "$GB_CSV"
  else
    echo "Not run (wasm_call_bench not built or failed)."
  fi
} > "$MD"
{
  echo "{\"timestamp\":\"$STAMP\",\"cpus\":$NCPU,\"cpu\":\"$CPU\",\"connections\":$CONNS,\"duration_s\":$DURATION,\"runs\":$RUNS,"
  echo "\"versions\":{\"sluice\":\"$SLUICE_V\",\"v8\":\"$V8_V\",\"nginx\":\"$NGINX_V\",\"haproxy\":\"$HAPROXY_V\",\"wrk\":\"$WRK_V\",\"benchmark\":\"$GB_V\",\"cxx\":\"$CXX_V\",\"build_type\":\"$BUILD_TYPE\"},"
  echo "\"sluice_idle_rss_kib\":$RSS_KB,\"add_header_configuration\":\"$ADD_HEADER_CONFIG\",\"results\":["
  first=1
  for workers in $WORKERS_LIST; do
    for name in $SERVERS; do
      read -r r a b c <<<"${RESULTS[$workers,$name]}"
      read -r rr cr <<<"${RANGES[$workers,$name]}"
      (( first )) || echo ","
      first=0
      if [[ $name == *-h2 ]]; then
        printf '{"workers":%s,"server":"%s","rps":%s,"rps_range":"%s","mean_ms":%s' "$workers" "$name" "$r" "$rr" "$a"
      else
        printf '{"workers":%s,"server":"%s","rps":%s,"rps_range":"%s","p50_ms":%s,"p99_ms":%s' "$workers" "$name" "$r" "$rr" "$a" "$b"
      fi
      [[ $c == - ]] || printf ',"cpu_us_per_request":%s,"cpu_us_range":"%s"' "$c" "$cr"
      # Each run's figures in round order, for ratios per round (see paired in lib.sh).
      printf ',"rps_runs":[%s]' "$(json_list "${RUN_RPS[$workers,$name]}")"
      [[ $c == - ]] || printf ',"cpu_us_runs":[%s]' "$(json_list "${RUN_CPU[$workers,$name]}")"
      [[ -z ${IDLE_RSS[$workers,$name]:-} ]] ||
        printf ',"rss_kib_after_first_request":%s' "${IDLE_RSS[$workers,$name]}"
      printf '}'
    done
  done
  echo "],"
  echo "\"vm_rss\":["
  [[ -s $RSS_OUT ]] && paste -sd, "$RSS_OUT"
  echo "],"
  printf '"google_benchmark":'
  if [[ -s $GB_JSON ]]; then cat "$GB_JSON"; else echo null; fi
  echo "}"
} > "$JSON"
cat "$MD"
echo
echo "bench: wrote $MD and $JSON"

# The telemetry extension's cost (its own tables and chart, same stamp).
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
BENCH_STAMP=$STAMP "$ROOT/bench/telemetry.sh" "$BUILD_DIR"
# The add_header filter's cost in many short rounds (its own table, same stamp).
BENCH_STAMP=$STAMP "$ROOT/bench/filter.sh" "$BUILD_DIR"
# Tail latency at saturation and at a paced rate (its own table, same stamp).
BENCH_STAMP=$STAMP "$ROOT/bench/tail.sh" "$BUILD_DIR"
# Instructions per request under callgrind: the filters' cost without this machine's noise.
BENCH_STAMP=$STAMP "$ROOT/bench/instructions.sh" "$BUILD_DIR"
