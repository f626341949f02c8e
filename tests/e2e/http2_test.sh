#!/usr/bin/env bash
# HTTP/2 downstream with the real binary: curl, nghttp and h2load as clients (h2c with prior
# knowledge on an AUTO listener, h2 over TLS by ALPN, an HTTP2-only listener), nginx and small
# socat servers as upstreams. Covers multiplexing, request and response bodies, trailers (also
# added by a Wasm filter), back-pressure from a client that never opens its window, GOAWAY on
# drain, and hostile clients made with h2_frames.pl (PING/SETTINGS floods, rapid reset, empty DATA, PRIORITY and
# WINDOW_UPDATE floods, HPACK bombs, oversized headers), each bounded and counted under Envoy's
# stat names.
source "$(dirname "$0")/lib.sh"
command -v nghttp >/dev/null && command -v h2load >/dev/null ||
  fail "nghttp / h2load are not installed (make deps installs nghttp2-client)"
FRAMES=(perl "$SLUICE_SOURCE_DIR/tests/e2e/h2_frames.pl")

make_ca ca "/CN=Sluice Test CA"
make_cert server "/CN=localhost" "DNS:localhost,IP:127.0.0.1"

UP=$(free_port); PORT=$(free_port); TLS_PORT=$(free_port); H2_PORT=$(free_port)
TRAILERS=$(free_port); SLOW=$(free_port); ADMIN_PORT=$(free_port); PLUGIN_PORT=$(free_port)
start_nginx "$UP"
truncate -s 100M "$WORK/nginx-$UP/html/huge"  # sparse: costs no disk
# An HTTP/1 upstream whose chunked response ends with trailers, and one that answers in 2 s
# (each reads the request head first: closing on unread bytes would reset the connection).
cat > "$WORK/trailers.sh" <<'SH'
sed -u '/^\r$/q' >/dev/null
printf 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n'
printf '5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n'
SH
cat > "$WORK/slow.sh" <<'SH'
sed -u '/^\r$/q' >/dev/null
sleep 2
printf 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nslow\n'
SH
socat "TCP-LISTEN:$TRAILERS,bind=127.0.0.1,fork,reuseaddr" EXEC:"sh $WORK/trailers.sh" &
PIDS+=($!)
socat "TCP-LISTEN:$SLOW,bind=127.0.0.1,fork,reuseaddr" EXEC:"sh $WORK/slow.sh" &
PIDS+=($!)

hcm() {  # stat_prefix codec [http filters]
  cat <<YAML
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          codec_type: $2
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - { match: { prefix: "/direct" }, direct_response: { status: 200, body: { inline_string: "direct\n" } } }
              - { match: { prefix: "/trailers" }, route: { cluster: trailers } }
              - { match: { prefix: "/slow" }, route: { cluster: slow, timeout: 10s } }
              - { match: { prefix: "/" }, route: { cluster: nginx } }
          http_filters:
${3:-}
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
}
cluster() {  # name port [extra lines]
  cat <<YAML
  - name: $1
    connect_timeout: 1s
    load_assignment:
      cluster_name: $1
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ]
${3:-}
YAML
}
cat > "$WORK/h2.yaml" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: auto
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - filters:
$(hcm auto AUTO)
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: $TLS_PORT } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: $WORK/server.pem }
              private_key: { filename: $WORK/server.key }
            alpn_protocols: [h2, http/1.1]
      filters:
$(hcm tls AUTO)
  - name: h2only
    address: { socket_address: { address: 127.0.0.1, port_value: $H2_PORT } }
    filter_chains:
    - filters:
$(hcm h2only HTTP2)
  - name: plugin
    address: { socket_address: { address: 127.0.0.1, port_value: $PLUGIN_PORT } }
    filter_chains:
    - filters:
$(hcm plugin AUTO "$(sdk_filter trailers null trailers "")")
  clusters:
$(cluster nginx "$UP")
$(cluster slow "$SLOW")
$(cluster trailers "$TRAILERS" "    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http_protocol_options: { enable_trailers: true } }")
YAML
start_sluice "$WORK/h2.yaml"
stat_ge() { [[ $(stat_of "$1") -ge $2 ]]; }
stat_eq() { [[ $(stat_of "$1") == "$2" ]]; }
H2C=http://127.0.0.1:$PORT
H2S=https://localhost:$TLS_PORT
CURL_TLS=(curl -sS --cacert "$WORK/ca.pem" --resolve "localhost:$TLS_PORT:127.0.0.1")

# --- h2c with prior knowledge, and HTTP/1.1, on one AUTO listener ---------------------------
out=$(curl -sS -v --http2-prior-knowledge "$H2C/headers" 2>&1) || fail "h2c request: $out"
[[ $out == *"< HTTP/2 200"* ]] || fail "h2c prior knowledge: not HTTP/2: $out"
[[ $out == *"proto=http "* && $out == *"host=127.0.0.1"* ]] ||
  fail "the upstream sees the h2 request as HTTP/1.1 with Host from :authority: $out"
