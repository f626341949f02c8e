#!/usr/bin/env bash
# The hub server (`sluice hub serve`, SQLite): accounts and tokens made by `sluice hub user add`
# and the API; push and pull with `sluice ext` through the registry Bearer flow; who may push
# where (users, organisations, token scopes), private repositories; search and extension API;
# the audit log; skopeo copying between the hub and Debian's docker-registry both ways; a
# restart keeping everything. Bad input, none of it stored: no or wrong credentials, corrupt
# blobs and digest mismatches, manifests naming missing blobs or holding no valid Proxy-Wasm
# module, path tricks in names, uploads over the size limit, chunks out of order; and
# concurrent pushes to one tag.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
command -v skopeo > /dev/null || fail "skopeo is needed (make deps)"
export HOME=$WORK/home SLUICE_HOME=
mkdir -p "$HOME"
ext() { "$SLUICE_BIN" ext "$@"; }
two_module_versions
DATA=$WORK/hub-data
HUB_STORAGE="--data-dir $DATA"
A=$(hub_user alice --admin)   # an administrator
B=$(hub_user bob)             # a user
C=$(hub_user carol)
[[ $A == slh_* && $B == slh_* ]] || fail "tokens: $A $B"
out=$("$SLUICE_BIN" hub user add alice $HUB_STORAGE 2>&1) && fail "a second alice was added"
[[ $out == *"the name alice is taken"* ]] || fail "duplicate user: $out"
out=$("$SLUICE_BIN" hub user add ../x $HUB_STORAGE 2>&1) && fail "a bad user name was accepted"
[[ $out == *"user names are"* ]] || fail "bad user name: $out"
# --max-blob-size 1: uploads over 1 MiB are refused.
start_hub "$DATA" --max-blob-size 1
api() { curl -s -u "$1" "${@:2}"; }
status() { curl -s -o "$WORK/out" -w '%{http_code}' "$@"; }
pass "users added offline, each with a token shown once"

# The registry's probe: anonymous callers get the Bearer challenge naming the token service.
hdrs=$(curl -s -D - -o /dev/null "http://$HUB/v2/" | tr -d '\r')
[[ $hdrs == *"401"* && $hdrs == *"www-authenticate: Bearer realm=\"http://$HUB/v2/token\",service=\"sluice-hub\""* ]] ||
  fail "challenge: $hdrs"
[[ $(status -u "alice:$A" "http://$HUB/v2/") == 200 ]] || fail "/v2/ with Basic"
[[ $(status -u "alice:slh_0000000000000000_0000000000000000000000000000000000000000" "http://$HUB/v2/token") == 401 ]] ||
  fail "a wrong token got a registry token"
grep -q "invalid or revoked token" "$WORK/out" || fail "wrong token message: $(cat "$WORK/out")"
pass "the /v2/ challenge, and the token service refusing a wrong token"

# Push without credentials, with a wrong token: refused, nothing stored.
out=$(ext push "$WORK/hello.wasm" "$HUB/alice/hello:v1" --plain-http 2>&1) && fail "an anonymous push worked"
[[ $out == *"401"* || $out == *"authentication required"* || $out == *"unauthorized"* || $out == *"UNAUTHORIZED"* ]] ||
  fail "anonymous push: $out"
echo "slh_0123456789abcdef_0123456789abcdef0123456789abcdef01234567" |
  ext login "$HUB" -u alice --password-stdin --plain-http > /dev/null 2>&1 && fail "login with a wrong token"
[[ $(api "alice:$A" "http://$HUB/v2/_catalog") == '{"repositories":[]}' ]] || fail "something was stored"
pass "pushes without a token or with a wrong one are refused, nothing stored"

# alice logs in and pushes; anyone pulls the public image back, byte for byte.
echo "$A" | ext login "$HUB" -u alice --password-stdin --plain-http > /dev/null || fail "login"
out=$(ext push "$WORK/hello.wasm" "$HUB/alice/hello:v1" --root-id hello_root --plain-http 2>&1) || fail "push: $out"
HELLO_DIGEST=$(grep -o 'sha256:[0-9a-f]*' <<<"$out" | tail -1)
ext logout "$HUB" > /dev/null
out=$(ext pull "$HUB/alice/hello:v1" -o "$WORK/pulled.wasm" --plain-http 2>&1) || fail "anonymous pull: $out"
cmp -s "$WORK/pulled.wasm" "$WORK/hello.wasm" || fail "pulled module differs"
skopeo inspect --raw --tls-verify=false "docker://$HUB/alice/hello:v1" |
  grep -q 'application/vnd.module.wasm.content.layer.v1+wasm' || fail "skopeo inspect --raw"
