// The null runtime: Proxy-Wasm plugins compiled natively with the SDK and linked into the binary
// (or loaded from a shared library). Trusted native code: no sandbox, no memory or CPU limits.
// "Memory" is the process's: pointers are host addresses, words are 8 bytes.
#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/strings.h"
#include "wasm/vm/module_info.h"
#include "wasm/vm/null/null_host_shims.h"
#include "wasm/vm/null/null_plugin_abi.h"
#include "wasm/vm/runtimes.h"

namespace sluice::wasm {

namespace {

struct NullPluginRegistry {
  std::mutex mu;
  std::unordered_map<std::string, const SluiceNullPlugin*> plugins;
};
NullPluginRegistry& null_plugin_registry() {
  // Registrations run during static initialization.
  static NullPluginRegistry* r = new NullPluginRegistry;
  return *r;
}

Result<Signature> parse_signature(std::string_view s) {
  Signature sig;
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return Error{str_cat("bad export signature '", s, "'")};
  const auto add = [&](std::string_view part, std::vector<ValType>& out) -> bool {
    for (char c : part) {
      if (c == 'i') {
        out.push_back(ValType::I32);
      } else if (c == 'I') {
        out.push_back(ValType::I64);
      } else {
        return false;
      }
    }
    return true;
  };
  if (!add(s.substr(0, colon), sig.params) || !add(s.substr(colon + 1), sig.results)) {
    return Error{str_cat("bad export signature '", s, "'")};
  }
  return sig;
}

class NullVm;
thread_local NullVm* tls_current_vm = nullptr;

class NullVm : public WasmVm {
 public:
  static constexpr size_t kMaxArgs = 16;
  NullVm(const SluiceNullPlugin* plugin, std::vector<const HostFunction*> host)
      : plugin_(plugin), host_(std::move(host)), instance_(plugin->create_instance()) {
    refresh_memory_view();
  }
  ~NullVm() override { plugin_->destroy_instance(instance_); }

  std::string_view runtime_name() const override { return kNullRuntimeName; }
  bool calls_are_cheap() const override { return true; }

  WasmFunction function(std::string_view name) override {
    for (uint32_t i = 0; i < plugin_->num_exports; ++i) {
      const SluiceNullExport& e = plugin_->exports[i];
      if (name == e.name) {
        auto sig = parse_signature(e.signature);
        if (!sig) return {};
        return WasmFunction{i, std::move(*sig)};
      }
    }
    return {};
  }

  CallResult call(const WasmFunction& f, std::initializer_list<uint64_t> args) override {
    if (f.index >= plugin_->num_exports) return CallResult{false, 0, "no such function"};
    // The export reads exactly its arity: with the count checked, the rest of buf stays unset
    // (zeroing all 16 words was a third of an empty call).
    if (args.size() != f.signature.params.size() || args.size() > kMaxArgs) {
      return CallResult{false, 0, "call with the wrong number of arguments"};
    }
    NullVm* saved = tls_current_vm;
    tls_current_vm = this;
    uint64_t buf[kMaxArgs];
    size_t n = 0;
    for (uint64_t a : args) buf[n++] = a;
    const uint64_t v = plugin_->exports[f.index].fn(instance_, buf);
    tls_current_vm = saved;
    if (!trap_.empty()) {
      // Native code cannot be unwound: the call ran to its end; the failure is reported now.
      std::string t = std::move(trap_);
      trap_.clear();
      return CallResult{false, 0, std::move(t)};
    }
    return CallResult{true, v, {}};
  }

  // Native code shares the host's address space: module addresses are host addresses (0 is
  // the null pointer, valid only for an empty range), checked only against wrapping around.
  void refresh_memory_view() override { memory_view_ = MemoryView{0, UINT64_MAX, false}; }
  uint32_t word_size() const override { return 8; }
  void trap(std::string message) override {
    if (trap_.empty()) trap_ = std::move(message);
  }
  void terminate() override {}  // native code cannot be stopped from outside

  // For the shims: the host function the plugin's ABI version allows, or nullptr.
  const HostFunction* host(size_t shim) const {
    return shim < host_.size() ? host_[shim] : nullptr;
  }
  void* instance() const { return instance_; }

 private:
  const SluiceNullPlugin* plugin_;
  std::vector<const HostFunction*> host_;
  void* instance_;
  std::string trap_;
};

class NullModule : public CompiledModule {
 public:
  NullModule(const SluiceNullPlugin* plugin, ModuleInfo info)
      : plugin_(plugin), info_(std::move(info)) {}
  const ModuleInfo& info() const override { return info_; }
  Result<std::unique_ptr<WasmVm>> instantiate(const ImportResolver& resolver) override {
    std::vector<const HostFunction*> host;
    for (std::string_view name : null_shim_names()) host.push_back(resolver("env", name));
    return std::unique_ptr<WasmVm>(std::make_unique<NullVm>(plugin_, std::move(host)));
  }

