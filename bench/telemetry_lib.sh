# The telemetry extension's benchmark set-up, shared by bench/telemetry.sh (wall clock) and
# bench/instructions.sh (instructions counted): an upstream that echoes the peer metadata
# header, Istio's node blocks, sluice configurations with stats_inbound / stats_outbound, and
# the real header a client sidecar sends. Source after bench/lib.sh and bench_build.

TELEMETRY_WASM="$BUILD_DIR/extensions/telemetry.wasm"

# telemetry_upstream: nginx on $UP answering 17 bytes, and echoing the metadata header on
# /echo-metadata.
telemetry_upstream() {
  nginx_conf "$WORK/nginx.conf" 1 "server { listen 127.0.0.1:$UP;
    location / { return 200 'hello, benchmark\n'; }
    location = /echo-metadata { return 200 '\$http_x_envoy_peer_metadata_id \$http_x_envoy_peer_metadata\n'; } }"
  taskset -c "$WRK_CPUS" /usr/sbin/nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$UP/"
}

# telemetry_node NAME WORKLOAD APP VERSION: Istio's node block.
telemetry_node() {
  cat <<YAML
node:
  id: sidecar~10.0.0.1~$1.bench~bench.svc.cluster.local
  cluster: $2.bench
  metadata:
    NAME: $1
    NAMESPACE: bench
    WORKLOAD_NAME: $2
    CLUSTER_ID: Kubernetes
    MESH_ID: cluster.local
    SERVICE_ACCOUNT: $3
    ISTIO_VERSION: 1.24.0
    LABELS: { app: $3, version: $4, "service.istio.io/canonical-name": $3, "service.istio.io/canonical-revision": $4 }
YAML
}

# telemetry_config FILE ADMIN PORT ROOT_ID RUNTIME (RUNTIME "" = no filter)
telemetry_config() {
  local filters=""
  if [[ -n $5 ]]; then
    local code="filename: $TELEMETRY_WASM"
    [[ $5 == null ]] && code="inline_string: sluice.telemetry"
    filters="          - name: istio.stats
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                root_id: $4
                configuration: { \"@type\": type.googleapis.com/google.protobuf.StringValue, value: '{}' }
                vm_config: { runtime: envoy.wasm.runtime.$5, code: { local: { $code } } }"
  fi
  {
    if [[ $4 == stats_outbound ]]; then
      telemetry_node productpage-v1-6b746f74dc-9stvs productpage-v1 productpage v1
    else
      telemetry_node reviews-v2-7bf8c9648f-xcvd4 reviews-v2 reviews v2
    fi
    bench_proxy_yaml "$2" "$3" "outbound|9080||reviews.bench.svc.cluster.local" "$filters"
  } > "$1"
}

# telemetry_peer_headers: the header a client sidecar sends, from a sluice running
# stats_outbound (echoed by the upstream). Sets PEER_ID, PEER_METADATA and HEADERS (wrk's and
# curl's -H arguments).
telemetry_peer_headers() {
  local client client_admin client_pid
  port client; port client_admin
  telemetry_config "$WORK/client.yaml" "$client_admin" "$client" stats_outbound null
  "$SLUICE" -c "$WORK/client.yaml" --concurrency 1 -l warning &
  client_pid=$!
  PIDS+=($client_pid)
  wait_http "http://127.0.0.1:$client/"
  read -r PEER_ID PEER_METADATA < <(curl -fsS "http://127.0.0.1:$client/echo-metadata")
  stop_pid "$client_pid"
  [[ -n $PEER_METADATA ]] || { echo "bench: the outbound side sent no peer metadata" >&2; exit 1; }
  echo "bench: peer metadata header: ${#PEER_METADATA} bytes of base64 (id $PEER_ID)" >&2
  HEADERS=(-H "x-envoy-peer-metadata-id: $PEER_ID" -H "x-envoy-peer-metadata: $PEER_METADATA")
}
