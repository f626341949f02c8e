#!/usr/bin/env bash
# Deploying into a running proxy: `sluice ext deploy --to` / `undeploy` and the admin API behind
# them (GET/POST /wasm/plugins, DELETE /wasm/plugins/NAME) with its bearer token. A deployed
# plugin serves at once, is kept in sluice.overlay_path, and survives a config file change,
# SIGHUP and a restart. Images come from Debian's docker-registry started here. Bad input: no
# token, a wrong token, an unknown listener or anchor, a module that does not load, bad JSON, an
# oversized body: each refused with its reason, and nothing changes.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
: "${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR}"
command -v skopeo > /dev/null || fail "skopeo is needed (make deps)"
require_extensions add_header
export HOME=$WORK/home SLUICE_HOME=
mkdir -p "$HOME"
ext() { "$SLUICE_BIN" ext "$@"; }
two_module_versions  # $WORK/hello.wasm (x-wasm: hello), $WORK/hallo.wasm (x-wasm: hallo)
ADD_HEADER=$SLUICE_BUILD_DIR/extensions/add_header.wasm

REG=$(free_port); R=127.0.0.1:$REG
start_registry "$REG"
wasm_image_layout "$WORK/hallo-image" oci "$WORK/hallo.wasm" v1 > /dev/null
push_layout "$WORK/hallo-image" v1 "$R/ext/hallo:v1"

UP=$(free_port); FRONT=$(free_port); API=$(free_port); ADMIN_PORT=$(free_port)
ADMIN=http://127.0.0.1:$ADMIN_PORT
start_nginx "$UP"
openssl rand -hex 24 > "$WORK/admin.token"
TOKEN=$(cat "$WORK/admin.token")
# config ROUTES_EXTRA: the config file; a different argument makes a different file.
config() {
  sdk_bootstrap "$UP" "$(sdk_listener front "$FRONT" ""; sdk_listener api "$API" "" "${1:-}")"
  cat <<YAML
sluice:
  overlay_path: $WORK/state/plugins.json
  admin: { token_file: $WORK/admin.token }
  oci: { insecure_registries: ["$R"] }
YAML
}
config > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
# header PORT NAME: the value of response header NAME on / (empty when absent).
header() { curl -s -D - -o /dev/null "http://127.0.0.1:$1/" | tr -d '\r' | sed -n "s/^$2: //p"; }
plugins() { curl -s "$ADMIN/wasm/plugins"; }

# A local module, verified by the CLI, then loaded by the proxy from the same path.
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --token-file "$WORK/admin.token" --listener front \
  --name stamp --config 'response.set.x-stamp = one' 2>&1) || fail "deploy a local module: $out"
[[ $out == *"verifying $ADD_HEADER"*"ABI version: 0.2.1"*"deployed 'stamp' on listener 'front'"* ]] || fail "deploy output: $out"
[[ $(header "$FRONT" x-stamp) == one ]] || fail "the deployed plugin does not serve"
[[ -z $(header "$API" x-stamp) ]] || fail "the plugin serves on a listener it was not deployed to"
grep -q '"name": "stamp"' "$WORK/state/plugins.json" || fail "the overlay file does not have it: $(cat "$WORK/state/plugins.json")"
[[ $(plugins) == *'"name":"stamp"'*'"listener":"front"'* ]] || fail "GET /wasm/plugins: $(plugins)"
grep -q '"name":"stamp"' <<<"$(curl -s "$ADMIN/config_dump")" || fail "/config_dump does not show the deployed filter"
pass "deploy --to: verified, serving at once, kept in the overlay file, listed and dumped"

# Refusals: nothing changes.
before=$(cat "$WORK/state/plugins.json")
out=$(SLUICE_ADMIN_TOKEN= ext deploy "$ADD_HEADER" --to "$ADMIN" --listener front --name x 2>&1) && fail "deployed without the token"
[[ $out == *"answered 401: this call needs the admin token"* ]] || fail "no token: $out"
out=$(SLUICE_ADMIN_TOKEN=0123456789abcdef0123 ext deploy "$ADD_HEADER" --to "$ADMIN" --listener front --name x 2>&1) && fail "deployed with a wrong token"
[[ $out == *"wrong admin token"* ]] || fail "wrong token: $out"
[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "$ADMIN/reload") == 401 ]] || fail "POST /reload without the token"
export SLUICE_ADMIN_TOKEN=$TOKEN  # from here on, as a user with the token in the environment
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --name x 2>&1) && fail "deployed without naming one of two listeners"
[[ $out == *"name the listener"*"front, api"* ]] || fail "ambiguous listener: $out"
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --listener nope --name x 2>&1) && fail "deployed to a missing listener"
[[ $out == *"no listener 'nope'"* ]] || fail "missing listener: $out"
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --listener front --name x --before nope 2>&1) && fail "deployed before a missing filter"
[[ $out == *"no HTTP filter named 'nope'"* ]] || fail "missing anchor: $out"
printf 'not wasm' > "$WORK/garbage.wasm"
out=$(ext deploy "$WORK/garbage.wasm" --to "$ADMIN" --listener front 2>&1) && fail "the CLI deployed garbage"
[[ $out == *"not compatible with Sluice: not deployed"* ]] || fail "garbage: $out"
# The proxy checks too: a client that skips verification gets the reload's error.
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "authorization: Bearer $TOKEN" \
  -d "{\"name\":\"g\",\"listener\":\"front\",\"code\":\"$WORK/garbage.wasm\"}" "$ADMIN/wasm/plugins")
