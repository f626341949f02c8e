#!/usr/bin/env bash
# Extension projects end to end: `sluice ext init` (C++ and AssemblyScript, each template) ->
# `build` (wasm, the C++ .so, runtime-config.json) -> `verify` -> `push` of the project folder to
# the hub (search, in the API and the web UI, shows its description and README) and to Debian's
# docker-registry -> `deploy --to` a running proxy, from both -> traffic shows the plugin -> a
# reload keeps it. The network filter runs on a TCP listener, the singleton as a bootstrap
# WasmService, the .so on the null runtime. Bad input: a non-empty folder, a broken source, a
# bad sluice-ext.yaml, pushing a project not built.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR}"
command -v skopeo > /dev/null || fail "skopeo is needed (make deps)"
AS_MODULES=$SLUICE_SOURCE_DIR/tests/assemblyscript/node_modules
[[ -x $AS_MODULES/.bin/asc ]] || fail "the AssemblyScript SDK is not installed (make deps)"
export HOME=$WORK/home SLUICE_HOME=
mkdir -p "$HOME" "$WORK/p"
ext() { "$SLUICE_BIN" ext "$@"; }
cd "$WORK/p"

# init: every language and template.
for lang in cpp assemblyscript; do
  for kind in http-filter network-filter singleton; do
    dir=${lang:0:2}-$kind
    out=$(ext init "$dir" --lang "$lang" --template "$kind") || fail "init $dir: $out"
    [[ $out == *"wrote $dir/sluice-ext.yaml"* ]] || fail "init output: $out"
    # The AssemblyScript SDK from npm is already installed for the tests: use it offline.
    [[ $lang == cpp ]] || ln -s "$AS_MODULES" "$dir/node_modules"
    # The native .so (a second, slower compile) only where the test runs it: the HTTP filter.
    native=(); [[ $dir == cp-http-filter || $lang == assemblyscript ]] || native=(--no-native)
    out=$(ext build "$dir" "${native[@]}" 2>&1) || fail "build $dir: $out"
    [[ $out == *"load:        ok"* && $out == *"built $dir 0.1.0"* ]] || fail "build $dir output: $out"
    [[ -f $dir/build/$dir.wasm && -f $dir/build/runtime-config.json ]] || fail "$dir: no module or metadata"
    [[ $dir != cp-http-filter || -f $dir/build/$dir.so ]] || fail "$dir: no native .so"
    [[ $dir == cp-http-filter || ! -e $dir/build/$dir.so ]] || fail "$dir: a .so despite --no-native"
    root=${dir//-/_}
    grep -q "\"rootIds\":\[\"$root\"\]" "$dir/build/runtime-config.json" || fail "$dir metadata: $(cat "$dir/build/runtime-config.json")"
    out=$(ext verify "$dir/build/$dir.wasm" --root-id "$root") || fail "verify $dir: $out"
  done
done
grep -q '"abiVersions":\["0.2.1"\]' cp-http-filter/build/runtime-config.json || fail "C++ ABI version"
grep -q '"abiVersions":\["0.2.0"\]' as-http-filter/build/runtime-config.json || fail "AssemblyScript ABI version"
pass "init and build every template in C++ and AssemblyScript: modules that verify, .so, metadata"

# Bad input.
out=$(ext init cp-http-filter 2>&1) && fail "init into a non-empty folder"
[[ $out == *"exists and is not empty"* ]] || fail "non-empty folder: $out"
out=$(ext init 'bad name' 2>&1) && fail "init with a space in the name"
[[ $out == *"lower-case"* ]] || fail "bad name: $out"
ext init broken > /dev/null && echo 'this is not C++' >> broken/src/plugin.cc
out=$(ext build broken 2>&1) && fail "a broken source built"
[[ $out == *"clang++-14 failed"*"error:"* ]] || fail "broken source: $out"
[[ ! -e broken/build/broken.wasm ]] || fail "a failed build left a module"
out=$(ext push broken "127.0.0.1:1/x/y:1" --plain-http 2>&1) && fail "pushed a project not built"
[[ $out == *"is not built yet: run \`sluice ext build broken\`"* ]] || fail "push unbuilt: $out"
sed -i 's/^language: cpp/language: rust/' broken/sluice-ext.yaml
out=$(ext build broken 2>&1) && fail "built language rust"
[[ $out == *"language 'rust' is not cpp or assemblyscript"* ]] || fail "bad language: $out"
echo 'colour: blue' >> broken/sluice-ext.yaml
out=$(ext build broken 2>&1) && fail "built with an unknown field"
[[ $out == *"unknown field 'colour'"* ]] || fail "unknown field: $out"
pass "refused: a non-empty folder, a bad name, a broken source (the compiler's error), an unbuilt push, a bad sluice-ext.yaml"

# push the project folders; deploy into a running proxy; traffic; reload.
REG=$(free_port); R=127.0.0.1:$REG
start_registry "$REG"
for p in cp-http-filter as-http-filter; do
  out=$(ext push "$p" "$R/ext/$p:0.1.0" --plain-http 2>&1) || fail "push $p: $out"
done
cfg=$(skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$R/ext/as-http-filter:0.1.0")
[[ $cfg == *'"application/vnd.module.wasm.config.v1+json"'* ]] || fail "pushed manifest: $cfg"
# The C++ project goes through the hub: its sluice-ext.yaml and README become what search shows.
HUB_STORAGE="--data-dir $WORK/hub"
HUB_ADMIN=$(hub_user alice --admin)
start_hub "$WORK/hub" --web-dir "${SLUICE_HUB_WEB_DIR:-$SLUICE_BUILD_DIR/hub-web}"
echo "$HUB_ADMIN" | ext login "$HUB" -u alice --password-stdin --plain-http > /dev/null || fail "hub login"
out=$(ext push cp-http-filter "$HUB/alice/cp-http-filter:0.1.0" --plain-http 2>&1) || fail "push to the hub: $out"
found=$(curl -s "http://$HUB/api/v1/search?q=cp-http-filter")
desc=$(sed -n 's/^description: *//p' cp-http-filter/sluice-ext.yaml | tr -d '"')
[[ $found == *'"total":1'* && $found == *"\"description\":\"$desc\""* && $found == *'"language":"cpp"'* &&
   $found == *'"root_ids":["cp_http_filter"]'* ]] || fail "hub search: $found"
grep -q '"readme":"# cp-http-filter' <<<"$(curl -s "http://$HUB/api/v1/extensions/alice/cp-http-filter")" ||
  fail "the README is not on the hub: $(curl -s "http://$HUB/api/v1/extensions/alice/cp-http-filter" | head -c 300)"
# ... and in the web UI, as a user finds it (headless Chromium).
[[ -f ${SLUICE_HUB_WEB_DIR:-$SLUICE_BUILD_DIR/hub-web}/index.html ]] || fail "the hub's web UI is not built (make build)"
shots=$SLUICE_BUILD_DIR/test-output/ext-project
mkdir -p "$shots"
node "$SLUICE_SOURCE_DIR/tests/hub-web/find_extension.mjs" "http://$HUB" "http filter" alice/cp-http-filter "$desc" \
  "$shots/hub-extension.png" > "$WORK/ui.log" 2>&1 || fail "the web UI: $(cat "$WORK/ui.log")"

UP=$(free_port); FRONT=$(free_port); TCP=$(free_port); ECHO=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
serve_tcp "$ECHO" cat
{
  sdk_bootstrap "$UP" "$(
    sdk_listener front "$FRONT" "$(wasm_http_filter native null "filename: $WORK/p/cp-http-filter/build/cp-http-filter.so" "x-native: yes")"
    cat <<YAML
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $TCP } }
    filter_chains:
    - filters:
$(wasm_network_filter count v8 "filename: $WORK/p/cp-network-filter/build/cp-network-filter.wasm" "")
$(tcp_proxy_filter tcp echo)
YAML
  )"
  static_cluster echo "$ECHO"
  cat <<YAML
