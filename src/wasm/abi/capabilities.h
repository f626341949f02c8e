// Capability restrictions (Envoy's capability_restriction_config.allowed_capabilities): when the
// set is non-empty, a module may call only the host functions it names and the host calls only
// the callbacks it names. A host function left out is still linked (the module loads), bound to a
// stand-in with its signature that answers InternalFailure (proxy_*) or NOTCAPABLE (76, WASI), as
// proxy-wasm-cpp-host does; a callback left out is treated as not exported. Emscripten's helpers
// and the module's own entry points (_start, _initialize, malloc) are never restricted.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

struct Capabilities {
  std::vector<std::string> allowed;  // empty: everything is allowed
  bool restricted() const { return !allowed.empty(); }
  bool allows(std::string_view name) const;
};

// Whether `fn` is subject to restrictions at all (proxy_* and WASI functions).
bool is_restrictable(const HostFunction& fn);

// The stand-in for `fn` when it is not allowed: same module, name and signature. The first call
// of each one is logged with the calling plugin's name.
const HostFunction* denied_host_function(const HostFunction& fn);

// Whether `name` is something a capability list can name: a host function Sluice offers or a
// Proxy-Wasm callback. (Envoy accepts any string; the loader warns about the others.)
bool is_known_capability(std::string_view name);

}  // namespace sluice::wasm
