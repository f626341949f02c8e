#!/usr/bin/env bash
# TLS filter chains chosen by SNI (filter_chain_match.server_names, with Envoy's tls_inspector
# listener filter in the config), and certificates reloaded when their files change: new
# connections get the new certificate, a connection open across the reload keeps working, and a
# broken replacement is refused while the old certificate keeps serving. A listener may also
# have one plaintext chain beside its TLS ones.
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl is not installed (make deps)"

make_ca ca "/CN=Sluice Test CA"
make_cert api "/CN=api.test" "DNS:api.test"
make_cert wild "/CN=wild.test" "DNS:*.wild.test"
make_cert deep "/CN=deep.wild.test" "DNS:*.deep.wild.test"
make_cert fallback "/CN=fallback.test" "DNS:fallback.test"
make_cert api2 "/CN=api.test renewed" "DNS:api.test"

PORT=$(free_port); ADMIN_PORT=$(free_port)
chain() {  # server-names-yaml cert-name body
  cat <<YAML
    - filter_chain_match: { server_names: $1 }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: $WORK/$2.pem }
              private_key: { filename: $WORK/$2.key }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $2
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "$3\n" } } } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
}
write_config() {  # file with-default
  {
    cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: sni
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
    filter_chains:
YAML
    chain "[api.test]" api "api chain"
    chain '["*.wild.test"]' wild "wild chain"
    chain '["*.deep.wild.test"]' deep "deep chain"
    if [[ $2 == yes ]]; then chain "[]" fallback "default chain"; fi
  } > "$1"
}

get() {  # sni -> body (verifies the certificate for that name against the test CA)
  curl -sS --max-time 5 --cacert "$WORK/ca.pem" --resolve "$1:$PORT:127.0.0.1" "https://$1:$PORT/"
}
subject() {  # sni -> the subject of the certificate served
  timeout 5 openssl s_client -connect "127.0.0.1:$PORT" -servername "$1" < /dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null
}

# --- SNI picks the chain -------------------------------------------------------------------------
write_config "$WORK/sni.yaml" no
start_sluice "$WORK/sni.yaml"
[[ $(get api.test) == "api chain" ]] || fail "api.test: $(get api.test 2>&1)"
[[ $(get x.wild.test) == "wild chain" ]] || fail "x.wild.test: $(get x.wild.test 2>&1)"
# (A certificate's *.wild.test covers one label only, so curl is told not to check it here.)
body=$(curl -sSk --max-time 5 --resolve "a.b.wild.test:$PORT:127.0.0.1" "https://a.b.wild.test:$PORT/")
[[ $body == "wild chain" ]] || fail "a.b.wild.test (several labels under *.wild.test): $body"
[[ $(get x.deep.wild.test) == "deep chain" ]] || fail "x.deep.wild.test: the longest suffix wins"
[[ $(get API.TEST) == "api chain" ]] || fail "SNI is matched case-insensitively"
pass "SNI selects the filter chain: exact, wildcard, longest wildcard suffix"

# No chain for the name and no default chain: the handshake is refused and counted.
if get other.test >/dev/null 2>&1; then fail "a name no chain serves got an answer"; fi
wait_until "no_filter_chain_match counted" \
  bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^listener.127.0.0.1:$PORT.no_filter_chain_match: //p') -ge 1 ]]"
pass "an unknown server name with no default chain is refused (no_filter_chain_match)"
stop_sluice

# With a default chain (no server_names), unknown names and clients without SNI land there.
write_config "$WORK/sni-default.yaml" yes
start_sluice "$WORK/sni-default.yaml"
body=$(curl -sSk --max-time 5 --resolve "other.test:$PORT:127.0.0.1" "https://other.test:$PORT/")
[[ $body == "default chain" ]] || fail "unknown SNI on the default chain: $body"
body=$(curl -sSk --max-time 5 "https://127.0.0.1:$PORT/")  # an IP: curl sends no SNI
[[ $body == "default chain" ]] || fail "no SNI on the default chain: $body"
[[ $(get api.test) == "api chain" ]] || fail "api.test with a default chain present"
pass "unknown names and clients without SNI use the default chain"

# --- certificate reload --------------------------------------------------------------------------
[[ $(subject api.test) == *"CN = api.test"* ]] || fail "initial certificate: $(subject api.test)"
# A connection opened before the reload: s_client reads its request from a fifo.
mkfifo "$WORK/in"
timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -servername api.test -quiet \
  < "$WORK/in" > "$WORK/held.out" 2>/dev/null &
