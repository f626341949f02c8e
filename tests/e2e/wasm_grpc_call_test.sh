#!/usr/bin/env bash
# Proxy-Wasm gRPC callouts through the real binary, on both runtimes, against a real gRPC server
# (tests/grpc, libgrpc++) behind an HTTP/2 cluster: the grpc_check extension asks it about each
# request, unary (proxy_grpc_call) or server-streaming (proxy_grpc_stream, proxy_grpc_send with
# end of stream), and lets the request through or answers 403 with the gRPC status. Failures:
# an error status from the service, a dead cluster (Unavailable), a deadline (DeadlineExceeded),
# an unknown cluster (ParseFailure at the call: 503), and a client that leaves mid-call.
source "$(dirname "$0")/lib.sh"
require_extensions grpc_check
: "${SLUICE_GRPC_DIR:=$SLUICE_BUILD_DIR/tests/grpc}"
SERVER=$SLUICE_GRPC_DIR/grpc_echo_server
[[ -x $SERVER ]] || fail "the gRPC test server is not built (make deps installs libgrpc++-dev)"

UP=$(free_port); GRPC=$(free_port); DEAD=$(free_port)
start_nginx "$UP"
"$SERVER" "$GRPC" > "$WORK/grpc-server.log" 2>&1 &
PIDS+=($!)
wait_until "the gRPC server listens" grep -q listening "$WORK/grpc-server.log"

# The "direct" listener's only route answers directly: a request resumed by a callout's answer
# ends inside that resume (the filter must not touch itself afterwards).
for rt in v8 null; do
  UNARY=$(free_port); STREAM=$(free_port); DOWN=$(free_port); SLOW=$(free_port); NOCL=$(free_port)
  DIRECT=$(free_port)
  ADMIN_PORT=$(free_port)
  {
    sdk_bootstrap "$UP" "$(
      sdk_listener unary "$UNARY" "$(sdk_filter check "$rt" grpc_check "cluster = echo")"
      sdk_listener stream "$STREAM" "$(sdk_filter check "$rt" grpc_check "cluster = echo\nmethod = StreamEcho\nstream = true")"
      sdk_listener down "$DOWN" "$(sdk_filter check "$rt" grpc_check "cluster = dead")"
      sdk_listener slow "$SLOW" "$(sdk_filter check "$rt" grpc_check "cluster = echo\ntimeout_ms = 1\nmethod = StreamEcho")"
      sdk_listener nocluster "$NOCL" "$(sdk_filter check "$rt" grpc_check "cluster = no_such_cluster")"
      sdk_listener direct "$DIRECT" \
        "$(sdk_filter check "$rt" grpc_check "cluster = echo\nmethod = StreamEcho\nstream = true")" \
        '- { match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "direct\n" } } }'
    )"
    h2_cluster echo "$GRPC"
    h2_cluster dead "$DEAD"
  } > "$WORK/sluice-$rt.yaml"
  start_sluice "$WORK/sluice-$rt.yaml"

  # Unary: the reply's field 1 (the echoed path) comes back as x-grpc-check on the request.
  out=$(curl -s "http://127.0.0.1:$UNARY/headers")
  [[ $out == *"uri=/headers"*"grpc=/headers"* ]] || fail "$rt: unary call: $out"
  pass "$rt: a unary gRPC call answers before the request goes on"

  # The service's error status (and its message) reaches the plugin through proxy_get_status.
  out=$(curl -s -w ' %{http_code}' -H 'x-fail-code: 7' "http://127.0.0.1:$UNARY/headers")
  [[ $out == "grpc status 7: failed as asked: /headers"*" 403" ]] || fail "$rt: error status: $out"
  pass "$rt: a gRPC error status and message reach the plugin"

  # Server streaming: 5 replies, then OK; initial and trailing metadata were seen.
  out=$(curl -s -H 'x-count: 5' "http://127.0.0.1:$STREAM/headers")
  [[ $out == *"grpc=5 replies, "* ]] || fail "$rt: stream: $out"
  [[ $out =~ grpc=5\ replies,\ ([0-9]+)\ \+\ ([0-9]+)\ metadata ]] &&
    (( BASH_REMATCH[1] >= 2 && BASH_REMATCH[2] >= 1 )) || fail "$rt: stream metadata: $out"
  out=$(curl -s -H 'x-count: 0' "http://127.0.0.1:$STREAM/headers")
  [[ $out == *"grpc=0 replies, "* ]] || fail "$rt: empty stream: $out"
  pass "$rt: a gRPC stream delivers metadata, every message and its close"

  # Resumed into a direct response, which ends the request inside the resume.
  for i in 1 2 3; do
    out=$(curl -s -w ' %{http_code}' -H 'x-count: 2' "http://127.0.0.1:$DIRECT/")
    [[ $out == "direct"*" 200" ]] || fail "$rt: direct response after a stream: $out"
  done
  kill -0 "$SLUICE_PID" || fail "$rt: sluice died resuming into a direct response"
  pass "$rt: a request resumed into a direct response completes"

  # Many at once over the one multiplexed connection per worker.
  pids=()
  for i in $(seq 40); do
    curl -s -o "$WORK/many.$i" "http://127.0.0.1:$UNARY/headers?n=$i" & pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq 40); do
    grep -q "grpc=/headers?n=$i$" "$WORK/many.$i" || fail "$rt: concurrent call $i: $(cat "$WORK/many.$i")"
  done
  # Finished calls end their HTTP/2 streams normally: counted complete, never reset by us.
  [[ $(stat_of cluster.echo.upstream_rq_tx_reset) == 0 ]] ||
    fail "$rt: finished calls reset their streams: $(stat_of cluster.echo.upstream_rq_tx_reset)"
  (( $(stat_of cluster.echo.upstream_rq_completed) >= 44 )) ||
    fail "$rt: calls not counted complete: $(stat_of cluster.echo.upstream_rq_completed)"
  pass "$rt: 40 concurrent calls each get their own answer"

  # A cluster nobody listens on: Unavailable.
  out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$DOWN/headers")
  [[ $out == "grpc status 14: "*" 403" ]] || fail "$rt: dead cluster: $out"
  # A deadline too short for the answer: DeadlineExceeded (or the server's own verdict on it).
  out=$(curl -s -w ' %{http_code}' -H 'x-count: 100000' "http://127.0.0.1:$SLOW/headers")
  [[ $out == "grpc status 4: "*" 403" ]] || fail "$rt: deadline: $out"
  # An unknown cluster: the call itself fails (ParseFailure) and the plugin answers 503.
  out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$NOCL/headers")
  [[ $out == "grpc check unavailable"*" 503" ]] || fail "$rt: unknown cluster: $out"
  pass "$rt: dead cluster, deadline and unknown cluster give Unavailable, DeadlineExceeded, 503"

  # A client that leaves while its stream is open: the close finds no request to resume.
  curl -s -m 0.2 -H 'x-count: 2000000' "http://127.0.0.1:$STREAM/headers" > /dev/null || true
  out=$(curl -s -H 'x-count: 1' "http://127.0.0.1:$STREAM/headers")
  [[ $out == *"grpc=1 replies"* ]] || fail "$rt: after a client left: $out"
  kill -0 "$SLUICE_PID" || fail "$rt: sluice died"
  [[ $(stat_of cluster.echo.upstream_cx_http2_total) -ge 1 ]] || fail "$rt: no HTTP/2 connection to the gRPC cluster"
  pass "$rt: a client leaving mid-stream harms nothing"
  stop_sluice
done