pass "push by a logged-in user, anonymous pull of the public image (sluice ext and skopeo)"

# Who may push where.
echo "$B" | ext login "$HUB" -u bob --password-stdin --plain-http > /dev/null || fail "bob login"
out=$(ext push "$WORK/hello.wasm" "$HUB/alice/bobs:v1" --plain-http 2>&1) && fail "bob pushed into alice"
[[ $out == *"bob may not push to alice"* ]] || fail "bob into alice: $out"
out=$(ext push "$WORK/hello.wasm" "$HUB/nobody/x:v1" --plain-http 2>&1) && fail "push to a namespace nobody has"
[[ $out == *"there is no user or organisation nobody"* ]] || fail "unknown namespace: $out"
ext push "$WORK/hallo.wasm" "$HUB/bob/hallo:v1" --plain-http > /dev/null 2>&1 || fail "bob into bob"
# A read-scoped token pulls but never pushes.
R_TOKEN=$(api "bob:$B" -X POST -d '{"scope":"read","description":"ci pulls"}' "http://$HUB/api/v1/tokens" |
  sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ $R_TOKEN == slh_* ]] || fail "read token"
[[ $(status -u "bob:$R_TOKEN" -X POST "http://$HUB/v2/bob/hallo/blobs/uploads/") == 403 ]] || fail "read token pushed"
grep -q "the token's scope is read" "$WORK/out" || fail "read scope message: $(cat "$WORK/out")"
[[ $(status -u "bob:$R_TOKEN" -X POST -d '{"scope":"push"}' "http://$HUB/api/v1/tokens") == 403 ]] ||
  fail "a read token made a push token"
pass "users push to their own namespace only; read tokens pull only"

# Organisations: an owner adds members; maintainers push, readers do not.
[[ $(status -u "alice:$A" -X POST -d '{"name":"acme"}' "http://$HUB/api/v1/orgs") == 201 ]] || fail "org: $(cat "$WORK/out")"
[[ $(status -u "alice:$A" -X PUT -d '{"role":"maintainer"}' "http://$HUB/api/v1/orgs/acme/members/bob") == 200 ]] || fail "member bob"
[[ $(status -u "alice:$A" -X PUT -d '{"role":"reader"}' "http://$HUB/api/v1/orgs/acme/members/carol") == 200 ]] || fail "member carol"
[[ $(status -u "bob:$B" -X PUT -d '{"role":"owner"}' "http://$HUB/api/v1/orgs/acme/members/bob") == 403 ]] || fail "a maintainer promoted himself"
[[ $(status -u "alice:$A" -X DELETE "http://$HUB/api/v1/orgs/acme/members/alice") == 409 ]] || fail "the last owner left"
ext push "$WORK/hello.wasm" "$HUB/acme/tool:v1" --plain-http > /dev/null 2>&1 || fail "maintainer bob into acme"
echo "$C" | ext login "$HUB" -u carol --password-stdin --plain-http > /dev/null || fail "carol login"
out=$(ext push "$WORK/hello.wasm" "$HUB/acme/carols:v1" --plain-http 2>&1) && fail "reader carol pushed"
[[ $out == *"carol may not push to acme"* ]] || fail "reader push: $out"
grep -q '"your_role":"reader"' <<<"$(api "carol:$C" "http://$HUB/api/v1/orgs/acme")" || fail "org page"
pass "organisations: owners manage members, maintainers push, readers do not"

# Private repositories: only the namespace's members see them, in pulls, catalog and search.
[[ $(status -u "alice:$A" -X PATCH -d '{"private":true}' "http://$HUB/api/v1/extensions/acme/tool") == 200 ]] ||
  fail "make private: $(cat "$WORK/out")"
