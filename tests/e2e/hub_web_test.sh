#!/usr/bin/env bash
# The hub's web UI (hub/web) in headless Chromium, driven by playwright-core
# (tests/hub-web/ui_test.mjs) against a real `sluice hub serve --web-dir`: search and browse, an
# extension's page (description, README rendered as markdown with its hostile HTML made inert,
# ABI, host functions, tags and versions, downloads, the pull/deploy/Envoy/Istio snippets),
# private extensions seen only by their owner once logged in with a token, a bad token refused,
# tokens made (shown once) and revoked (the token then refused by the API), users and
# organisations managed by their administrator and owner, and the audit log. Screenshots of every
# page go to $SLUICE_TEST_OUTPUT_DIR.
#
# The UI is built with scripts/build-hub-web.sh into $WORK/web, unless $SLUICE_HUB_WEB_DIR names a
# folder built already. Needs chromium (Debian's, `make deps`) and hub/web/node_modules
# (`make deps` runs npm ci there).
source "$(dirname "$0")/lib.sh"
: "${SLUICE_TEST_WASM_DIR:?set SLUICE_TEST_WASM_DIR}"
CHROMIUM=${SLUICE_CHROMIUM:-/usr/bin/chromium}
[[ -x $CHROMIUM ]] || fail "$CHROMIUM is missing: chromium is needed (make deps)"
WEB_MODULES=$SLUICE_SOURCE_DIR/hub/web/node_modules
[[ -f $WEB_MODULES/playwright-core/package.json ]] || fail "$WEB_MODULES has no playwright-core: run make deps"
command -v wat2wasm > /dev/null || fail "wat2wasm (wabt) is needed (make deps)"
if [[ -n ${SLUICE_BUILD_DIR:-} ]]; then
  : "${SLUICE_TEST_OUTPUT_DIR:=$SLUICE_BUILD_DIR/test-output/hub-web}"
fi
SHOTS=${SLUICE_TEST_OUTPUT_DIR:-$WORK/screenshots}
mkdir -p "$SHOTS"
rm -f "$SHOTS/failure.png"  # from an earlier failed run
export HOME=$WORK/home SLUICE_HOME= NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
mkdir -p "$HOME"
ext() { "$SLUICE_BIN" ext "$@"; }
status() { curl -s -o "$WORK/out" -w '%{http_code}' "$@"; }

# The UI: built here unless the build provides it.
if [[ -n ${SLUICE_HUB_WEB_DIR:-} ]]; then
  WEB=$SLUICE_HUB_WEB_DIR
else
  WEB=$WORK/web
  "$SLUICE_SOURCE_DIR/scripts/build-hub-web.sh" "$WEB" > "$WORK/web-build.log" 2>&1 ||
    fail "building the web UI: $(tail -20 "$WORK/web-build.log")"
fi
[[ -f $WEB/index.html ]] || fail "$WEB/index.html is missing"
pass "the web UI is built ($WEB)"

DATA=$WORK/hub-data
HUB_STORAGE="--data-dir $DATA"
A=$(hub_user alice --admin)
B=$(hub_user bob)
start_hub "$DATA" --web-dir "$WEB"
HUB_URL=http://$HUB

# alice/greeter, public, pushed by hand with the annotations the hub shows: v1, then v2 (another
# description, so another manifest) which the "latest" tag logic must pick. Its README holds
# markdown (a heading, a list, a table) and hostile HTML that must stay inert.
cp "$SLUICE_TEST_WASM_DIR/filter_basic.wasm" "$WORK/greeter.wasm"
printf '{"type":"envoy_proxy","abiVersions":["v0-abi-version"],"rootIds":["greeter_root"]}' > "$WORK/config.json"
cat > "$WORK/README.md" <<'MD'
# Greeter filter

Adds a greeting to **every** response.

## Features

- adds `x-wasm: hello`
- refuses `/deny` with a 403

| Header | Value |
|--------|-------|
| x-wasm | hello |

<img src=x onerror="window.__xss=1">
<script>window.__xss=2</script>
<a href="javascript:window.__xss=3">click me</a>

And [a markdown link](javascript:window.__xss=4) too.
<iframe src="javascript:window.__xss=5"></iframe>
<div onmouseover="window.__xss=6" id="__xss_target">hover</div>
<style>body { display: none }</style>
<form action="https://evil.example/"><input name="token"></form>

