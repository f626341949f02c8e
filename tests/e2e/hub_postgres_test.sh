#!/usr/bin/env bash
# The hub with its metadata in PostgreSQL (Debian's server, started here on a random port), as a
# shared deployment runs it: two hub servers on one database (and one blob folder), each seeing
# what was pushed through the other, each accepting the other's registry tokens. Accounts made
# by `sluice hub user add --postgres`; push, pull, search, private repositories, organisations,
# the audit log and bad pushes behave as on SQLite.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
export HOME=$WORK/home SLUICE_HOME=
mkdir -p "$HOME"
ext() { "$SLUICE_BIN" ext "$@"; }
two_module_versions
start_postgres "$(free_port)"
DATA=$WORK/blobs
HUB_STORAGE="--postgres $POSTGRES_URL --data-dir $DATA"
A=$(hub_user alice --admin)
B=$(hub_user bob)
out=$("$SLUICE_BIN" hub user list $HUB_STORAGE) || fail "user list"
[[ $out == *"alice (admin)"*"bob"* ]] || fail "user list: $out"
out=$("$SLUICE_BIN" hub serve --postgres "postgresql://hub@127.0.0.1:1/hub" --data-dir "$DATA" --listen 127.0.0.1:0 2>&1) &&
  fail "a hub started without its database"
[[ $out == *"cannot connect to PostgreSQL"* ]] || fail "no database: $out"
pass "users in PostgreSQL; a database that is not there is a clear start-up error"

start_hub "$DATA" --postgres "$POSTGRES_URL"
FIRST=$HUB
start_hub "$DATA" --postgres "$POSTGRES_URL"
SECOND=$HUB
api() { curl -s -u "$1" "${@:2}"; }
status() { curl -s -o "$WORK/out" -w '%{http_code}' "$@"; }

echo "$A" | ext login "$FIRST" -u alice --password-stdin --plain-http > /dev/null || fail "login"
out=$(ext push "$WORK/hello.wasm" "$FIRST/alice/hello:v1" --plain-http 2>&1) || fail "push: $out"
out=$(ext pull "$SECOND/alice/hello:v1" -o "$WORK/pulled.wasm" --plain-http 2>&1) || fail "pull from the other hub: $out"
cmp -s "$WORK/pulled.wasm" "$WORK/hello.wasm" || fail "pulled module differs"
TOKEN=$(curl -s -u "alice:$A" "http://$FIRST/v2/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ $(status -H "authorization: Bearer $TOKEN" "http://$SECOND/v2/alice/hello/tags/list") == 200 ]] ||
  fail "the second hub refused the first's registry token"
pass "two hubs on one database: a push through one pulls through the other; tokens work on both"

s=$(curl -s "http://$SECOND/api/v1/search?q=HELLO")
[[ $s == *'"name":"alice/hello"'* && $s == *'"abi_versions":["0.2.1"]'* ]] || fail "search: $s"
[[ $(status -u "alice:$A" -X POST -d '{"name":"acme"}' "http://$FIRST/api/v1/orgs") == 201 ]] || fail "org"
[[ $(status -u "alice:$A" -X PUT -d '{"role":"maintainer"}' "http://$SECOND/api/v1/orgs/acme/members/bob") == 200 ]] || fail "member"
echo "$B" | ext login "$SECOND" -u bob --password-stdin --plain-http > /dev/null || fail "bob login"
ext push "$WORK/hallo.wasm" "$SECOND/acme/tool:v1" --plain-http > /dev/null 2>&1 || fail "bob into acme"
out=$(ext push "$WORK/hallo.wasm" "$SECOND/alice/bobs:v1" --plain-http 2>&1) && fail "bob pushed into alice"
[[ $out == *"bob may not push to alice"* ]] || fail "bob into alice: $out"
[[ $(status -u "alice:$A" -X PATCH -d '{"private":true}' "http://$FIRST/api/v1/extensions/acme/tool") == 200 ]] || fail "private"
[[ $(status "http://$SECOND/v2/acme/tool/manifests/v1") == 401 ]] || fail "anonymous pull of a private repo"
grep -q '"total":0' <<<"$(curl -s "http://$FIRST/api/v1/search?q=tool")" || fail "search showed a private repo"
grep -q '"total":1' <<<"$(api "bob:$B" "http://$FIRST/api/v1/search?q=tool")" || fail "member search"
pass "search, organisations, permissions and private repositories on PostgreSQL"

printf '(module (memory (export "memory") 1))' > "$WORK/noabi.wat"
wat2wasm "$WORK/noabi.wat" -o "$WORK/noabi.wasm"
printf 'config' > "$WORK/config.json"
HUB=$FIRST
[[ $(hub_blob "alice:$A" alice/bad "$WORK/noabi.wasm") == 201 && $(hub_blob "alice:$A" alice/bad "$WORK/config.json") == 201 ]] || fail "blobs"
oci_manifest "$WORK/config.json" "$WORK/noabi.wasm" > "$WORK/m.json"
[[ $(status -u "alice:$A" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
     --data-binary @"$WORK/m.json" "http://$FIRST/v2/alice/bad/manifests/v1") == 400 ]] || fail "a module without ABI accepted"
grep -q 'no proxy_abi_version_' "$WORK/out" || fail "no-ABI message: $(cat "$WORK/out")"
audit=$(api "alice:$A" "http://$SECOND/api/v1/audit")
[[ $audit == *'"action":"push","actor":"bob"'* && $audit == *'"action":"private"'* && $audit == *'"action":"org.member"'* ]] ||
  fail "audit: $audit"
pass "bad pushes refused; the audit log is shared"
