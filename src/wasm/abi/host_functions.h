// The host functions Sluice offers a module: Proxy-Wasm's `env.proxy_*` (per ABI version, as
// proxy-wasm-cpp-host registers them), a few Emscripten helpers, and the WASI preview1 subset real
// toolchains import, under both `wasi_snapshot_preview1` and `wasi_unstable`.
#pragma once

#include <string_view>
#include <vector>

#include "wasm/vm/module_info.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice {
class HeaderMap;
}

namespace sluice::wasm {

class Context;

// The function `module.name` as a module built for `abi` may import it, or nullptr.
// `module_retries`: the module exports sluice_functions::kRetriesBufferTooSmall, so functions
// that return values may run as leaves for it (HostFunction::leaf).
const HostFunction* find_host_function(AbiVersion abi, std::string_view module,
                                       std::string_view name, bool module_retries = false);
// Every host function, whatever the version (for the null runtime's native shims).
const std::vector<HostFunction>& all_host_functions();

// sluice_edit_response_headers (sluice_functions.h): applies the stream's header edit set to its
// response headers, by the header-map functions' rules (a hidden header is left alone).
void apply_response_header_edits(Context& ctx, HeaderMap& headers);

}  // namespace sluice::wasm
