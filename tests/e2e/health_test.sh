#!/usr/bin/env bash
# Endpoint health with the real binary: active HTTP and TCP health checks against nginx and a
# closed port (hosts leave and rejoin load balancing, /clusters and stats show it), and outlier
# detection ejecting a host that answers 503 until its ejection time is up.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || fail "socat is not installed (make deps)"

A=$(free_port); B=$(free_port); DEAD=$(free_port); BAD=$(free_port)
PORT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$A"; start_nginx "$B"
echo ok > "$WORK/nginx-$A/html/health.txt"; echo ok > "$WORK/nginx-$B/html/health.txt"
# An upstream that answers every request with a 503.
socat "TCP-LISTEN:$BAD,bind=127.0.0.1,reuseaddr,fork" \
  "SYSTEM:head -c 16 >/dev/null; printf 'HTTP/1.1 503 Service Unavailable\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\nbad\\n'" 2>/dev/null &
PIDS+=($!)

endpoint() { echo "{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $1 } } } }"; }
{
  front_config "$PORT" '- { match: { prefix: "/http/" }, route: { cluster: http_hc, prefix_rewrite: "/" } }
- { match: { prefix: "/tcp/" }, route: { cluster: tcp_hc, prefix_rewrite: "/" } }
- { match: { prefix: "/outlier/" }, route: { cluster: outlier, prefix_rewrite: "/" } }'
  echo "  clusters:"
  cat <<YAML
  - name: http_hc
    connect_timeout: 1s
    load_assignment: { cluster_name: http_hc, endpoints: [ { lb_endpoints: [ $(endpoint $A), $(endpoint $B) ] } ] }
    health_checks:
    - timeout: 1s
      interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 2
      http_health_check: { path: /health.txt }
  - name: tcp_hc
    connect_timeout: 1s
    load_assignment: { cluster_name: tcp_hc, endpoints: [ { lb_endpoints: [ $(endpoint $A), $(endpoint $DEAD) ] } ] }
    health_checks: [ { timeout: 1s, interval: 0.2s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]
  - name: outlier
    connect_timeout: 1s
    load_assignment: { cluster_name: outlier, endpoints: [ { lb_endpoints: [ $(endpoint $A), $(endpoint $BAD) ] } ] }
    outlier_detection: { consecutive_5xx: 3, interval: 0.2s, base_ejection_time: 2s, max_ejection_percent: 50 }
YAML
} > "$WORK/health.yaml"
start_sluice "$WORK/health.yaml"

clusters() { curl -s "http://127.0.0.1:$ADMIN_PORT/clusters"; }
flags() { clusters | sed -n "s/^$1::127.0.0.1:$2::health_flags:://p"; }
spread() {  # prefix count -> the distinct upstreams that answered
  for _ in $(seq "$2"); do curl -s --max-time 5 "http://127.0.0.1:$PORT/$1/"; done | sort | uniq -c
}

# --- HTTP health check ---------------------------------------------------------------------------
wait_until "both hosts healthy" bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/clusters | grep -c 'http_hc::.*::health_flags::healthy') == 2 ]]"
out=$(spread http 10)
[[ $out == *"upstream $A"* && $out == *"upstream $B"* ]] || fail "healthy hosts share the load: $out"
rm "$WORK/nginx-$B/html/health.txt"   # B now answers its health check with 404
wait_until "B marked unhealthy" bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/clusters | sed -n 's/^http_hc::127.0.0.1:$B::health_flags:://p') == /failed_active_hc ]]"
out=$(spread http 10)
[[ $out == *"10 upstream $A"* ]] || fail "an unhealthy host still got requests: $out"
[[ $(stat_of cluster.http_hc.membership_healthy) == 1 ]] || fail "membership_healthy: $(stat_of cluster.http_hc.membership_healthy)"
(( $(stat_of cluster.http_hc.health_check.failure) >= 2 )) || fail "health_check.failure"
clusters_json=$(curl -s "http://127.0.0.1:$ADMIN_PORT/clusters?format=json")
[[ $clusters_json == *'"failed_active_health_check":true'* ]] || fail "/clusters?format=json: $clusters_json"
echo ok > "$WORK/nginx-$B/html/health.txt"
wait_until "B healthy again" bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/clusters | sed -n 's/^http_hc::127.0.0.1:$B::health_flags:://p') == healthy ]]"
out=$(spread http 10)
[[ $out == *"upstream $B"* ]] || fail "B did not rejoin: $out"
pass "HTTP health check: a failing host leaves load balancing and rejoins after healthy_threshold"

# --- TCP health check ----------------------------------------------------------------------------
wait_until "the closed port marked unhealthy" bash -c "(( \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^cluster.tcp_hc.health_check.network_failure: //p') >= 1 ))"
[[ $(flags tcp_hc "$DEAD") == /failed_active_hc ]] || fail "dead host flags: $(flags tcp_hc "$DEAD")"
[[ $(flags tcp_hc "$A") == healthy ]] || fail "live host flags: $(flags tcp_hc "$A")"
out=$(spread tcp 10)
[[ $out == *"10 upstream $A"* ]] || fail "requests reached the closed port: $out"
pass "TCP health check: a closed port is kept out of load balancing"

# --- outlier detection ---------------------------------------------------------------------------
codes=$(for _ in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' --max-time 5 "http://127.0.0.1:$PORT/outlier/"; done)
[[ $codes == *503* ]] || fail "the bad host never answered: $codes"
[[ $(stat_of cluster.outlier.outlier_detection.ejections_enforced_consecutive_5xx) == 1 ]] ||
  fail "no ejection after 3 consecutive 5xx: $codes"
[[ $(flags outlier "$BAD") == /failed_outlier_check ]] || fail "flags: $(flags outlier "$BAD")"
# (Ten requests from one curl, well inside the 2 s ejection even on a loaded machine, where ten
# curl runs may take longer than that.)
urls=(); for _ in $(seq 10); do urls+=(-o /dev/null "http://127.0.0.1:$PORT/outlier/"); done
codes=$(curl -s --max-time 5 -w '%{http_code} ' "${urls[@]}")
[[ $codes != *503* ]] || fail "an ejected host still got requests: $codes"
[[ $(stat_of cluster.outlier.outlier_detection.ejections_active) == 1 ]] || fail "ejections_active"
wait_until "the ejection ends after base_ejection_time" bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/clusters | sed -n 's/^outlier::127.0.0.1:$BAD::health_flags:://p') == healthy ]]"
[[ $(stat_of cluster.outlier.outlier_detection.ejections_active) == 0 ]] || fail "ejections_active after"
pass "outlier detection: 3 consecutive 503s eject a host for base_ejection_time, then it returns"
