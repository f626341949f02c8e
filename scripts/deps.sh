#!/usr/bin/env bash
# Installs every Debian package Sluice needs to build, test, benchmark and run its demo.
# Idempotent: packages already present are skipped; the list lives in this one file.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang-14 lld-14 libclang-rt-14-dev
  clang-format-14
  # libraries
  libasio-dev libhttp-parser-dev libyaml-cpp-dev libre2-dev libabsl-dev libspdlog-dev libfmt-dev
  libcli11-dev libssl-dev libnghttp2-dev zlib1g-dev
  # OCI registries (Wasm modules by image reference): HTTP client, tar layers, JSON documents
  libcurl4-openssl-dev libarchive-dev nlohmann-json3-dev
  # the hub server: metadata in SQLite (embedded) or PostgreSQL (libpq; the server for its tests)
  libsqlite3-dev libpq-dev postgresql
  # Proxy-Wasm: libnode's runtime libraries (V8 itself: scripts/deps-libnode.sh), the wasm32-wasi
  # toolchain for the C++ SDK (clang-14 + wasi-libc + libc++), and wabt for WAT test modules
  libicu72 libuv1 libc-ares2 libbrotli1 libnghttp2-14 libssl3 zlib1g
  wasi-libc libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 libclang-rt-14-dev-wasm32 wabt
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev curl wrk nginx-light haproxy prometheus procps perl openssl
  socat nghttp2-client
  # instructions per request (bench/instructions.sh: callgrind)
  valgrind
  # plots of benchmark results (bench/results/*.png)
  gnuplot-nox
  # the hub web UI's end-to-end test: headless Chromium (driven by playwright-core from npm) and
  # fonts with common metrics for its screenshots
  chromium fonts-liberation
  # an OCI registry and a second OCI client, started and used by the tests on loopback
  docker-registry skopeo
  # gRPC through the proxy (tests/grpc: a client and a server built from a .proto)
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  iproute2
)

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm (AssemblyScript SDK tests, web UI): an image may ship NodeSource's nodejs, which
# bundles npm and conflicts with Debian's npm package; only a machine with neither gets Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  for p in nodejs npm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi

here=$(cd "$(dirname "$0")" && pwd)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#PACKAGES[@]} Debian packages already installed"
  "$here/deps-libnode.sh"
  "$here/deps-npm.sh"
  exit 0
fi

echo "deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package installs from starting system services (nginx, haproxy, prometheus) on their default
# ports: tests start their own instances on random loopback ports.
policy_rc_created=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  policy_rc_created=1
fi
trap '[[ $policy_rc_created -eq 1 ]] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done"
"$here/deps-libnode.sh"
"$here/deps-npm.sh"
