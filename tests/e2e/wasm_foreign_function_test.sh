#!/usr/bin/env bash
# Proxy-Wasm foreign functions through the real binary, on both runtimes: the deflate extension
# compresses responses and inflates request bodies with the host's zlib "compress" and
# "uncompress". The round trips are checked against an independent zlib (Perl's Compress::Zlib)
# and curl's own decoder.
source "$(dirname "$0")/lib.sh"
require_extensions deflate
perl -MCompress::Zlib -e 1 2>/dev/null || fail "perl's Compress::Zlib is needed (Debian: perl)"
UP=$(free_port)
start_nginx "$UP"
head -c 1048576 /dev/zero | tr '\0' 'x' > "$WORK/big.expected"  # nginx's /big
# A request body: 200 KB of text, and its zlib form.
perl -e '$s .= "line $_\n" for 1 .. 30000; print substr($s, 0, 200000)' > "$WORK/body"
perl -MCompress::Zlib -0777 -ne 'print compress($_)' < "$WORK/body" > "$WORK/body.z"

for rt in v8 null; do
  PORT=$(free_port); ADMIN_PORT=$(free_port)
  sdk_bootstrap "$UP" "$(sdk_listener main "$PORT" "$(sdk_filter zlib "$rt" deflate "")")" \
    > "$WORK/sluice-$rt.yaml"
  start_sluice "$WORK/sluice-$rt.yaml"

  # Response: compressed for a client that accepts deflate; curl --compressed decodes it.
  curl -s -D "$WORK/h" -H 'accept-encoding: deflate' -o "$WORK/big.z" "http://127.0.0.1:$PORT/big"
  grep -qi '^content-encoding: deflate' "$WORK/h" || fail "$rt: not compressed: $(cat "$WORK/h")"
  size=$(wc -c < "$WORK/big.z")
  [[ $size -gt 0 && $size -lt 20000 ]] || fail "$rt: compressed size $size"
  perl -MCompress::Zlib -0777 -ne 'print uncompress($_) // die "not zlib\n"' < "$WORK/big.z" \
    > "$WORK/big.out" || fail "$rt: the response is not zlib data"
  cmp -s "$WORK/big.out" "$WORK/big.expected" || fail "$rt: the response does not inflate to /big"
  curl -s --compressed -o "$WORK/big.curl" "http://127.0.0.1:$PORT/big"
  cmp -s "$WORK/big.curl" "$WORK/big.expected" || fail "$rt: curl --compressed got another body"
  pass "$rt: responses compressed with the host's zlib ($size bytes for 1 MiB)"

  out=$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/big")
  [[ $out != *"content-encoding"* && $out == *"content-length: 1048576"* ]] ||
    fail "$rt: a client without deflate got: $out"
  pass "$rt: left alone for a client that does not accept deflate"

  # Request: a deflate body is inflated before nginx sees it (nginx reports the length it got).
  out=$(curl -s -H 'content-encoding: deflate' --data-binary @"$WORK/body.z" "http://127.0.0.1:$PORT/post")
  [[ $out == "len=200000" ]] || fail "$rt: upstream saw '$out' for a 200000-byte inflated body"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-encoding: deflate' --data-binary 'not zlib' "http://127.0.0.1:$PORT/post")
  [[ $code == 400 ]] || fail "$rt: a corrupt deflate body got $code"
  pass "$rt: request bodies inflated with the host's zlib; corrupt ones refused"

  [[ $(stat_of deflate.zlib.saved_bytes_total) -gt 1000000 ]] || fail "$rt: saved_bytes_total"
  ! grep -q "failed:" "$WORK/sluice.log" || fail "$rt: plugin failure logged"
  stop_sluice
done
