// SHA-256 of a byte string as lower-case hex: how remote Wasm code and OCI blobs are named and
// checked.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

std::string sha256_hex(std::string_view data);

// Whether `hex` has the shape sha256_hex() gives: 64 lower-case hex digits.
bool is_sha256_hex(std::string_view hex);

}  // namespace sluice
