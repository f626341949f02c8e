#!/usr/bin/env bash
# envoy.filters.network.wasm through the real binary, on both runtimes, with the tcp_rewrite
# extension in front of tcp_proxy and of http_connection_manager: bytes rewritten both ways
# (also when a string arrives split over two reads: the plugin holds the partial line), the
# client's FIN passed through the filter, 1 MiB counted byte for byte, an HTTP request line
# rewritten before the connection manager parses it, a new connection held until an HTTP
# callout answers (let in on 200, closed otherwise), the close callbacks, and a config with a
# Wasm filter but no terminal filter refused.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || fail "socat is not installed (make deps)"
require_extensions tcp_rewrite

NGINX=$(free_port); ECHO=$(free_port); WC=$(free_port)
start_nginx "$NGINX"
serve_tcp "$ECHO" cat
serve_tcp "$WC" "wc -c"

# listener NAME PORT NETWORK_FILTER_YAML TERMINAL: TERMINAL is "tcp CLUSTER" or "http".
listener() {
  cat <<YAML
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
$3
YAML
  if [[ $4 == tcp* ]]; then
    cat <<YAML
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $1
          cluster: ${4#tcp }
YAML
  else
    cat <<YAML
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          route_config:
            virtual_hosts:
            - { name: all, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: nginx } } ] }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
  fi
}
cluster() {  # name port
  echo "  - { name: $1, connect_timeout: 1s, load_assignment: { cluster_name: $1, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ] } }"
}
# metric NAME: a plugin metric's value in /stats (0 when not defined yet).
metric() { local v; v=$(stat_of "$1"); echo "${v:-0}"; }

