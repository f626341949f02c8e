#!/usr/bin/env bash
# Hot reload: the config file and a module file change under a running sluice (inotify), SIGHUP
# and POST /reload. Listeners keep their sockets, keep-alive connections take the new config at
# their next request, unchanged plugins keep their VMs, and every bad change (YAML, a module that
# does not load, a plugin that refuses its configuration, a cluster change) is rejected while the
# old configuration keeps serving.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR to the built test modules}"
require_extensions add_header

UP=$(free_port); FRONT=$(free_port); EXTRA=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

two_module_versions

# config HEADER_RULE [EXTRA_LISTENER] [ROUTE_PREFIX]: the whole bootstrap.
config() {
  local filters listeners
  filters="$(sdk_filter tagger v8 add_header "response.set.x-config = $1")
$(wasm_http_filter basic v8 "filename: $WORK/module.wasm" "configured")"
  listeners=$(sdk_listener front "$FRONT" "$filters" "- { match: { prefix: \"${3:-/}\" }, route: { cluster: nginx } }")
  if [[ -n ${2:-} ]]; then
    listeners+=$'\n'$(sdk_listener extra "$EXTRA" "")
  fi
  sdk_bootstrap "$UP" "$listeners"
}
# write_config ...: replaces the config file the way editors do (a new file renamed over it).
write_config() {
  config "$@" > "$WORK/sluice.yaml.tmp"
  mv "$WORK/sluice.yaml.tmp" "$WORK/sluice.yaml"
}
header_of() {  # NAME PORT [PATH]
  curl -s -D - -o /dev/null "http://127.0.0.1:$2${3:-/}" | tr -d '\r' | sed -n "s/^$1: //Ip"
}
last_update() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"last_update":{[^}]*}'
}
version() {
  curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"version":[0-9]*,"last_update"\|"version":[0-9]*}$' | grep -o '[0-9]*' | head -1
}

write_config one
start_sluice "$WORK/sluice.yaml"
[[ $(header_of x-config "$FRONT") == one ]] || fail "v1: x-config is not 'one'"
[[ $(header_of x-wasm "$FRONT") == hello ]] || fail "v1: x-wasm is not 'hello'"
pass "first configuration serves"
created=$(stat_of wasm.envoy.wasm.runtime.v8.created)

# A keep-alive connection opened on version 1.
exec 3<>"/dev/tcp/127.0.0.1/$FRONT"
keepalive_get() {  # prints the x-config value of one request on fd 3
  printf 'GET / HTTP/1.1\r\nhost: x\r\n\r\n' >&3
  local line len=0 value=""
  while IFS= read -r -t 5 line <&3; do
    line=${line%$'\r'}
    [[ -z $line ]] && break
    case ${line,,} in
      content-length:*) len=${line#*: } ;;
      x-config:*) value=${line#*: } ;;
    esac
  done
  [[ $len -gt 0 ]] && read -r -t 5 -N "$len" _ <&3
  echo "$value"
}
[[ $(keepalive_get) == one ]] || fail "keep-alive request on version 1"

# 1. The config file changes (rename-write): the next request on the same connection sees it.
write_config two
wait_until "x-config 'two' after the file changed" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-config: //p') == two ]]"
[[ $(keepalive_get) == two ]] || fail "the keep-alive connection did not take the new config"
grep -q '"state":"ACCEPTED"' <<<"$(last_update)" || fail "last_update: $(last_update)"
[[ $(version) == 2 ]] || fail "version after one reload: $(version)"
# Only the plugin configuration changed: the VMs stay (as Envoy's vm_key rule has it: same code,
# vm_id and VM configuration), and the new configuration gets a root context in each. Only the
# canary that checked it is a new VM.
[[ $(stat_of wasm.envoy.wasm.runtime.v8.created) == $((created + 1)) ]] ||
  fail "a plugin configuration change keeps the VMs: created $(stat_of wasm.envoy.wasm.runtime.v8.created), was $created"
pass "config file change: keep-alive connection switches at its next request; VMs kept"

# 2. A change that leaves the plugins alone keeps every VM.
created=$(stat_of wasm.envoy.wasm.runtime.v8.created)
write_config two "" "/"
grep -q '"state":"ACCEPTED"' <<<"$(curl -s -X POST "http://127.0.0.1:$ADMIN_PORT/reload")" || fail "POST /reload"
[[ $(stat_of wasm.envoy.wasm.runtime.v8.created) == "$created" ]] || fail "a reload without plugin changes made VMs"
grep -q "2 of its Wasm plugin(s) unchanged" "$WORK/sluice.log" || fail "reuse not logged"
pass "POST /reload; unchanged plugins keep their VMs"

# 3. The module file changes: its plugin gets the new code.
cp "$WORK/hallo.wasm" "$WORK/module.wasm.tmp" && mv "$WORK/module.wasm.tmp" "$WORK/module.wasm"
wait_until "x-wasm 'hallo' after the module changed" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-wasm: //p') == hallo ]]"
[[ $(keepalive_get) == two ]] || fail "keep-alive connection after the module change"
pass "module file change reloads the plugin"

