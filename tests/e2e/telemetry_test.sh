#!/usr/bin/env bash
# The telemetry extension (extensions/telemetry/) in a two-proxy chain, as in a mesh:
#   curl -> client proxy (stats_outbound, V8, node "productpage") -> server proxy (stats_inbound,
#   null runtime, node "reviews") -> nginx.
# The proxies exchange Istio's peer metadata headers (stripped before the upstream and the client
# see them), and each reports Istio's standard metrics with the other side's workload labels.
# Also: gRPC status labels, TCP metrics (timer flush and close), a custom definition, dimensions,
# the series cap with its dropped-series counter, idle series eviction, and a configuration
# error that names the expression.
source "$(dirname "$0")/lib.sh"
require_extensions telemetry
: "${SLUICE_GRPC_DIR:=$SLUICE_BUILD_DIR/tests/grpc}"
GRPC_SERVER=$SLUICE_GRPC_DIR/grpc_echo_server
GRPC_CLIENT=$SLUICE_GRPC_DIR/grpc_echo_client
[[ -x $GRPC_SERVER && -x $GRPC_CLIENT ]] || fail "the gRPC test programs are not built (make deps installs libgrpc++-dev)"
GRPC=$(free_port)
UP=$(free_port); CLIENT=$(free_port); SERVER=$(free_port); TCP=$(free_port); ECHO=$(free_port)
CLIENT_ADMIN=$(free_port); SERVER_ADMIN=$(free_port)
start_nginx "$UP"
serve_tcp "$ECHO" "cat"

# telemetry_filter RUNTIME ROOT_ID CONFIG_JSON (an http_filters[] entry)
telemetry_filter() {
  cat <<YAML
          - name: istio.stats
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                root_id: $2
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '$3'
                vm_config:
                  runtime: envoy.wasm.runtime.$1
                  code: { local: { $(sdk_code "$1" telemetry) } }
YAML
}

# node ID WORKLOAD APP VERSION NAMESPACE: Envoy's bootstrap node block, as Istio writes it.
node() {
  cat <<YAML
node:
  id: sidecar~10.0.0.$RANDOM~$2-abc.$5~$5.svc.cluster.local
  cluster: $2.$5
  metadata:
    NAME: $2-abc
    NAMESPACE: $5
    WORKLOAD_NAME: $2
    CLUSTER_ID: Kubernetes
    MESH_ID: cluster.local
    LABELS: { app: $3, version: $4, "service.istio.io/canonical-name": $3 }
YAML
}

# The client side: Istio's cluster naming (outbound|port||host) gives destination_service.
CLIENT_STATS='{"definitions": [{"name": "client_errors", "value": "response.code == 404 ? 1 : 0"}], "metrics": [{"name": "requests_total", "dimensions": {"tenant": "has(request.headers[\"x-tenant\"]) ? request.headers[\"x-tenant\"] : \"none\"", "request_path": "request.url_path"}, "tags_to_remove": ["source_principal"]}], "max_series_per_metric": 3}'
REVIEWS="outbound|9080||reviews.bookinfo.svc.cluster.local"
cat > "$WORK/client.yaml" <<YAML
$(node c productpage-v1 productpage v1 bookinfo)
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $CLIENT_ADMIN } } }
static_resources:
  listeners:
$(sdk_listener outbound "$CLIENT" "$(telemetry_filter v8 stats_outbound "$CLIENT_STATS")" \
  "- { match: { prefix: \"/\" }, route: { cluster: \"$REVIEWS\" } }")
  clusters:
$(static_cluster "\"$REVIEWS\"" "$SERVER")
YAML

cat > "$WORK/server.yaml" <<YAML
$(node s reviews-v2 reviews v2 bookinfo)
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $SERVER_ADMIN } } }
static_resources:
  listeners:
