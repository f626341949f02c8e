#!/usr/bin/env bash
# `sluice ext`: verify (files and images), push, pull, tag, list, login and logout against
# Debian's docker-registry started here (plain, and behind a Bearer token service), with skopeo
# as the second OCI client both ways; then a proxy runs the pushed image by reference. Bad
# input: invalid modules, modules needing host functions Sluice lacks, bad references, wrong
# passwords, missing images.
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
: "${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR}"
command -v skopeo > /dev/null || fail "skopeo is needed (make deps)"
export HOME=$WORK/home SLUICE_HOME=
mkdir -p "$HOME"
REG=$(free_port)
start_registry "$REG"
R=127.0.0.1:$REG
ext() { "$SLUICE_BIN" ext "$@"; }
MODULE=$SLUICE_TEST_WASM_DIR/filter_basic.wasm
MODULE_SHA=$(sha256sum "$MODULE" | cut -d' ' -f1)

# verify: a file.
out=$(ext verify "$MODULE") || fail "verify a good module: $out"
[[ $out == *"ABI version: 0.2.1"* && $out == *"sha256:      $MODULE_SHA"* && $out == *"load:        ok"* &&
   $out == *"verdict:     compatible with Sluice"* ]] || fail "verify report: $out"
printf 'not wasm' > "$WORK/garbage.wasm"
out=$(ext verify "$WORK/garbage.wasm") && fail "garbage verified"
[[ $out == *"not a valid WebAssembly module"*"NOT compatible"* ]] || fail "garbage: $out"
cat > "$WORK/needs.wat" <<'WAT'
(module
  (import "env" "proxy_frobnicate" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 0))
WAT
wat2wasm "$WORK/needs.wat" -o "$WORK/needs.wasm"
out=$(ext verify "$WORK/needs.wasm") && fail "a module needing a missing host function verified"
[[ $out == *"problem: imports env.proxy_frobnicate, which Sluice does not offer"* && $out == *"1 WASI function(s): fd_write"* ]] ||
  fail "missing host function: $out"
printf '(module (memory (export "memory") 1))' > "$WORK/noabi.wat"; wat2wasm "$WORK/noabi.wat" -o "$WORK/noabi.wasm"
out=$(ext verify "$WORK/noabi.wasm") && fail "a module without an ABI marker verified"
[[ $out == *"no proxy_abi_version_* export"* ]] || fail "no ABI: $out"
# A module built with the public AssemblyScript SDK (@solo-io/proxy-runtime) needs its root id.
# (Built here, into the test's own folder: the AssemblyScript e2e test may be building its copy.)
"$SLUICE_SOURCE_DIR/tests/assemblyscript/build.sh" "$WORK/as" add_header > "$WORK/as.log" 2>&1 ||
  fail "building the AssemblyScript filter (run 'make deps' if the SDK is missing): $(tail -3 "$WORK/as.log")"
AS=$WORK/as/add_header.wasm
out=$(ext verify "$AS" 2>/dev/null) && fail "an AssemblyScript module without its root id verified"
[[ $out == *"loads with --root-id"* ]] || fail "root id hint: $out"
out=$(ext verify "$AS" --root-id as_add_header --config x-as-header=hello 2>/dev/null) ||
  fail "the AssemblyScript module with its root id: $out"
[[ $out == *"ABI version: 0.2.0"* && $out == *"compatible with Sluice"* ]] || fail "AssemblyScript: $out"
pass "verify reports ABI, imports, memory and load, and fails on what Sluice cannot run"

# push, then the image as other tools see it.
out=$(ext push "$MODULE" "oci://$R/ext/basic:1.0" --plain-http --root-id basic 2>"$WORK/push.err") ||
  fail "push: $out $(cat "$WORK/push.err")"