# 4. Bad changes are rejected and change nothing.
v=$(version)
rejected_before=$(stat_of sluice.config_reloads_total.rejected)
n=$(reloads)
printf 'static_resources: [ unclosed\n' > "$WORK/sluice.yaml.tmp" && mv "$WORK/sluice.yaml.tmp" "$WORK/sluice.yaml"
await_reload "$n"
grep -q '"state":"REJECTED".*invalid YAML' <<<"$(last_update)" || fail "bad YAML: $(last_update)"
[[ $(header_of x-wasm "$FRONT") == hallo && $(header_of x-config "$FRONT") == two ]] || fail "bad YAML changed what serves"
[[ $(version) == "$v" ]] || fail "version moved on a rejected reload"

n=$(reloads)
write_config three
await_reload "$n"
[[ $(header_of x-config "$FRONT") == three ]] || fail "a good config after a bad one"
n=$(reloads)
printf 'not a wasm module' > "$WORK/module.wasm.tmp" && mv "$WORK/module.wasm.tmp" "$WORK/module.wasm"
await_reload "$n"
grep -q '"state":"REJECTED".*module.wasm' <<<"$(last_update)" || fail "broken module: $(last_update)"
[[ $(header_of x-wasm "$FRONT") == hallo ]] || fail "a broken module replaced the running one"
n=$(reloads)
cp "$WORK/hello.wasm" "$WORK/module.wasm"
await_reload "$n"
[[ $(header_of x-wasm "$FRONT") == hello ]] || fail "the module put back"

n=$(reloads)
config "bad = rule" | sed 's/response.set.x-config = bad = rule/bogus.key = 1/' > "$WORK/sluice.yaml.tmp"
mv "$WORK/sluice.yaml.tmp" "$WORK/sluice.yaml"
await_reload "$n"
grep -q '"state":"REJECTED".*tagger' <<<"$(last_update)" || fail "a plugin refusing its configuration: $(last_update)"
[[ $(header_of x-config "$FRONT") == three ]] || fail "a refused plugin configuration changed what serves"

n=$(reloads)
config three | sed 's/connect_timeout: 1s/connect_timeout: 2s/' > "$WORK/sluice.yaml"
await_reload "$n"
out=$(curl -s -X POST -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/reload")
[[ $out == *'static_resources.clusters need a restart'*400 ]] || fail "a cluster change must be refused: $out"
[[ $(stat_of sluice.config_reloads_total.rejected) == $((rejected_before + 5)) ]] ||
  fail "rejections counted: $(stat_of sluice.config_reloads_total.rejected), was $rejected_before"
[[ $(curl -s http://127.0.0.1:$ADMIN_PORT/ready) == LIVE ]] || fail "/ready after rejected reloads"
[[ $(header_of x-config "$FRONT") == three ]] || fail "still serving after rejections"
pass "bad YAML, a broken module, a refused plugin configuration and a cluster change are rejected"

# 5. Listeners come and go; the others keep their sockets.
n=$(reloads)
write_config four extra
await_reload "$n"
curl -fs -o /dev/null "http://127.0.0.1:$EXTRA/" || fail "the new listener does not answer"
[[ $(keepalive_get) == four ]] || fail "keep-alive connection after adding a listener"
n=$(reloads)
write_config five
await_reload "$n"
curl -s -o /dev/null "http://127.0.0.1:$EXTRA/" && fail "the removed listener still accepts"
[[ $(header_of x-config "$FRONT") == five ]] || fail "front after removing 'extra'"
[[ $(stat_of listener_manager.listener_added) == 1 && $(stat_of listener_manager.listener_removed) == 1 ]] ||
  fail "listener_manager counters: added $(stat_of listener_manager.listener_added) removed $(stat_of listener_manager.listener_removed)"
pass "listeners added and removed at run time"

# 6. SIGHUP reloads, and so does a file written in place (no rename).
n=$(reloads)
kill -HUP "$SLUICE_PID"
await_reload "$n"
grep -q '"state":"ACCEPTED","trigger":"SIGHUP"' <<<"$(last_update)" || fail "SIGHUP: $(last_update)"
n=$(reloads)
config six > "$WORK/sluice.yaml.new"
cat "$WORK/sluice.yaml.new" > "$WORK/sluice.yaml"
await_reload "$n"
[[ $(header_of x-config "$FRONT") == six ]] || fail "in-place write"
[[ $(keepalive_get) == six ]] || fail "keep-alive connection on the last version"
exec 3>&-
pass "SIGHUP and in-place writes reload"

# Per-plugin gauges (each worker refreshes its share every second): one live VM per worker for
# each plugin, whatever the reloads before, and their memory.
wait_until "vms_active settles at one VM per worker" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/stats/prometheus | grep -q '^sluice_wasm_vms_active{plugin=\"tagger\"} 2\$'"
mem=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" | sed -n 's/^sluice_wasm_memory_bytes{plugin="basic"} //p')
(( mem >= 2 * 131072 )) || fail "memory_bytes of basic (2 pages per VM, 2 VMs): $mem"
grep -q '"name":"tagger".*"vms":\[{"thread":"worker 0","state":"running","memory_bytes":[1-9]' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/wasm")" ||
  fail "/wasm after reloads: $(curl -s "http://127.0.0.1:$ADMIN_PORT/wasm")"
pass "per-plugin VM and memory gauges; /wasm"

grep -q 'ERROR: AddressSanitizer' "$WORK/sluice.log" && fail "sanitizer report"
stop_sluice
pass "config reload"
