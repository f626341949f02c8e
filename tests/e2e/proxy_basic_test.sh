#!/usr/bin/env bash
# The real binary in front of a real nginx: routing, local replies, forwarding headers,
# keep-alive reuse, access log, admin endpoints and Prometheus output.
source "$(dirname "$0")/lib.sh"
UP=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
cat > "$WORK/sluice.yaml" <<YAML
node: { id: e2e-node, cluster: e2e }
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          use_remote_address: true
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $WORK/access.log
              log_format: { text_format_source: { inline_string: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST%\n" } }
          route_config:
            virtual_hosts:
            - name: api
              domains: ["api.example.com"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "api vhost\n" } }
            - name: default
              domains: ["*"]
              request_headers_to_add: [ { header: { key: x-added, value: yes } } ]
              routes:
              - match: { prefix: "/local" }
                direct_response: { status: 201, body: { inline_string: "local\n" } }
              - match: { prefix: "/gone" }
                redirect: { host_redirect: "new.example.com", response_code: PERMANENT_REDIRECT }
              - match: { prefix: "/rewrite/" }
                route: { cluster: web, prefix_rewrite: "/headers?from=" }
              - match: { prefix: "/dead" }
                route: { cluster: dead }
              - match: { path: "/only-exact" }
                route: { cluster: web, prefix_rewrite: "/headers" }
              - match: { prefix: "/" , headers: [ { name: x-block, present_match: true } ] }
                direct_response: { status: 403 }
              - match: { prefix: "/" }
                route: { cluster: web }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: web
    connect_timeout: 1s
    load_assignment:
      cluster_name: web
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
  - name: dead
    connect_timeout: 1s
    load_assignment:
      cluster_name: dead
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ]
YAML
start_sluice "$WORK/sluice.yaml"
B=http://127.0.0.1:$PORT

[[ $(curl -s "$B/") == "upstream $UP" ]] || fail "proxied body"
pass "proxies to nginx"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$B/local") == 201 ]] || fail "direct response status"
[[ $(curl -s "$B/local") == "local" ]] || fail "direct response body"
pass "direct response"
[[ $(curl -s -H 'Host: api.example.com' "$B/x") == "api vhost" ]] || fail "vhost by Host"
pass "virtual host by Host header"
loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$B/gone/x")
[[ $loc == "308 http://new.example.com/gone/x" ]] || fail "redirect: $loc"
pass "redirect"
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'x-block: 1' "$B/") == 403 ]] || fail "header match"
pass "header matcher"
h=$(curl -s "$B/headers")
[[ $h == *"xff=127.0.0.1 "* && $h == *"proto=http "* && $h == *"added=yes"* ]] || fail "forwarding headers: $h"
[[ $h =~ rid=[0-9a-f]{8}-[0-9a-f]{4}-4 ]] || fail "x-request-id: $h"
pass "x-forwarded-for, x-forwarded-proto, x-request-id, request_headers_to_add"
h=$(curl -s "$B/rewrite/abc")
[[ $h == *"uri=/headers?from=abc"* ]] || fail "prefix_rewrite: $h"
pass "prefix_rewrite"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$B/only-exact?q=1") == 200 ]] || fail "path match ignores query"
pass "path match"
out=$(curl -s -w ' %{http_code}' "$B/dead")
[[ $out == *"reset reason: connection failure 503" ]] || fail "dead upstream: $out"
pass "503 on connect failure"
[[ $(curl -s -D - -o /dev/null "$B/" | tr -d '\r' | grep -i '^server:') == "server: envoy" ]] || fail "server header"
pass "server header"
# HTTP/1.0 without Host, HEAD, big body through.
[[ $(curl -s -0 -o /dev/null -w '%{http_code}' "$B/") == 200 ]] || fail "http/1.0"
[[ $(curl -s -I -o /dev/null -w '%{http_code}' "$B/") == 200 ]] || fail "HEAD"
[[ $(curl -s "$B/big" | wc -c) == 1048576 ]] || fail "1 MiB body"
pass "HTTP/1.0, HEAD, 1 MiB response"
len=$(head -c 300000 /dev/zero | curl -s --data-binary @- "$B/post")
[[ $len == "len=300000" ]] || fail "request body: $len"
len=$(head -c 300000 /dev/zero | curl -s -H 'Transfer-Encoding: chunked' --data-binary @- "$B/post")
[[ $len == "len=300000" ]] || fail "chunked request body: $len"
pass "request bodies (content-length and chunked)"