[[ $out == "$R/ext/basic:1.0@sha256:"* ]] || fail "push output: $out"
PUSHED=${out#*@}
grep -q "pushing .*filter_basic.wasm (1097 B, ABI 0.2.1)" "$WORK/push.err" || fail "push progress: $(cat "$WORK/push.err")"
raw=$(skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$R/ext/basic:1.0")
[[ $(printf '%s' "$raw" | sha256sum | cut -d' ' -f1) == "${PUSHED#sha256:}" ]] || fail "digest differs from what skopeo sees"
grep -q '"mediaType":"application/vnd.module.wasm.content.layer.v1+wasm"' <<<"$raw" || fail "layer type: $raw"
grep -q '"mediaType":"application/vnd.module.wasm.config.v1+json"' <<<"$raw" || fail "config type: $raw"
out=$(ext push "$MODULE" "$R/ext/basic:1.0" 2>&1) && fail "push over TLS to a plain registry worked"
[[ $out == *"needs --plain-http"* ]] || fail "TLS hint: $out"
out=$(ext push "$WORK/garbage.wasm" "$R/ext/bad:1" --plain-http 2>&1) && fail "garbage pushed"
[[ $out == *"is not a valid WebAssembly module"* ]] || fail "garbage push: $out"
out=$(ext push "$MODULE" "$R/Ext/Basic:1" --plain-http 2>&1) && fail "bad reference pushed"
[[ $out == *"is not an OCI reference"* ]] || fail "bad ref: $out"
pass "push writes the oci variant; skopeo reads it; bad modules and references are refused"

# verify and pull an image; the local store is an OCI layout.
out=$(ext verify "$R/ext/basic:1.0" --plain-http 2>/dev/null) || fail "verify an image: $out"
[[ $out == *"image:       $R/ext/basic:1.0@$PUSHED (oci variant)"* && $out == *"compatible with Sluice"* ]] || fail "verify image: $out"
out=$(ext pull "$R/ext/basic:1.0" -o "$WORK/pulled.wasm" --plain-http 2>/dev/null) || fail "pull: $out"
[[ $out == "$R/ext/basic:1.0@$PUSHED oci sha256:$MODULE_SHA" ]] || fail "pull output: $out"
cmp -s "$MODULE" "$WORK/pulled.wasm" || fail "the pulled module differs"
[[ $(ext list) == "$R/ext/basic:1.0	$PUSHED" ]] || fail "local list: $(ext list)"
grep -q wasm <<<"$(skopeo --insecure-policy inspect --raw "oci:$HOME/.sluice/store:$R/ext/basic:1.0")" ||
  fail "skopeo cannot read the local store"
out=$(ext pull "$R/ext/basic@$PUSHED" --plain-http 2>/dev/null) || fail "pull by digest: $out"
out=$(ext pull "$R/ext/basic:nope" --plain-http 2>&1) && fail "a missing tag pulled"
[[ $out == *"MANIFEST_UNKNOWN"* ]] || fail "missing tag: $out"
pass "verify and pull images (by tag and digest) into the local store, an OCI layout"

# skopeo copies the pushed image elsewhere; Sluice pulls the copy. A compat image made by hand
# and pushed by skopeo pulls too.
skopeo --insecure-policy copy --quiet --src-tls-verify=false --dest-tls-verify=false \
  "docker://$R/ext/basic:1.0" "docker://$R/mirror/basic:1.0" || fail "skopeo copy"
out=$(ext pull "$R/mirror/basic:1.0" --plain-http 2>/dev/null) || fail "pull skopeo's copy: $out"
[[ $out == "$R/mirror/basic:1.0@$PUSHED oci sha256:$MODULE_SHA" ]] || fail "skopeo's copy: $out"
wasm_image_layout "$WORK/compat" compat "$MODULE" v1 > /dev/null
push_layout "$WORK/compat" v1 "$R/ext/compat:v1"
out=$(ext pull "$R/ext/compat:v1" -o "$WORK/compat.wasm" --plain-http 2>/dev/null) || fail "pull compat: $out"
[[ $out == *" compat sha256:$MODULE_SHA" ]] && cmp -s "$MODULE" "$WORK/compat.wasm" || fail "compat: $out"
pass "interoperates with skopeo both ways (copy of ours, compat image of its)"

# tag: within a repository, and to another one.
out=$(ext tag "$R/ext/basic:1.0" "$R/ext/basic:stable" --plain-http 2>/dev/null) || fail "tag: $out"
[[ $out == "$R/ext/basic:stable@$PUSHED" ]] || fail "tag output: $out"
out=$(ext tag "$R/ext/basic:1.0" "$R/team/basic:2.0" --plain-http 2>/dev/null) || fail "tag across repos: $out"
[[ $out == "$R/team/basic:2.0@$PUSHED" ]] || fail "tag across: $out"
listing=$(ext list --remote "$R" --plain-http)
for want in ext/basic:1.0 ext/basic:stable team/basic:2.0 mirror/basic:1.0 ext/compat:v1; do
  grep -qx "$R/$want" <<<"$listing" || fail "list --remote lacks $want: $listing"
done
[[ $(ext list --remote "$R" --search team --plain-http) == "$R/team/basic:2.0" ]] || fail "search"
pass "tag (same and other repository) and list --remote with --search"

# deploy --envoy: an http_filters entry that a config takes as it is (the module pulled where the
# fragment says); --istio: a WasmPlugin pinned to the image's digest.
ext deploy "$R/team/basic:2.0" --envoy --name basic --config 'x' --wasm-path "$WORK/envoy/basic.wasm" \
  --out "$WORK/filter.yaml" --plain-http 2>/dev/null || fail "deploy --envoy"
grep -q "sluice ext pull $R/team/basic@$PUSHED -o $WORK/envoy/basic.wasm --plain-http" "$WORK/filter.yaml" || fail "pull hint: $(cat "$WORK/filter.yaml")"
grep -q 'root_id: "basic"' "$WORK/filter.yaml" || fail "root id from the image: $(cat "$WORK/filter.yaml")"
mkdir -p "$WORK/envoy"
ext pull "$R/team/basic@$PUSHED" -o "$WORK/envoy/basic.wasm" --plain-http > /dev/null 2>&1 || fail "pull for envoy"
VALIDATE_ADMIN=$(free_port)
ADMIN_PORT=$VALIDATE_ADMIN sdk_bootstrap 1 "$(sdk_listener front 1 "$(sed 's/^/          /' "$WORK/filter.yaml")")" > "$WORK/envoy.yaml"
"$SLUICE_BIN" --mode validate -c "$WORK/envoy.yaml" > "$WORK/validate.log" 2>&1 || fail "the Envoy fragment does not load: $(cat "$WORK/validate.log")"
out=$(ext deploy "$R/team/basic:2.0" --istio --config '{"header":"x-a"}' --phase AUTHZ --fail-open --plain-http 2>/dev/null) ||
  fail "deploy --istio"
for want in "kind: WasmPlugin" "url: \"oci://$R/team/basic:2.0@$PUSHED\"" "sha256: ${PUSHED#sha256:}" \
    'pluginName: "basic"' "phase: AUTHZ" "failStrategy: FAIL_OPEN" 'pluginConfig: {"header":"x-a"}'; do
  grep -qF -- "$want" <<<"$out" || fail "WasmPlugin lacks '$want': $out"
done
out=$(ext deploy "$R/team/basic:2.0" --istio --config 'not json' --plain-http 2>&1) && fail "a non-JSON pluginConfig"
[[ $out == *"must be one"* ]] || fail "bad pluginConfig: $out"
out=$(ext deploy "$R/team/basic:2.0" --plain-http 2>&1) && fail "deploy without a target"
[[ $out == *"deploy needs --to ADMIN_URL, --envoy or --istio"* ]] || fail "deploy without a target: $out"
pass "deploy --envoy writes a filter a config loads; --istio a WasmPlugin pinned to the digest"

# A registry behind a token service: login checks and stores (0600), logout forgets.
AREG=$(free_port); TOK=$(free_port)
start_registry "$AREG" "$TOK" alice:wonderland
A=127.0.0.1:$AREG
out=$(ext push "$MODULE" "$A/private/basic:1" --plain-http 2>&1) && fail "pushed without credentials"
[[ $out == *"refused an anonymous request"* ]] || fail "anonymous push: $out"
out=$(printf 'wrong\n' | ext login "$A" -u alice --password-stdin --plain-http 2>&1) && fail "login with a wrong password"
[[ $out == *"refused the credentials of 'alice'"* ]] || fail "wrong password: $out"
[[ ! -e $HOME/.sluice/credentials.json ]] || fail "a failed login stored credentials"
printf 'wonderland\n' | ext login "$A" -u alice --password-stdin --plain-http > /dev/null || fail "login"
[[ $(stat -c %a "$HOME/.sluice/credentials.json") == 600 ]] || fail "credentials file mode"
out=$(ext push "$MODULE" "$A/private/basic:1" --plain-http 2>/dev/null) || fail "push with stored credentials: $out"
out=$(ext pull "$A/private/basic:1" --plain-http 2>/dev/null) || fail "pull with stored credentials: $out"
ext logout "$A" > /dev/null || fail "logout"
out=$(ext logout "$A" 2>&1) && fail "logout twice"
out=$(ext pull "$A/private/basic:1" --plain-http 2>&1) && fail "pulled after logout"
pass "login (checked, stored 0600), push and pull with credentials, logout"

# The proxy runs the pushed image.
UP=$(free_port); FRONT=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
filter=$(remote_wasm_filter basic "http_uri: { uri: \"oci://$R/team/basic:2.0\", timeout: 5s }")
{ sdk_bootstrap "$UP" "$(sdk_listener front "$FRONT" "$filter")"; echo "sluice: { oci: { insecure_registries: [\"$R\"] } }"; } > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"
[[ $(curl -s -D - -o /dev/null "http://127.0.0.1:$FRONT/" | tr -d '\r' | sed -n 's/^x-wasm: //p') == hello ]] ||
  fail "the proxy does not run the pushed image"
stop_sluice
pass "a proxy runs the image pushed and tagged with sluice ext"
