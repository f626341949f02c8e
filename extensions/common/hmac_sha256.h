// SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104) for extensions, whose Wasm build has no crypto
// library: header_decode checks HS256 token signatures, auth compares credential digests.
// tests/e2e/header_decode_test.sh checks it against tokens signed by openssl, with short and long
// (hashed first) keys.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "extension_namespace.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {

using Digest = std::array<uint8_t, 32>;

Digest sha256(std::string_view data);
Digest hmac_sha256(std::string_view key, std::string_view message);
// Compares without stopping at the first difference.
bool equal_digests(const Digest& a, std::string_view b);

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