$(sdk_listener inbound "$SERVER" "$(telemetry_filter null stats_inbound '{}')" \
  '- { match: { prefix: "/sluice.test.Echo/" }, route: { cluster: grpc } }
- { match: { prefix: "/" }, route: { cluster: nginx } }')
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $TCP } }
    filter_chains:
    - filters:
      - name: istio.stats
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            root_id: stats_inbound
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '{"tcp_reporting_duration": "1s"}'
            vm_config:
              runtime: envoy.wasm.runtime.v8
              code: { local: { $(sdk_code v8 telemetry) } }
$(tcp_proxy_filter tcp echo)
  clusters:
$(static_cluster nginx "$UP")
$(static_cluster echo "$ECHO")
$(h2_cluster grpc "$GRPC")
YAML

# await_prom ADMIN_PORT REGEX: waits until the exposition has a line matching REGEX. A request's
# metrics are recorded when its stream ends (on_log), which may come just after curl has the
# answer.
await_prom() {
  wait_until "a line matching $2 on admin port $1" \
    bash -c "curl -s http://127.0.0.1:$1/stats/prometheus | grep -qE -- '$2'"
}

ADMIN_PORT=$SERVER_ADMIN start_sluice "$WORK/server.yaml"
mv "$WORK/sluice.log" "$WORK/server.log"
# One worker on the client side: the series cap is per worker (each has its own VM and tables).
ADMIN_PORT=$CLIENT_ADMIN SLUICE_CONCURRENCY=1 start_sluice "$WORK/client.yaml"

HOST="reviews.bookinfo.svc.cluster.local:9080"
for i in 1 2 3; do
  # The tenant smuggles Istio's separators: it must stay one label value, not forge labels.
  out=$(curl -s -H "Host: $HOST" -H "x-tenant: acme;.;reporter=.=forged" "http://127.0.0.1:$CLIENT/headers")
