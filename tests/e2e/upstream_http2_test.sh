#!/usr/bin/env bash
# HTTP/2 to upstreams with the real binary: gRPC proxied to a gRPC server built from Debian's
# libgrpc++ (tests/grpc: unary with metadata both ways, a 3 MB message, an error status in a
# trailers-only reply, server and client streaming), nginx serving h2 over TLS (ALPN h2), and
# nginx serving h2c as a cluster with
# http2_protocol_options: HTTP/1.1 and h2 clients multiplexed onto one upstream connection, and
# streams nginx refuses after its GOAWAY (every 100 requests here) retried on a new connection.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_GRPC_DIR:=$SLUICE_BUILD_DIR/tests/grpc}"
SERVER=$SLUICE_GRPC_DIR/grpc_echo_server
CLIENT=$SLUICE_GRPC_DIR/grpc_echo_client
[[ -x $SERVER && -x $CLIENT ]] || fail "the gRPC test programs are not built (make deps installs libgrpc++-dev)"
command -v h2load >/dev/null || fail "h2load is missing (make deps installs nghttp2-client)"

GRPC=$(free_port); NGINX_H2=$(free_port); NGINX_H2S=$(free_port); PORT=$(free_port)
SILENT=$(free_port)
ADMIN_PORT=$(free_port)
make_ca ca "/CN=Sluice Test CA"
make_cert upstream "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
"$SERVER" "$GRPC" > "$WORK/grpc-server.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/h2up"
echo "over h2" > "$WORK/h2up/index.html"
cat > "$WORK/nginx-h2.conf" <<NGINX
daemon off;
worker_processes 1;
pid $WORK/nginx-h2.pid;
error_log $WORK/nginx-h2.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  keepalive_requests 100;
  server {
    listen 127.0.0.1:$NGINX_H2 http2;
    root $WORK/h2up;
    location /proto { default_type text/plain; return 200 "proto=\$server_protocol host=\$host\n"; }
  }
  server {
    listen 127.0.0.1:$NGINX_H2S ssl http2;
    ssl_certificate $WORK/upstream.pem; ssl_certificate_key $WORK/upstream.key;
    location / { default_type text/plain; return 200 "tls proto=\$server_protocol alpn=\$ssl_alpn_protocol\n"; }
  }
}
NGINX
/usr/sbin/nginx -c "$WORK/nginx-h2.conf" -e "$WORK/nginx-h2.err" &
PIDS+=($!)

# A server that accepts and never says a word: a TLS handshake to it never ends.
perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:'"$SILENT"'", Listen => 64, ReuseAddr => 1) or die;
  my @held; while (my $c = $s->accept) { push @held, $c }' &
PIDS+=($!)

front_config "$PORT" '- { match: { prefix: "/sluice.test.Echo/" }, route: { cluster: grpc, timeout: 30s } }
- { match: { prefix: "/stall" }, route: { cluster: stall } }
- { match: { prefix: "/tls" }, route: { cluster: nginx_h2_tls } }
- { match: { prefix: "/" }, route: { cluster: nginx_h2 } }' "$(h2_cluster grpc "$GRPC"; cat <<YAML
  - name: nginx_h2_tls
    connect_timeout: 1s
    http2_protocol_options: {}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context: { validation_context: { trusted_ca: { filename: $WORK/ca.pem } } }
    load_assignment:
      cluster_name: nginx_h2_tls
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $NGINX_H2S } } } } ] } ]
  - name: stall
    connect_timeout: 3s
    http2_protocol_options: {}
    circuit_breakers: { thresholds: [ { max_pending_requests: 2 } ] }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
    load_assignment:
      cluster_name: stall
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $SILENT } } } } ] } ]
  - name: nginx_h2
    connect_timeout: 1s
    http2_protocol_options: { initial_stream_window_size: 65535 }
    load_assignment:
      cluster_name: nginx_h2
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $NGINX_H2 } } } } ] } ]
YAML
)" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
wait_until "the gRPC server listens" grep -q listening "$WORK/grpc-server.log"
G=(timeout 20 "$CLIENT" "127.0.0.1:$PORT")
stat_ge() { [[ $(stat_of "$1") -ge $2 ]]; }

# --- gRPC ---------------------------------------------------------------------------------
out=$("${G[@]}" unary hello 1000 2>&1) || fail "unary gRPC call: $out"
[[ $out == *"reply hello 1000"* ]] || fail "unary reply: $out"
[[ $out == *"trailer x-test-seen through-the-proxy"* ]] ||
  fail "request metadata to the server, trailing metadata back: $out"
