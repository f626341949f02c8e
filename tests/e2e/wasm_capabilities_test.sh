#!/usr/bin/env bash
# capability_restriction_config: add_header (our SDK, V8) with header writes left out of its
# allowed capabilities still loads and serves, but its writes are answered InternalFailure (and
# logged once); with its response-headers callback left out, the callback is never called. The
# same plugin without restrictions adds its header.
source "$(dirname "$0")/lib.sh"
require_extensions add_header
UP=$(free_port); P1=$(free_port); P2=$(free_port); P3=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"

# restricted NAME CAPABILITIES: an add_header filter setting x-tag on responses, allowed only
# CAPABILITIES (a YAML flow map body).
restricted() {
  sdk_filter "$1" v8 add_header "response.set.x-tag = $1" |
    sed "s/^\(                name: $1\)$/\1\n                capability_restriction_config: { allowed_capabilities: { $2 } }/"
}
# add_header hands its response edits to Sluice from on_request_headers (a header edit set,
# through proxy_call_foreign_function); Sluice refuses a set whose writes or callback the
# restrictions leave out, and the SDK then makes the writes itself in on_response_headers.
base='proxy_on_context_create: {}, proxy_on_vm_start: {}, proxy_on_configure: {}, proxy_on_done: {}, proxy_on_delete: {}, proxy_on_log: {}, proxy_log: {}, proxy_get_buffer_bytes: {}, fd_write: {}, proxy_get_header_map_value: {}, proxy_get_property: {}, proxy_get_buffer_status: {}, proxy_on_request_headers: {}, proxy_call_foreign_function: {}, proxy_define_metric: {}, proxy_increment_metric: {}'
sdk_bootstrap "$UP" "$(
  sdk_listener writes "$P1" "$(restricted writes "$base, proxy_on_response_headers: {}")"
  sdk_listener callback "$P2" "$(restricted callback "$base, proxy_replace_header_map_value: {}, proxy_add_header_map_value: {}")"
  sdk_listener open "$P3" "$(sdk_filter open v8 add_header "response.set.x-tag = open")"
)" > "$WORK/caps.yaml"
grep -q 'capability_restriction_config' "$WORK/caps.yaml" || fail "the test config has no restrictions"
start_sluice "$WORK/caps.yaml"

tag_of() {  # PORT: "tag=<x-tag> status=<code>"
  local headers
  headers=$(curl -s -D - -o /dev/null "http://127.0.0.1:$1/" | tr -d '\r')
  echo "tag=$(sed -n 's/^x-tag: //Ip' <<<"$headers") status=$(sed -n '1s/^HTTP[^ ]* \([0-9]*\).*/\1/p' <<<"$headers")"
}
[[ $(tag_of "$P3") == "tag=open status=200" ]] || fail "unrestricted plugin: $(tag_of "$P3")"
for _ in 1 2 3; do
  [[ $(tag_of "$P1") == "tag= status=200" ]] || fail "header writes not allowed: $(tag_of "$P1")"
done
[[ $(grep -c "plugin 'writes' called env.proxy_replace_header_map_value, which its capability_restriction_config does not allow: answered InternalFailure" "$WORK/sluice.log") == 1 ]] ||
  fail "the denied call is logged once: $(grep -c 'does not allow' "$WORK/sluice.log")"
pass "a host function left out answers InternalFailure (logged once); the stream goes on"

[[ $(tag_of "$P2") == "tag= status=200" ]] || fail "callback left out: $(tag_of "$P2")"
grep -q "wasm log callback: add_header: 0 request and 1 response operations" "$WORK/sluice.log" ||
  fail "the plugin did not take its configuration (so the test would prove nothing)"
grep -q "plugin 'callback' called" "$WORK/sluice.log" && fail "the plugin hit a restriction"
pass "a callback left out is never called"
stop_sluice