REWRITE='from = ping\nto = pong-pong\nupstream_from = pong\nupstream_to = PONG'
for rt in v8 null; do
  ADMIN_PORT=$(free_port); P_ECHO=$(free_port); P_WC=$(free_port); P_HTTP=$(free_port)
  P_COUNT=$(free_port); P_ALLOW=$(free_port); P_DENY=$(free_port)
  {
    echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }"
    echo "static_resources:"
    echo "  listeners:"
    listener echo "$P_ECHO" "$(sdk_network_filter rw_echo "$rt" tcp_rewrite "$REWRITE")" "tcp echo"
    listener wc "$P_WC" "$(sdk_network_filter rw_wc "$rt" tcp_rewrite "$REWRITE")" "tcp wc"
    listener http "$P_HTTP" \
      "$(sdk_network_filter rw_http "$rt" tcp_rewrite 'from = /old-path\nto = /headers')" http
    listener count "$P_COUNT" "$(sdk_network_filter rw_count "$rt" tcp_rewrite '')" "tcp echo"
    listener allow "$P_ALLOW" \
      "$(sdk_network_filter rw_allow "$rt" tcp_rewrite 'check_cluster = nginx\ncheck_path = /')" "tcp echo"
    listener deny "$P_DENY" \
      "$(sdk_network_filter rw_deny "$rt" tcp_rewrite 'check_cluster = nginx\ncheck_path = /status/no')" "tcp echo"
    echo "  clusters:"
    cluster nginx "$NGINX"; cluster echo "$ECHO"; cluster wc "$WC"
  } > "$WORK/net-$rt.yaml"
  start_sluice "$WORK/net-$rt.yaml"

  # Both directions rewritten: ping -> pong-pong on the way in, pong -> PONG on the way back.
  out=$(printf 'ping\n' | timeout 10 socat -t 2 - "TCP:127.0.0.1:$P_ECHO")
  [[ $out == "PONG-PONG" ]] || fail "$rt: echo through the rewriting filter gave '$out'"
  pass "$rt: bytes rewritten from the client and toward it"

  # A string split over two writes: the filter holds the partial line, then rewrites it whole.
  exec 3<>/dev/tcp/127.0.0.1/$P_ECHO
  printf 'pi' >&3; sleep 0.3; printf 'ng\n' >&3
  read -r -t 5 line <&3 || true
  exec 3>&-
  [[ $line == "PONG-PONG" ]] || fail "$rt: a split 'ping' came back as '$line'"
  pass "$rt: a partial line is held (StopIteration) until it is complete"

  # The client's FIN goes through the filter (end_of_stream) and wc's count comes back.
  out=$(printf 'ping\n' | timeout 10 socat -t 5 - "TCP:127.0.0.1:$P_WC")
  [[ $(echo $out) == 10 ]] || fail "$rt: wc counted '$out' bytes (want 10: 'pong-pong\\n')"
  pass "$rt: end of stream passes through the filter (half-close)"

  # 1 MiB through a counting-only filter: intact, and counted exactly once each way.
  head -c 1048576 /dev/urandom > "$WORK/blob"
  in0=$(metric tcp_rewrite.downstream_bytes); out0=$(metric tcp_rewrite.upstream_bytes)
  timeout 20 socat -t 5 -T 10 - "TCP:127.0.0.1:$P_COUNT" < "$WORK/blob" > "$WORK/blob.back"
  cmp -s "$WORK/blob" "$WORK/blob.back" || fail "$rt: 1 MiB through the filter came back altered"
  wait_until "$rt: 1 MiB counted each way" bash -c \
    "[[ \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^tcp_rewrite.downstream_bytes: //p') == $((in0 + 1048576)) &&
       \$(curl -s http://127.0.0.1:$ADMIN_PORT/stats | sed -n 's/^tcp_rewrite.upstream_bytes: //p') == $((out0 + 1048576)) ]]"
  pass "$rt: 1 MiB intact, counted byte for byte in both directions"

  # In front of the HTTP connection manager: the request line is rewritten before parsing.
  out=$(curl -sS --max-time 5 "http://127.0.0.1:$P_HTTP/old-path")
  [[ $out == *"uri=/headers"* ]] || fail "$rt: rewritten HTTP request reached nginx as: $out"
  pass "$rt: an HTTP request rewritten by a network filter before the connection manager"

  # A new connection held until the check callout answers: 200 lets it in, 503 closes it.
  out=$(printf 'hello\n' | timeout 10 socat -t 2 - "TCP:127.0.0.1:$P_ALLOW")
  [[ $out == hello ]] || fail "$rt: an allowed connection echoed '$out'"
  refused0=$(metric tcp_rewrite.refused)
  out=$(printf 'hello\n' | timeout 10 socat -t 2 - "TCP:127.0.0.1:$P_DENY" || true)
  [[ -z $out ]] || fail "$rt: a refused connection still echoed '$out'"
  [[ $(metric tcp_rewrite.refused) == $((refused0 + 1)) ]] || fail "$rt: refused counter"
  [[ $(stat_of tcp.deny.downstream_cx_total) == 0 ]] ||
    fail "$rt: tcp_proxy started for a refused connection"
  grep -q "tcp_rewrite: connection [0-9]* refused (check answered 503)" "$WORK/sluice.log" ||
    fail "$rt: the refusal is not logged"
  pass "$rt: proxy_on_new_connection holds a connection until a callout lets it in or closes it"

  # The close callbacks ran, with the peer that closed: tcp_proxy closes once both sides sent
  # their FIN (the proxy, as in Envoy); curl closes its HTTP connection itself (the client).
  grep -q "tcp_rewrite: connection [0-9]* closed by the proxy: 10 bytes in, 10 bytes out" \
    "$WORK/sluice.log" || fail "$rt: no close callback for the echo connection"
  grep -q "tcp_rewrite: connection [0-9]* closed by the client: [1-9][0-9]* bytes in" \
    "$WORK/sluice.log" || fail "$rt: no close callback for the HTTP connection"
  pass "$rt: proxy_on_downstream_connection_close reports the peer and the byte counts"
  kill -0 "$SLUICE_PID" || fail "$rt: sluice died"
  stop_sluice
done

# A hostile plugin (tests/wasm/network_hostile.wat, on V8) in front of tcp_proxy.
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
wat_filter() {  # name failure_policy
  wasm_network_filter "$1" v8 "filename: $SLUICE_TEST_WASM_DIR/network_hostile.wasm" "" "$2"
}
ADMIN_PORT=$(free_port); P_CLOSED=$(free_port); P_OPEN=$(free_port)
{
  echo "admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }"
  echo "static_resources:"
  echo "  listeners:"
  listener closed "$P_CLOSED" "$(wat_filter hostile_closed FAIL_CLOSED)" "tcp echo"
  listener open "$P_OPEN" "$(wat_filter hostile_open FAIL_OPEN)" "tcp echo"
  echo "  clusters:"
  cluster echo "$ECHO"
} > "$WORK/hostile.yaml"
SLUICE_CONCURRENCY=1 start_sluice "$WORK/hostile.yaml"  # one worker: one VM per plugin

echo_through() {  # port text: what comes back (empty when the connection was closed)
  printf '%s\n' "$2" | timeout 10 socat -t 2 - "TCP:127.0.0.1:$1" 2>/dev/null || true
}
[[ $(echo_through "$P_CLOSED" hello) == hello ]] || fail "hostile plugin: plain bytes"
[[ $(echo_through "$P_CLOSED" oob) == oob ]] ||
  fail "out-of-bounds out-params: the host did not answer InvalidMemoryAccess"
pass "out-of-bounds pointers from a network filter get InvalidMemoryAccess"
[[ -z $(echo_through "$P_CLOSED" close) ]] || fail "proxy_close_stream(Downstream): bytes passed"
pass "proxy_close_stream closes the connection before its bytes go on"

# A plugin that holds every byte: reading stops at the buffer limit, memory stays bounded, and
# other connections are served meanwhile.
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SLUICE_PID/status"; }
before=$(rss)
{ printf 'w'; head -c 67108864 /dev/zero; } | timeout 4 socat -u - "TCP:127.0.0.1:$P_CLOSED" &
holder=$!
sleep 3
grown=$(( $(rss) - before ))
(( grown < 32768 )) || fail "a held connection grew the proxy by ${grown} KiB (limit: the buffer)"
[[ $(echo_through "$P_CLOSED" hello) == hello ]] || fail "other connections stalled by a held one"
wait "$holder" 2>/dev/null || true
pass "held bytes are bounded by the buffer limit (${grown} KiB grown for 64 MiB sent)"

# A trap: FAIL_CLOSED closes the connection (and the next: the VM is gone), FAIL_OPEN lets the
# bytes through without the plugin from then on. The proxy stays up.
[[ -z $(echo_through "$P_CLOSED" trap) ]] || fail "trap under FAIL_CLOSED: bytes passed"
[[ -z $(echo_through "$P_CLOSED" hello) ]] || fail "FAIL_CLOSED after the trap: bytes passed"
grep -q "unreachable" "$WORK/sluice.log" || fail "the trap is not logged"
[[ $(echo_through "$P_OPEN" trap) == trap ]] || fail "trap under FAIL_OPEN: bytes did not pass"
[[ $(echo_through "$P_OPEN" wait) == wait ]] || fail "FAIL_OPEN after the trap: plugin still ran"
kill -0 "$SLUICE_PID" || fail "sluice died"
pass "a trapping network filter: FAIL_CLOSED closes, FAIL_OPEN passes, the proxy stays up"
stop_sluice

# A Wasm network filter needs a terminal filter after it.
cat > "$WORK/bad.yaml" <<YAML
static_resources:
  listeners:
  - name: bad
    address: { socket_address: { address: 127.0.0.1, port_value: $(free_port) } }
    filter_chains:
    - filters:
$(sdk_network_filter lonely null tcp_rewrite '')
YAML
if "$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" > "$WORK/bad.out" 2>&1; then
  fail "a chain of only a Wasm network filter was accepted"
fi
grep -q "must be followed by a terminal filter" "$WORK/bad.out" ||
  fail "unclear error: $(cat "$WORK/bad.out")"
pass "a Wasm network filter without a terminal filter is a config error"