done
# nginx's /headers echoes request headers: the exchange must not reach the application.
[[ $out != *peer-metadata* ]] || fail "the peer metadata reached the upstream: $out"
hdrs=$(curl -s -D - -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CLIENT/missing" | tr -d '\r')
[[ $hdrs == "HTTP/1.1 404"* ]] || fail "404 expected: $hdrs"
[[ $hdrs != *peer-metadata* ]] || fail "the peer metadata reached the client: $hdrs"
# A direct client of the server proxy (no mesh peer) gets no metadata back.
hdrs=$(curl -s -D - -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$SERVER/" | tr -d '\r')
[[ $hdrs == "HTTP/1.1 200"* && $hdrs != *peer-metadata* ]] || fail "a non-mesh client: $hdrs"
# Metadata that is not base64 of a Struct is ignored: the request goes on, its source unknown.
hdrs=$(curl -s -D - -o /dev/null -H "Host: $HOST" -H 'x-envoy-peer-metadata: %%not base64' \
  -H 'x-envoy-peer-metadata-id: forged' "http://127.0.0.1:$SERVER/" | tr -d '\r')
[[ $hdrs == "HTTP/1.1 200"* ]] || fail "garbage metadata: $hdrs"
pass "peer metadata is exchanged between the proxies and stripped before the upstream and client; garbage is ignored"

await_prom "$SERVER_ADMIN" '^istio_requests_total\{.*response_code="404".*\} 1$'
await_prom "$SERVER_ADMIN" '^istio_requests_total\{reporter="destination",source_workload="unknown",.*\} 2$'
await_prom "$CLIENT_ADMIN" '^istio_requests_total\{.*response_code="404".*\} 1$'
client_prom=$(curl -s "http://127.0.0.1:$CLIENT_ADMIN/stats/prometheus")
server_prom=$(curl -s "http://127.0.0.1:$SERVER_ADMIN/stats/prometheus")
echo "$client_prom" > "$WORK/client.prom"; echo "$server_prom" > "$WORK/server.prom"
# The server side (reporter destination): the source is the client's workload, from its metadata.
want='istio_requests_total{reporter="destination",source_workload="productpage-v1",source_workload_namespace="bookinfo",source_principal="unknown",source_app="productpage",source_version="v1",source_canonical_service="productpage",source_canonical_revision="v1",source_cluster="Kubernetes",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_principal="unknown",destination_app="reviews",destination_version="v2",destination_service="reviews.bookinfo.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="bookinfo",destination_canonical_service="reviews",destination_canonical_revision="v2",destination_cluster="Kubernetes",request_protocol="http",response_flags="-",connection_security_policy="none",response_code="200",grpc_response_status="unknown"} 3'
grep -qxF "$want" <<<"$server_prom" || fail "server istio_requests_total: $(grep '^istio_requests_total' <<<"$server_prom")"
grep -q '^istio_requests_total{reporter="destination",source_workload="unknown",.*response_code="200".*} 2$' <<<"$server_prom" ||
  fail "the non-mesh and garbage requests: $(grep '^istio_requests_total' <<<"$server_prom")"
grep -q '^istio_request_duration_milliseconds_bucket{reporter="destination",source_workload="productpage-v1",.*,le="0.5"}' <<<"$server_prom" ||
  fail "duration histogram: $(grep -m3 'istio_request_duration' <<<"$server_prom")"
grep -q '^istio_response_bytes_count{reporter="destination",source_workload="productpage-v1",.*response_code="404".*} 1$' <<<"$server_prom" ||
  fail "response bytes histogram: $(grep 'istio_response_bytes_count' <<<"$server_prom")"
pass "the server proxy's metrics carry the client's workload labels (reporter=destination)"
# Telemetry reports at on_log and skips on_done: its streams start and end with one fused call
# each (sluice_functions.h), on both proxies' VMs, whichever runtime.
for admin in "$CLIENT_ADMIN" "$SERVER_ADMIN"; do
  grep -q '"fused_callbacks":\["sluice_on_stream_start","sluice_on_stream_end"\]' <<<"$(curl -s "http://127.0.0.1:$admin/wasm")" ||
    fail "/wasm on $admin: telemetry's fused callbacks: $(curl -s "http://127.0.0.1:$admin/wasm")"
done
pass "telemetry's streams take two fused calls (/wasm fused_callbacks)"

# The client side (reporter source): the destination is the server's workload, from the answer's
# metadata; source_principal was removed and the tenant and path dimensions added.
want_prefix='istio_requests_total{reporter="source",source_workload="productpage-v1",source_workload_namespace="bookinfo",source_app="productpage",source_version="v1",source_canonical_service="productpage",source_canonical_revision="v1",source_cluster="Kubernetes",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_principal="unknown",destination_app="reviews",destination_version="v2",destination_service="reviews.bookinfo.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="bookinfo",destination_canonical_service="reviews",destination_canonical_revision="v2",destination_cluster="Kubernetes",request_protocol="http",response_flags="-",connection_security_policy="unknown",response_code="200",grpc_response_status="unknown",tenant="acme;_;reporter=_=forged",request_path="/headers"} 3'
grep -qxF "$want_prefix" <<<"$client_prom" || fail "client istio_requests_total: $(grep '^istio_requests_total' <<<"$client_prom")"
grep -q '^istio_requests_total{reporter="source",.*response_code="404".*tenant="none",request_path="/missing"} 1$' <<<"$client_prom" ||
  fail "the 404 series: $(grep '^istio_requests_total' <<<"$client_prom")"
grep -q '^istio_client_errors{reporter="source",.*response_code="404".*} 1$' <<<"$client_prom" ||
  fail "the custom definition: $(grep 'client_errors' <<<"$client_prom")"
grep -q '^istio_request_bytes_count{reporter="source",source_workload="productpage-v1",source_workload_namespace="bookinfo",source_principal="unknown",' <<<"$client_prom" ||
  fail "request_bytes keeps the standard labels: $(grep 'istio_request_bytes_count' <<<"$client_prom")"
pass "the client proxy's metrics carry the server's workload labels (reporter=source), with dimensions (a value with separators forges nothing) and a definition"

# The series cap (3 per metric and worker): two more paths fit one more series, the next is dropped and
# counted.
for path in /a /b /c; do curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CLIENT$path"; done
await_prom "$CLIENT_ADMIN" '^istio_telemetry_series_dropped_total\{metric="istio_requests_total"\} 2$'
client_prom=$(curl -s "http://127.0.0.1:$CLIENT_ADMIN/stats/prometheus")
series=$(grep -c '^istio_requests_total{' <<<"$client_prom")
[[ $series == 3 ]] || fail "series cap: $series istio_requests_total series"
grep -q '^istio_telemetry_series_dropped_total{metric="istio_requests_total"} 2$' <<<"$client_prom" ||
  fail "dropped series counter: $(grep dropped <<<"$client_prom")"
check_prometheus "$client_prom" || fail "promtool refused the client's exposition"
check_prometheus "$server_prom" || fail "promtool refused the server's exposition"
pass "a per-metric series cap, with a counter of what it dropped; promtool accepts both expositions"

# TCP: bytes are reported on a timer while the connection is open, and at close.
exec 3<>"/dev/tcp/127.0.0.1/$TCP"
printf 'hello\n' >&3
read -r -t 3 line <&3 || fail "no echo through the TCP listener"
[[ $line == hello ]] || fail "echo: $line"
tcp_stat() { curl -s "http://127.0.0.1:$SERVER_ADMIN/stats/prometheus" | grep "^istio_tcp_$1{" || true; }
wait_until "a timer report while the connection is open" \
  bash -c "curl -s http://127.0.0.1:$SERVER_ADMIN/stats/prometheus | grep -q '^istio_tcp_received_bytes_total{reporter=\"destination\".*request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"none\"} 6$'"
[[ $(tcp_stat connections_closed_total) == *"} 0" ]] || fail "closed before the close: $(tcp_stat connections_closed_total)"
printf 'more\n' >&3
read -r -t 3 line <&3
exec 3>&-
wait_until "the close report" bash -c "curl -s http://127.0.0.1:$SERVER_ADMIN/stats/prometheus | grep -q '^istio_tcp_connections_closed_total{.*} 1$'"
[[ $(tcp_stat received_bytes_total) == *"} 11" && $(tcp_stat sent_bytes_total) == *"} 11" &&
   $(tcp_stat connections_opened_total) == *"} 1" ]] ||
  fail "TCP metrics: $(tcp_stat received_bytes_total) / $(tcp_stat sent_bytes_total) / $(tcp_stat connections_opened_total)"
[[ $(tcp_stat received_bytes_total) == *'destination_workload="reviews-v2"'* &&
   $(tcp_stat received_bytes_total) != *response_code* ]] || fail "TCP labels: $(tcp_stat received_bytes_total)"
pass "TCP metrics: opened, bytes both ways on the reporting timer and at close, closed"

# Stale series leave the plugin's table after rotation_interval, which frees room under the cap.
stop_sluice
sed 's/"max_series_per_metric": 3/"max_series_per_metric": 1, "rotation_interval": "2s"/' \
  "$WORK/client.yaml" > "$WORK/rotate.yaml"
mv "$WORK/sluice.log" "$WORK/client.log"
ADMIN_PORT=$CLIENT_ADMIN SLUICE_CONCURRENCY=1 start_sluice "$WORK/rotate.yaml"
dropped() {
  curl -s "http://127.0.0.1:$CLIENT_ADMIN/stats/prometheus" |
    sed -n 's/^istio_telemetry_series_dropped_total{metric="istio_requests_total"} //p'
}
curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CLIENT/x"
curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CLIENT/y"
await_prom "$CLIENT_ADMIN" '^istio_telemetry_series_dropped_total\{metric="istio_requests_total"\} 1$'
grep -q 'request_path="/y"' <<<"$(curl -s "http://127.0.0.1:$CLIENT_ADMIN/stats/prometheus")" &&
  fail "with a cap of 1, the second series was recorded"
sleep 4.5
curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$CLIENT/y"
await_prom "$CLIENT_ADMIN" '^istio_requests_total\{.*request_path="/y"\} 1$'
[[ $(dropped) == 1 ]] || fail "the idle series was not evicted: $(dropped) dropped"

# The same with the default metrics, where a known kind of request finds its series through a
# shortcut: evicting a series must take the shortcuts to it along (V8 here).
mv "$WORK/sluice.log" "$WORK/rotate.log"
SHORT=$(free_port); SHORT_ADMIN=$(free_port)
cat > "$WORK/short.yaml" <<YAML
$(node s reviews-v2 reviews v2 bookinfo)
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $SHORT_ADMIN } } }
static_resources:
  listeners:
