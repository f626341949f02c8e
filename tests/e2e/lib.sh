# Shared helpers for end-to-end tests: start real servers on free 127.0.0.1 ports, bounded in
# time, and stop them when the test exits.
set -euo pipefail
: "${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}"
: "${SLUICE_SOURCE_DIR:?set SLUICE_SOURCE_DIR}"
WORK=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user
PIDS=()
# KEEP_WORK=1 keeps $WORK (logs, configs) for a look afterwards; the servers stop either way.
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  release_ports
  if [[ -n ${KEEP_WORK:-} ]]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# For tests that bound the proxy's RSS: under AddressSanitizer freed memory waits in a quarantine
# (256 MiB by default) before it is reused, which a churn of VMs fills and RSS shows. A small one
# keeps the bound meaningful in a sanitizer build; other builds ignore ASAN_OPTIONS.
small_asan_quarantine() { export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"; }

# On failure, the ends of the logs most recently written (a test may run several proxies, each
# with its own log; the one that failed is usually the newest).
fail() {
  echo "FAIL: $*" >&2
  local log
  # shellcheck disable=SC2012  # names are ours: no newlines
  for log in $(ls -t "$WORK"/*.log 2>/dev/null | head -3); do
    echo "--- last lines of $log" >&2
    tail -20 "$log" >&2
  done
  exit 1
}
pass() { echo "ok: $*"; }

# A port nothing listens on and no socket uses, below the kernel's ephemeral range: a port in
# that range may be the local end of some connection (curl's, nginx's, a proxy's upstream
# connection), which nothing listens on but which still makes bind() fail.
# Never the same port twice while it is given out: tests take several before starting anything,
# and ctest runs tests side by side, so a port is claimed (an atomic mkdir in a directory every
# test shares) until the test that took it exits. free_port runs in a subshell ($(free_port)),
# so the ports this test took are listed in a file for release_ports.
PORT_CLAIMS=${TMPDIR:-/tmp}/sluice-e2e-ports
mkdir -p "$PORT_CLAIMS" 2>/dev/null || true
# Claims left by a test that was killed before its cleanup ran.
find "$PORT_CLAIMS" -mindepth 1 -maxdepth 1 -mmin +60 -exec rmdir {} + 2>/dev/null || true
free_port() {
  local p low=32768
  read -r low _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null &&
       [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]] &&
       mkdir "$PORT_CLAIMS/$p" 2>/dev/null; then
      echo "$p" >> "$WORK/ports-given"
      echo "$p"; return
    fi
  done
  fail "no free port"
}
release_ports() {
  local p
  [[ -f $WORK/ports-given ]] || return 0
  while read -r p; do rmdir "$PORT_CLAIMS/$p" 2>/dev/null || true; done < "$WORK/ports-given"
}

wait_http() {  # url
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  fail "$1 never answered"
}

# start_nginx PORT: a demo upstream answering /, /headers (echoes some request headers), /big, and
# /auth-check (an authorization service).
start_nginx() {
  local port=$1 dir=$WORK/nginx-$1
  mkdir -p "$dir/html"
  echo "upstream $port" > "$dir/html/index.html"
  head -c 1048576 /dev/zero | tr '\0' 'x' > "$dir/html/big"
  cat > "$dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    root $dir/html;
    location /headers { default_type text/plain;
      return 200 "xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto rid=\$http_x_request_id host=\$host uri=\$request_uri added=\$http_x_added wasm=\$http_x_from_wasm user=\$http_x_auth_user grpc=\$http_x_grpc_check\n"; }
    # An authorization service for callout tests: "Bearer good" passes, naming the user.
    location /auth-check {
      if (\$http_authorization = "Bearer good") { add_header X-Auth-User alice; return 200 ""; }
      return 403 "bad token\n";
    }
    location /status/ { return 503 "unavailable\n"; }
    # What claim headers a request carried (header_decode tests).
    location /claims { default_type text/plain;
      return 200 "sub=\$http_x_claim_sub iss=\$http_x_claim_iss roles=\$http_x_claim_roles admin=\$http_x_claim_admin n=\$http_x_claim_n nested=\$http_x_claim_nested name=\$http_x_claim_name user=\$http_x_id_sub\n"; }
    # What a request carried of headers a plugin may have hidden (sluice.wasm hiding tests).
    location /echo-secrets { default_type text/plain;
      return 200 "auth=\$http_authorization cookie=\$http_cookie xff=\$http_x_forwarded_for saw=\$http_x_probe_saw\n"; }
    location /post { client_max_body_size 10m; proxy_pass http://127.0.0.1:$port/echo-len; }
    location /echo-len { client_max_body_size 10m; default_type text/plain; return 200 "len=\$content_length\n"; }
  }
}
NGINX
  /usr/sbin/nginx -c "$dir/nginx.conf" -e "$dir/error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/"
}

# Test certificates in $WORK, made with the openssl CLI (RSA 2048, valid 2 days).
# make_ca NAME [SUBJECT]: a self-signed CA, $WORK/NAME.pem and NAME.key.
make_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/$1.key" -out "$WORK/$1.pem" -days 2 \
    -subj "${2:-/CN=$1}" 2>/dev/null || fail "openssl: cannot make CA $1"
}
# make_cert NAME SUBJECT SAN [CA]: a certificate signed by CA (default "ca") with subjectAltName
# SAN ("DNS:a.test,IP:127.0.0.1"), $WORK/NAME.pem and NAME.key.
make_cert() {
  local ca=${4:-ca}
  openssl req -newkey rsa:2048 -nodes -keyout "$WORK/$1.key" -out "$WORK/$1.csr" -subj "$2" \
    2>/dev/null || fail "openssl: cannot make a key for $1"
  printf 'subjectAltName=%s\n' "$3" > "$WORK/$1.ext"
  openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/$ca.pem" -CAkey "$WORK/$ca.key" \
    -CAcreateserial -out "$WORK/$1.pem" -days 2 -extfile "$WORK/$1.ext" 2>/dev/null ||
    fail "openssl: cannot sign $1"
}

# front_config PORT ROUTES [CLUSTERS]: a bootstrap with the admin on $ADMIN_PORT and one listener
# "front" on PORT whose connection manager (stat_prefix front, the router only) has one catch-all
# virtual host with ROUTES (route lines, each "- {...}" at any indentation: re-indented here),
# then "  clusters:" and CLUSTERS (cluster lines indented by 2) when given.
front_config() {
  cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: front
    address: { socket_address: { address: 127.0.0.1, port_value: $1 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
$(sed 's/^ */              /' <<<"$2")
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
  if [[ -n ${3:-} ]]; then
    echo "  clusters:"
    echo "$3"
  fi
}

# start_sluice CONFIG_FILE [extra args]: waits for the admin /ready given by $ADMIN_PORT. Two
# workers unless SLUICE_CONCURRENCY says otherwise.
start_sluice() {
  local cfg=$1; shift
  "$SLUICE_BIN" -c "$cfg" --concurrency "${SLUICE_CONCURRENCY:-2}" -l debug "$@" > "$WORK/sluice.log" 2>&1 &
  SLUICE_PID=$!
  PIDS+=($SLUICE_PID)
  wait_http "http://127.0.0.1:$ADMIN_PORT/ready"
}

# raw_request PORT: sends stdin verbatim over TCP and prints the reply (bounded by a timeout).
raw_request() {
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; cat >&3; timeout 2 cat <&3" || true
}

# ---- SDK extensions on either runtime (tests of the extensions in extensions/examples) --------

# wasm_http_filter NAME RUNTIME CODE CONFIG [VM_ID]: one http_filters[] entry (envoy.filters.http.wasm)
# on runtime envoy.wasm.runtime.RUNTIME; CODE is what goes in code.local ("filename: /x.wasm",
# "inline_string: sluice.x"). CONFIG lines are separated by \n (the YAML string escape).
wasm_http_filter() {
  cat <<YAML
          - name: $1
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $1
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: "$4"
                vm_config:
                  vm_id: "${5:-}"
                  runtime: envoy.wasm.runtime.$2
                  code: { local: { $3 } }
YAML
}

# remote_wasm_filter NAME REMOTE: an http_filters[] entry (V8) whose code is
# vm_config.code.remote, REMOTE its fields in flow style, e.g.
# 'http_uri: { uri: "oci://host/repo:tag", timeout: 5s }, sha256: ...'.
remote_wasm_filter() {
  wasm_http_filter "$1" v8 "@REMOTE@" "" | sed "s|code: { local: { @REMOTE@ } }|code: { remote: { $2 } }|"
}

# sdk_code RUNTIME EXTENSION: the code.local of an extension built with our SDK: its .wasm on V8
# (RUNTIME v8), its native build on null (RUNTIME null).
sdk_code() {
  if [[ $1 == v8 ]]; then
    echo "filename: $SLUICE_BUILD_DIR/extensions/$2.wasm"
  else
    echo "inline_string: sluice.$2"
  fi
}

# sdk_filter NAME RUNTIME EXTENSION CONFIG [VM_ID]: wasm_http_filter for an SDK extension.
sdk_filter() {
  wasm_http_filter "$1" "$2" "$(sdk_code "$2" "$3")" "$4" "${5:-}"
}

# wasm_network_filter NAME RUNTIME CODE CONFIG [FAILURE_POLICY]: a filter_chains[].filters[]
# entry (envoy.filters.network.wasm), indented to go before the terminal filter; CODE and
# CONFIG as for wasm_http_filter.
wasm_network_filter() {
  cat <<YAML
      - name: $1
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: $1
            failure_policy: ${5:-FAIL_CLOSED}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: "$4"
            vm_config:
              runtime: envoy.wasm.runtime.$2
              code: { local: { $3 } }
YAML
}

# sdk_network_filter NAME RUNTIME EXTENSION CONFIG: wasm_network_filter for an SDK extension.
sdk_network_filter() {
  wasm_network_filter "$1" "$2" "$(sdk_code "$2" "$3")" "$4"
}

# tcp_proxy_filter STAT_PREFIX CLUSTER: a tcp_proxy entry of filter_chains[].filters[] (indented
# to follow network filters); static_cluster NAME PORT: a one-line cluster of 127.0.0.1:PORT
# (indented for "  clusters:").
tcp_proxy_filter() {
  cat <<YAML
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $1
          cluster: $2
YAML
}

# tcp_bootstrap PORT ECHO_PORT FILTERS_YAML: the whole config: admin on $ADMIN_PORT and one
# listener "tcp" on 127.0.0.1:PORT whose network filters (FILTERS_YAML, entries indented for
# "    - filters:") run before a tcp_proxy to the cluster "echo" (127.0.0.1:ECHO_PORT).
tcp_bootstrap() {
  cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $1 } }
    filter_chains:
    - filters:
$3
$(tcp_proxy_filter tcp echo)
  clusters:
$(static_cluster echo "$2")
YAML
}
static_cluster() {
  echo "  - { name: $1, connect_timeout: 1s, load_assignment: { cluster_name: $1, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ] } }"
}

