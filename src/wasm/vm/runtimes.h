// Factories of the runtimes behind WasmVm; only wasm_vm.cc's registry calls them.
#pragma once

#include <memory>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

inline constexpr std::string_view kV8RuntimeName = "envoy.wasm.runtime.v8";
inline constexpr std::string_view kNullRuntimeName = "envoy.wasm.runtime.null";

// V8 lives in a shared object loaded on the first call (vm/v8_loader.cc), which may fail.
Result<std::unique_ptr<WasmRuntime>> make_v8_runtime();
std::unique_ptr<WasmRuntime> make_null_runtime();  // vm/null/

}  // namespace sluice::wasm
