#!/usr/bin/env bash
# Wasm modules by OCI image reference (vm_config.code.remote.http_uri.uri: oci://...), pulled
# from Debian's docker-registry started here. Images are laid out by hand and pushed with skopeo,
# so what Sluice reads is another tool's output. Both variants (the module as the layer; a tar
# layer holding plugin.wasm), by tag and by digest; a tag that moves, picked up by a reload; an
# image seen before is not downloaded again; a failure is not retried for 10 s (negative cache); the registry gone at a reload keeps the running
# module; Bearer-token auth with credentials from a Docker-style config.json; and the failures:
# plain HTTP to a registry not listed as insecure, a sha256 mismatch, a missing tag, an image
# without a module, bad references, no or wrong credentials.
source "$(dirname "$0")/lib.sh"
command -v skopeo > /dev/null || fail "skopeo is needed (make deps)"
UP=$(free_port); FRONT=$(free_port); ADMIN_PORT=$(free_port); REG=$(free_port)
start_nginx "$UP"
two_module_versions
start_registry "$REG"
R=127.0.0.1:$REG

HELLO_OCI=$(wasm_image_layout "$WORK/hello-oci" oci "$WORK/hello.wasm" v1)
push_layout "$WORK/hello-oci" v1 "$R/ext/basic:v1"
HALLO_COMPAT=$(wasm_image_layout "$WORK/hallo-compat" compat "$WORK/hallo.wasm" v1)
push_layout "$WORK/hallo-compat" v1 "$R/ext/basic-compat:v1"
HALLO_OCI=$(wasm_image_layout "$WORK/hallo-oci" oci "$WORK/hallo.wasm" v2)
# skopeo keeps the Wasm media types as they are (what Istio's images rely on).
skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$R/ext/basic:v1" |
  grep -q 'application/vnd.module.wasm.content.layer.v1+wasm' || fail "skopeo changed the layer type"
HELLO_SHA=$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)
HALLO_SHA=$(sha256sum "$WORK/hallo.wasm" | cut -d' ' -f1)

# config URI [SHA256] [SLUICE_BLOCK]: front with the module at URI.
config() {
  local sha=""
  [[ -n ${2:-} ]] && sha=", sha256: $2"
  local filter
  filter=$(remote_wasm_filter basic "http_uri: { uri: \"$1\", timeout: 5s }$sha, retry_policy: { num_retries: 0 }")
  sdk_bootstrap "$UP" "$(sdk_listener front "$FRONT" "$filter")"
  local insecure="sluice: { oci: { insecure_registries: [\"$R\"] } }"
  printf '%s\n' "${3-$insecure}"
}
x_wasm() { curl -s -D - -o /dev/null "http://127.0.0.1:$FRONT/" | tr -d '\r' | sed -n 's/^x-wasm: //p'; }
last_update() { curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"last_update":{[^}]*}'; }
reload_now() { curl -s -o "$WORK/reload.json" -w '%{http_code}' -X POST "http://127.0.0.1:$ADMIN_PORT/reload"; }
# expect_start_failure FILE TEXT: sluice exits at start-up and its output says TEXT.
expect_start_failure() {
  if timeout 30 "$SLUICE_BIN" -c "$1" --concurrency 1 > "$WORK/failed.log" 2>&1; then
    fail "sluice started with $1"
  fi
  grep -qF -- "$2" "$WORK/failed.log" || fail "expected '$2' in: $(grep -i error "$WORK/failed.log" | tail -3)"
}

# Configuration errors, caught by --mode validate.
config "oci://$R/Ext/Basic:v1" > "$WORK/bad.yaml"
out=$("$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" 2>&1) && fail "an upper-case repository validated"
[[ $out == *"is not an OCI reference"* ]] || fail "bad reference: $out"
config "oci://$R/ext/basic:v1" | sed 's/timeout: 5s }/timeout: 5s, cluster: nginx }/' > "$WORK/bad.yaml"
out=$("$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" 2>&1) && fail "oci:// with a cluster validated"
[[ $out == *"not through a cluster"* ]] || fail "cluster with oci: $out"
config "oci://$R/ext/basic:v1" "" "sluice: { oci: { insecure_registries: [\"no good/\"] } }" > "$WORK/bad.yaml"
out=$("$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" 2>&1) && fail "a bad insecure_registries entry validated"
[[ $out == *"is not a registry host[:port]"* ]] || fail "bad insecure registry: $out"
pass "bad references and settings are config errors"

