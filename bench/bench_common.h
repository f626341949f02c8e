// Shared by wasm_call_bench and wasm_vm_rss: the add_header example extension as a plugin on
// either runtime. Header-only, benchmark code.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wasm/context.h"
#include "wasm/plugin.h"
#include "wasm/vm/module_info.h"
#include "wasm/vm/runtimes.h"
#include "wasm/vm/wasm_vm.h"

#ifndef SLUICE_BENCH_EXTENSIONS_DIR
#define SLUICE_BENCH_EXTENSIONS_DIR "build/extensions"
#endif

namespace sluice::wasm::bench {

enum class Runtime { V8 = 0, Null = 1 };

inline std::string_view runtime_name(Runtime rt) {
  return rt == Runtime::V8 ? kV8RuntimeName : kNullRuntimeName;
}

// The runtime, or exit with why not (V8's shared object missing, for one).
inline WasmRuntime& runtime(std::string_view name) {
  Result<WasmRuntime*> found = find_runtime(name);
  if (!found) {
    std::fprintf(stderr, "bench: %s\n", found.error().c_str());
    std::exit(1);
  }
  return **found;
}

// The plugin configuration every add_header benchmark uses (bench/run.sh too): one request and
// one response header set.
inline constexpr std::string_view kAddHeaderConfig =
    "request.set.x-bench = 1\nresponse.set.x-bench = 1\n";

inline std::string add_header_wasm_path() {
  if (const char* p = std::getenv("SLUICE_BENCH_ADD_HEADER_WASM"); p && *p) return p;
  return std::string(SLUICE_BENCH_EXTENSIONS_DIR) + "/add_header.wasm";
}

// add_header.wasm's bytes, or nullptr when the file cannot be read.
inline const std::string* add_header_wasm() {
  static const std::optional<std::string> bytes = []() -> std::optional<std::string> {
    std::ifstream in(add_header_wasm_path(), std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }();
  return bytes ? &*bytes : nullptr;
}

inline PluginSpec add_header_spec(Runtime rt) {
  PluginSpec spec;
  spec.name = "add_header";
  spec.root_id = "add_header";
  spec.configuration = std::string(kAddHeaderConfig);
  spec.runtime = std::string(runtime_name(rt));
  if (rt == Runtime::V8) {
    const std::string* bytes = add_header_wasm();
    spec.code = bytes ? *bytes : std::string();
    spec.code_origin = "file " + add_header_wasm_path();
  } else {
    spec.code = "sluice.add_header";
    spec.code_origin = "inline_string sluice.add_header";
  }
  return spec;
}

// The compiled add_header for `rt` (compiled once), or nullptr with a message on stderr.
inline std::shared_ptr<CompiledModule> add_header_module(Runtime rt) {
  static std::shared_ptr<CompiledModule> modules[2];
  auto& m = modules[static_cast<int>(rt)];
  if (!m) {
    const PluginSpec spec = add_header_spec(rt);
    if (spec.code.empty()) {
      std::fprintf(stderr, "bench: cannot read %s (set SLUICE_BENCH_ADD_HEADER_WASM)\n",
                   add_header_wasm_path().c_str());
      return nullptr;
    }
    auto compiled = runtime(spec.runtime).compile(spec.code);
    if (!compiled.ok()) {
      std::fprintf(stderr, "bench: %s: %s\n", spec.code_origin.c_str(), compiled.error().c_str());
      return nullptr;
    }
    m = compiled.value();
  }
  return m;
}

// Every import of a module bound to a do-nothing host function of the declared signature, so
// instantiation can be timed apart from the host's import table.
class StubImports {
 public:
  explicit StubImports(const ModuleInfo& info) {
    for (const ImportInfo& i : info.imports) {
      if (i.kind != ExternKind::Function) continue;
      stubs_.push_back(HostFunction{i.module, i.name, i.signature, &stub, nullptr});
    }
    // (A null-runtime plugin declares no imports: its shims then resolve to nothing, which
    // costs the same lookups.)
  }
  ImportResolver resolver() const {
    return [this](std::string_view module, std::string_view name) -> const HostFunction* {
      for (const HostFunction& f : stubs_) {
        if (f.module == module && f.name == name) return &f;
      }
      return nullptr;
    };
  }

 private:
  static uint64_t stub(WasmVm&, const uint64_t*, void*) { return 0; }
  std::vector<HostFunction> stubs_;
};

// A started add_header instance (root context up); destroys its root on reset / destruction.
class StartedInstance {
 public:
  StartedInstance() = default;
  StartedInstance(std::unique_ptr<WasmInstance> instance, Context* root)
      : instance_(std::move(instance)), root_(root) {}
  StartedInstance(StartedInstance&& o) noexcept
      : instance_(std::move(o.instance_)), root_(std::exchange(o.root_, nullptr)) {}
  StartedInstance& operator=(StartedInstance&& o) noexcept {
    if (this != &o) {
      reset();
      instance_ = std::move(o.instance_);
      root_ = std::exchange(o.root_, nullptr);
    }
    return *this;
  }
  ~StartedInstance() { reset(); }

  explicit operator bool() const { return instance_ != nullptr; }
  void reset() {
    if (instance_ && root_) instance_->destroy_root(root_);
    root_ = nullptr;
    instance_.reset();
  }

 private:
  std::unique_ptr<WasmInstance> instance_;
  Context* root_ = nullptr;
};

// WasmInstance::create + initialize + start_root, as a worker starts a plugin.
inline StartedInstance start_add_header(const std::shared_ptr<CompiledModule>& module,
                                        const PluginSpec& spec) {
  auto instance =
      WasmInstance::create(module, spec.runtime, spec.vm_id, spec.vm_configuration, spec.env);
  if (!instance.ok()) {
    std::fprintf(stderr, "bench: create: %s\n", instance.error().c_str());
    return {};
  }
  std::unique_ptr<WasmInstance> w = std::move(instance).value();
  if (!w->initialize()) {
    std::fprintf(stderr, "bench: initialize: %s\n", w->failure().c_str());
    return {};
  }
  auto root = w->start_root(spec);
  if (!root.ok()) {
    std::fprintf(stderr, "bench: start_root: %s\n", root.error().c_str());
    return {};
  }
  Context* r = root.value();
  return StartedInstance(std::move(w), r);
}

}  // namespace sluice::wasm::bench
