#include "wasm/abi/capabilities.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "wasm/abi/host_functions.h"
#include "wasm/abi/sluice_functions.h"
#include "wasm/context.h"
#include "wasm/plugin.h"

namespace sluice::wasm {
namespace {

constexpr uint64_t kInternalFailure = 10;  // Proxy-Wasm WasmResult
constexpr uint64_t kErrnoNotcapable = 76;  // WASI errno

bool is_wasi(std::string_view module) {
  return module == "wasi_snapshot_preview1" || module == "wasi_unstable";
}

struct Denied {
  HostFunction fn;
  std::atomic<bool> warned{false};
};

void warn_once(Denied& d, const char* answer) {
  if (d.warned.exchange(true)) return;
  const Context* ctx = current_context();
  const std::string plugin = ctx && ctx->plugin() ? ctx->plugin()->name : std::string("?");
  spdlog::warn(
      "wasm: plugin '{}' called {}.{}, which its capability_restriction_config does not allow: "
      "answered {} (logged once)",
      plugin, d.fn.module, d.fn.name, answer);
}

uint64_t denied_proxy(WasmVm&, const uint64_t*, void* data) {
  warn_once(*static_cast<Denied*>(data), "InternalFailure");
  return kInternalFailure;
}

// Our SDK calls Sluice's own foreign functions in every plugin as it starts. Left out by a
// restriction, they get Envoy's answer (NotFound) and no warning, which would blame the plugin
// for what its SDK did; the plugin's own foreign calls are denied as any host call is.
uint64_t denied_foreign_function(WasmVm& vm, const uint64_t* a, void* data) {
  constexpr uint64_t kNotFound = 1;
  std::string_view name;
  if (vm.read(a[0], a[1], &name) && sluice_functions::is_sluice_function(name)) return kNotFound;
  return denied_proxy(vm, a, data);
}

uint64_t denied_wasi(WasmVm&, const uint64_t*, void* data) {
  warn_once(*static_cast<Denied*>(data), "NOTCAPABLE");
  return kErrnoNotcapable;
}

// One stand-in per restrictable host function, built once: V8 keeps pointers to them.
const std::unordered_map<std::string, std::unique_ptr<Denied>>& stand_ins() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string, std::unique_ptr<Denied>>();
    for (const HostFunction& fn : all_host_functions()) {
      if (!is_restrictable(fn)) continue;
      auto d = std::make_unique<Denied>();
      d->fn = fn;
      d->fn.callback = is_wasi(fn.module)                         ? denied_wasi
                       : fn.name == "proxy_call_foreign_function" ? denied_foreign_function
                                                                  : denied_proxy;
      d->fn.data = d.get();
      t->emplace(fn.module + "." + fn.name, std::move(d));
    }
    return t;
  }();
  return *table;
}

constexpr std::string_view kCallbacks[] = {
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_validate_configuration",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_tick",
    "proxy_on_queue_ready",
    "proxy_on_foreign_function",
    "proxy_on_http_call_response",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
};

}  // namespace

bool Capabilities::allows(std::string_view name) const {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), name) != allowed.end();
}

bool is_restrictable(const HostFunction& fn) {
  return is_wasi(fn.module) || (fn.module == "env" && fn.name.rfind("proxy_", 0) == 0);
}

const HostFunction* denied_host_function(const HostFunction& fn) {
  const auto& table = stand_ins();
  auto it = table.find(fn.module + "." + fn.name);
  return it == table.end() ? nullptr : &it->second->fn;
}

bool is_known_capability(std::string_view name) {
  if (std::find(std::begin(kCallbacks), std::end(kCallbacks), name) != std::end(kCallbacks)) {
    return true;
  }
  const auto& all = all_host_functions();
  return std::any_of(all.begin(), all.end(),
                     [&](const HostFunction& fn) { return fn.name == name; });
}

}  // namespace sluice::wasm