# Plain HTTP only to registries listed as insecure: otherwise TLS, which this registry lacks.
config "oci://$R/ext/basic:v1" "" "" > "$WORK/tls.yaml"
expect_start_failure "$WORK/tls.yaml" "list it in sluice.oci.insecure_registries"
pass "a registry not listed as insecure is spoken to over TLS only"

# The "oci" variant by tag.
config "oci://$R/ext/basic:v1" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
[[ $(x_wasm) == hello ]] || fail "module from the image at start-up: '$(x_wasm)'"
grep -q "pulled oci://$R/ext/basic:v1 (oci variant, manifest $HELLO_OCI" "$WORK/sluice.log" || fail "pull not logged"
pass "the oci variant, by tag"

# The "compat" variant by digest, through a reload.
config "oci://$R/ext/basic-compat@$HALLO_COMPAT" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
wait_until "the compat image serving" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-wasm: //p') == hallo ]]"
grep -q "(compat variant, manifest $HALLO_COMPAT" "$WORK/sluice.log" || fail "compat pull not logged"
pass "the compat variant (plugin.wasm in a tar layer), by digest, through a reload"

# Back to the tag: resolved again, but that manifest was pulled before, so no layer download.
# (The registry's access log: GET lines for blobs of ext/basic from Sluice.)
layer_gets() { grep '"GET /v2/ext/basic/blobs/' "$WORK/registry-$REG/registry.log" | grep -c '"sluice/' || true; }
gets=$(layer_gets)
[[ $gets == 1 ]] || fail "blob downloads before: $gets"
config "oci://$R/ext/basic:v1" > "$WORK/next.yaml"
n=$(reloads); mv "$WORK/next.yaml" "$WORK/sluice.yaml"; await_reload "$n"
[[ $(layer_gets) == 1 ]] || fail "the known image was downloaded again ($(layer_gets) blob GETs)"
wait_until "hello again" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-wasm: //p') == hello ]]"
grep -q "is image $HELLO_OCI (module sha256 ${HELLO_SHA:0:12}), pulled before" "$WORK/sluice.log" ||
  fail "known manifest not recognised: $(grep oci "$WORK/sluice.log" | tail -3)"
pass "an image pulled before is not downloaded again"

# The tag moves (a new version pushed under v1): POST /reload resolves it again (202 while it
# pulls) and the new module serves.
push_layout "$WORK/hallo-oci" v2 "$R/ext/basic:v1"
code=$(reload_now)
[[ $code == 202 ]] || fail "POST /reload with an image by tag: $code $(cat "$WORK/reload.json")"
wait_until "the moved tag serving" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-wasm: //p') == hallo ]]"
[[ $(layer_gets) == 2 ]] || fail "the moved tag's layer: $(layer_gets) blob GETs"
pass "a tag that moved is picked up by a reload"

# Failures leave the running module alone.
config "oci://$R/ext/basic:nosuchtag" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
wait_until "the missing tag rejected" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/config_dump | grep -q '\"state\":\"REJECTED\".*nosuchtag.*HTTP 404.*MANIFEST_UNKNOWN'"
# A 404 is the registry's answer, not a hiccup: one attempt, no backoff.
grep -q 'nosuchtag (1 attempt(s))' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump")" ||
  fail "a missing tag was retried: $(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o 'cannot pull[^"]*')"
# Asked again at once: Envoy's negative cache answers without asking the registry.
code=$(reload_now)
[[ $code == 400 ]] || fail "a reload right after the failure: $code $(cat "$WORK/reload.json")"
grep -q 'nosuchtag.*failed [0-9]* s ago (tried again 10 s after a failure)' "$WORK/reload.json" ||
  fail "negative cache answer: $(cat "$WORK/reload.json")"