# serve_tcp PORT COMMAND: a socat server on 127.0.0.1:PORT running COMMAND per connection (stopped
# with the test), once it accepts connections.
serve_tcp() {
  socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "SYSTEM:$2" 2>/dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do (: > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  fail "socat on port $1 never listened"
}

# require_extensions NAME...: fails unless the build made these SDK extensions.
require_extensions() {
  : "${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR}"
  local m
  for m in "$@"; do
    [[ -f $SLUICE_BUILD_DIR/extensions/$m.wasm ]] || fail "$m.wasm is missing: build the extensions first"
  done
}

# check_prometheus TEXT: promtool (when installed) parses TEXT and finds nothing but the lint notes
# Envoy's and Istio's own naming draws (counters without "_total", no HELP text, Istio's
# istio_request_duration_milliseconds). True without promtool.
check_prometheus() {
  command -v promtool > /dev/null || return 0
  local findings others
  findings=$(promtool check metrics <<<"$1" 2>&1 || true)
  others=$(grep -vE 'should (not )?have "_total" suffix$|no help text$|should not contain abbreviated units$|use base unit "seconds" instead of "milliseconds"$' <<<"$findings" || true)
  [[ -z $others ]] || { echo "promtool check metrics: $others" >&2; return 1; }
}

# sdk_listener NAME PORT FILTERS_YAML [ROUTES]: a listener routing everything to the cluster
# "nginx" (or with ROUTES: route lines, each "- {...}", re-indented here), with FILTERS_YAML
# (sdk_filter output) before the router.
sdk_listener() {
  local routes=${4:-}
  [[ -n $routes ]] || routes='- { match: { prefix: "/" }, route: { cluster: nginx } }'
  cat <<YAML
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          route_config:
            virtual_hosts:
            - name: default
              domains: ["*"]
              routes:
$(sed 's/^ */              /' <<<"$routes")
          http_filters:
$3
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
YAML
}

# sdk_bootstrap UPSTREAM_PORT LISTENERS_YAML: the whole config (admin on $ADMIN_PORT).
sdk_bootstrap() {
  cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } } }
static_resources:
  listeners:
$2
  clusters:
  - name: nginx
    connect_timeout: 1s
    load_assignment:
      cluster_name: nginx
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $1 } } } } ] } ]
YAML
}

# h2_cluster NAME PORT: a cluster (indented for "  clusters:") of one 127.0.0.1 endpoint that
# speaks HTTP/2 without TLS, set the way Envoy's current docs do (explicit_http_config).
h2_cluster() {
  cat <<YAML
  - name: $1
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: $1
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } } } ] } ]
YAML
}

# stop_sluice: stops the sluice started last (SIGTERM, then waits for it).
stop_sluice() {
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
}

# stat_of NAME: the value of one stat in admin /stats ("" if absent).
stat_of() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/stats" | sed -n "s/^$1: //p"
}

# wait_until WHAT COMMAND...: polls COMMAND for up to 10 s; fails the test with WHAT if it never
# succeeds. For things that happen asynchronously (ticks, queue notifications), not for speed.
wait_until() {
  local what=$1; shift
  for _ in $(seq 200); do "$@" && return 0; sleep 0.05; done
  fail "$what (waited 10 s)"
}

# ---- hot reload ---------------------------------------------------------------------------------

# two_module_versions: $WORK/hello.wasm (filter_basic: response header "x-wasm: hello") and
# $WORK/hallo.wasm (the same with "hallo"), and $WORK/module.wasm, a copy of hello.wasm.
two_module_versions() {
  : "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
  command -v wat2wasm > /dev/null || fail "wat2wasm (wabt) is needed"
  cp "$SLUICE_TEST_WASM_DIR/filter_basic.wasm" "$WORK/hello.wasm"
  sed 's/(data (i32.const 32) "hello")/(data (i32.const 32) "hallo")/' \
    "$SLUICE_SOURCE_DIR/tests/wasm/filter_basic.wat" > "$WORK/hallo.wat"
  wat2wasm "$WORK/hallo.wat" -o "$WORK/hallo.wasm"
  cp "$WORK/hello.wasm" "$WORK/module.wasm"
}

