#!/usr/bin/env bash
# Malformed and smuggling-shaped requests get Envoy's answers (400/431 and the connection closed),
# and the proxy keeps serving afterwards.
source "$(dirname "$0")/lib.sh"
PORT=$(free_port); ADMIN_PORT=$(free_port)
cat > "$WORK/sluice.yaml" <<YAML
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
          stat_prefix: edge
          max_request_headers_kb: 8
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "fine\n" } } } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
start_sluice "$WORK/sluice.yaml"

expect_status() {  # name expected-status raw-request
  local reply
  reply=$(printf "%b" "$3" | raw_request "$PORT")
  local first=${reply%%$'\r'*}
  [[ $first == "HTTP/1.1 $2 "* ]] || fail "$1: expected $2, got '${first}'"
  if [[ $2 != 200 ]]; then
    grep -qi '^connection: close' <<<"$reply" || fail "$1: connection not closed"
  fi
  pass "$1 -> $2"
}

expect_status "valid request" 200 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
expect_status "Content-Length with Transfer-Encoding" 400 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
expect_status "duplicate Content-Length" 400 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'
expect_status "obs-fold header line" 400 'GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n'
expect_status "bare LF line ending" 400 'GET / HTTP/1.1\nHost: a\n\n'
# A bad chunk size after the headers: the direct response may already be out (as in Envoy), but
# the connection must close and nothing after the bad chunk may be read as a request.
reply=$(printf 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n' | raw_request "$PORT")
[[ $(grep -c '^HTTP/1.1 ' <<<"$reply") == 1 ]] || fail "invalid chunk size: $reply"
pass "invalid chunk size closes the connection; nothing smuggled"
expect_status "unknown transfer coding" 501 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc'
expect_status "missing Host on HTTP/1.1" 400 'GET / HTTP/1.1\r\n\r\n'
expect_status "garbage request line" 400 'HELLO\r\n\r\n'
big=$(head -c 9000 /dev/zero | tr '\0' 'a')
expect_status "headers over max_request_headers_kb" 431 "GET / HTTP/1.1\r\nHost: a\r\nX-Big: $big\r\n\r\n"
many=""; for i in $(seq 101); do many+="X-H$i: v\r\n"; done
expect_status "more than 100 headers" 431 "GET / HTTP/1.1\r\nHost: a\r\n${many}\r\n"

# Pipelined requests are answered in order on one connection.
reply=$(printf 'GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' | raw_request "$PORT")
[[ $(grep -c '^HTTP/1.1 200' <<<"$reply") == 3 ]] || fail "pipelining: $reply"
pass "three pipelined requests answered"

# Slowloris: clients that trickle headers do not block others.
for i in $(seq 20); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'GET / HTTP/1.1\r\nHost: a\r\n' >&3; sleep 5) &
  PIDS+=($!)
done
sleep 0.3
[[ $(curl -s -m 5 "http://127.0.0.1:$PORT/") == fine ]] || fail "served during slowloris"
pass "served while 20 slow clients hold connections"

errors=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | awk '/^http.edge.downstream_cx_protocol_error:/{print $2}')
(( errors >= 8 )) || fail "protocol errors counted: $errors"
pass "downstream_cx_protocol_error counted ($errors)"
echo "malformed_requests: all passed"