out=$(curl -sS -v "$H2C/headers" 2>&1) || fail "HTTP/1.1 on the AUTO listener: $out"
[[ $out == *"< HTTP/1.1 200"* ]] || fail "HTTP/1.1 on the AUTO listener: $out"
size=$(curl -sS --http2-prior-knowledge -o /dev/null -w '%{size_download}' "$H2C/big")
[[ $size == 1048576 ]] || fail "a 1 MB response over h2c arrived as $size bytes"
[[ $(stat_of http.auto.downstream_cx_http2_total) -ge 2 &&
   $(stat_of http.auto.downstream_rq_http1_total) -ge 1 ]] ||
  fail "per-protocol stats: $(curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | grep http.auto)"
pass "h2c with prior knowledge and HTTP/1.1 on one AUTO listener; 1 MB body over h2"

# --- multiplexing ---------------------------------------------------------------------------
out=$(timeout 20 nghttp -n -s -m 50 "$H2C/" 2>&1) || fail "nghttp, 50 concurrent streams: $out"
out=$(timeout 30 h2load -n 2000 -c 4 -m 20 "$H2C/" 2>&1) || fail "h2load: $out"
grep -q "2000 succeeded" <<<"$out" || fail "h2load, 4 connections x 20 streams: $out"
grep -q "status codes: 2000 2xx" <<<"$out" || fail "h2load status codes: $out"
pass "multiplexing: nghttp 50 streams on one connection, h2load 2000 requests over 4x20 streams"

# --- h2 over TLS by ALPN ----------------------------------------------------------------------
out=$("${CURL_TLS[@]}" -v --http2 "$H2S/headers" 2>&1) || fail "h2 over TLS: $out"
[[ $out == *"ALPN: server accepted h2"* || $out == *"ALPN, server accepted to use h2"* ]] ||
  fail "ALPN did not choose h2: $out"
[[ $out == *"< HTTP/2 200"* && $out == *"proto=https"* ]] || fail "h2 over TLS: $out"
out=$(timeout 20 nghttp -n -s -m 20 "$H2S/" 2>&1) || fail "nghttp over TLS: $out"
[[ $(stat_of http.tls.downstream_rq_http2_total) -ge 21 ]] || fail "h2 requests over TLS not counted"
pass "h2 over TLS chosen by ALPN (curl, nghttp with 20 streams); x-forwarded-proto https"

# --- bodies and trailers --------------------------------------------------------------------
head -c 5242880 /dev/urandom > "$WORK/body"
out=$(curl -sS --http2-prior-knowledge --data-binary @"$WORK/body" "$H2C/post") ||
  fail "POST over h2: $out"
[[ $out == "len=5242880" ]] || fail "a 5 MB h2 request body reached nginx as: $out"
out=$(timeout 10 nghttp -v "$H2C/trailers" 2>&1) || fail "trailers: $out"
grep -q "x-checksum: abc123" <<<"$out" || fail "the upstream's trailers did not reach the h2 client: $out"
grep -q "^hello" <<<"$out" || fail "body before the trailers: $out"
pass "a 5 MB request body streams to an HTTP/1 upstream; HTTP/1 chunked trailers become h2 trailers"

# A Wasm filter (the trailers example, null runtime) adds trailers to h2 responses: to the
# upstream's own trailers, and to a response that had none (which then ends with them).
out=$(timeout 10 nghttp -v "http://127.0.0.1:$PLUGIN_PORT/trailers" 2>&1) || fail "plugin trailers: $out"
grep -q "x-checksum: abc123" <<<"$out" && grep -q "x-response-bytes: 5" <<<"$out" &&
  grep -q "x-request-checksum: none" <<<"$out" || fail "plugin trailers added to the upstream's: $out"
out=$(timeout 10 nghttp -v "http://127.0.0.1:$PLUGIN_PORT/" 2>&1) || fail "plugin trailers: $out"
grep -q "x-response-bytes: " <<<"$out" || fail "plugin trailers on a response without any: $out"
pass "a Wasm filter sees and adds trailers over h2"

# --- an HTTP2-only listener -----------------------------------------------------------------
out=$(curl -sS --http2-prior-knowledge "http://127.0.0.1:$H2_PORT/direct") || fail "h2only: $out"
[[ $out == "direct" ]] || fail "h2only listener: $out"
out=$(curl -sS --max-time 5 "http://127.0.0.1:$H2_PORT/direct" 2>&1) &&
  fail "an HTTP/1.1 request on an HTTP2 listener was answered: $out"
wait_until "protocol error counted" stat_ge http.h2only.downstream_cx_protocol_error 1
pass "codec_type HTTP2: h2 served, an HTTP/1.1 request is a protocol error"

