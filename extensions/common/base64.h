// Base64 decoding for extensions (their Wasm build has no library for it): both alphabets (RFC
// 4648's standard '+' '/' and base64url's '-' '_'), padding optional. nullopt on any other
// character or a truncated last group.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "extension_namespace.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {

std::optional<std::string> base64_decode(std::string_view in);

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
