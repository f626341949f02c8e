// What a Proxy-Wasm module needs from its host, read from its binary without running it: the ABI
// version it was built for, the host functions and WASI functions it imports (and any Sluice does
// not offer), its memory and the callbacks it exports. `sluice ext verify` prints it; the hub runs
// it on every pushed image and indexes the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "wasm/vm/module_info.h"

namespace sluice::wasm {

struct ModuleCheck {
  AbiVersion abi_version = AbiVersion::Unknown;
  std::vector<std::string> host_functions;  // proxy_* (and env) imports Sluice offers
  std::vector<std::string> wasi_functions;  // WASI imports (all offered)
  std::vector<std::string> missing;         // "module.name" imports Sluice lacks (or signature)
  std::optional<MemoryLimits> memory;
  std::vector<std::string> callbacks;  // exported proxy_on_* names, without the prefix
  // Why the module cannot run on Sluice: no ABI marker, missing imports. Empty when compatible.
  std::vector<std::string> problems;
  // Worth knowing, not fatal (an initial memory above the default limit).
  std::vector<std::string> warnings;

  bool compatible() const { return problems.empty(); }
};

// Fails only when `code` is not a valid WebAssembly binary (the error says where).
Result<ModuleCheck> check_module(std::string_view code);

}  // namespace sluice::wasm
