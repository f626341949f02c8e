#!/usr/bin/env bash
# V8 for the Proxy-Wasm host comes from Debian's libnode (Node 18, V8 10.2). Where `libnode-dev`
# installs (a plain Debian 12) it is used from /usr. Where it cannot (an image whose nodejs comes
# from another repository: libnode's dependencies conflict with it), the two .debs are fetched with
# `apt-get download` and unpacked into third_party/libnode/ (ignored by git); CMake looks there
# first. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/libnode"
SUDO=
[[ $(id -u) -ne 0 ]] && SUDO=sudo

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if installed libnode-dev; then
  echo "deps: libnode-dev $(dpkg-query -W -f='${Version}' libnode-dev) installed (system)"
  exit 0
fi
if [[ -f $dest/usr/include/node/v8.h && -f $dest/VERSION ]]; then
  echo "deps: libnode $(cat "$dest/VERSION") unpacked in third_party/libnode"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Only try the package manager when it would not replace the machine's nodejs.
if $SUDO apt-get install -s -qq libnode-dev >/dev/null 2>&1 &&
   ! $SUDO apt-get install -s -qq libnode-dev 2>/dev/null | grep -q '^Remv'; then
  echo "deps: installing libnode-dev"
  $SUDO apt-get install -y -qq --no-install-recommends libnode-dev
  exit 0
fi
echo "deps: libnode-dev conflicts with this machine's nodejs; unpacking libnode108 + libnode-dev into third_party/libnode"
tmp=$(mktemp -d)
chmod 755 "$tmp"  # apt-get download runs as _apt
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq libnode108 libnode-dev)
rm -rf "$dest"
mkdir -p "$dest"
for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dest"; done
version=$(dpkg-deb -f "$tmp"/libnode-dev_*.deb Version)
echo "$version" >"$dest/VERSION"
echo "deps: libnode $version unpacked ($(du -sh "$dest" | cut -f1))"
