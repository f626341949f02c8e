#!/usr/bin/env bash
# Downstream TLS with the real binary: certificates made here with the openssl CLI, curl and
# openssl s_client as clients, nginx as the upstream. Covers the handshake and HTTP over it, ALPN
# (the configured order: h2 first, http/1.1 for a client that offers only that), the version
# floor, session resumption, x-forwarded-proto, mutual TLS (with client SAN matching), a
# plain-text client on a TLS port, and bad certificates refused at load with their path.
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed (make deps)"

# A CA, a server certificate for localhost / 127.0.0.1, a client certificate, and a key that
# matches neither.
make_ca ca "/CN=Sluice Test CA"
make_cert server "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
make_cert client "/CN=test-client/O=Sluice" "URI:spiffe://sluice.test/client,DNS:client.test"
openssl genrsa -out "$WORK/other.key" 2048 2>/dev/null

UP=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

config() {  # file extra-common-tls-lines extra-context-lines
  cat > "$1" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: tls
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - transport_socket_connect_timeout: 1s
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: $WORK/server.pem }
              private_key: { filename: ${KEY:-$WORK/server.key} }
            alpn_protocols: [h2, http/1.1]
            tls_params: { tls_minimum_protocol_version: TLSv1_2 }
$2
$3
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, route: { cluster: nginx } } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: nginx
    connect_timeout: 1s
    load_assignment:
      cluster_name: nginx
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
YAML
}

# --- TLS termination ---------------------------------------------------------------------------
config "$WORK/tls.yaml" "" ""
"$SLUICE_BIN" -c "$WORK/tls.yaml" --concurrency 2 -l debug > "$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!; PIDS+=($SLUICE_PID)
wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
URL=https://localhost:$PORT
CURL=(curl -sS --cacert "$WORK/ca.pem" --resolve "localhost:$PORT:127.0.0.1")

out=$("${CURL[@]}" -v "$URL/headers" 2>&1) || fail "https request: $out"
[[ $out == *"proto=https"* ]] || fail "x-forwarded-proto https at the upstream: $out"
[[ $out == *"ALPN: server accepted h2"* || $out == *"ALPN, server accepted to use h2"* ]] ||
  fail "ALPN h2 (configured and offered first by curl): $out"
[[ $out == *"< HTTP/2 200"* ]] || fail "HTTP/2 over TLS: $out"
out=$("${CURL[@]}" -v --http1.1 "$URL/headers" 2>&1) || fail "https request over HTTP/1.1: $out"
[[ $out == *"ALPN: server accepted http/1.1"* || $out == *"ALPN, server accepted to use http/1.1"* ]] ||
  fail "ALPN http/1.1 (the client offered only that): $out"
[[ $out == *"proto=https"* ]] || fail "x-forwarded-proto https at the upstream: $out"
pass "HTTPS through sluice; ALPN chose h2 (listed first), or http/1.1 when that is all the client offers; upstream sees x-forwarded-proto: https"

# TLS 1.3 works, 1.1 is below the configured floor. s_client reads /dev/null so that it sends
# nothing and hangs up at once; its "New, <version>" line is printed for every handshake, while
# the "Protocol :" block of TLS 1.3 waits for a session ticket that may come after the hang-up.
timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -tls1_3 \
  -CAfile "$WORK/ca.pem" < /dev/null > "$WORK/s13.txt" 2>&1 || true
grep -q "^New, TLSv1.3" "$WORK/s13.txt" || fail "TLS 1.3 handshake: $(head -30 "$WORK/s13.txt")"
if timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher "DEFAULT@SECLEVEL=0" < /dev/null > "$WORK/s11.txt" 2>&1 &&
   grep -q "^New, TLSv1" "$WORK/s11.txt"; then
  fail "a TLS 1.1 handshake succeeded under tls_minimum_protocol_version TLSv1_2"
fi
# SECLEVEL=0 lets the client really offer 1.1, so the refusal is sluice's alert, not the client's.
grep -q "alert protocol version" "$WORK/s11.txt" || fail "TLS 1.1 refusal: $(cat "$WORK/s11.txt")"
pass "TLS 1.3 accepted, TLS 1.1 refused (minimum TLSv1_2)"

# ALPN seen from s_client: the listener's order wins, and an unknown protocol gets no ALPN.
# s_client prints the ALPN line in its session summary, which a client that hangs up at once
# (stdin at EOF) may never print: it stays connected for a moment.
# On a loaded machine it may still miss the line: then it tries again (a few times).
alpn_of() {
  local line
  for _ in 1 2 3 4 5; do
    line=$(sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
      -alpn "$1" 2>/dev/null | grep -E "^(ALPN protocol|No ALPN)" | head -1)
    [[ -n $line ]] && break
  done
  echo "$line"
}
[[ $(alpn_of http/1.1,h2) == "ALPN protocol: h2"* ]] || fail "ALPN (client prefers http/1.1): $(alpn_of http/1.1,h2)"
[[ $(alpn_of http/1.1) == "ALPN protocol: http/1.1"* ]] || fail "ALPN http/1.1: $(alpn_of http/1.1)"
[[ $(alpn_of spdy/3) == "No ALPN negotiated"* ]] || fail "ALPN with no overlap: $(alpn_of spdy/3)"
pass "ALPN with s_client: the listener's order (h2 first), http/1.1 alone, none for spdy/3"

# Session resumption (TLS 1.2 session ids here: the first handshake saves, the second reuses).
timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -sess_out "$WORK/sess" \
  -CAfile "$WORK/ca.pem" < /dev/null > /dev/null 2>&1 || true
timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -sess_in "$WORK/sess" \
  -CAfile "$WORK/ca.pem" < /dev/null > "$WORK/resume.txt" 2>&1 || true
grep -q "^Reused" "$WORK/resume.txt" || fail "session not resumed: $(grep -E 'New|Reused' "$WORK/resume.txt")"
wait_until "listener ssl.session_reused counted" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep -q 'ssl.session_reused: [1-9]'"
pass "TLS session resumption (counted in ssl.session_reused)"

# "Connection: close" ends with close_notify: OpenSSL 3 clients report a bare FIN as an error.
(printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; sleep 2) |
  timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -quiet -ign_eof > "$WORK/close.txt" 2>&1 || true
grep -q "upstream $UP" "$WORK/close.txt" || fail "no response before the close: $(cat "$WORK/close.txt")"
if grep -q "unexpected eof" "$WORK/close.txt"; then fail "closed without close_notify: $(cat "$WORK/close.txt")"; fi
pass "a closing TLS connection sends close_notify"

# Plain HTTP to the TLS port: no answer, the connection is dropped and counted.
before=$(stat_of "listener.127.0.0.1:$PORT.ssl.connection_error"); before=${before:-0}
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/" || true)
[[ $code == 000 ]] || fail "plain HTTP on the TLS port answered $code"
wait_until "ssl.connection_error counted" \
  bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^listener.127.0.0.1:$PORT.ssl.connection_error: //p') -gt $before ]]"
[[ $(stat_of "listener.127.0.0.1:$PORT.ssl.handshake") -ge 3 ]] || fail "ssl.handshake stat"
# The server keeps serving.
"${CURL[@]}" -o /dev/null "$URL/" || fail "request after a failed handshake"
pass "plain HTTP on a TLS port is dropped and counted in ssl.connection_error"

# A client that connects and never says hello is cut off after transport_socket_connect_timeout.
start=$(date +%s%N)
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat <&3 > /dev/null" || fail "a silent client was never cut off"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
(( elapsed >= 900 && elapsed < 5000 )) || fail "silent client cut off after $elapsed ms (want ~1000)"
pass "a client that never starts its handshake is cut off after transport_socket_connect_timeout (${elapsed} ms)"
stop_sluice

# --- mutual TLS ----------------------------------------------------------------------------------
config "$WORK/mtls.yaml" "            validation_context: { trusted_ca: { filename: $WORK/ca.pem } }" \
  "          require_client_certificate: true"
"$SLUICE_BIN" -c "$WORK/mtls.yaml" --concurrency 1 > "$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!; PIDS+=($SLUICE_PID)
wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
if "${CURL[@]}" -o /dev/null --max-time 5 "$URL/" 2>/dev/null; then
  fail "mTLS: a request without a client certificate was served"
fi
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' --cert "$WORK/client.pem" --key "$WORK/client.key" "$URL/")
[[ $code == 200 ]] || fail "mTLS: with a client certificate: $code"
pass "mutual TLS: refused without a client certificate, served with one"
stop_sluice

# Client certificate SANs: the client's URI SAN is required (served), then a SAN it lacks
# (refused in the handshake, counted in ssl.fail_verify_san).
san_config() {  # file uri
  config "$1" "            validation_context:
              trusted_ca: { filename: $WORK/ca.pem }
              match_typed_subject_alt_names: [ { san_type: URI, matcher: { exact: \"$2\" } } ]" \
    "          require_client_certificate: true"
}
san_config "$WORK/san-ok.yaml" "spiffe://sluice.test/client"
"$SLUICE_BIN" -c "$WORK/san-ok.yaml" --concurrency 1 > "$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!; PIDS+=($SLUICE_PID)
wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' --cert "$WORK/client.pem" --key "$WORK/client.key" "$URL/")
[[ $code == 200 ]] || fail "mTLS with a matching URI SAN: $code"
stop_sluice
san_config "$WORK/san-bad.yaml" "spiffe://sluice.test/someone-else"
"$SLUICE_BIN" -c "$WORK/san-bad.yaml" --concurrency 1 > "$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!; PIDS+=($SLUICE_PID)
wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
if "${CURL[@]}" -o /dev/null --max-time 5 --cert "$WORK/client.pem" --key "$WORK/client.key" "$URL/" 2>/dev/null; then
  fail "mTLS: a client certificate without the required SAN was served"
fi
wait_until "ssl.fail_verify_san counted" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep -q 'ssl.fail_verify_san: [1-9]'"
pass "client certificate SAN matching: the required URI SAN is served, another is refused (ssl.fail_verify_san)"
stop_sluice

# --- bad material is a config error with its path ------------------------------------------------
KEY=$WORK/other.key config "$WORK/badkey.yaml" "" ""
if "$SLUICE_BIN" --mode validate -c "$WORK/badkey.yaml" > "$WORK/bad.log" 2>&1; then
  fail "a key that does not match its certificate validated"
fi
grep -q "tls_certificates\[0\].*does not belong to the first certificate" "$WORK/bad.log" ||
  fail "bad key message: $(cat "$WORK/bad.log")"
echo "not a certificate" > "$WORK/junk.pem"
config "$WORK/badca.yaml" "            validation_context: { trusted_ca: { filename: $WORK/junk.pem } }" ""
"$SLUICE_BIN" --mode validate -c "$WORK/badca.yaml" > "$WORK/bad.log" 2>&1 && fail "junk CA validated"
grep -q "trusted_ca holds no PEM certificate" "$WORK/bad.log" || fail "bad CA message: $(cat "$WORK/bad.log")"
pass "a mismatched key and a junk CA are config errors naming their path"