[[ $code == 400 && $(cat "$WORK/resp") == *'"state":"REJECTED"'*"garbage.wasm"* ]] || fail "POST garbage: $code $(cat "$WORK/resp")"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "authorization: Bearer $TOKEN" -d '{"name":' "$ADMIN/wasm/plugins")
[[ $code == 400 && $(cat "$WORK/resp") == *"not valid JSON"* ]] || fail "bad JSON: $code $(cat "$WORK/resp")"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "authorization: Bearer $TOKEN" \
  -d '{"name":"a","code":"relative.wasm","listener":"front"}' "$ADMIN/wasm/plugins")
[[ $code == 400 && $(cat "$WORK/resp") == *"absolute path"* ]] || fail "relative code path: $code $(cat "$WORK/resp")"
head -c 1100000 /dev/zero | tr '\0' 'x' > "$WORK/big.json"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "authorization: Bearer $TOKEN" --data-binary @"$WORK/big.json" "$ADMIN/wasm/plugins")
[[ $code == 413 ]] || fail "oversized body: $code $(cat "$WORK/resp")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "authorization: Bearer $TOKEN" "$ADMIN/wasm/plugins")
[[ $code == 405 ]] || fail "PUT /wasm/plugins: $code"
[[ $(cat "$WORK/state/plugins.json") == "$before" ]] || fail "a refused deploy changed the overlay file"
[[ $(header "$FRONT" x-stamp) == one ]] || fail "a refused deploy changed what serves"
pass "no or wrong token, unknown listener or anchor, bad modules, bad JSON, big bodies: refused, nothing changed"

# An image: the proxy pulls it (pinned to the digest the CLI verified), placed first on api.
out=$(ext deploy "$R/ext/hallo:v1" --plain-http --to "$ADMIN" --listener api --first 2>&1) || fail "deploy an image: $out"
[[ $out == *"resolving $R/ext/hallo:v1"*"deployed 'hallo' on listener 'api'"* ]] || fail "image deploy output: $out"
[[ $(header "$API" x-wasm) == hallo ]] || fail "the deployed image does not serve on api"
grep -q "\"code\": \"oci://$R/ext/hallo:v1@sha256:" "$WORK/state/plugins.json" || fail "the image is not pinned: $(cat "$WORK/state/plugins.json")"
# Replacing by name: the same plugin, new configuration.
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --listener front --name stamp --config 'response.set.x-stamp = two' 2>&1) || fail "replace: $out"
[[ $out == *"replaced 'stamp'"* && $(header "$FRONT" x-stamp) == two ]] || fail "replace: $out"
pass "an image deployed by reference (pulled by the proxy, digest-pinned), and a plugin replaced by name"

# Reloads keep deployed plugins: a config file change (the watcher), SIGHUP, a restart.
accepted=$(stat_of sluice.config_reloads_total.accepted)
config '- { match: { prefix: "/new" }, direct_response: { status: 204 } }
- { match: { prefix: "/" }, route: { cluster: nginx } }' > "$WORK/sluice.yaml.new"
mv "$WORK/sluice.yaml.new" "$WORK/sluice.yaml"
wait_until "the config change reloaded" bash -c "(( \$(curl -s $ADMIN/stats | sed -n 's/^sluice.config_reloads_total.accepted: //p') > $accepted ))"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API/new") == 204 ]] || fail "the changed config is not serving"
[[ $(header "$FRONT" x-stamp) == two && $(header "$API" x-wasm) == hallo ]] || fail "a config file change dropped deployed plugins"
n=$(reloads)
kill -HUP "$SLUICE_PID"
await_reload "$n"
[[ $(header "$FRONT" x-stamp) == two && $(header "$API" x-wasm) == hallo ]] || fail "SIGHUP dropped deployed plugins"
stop_sluice
start_sluice "$WORK/sluice.yaml"
[[ $(header "$FRONT" x-stamp) == two && $(header "$API" x-wasm) == hallo ]] || fail "a restart dropped deployed plugins"
pass "deployed plugins survive a config file change, SIGHUP and a restart"

# Undeploy; a plugin that another is placed beside stays until that one goes.
out=$(ext deploy "$ADD_HEADER" --to "$ADMIN" --listener front --name early --before stamp --config 'response.set.x-early = 1' 2>&1) || fail "deploy before: $out"
names=$(curl -s "$ADMIN/config_dump" | grep -o '"name":"[a-z_.]*"' | sed 's/"name"://' | tr '\n' ' ')
[[ $names == *'"early" "early" "stamp" "stamp" "envoy.filters.http.router"'* ]] || fail "order: $names"
out=$(ext undeploy stamp --to "$ADMIN" 2>&1) && fail "undeployed a plugin another is placed before"
[[ $out == *"deployed plugin 'early': there is no HTTP filter named 'stamp'"* ]] || fail "anchor undeploy: $out"
ext undeploy early --to "$ADMIN" > /dev/null 2>&1 || fail "undeploy early"
out=$(ext undeploy stamp --to "$ADMIN" 2>&1) || fail "undeploy: $out"
[[ $out == *"undeployed 'stamp'"* && -z $(header "$FRONT" x-stamp) ]] || fail "undeploy: $out"
out=$(ext undeploy stamp --to "$ADMIN" 2>&1) && fail "undeployed twice"
[[ $out == *"answered 404: no deployed plugin 'stamp' (deployed: hallo)"* ]] || fail "undeploy twice: $out"
ext undeploy hallo --to "$ADMIN" > /dev/null 2>&1 || fail "undeploy hallo"
[[ -z $(header "$API" x-wasm) && $(plugins) == *'"plugins":[]'* ]] || fail "after undeploying all: $(plugins)"
pass "undeploy, in dependency order, with clear refusals"
