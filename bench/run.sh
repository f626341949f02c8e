#!/usr/bin/env bash
# `make bench`: wrk drives, on loopback and side by side in one run, (a) the upstream directly
# (nginx serving a small fixed body), (b) sluice in front of it, (c) nginx as a reverse proxy in
# front of it, (d) haproxy in front of it; each proxy with the same worker count (1, then 2),
# keep-alive, 64 connections, small GET. Runs are interleaved; each figure is the median of
# BENCH_RUNS runs. Results go to bench/results/ as markdown and JSON.
set -euo pipefail
BUILD_DIR=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD_DIR in /*) SLUICE="$BUILD_DIR/sluice" ;; *) SLUICE="$ROOT/$BUILD_DIR/sluice" ;; esac
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
WORKERS_LIST=${BENCH_WORKERS:-"1 2"}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

NCPU=$(nproc)
# With 2+ cores the servers under test get the last core and wrk the first (where that helps);
# the upstream shares wrk's core so the proxy's core does only proxying.
if (( NCPU >= 2 )); then
  PROXY_CPUS="$((NCPU - 1))"; WRK_CPUS="0"
  (( NCPU >= 4 )) && PROXY_CPUS="$((NCPU / 2))-$((NCPU - 1))" && WRK_CPUS="0-$((NCPU / 2 - 1))"
else
  PROXY_CPUS=0; WRK_CPUS=0
fi

port() { echo $((20000 + RANDOM % 40000)); }
UP=$(port); SL=$(port); NX=$(port); HA=$(port); ADMIN=$(port)

wait_http() {
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: $1 never answered" >&2; exit 1
}

nginx_conf() {  # file workers body
  cat > "$1" <<NGINX
daemon off;
worker_processes $2;
pid $1.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  keepalive_requests 1000000;
  $3
}
NGINX
}

start_upstream() {
  nginx_conf "$WORK/upstream.conf" 1 "server { listen 127.0.0.1:$UP; location / { return 200 'hello, benchmark\n'; } }"
  taskset -c "$WRK_CPUS" /usr/sbin/nginx -c "$WORK/upstream.conf" -e "$WORK/nginx-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$UP/"
}

start_sluice() {  # workers
  cat > "$WORK/sluice.yaml" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN } } }
static_resources:
  listeners:
  - name: bench
    address: { socket_address: { address: 127.0.0.1, port_value: $SL } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          route_config:
            virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: up } } ] } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: up
    connect_timeout: 1s
    circuit_breakers: { thresholds: [ { max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 } ] }
    load_assignment:
      cluster_name: up
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
YAML
  taskset -c "$PROXY_CPUS" "$SLUICE" -c "$WORK/sluice.yaml" --concurrency "$1" -l warning &
  SLUICE_PID=$!
  wait_http "http://127.0.0.1:$SL/"
}

start_nginx_proxy() {  # workers
  nginx_conf "$WORK/proxy.conf" "$1" "upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  taskset -c "$PROXY_CPUS" /usr/sbin/nginx -c "$WORK/proxy.conf" -e "$WORK/nginx-error.log" &
  NGINX_PID=$!
  wait_http "http://127.0.0.1:$NX/"
}

start_haproxy() {  # workers
  cat > "$WORK/haproxy.cfg" <<HA
global
  nbthread $1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA
  default_backend be
backend be
  server up 127.0.0.1:$UP
HA
  taskset -c "$PROXY_CPUS" /usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  wait_http "http://127.0.0.1:$HA/"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

to_ms() {  # wrk latency like 1.23ms / 456.00us / 1.2s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# run_wrk URL -> "rps p50_ms p99_ms"
run_wrk() {
  local out
  out=$(taskset -c "$WRK_CPUS" wrk -t 1 -c "$CONNS" -d "${DURATION}s" --latency "$1")
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  local errors
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  [[ -z $errors ]] || echo "bench: warning: $errors non-2xx responses from $1" >&2
  echo "$rps $p50 $p99"
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

start_upstream
declare -A RESULTS
for workers in $WORKERS_LIST; do
  start_sluice "$workers"
  if [[ $workers == "${WORKERS_LIST%% *}" ]]; then
    RSS_KB=$(awk '/^VmRSS:/ {print $2}' "/proc/$SLUICE_PID/status")
  fi
  start_nginx_proxy "$workers"
  start_haproxy "$workers"
  declare -A rps p50 p99
  for name in direct sluice nginx haproxy; do rps[$name]=""; p50[$name]=""; p99[$name]=""; done
  for run in $(seq "$RUNS"); do
    # Interleaved: each run measures every server once, so drift hits all of them alike.
    for name in direct sluice nginx haproxy; do
      case $name in
        direct) url="http://127.0.0.1:$UP/" ;;
        sluice) url="http://127.0.0.1:$SL/" ;;
        nginx) url="http://127.0.0.1:$NX/" ;;
        haproxy) url="http://127.0.0.1:$HA/" ;;
      esac
      read -r r a b < <(run_wrk "$url")
      echo "bench: workers=$workers run=$run $name: $r rps, p50 $a ms, p99 $b ms" >&2
      rps[$name]+="$r "; p50[$name]+="$a "; p99[$name]+="$b "
    done
  done
  for name in direct sluice nginx haproxy; do
    RESULTS[$workers,$name]="$(median <<<"${rps[$name]}") $(median <<<"${p50[$name]}") $(median <<<"${p99[$name]}")"
  done
  stop_pid "$SLUICE_PID"; stop_pid "$NGINX_PID"; stop_pid "$HAPROXY_PID"
done

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
{
  echo "# Benchmark $STAMP"
  echo
  echo "Machine: $NCPU CPU(s), $CPU. Proxies pinned to CPU(s) $PROXY_CPUS, wrk and the upstream to $WRK_CPUS."
  echo "Versions: sluice $SLUICE_V ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')), nginx $NGINX_V, haproxy $HAPROXY_V, wrk $WRK_V."
  echo "Load: wrk -t1 -c$CONNS -d${DURATION}s, keep-alive, GET of a 17-byte body; median of $RUNS interleaved runs."
  echo "Sluice idle RSS (no Wasm plugin): $((RSS_KB / 1024)) MiB ($RSS_KB KiB)."
  echo
  echo "| workers | server | rps | p50 ms | p99 ms | rps vs nginx | rps vs haproxy |"
  echo "|---|---|---|---|---|---|---|"
  for workers in $WORKERS_LIST; do
    read -r nrps _ _ <<<"${RESULTS[$workers,nginx]}"
    read -r hrps _ _ <<<"${RESULTS[$workers,haproxy]}"
    for name in direct sluice nginx haproxy; do
      read -r r a b <<<"${RESULTS[$workers,$name]}"
      vs_n=$(awk -v x="$r" -v y="$nrps" 'BEGIN {printf "%.2f", x / y}')
      vs_h=$(awk -v x="$r" -v y="$hrps" 'BEGIN {printf "%.2f", x / y}')
      [[ $name == direct ]] && vs_n="-" && vs_h="-"
      echo "| $workers | $name | $r | $a | $b | $vs_n | $vs_h |"
    done
  done
} > "$MD"
{
  echo "{\"timestamp\":\"$STAMP\",\"cpus\":$NCPU,\"cpu\":\"$CPU\",\"connections\":$CONNS,\"duration_s\":$DURATION,\"runs\":$RUNS,"
  echo "\"versions\":{\"sluice\":\"$SLUICE_V\",\"nginx\":\"$NGINX_V\",\"haproxy\":\"$HAPROXY_V\",\"wrk\":\"$WRK_V\"},"
  echo "\"sluice_idle_rss_kib\":$RSS_KB,\"results\":["
  first=1
  for workers in $WORKERS_LIST; do
    for name in direct sluice nginx haproxy; do
      read -r r a b <<<"${RESULTS[$workers,$name]}"
      (( first )) || echo ","
      first=0
      printf '{"workers":%s,"server":"%s","rps":%s,"p50_ms":%s,"p99_ms":%s}' "$workers" "$name" "$r" "$a" "$b"
    done
  done
  echo "]}"
} > "$JSON"
cat "$MD"
echo
echo "bench: wrote $MD and $JSON"
