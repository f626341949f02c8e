// Loads the V8 runtime's shared object (libsluice-v8.so, built from vm/v8/) the first time V8 is
// needed. Why a shared object: see vm/v8/v8_runtime.h. Where it is looked for, in order:
//   1. $SLUICE_V8_MODULE, a path to the file (an override, e.g. for an installed layout);
//   2. the directory of the running executable (the build folder, or wherever sluice is copied
//      with it);
//   3. the build folder this code was compiled in, for the tests and benchmarks that run from
//      its subfolders.
// The first file that exists is the one loaded: a file that is there but broken is an error, not
// a reason to try an older copy elsewhere.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wasm/vm/runtimes.h"
#include "wasm/vm/v8/v8_runtime.h"

namespace sluice::wasm {

namespace {

struct V8Module {
  std::string error;  // empty once loaded
  decltype(&sluice_v8_make_runtime) make_runtime = nullptr;
  decltype(&sluice_v8_trap_handler_enabled) trap_handler_enabled = nullptr;
};

std::vector<std::string> candidate_paths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("SLUICE_V8_MODULE"); env && *env) {
    paths.emplace_back(env);
    return paths;  // an explicit choice: nothing else is tried
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path() / kV8ModuleFile).string());
#ifdef SLUICE_V8_MODULE_BUILD_PATH
  if (paths.empty() || paths.back() != SLUICE_V8_MODULE_BUILD_PATH) {
    paths.emplace_back(SLUICE_V8_MODULE_BUILD_PATH);
  }
#endif
  return paths;
}

V8Module load() {
  V8Module m;
  std::string path;
  const std::vector<std::string> paths = candidate_paths();
  for (const std::string& p : paths) {
    if (access(p.c_str(), F_OK) == 0) {
      path = p;
      break;
    }
  }
  if (path.empty()) {
    std::string tried;
    for (const std::string& p : paths) tried += (tried.empty() ? "" : ", ") + p;
    m.error = fmt::format(
        "{} not found (looked for {}); it is built next to the sluice executable and must stay "
        "with it, or be named by $SLUICE_V8_MODULE",
        kV8ModuleFile, tried);
    return m;
  }
  // RTLD_LOCAL: libnode's 57k exported symbols (V8, Node, its bundled llhttp) stay out of the
  // process's global scope. Never closed: VMs and V8's threads live until exit.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    m.error = fmt::format("cannot load {}: {}", path, why ? why : "unknown error");
    return m;
  }
  auto interface =
      reinterpret_cast<decltype(&sluice_v8_interface)>(dlsym(handle, "sluice_v8_interface"));
  m.make_runtime =
      reinterpret_cast<decltype(&sluice_v8_make_runtime)>(dlsym(handle, "sluice_v8_make_runtime"));
  m.trap_handler_enabled = reinterpret_cast<decltype(&sluice_v8_trap_handler_enabled)>(
      dlsym(handle, "sluice_v8_trap_handler_enabled"));
  if (!interface || !m.make_runtime || !m.trap_handler_enabled) {
    m.error = fmt::format("{} is not Sluice's V8 runtime (its entry points are missing)", path);
    return m;
  }
  if (std::string_view(interface()) != SLUICE_V8_INTERFACE) {
    m.error = fmt::format(
        "{} was built from another version of Sluice (interface {}, this executable's {}); "
        "use the one built with this executable",
        path, interface(), SLUICE_V8_INTERFACE);
    return m;
  }
  spdlog::debug("wasm: loaded the V8 runtime from {}", path);
  return m;
}

const V8Module& v8_module() {
  static const V8Module m = load();  // once: a failure is not retried, every caller sees it
  return m;
}

}  // namespace

Result<std::unique_ptr<WasmRuntime>> make_v8_runtime() {
  const V8Module& m = v8_module();
  if (!m.error.empty()) return Error{m.error};
  return std::unique_ptr<WasmRuntime>(m.make_runtime());
}

bool v8_trap_handler_enabled() {
  const V8Module& m = v8_module();
  return m.error.empty() && m.trap_handler_enabled();
}

}  // namespace sluice::wasm
