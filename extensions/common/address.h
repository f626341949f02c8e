// Client addresses as the `source.address` property gives them.
#pragma once

#include <string>
#include <string_view>

#include "extension_namespace.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {

// The address without its port: "10.0.0.1:5555" -> "10.0.0.1", "[::1]:5555" -> "::1"; an
// address without a port (or a bare IPv6 address) is returned as it is.
inline std::string address_without_port(std::string_view a) {
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    return std::string(close == std::string_view::npos ? a : a.substr(1, close - 1));
  }
  const size_t colon = a.rfind(':');
  return std::string(colon == std::string_view::npos || a.find(':') != colon ? a
                                                                             : a.substr(0, colon));
}

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
