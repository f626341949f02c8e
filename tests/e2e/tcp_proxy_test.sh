#!/usr/bin/env bash
# envoy.filters.network.tcp_proxy with the real binary: HTTP bytes through it to nginx, a
# half-close passed on (socat's client sends, shuts down its side, then reads the reply),
# 10 MB echoed intact, back-pressure when the client stops reading (memory stays bounded),
# the idle timeout, weighted clusters, no healthy host, TLS termination in front of it, its
# access log, and Envoy's tcp.<stat_prefix>.* stats.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || fail "socat is not installed (make deps)"

NGINX=$(free_port); ECHO=$(free_port); WC=$(free_port); BLUE=$(free_port); GREEN=$(free_port)
FLOOD=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$NGINX"
serve_tcp "$ECHO" cat
serve_tcp "$WC" "wc -c"
serve_tcp "$BLUE" "echo blue"
serve_tcp "$GREEN" "echo green"
serve_tcp "$FLOOD" "head -c 104857600 /dev/zero"

listener() {  # name port tcp_proxy-config-lines
  cat <<YAML
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $1
$3
YAML
}
cluster() {  # name port (none: no endpoints)
  if [[ $2 == none ]]; then
    echo "  - { name: $1, connect_timeout: 1s, load_assignment: { cluster_name: $1 } }"
  else
    echo "  - { name: $1, connect_timeout: 1s, per_connection_buffer_limit_bytes: 65536, load_assignment: { cluster_name: $1, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ] } }"
  fi
}
P_HTTP=$PORT; P_ECHO=$(free_port); P_WC=$(free_port); P_W=$(free_port); P_FLOOD=$(free_port)
P_IDLE=$(free_port); P_NONE=$(free_port)
{
  echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }"
  echo "static_resources:"
  echo "  listeners:"
  listener http "$P_HTTP" "          cluster: nginx"
  listener echo "$P_ECHO" "          cluster: echo"
  ACCESS_LOG="          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $WORK/tcp_access.log
              log_format: { text_format_source: { inline_string: \"%UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %RESPONSE_CODE%\\n\" } }"
  listener wc "$P_WC" "          cluster: wc
$ACCESS_LOG"
  listener weighted "$P_W" "          weighted_clusters: { clusters: [ { name: blue, weight: 1 }, { name: green, weight: 1 } ] }"
  listener flood "$P_FLOOD" "          cluster: flood"
  listener idle "$P_IDLE" "          cluster: echo
          idle_timeout: 1s"
  listener none "$P_NONE" "          cluster: empty
$ACCESS_LOG"
  echo "  clusters:"
  cluster nginx "$NGINX"; cluster echo "$ECHO"; cluster wc "$WC"; cluster blue "$BLUE"
  cluster green "$GREEN"; cluster flood "$FLOOD"; cluster empty none
} > "$WORK/tcp.yaml"
start_sluice "$WORK/tcp.yaml"

# HTTP through the TCP proxy (keep-alive: two requests on one connection).
out=$(curl -sS --max-time 5 "http://127.0.0.1:$P_HTTP/" "http://127.0.0.1:$P_HTTP/")
[[ $out == "upstream $NGINX"$'\n'"upstream $NGINX" ]] || fail "HTTP through tcp_proxy: $out"
[[ $(stat_of tcp.http.downstream_cx_total) == 1 ]] || fail "downstream_cx_total: $(stat_of tcp.http.downstream_cx_total)"
(( $(stat_of tcp.http.downstream_cx_rx_bytes_total) > 100 )) || fail "rx bytes"
(( $(stat_of tcp.http.downstream_cx_tx_bytes_total) > 100 )) || fail "tx bytes"
pass "HTTP bytes both ways through tcp_proxy, counted in tcp.http.*"

# Half-close: the client's FIN reaches wc, whose count comes back after it.
out=$(printf 'hello world' | timeout 10 socat -t 5 - "TCP:127.0.0.1:$P_WC")
[[ $(echo $out) == 11 ]] || fail "half-close: the upstream answered '$out' after the client's FIN"
pass "half-close: the client's FIN is passed on and the reply still comes back"

# 10 MB echoed intact.
head -c 10485760 /dev/urandom > "$WORK/blob"
timeout 30 socat -t 5 -b 65536 - "TCP:127.0.0.1:$P_ECHO" < "$WORK/blob" > "$WORK/echoed" || true
[[ $(md5sum < "$WORK/blob") == $(md5sum < "$WORK/echoed") ]] ||
  fail "10 MB echo differs ($(stat -c %s "$WORK/echoed") bytes back)"
pass "10 MB echoed intact"

# Back-pressure: the upstream sends 100 MB to a client that reads nothing for 2 s; sluice stops
# reading the upstream instead of buffering it, then everything arrives.
rss() { awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status"; }
before=$(rss)
exec 3<>"/dev/tcp/127.0.0.1/$P_FLOOD"
sleep 2
during=$(rss)
(( during - before < 40000 )) || fail "sluice buffered a stalled client's data: RSS $before -> $during kB"
(( $(stat_of cluster.flood.upstream_flow_control_paused_reading_total) >= 1 )) ||
  fail "upstream reading never paused"
got=$(timeout 30 cat <&3 | wc -c)
exec 3<&-
[[ $got == 104857600 ]] || fail "after back-pressure the client got $got bytes"
(( $(stat_of cluster.flood.upstream_flow_control_resumed_reading_total) >= 1 )) || fail "never resumed"
pass "a client that stops reading pauses the upstream (RSS +$(( during - before )) kB for 100 MB); all 100 MB arrive"

# Weighted clusters: both get connections.
seen=""
for _ in $(seq 30); do seen+=$(timeout 5 socat -t 2 - "TCP:127.0.0.1:$P_W" < /dev/null); done
[[ $seen == *blue* && $seen == *green* ]] || fail "weighted clusters: $seen"
pass "weighted_clusters spreads connections over both clusters"

# Idle timeout: a silent connection is closed after 1 s and counted.
start=$(date +%s%N)
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P_IDLE; cat <&3 > /dev/null"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
(( elapsed >= 900 && elapsed < 5000 )) || fail "idle connection closed after $elapsed ms"
[[ $(stat_of tcp.idle.idle_timeout) == 1 ]] || fail "idle_timeout stat: $(stat_of tcp.idle.idle_timeout)"
pass "idle_timeout closes a silent connection (${elapsed} ms) and counts it"

# No host: the connection is closed at once.
timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P_NONE; cat <&3 > /dev/null" || fail "no-host connection not closed"
[[ $(stat_of cluster.empty.upstream_cx_none_healthy) -ge 1 ]] || fail "upstream_cx_none_healthy"
pass "a cluster without hosts closes the connection (upstream_cx_none_healthy)"

# The access log: one line per connection, when it ends (the wc one, then the one with no host).
wait_until "two tcp_proxy access log lines" \
  bash -c "[[ \$(wc -l < '$WORK/tcp_access.log' 2>/dev/null) -ge 2 ]]"
grep -qx "wc 127.0.0.1:$WC 11 3 - 127.0.0.1 0" "$WORK/tcp_access.log" ||
  fail "access log line of the wc connection: $(cat "$WORK/tcp_access.log")"
grep -qx "empty - 0 0 UH 127.0.0.1 0" "$WORK/tcp_access.log" ||
  fail "access log line of the no-host connection: $(cat "$WORK/tcp_access.log")"
pass "tcp_proxy access_log: cluster, host, bytes each way and flags per connection"
stop_sluice

# TLS terminated in front of the TCP proxy: HTTPS from curl, plain HTTP to nginx.
(cd "$WORK" && openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.pem -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" 2>/dev/null)
cat > "$WORK/tls.yaml" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [ { certificate_chain: { filename: $WORK/tls.pem }, private_key: { filename: $WORK/tls.key } } ]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tls
          cluster: nginx
  clusters:
$(cluster nginx "$NGINX")
YAML
start_sluice "$WORK/tls.yaml"
out=$(curl -sS --max-time 5 --cacert "$WORK/tls.pem" --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/")
[[ $out == "upstream $NGINX" ]] || fail "HTTPS through a TLS-terminating tcp_proxy: $out"
pass "TLS terminated in front of tcp_proxy"
stop_sluice

# A config error: tcp_proxy needs a cluster.
cat > "$WORK/bad.yaml" <<YAML
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: x
          cluster: missing
YAML
"$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" > "$WORK/bad.log" 2>&1 && fail "unknown cluster validated"
grep -q "unknown cluster 'missing'" "$WORK/bad.log" || fail "message: $(cat "$WORK/bad.log")"
pass "tcp_proxy naming an unknown cluster is a config error"