# --- a client that never opens its window: the upstream is paused, memory stays flat --------
rss() { awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status"; }
before=$(rss)
"${FRAMES[@]}" preface get 1 /huge sleep 6 | timeout 10 socat -u - "TCP:127.0.0.1:$PORT" &
stalled=$!
wait_until "the upstream paused" stat_ge cluster.nginx.upstream_flow_control_paused_reading_total 1
sleep 1
during=$(rss)
(( during - before < 40000 )) ||
  fail "sluice buffered a response its h2 client never asked for: RSS $before -> $during kB"
wait "$stalled" 2>/dev/null || true
pass "an h2 client that never opens its window pauses the upstream (RSS +$(( during - before )) kB of a 100 MB response)"

# Twenty such streams on one connection: each stops at its own limit, and the connection as a
# whole at 4x per_connection_buffer_limit_bytes (4 MiB here), not 20x.
paused=$(stat_of cluster.nginx.upstream_flow_control_paused_reading_total)
"${FRAMES[@]}" preface window 0 $(for i in $(seq 1 2 39); do echo "get $i /huge"; done) sleep 8 |
  timeout 12 socat -u - "TCP:127.0.0.1:$PORT" &
stalled=$!
wait_until "twenty upstreams paused" stat_ge cluster.nginx.upstream_flow_control_paused_reading_total $(( paused + 20 ))
sleep 1
held=$(stat_of http2.pending_send_data)
(( held > 0 && held < 8 * 1048576 )) ||
  fail "response bytes held for one connection's 20 stalled streams: $held (budget 4 MiB)"
kill "$stalled" 2>/dev/null; wait "$stalled" 2>/dev/null || true
pass "20 stalled streams on one connection hold $(( held / 1024 )) KiB in all (per-connection budget 4 MiB)"

# --- hostile clients --------------------------------------------------------------------------
# attack NAME STAT ARGS...: the frames go to a fresh connection from a client that never reads;
# the proxy must count STAT and close the connection.
attack() {
  local name=$1 stat=$2; shift 2
  local before; before=$(stat_of "$stat"); before=${before:-0}
  local closed; closed=$(stat_of http.auto.downstream_cx_destroy)
  "${FRAMES[@]}" preface "$@" | timeout 15 socat -u - "TCP:127.0.0.1:$PORT" 2>/dev/null || true
  wait_until "$name: $stat counted" stat_ge "$stat" $(( before + 1 ))
  wait_until "$name: connection closed" stat_ge http.auto.downstream_cx_destroy $(( closed + 1 ))
  pass "$name: counted as $stat ($(stat_of "$stat")), connection closed"
}
attack "PING flood" http2.outbound_control_flood ping 2000000
attack "SETTINGS flood" http2.outbound_control_flood settings 2000000
attack "rapid reset (CVE-2023-44487)" http2.too_many_premature_resets rapid_reset 1000 /
[[ $(stat_of http2.rx_reset) -ge 100 ]] || fail "http2.rx_reset: $(stat_of http2.rx_reset)"
attack "empty DATA frames" http2.inbound_empty_frames_flood post 1 /post empty_data 1 5
attack "PRIORITY flood" http2.inbound_priority_frames_flood priority 500
attack "WINDOW_UPDATE flood" http2.inbound_window_update_frames_flood window_update 50

# An HPACK bomb (4 kB header x 100 references = 400 kB decoded) and a 100 kB header: each resets
# only its stream; the next request on the same connection is served.
before=$(stat_of http2.header_overflow); served=$(stat_of http.auto.downstream_rq_http2_total)
out=$("${FRAMES[@]}" preface hpack_bomb 1 4000 100 big_header 3 100000 get 5 /direct sleep 1 |
  timeout 10 socat - "TCP:127.0.0.1:$PORT" | tr -c '[:print:]' '.')
[[ $(stat_of http2.header_overflow) -ge $(( before + 2 )) ]] ||
  fail "HPACK bomb / big header not refused: header_overflow $before -> $(stat_of http2.header_overflow)"
[[ $out == *direct* ]] || fail "the request after the refused ones was not served: $out"
pass "HPACK bomb and a 100 kB header reset their streams (http2.header_overflow); the connection goes on"

# Nothing leaked: every stream and connection is accounted for.
wait_until "streams all closed" stat_eq http2.streams_active 0
wait_until "no response bytes held" stat_eq http2.pending_send_data 0
wait_until "connections all closed" stat_eq http.auto.downstream_cx_active 0
curl -fsS --http2-prior-knowledge "$H2C/direct" >/dev/null || fail "sluice stopped serving after the attacks"
pass "after the attacks: no stream or connection left open, still serving"

# --- GOAWAY on drain: the stream in flight completes ------------------------------------------
timeout 15 nghttp -v "$H2C/slow" > "$WORK/drain.out" 2>&1 &
client=$!
sleep 0.5
kill -TERM "$SLUICE_PID"
wait "$client" || fail "the stream in flight during the drain failed: $(cat "$WORK/drain.out")"
grep -q "recv GOAWAY" "$WORK/drain.out" || fail "no GOAWAY on drain: $(cat "$WORK/drain.out")"
grep -q "^slow" "$WORK/drain.out" || fail "the slow response was cut: $(cat "$WORK/drain.out")"
pass "drain: GOAWAY sent, the stream in flight completes"