[[ $(status "http://$HUB/v2/acme/tool/manifests/v1") == 401 ]] || fail "anonymous pull of a private repo"
ext logout "$HUB" > /dev/null
out=$(ext pull "$HUB/acme/tool:v1" --plain-http 2>&1) && fail "anonymous sluice ext pull of a private repo"
D=$(hub_user dave)
[[ $(status -u "dave:$D" "http://$HUB/v2/acme/tool/manifests/v1") == 404 ]] || fail "an outsider saw a private repo"
[[ $(status -u "carol:$C" "http://$HUB/v2/acme/tool/manifests/v1") == 200 ]] || fail "a reader could not pull"
[[ $(curl -s "http://$HUB/v2/_catalog") == '{"repositories":["alice/hello","bob/hallo"]}' ]] || fail "anonymous catalog: $(curl -s "http://$HUB/v2/_catalog")"
grep -q 'acme/tool' <<<"$(api "carol:$C" "http://$HUB/v2/_catalog")" || fail "carol's catalog"
grep -q '"total":0' <<<"$(curl -s "http://$HUB/api/v1/search?q=tool")" || fail "search showed a private repo"
grep -q '"total":1' <<<"$(api "carol:$C" "http://$HUB/api/v1/search?q=tool")" || fail "member search"
pass "private repositories are seen by members only (pull, catalog, search)"

# Search and the extension API: what the hub read from the module and the image.
s=$(curl -s "http://$HUB/api/v1/search?q=hello")
[[ $s == *'"name":"alice/hello"'* && $s == *'"abi_versions":["0.2.1"]'* && $s == *'"root_ids":["hello_root"]'* &&
   $s == *'"latest_tag":"v1"'* ]] || fail "search: $s"
e=$(curl -s "http://$HUB/api/v1/extensions/alice/hello")
[[ $e == *"\"digest\":\"$HELLO_DIGEST\""* && $e == *'"host_functions":['* && $e == *'"tags":["v1"]'* &&
   $e == *'"downloads":'[1-9]* ]] || fail "extension API: $e"
[[ $(status "http://$HUB/api/v1/extensions/alice/nothing") == 404 ]] || fail "unknown extension"
pass "search and extension pages from what the push indexed"

# Bad input over raw HTTP: clear errors, nothing stored.
echo "$A" | ext login "$HUB" -u alice --password-stdin --plain-http > /dev/null
printf 'config' > "$WORK/config.json"
[[ $(hub_blob "alice:$A" alice/bad "$WORK/config.json") == 201 ]] || fail "config blob: $(cat "$WORK/blob.out")"
# A blob whose bytes do not match the digest claimed.
printf 'corrupt' > "$WORK/corrupt"
[[ $(status -u "alice:$A" -X POST --data-binary @"$WORK/corrupt" \
     "http://$HUB/v2/alice/bad/blobs/uploads/?digest=sha256:$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)") == 400 ]] ||
  fail "digest mismatch accepted"
grep -q DIGEST_INVALID "$WORK/out" || fail "digest mismatch: $(cat "$WORK/out")"
[[ $(status -u "alice:$A" -I "http://$HUB/v2/alice/bad/blobs/sha256:$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)") == 404 ]] ||
  fail "a mismatched blob was stored"
# A manifest naming a blob never pushed.
oci_manifest "$WORK/config.json" "$WORK/hello.wasm" > "$WORK/m.json"
[[ $(status -u "alice:$A" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
     --data-binary @"$WORK/m.json" "http://$HUB/v2/alice/bad/manifests/v1") == 400 ]] || fail "missing blob accepted"
grep -q MANIFEST_BLOB_UNKNOWN "$WORK/out" || fail "missing blob: $(cat "$WORK/out")"
# Layers that are not Proxy-Wasm modules: garbage, and valid Wasm without an ABI marker.
printf '(module (memory (export "memory") 1))' > "$WORK/noabi.wat"
wat2wasm "$WORK/noabi.wat" -o "$WORK/noabi.wasm"
printf 'not wasm at all' > "$WORK/garbage.wasm"
# Declarations in order, a function body that is not: only compiling finds it.
printf '(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 7))' > "$WORK/badcode.wat"
wat2wasm "$WORK/badcode.wat" -o "$WORK/badcode.wasm"
perl -0777 -pi -e 's/\x41\x07\x0b/\xff\x07\x0b/' "$WORK/badcode.wasm"
for layer in garbage noabi badcode; do
  [[ $(hub_blob "alice:$A" alice/bad "$WORK/$layer.wasm") == 201 ]] || fail "$layer blob"
  oci_manifest "$WORK/config.json" "$WORK/$layer.wasm" > "$WORK/m.json"
  [[ $(status -u "alice:$A" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
       --data-binary @"$WORK/m.json" "http://$HUB/v2/alice/bad/manifests/v1") == 400 ]] || fail "$layer manifest accepted"
  case $layer in
    garbage) why='not a valid WebAssembly module' ;;
    noabi) why='no proxy_abi_version_\* export' ;;
    badcode) why='does not compile' ;;
  esac
  grep -q "MANIFEST_INVALID.*$why" "$WORK/out" || fail "$layer: $(cat "$WORK/out")"