# reloads: how many configuration reloads ended (accepted or rejected); await_reload N: waits
# (10 s at most) until more than N did.
reloads() {
  echo $(( $(stat_of sluice.config_reloads_total.accepted) + $(stat_of sluice.config_reloads_total.rejected) ))
}
await_reload() {
  for _ in $(seq 200); do (( $(reloads) > $1 )) && return 0; sleep 0.05; done
  fail "no reload after the change (waited 10 s)"
}

# ---- OCI registries -----------------------------------------------------------------------------

# start_registry PORT [TOKEN_PORT USER:PASSWORD]: Debian's docker-registry on 127.0.0.1:PORT,
# storing under $WORK/registry-PORT. With a token port: Bearer auth through a token service
# (registry_token_server.js) on that port that knows one user.
start_registry() {
  local port=$1 token_port=${2:-} dir=$WORK/registry-$1 auth=""
  command -v docker-registry > /dev/null || fail "docker-registry is needed (make deps)"
  mkdir -p "$dir/data"
  if [[ -n $token_port ]]; then
    if [[ ! -f $dir/token.pem ]]; then
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/token.key" -out "$dir/token.pem" \
        -days 1 -subj /CN=sluice-test-token-issuer > /dev/null 2>&1 || fail "openssl"
    fi
    node "$SLUICE_SOURCE_DIR/tests/e2e/registry_token_server.js" "$token_port" "$dir/token.key" \
      "$dir/token.pem" sluice-test-issuer "$3" > "$dir/token.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$token_port/issued"
    auth=$(printf 'auth:\n  token:\n    realm: http://127.0.0.1:%s/token\n    service: sluice-test-registry\n    issuer: sluice-test-issuer\n    rootcertbundle: %s\n' "$token_port" "$dir/token.pem")
  fi
  cat > "$dir/config.yml" <<YAML
version: 0.1
log: { level: info }
storage:
  filesystem: { rootdirectory: $dir/data }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$port
$auth
YAML
  docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  PIDS+=($REGISTRY_PID)
  for _ in $(seq 100); do
    # /v2/ answers 200, or 401 when it needs a token: either way it is up.
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/") =~ ^(200|401)$ ]] && return 0
    sleep 0.05
  done
  fail "docker-registry on $port never answered: $(tail -3 "$dir/registry.log")"
}

