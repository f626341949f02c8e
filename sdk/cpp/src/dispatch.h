// Internal: the SDK's per-VM state and the callback dispatch shared by the wasm exports
// (wasm_exports.cc) and the null-runtime thunks (native_plugin.cc).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "id_map.h"
#include "sluice/sdk.h"

namespace sluice {
inline namespace SLUICE_SDK_NS {

inline constexpr size_t kInitialReturnBuffer = 2048;
// A return buffer grown past this for one big value (an inflated body) goes back to the initial
// size afterwards, rather than holding that much of the module's memory for good.
inline constexpr size_t kMaxKeptReturnBuffer = 64 * 1024;
// Streams whose on_delete one sluice_on_delete_batch call can carry.
inline constexpr size_t kDeleteMailboxSize = 64;

// Everything one VM owns. A .wasm module has exactly one (a global: each instance has its own
// memory); the native build allocates one per create_instance().
struct VmState {
  IdMap<std::unique_ptr<RootContext>> roots;
  // How each root makes its stream contexts (absent: the root has none).
  IdMap<const detail::HttpFactory*> http_factories;
  IdMap<const detail::NetworkFactory*> network_factories;
  IdMap<std::unique_ptr<HttpContext>> streams;
  IdMap<std::unique_ptr<NetworkContext>> connections;
  // Contexts of roots that make both kinds, not yet created: id -> root id. The first callback
  // decides the kind (see RegisterContextFactory).
  std::unordered_map<uint32_t, uint32_t> undecided;
  // Where Sluice writes the values host calls return, instead of calling our malloc for each
  // (see kSetReturnBuffer); offered to the host at the first root context, or earlier and
  // bigger when a value did not fit (kBufferTooSmall).
  std::vector<char> return_buffer = std::vector<char>(kInitialReturnBuffer);
  bool return_buffer_offered = false;
  // Grown past kMaxKeptReturnBuffer: shrunk before the next value is asked for (the last value
  // may be read in place until then).
  bool return_buffer_oversized = false;
  // The host took the return buffer: it is Sluice, and has Sluice's other functions too.
  bool host_is_sluice = false;
  // The ids of ended streams whose on_delete Sluice delivers in one call
  // (sluice_on_delete_batch); offered with the return buffer.
  std::array<uint32_t, kDeleteMailboxSize> delete_mailbox{};
  // What a view accessor (get_property_view, HeaderMap::get_view) returns when the value came
  // through our malloc rather than the return buffer: copied here, the allocation freed.
  std::string view_scratch;
};

// Sluice's own foreign functions (the host's src/wasm/abi/sluice_functions.h, which says what
// they do; a unit test checks that both sides agree). Other hosts answer NotFound.
inline constexpr std::string_view kSetReturnBuffer = "sluice_set_return_buffer";
inline constexpr std::string_view kDeclineStreamCallbacks = "sluice_decline_stream_callbacks";
inline constexpr std::string_view kGetProperties = "sluice_get_properties";
inline constexpr uint32_t kNoProperty = 0xffffffff;
inline constexpr uint32_t kMaxBatchedProperties = 64;
inline constexpr std::string_view kSetDeleteMailbox = "sluice_set_delete_mailbox";
inline constexpr std::string_view kDefineHeaderEdits = "sluice_define_header_edits";
inline constexpr std::string_view kEditResponseHeaders = "sluice_edit_response_headers";
inline constexpr uint32_t kSkipResponseHeadersCallback = 1;
inline constexpr uint32_t kCallResponseHeadersCallback = 2;
// The .wasm build exports a function of this name: it handles kBufferTooSmall by offering a
// bigger return buffer and calling again (get_returned_value).
inline constexpr std::string_view kRetriesBufferTooSmall = "sluice_retries_buffer_too_small";
inline constexpr proxy_status_t kBufferTooSmall = 1000;

// The VM whose callback runs now (the .wasm build's only one; the native build's current
// instance), or nullptr outside callbacks.
VmState* current_vm_state();

// Frees what a host call returned in `data`, unless it is the VM's return buffer.
void release_host_buffer(const char* data);

// Offers the host a return buffer of at least `size` bytes; false if it was not taken.
bool grow_return_buffer(size_t size);
// Gives the host a return buffer of the initial size in place of an oversized one.
void shrink_return_buffer(VmState& vm);

// Calls `get(value, size)`, a host function that returns a value through those out-params,
// again with a big enough return buffer when Sluice answers kBufferTooSmall (it does so only
// for calls it makes without a way into our malloc).
template <typename Get>
proxy_status_t get_returned_value(Get&& get, const char** value, size_t* size) {
  if (VmState* vm = current_vm_state(); vm && vm->return_buffer_oversized) {
    shrink_return_buffer(*vm);
  }
  proxy_status_t status = get(value, size);
  if (status == kBufferTooSmall && grow_return_buffer(*size)) status = get(value, size);
  return status;
}

// The exported callbacks, one function each, in ABI argument order.
struct Dispatch {
  static void on_context_create(VmState& vm, uint32_t id, uint32_t parent_id);
  static uint32_t on_vm_start(VmState& vm, uint32_t root_id, uint32_t config_size);
  static uint32_t on_configure(VmState& vm, uint32_t root_id, uint32_t config_size);
  static void on_tick(VmState& vm, uint32_t root_id);
  static void on_queue_ready(VmState& vm, uint32_t root_id, uint32_t token);
  static void on_foreign_function(VmState& vm, uint32_t root_id, uint32_t function_id,
                                  uint32_t args_size);
  static void on_http_call_response(VmState& vm, uint32_t root_id, uint32_t token,
                                    uint32_t num_headers, uint32_t body_size,
                                    uint32_t num_trailers);
  static void on_grpc_receive_initial_metadata(VmState& vm, uint32_t root_id, uint32_t token,
                                               uint32_t num_elements);
  static void on_grpc_receive(VmState& vm, uint32_t root_id, uint32_t token, uint32_t message_size);
  static void on_grpc_receive_trailing_metadata(VmState& vm, uint32_t root_id, uint32_t token,
                                                uint32_t num_elements);
  static void on_grpc_close(VmState& vm, uint32_t root_id, uint32_t token, uint32_t status);
  template <typename Event>
  static void grpc_stream_event(RootContext& root, uint32_t token, Event&& event);
  static uint32_t on_request_headers(VmState& vm, uint32_t id, uint32_t num_headers,
                                     uint32_t end_of_stream);
  static uint32_t on_request_body(VmState& vm, uint32_t id, uint32_t body_size,
                                  uint32_t end_of_stream);
  static uint32_t on_request_trailers(VmState& vm, uint32_t id, uint32_t num_trailers);
  static uint32_t on_response_headers(VmState& vm, uint32_t id, uint32_t num_headers,
                                      uint32_t end_of_stream);
  static uint32_t on_response_body(VmState& vm, uint32_t id, uint32_t body_size,
                                   uint32_t end_of_stream);
  static uint32_t on_response_trailers(VmState& vm, uint32_t id, uint32_t num_trailers);
  static uint32_t on_new_connection(VmState& vm, uint32_t id);
  static uint32_t on_downstream_data(VmState& vm, uint32_t id, uint32_t data_size,
                                     uint32_t end_of_stream);
  static uint32_t on_upstream_data(VmState& vm, uint32_t id, uint32_t data_size,
                                   uint32_t end_of_stream);
  static void on_downstream_connection_close(VmState& vm, uint32_t id, uint32_t peer_type);
  static void on_upstream_connection_close(VmState& vm, uint32_t id, uint32_t peer_type);
  static uint32_t on_done(VmState& vm, uint32_t id);
  static void on_log(VmState& vm, uint32_t id);
  static void on_delete(VmState& vm, uint32_t id);
  // Sluice's fused exports (a host that does not know them never calls them): two callbacks in
  // one call into the module, in the order the host would have made them.
  static uint32_t on_stream_start(VmState& vm, uint32_t id, uint32_t root_id, uint32_t num_headers,
                                  uint32_t end_of_stream);  // on_context_create, on_request_headers
  static void on_stream_end(VmState& vm, uint32_t id);      // on_log, on_delete
  // on_delete for the first `count` ids of vm.delete_mailbox, in order.
  static void on_delete_batch(VmState& vm, uint32_t count);
};

}  // namespace SLUICE_SDK_NS
}  // namespace sluice
