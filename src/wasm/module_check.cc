#include "wasm/module_check.h"

#include "common/strings.h"
#include "wasm/abi/host_functions.h"

namespace sluice::wasm {

namespace {
constexpr uint64_t kDefaultMemoryLimit = 64ull * 1024 * 1024;  // sluice.wasm memory_limit_mb
}

Result<ModuleCheck> check_module(std::string_view code) {
  Result<ModuleInfo> info = ModuleInfo::parse(code);
  if (!info) return Error{str_cat("not a valid WebAssembly module: ", info.error())};
  ModuleCheck c;
  c.abi_version = info->abi_version;
  if (c.abi_version == AbiVersion::Unknown) {
    c.problems.push_back("no proxy_abi_version_* export: not a Proxy-Wasm module");
  }
  // A module without a marker is checked against the newest ABI, to still name what it lacks.
  const AbiVersion abi = c.abi_version == AbiVersion::Unknown ? AbiVersion::V0_2_1 : c.abi_version;
  for (const ImportInfo& import : info->imports) {
    if (import.kind != ExternKind::Function) continue;
    const std::string name = str_cat(import.module, ".", import.name);
    const HostFunction* fn = find_host_function(abi, import.module, import.name);
    if (!fn) {
      c.missing.push_back(name);
      c.problems.push_back(str_cat("imports ", name, ", which Sluice does not offer"));
    } else if (!(fn->signature == import.signature)) {
      c.missing.push_back(name);
      c.problems.push_back(
          str_cat("imports ", name, " with another signature than the one Sluice offers"));
    } else if (import.module.rfind("wasi", 0) == 0) {
      c.wasi_functions.push_back(import.name);
    } else {
      c.host_functions.push_back(import.name);
    }
  }
  c.memory = info->memory;
  if (c.memory && uint64_t{c.memory->initial_pages} * 65536 > kDefaultMemoryLimit) {
    c.warnings.push_back(
        "its initial memory is more than Sluice's default limit of 64 MiB (raise "
        "sluice.wasm memory_limit_mb)");
  }
  for (const ExportInfo& e : info->exports) {
    if (e.kind == ExternKind::Function && e.name.rfind("proxy_on_", 0) == 0) {
      c.callbacks.push_back(e.name.substr(9));
    }
  }
  return c;
}

}  // namespace sluice::wasm
