#!/usr/bin/env bash
# Filters built with the public AssemblyScript SDK (@solo-io/proxy-runtime 0.1.8, assemblyscript
# 0.14.9, pinned in tests/assemblyscript/package-lock.json) run by the real binary on V8 in front
# of a real nginx: a configured header added both ways, a 403 local reply without a header (200
# with it), request headers/properties/clock/logging read through the SDK, and the configuration
# errors the SDK's quirks give (a root_id with no registered root context; an import of the 0.1.0
# proxy_clear_route_cache), and a network filter in front of tcp_proxy (bytes counted, a
# connection closed by the plugin, the close callback). The modules are compiled by tests/assemblyscript/build.sh into
# ${SLUICE_BUILD_DIR:-/tmp}/assemblyscript/ (rebuilt only when a source or the lock file changes).
source "$(dirname "$0")/lib.sh"
AS_DIR=$SLUICE_SOURCE_DIR/tests/assemblyscript
OUT=${SLUICE_BUILD_DIR:-/tmp}/assemblyscript
# Missing npm packages are a failure (not a skip): the build script says to run `make deps`.
"$AS_DIR/build.sh" "$OUT" || fail "building the AssemblyScript filters (run 'make deps' if the SDK is missing)"

UP=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

wasm_filter() {  # name root_id configuration module
  cat <<YAML
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $1
                root_id: $2
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: "$3"
                vm_config:
                  vm_id: $1
                  runtime: envoy.wasm.runtime.v8
                  code: { local: { filename: $OUT/$4.wasm } }
YAML
}

# config FILE PORT FILTERS...: one listener whose chain is the given filters (each "name root
# configuration module"), then the router.
config() {
  local file=$1 port=$2; shift 2
  {
    cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } }
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: $port } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config:
            virtual_hosts:
            - name: default
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: nginx }
          http_filters:
YAML
    for f in "$@"; do
      read -r name root cfg module <<<"$f"
      wasm_filter "$name" "$root" "$cfg" "$module"
    done
    cat <<YAML
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: nginx
    connect_timeout: 1s
    load_assignment:
      cluster_name: nginx
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
  - name: auth
    connect_timeout: 1s
    load_assignment:
      cluster_name: auth
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${AUTH_PORT:-$UP} } } } } ] } ]
YAML
  } > "$file"
}

# The deny filter first (as an auth filter would be), then add-header, then inspect.
config "$WORK/sluice.yaml" "$PORT" \
  "as_deny as_deny x-as-token=letmein deny" \
  "as_add_header as_add_header x-as-header=hello add_header" \
  "as_inspect as_inspect inspect-config inspect"
start_sluice "$WORK/sluice.yaml"
URL=http://127.0.0.1:$PORT
TOKEN=(-H "x-as-token: letmein")

# --- deny: 403 from the plugin without the header (or with a wrong one), 200 with it.
out=$(curl -sS -D - "$URL/headers")
[[ $out == "HTTP/1.1 403"* ]] || fail "no token: want 403: $out"
[[ $out == *"x-as-denied: missing"* && $out == *"denied by assemblyscript"* ]] ||
  fail "no token: the plugin's header and body: $out"
[[ $out != *"upstream"* && $out != *"xff="* ]] || fail "no token reached the upstream: $out"
out=$(curl -sS -D - -H "x-as-token: nope" "$URL/headers")
[[ $out == "HTTP/1.1 403"* && $out == *"x-as-denied: wrong"* ]] || fail "wrong token: $out"
grep -q "as_deny: missing x-as-token" "$WORK/sluice.log" || fail "deny's warn log line missing"
pass "deny: 403 local reply without the header or with a wrong value"

out=$(curl -sS -D - "${TOKEN[@]}" "$URL/")
[[ $out == "HTTP/1.1 200"* && $out == *"upstream $UP"* ]] || fail "with token: want 200: $out"
pass "deny: 200 with the header"