(( $(stat_of wasm.remote_load_cache_negative_hits) >= 1 )) || fail "negative hits not counted"
# (A sha256 already at hand would be trusted without asking the registry, as over HTTP.)
OTHER=$(printf 'in no image' | sha256sum | cut -d' ' -f1)
config "oci://$R/ext/basic:v1" "$OTHER" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
wait_until "the mismatch rejected" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/config_dump | grep -q '\"state\":\"REJECTED\".*sha256 mismatch'"
[[ $(x_wasm) == hallo ]] || fail "a failed pull replaced the running module"
pass "a missing tag and a sha256 mismatch are rejected; the running module stays"

# The registry gone: a reload that needs the tag resolved keeps the module it named before.
config "oci://$R/ext/basic:v1" "$HALLO_SHA" > "$WORK/next.yaml"
n=$(reloads); mv "$WORK/next.yaml" "$WORK/sluice.yaml"; await_reload "$n"
[[ $(last_update) == *ACCEPTED* ]] || fail "pinned by sha256: $(last_update)"
config "oci://$R/ext/basic:v1" > "$WORK/next.yaml"
kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true
n=$(reloads); mv "$WORK/next.yaml" "$WORK/sluice.yaml"; await_reload "$n"
[[ $(last_update) == *ACCEPTED* ]] || fail "reload with the registry gone: $(last_update)"
grep -q "keeping the module it named before" "$WORK/sluice.log" || fail "fallback not logged"
[[ $(x_wasm) == hallo ]] || fail "module after the registry went away"
pass "with the registry gone, a reload keeps the module the tag named before"
stop_sluice
start_registry "$REG"

# An image whose plugin.wasm is not a module.
printf 'no module here' > "$WORK/README"
wasm_image_layout "$WORK/nomodule" compat "$WORK/README" v1 > /dev/null
push_layout "$WORK/nomodule" v1 "$R/ext/notwasm:v1"
config "oci://$R/ext/notwasm:v1" > "$WORK/notwasm.yaml"
expect_start_failure "$WORK/notwasm.yaml" "is not a WebAssembly binary"
pass "an image whose plugin.wasm is not Wasm is refused"

# Bearer tokens: a registry that wants a token from its token service; the credentials come
# from a Docker-style config.json.
AREG=$(free_port); TOK=$(free_port)
start_registry "$AREG" "$TOK" alice:wonderland
A=127.0.0.1:$AREG
push_layout "$WORK/hello-oci" v1 "$A/private/basic:v1" alice:wonderland
printf '{"auths":{"%s":{"auth":"%s"}}}' "$A" "$(printf alice:wonderland | base64)" > "$WORK/docker-config.json"
config "oci://$A/private/basic:v1" "" "sluice: { oci: { insecure_registries: [\"127.0.0.1\"], credentials_file: $WORK/docker-config.json } }" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
[[ $(x_wasm) == hello ]] || fail "module from the token-auth registry"
(( $(curl -s "http://127.0.0.1:$TOK/issued") >= 1 )) || fail "no token was issued"
stop_sluice
pass "Bearer-token auth with Docker config.json credentials"

config "oci://$A/private/basic:v1" "" "sluice: { oci: { insecure_registries: [\"$A\"] } }" > "$WORK/anon.yaml"
expect_start_failure "$WORK/anon.yaml" "refused an anonymous request (no credentials are configured for this registry)"
printf '{"auths":{"%s":{"username":"alice","password":"looking-glass"}}}' "$A" > "$WORK/wrong.json"
config "oci://$A/private/basic:v1" "" "sluice: { oci: { insecure_registries: [\"$A\"], credentials_file: $WORK/wrong.json } }" > "$WORK/wrong.yaml"
expect_start_failure "$WORK/wrong.yaml" "refused the credentials of 'alice'"
config "oci://$A/private/basic:v1" "" "sluice: { oci: { insecure_registries: [\"$A\"], credentials_file: $WORK/missing.json } }" > "$WORK/missing.yaml"
expect_start_failure "$WORK/missing.yaml" "cannot read the credentials file $WORK/missing.json"
pass "no, wrong or unreadable credentials: clear errors"
