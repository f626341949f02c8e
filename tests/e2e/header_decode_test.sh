#!/usr/bin/env bash
# The header_decode extension (extensions/header_decode/), on V8 and on the null runtime: a JWT's
# payload (or a base64url JSON header) becomes x-claim-* request headers the upstream sees;
# claim headers a client sends itself are removed; malformed input is 400. With hs256_key, only
# tokens signed with it (checked against signatures made by openssl, short and long keys) and not
# expired or early pass; everything else is 401.
source "$(dirname "$0")/lib.sh"
require_extensions header_decode
UP=$(free_port); OPEN=$(free_port); SIGNED=$(free_port); INFO=$(free_port); ADMIN_PORT=$(free_port)
start_nginx "$UP"
LONG_KEY=$(printf 'k%.0s' $(seq 80))   # over a SHA-256 block: HMAC hashes it first
{
  sdk_bootstrap "$UP" "$(
    # Routes see the claims: the route is picked again after the filter adds them.
    sdk_listener open "$OPEN" "$(sdk_filter decode v8 header_decode "")" '
- { match: { prefix: "/admin", headers: [ { name: x-claim-admin, string_match: { exact: "true" } } ] }, direct_response: { status: 200, body: { inline_string: "admin area" } } }
- { match: { prefix: "/admin" }, direct_response: { status: 403, body: { inline_string: "admins only" } } }
- { match: { prefix: "/" }, route: { cluster: nginx } }' 
    sdk_listener signed "$SIGNED" "$(sdk_filter decode null header_decode "hs256_key = $LONG_KEY\nrequired = true")"
    sdk_listener info "$INFO" "$(sdk_filter decode v8 header_decode "header = x-user-info\nprefix = x-id-\nclaims = sub, roles\nhs256_key = short")"
  )"
} > "$WORK/sluice.yaml"
start_sluice "$WORK/sluice.yaml"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt KEY HEADER_JSON PAYLOAD_JSON: a token signed with HMAC-SHA-256 by openssl.
jwt() {
  local h p s
  h=$(printf '%s' "$2" | b64url)
  p=$(printf '%s' "$3" | b64url)
  s=$(printf '%s' "$h.$p" | openssl dgst -sha256 -hmac "$1" -binary | b64url)
  echo "$h.$p.$s"
}
HS='{"alg":"HS256","typ":"JWT"}'
NOW=$(date +%s)
CLAIMS='{"sub":"alice","iss":"https://issuer.test","roles":["admin","dev"],"admin":true,"n":42,"nested":{"a":1},"name":"Ren\u00e9e\nX","exp":'$((NOW + 600))'}'
claims() { curl -s "${@:2}" "http://127.0.0.1:$1/claims"; }
code() { curl -s -o "$WORK/body" -w '%{http_code}' "${@:2}" "http://127.0.0.1:$1/claims"; }

# Without a key: the payload is decoded, whatever the signature.
TOKEN=$(jwt whatever "$HS" "$CLAIMS")
out=$(claims "$OPEN" -H "authorization: Bearer $TOKEN")
[[ $out == "sub=alice iss=https://issuer.test roles=admin,dev admin=true n=42 nested= name=Renée X user=" ]] ||
  fail "claims: $out"