# --- add-header: response header from the configuration; the upstream sees the request header.
out=$(curl -sS -D - "${TOKEN[@]}" "$URL/headers")
[[ $out == "HTTP/1.1 200"* ]] || fail "add-header request: $out"
grep -qi '^x-as-header: hello' <<<"$out" || fail "response header from the configuration: $out"
[[ $out == *"wasm=as-hello"* ]] || fail "request header the upstream sees: $out"
grep -q "as_add_header configured: x-as-header=hello" "$WORK/sluice.log" || fail "on_configure log"
pass "add-header: x-as-header: hello on the response, x-from-wasm on the request"

# --- inspect: request headers, properties, clock, replace, logging.
out=$(curl -sS -D - "${TOKEN[@]}" -A "as-agent/1" -H "x-added: orig" "$URL/headers?q=1")
hdr() { grep -i "^$1:" <<<"$out" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
[[ $(hdr x-as-path) == "/headers?q=1" ]] || fail "request.path property: '$(hdr x-as-path)': $out"
[[ $(hdr x-as-method) == GET ]] || fail "request.method property: $out"
[[ $(hdr x-as-agent) == "as-agent/1" ]] || fail "request header value: $out"
n=$(hdr x-as-request-headers)
[[ $n =~ ^[0-9]+$ && $n -ge 6 ]] || fail "request header map pairs: count '$n': $out"
[[ $(hdr x-as-authority-seen) == yes ]] || fail "pseudo-headers in the pairs: $out"
[[ $(hdr x-as-root-id) == as_inspect && $(hdr x-as-plugin-name) == as_inspect ]] ||
  fail "plugin_root_id / plugin_name properties: $out"
[[ $(hdr x-as-upstream-status) == 200 ]] || fail ":status from the response map: $out"
[[ $(hdr x-as-missing-header) == "[]" ]] || fail "absent header: $out"
[[ $(hdr x-as-dotted-status) == 1 ]] || fail "dotted property path: want NotFound (1): $out"
[[ $(hdr x-as-clock) == sane ]] || fail "proxy_get_current_time_nanoseconds: $out"
[[ $out == *"added=as-replaced-orig"* ]] || fail "replaced request header at the upstream: $out"
grep -q "as_inspect configured: plugin_name=as_inspect plugin_root_id=as_inspect config=inspect-config" \
  "$WORK/sluice.log" || fail "inspect's on_configure log"
grep -q "as_inspect request GET /headers?q=1 headers=$n" "$WORK/sluice.log" || fail "info log line"
grep -q "as_inspect debug line" "$WORK/sluice.log" || fail "debug log line (sluice runs at -l debug)"
for _ in $(seq 40); do grep -q "as_inspect log /headers?q=1 code=200" "$WORK/sluice.log" && break; sleep 0.05; done
grep -q "as_inspect log /headers?q=1 code=200" "$WORK/sluice.log" || fail "response.code in on_log"
pass "inspect: headers, pairs, properties, clock, replace and log levels through the SDK"

# A few more requests on the same VMs (the SDK keeps per-context state in a map).
for i in 1 2 3 4 5; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "${TOKEN[@]}" "$URL/headers")
  [[ $code == 200 ]] || fail "request $i: $code"
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$URL/headers")
  [[ $code == 403 ]] || fail "denied request $i: $code"
done
! grep -q "critical" "$WORK/sluice.log" || fail "critical log line (SDK abort?)"
pass "repeated requests keep working"

# --- auth: the SDK's http_call to an authorization service, then continue or a local reply.
stop_sluice
AUTH_PORT=$UP
config "$WORK/auth.yaml" "$PORT" "as_auth as_auth auth auth"
start_sluice "$WORK/auth.yaml"
out=$(curl -sS -D - -H "Authorization: Bearer good" "$URL/headers")
[[ $out == "HTTP/1.1 200"* && $out == *"user=alice"* ]] || fail "auth: good token: $out"
out=$(curl -sS -D - -H "Authorization: Bearer bad" "$URL/headers")
[[ $out == "HTTP/1.1 403"* && $out == *"denied by the auth service"* ]] || fail "auth: bad token: $out"
out=$(curl -sS -D - "$URL/headers")
[[ $out == "HTTP/1.1 403"* ]] || fail "auth: no token: $out"
pass "auth: http_call to the auth cluster, 200 continues with its header, 403 otherwise"
# The service is down: no answer, 503 from the plugin.
stop_sluice
AUTH_PORT=$(free_port)
config "$WORK/auth-down.yaml" "$PORT" "as_auth as_auth auth auth"
start_sluice "$WORK/auth-down.yaml"
out=$(curl -sS -D - -H "Authorization: Bearer good" "$URL/headers")
[[ $out == "HTTP/1.1 503"* && $out == *"auth unavailable"* ]] || fail "auth: service down: $out"
grep -q "as_auth: no answer from the service" "$WORK/sluice.log" || fail "auth: warn log line"
pass "auth: an unreachable service answers 503"
AUTH_PORT=
! grep -q "critical" "$WORK/sluice.log" || fail "critical log line (SDK abort?)"