pass "gRPC unary call through sluice; metadata both ways"

out=$("${G[@]}" unary big 3000000 2>&1) || fail "3 MB gRPC message: $out"
[[ $out == *"reply big 3000000"* ]] || fail "3 MB gRPC message: $out"
pass "a 3 MB gRPC request (flow control across both HTTP/2 hops)"

out=$("${G[@]}" fail 5 "no such thing" 2>&1) || fail "error status: $out"
[[ $out == *"status 5 failed as asked: no such thing"* ]] || fail "grpc-status from a trailers-only reply: $out"
pass "a gRPC error (NOT_FOUND, trailers-only reply) reaches the client with its message"

out=$("${G[@]}" stream tick 1000 2>&1) || fail "server streaming: $out"
[[ $out == *"replies 1000 status 0"* ]] || fail "server streaming: $out"
out=$("${G[@]}" collect 200 10000 2>&1) || fail "client streaming: $out"
[[ $out == *"collected 200 2000000 status 0"* ]] || fail "client streaming: $out"
pass "gRPC streaming both ways (1000 replies; 200 messages of 10 kB)"

[[ $(stat_of cluster.grpc.upstream_cx_http2_total) -ge 1 ]] || fail "no HTTP/2 upstream connection counted"
[[ $(stat_of cluster.grpc.upstream_rq_200) -ge 5 ]] || fail "gRPC requests not counted: $(stat_of cluster.grpc.upstream_rq_200)"

# --- nginx h2c as a cluster ---------------------------------------------------------------------
out=$(curl -sS "http://127.0.0.1:$PORT/proto") || fail "HTTP/1.1 client to an h2 cluster: $out"
[[ $out == "proto=HTTP/2.0 host=127.0.0.1" ]] || fail "the upstream did not see HTTP/2: $out"
out=$(curl -sS --http2-prior-knowledge "http://127.0.0.1:$PORT/") || fail "h2 to h2: $out"
[[ $out == "over h2" ]] || fail "h2 client to an h2 cluster: $out"
pass "HTTP/1.1 and h2 clients to an h2c cluster (nginx)"

out=$(curl -sS "http://127.0.0.1:$PORT/tls") || fail "h2 over TLS upstream: $out"
[[ $out == "tls proto=HTTP/2.0 alpn=h2" ]] || fail "h2 over TLS to nginx (ALPN h2 offered): $out"
pass "HTTP/2 over TLS to an upstream, ALPN h2 offered for an HTTP/2 cluster"

before=$(stat_of cluster.nginx_h2.upstream_cx_http2_total)
out=$(timeout 60 h2load -n 1000 -c 4 -m 10 "http://127.0.0.1:$PORT/" 2>&1) || fail "h2load: $out"
grep -q "status codes: 1000 2xx" <<<"$out" || fail "requests lost when nginx closed its connections: $out"
after=$(stat_of cluster.nginx_h2.upstream_cx_http2_total)
(( after - before >= 5 )) || fail "nginx's GOAWAY every 100 requests should have made new connections: $before -> $after"
pass "1000 requests multiplexed upstream; streams refused after nginx's GOAWAY retried, none lost ($(( after - before )) connections)"

# max_pending_requests while the HTTP/2 connection is still being made (a TLS handshake that
# never ends): two requests wait for it, the third is refused at once as Envoy refuses it.
stalled=()
for i in 1 2; do
  curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PORT/stall" > "$WORK/stall.$i" &
  stalled+=($!)
done
wait_until "two requests pending" stat_ge cluster.stall.upstream_rq_pending_active 2
out=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/stall" | tr -d '\r')
[[ $out == "HTTP/1.1 503"* && $out == *"x-envoy-overloaded: true"* ]] || fail "third pending request: $out"
[[ $(stat_of cluster.stall.upstream_rq_pending_overflow) == 1 ]] || fail "pending overflow not counted"
wait "${stalled[@]}"  # until the connect timeout fails them
[[ $(cat "$WORK/stall.1" "$WORK/stall.2") == $'503\n503' ]] || fail "the waiting requests: $(cat "$WORK"/stall.*)"
[[ $(stat_of cluster.stall.upstream_rq_pending_active) == 0 ]] || fail "pending slots not released"
pass "max_pending_requests bounds requests waiting for an HTTP/2 connection (overflow: 503, x-envoy-overloaded)"