[[ $(claims "$OPEN") == "sub= iss= roles= admin= n= nested= name= user=" ]] || fail "no token"
out=$(claims "$OPEN" -H "x-claim-sub: mallory" -H "x-claim-admin: true")
[[ $out == "sub= iss= roles= admin= n= nested= name= user=" ]] || fail "forged claim headers passed: $out"
out=$(claims "$OPEN" -H "x-claim-sub: mallory" -H "authorization: Bearer $TOKEN")
[[ $out == sub=alice* ]] || fail "a forged claim beat the token's: $out"
[[ $(curl -s -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$OPEN/admin") == "admin area" ]] || fail "route on a claim"
[[ $(curl -s -H "x-claim-admin: true" "http://127.0.0.1:$OPEN/admin") == "admins only" ]] || fail "a forged claim routed"
pass "a token's claims become x-claim-* headers (strings, numbers, booleans, arrays) that routes match; forged ones are removed"

# Malformed input: 400, never upstream.
for bad in "Bearer abc" "Bearer a.b" "Bearer a.!!!.c" "Bearer a.$(printf 'not json' | b64url).c" \
           "Bearer a.$(printf '[1,2]' | b64url).c" "Bearer a.$(printf '{"a":1} x' | b64url).c" \
           "Bearer a.$(printf '{"a":"\\ud800"}' | b64url).c" "Bearer a.$(printf '{"a":"\xff"}' | b64url).c" \
           "Bearer a.b.c.d"; do
  [[ $(code "$OPEN" -H "authorization: $bad") == 400 ]] || fail "'$bad' was not refused: $(cat "$WORK/body")"
done
grep -q 'malformed authorization' "$WORK/body" || fail "400 body: $(cat "$WORK/body")"
pass "malformed tokens (parts, base64url, JSON, surrogates, invalid UTF-8, trailing bytes) are 400"

# With a key (null runtime, an 80-byte key): signed tokens only, in their validity window.
[[ $(code "$SIGNED") == 401 ]] || fail "no token with required = true"
SIGNED_TOKEN=$(jwt "$LONG_KEY" "$HS" "$CLAIMS")
out=$(claims "$SIGNED" -H "authorization: Bearer $SIGNED_TOKEN")
[[ $out == sub=alice* ]] || fail "a good signature was refused: $out"
[[ $(code "$SIGNED" -H "authorization: Bearer $(jwt wrong-key "$HS" "$CLAIMS")") == 401 ]] || fail "wrong key accepted"
grep -q 'invalid token signature' "$WORK/body" || fail "wrong key: $(cat "$WORK/body")"
[[ $(code "$SIGNED" -H "authorization: Bearer $(jwt "$LONG_KEY" '{"alg":"none"}' "$CLAIMS")") == 401 ]] || fail "alg none accepted"
grep -q 'not signed with HS256' "$WORK/body" || fail "alg none: $(cat "$WORK/body")"
[[ $(code "$SIGNED" -H "authorization: Bearer $(jwt "$LONG_KEY" "$HS" '{"sub":"x","exp":'$((NOW - 5))'}')") == 401 ]] || fail "expired accepted"
grep -q 'expired' "$WORK/body" || fail "expired: $(cat "$WORK/body")"
[[ $(code "$SIGNED" -H "authorization: Bearer $(jwt "$LONG_KEY" "$HS" '{"sub":"x","nbf":'$((NOW + 600))'}')") == 401 ]] || fail "early accepted"
tampered="${SIGNED_TOKEN%%.*}.$(printf '{"sub":"root"}' | b64url).${SIGNED_TOKEN##*.}"
[[ $(code "$SIGNED" -H "authorization: Bearer $tampered") == 401 ]] || fail "a tampered payload passed"
pass "with hs256_key: only tokens signed with it (long key), not expired or early; alg none and tampering refused"

# Another header, another prefix, a claim list, a short key.
out=$(claims "$INFO" -H "x-user-info: $(jwt short "$HS" "$CLAIMS")")
[[ $out == *"user=alice"* && $out == *"sub= "* ]] || fail "x-user-info: $out"
[[ $(code "$INFO" -H "x-user-info: $(printf '{"sub":"bob"}' | b64url)") == 401 ]] || fail "an unsigned header passed a keyed filter"
pass "header, prefix, claims and a short key are configurable"
[[ $(stat_of header_decode.decoded) -ge 4 && $(stat_of header_decode.rejected) -ge 10 ]] ||
  fail "counters: $(stat_of header_decode.decoded) decoded, $(stat_of header_decode.rejected) rejected"
pass "header_decode.decoded and .rejected count"
