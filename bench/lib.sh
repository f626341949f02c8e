# Shared by the benchmark scripts (bench/run.sh, bench/telemetry.sh): a scratch directory and
# the processes to stop with it, CPU pinning, free ports, nginx configurations, CPU accounting
# and the statistics of repeated runs. Source it after setting BENCH_NAME (the scratch prefix).

# The knobs both scripts take (see bench/README.md).
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP_SECONDS:-1}
CONNS=${BENCH_CONNECTIONS:-64}
WORKERS_LIST=${BENCH_WORKERS:-"1 2"}
CLK_TCK=$(getconf CLK_TCK)

# bench_build DIR: BUILD_DIR (DIR made absolute) and SLUICE, the build under test; stops when
# its sluice is missing. need_built FILE: stops when a file of that build is missing.
bench_build() {
  BUILD_DIR=$1
  case $BUILD_DIR in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
  SLUICE="$BUILD_DIR/sluice"
  need_built "$SLUICE"
}
need_built() { [[ -e $1 ]] || { echo "bench: $1 is missing: build first" >&2; exit 1; }; }

WORK=$(mktemp -d "/tmp/${BENCH_NAME:-sluice-bench}.XXXXXX")
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

# Listening ports: below the ephemeral range (whose ports outgoing connections hold without
# listening), not picked twice, nothing answering on them now.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
PORT_LOW=10000; (( EPHEMERAL_LOW > PORT_LOW + 1000 )) || PORT_LOW=1024
USED_PORTS=" "
port() {  # name: sets $name to a fresh port (not in a subshell, so USED_PORTS keeps it)
  local p
  while :; do
    p=$((PORT_LOW + RANDOM % (EPHEMERAL_LOW - PORT_LOW)))
    [[ $USED_PORTS == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    USED_PORTS+="$p "
    printf -v "$1" '%s' "$p"
    return
  done
}

wait_http() {
  for _ in $(seq 100); do curl -kfsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
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

cpu_ticks() {  # "pid..." -> utime + stime (clock ticks), every thread of every given process
  local total=0 p
  for p in $1; do
    total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
  done
  echo "$total"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

to_ms() {  # wrk latency like 1.23ms / 456.00us / 1.2s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# wrk_figures WRK_OUTPUT URL -> "requests rps p50_ms p90_ms p99_ms max_ms" from `wrk --latency`'s
# report; warns (stderr) about non-2xx answers.
wrk_figures() {
  local errors
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$1")
  [[ -z $errors ]] || echo "bench: warning: $errors non-2xx responses from $2" >&2
  local p50 p90 p99
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$1")")
  p90=$(to_ms "$(awk '$1 == "90%" {print $2}' <<<"$1")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$1")")
  echo "$(awk '/ requests in / {print $1}' <<<"$1") $(awk '/^Requests\/sec:/ {print $2}' <<<"$1")" \
    "$p50 $p90 $p99 $(to_ms "$(awk '$1 == "Latency" {print $4; exit}' <<<"$1")")"
}

# us_per_request TICKS_BEFORE TICKS_AFTER REQUESTS: CPU clock ticks (cpu_ticks) per request, in us.
us_per_request() {
  awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v n="$3" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }'
}

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
range() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR] = $1} END {print a[1] "-" a[NR]}'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y + 0 == 0) print "n/a"; else printf "%.2f", x / y }'; }
json_list() { tr ' ' '\n' <<<"$1" | awk 'NF' | paste -sd, -; }  # "1 2 3" -> 1,2,3
# quartiles "x1 x2 ...": "median q1-q3 min-max" (nearest rank), two decimals.
quartiles() {
  tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    printf "%.2f %.2f-%.2f %.2f-%.2f\n", a[int((NR + 1) / 2)], a[int((NR + 3) / 4)],
      a[int((3 * NR + 3) / 4)], a[1], a[NR] }'
}
# per_round OP "a1 a2 ..." "b1 b2 ...": each run's ai / bi (OP "/") or ai - bi (OP "-").
per_round() {
  paste -d' ' <(tr ' ' '\n' <<<"$2" | awk 'NF') <(tr ' ' '\n' <<<"$3" | awk 'NF') |
    awk -v op="$1" 'NF == 2 { if (op == "/") { if ($2 + 0 > 0) printf "%.4f ", $1 / $2 } else printf "%.3f ", $1 - $2 }'
}
# paired "A1 A2 ..." "B1 B2 ...": the median and range of the per-run ratios Ai / Bi, as
# "median min-max". A and B of one run are measured back to back, seconds apart, so a slow
# stretch of this shared machine (they last minutes) hits both and cancels out of their ratio;
# a ratio of two medians can take them from different stretches.
paired() {
  local median range
  read -r median _ range <<<"$(quartiles "$(per_round / "$1" "$2")")"
  echo "$median $range"
}

# bench_proxy_yaml ADMIN_PORT PORT CLUSTER FILTERS [CHAIN]: a sluice configuration (admin and
# static_resources) with one listener on PORT proxying everything to CLUSTER (the upstream at
# 127.0.0.1:$UP, limits out of the way), FILTERS (http_filters entries) before the router. CHAIN
# is the filter chain's first line ("name: plain" by default; run.sh puts its TLS chain there).
bench_proxy_yaml() {
  cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $1 } } }
static_resources:
  listeners:
  - name: bench
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - ${5:-name: plain}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          route_config:
            virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: "$3" } } ] } ]
          http_filters:
$4
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: "$3"
    connect_timeout: 1s
    circuit_breakers: { thresholds: [ { max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 } ] }
    load_assignment:
      cluster_name: "$3"
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
YAML
}

# The plugin configuration of add_header (the same one wasm_call_bench uses).
ADD_HEADER_CONFIG='request.set.x-bench = 1\nresponse.set.x-bench = 1'

# wasm_filter_yaml RUNTIME CODE [EXTENSION [CONFIGURATION]]: an http_filters entry running a
# Proxy-Wasm extension (add_header with ADD_HEADER_CONFIG by default); CODE is the `local:` body.
wasm_filter_yaml() {
  local ext=${3:-add_header} cfg=${4:-$ADD_HEADER_CONFIG}
  cat <<YAML
          - name: $ext
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $ext
                root_id: $ext
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: "$cfg"
                vm_config:
                  runtime: envoy.wasm.runtime.$1
                  code: { local: { $2 } }
YAML
}

# The servers every benchmark script compares: the upstream (nginx serving 17 bytes, on wrk's
# core) and, on the proxies' core, nginx and haproxy as reverse proxies in front of it. They use
# $UP, $NX and $HA (ports) and set NGINX_PID / HAPROXY_PID.
start_upstream() {
  nginx_conf "$WORK/upstream.conf" 1 "server { listen 127.0.0.1:$UP; location / { return 200 'hello, benchmark\n'; } }"
  taskset -c "$WRK_CPUS" /usr/sbin/nginx -c "$WORK/upstream.conf" -e "$WORK/nginx-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$UP/"
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
