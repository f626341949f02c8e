#!/usr/bin/env bash
# The routing extension (extensions/routing/) on V8 and the null runtime: it names the cluster a
# `cluster_header` route sends to: by weights over a consistent hash of a user header (the same
# user always lands on the same cluster; about the configured share of users on the canary), or
# outright through an override cookie or header naming a listed cluster; and it rewrites a path
# prefix. Bad configurations are refused.
source "$(dirname "$0")/lib.sh"
require_extensions routing
UP=$(free_port); CANARY=$(free_port); FRONT=$(free_port); NATIVE=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
start_nginx "$CANARY"
ROUTES='- { match: { prefix: "/" }, route: { cluster_header: x-route-cluster } }'
CONF="clusters = nginx:90, canary:10\nhash = header:x-user-id\noverride = cookie:force\nrewrite = /v1/ -> /"
{
  sdk_bootstrap "$UP" "$(
    sdk_listener front "$FRONT" "$(sdk_filter route v8 routing "$CONF")" "$ROUTES"
    sdk_listener native "$NATIVE" "$(sdk_filter route_native null routing "clusters = nginx:0, canary:1\noverride = header:x-force")" "$ROUTES"
  )"
  static_cluster canary "$CANARY"
} > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
at() { curl -s "${@:2}" "http://127.0.0.1:$1/"; }

# The same user, the same cluster, every time; over 300 users, about 10% on the canary.
first=$(at "$FRONT" -H "x-user-id: user-7")
for i in $(seq 10); do [[ $(at "$FRONT" -H "x-user-id: user-7") == "$first" ]] || fail "user-7 moved"; done
canary=0
for u in $(seq 300); do [[ $(at "$FRONT" -H "x-user-id: u$u") == "upstream $CANARY" ]] && canary=$((canary + 1)); done
(( canary >= 12 && canary <= 55 )) || fail "$canary of 300 users on the canary (want about 30)"
pass "a consistent hash of x-user-id: each user sticks to one cluster, $canary of 300 on the 10% canary"

[[ $(at "$FRONT" -H "x-user-id: u1" -H "cookie: a=b; force=canary") == "upstream $CANARY" ]] || fail "override cookie"
[[ $(at "$FRONT" -H "cookie: force=nginx") == "upstream $UP" ]] || fail "override to stable"
out=$(at "$FRONT" -H "cookie: force=elsewhere" -H "x-user-id: user-7")
[[ $out == "$first" ]] || fail "an unlisted override was obeyed: $out"
pass "an override cookie naming a listed cluster wins; an unlisted one is ignored"

out=$(curl -s -H "cookie: force=nginx" "http://127.0.0.1:$FRONT/v1/headers")
[[ $out == *"uri=/headers"* ]] || fail "rewrite: $out"
pass "a path prefix rewrite (/v1/ -> /) reaches the upstream"

[[ $(at "$NATIVE") == "upstream $CANARY" ]] || fail "null runtime: weight 0 chosen"
[[ $(at "$NATIVE" -H "x-force: nginx") == "upstream $UP" ]] || fail "null runtime override header"
pass "the null runtime build; weight 0 is never chosen; an override header"
[[ $(stat_of routing.route.canary) -ge 12 ]] || fail "counter: $(stat_of routing.route.canary)"

# Bad configurations: the plugin refuses them at start-up, saying why.
BAD=$(free_port)
for bad in "clusters = a:x" "clusters = a:0" "hash = query:x\nclusters = a" "rewrite = v1 -> /\nclusters = a" "colour = blue\nclusters = a"; do
  sdk_bootstrap "$UP" "$(sdk_listener bad "$BAD" "$(sdk_filter route v8 routing "$bad")" "$ROUTES")" |
    sed "s/port_value: $ADMIN_PORT/port_value: 0/" > "$WORK/bad.yaml"
  out=$(timeout 20 "$SLUICE_BIN" -c "$WORK/bad.yaml" --concurrency 1 2>&1) && fail "'$bad' started"
  [[ $out == *"wasm log route: routing: "*"plugin configuration rejected"* ]] || fail "'$bad': $(tail -3 <<<"$out")"
done
pass "bad configurations are refused at start-up with the reason"
