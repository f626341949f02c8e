#!/usr/bin/env bash
# The auth extension (extensions/auth/): API keys and HTTP Basic users from the configuration
# (V8 and the null runtime), and credentials checked by an authorization service over
# http_call with its verdicts cached. No credentials: 401 with a challenge; wrong ones: 401 or
# 403 as configured; accepted: the upstream sees x-auth-user (never the client's own).
source "$(dirname "$0")/lib.sh"
require_extensions auth
UP=$(free_port); KEYS=$(free_port); BASIC=$(free_port); SVC=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
HUNTER=$(printf 'hunter2' | sha256sum | cut -d' ' -f1)
sdk_bootstrap "$UP" "$(
  sdk_listener keys "$KEYS" "$(sdk_filter keys v8 auth "keys = k1:alice, k2:bob\ndeny_status = 403\nstrip = true")"
  sdk_listener basic "$BASIC" "$(sdk_filter basic null auth "mode = basic\nusers = alice:s3cret, bob:sha256:$HUNTER\nrealm = test")"
  sdk_listener svc "$SVC" "$(sdk_filter svc v8 auth "header = authorization\ncluster = nginx\npath = /auth-check\ncache_seconds = 30")"
)" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
user_at() { curl -s "${@:2}" "http://127.0.0.1:$1/headers" | grep -o 'user=[^ ]*'; }
code() { curl -s -D "$WORK/h" -o "$WORK/body" -w '%{http_code}' "${@:2}" "http://127.0.0.1:$1/headers"; }

[[ $(code "$KEYS") == 401 ]] && grep -qi 'www-authenticate: ApiKey header="x-api-key"' "$WORK/h" || fail "no key: $(cat "$WORK/h")"
[[ $(user_at "$KEYS" -H "x-api-key: k1") == "user=alice" ]] || fail "k1"
[[ $(user_at "$KEYS" -H "x-api-key: k2" -H "x-auth-user: mallory") == "user=bob" ]] || fail "k2 with a forged user"
[[ $(code "$KEYS" -H "x-api-key: nope") == 403 ]] || fail "a wrong key was not 403"
pass "API keys: 401 without, 403 for a wrong one, x-auth-user for the right one (a forged one replaced)"

[[ $(code "$BASIC") == 401 ]] && grep -qi 'www-authenticate: Basic realm="test"' "$WORK/h" || fail "no Basic: $(cat "$WORK/h")"
[[ $(user_at "$BASIC" -u alice:s3cret) == "user=alice" ]] || fail "alice"
[[ $(user_at "$BASIC" -u bob:hunter2) == "user=bob" ]] || fail "bob (sha256 password)"
[[ $(code "$BASIC" -u alice:wrong) == 401 ]] || fail "a wrong password"
[[ $(code "$BASIC" -H "authorization: Basic !!!") == 401 ]] || fail "malformed Basic"
pass "Basic users (plain and sha256 passwords) on the null runtime; wrong or malformed is 401"

[[ $(user_at "$SVC" -H "authorization: Bearer good") == "user=alice" ]] || fail "the service's user"
[[ $(code "$SVC" -H "authorization: Bearer bad") == 401 ]] || fail "the service's refusal"
for i in 1 2 3; do [[ $(user_at "$SVC" -H "authorization: Bearer good") == "user=alice" ]] || fail "cached $i"; done
[[ $(code "$SVC" -H "authorization: Bearer bad") == 401 ]] || fail "cached refusal"
[[ $(stat_of auth.svc.cache_hits) -ge 2 ]] || fail "cache hits: $(stat_of auth.svc.cache_hits)"
pass "credentials checked by a service over http_call, its verdicts cached"
[[ $(stat_of auth.keys.allowed) -ge 2 && $(stat_of auth.keys.denied) -ge 2 ]] || fail "counters"
pass "auth.<name>.allowed and .denied count"