# wasm_image_layout DIR VARIANT WASM_FILE TAG: an OCI image layout (what skopeo copies from)
# holding WASM_FILE as a Wasm image of VARIANT "oci" (the module is the layer) or "compat" (a
# tar+gzip layer with plugin.wasm). Written by hand, so the images tested are not Sluice's own.
wasm_image_layout() {
  local dir=$1 variant=$2 wasm=$3 tag=$4 layer layer_type config config_type manifest
  mkdir -p "$dir/blobs/sha256"
  blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$dir/blobs/sha256/$d"; echo "$d"; }
  if [[ $variant == oci ]]; then
    layer=$(blob "$wasm"); layer_type=application/vnd.module.wasm.content.layer.v1+wasm
    printf '{"type":"envoy_proxy_wasm_plugin"}' > "$dir/config.json"
    config_type=application/vnd.module.wasm.config.v1+json
  else
    local tmp; tmp=$(mktemp -d "$WORK/layer.XXXX")
    cp "$wasm" "$tmp/plugin.wasm"
    tar -C "$tmp" -cf "$tmp/layer.tar" plugin.wasm
    local diff_id; diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
    gzip -n "$tmp/layer.tar"
    layer=$(blob "$tmp/layer.tar.gz"); layer_type=application/vnd.oci.image.layer.v1.tar+gzip
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
      "$diff_id" > "$dir/config.json"
    config_type=application/vnd.oci.image.config.v1+json
  fi
  config=$(blob "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"%s","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%d}]}' \
    "$config_type" "$config" "$(stat -c %s "$dir/config.json")" \
    "$layer_type" "$layer" "$(stat -c %s "$dir/blobs/sha256/$layer")" > "$dir/manifest.json"
  manifest=$(blob "$dir/manifest.json")
  printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$(stat -c %s "$dir/manifest.json")" "$tag" > "$dir/index.json"
  echo "sha256:$manifest"
}