HELD=$!; PIDS+=($HELD)
exec 7> "$WORK/in"
sleep 0.5
# Replace the files the way tools do: write beside, then rename over.
cp "$WORK/api2.pem" "$WORK/api.pem.new" && mv "$WORK/api.pem.new" "$WORK/api.pem"
cp "$WORK/api2.key" "$WORK/api.key.new" && mv "$WORK/api.key.new" "$WORK/api.key"
wait_until "the renewed certificate served" bash -c "[[ \$(timeout 5 openssl s_client -connect 127.0.0.1:$PORT -servername api.test < /dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null) == *renewed* ]]"
[[ $(get api.test) == "api chain" ]] || fail "requests after the reload"
printf 'GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n' >&7
exec 7>&-
wait "$HELD" || true
grep -q "api chain" "$WORK/held.out" || fail "the connection opened before the reload: $(cat "$WORK/held.out")"
[[ $(stat_of "listener.127.0.0.1:$PORT.ssl.certificate_reload") -ge 1 ]] || fail "certificate_reload stat"
grep -q "TLS certificates reloaded" "$WORK/sluice.log" || fail "no reload line in the log"
pass "a renewed certificate is served without a restart; an open connection keeps working"

# A key that does not match: refused, logged, the current certificate keeps serving.
cp "$WORK/wild.key" "$WORK/api.key.new" && mv "$WORK/api.key.new" "$WORK/api.key"
wait_until "the failed reload counted" \
  bash -c "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^listener.127.0.0.1:$PORT.ssl.certificate_reload_failed: //p') -ge 1 ]]"
grep -q "do not load, keeping the current certificates" "$WORK/sluice.log" || fail "no error line"
[[ $(subject api.test) == *renewed* ]] || fail "after a bad reload: $(subject api.test)"
[[ $(get api.test) == "api chain" ]] || fail "serving after a bad reload"
pass "a mismatched key is refused at reload; the current certificate keeps serving"
stop_sluice

# --- config errors -------------------------------------------------------------------------------
write_config "$WORK/dup.yaml" no
sed -i 's/server_names: \["\*.wild.test"\]/server_names: [API.test]/' "$WORK/dup.yaml"
"$SLUICE_BIN" --mode validate -c "$WORK/dup.yaml" > "$WORK/bad.log" 2>&1 && fail "duplicate server name validated"
grep -q "server name 'api.test' is in more than one filter chain" "$WORK/bad.log" || fail "dup message: $(cat "$WORK/bad.log")"
pass "a server name claimed by two chains is a config error"

# --- TLS and plaintext on one listener -----------------------------------------------------------
# The first byte tells them apart (a TLS handshake record is 0x16): TLS goes to the SNI-chosen
# chain, anything else to the chain without a transport socket. A client that sends nothing is
# cut off after the handshake timeout.
make_cert mixed "/CN=api.test mixed" "DNS:api.test"  # api.key was broken on purpose above
plain_chain() {
  cat <<YAML
    - filter_chain_match: { transport_protocol: raw_buffer }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
          route_config:
            virtual_hosts:
            - { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "plaintext chain\n" } } } ] }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
}
{
  write_config /dev/stdout no | sed '/^    - filter_chain_match/,$d'
  chain "[api.test]" mixed "api chain" | sed 's/^      transport_socket:/      transport_socket_connect_timeout: 1s\n      transport_socket:/'
  plain_chain
} > "$WORK/mixed.yaml"
start_sluice "$WORK/mixed.yaml"
[[ $(get api.test) == "api chain" ]] || fail "TLS on a mixed listener: $(get api.test 2>&1)"
out=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/")
[[ $out == "plaintext chain" ]] || fail "plaintext on a mixed listener: $out"
out=$(curl -sS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$PORT/")
[[ $out == "plaintext chain" ]] || fail "h2c on a mixed listener: $out"
start=$(date +%s%N)
timeout 8 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT; cat <&3 > /dev/null" || fail "a silent client was never closed"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
(( elapsed >= 800 && elapsed < 5000 )) || fail "a silent client was closed after $elapsed ms (want ~1 s)"
pass "TLS and plaintext chains on one listener: TLS by SNI, plaintext (HTTP/1 and h2c) otherwise"
stop_sluice

{
  write_config /dev/stdout no | sed '/^    - filter_chain_match/,$d'
  chain "[api.test]" mixed "api chain"
  plain_chain
  plain_chain
} > "$WORK/two-plain.yaml"
"$SLUICE_BIN" --mode validate -c "$WORK/two-plain.yaml" > "$WORK/bad.log" 2>&1 && fail "two plaintext chains validated"
grep -q "more than one filter chain without TLS" "$WORK/bad.log" || fail "two plaintext chains: $(cat "$WORK/bad.log")"
sed 's/transport_protocol: raw_buffer/transport_protocol: tls/' "$WORK/mixed.yaml" > "$WORK/passthrough.yaml"
"$SLUICE_BIN" --mode validate -c "$WORK/passthrough.yaml" > "$WORK/bad.log" 2>&1 && fail "TLS passthrough validated"
grep -q "TLS passthrough is not supported" "$WORK/bad.log" || fail "passthrough: $(cat "$WORK/bad.log")"
pass "two plaintext chains, or transport_protocol tls without TLS, are config errors"