 private:
  const SluiceNullPlugin* plugin_;
  ModuleInfo info_;
};

class NullRuntime : public WasmRuntime {
 public:
  std::string_view name() const override { return kNullRuntimeName; }

  Result<std::shared_ptr<CompiledModule>> compile(std::string_view code) override {
    const SluiceNullPlugin* plugin = nullptr;
    if (code.size() > 3 && code.substr(code.size() - 3) == ".so") {
      auto loaded = load_shared_library(std::string(code));
      if (!loaded) return std::move(loaded).take_error();
      plugin = *loaded;
    } else {
      NullPluginRegistry& r = null_plugin_registry();
      std::lock_guard lock(r.mu);
      auto it = r.plugins.find(std::string(code));
      if (it == r.plugins.end()) {
        std::string known;
        for (const auto& [n, _] : r.plugins) known += (known.empty() ? "" : ", ") + n;
        return Error{str_cat("no null-runtime plugin named '", code,
                             "' is built in (built in: ", known.empty() ? "none" : known, ")")};
      }
      plugin = it->second;
    }
    ModuleInfo info;
    for (uint32_t i = 0; i < plugin->num_exports; ++i) {
      const SluiceNullExport& e = plugin->exports[i];
      auto sig = parse_signature(e.signature);
      if (!sig)
        return Error{str_cat("plugin '", plugin->name, "' export ", e.name, ": ", sig.error())};
      info.exports.push_back(ExportInfo{e.name, ExternKind::Function, std::move(*sig)});
      if (info.abi_version == AbiVersion::Unknown) {
        const std::string_view n = e.name;
        if (n == "proxy_abi_version_0_2_1") info.abi_version = AbiVersion::V0_2_1;
        if (n == "proxy_abi_version_0_2_0") info.abi_version = AbiVersion::V0_2_0;
        if (n == "proxy_abi_version_0_1_0") info.abi_version = AbiVersion::V0_1_0;
      }
    }
    // Native plugins are built against this host's SDK: 0.2.1 unless they say otherwise.
    if (info.abi_version == AbiVersion::Unknown) info.abi_version = AbiVersion::V0_2_1;
    return std::shared_ptr<CompiledModule>(std::make_shared<NullModule>(plugin, std::move(info)));
  }

 private:
  static Result<const SluiceNullPlugin*> load_shared_library(const std::string& path) {
    // Kept loaded for the process: VMs of it may live as long.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) return Error{str_cat("cannot load ", path, ": ", dlerror())};
    auto entry = reinterpret_cast<SluiceNullPluginEntry>(dlsym(handle, SLUICE_NULL_PLUGIN_ENTRY));
    if (!entry) return Error{str_cat(path, " defines no ", SLUICE_NULL_PLUGIN_ENTRY, "()")};
    const SluiceNullPlugin* p = entry();
    if (!p || p->abi_version != SLUICE_NULL_PLUGIN_ABI_VERSION) {
      return Error{str_cat(path, ": null plugin ABI version ", p ? p->abi_version : 0,
                           " (this sluice speaks ", SLUICE_NULL_PLUGIN_ABI_VERSION, ")")};
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<WasmRuntime> make_null_runtime() { return std::make_unique<NullRuntime>(); }

uint64_t null_host_call(size_t shim, std::initializer_list<uint64_t> args) {
  NullVm* vm = tls_current_vm;
  if (!vm) return 10;  // InternalFailure: a host function called outside any plugin callback
  const HostFunction* f = vm->host(shim);
  if (!f) {
    // Not available to this plugin's ABI version (a .wasm module would have failed to link).
    vm->trap(str_cat("host function ", null_shim_names()[shim], " is not available"));
    return 10;
  }
  // Host functions read exactly their arity, and each shim passes all of it: the list's own
  // array is the argument buffer.
  if (args.size() != f->signature.params.size()) {
    vm->trap(str_cat("host function ", null_shim_names()[shim], " called with ", args.size(),
                     " arguments"));
    return 10;
  }
  return f->callback(*vm, args.begin(), f->data);
}

}  // namespace sluice::wasm

extern "C" {

void sluice_register_null_plugin(const SluiceNullPlugin* plugin) {
  auto& r = sluice::wasm::null_plugin_registry();
  std::lock_guard lock(r.mu);
  r.plugins[plugin->name] = plugin;
}

void* sluice_null_current_instance(void) {
  auto* vm = sluice::wasm::tls_current_vm;
  return vm ? vm->instance() : nullptr;
}

}  // extern "C"
