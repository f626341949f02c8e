#!/usr/bin/env bash
# vm_config.code.remote: modules fetched from nginx through a cluster, checked against their
# sha256 and cached by hash. At start-up, in a reload (POST /reload answers 202 while it
# fetches), from the cache on the way back, and the failures: a hash mismatch, a 404 (after the
# configured retries), an unreachable server at start-up (sluice exits with the reason), a bad
# sha256 in the config.
source "$(dirname "$0")/lib.sh"
UP=$(free_port); FRONT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
two_module_versions
mkdir -p "$WORK/nginx-$UP/html/m"
sed 's/"hello")/"hullo")/' "$SLUICE_SOURCE_DIR/tests/wasm/filter_basic.wat" > "$WORK/hullo.wat"
wat2wasm "$WORK/hullo.wat" -o "$WORK/hullo.wasm"
cp "$WORK/hello.wasm" "$WORK/hallo.wasm" "$WORK/hullo.wasm" "$WORK/nginx-$UP/html/m/"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
HELLO=$(sha_of "$WORK/hello.wasm"); HALLO=$(sha_of "$WORK/hallo.wasm"); HULLO=$(sha_of "$WORK/hullo.wasm")
OTHER=$(printf 'not served anywhere' | sha256sum | cut -d' ' -f1)

# config PATH SHA256 [CLUSTER_PORT] [CACHE_DIR]: front with a Wasm filter whose code is at
# http://modules/PATH (and sluice.wasm.code_cache_dir CACHE_DIR).
config() {
  local filter
  filter=$(remote_wasm_filter basic "http_uri: { uri: \"http://modules/$1\", cluster: nginx, timeout: 2s }, sha256: $2, retry_policy: { num_retries: 1, retry_back_off: { base_interval: 0.1s } }")
  sdk_bootstrap "${3:-$UP}" "$(sdk_listener front "$FRONT" "$filter")"
  [[ -z ${4:-} ]] || printf 'sluice:\n  wasm:\n    code_cache_dir: %s\n' "$4"
}
x_wasm() { curl -s -D - -o /dev/null "http://127.0.0.1:$FRONT/" | tr -d '\r' | sed -n 's/^x-wasm: //p'; }
last_update() { curl -s "http://127.0.0.1:$ADMIN_PORT/config_dump" | grep -o '"last_update":{[^}]*}'; }
reload_now() { curl -s -o "$WORK/reload.json" -w '%{http_code}' -X POST "http://127.0.0.1:$ADMIN_PORT/reload"; }

# Validation: the hash is required and must be one.
config m/hello.wasm 1234 > "$WORK/bad.yaml"
out=$("$SLUICE_BIN" --mode validate -c "$WORK/bad.yaml" 2>&1) && fail "a bad sha256 validated"
[[ $out == *"sha256 must be 64 hex digits"* ]] || fail "bad sha256: $out"
pass "a bad sha256 is a config error"

config m/hello.wasm "$HELLO" > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
[[ $(x_wasm) == hello ]] || fail "remote module at start-up"
[[ $(stat_of wasm.remote_load_fetch_successes) == 1 && $(stat_of wasm.remote_load_cache_entries) == 1 ]] ||
  fail "fetch counted: $(stat_of wasm.remote_load_fetch_successes) / entries $(stat_of wasm.remote_load_cache_entries)"
grep -q "fetched http://modules/m/hello.wasm" "$WORK/sluice.log" || fail "fetch not logged"
pass "remote code fetched, checked and running at start-up"

# A reload to new code: fetched in the background (202), then switched.
# (The count is read before the change: the watcher's reload may be over before a read after it.)
config m/hallo.wasm "$HALLO" > "$WORK/next.yaml"
n=$(reloads)
mv "$WORK/next.yaml" "$WORK/sluice.yaml"
await_reload "$n"   # the file watcher's reload
[[ $(x_wasm) == hallo ]] || fail "new remote code after the reload: $(x_wasm), $(last_update)"
[[ $(stat_of wasm.remote_load_fetch_successes) == 2 ]] || fail "second fetch not counted"
pass "a reload fetches new remote code, then switches"

# Back to the first code: in the cache, no fetch, answered at once.
config m/hello.wasm "$HELLO" > "$WORK/next.yaml"
n=$(reloads)
mv "$WORK/next.yaml" "$WORK/sluice.yaml"
await_reload "$n"
[[ $(x_wasm) == hello ]] || fail "cached code after the reload"
[[ $(stat_of wasm.remote_load_fetch_successes) == 2 ]] || fail "cached code fetched again"
(( $(stat_of wasm.remote_load_cache_hits) >= 2 )) || fail "cache hits: $(stat_of wasm.remote_load_cache_hits)"
code=$(reload_now)
[[ $code == 200 ]] || fail "POST /reload with cached code: $code $(cat "$WORK/reload.json")"
pass "code back from the cache, without a fetch"