# Keep-alive: 50 requests over one client connection reuse upstream connections.
before=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | awk '/^cluster.web.upstream_cx_total:/{print $2}')
urls=(); for _ in $(seq 50); do urls+=("$B/"); done
curl -s -o /dev/null "${urls[@]}"
after=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | awk '/^cluster.web.upstream_cx_total:/{print $2}')
(( after - before <= 2 )) || fail "upstream connections not reused: $before -> $after"
pass "upstream keep-alive reuse ($((after - before)) new connections for 50 requests)"

# Admin.
[[ $(curl -s "http://127.0.0.1:$ADMIN_PORT/ready") == LIVE ]] || fail "/ready"
grep -q '"id":"e2e-node"' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/server_info")" || fail "/server_info"
grep -q 'BootstrapConfigDump' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump")" || fail "/config_dump"
grep -q "^web::127.0.0.1:$UP::health_flags::healthy" <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/clusters")" || fail "/clusters"
grep -q "^main::127.0.0.1:$PORT" <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/listeners")" || fail "/listeners"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/healthcheck/fail") == 405 ]] || fail "GET healthcheck/fail must be refused"
curl -s -X POST "http://127.0.0.1:$ADMIN_PORT/healthcheck/fail" > /dev/null
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/ready") == 503 ]] || fail "/ready after fail"
curl -s -X POST "http://127.0.0.1:$ADMIN_PORT/healthcheck/ok" > /dev/null
[[ $(curl -s "http://127.0.0.1:$ADMIN_PORT/ready") == LIVE ]] || fail "/ready after ok"
grep -q "sluice: info" <<<"$(curl -s -X POST "http://127.0.0.1:$ADMIN_PORT/logging?level=info")" || fail "/logging"
pass "admin endpoints"
prom=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")
grep -q '^envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"} ' <<<"$prom" || fail "prometheus rq_total"
grep -q '^envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress_http"} ' <<<"$prom" || fail "prometheus rq_xx"
grep -q '^envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="web",le="+Inf"} ' <<<"$prom" || fail "prometheus histogram"
grep -q '^envoy_server_live 1' <<<"$prom" || fail "server_live"
# promtool parses the exposition, then lints. Envoy's names deliberately keep counters without a
# "_total" suffix and carry no HELP text (Envoy's own output draws the same naming lint notes); any
# other finding, and any parse error, fails the test.
check_prometheus "$prom" || fail "promtool check metrics"
if command -v promtool > /dev/null; then
  pass "promtool parses /stats/prometheus (only Envoy-naming lint notes)"
fi
pass "prometheus names"

# Access log lines reach the file (flushed within a second or so).
for _ in $(seq 40); do grep -q "GET /dead 503 UF 127.0.0.1:1" "$WORK/access.log" 2>/dev/null && break; sleep 0.1; done
grep -q "GET /dead 503 UF 127.0.0.1:1" "$WORK/access.log" || fail "access log: $(cat "$WORK/access.log" 2>/dev/null | head)"
grep -q "GET /local 201 - " "$WORK/access.log" || fail "access log local reply"
pass "access log"

# Graceful stop on SIGTERM.
kill -TERM "$SLUICE_PID"
for _ in $(seq 100); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SLUICE_PID" 2>/dev/null && fail "did not exit after SIGTERM"
pass "SIGTERM drains and exits"
echo "proxy_basic: all passed"
