// Foreign functions: host functionality a module reaches by name through
// proxy_call_foreign_function, from a process-wide registry. Built in, as in Envoy:
//   compress     zlib-compresses the arguments (zlib format, the default level)
//   uncompress   inflates zlib-format arguments (SerializationFailure on corrupt or truncated
//                input, or an output past 64 MiB)
#pragma once

#include <string>
#include <string_view>

#include "wasm/wasm_result.h"

namespace sluice::wasm {

// Writes the result to *out; the status goes back to the module as is. Functions run on the
// calling worker's thread and may be called from several at once. They must not reach a VM (no
// call into any module): on V8 they run inside leaf host calls (HostFunction::leaf).
using ForeignFunction = WasmResult (*)(std::string_view args, std::string* out);

// The function registered as `name`, or nullptr.
ForeignFunction find_foreign_function(std::string_view name);

// Adds (or replaces) a function. Call it during static initialization or before workers start:
// lookups take no lock.
void register_foreign_function(std::string_view name, ForeignFunction fn);

}  // namespace sluice::wasm
