// proxy_status_t: what every Proxy-Wasm host function returns.
#pragma once

#include <cstdint>

namespace sluice::wasm {

enum class WasmResult : uint32_t {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
};

}  // namespace sluice::wasm