# Failures leave the running code alone. (The cache is by hash: a URL with a hash already
# cached is not fetched at all, as in Envoy; these hashes are not cached.)
config m/hullo.wasm "$OTHER" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
wait_until "the mismatch rejected" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/config_dump | grep -q '\"state\":\"REJECTED\".*sha256 mismatch'"
[[ $(x_wasm) == hello ]] || fail "a mismatching module replaced the running one"
config m/missing.wasm "$OTHER" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
wait_until "the 404 rejected" bash -c "curl -s http://127.0.0.1:$ADMIN_PORT/config_dump | grep -q '\"state\":\"REJECTED\".*missing.wasm.*2 attempt(s)): HTTP 404'"
[[ $(x_wasm) == hello ]] || fail "a missing module replaced the running one"
(( $(stat_of wasm.remote_load_fetch_failures) >= 4 )) || fail "fetch failures: $(stat_of wasm.remote_load_fetch_failures)"
pass "a hash mismatch and a 404 (after its retry) are rejected"

# POST /reload that needs a fetch answers 202; the outcome lands in last_update. (The file
# watcher's own reload of the same change, asked meanwhile, runs after it.)
config m/hullo.wasm "$HULLO" > "$WORK/next.yaml" && mv "$WORK/next.yaml" "$WORK/sluice.yaml"
code=$(reload_now)
[[ $code == 202 ]] || fail "POST /reload needing a fetch: $code $(cat "$WORK/reload.json")"
grep -q '"state":"PENDING"' "$WORK/reload.json" || fail "202 body: $(cat "$WORK/reload.json")"
wait_until "hullo serving" bash -c "[[ \$(curl -s -D - -o /dev/null http://127.0.0.1:$FRONT/ | tr -d '\r' | sed -n 's/^x-wasm: //p') == hullo ]]"
pass "POST /reload answers 202 while it fetches, then switches"
stop_sluice

# Start-up with an unreachable server: sluice exits and says why.
DEAD=$(free_port)
config m/hello.wasm "$HELLO" "$DEAD" > "$WORK/dead.yaml"
if timeout 20 "$SLUICE_BIN" -c "$WORK/dead.yaml" --concurrency 1 > "$WORK/dead.log" 2>&1; then
  fail "sluice started without its remote code"
fi
grep -q "cannot fetch Wasm code http://modules/m/hello.wasm from cluster 'nginx' (2 attempt(s))" "$WORK/dead.log" ||
  fail "start-up failure: $(tail -3 "$WORK/dead.log")"
pass "start-up without reachable code fails with the reason"

# The disk cache: a start-up that fetched writes <sha256>.wasm; a later start-up with the server
# gone starts from it; a cache file that does not hash to its name is not trusted.
config m/hello.wasm "$HELLO" "$UP" "$WORK/cache" > "$WORK/cached.yaml"
start_sluice "$WORK/cached.yaml"
[[ $(x_wasm) == hello ]] || fail "start-up with a cache dir"
[[ -f $WORK/cache/$HELLO.wasm && $(sha_of "$WORK/cache/$HELLO.wasm") == "$HELLO" ]] || fail "nothing cached on disk"
stop_sluice
config m/hello.wasm "$HELLO" "$DEAD" "$WORK/cache" > "$WORK/cached-dead.yaml"
start_sluice "$WORK/cached-dead.yaml"
[[ $(x_wasm) == hello ]] || fail "start-up from the disk cache"
grep -q "taken from the disk cache" "$WORK/sluice.log" || fail "disk cache use not logged"
failures=$(stat_of wasm.remote_load_fetch_failures)
[[ ${failures:-0} == 0 ]] || fail "the disk cache hit still fetched ($failures failures)"
stop_sluice
printf 'tampered' >> "$WORK/cache/$HELLO.wasm"
if timeout 20 "$SLUICE_BIN" -c "$WORK/cached-dead.yaml" --concurrency 1 > "$WORK/tampered.log" 2>&1; then
  fail "started from a tampered cache file"
fi
grep -q "does not hash to its name; ignored" "$WORK/tampered.log" || fail "tampered cache: $(tail -3 "$WORK/tampered.log")"
pass "the disk cache serves a restart without the server, and is checked"
