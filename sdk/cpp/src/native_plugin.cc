// The null-runtime build of an extension: a SluiceNullPlugin (src/wasm/vm/null/null_plugin_abi.h)
// whose exports are thunks onto the same Dispatch functions the .wasm exports call.
//
// Isolation: each create_instance() allocates a VmState, so every VM (one per worker) has its own
// contexts. The SDK code itself is compiled per extension inside SLUICE_SDK_NS, so extensions
// linked into one binary keep separate registries. Globals of the extension's own code are NOT
// per VM here (unlike in .wasm): keep state in the context objects.
//
// Linked into the binary (default): registers "sluice.<SLUICE_EXTENSION_NAME>" at static-init
// time. With SLUICE_NULL_PLUGIN_SHARED: a shared library exporting sluice_null_plugin().
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "dispatch.h"
#include "wasm/vm/null/null_plugin_abi.h"

#ifndef SLUICE_EXTENSION_NAME
#error "SLUICE_EXTENSION_NAME must be the extension's name (sluice_add_extension sets it)"
#endif

namespace sluice {
inline namespace SLUICE_SDK_NS {
namespace {

// Unpacks the uint64_t argument array into a Dispatch function's parameters (i32 zero-extended).
template <auto Fn>
struct Thunk;
template <typename R, typename... A, R (*Fn)(VmState&, A...)>
struct Thunk<Fn> {
  static uint64_t call(void* instance, const uint64_t* args) {
    return invoke(*static_cast<VmState*>(instance), args, std::index_sequence_for<A...>{});
  }
  template <size_t... I>
  static uint64_t invoke(VmState& vm, const uint64_t* args, std::index_sequence<I...>) {
    if constexpr (std::is_void_v<R>) {
      Fn(vm, static_cast<A>(args[I])...);
      return 0;
    } else {
      return static_cast<uint64_t>(Fn(vm, static_cast<A>(args[I])...));
    }
  }
};

uint64_t nop(void*, const uint64_t*) { return 0; }

// Native pointers are host-sized: the "i" result carries a full 64-bit address here.
uint64_t native_malloc(void*, const uint64_t* args) {
  return reinterpret_cast<uintptr_t>(::malloc(static_cast<size_t>(args[0])));
}

void* create_instance() { return new VmState(); }
void destroy_instance(void* instance) { delete static_cast<VmState*>(instance); }

const SluiceNullExport kExports[] = {
    {"proxy_abi_version_0_2_1", ":", nop},
    {"_initialize", ":", nop},  // static initialization already ran when the binary loaded
    {"malloc", "i:i", native_malloc},
    {"proxy_on_context_create", "ii:", Thunk<&Dispatch::on_context_create>::call},
    {"proxy_on_vm_start", "ii:i", Thunk<&Dispatch::on_vm_start>::call},
    {"proxy_on_configure", "ii:i", Thunk<&Dispatch::on_configure>::call},
    {"proxy_on_tick", "i:", Thunk<&Dispatch::on_tick>::call},
    {"proxy_on_queue_ready", "ii:", Thunk<&Dispatch::on_queue_ready>::call},
    {"proxy_on_foreign_function", "iii:", Thunk<&Dispatch::on_foreign_function>::call},
    {"proxy_on_http_call_response", "iiiii:", Thunk<&Dispatch::on_http_call_response>::call},
    {"proxy_on_grpc_receive_initial_metadata",
     "iii:", Thunk<&Dispatch::on_grpc_receive_initial_metadata>::call},
    {"proxy_on_grpc_receive", "iii:", Thunk<&Dispatch::on_grpc_receive>::call},
    {"proxy_on_grpc_receive_trailing_metadata",
     "iii:", Thunk<&Dispatch::on_grpc_receive_trailing_metadata>::call},
    {"proxy_on_grpc_close", "iii:", Thunk<&Dispatch::on_grpc_close>::call},
    {"proxy_on_request_headers", "iii:i", Thunk<&Dispatch::on_request_headers>::call},
    {"proxy_on_request_body", "iii:i", Thunk<&Dispatch::on_request_body>::call},
    {"proxy_on_request_trailers", "ii:i", Thunk<&Dispatch::on_request_trailers>::call},
    {"proxy_on_response_headers", "iii:i", Thunk<&Dispatch::on_response_headers>::call},
    {"proxy_on_response_body", "iii:i", Thunk<&Dispatch::on_response_body>::call},
    {"proxy_on_response_trailers", "ii:i", Thunk<&Dispatch::on_response_trailers>::call},
    {"proxy_on_new_connection", "i:i", Thunk<&Dispatch::on_new_connection>::call},
    {"proxy_on_downstream_data", "iii:i", Thunk<&Dispatch::on_downstream_data>::call},
    {"proxy_on_upstream_data", "iii:i", Thunk<&Dispatch::on_upstream_data>::call},
    {"proxy_on_downstream_connection_close",
     "ii:", Thunk<&Dispatch::on_downstream_connection_close>::call},
    {"proxy_on_upstream_connection_close",
     "ii:", Thunk<&Dispatch::on_upstream_connection_close>::call},
    {"proxy_on_done", "i:i", Thunk<&Dispatch::on_done>::call},
    {"proxy_on_log", "i:", Thunk<&Dispatch::on_log>::call},
    {"proxy_on_delete", "i:", Thunk<&Dispatch::on_delete>::call},
    {"sluice_on_stream_start", "iiii:i", Thunk<&Dispatch::on_stream_start>::call},
    {"sluice_on_stream_end", "i:", Thunk<&Dispatch::on_stream_end>::call},
    {"sluice_on_delete_batch", "i:", Thunk<&Dispatch::on_delete_batch>::call},
};

const SluiceNullPlugin kPlugin = {
    SLUICE_NULL_PLUGIN_ABI_VERSION,
    "sluice." SLUICE_EXTENSION_NAME,
    create_instance,
    destroy_instance,
    kExports,
    static_cast<uint32_t>(sizeof(kExports) / sizeof(kExports[0])),
};

}  // namespace

// Set by the host around every call into this plugin.
VmState* current_vm_state() { return static_cast<VmState*>(sluice_null_current_instance()); }

namespace {

#if !defined(SLUICE_NULL_PLUGIN_SHARED)
struct Registrar {
  Registrar() { sluice_register_null_plugin(&kPlugin); }
} registrar;
#endif

}  // namespace

#if defined(SLUICE_NULL_PLUGIN_SHARED)
const SluiceNullPlugin* shared_plugin() { return &kPlugin; }
#endif

}  // namespace SLUICE_SDK_NS
}  // namespace sluice

#if defined(SLUICE_NULL_PLUGIN_SHARED)
extern "C" __attribute__((visibility("default"))) const SluiceNullPlugin* sluice_null_plugin() {
  return sluice::shared_plugin();
}
#endif