[Project site](https://example.com/greeter)
MD
# annotate MANIFEST_FILE DESCRIPTION: adds the image annotations (JSON built by node: the README
# holds quotes and newlines).
annotate() {
  DESC=$2 README_FILE=$WORK/README.md node -e '
    const fs = require("fs");
    const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    m.annotations = {
      "org.opencontainers.image.description": process.env.DESC,
      "org.opencontainers.image.licenses": "Apache-2.0",
      "org.opencontainers.image.source": "https://example.com/greeter",
      "io.sluice.extension.readme": fs.readFileSync(process.env.README_FILE, "utf8"),
      "io.sluice.extension.language": "wat",
    };
    fs.writeFileSync(process.argv[1], JSON.stringify(m));' "$1"
}
# put_manifest USER:TOKEN REPO TAG FILE
put_manifest() {
  [[ $(status -u "$1" -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
       --data-binary @"$4" "$HUB_URL/v2/$2/manifests/$3") == 201 ]] || fail "manifest $2:$3: $(cat "$WORK/out")"
}
for f in config.json greeter.wasm; do
  [[ $(hub_blob "alice:$A" alice/greeter "$WORK/$f") == 201 ]] || fail "blob $f: $(cat "$WORK/blob.out")"
done
oci_manifest "$WORK/config.json" "$WORK/greeter.wasm" > "$WORK/m1.json"
annotate "$WORK/m1.json" "Greets every response (first version)."
put_manifest "alice:$A" alice/greeter v1 "$WORK/m1.json"
sleep 1  # v2 must be newer by the second-resolution clock of the hub
oci_manifest "$WORK/config.json" "$WORK/greeter.wasm" > "$WORK/m2.json"
annotate "$WORK/m2.json" "Greets every response with an x-wasm header."
put_manifest "alice:$A" alice/greeter v2 "$WORK/m2.json"

# alice/legacy: a module importing a function Sluice does not offer (and one WASI function).
cat > "$WORK/legacy.wat" <<'WAT'
(module
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  (import "env" "proxy_frobnicate_everything" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 0))
WAT
wat2wasm "$WORK/legacy.wat" -o "$WORK/legacy.wasm" || fail "wat2wasm legacy"
for f in config.json legacy.wasm; do
  [[ $(hub_blob "alice:$A" alice/legacy "$WORK/$f") == 201 ]] || fail "blob $f: $(cat "$WORK/blob.out")"
done
oci_manifest "$WORK/config.json" "$WORK/legacy.wasm" > "$WORK/m3.json"
put_manifest "alice:$A" alice/legacy v1 "$WORK/m3.json"

# bob/secret-filter: pushed with the CLI, then made private by bob.
echo "$B" | ext login "$HUB" -u bob --password-stdin --plain-http > /dev/null || fail "bob login"
ext push "$WORK/greeter.wasm" "$HUB/bob/secret-filter:v1" --root-id secret_root --plain-http > "$WORK/push.out" 2>&1 ||
  fail "push bob/secret-filter: $(cat "$WORK/push.out")"
[[ $(status -H "authorization: Bearer $B" -X PATCH -d '{"private":true}' "$HUB_URL/api/v1/extensions/bob/secret-filter") == 200 ]] ||
  fail "make private: $(cat "$WORK/out")"
[[ $(status "$HUB_URL/api/v1/extensions/bob/secret-filter") == 404 ]] || fail "the private extension is visible anonymously"

# The organisation acme: alice owns it, bob maintains it and pushes acme/tool.
[[ $(status -H "authorization: Bearer $A" -X POST -d '{"name":"acme"}' "$HUB_URL/api/v1/orgs") == 201 ]] || fail "org: $(cat "$WORK/out")"
[[ $(status -H "authorization: Bearer $A" -X PUT -d '{"role":"maintainer"}' "$HUB_URL/api/v1/orgs/acme/members/bob") == 200 ]] ||
  fail "member bob: $(cat "$WORK/out")"
ext push "$WORK/greeter.wasm" "$HUB/acme/tool:v1" --root-id tool_root --plain-http > "$WORK/push.out" 2>&1 ||
  fail "push acme/tool: $(cat "$WORK/push.out")"
ext logout "$HUB" > /dev/null

# One anonymous pull of the greeter, so its page has a download to show.
ext pull "$HUB/alice/greeter:v2" --plain-http > "$WORK/pull.out" 2>&1 || fail "pull: $(cat "$WORK/pull.out")"
DOWNLOADS=$(curl -s "$HUB_URL/api/v1/extensions/alice/greeter" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).downloads))')
[[ $DOWNLOADS =~ ^[1-9][0-9]*$ ]] || fail "downloads of alice/greeter: $DOWNLOADS"
pass "hub seeded: alice/greeter (README, two tags), alice/legacy, private bob/secret-filter, org acme"

# The page shows an extension's summary as search gives it: the extension API must carry the
# same fields (the UI does not rebuild them from the versions).
detail=$(curl -s "$HUB_URL/api/v1/extensions/alice/greeter")
org=$(curl -s -H "authorization: Bearer $A" "$HUB_URL/api/v1/orgs/acme")
for f in latest_tag abi_versions root_ids wasm_size missing_imports; do
  [[ $detail == *"\"$f\":"* ]] ||
    fail "GET /api/v1/extensions/alice/greeter has no \"$f\" (GET /api/v1/search gives it): ${detail:0:300}..."
  [[ $org == *"\"$f\":"* ]] ||
    fail "the repositories of GET /api/v1/orgs/acme have no \"$f\" (GET /api/v1/search gives it): $org"
done

# The browser part: every step bounded; the whole script has a watchdog of its own.
HUB_URL=$HUB_URL HUB=$HUB ALICE_TOKEN=$A BOB_TOKEN=$B EXPECT_DOWNLOADS=$DOWNLOADS \
  SCREENSHOT_DIR=$SHOTS CHROMIUM=$CHROMIUM HUB_WEB_MODULES=$WEB_MODULES \
  timeout 120 node "$SLUICE_SOURCE_DIR/tests/hub-web/ui_test.mjs" || {
    echo "screenshots (the failing page: failure.png) in $SHOTS" >&2
    fail "the web UI test failed (hub log: $(tail -5 "$WORK/hub.log"))"
  }
if [[ $SHOTS == "$WORK"/* && -z ${KEEP_WORK:-} ]]; then
  pass "screenshots of every page were in $SHOTS (removed with $WORK: set SLUICE_TEST_OUTPUT_DIR or KEEP_WORK=1 to keep them)"
else
  pass "screenshots of every page are in $SHOTS"
fi