# push_layout DIR TAG DEST [CREDS]: skopeo copies the layout's TAG to docker://DEST (plain HTTP).
push_layout() {
  local creds=()
  [[ -n ${4:-} ]] && creds=(--dest-creds "$4")
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "${creds[@]}" \
    "oci:$1:$2" "docker://$3" > "$WORK/skopeo.log" 2>&1 || fail "skopeo copy to $3: $(tail -3 "$WORK/skopeo.log")"
}

# ---- the hub ------------------------------------------------------------------------------------

# start_hub DATA_DIR [args...]: `sluice hub serve` on a free port, HUB=127.0.0.1:PORT, its log in
# $WORK/hub.log.
start_hub() {
  local data=$1; shift
  HUB_PORT=$(free_port)
  HUB=127.0.0.1:$HUB_PORT
  "$SLUICE_BIN" hub serve --data-dir "$data" --listen "$HUB" "$@" >> "$WORK/hub.log" 2>&1 &
  HUB_PID=$!
  PIDS+=($HUB_PID)
  wait_http "http://$HUB/healthz"
}
stop_hub() { kill "$HUB_PID" 2>/dev/null; wait "$HUB_PID" 2>/dev/null || true; }
# hub_user NAME [--admin] [args...]: adds a user (the hub's storage flags in HUB_STORAGE) and
# prints its token.
hub_user() {
  "$SLUICE_BIN" hub user add "$@" ${HUB_STORAGE:-} 2>> "$WORK/hub-users.log" ||
    fail "hub user add $*: $(tail -1 "$WORK/hub-users.log")"
}
# hub_blob USER:TOKEN REPO FILE: uploads FILE as a blob (one POST with its digest); prints the
# HTTP status.
hub_blob() {
  local digest
  digest=sha256:$(sha256sum "$3" | cut -d' ' -f1)
  curl -s -o "$WORK/blob.out" -w '%{http_code}' -u "$1" -X POST --data-binary "@$3" \
    -H 'content-type: application/octet-stream' "http://$HUB/v2/$2/blobs/uploads/?digest=$digest"
}
# oci_manifest CONFIG_FILE LAYER_FILE [LAYER_MEDIA_TYPE]: an image manifest naming them.
oci_manifest() {
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.module.wasm.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
    "$(sha256sum "$1" | cut -d' ' -f1)" "$(stat -c %s "$1")" \
    "${3:-application/vnd.module.wasm.content.layer.v1+wasm}" \
    "$(sha256sum "$2" | cut -d' ' -f1)" "$(stat -c %s "$2")"
}

# start_postgres PORT: Debian's PostgreSQL server on 127.0.0.1:PORT with its data in $WORK,
# trusting local connections for user "hub" (database "hub"); POSTGRES_URL says how to reach it.
# PostgreSQL refuses to run as root: as root it runs as the system user sluice-test-pg (made here
# if missing).
start_postgres() {
  local port=$1 dir=$WORK/pg-$1 bin run=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -x $bin/initdb ]] || fail "PostgreSQL's server is needed (make deps installs postgresql)"
  if [[ $(id -u) -eq 0 ]]; then
    id sluice-test-pg > /dev/null 2>&1 ||
      useradd --system --no-create-home --shell /usr/sbin/nologin sluice-test-pg ||
      fail "cannot add the user sluice-test-pg"
    run=(runuser -u sluice-test-pg --)
  fi
  mkdir -p "$dir"
  [[ ${#run[@]} -eq 0 ]] || chown sluice-test-pg "$dir"
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U hub -A trust --no-sync > "$dir/initdb.log" 2>&1 ||
    fail "initdb: $(tail -3 "$dir/initdb.log")"
  "${run[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" -F \
    -c fsync=off -c full_page_writes=off > "$dir/postgres.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || fail "PostgreSQL did not start: $(tail -3 "$dir/postgres.log")"
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U hub hub || fail "createdb"
  POSTGRES_URL="postgresql://hub@127.0.0.1:$port/hub"
}
