#!/usr/bin/env bash
# Hot reload of a network filter chain: a TCP connection opened before the reload keeps the
# plugin configuration it started with to its end; new connections take the new one; the old
# root context ends once its last connection closes.
source "$(dirname "$0")/lib.sh"
command -v socat > /dev/null || fail "socat is not installed (make deps)"
require_extensions tcp_rewrite
ECHO=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
serve_tcp "$ECHO" cat

config() {  # REPLACEMENT: tcp_rewrite turns "ping" into it
  tcp_bootstrap "$PORT" "$ECHO" "$(sdk_network_filter rewrite v8 tcp_rewrite "from = ping\nto = $1")"
}
# ask FD: sends "ping" on an open connection, prints the echoed line.
ask() {
  local line
  printf 'ping\n' >&"$1"
  IFS= read -r -t 5 line <&"$1" || true
  echo "$line"
}
fresh() {  # one line over a new connection
  exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
  ask "$fd"
  exec {fd}>&-
}

config one > "$WORK/sluice.yaml"
SLUICE_CONCURRENCY=1 start_sluice "$WORK/sluice.yaml"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
[[ $(ask 3) == one ]] || fail "version 1 on the long-lived connection"

n=$(reloads)
config two > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
await_reload "$n"
grep -q '"state":"ACCEPTED"' <<<"$(curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump")" || fail "reload not accepted"
[[ $(fresh) == two ]] || fail "a new connection after the reload: $(fresh)"
[[ $(ask 3) == one ]] || fail "the connection opened before the reload changed plugin configuration"
pass "open TCP connections keep their plugin; new ones take the new configuration"

grep -q "released 1 plugin instance" "$WORK/sluice.log" && fail "the old root ended while its connection was open"
exec 3>&-
wait_until "the old root ends once its last connection closed" grep -q "released 1 plugin instance" "$WORK/sluice.log"
[[ $(fresh) == two ]] || fail "after the old connection closed"
pass "the replaced plugin's root ends after its last connection"
stop_sluice
