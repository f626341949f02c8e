// Base64 for extensions (their Wasm build has no library for it). Decoding takes both alphabets
// (RFC 4648's standard '+' '/' and base64url's '-' '_'), padding optional, and gives nullopt on
// any other character or a truncated last group.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "extension_namespace.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {

std::optional<std::string> base64_decode(std::string_view in);
// RFC 4648's standard alphabet, padded.
std::string base64_encode(std::string_view in);

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
