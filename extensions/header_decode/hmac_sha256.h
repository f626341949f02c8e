// HMAC-SHA-256 (RFC 2104 over FIPS 180-4), for checking HS256 token signatures inside the Wasm
// module, which has no crypto library. tests/e2e/header_decode_test.sh checks it against tokens
// signed by openssl, with short and long (hashed first) keys.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace header_decode {

using Digest = std::array<uint8_t, 32>;

Digest sha256(std::string_view data);
Digest hmac_sha256(std::string_view key, std::string_view message);
// Compares without stopping at the first difference.
bool equal_digests(const Digest& a, std::string_view b);

}  // namespace header_decode