$(sdk_listener inbound "$SHORT" "$(telemetry_filter v8 stats_inbound '{"max_series_per_metric": 1, "rotation_interval": "2s"}')" \
  '- { match: { prefix: "/" }, route: { cluster: nginx } }')
  clusters:
$(static_cluster nginx "$UP")
YAML
ADMIN_PORT=$SHORT_ADMIN SLUICE_CONCURRENCY=1 start_sluice "$WORK/short.yaml"
short_prom() { curl -s "http://127.0.0.1:$SHORT_ADMIN/stats/prometheus"; }
# (The cluster name is not Istio's, so the Host header names destination_service.)
to() { curl -s -o /dev/null -H "Host: $1.example" "http://127.0.0.1:$SHORT/"; }
to a; to a  # the second through its shortcut
await_prom "$SHORT_ADMIN" '^istio_requests_total\{.*destination_service="a.example".*\} 2$'
sleep 4.5  # a is evicted, with its shortcut
to b; to a  # b takes the room; a is dropped, not counted through a stale shortcut
await_prom "$SHORT_ADMIN" '^istio_requests_total\{.*destination_service="b.example".*\} 1$'
await_prom "$SHORT_ADMIN" '^istio_telemetry_series_dropped_total\{metric="istio_requests_total"\} 1$'
grep -q '^istio_requests_total{.*destination_service="a.example".*} 2$' <<<"$(short_prom)" ||
  fail "a request of an evicted series was counted: $(short_prom | grep '^istio_requests_total')"