done
# A manifest pushed by digest must have that digest.
[[ $(status -u "alice:$A" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$WORK/m.json" \
     "http://$HUB/v2/alice/bad/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000") == 400 ]] ||
  fail "manifest digest mismatch accepted"
[[ $(api "alice:$A" "http://$HUB/v2/alice/bad/tags/list") == '{"name":"alice/bad","tags":[]}' ]] || fail "a bad push left a tag"
grep -q 'alice/bad' <<<"$(api "alice:$A" "http://$HUB/v2/_catalog")" && fail "alice/bad is in the catalog after bad pushes"
pass "corrupt blobs, digest mismatches, missing blobs and non-Proxy-Wasm layers are refused"

# Names: path tricks and bad names never reach storage.
for path in 'alice/%2e%2e/hello/manifests/v1' 'alice/../hello/manifests/v1' 'Alice/hello/manifests/v1' 'alice/hello/manifests/..%2fx'; do
  code=$(status --path-as-is -u "alice:$A" "http://$HUB/v2/$path")
  [[ $code == 400 || $code == 404 ]] || fail "$path answered $code"
done
[[ $(status --path-as-is -u "alice:$A" "http://$HUB/v2/alice/%2e%2e/hello/manifests/v1") == 400 ]] && grep -q NAME_INVALID "$WORK/out" ||
  fail "an encoded .. in a name: $(cat "$WORK/out")"
[[ $(status -u "alice:$A" "http://$HUB/v2/hello/manifests/v1") == 400 ]] || fail "a name without a namespace"
pass "path traversal and invalid names are refused"

# Chunked uploads: in order they assemble; a chunk at the wrong offset is 416; over the size
# limit the whole upload is dropped.
loc=$(curl -s -D - -o /dev/null -u "alice:$A" -X POST "http://$HUB/v2/alice/chunks/blobs/uploads/" | tr -d '\r' | sed -n 's/^location: //p')
[[ $loc == /v2/alice/chunks/blobs/uploads/* ]] || fail "upload location: $loc"
head -c 1000 "$WORK/hello.wasm" > "$WORK/part1"; tail -c +1001 "$WORK/hello.wasm" > "$WORK/part2"
size1=$(stat -c %s "$WORK/part1")
[[ $(status -u "alice:$A" -X PATCH --data-binary @"$WORK/part1" -H "content-range: 0-$((size1 - 1))" "http://$HUB$loc") == 202 ]] || fail "chunk 1"
[[ $(status -u "alice:$A" -X PATCH --data-binary @"$WORK/part2" -H "content-range: 5-9" "http://$HUB$loc") == 416 ]] || fail "chunk at a wrong offset"
[[ $(status -u "alice:$A" -X PATCH --data-binary @"$WORK/part2" "http://$HUB$loc") == 202 ]] || fail "chunk 2"
[[ $(status -u "alice:$A" -X PUT "http://$HUB$loc?digest=sha256:$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)") == 201 ]] ||
  fail "finishing the chunked upload: $(cat "$WORK/out")"
curl -s -u "alice:$A" -o "$WORK/chunked.wasm" "http://$HUB/v2/alice/chunks/blobs/sha256:$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)"
cmp -s "$WORK/chunked.wasm" "$WORK/hello.wasm" || fail "chunked blob differs"
head -c $((1024 * 1024 + 10)) /dev/urandom > "$WORK/big"
[[ $(hub_blob "alice:$A" alice/big "$WORK/big") == 413 ]] || fail "an oversized upload: $(cat "$WORK/blob.out")"
grep -q SIZE_INVALID "$WORK/blob.out" || fail "oversized: $(cat "$WORK/blob.out")"
[[ $(ls "$DATA/uploads" | wc -l) == 0 ]] || fail "uploads left behind: $(ls "$DATA/uploads")"
pass "chunked uploads; out-of-order chunks and oversized uploads refused, nothing left behind"

# Concurrent pushes to one tag: each push is whole; the tag ends on one of them.
for i in 1 2 3 4; do
  sed "s/(data (i32.const 32) \"hello\")/(data (i32.const 32) \"race$i\")/" "$SLUICE_SOURCE_DIR/tests/wasm/filter_basic.wat" > "$WORK/race$i.wat"
  wat2wasm "$WORK/race$i.wat" -o "$WORK/race$i.wasm"
done
for i in 1 2 3 4; do ext push "$WORK/race$i.wasm" "$HUB/alice/race:latest" --plain-http > "$WORK/race$i.out" 2>&1 & done
wait_failed=0
for job in $(jobs -p); do [[ $job == "$HUB_PID" ]] || wait "$job" || wait_failed=1; done
ext pull "$HUB/alice/race:latest" -o "$WORK/race.wasm" --plain-http > /dev/null 2>&1 || fail "pull after the race"
match=0
for i in 1 2 3 4; do cmp -s "$WORK/race.wasm" "$WORK/race$i.wasm" && match=1; done
(( match == 1 )) || fail "the raced tag holds none of the pushed modules"
(( wait_failed == 0 )) || fail "a concurrent push failed: $(cat "$WORK"/race*.out)"
pass "four concurrent pushes to one tag: all accepted, the tag names one whole image"

# skopeo between the hub and docker-registry, both ways; the copy back pulls the same module.
REG=$(free_port)
start_registry "$REG"
skopeo --insecure-policy copy --src-tls-verify=false --dest-tls-verify=false \
  "docker://$HUB/alice/hello:v1" "docker://127.0.0.1:$REG/mirror/hello:v1" > "$WORK/skopeo.log" 2>&1 ||
  fail "skopeo hub -> registry: $(tail -3 "$WORK/skopeo.log")"
skopeo --insecure-policy copy --src-tls-verify=false --dest-tls-verify=false --dest-creds "alice:$A" \
  "docker://127.0.0.1:$REG/mirror/hello:v1" "docker://$HUB/alice/roundtrip:v1" > "$WORK/skopeo.log" 2>&1 ||
  fail "skopeo registry -> hub: $(tail -3 "$WORK/skopeo.log")"
ext pull "$HUB/alice/roundtrip:v1" -o "$WORK/roundtrip.wasm" --plain-http > /dev/null 2>&1 || fail "pull the round trip"
cmp -s "$WORK/roundtrip.wasm" "$WORK/hello.wasm" || fail "the round trip changed the module"
skopeo --insecure-policy copy --src-tls-verify=false --dest-tls-verify=false --dest-creds "carol:$C" \
  "docker://127.0.0.1:$REG/mirror/hello:v1" "docker://$HUB/alice/carols:v1" > "$WORK/skopeo.log" 2>&1 &&
  fail "skopeo pushed with a user who may not"
pass "skopeo copies the hub's image to docker-registry and back; a wrong user's copy is refused"

# Deletes: a tag, then a manifest by digest; both in the audit log with the pushes.
[[ $(status -u "alice:$A" -X DELETE "http://$HUB/v2/alice/roundtrip/manifests/v1") == 202 ]] || fail "untag"
[[ $(status -u "alice:$A" "http://$HUB/v2/alice/roundtrip/manifests/v1") == 404 ]] || fail "the tag is still there"
[[ $(status -u "bob:$B" -X DELETE "http://$HUB/v2/alice/hello/manifests/$HELLO_DIGEST") == 403 ]] || fail "bob deleted alice's image"
audit=$(api "alice:$A" "http://$HUB/api/v1/audit")
[[ $audit == *'"action":"untag"'* && $audit == *'"action":"push","actor":"alice"'* && $audit == *'"action":"org.create"'* ]] ||
  fail "audit log: $audit"
[[ $(status -u "bob:$B" "http://$HUB/api/v1/audit") == 403 ]] || fail "bob read the whole audit log"
grep -q '"repository":"bob/hallo"' <<<"$(api "bob:$B" "http://$HUB/api/v1/audit?repository=bob")" || fail "bob's own audit log"
pass "deletes by the namespace's maintainers only, and the audit log"

# Tokens: listed without their secret, revoked at once.
list=$(api "bob:$B" "http://$HUB/api/v1/tokens")
[[ $list == *'"description":"ci pulls"'* && $list != *"$R_TOKEN"* ]] || fail "token list: $list"
rid=$(cut -d_ -f2 <<<"$R_TOKEN")
[[ $(status -u "bob:$B" -X DELETE "http://$HUB/api/v1/tokens/$rid") == 204 ]] || fail "revoke"
[[ $(status -u "bob:$R_TOKEN" "http://$HUB/v2/bob/hallo/tags/list") == 401 ]] || fail "a revoked token still works"
pass "token listing and revocation"

# A restart keeps accounts, images and the token-signing key (registry tokens stay valid).
TOKEN=$(curl -s -u "alice:$A" "http://$HUB/v2/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
stop_hub
start_hub "$DATA"
[[ $(status -H "authorization: Bearer $TOKEN" "http://$HUB/v2/alice/hello/tags/list") == 200 ]] ||
  fail "a registry token from before the restart"
ext pull "$HUB/alice/hello:v1" -o "$WORK/after.wasm" --plain-http > /dev/null 2>&1 || fail "pull after restart"
cmp -s "$WORK/after.wasm" "$WORK/hello.wasm" || fail "module after restart"
pass "a restart keeps everything"

# HTTPS (--tls-cert/--tls-key): the challenge names an https realm; skopeo pulls over TLS with
# the test CA.
out=$("$SLUICE_BIN" hub serve --data-dir "$DATA" --listen 127.0.0.1:0 --tls-cert "$WORK/none.pem" --tls-key "$WORK/none.key" 2>&1) &&
  fail "a hub started with a missing certificate"
[[ $out == *"--tls-cert $WORK/none.pem"* ]] || fail "missing certificate: $out"
make_ca ca
make_cert hubtls /CN=127.0.0.1 IP:127.0.0.1
TLS_HUB=127.0.0.1:$(free_port)
"$SLUICE_BIN" hub serve --data-dir "$DATA" --listen "$TLS_HUB" --tls-cert "$WORK/hubtls.pem" --tls-key "$WORK/hubtls.key" >> "$WORK/hub.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s --cacert "$WORK/ca.pem" -o /dev/null "https://$TLS_HUB/healthz" && break; sleep 0.05; done
hdrs=$(curl -s --cacert "$WORK/ca.pem" -D - -o /dev/null "https://$TLS_HUB/v2/" | tr -d '\r')
[[ $hdrs == *"realm=\"https://$TLS_HUB/v2/token\""* ]] || fail "TLS challenge: $hdrs"
mkdir -p "$WORK/certs" && cp "$WORK/ca.pem" "$WORK/certs/ca.crt"
skopeo --insecure-policy copy --src-cert-dir "$WORK/certs" "docker://$TLS_HUB/alice/hello:v1" "dir:$WORK/tls-copy" > "$WORK/skopeo.log" 2>&1 ||
  fail "skopeo over TLS: $(tail -3 "$WORK/skopeo.log")"
cmp -s "$WORK/tls-copy/$(sha256sum "$WORK/hello.wasm" | cut -d' ' -f1)" "$WORK/hello.wasm" || fail "module over TLS"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$TLS_HUB/healthz") != 200 ]] || fail "plain HTTP on the TLS port"
pass "HTTPS with --tls-cert/--tls-key"

# A plain .wasm pushed with its metadata as flags: what the hub shows of it.
printf '# Hello\n\nSays *hello*.\n' > "$WORK/README.md"
echo "$A" | ext login "$HUB" -u alice --password-stdin --plain-http > /dev/null || fail "login after the restart"
ext push "$WORK/hello.wasm" "$HUB/alice/described:v1" --description "Says hello" --license MIT \
  --source https://example.com/hello --readme "$WORK/README.md" --plain-http > /dev/null 2>&1 || fail "push with metadata"
e=$(curl -s "http://$HUB/api/v1/extensions/alice/described")
[[ $e == *'"description":"Says hello"'* && $e == *'"license":"MIT"'* && $e == *'"source":"https://example.com/hello"'* &&
   $e == *'"readme":"# Hello\n\nSays *hello*.\n"'* && $e == *'"latest_tag":"v1"'* ]] || fail "metadata flags: $e"
head -c 70000 /dev/zero | tr '\0' 'x' > "$WORK/BIG.md"
out=$(ext push "$WORK/hello.wasm" "$HUB/alice/described:v2" --readme "$WORK/BIG.md" --plain-http 2>&1) && fail "a 70 kB README was pushed"
[[ $out == *"a README in an image is at most 65536"* ]] || fail "big README: $out"
# ext list --search asks the hub's search, which reads descriptions too.
out=$(ext list --remote "$HUB" --search "says hello" --plain-http) || fail "ext list --search"
[[ $out == "$HUB/alice/described:v1"$'\t'"ABI 0.2.1"$'\t'"Says hello" ]] || fail "ext list --search: $out"
pass "push --description/--license/--source/--readme: the hub shows them, ext list --search finds them"
