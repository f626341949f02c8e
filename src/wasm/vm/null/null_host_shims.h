// The C side of the null runtime's host functions: the proxy_* functions a natively built
// plugin calls (declared in sdk/cpp/include/sluice/proxy_wasm_abi.h) forward to the same host
// functions a .wasm module imports, for the VM whose callback runs on this thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace sluice::wasm {

// The names of the shims, in shim-index order.
const std::vector<std::string_view>& null_shim_names();
// Calls host function number `shim` (an index into null_shim_names()) on the current null VM.
uint64_t null_host_call(size_t shim, std::initializer_list<uint64_t> args);

}  // namespace sluice::wasm