stop_sluice
pass "rotation_interval evicts idle series from the plugin's table, making room under the cap"

# gRPC: request_protocol "grpc", and grpc_response_status from the trailers or a trailers-only
# answer.
"$GRPC_SERVER" "$GRPC" > "$WORK/grpc-server.log" 2>&1 &
PIDS+=($!)
wait_until "the gRPC server listens" grep -q listening "$WORK/grpc-server.log"
out=$(timeout 20 "$GRPC_CLIENT" "127.0.0.1:$SERVER" unary hello 100 2>&1) || fail "gRPC call: $out"
out=$(timeout 20 "$GRPC_CLIENT" "127.0.0.1:$SERVER" fail 5 "no such thing" 2>&1) || fail "gRPC error: $out"
await_prom "$SERVER_ADMIN" '^istio_requests_total\{.*request_protocol="grpc",.*response_code="200",grpc_response_status="5"\} 1$'
await_prom "$SERVER_ADMIN" '^istio_requests_total\{.*request_protocol="grpc",.*response_code="200",grpc_response_status="0"\} 1$'
pass "gRPC: request_protocol=grpc, grpc_response_status from trailers and from a trailers-only answer"

# A configuration the subset cannot evaluate is refused, naming the expression.
stop_sluice
sed 's/"request.url_path"/"size(request.url_path)"/' "$WORK/client.yaml" > "$WORK/bad.yaml"
if timeout 20 "$SLUICE_BIN" -c "$WORK/bad.yaml" --concurrency 1 > "$WORK/bad.log" 2>&1; then
  fail "a configuration with size() started"
fi
grep -q "telemetry: metrics\[\] 'requests_total' dimension 'request_path': unsupported 'size' at byte 0 in 'size(request.url_path)'" "$WORK/bad.log" ||
  fail "the error does not name the expression: $(tail -5 "$WORK/bad.log")"
pass "an expression outside the supported CEL subset is refused with a clear error"
