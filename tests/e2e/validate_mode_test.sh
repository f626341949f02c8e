#!/usr/bin/env bash
# --mode validate: good configs pass (including Envoy's front-proxy example), bad ones exit
# non-zero with every error listed with its path and line.
source "$(dirname "$0")/lib.sh"
# The demo names its Wasm modules relative to the build directory, as `make run` starts it.
(cd "${SLUICE_BUILD_DIR:?}" && "$SLUICE_BIN" --mode validate -c "$SLUICE_SOURCE_DIR/examples/demo.yaml") | grep -q "OK" || fail "demo.yaml"
"$SLUICE_BIN" --mode validate -c "$SLUICE_SOURCE_DIR/examples/envoy-front-proxy.yaml" > /dev/null || fail "front proxy"
pass "examples validate"
cat > "$WORK/bad.yaml" <<'YAML'
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, route: { cluster: nowhere, timeout: soon } } ]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: c
    foo: bar
YAML
set +e
out=$("$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" 2>&1); rc=$?
set -e
[[ $rc -ne 0 ]] || fail "bad config accepted"
grep -q "static_resources.clusters\[0\].foo (line 21): unknown field" <<<"$out" || fail "unknown field: $out"
grep -q "timeout (line 15)" <<<"$out" || fail "bad duration: $out"
grep -q "nowhere" <<<"$out" || fail "unknown cluster: $out"
pass "errors reported together with paths and lines"
set +e; "$SLUICE_BIN" -c "$WORK/missing.yaml" > /dev/null 2>&1; rc=$?; set -e
[[ $rc -ne 0 ]] || fail "missing file accepted"
pass "missing file is an error"
echo "validate_mode: all passed"