# --- config errors from the SDK's quirks; the proxy must refuse to start, with a clear message.
bad() {  # description yaml-file expected-substring...
  local what=$1 file=$2; shift 2
  if timeout 20 "$SLUICE_BIN" -c "$file" --concurrency 1 > "$WORK/bad.log" 2>&1; then
    fail "$what: started"
  fi
  for msg in "$@"; do
    grep -q -- "$msg" "$WORK/bad.log" || { cat "$WORK/bad.log" >&2; fail "$what: message '$msg'"; }
  done
  pass "config error: $what"
}
ADMIN_PORT=$(free_port)
# The SDK looks up the root context by plugin_root_id and aborts if none was registered.
config "$WORK/badroot.yaml" "$(free_port)" "as_add_header not_registered x add_header"
bad "root_id without a registered root context" "$WORK/badroot.yaml" \
  "Missing root context factory for root id: not_registered" "proc_exit(255)"
# A 0.2.0 module importing the 0.1.0-only proxy_clear_route_cache does not link.
config "$WORK/badimport.yaml" "$(free_port)" "as_crc as_clear_route_cache x clear_route_cache"
bad "0.2.0 module importing proxy_clear_route_cache" "$WORK/badimport.yaml" "proxy_clear_route_cache"

# --- a network filter (envoy.filters.network.wasm) in front of tcp_proxy: bytes counted both
# ways, a connection the filter closes (proxy_close_stream), the close callback's peer type.
command -v socat >/dev/null || fail "socat is not installed (make deps)"
ECHO=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
serve_tcp "$ECHO" cat
as_tcp=$(cat <<YAML
      - name: as_tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: as_tcp
            root_id: as_tcp
            # Not empty: the SDK's onConfigure reads a stale buffer for an empty configuration
            # (it passes the size as the size pointer) and traps, here as in Envoy.
            configuration: { "@type": type.googleapis.com/google.protobuf.StringValue, value: BLOCK }
            vm_config:
              runtime: envoy.wasm.runtime.v8
              code: { local: { filename: $OUT/tcp_count.wasm } }
YAML
)
tcp_bootstrap "$PORT" "$ECHO" "$as_tcp" > "$WORK/tcp.yaml"
start_sluice "$WORK/tcp.yaml"
out=$(printf 'hello tcp\n' | timeout 10 socat -t 2 - "TCP:127.0.0.1:$PORT")
[[ $out == "hello tcp" ]] || fail "as_tcp: echo through the AssemblyScript network filter: '$out'"
wait_until "as_tcp: 10 bytes counted each way" bash -c \
  "curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep -q '^as_tcp.downstream_bytes: 10\$' &&
   curl -s http://127.0.0.1:$ADMIN_PORT/stats | grep -q '^as_tcp.upstream_bytes: 10\$'"
out=$(printf 'BLOCK me\n' | timeout 10 socat -t 2 - "TCP:127.0.0.1:$PORT" || true)
[[ -z $out ]] || fail "as_tcp: a blocked connection echoed '$out'"
grep -q "as_tcp: blocked connection" "$WORK/sluice.log" || fail "as_tcp: no block log line"
# tcp_proxy closes after both FINs: the proxy (Local, 1) closed the echoed connection.
grep -q "as_tcp: connection [0-9]* closed (peer 1): 10 in, 10 out" "$WORK/sluice.log" ||
  fail "as_tcp: close callback"
! grep -q "critical" "$WORK/sluice.log" || fail "critical log line (SDK abort?)"
pass "network filter (AssemblyScript SDK): bytes counted, a connection closed, close callback"