bootstrap_extensions:
- name: svc
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    singleton: true
    config:
      name: svc
      root_id: as_singleton
      configuration: { "@type": type.googleapis.com/google.protobuf.StringValue, value: "20" }
      vm_config: { runtime: envoy.wasm.runtime.v8, code: { local: { filename: $WORK/p/as-singleton/build/as-singleton.wasm } } }
sluice:
  overlay_path: $WORK/plugins.json
  oci: { insecure_registries: ["$R", "$HUB"] }
YAML
} > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
header() { curl -s -D - -o /dev/null "http://127.0.0.1:$FRONT/" | tr -d '\r' | sed -n "s/^$1: //p"; }
[[ $(header x-native) == yes ]] || fail "the C++ project's .so does not serve on the null runtime"
out=$(ext deploy "$HUB/alice/cp-http-filter:0.1.0" --plain-http --to "http://127.0.0.1:$ADMIN_PORT" --config 'x-cpp: built' 2>&1) ||
  fail "deploy the C++ image: $out"
out=$(ext deploy "$R/ext/as-http-filter:0.1.0" --plain-http --to "http://127.0.0.1:$ADMIN_PORT" --config 'x-as: built too' 2>&1) ||
  fail "deploy the AssemblyScript image: $out"
[[ $out == *"deployed 'as-http-filter' on listener 'front'"* ]] || fail "deploy output: $out"
[[ $(header x-cpp) == built && $(header x-as) == "built too" ]] || fail "the deployed projects do not serve"
[[ $(header x-native) == yes ]] || fail "deploying dropped the filter from the file"
n=$(reloads)
kill -HUP "$SLUICE_PID"
await_reload "$n"
[[ $(header x-cpp) == built && $(header x-as) == "built too" ]] || fail "a reload dropped the deployed projects"
[[ $(stat_of cp_http_filter.responses) -ge 1 ]] || fail "the C++ filter's counter: $(stat_of cp_http_filter.responses)"
pass "project images pushed to the hub (search shows them) and to docker-registry deploy into a running proxy and serve; a reload keeps them; the .so runs on null"

printf 'hello over tcp' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$TCP; cat >&3; timeout 1 cat <&3" > /dev/null || true
counted() { [[ $(stat_of cp_network_filter.downstream_bytes) -ge 14 ]]; }
wait_until "the network filter counted the bytes ($(stat_of cp_network_filter.downstream_bytes))" counted
ticked() { [[ $(stat_of as_singleton.ticks) -ge 3 ]]; }
wait_until "the singleton ticked ($(stat_of as_singleton.ticks))" ticked
pass "the network filter counts a TCP connection's bytes; the singleton service ticks"
