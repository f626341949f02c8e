// The module's exports for the wasm32 build. Each instance has its own linear memory, so one
// global VmState is per-VM state. `_initialize` (which runs the static registrations) comes
// from wasi-libc's reactor crt.
#include <cstdlib>

#include "dispatch.h"

#if !defined(__wasm__)
#error "wasm_exports.cc is for the wasm32 build only"
#endif

#define SLUICE_EXPORT(name) extern "C" __attribute__((export_name(#name), used))

namespace {
sluice::VmState& vm() {
  static sluice::VmState state;
  return state;
}
using sluice::Dispatch;
}  // namespace

sluice::VmState* sluice::SLUICE_SDK_NS::current_vm_state() { return &vm(); }

// Never called: the host reads the ABI version from this export's name.
SLUICE_EXPORT(proxy_abi_version_0_2_1) void sluice_abi_version_0_2_1() {}

// Never called: tells Sluice that host calls may answer kBufferTooSmall (dispatch.h), which lets
// it make the calls that return values without a way into our malloc, much cheaper on V8.
SLUICE_EXPORT(sluice_retries_buffer_too_small) void sluice_retries_buffer_too_small() {}

// The host copies returned data into memory it gets from here; the SDK frees it.
SLUICE_EXPORT(malloc) void* sluice_malloc(size_t size) { return ::malloc(size); }

SLUICE_EXPORT(proxy_on_context_create)
void sluice_on_context_create(uint32_t id, uint32_t parent) {
  Dispatch::on_context_create(vm(), id, parent);
}
SLUICE_EXPORT(proxy_on_vm_start) uint32_t sluice_on_vm_start(uint32_t root, uint32_t size) {
  return Dispatch::on_vm_start(vm(), root, size);
}
SLUICE_EXPORT(proxy_on_configure) uint32_t sluice_on_configure(uint32_t root, uint32_t size) {
  return Dispatch::on_configure(vm(), root, size);
}
SLUICE_EXPORT(proxy_on_tick) void sluice_on_tick(uint32_t root) { Dispatch::on_tick(vm(), root); }
SLUICE_EXPORT(proxy_on_queue_ready) void sluice_on_queue_ready(uint32_t root, uint32_t token) {
  Dispatch::on_queue_ready(vm(), root, token);
}
SLUICE_EXPORT(proxy_on_foreign_function)
void sluice_on_foreign_function(uint32_t root, uint32_t function_id, uint32_t size) {
  Dispatch::on_foreign_function(vm(), root, function_id, size);
}
SLUICE_EXPORT(proxy_on_http_call_response)
void sluice_on_http_call_response(uint32_t root, uint32_t token, uint32_t headers, uint32_t body,
                                  uint32_t trailers) {
  Dispatch::on_http_call_response(vm(), root, token, headers, body, trailers);
}
SLUICE_EXPORT(proxy_on_grpc_receive_initial_metadata)
void sluice_on_grpc_receive_initial_metadata(uint32_t root, uint32_t token, uint32_t n) {
  Dispatch::on_grpc_receive_initial_metadata(vm(), root, token, n);
}
SLUICE_EXPORT(proxy_on_grpc_receive)
void sluice_on_grpc_receive(uint32_t root, uint32_t token, uint32_t size) {
  Dispatch::on_grpc_receive(vm(), root, token, size);
}
SLUICE_EXPORT(proxy_on_grpc_receive_trailing_metadata)
void sluice_on_grpc_receive_trailing_metadata(uint32_t root, uint32_t token, uint32_t n) {
  Dispatch::on_grpc_receive_trailing_metadata(vm(), root, token, n);
}
SLUICE_EXPORT(proxy_on_grpc_close)
void sluice_on_grpc_close(uint32_t root, uint32_t token, uint32_t status) {
  Dispatch::on_grpc_close(vm(), root, token, status);
}
SLUICE_EXPORT(proxy_on_request_headers)
uint32_t sluice_on_request_headers(uint32_t id, uint32_t headers, uint32_t eos) {
  return Dispatch::on_request_headers(vm(), id, headers, eos);
}
SLUICE_EXPORT(proxy_on_request_body)
uint32_t sluice_on_request_body(uint32_t id, uint32_t size, uint32_t eos) {
  return Dispatch::on_request_body(vm(), id, size, eos);
}
SLUICE_EXPORT(proxy_on_request_trailers)
uint32_t sluice_on_request_trailers(uint32_t id, uint32_t trailers) {
  return Dispatch::on_request_trailers(vm(), id, trailers);
}
SLUICE_EXPORT(proxy_on_response_headers)
uint32_t sluice_on_response_headers(uint32_t id, uint32_t headers, uint32_t eos) {
  return Dispatch::on_response_headers(vm(), id, headers, eos);
}
SLUICE_EXPORT(proxy_on_response_body)
uint32_t sluice_on_response_body(uint32_t id, uint32_t size, uint32_t eos) {
  return Dispatch::on_response_body(vm(), id, size, eos);
}
SLUICE_EXPORT(proxy_on_response_trailers)
uint32_t sluice_on_response_trailers(uint32_t id, uint32_t trailers) {
  return Dispatch::on_response_trailers(vm(), id, trailers);
}
SLUICE_EXPORT(proxy_on_new_connection) uint32_t sluice_on_new_connection(uint32_t id) {
  return Dispatch::on_new_connection(vm(), id);
}
SLUICE_EXPORT(proxy_on_downstream_data)
uint32_t sluice_on_downstream_data(uint32_t id, uint32_t size, uint32_t eos) {
  return Dispatch::on_downstream_data(vm(), id, size, eos);
}
SLUICE_EXPORT(proxy_on_upstream_data)
uint32_t sluice_on_upstream_data(uint32_t id, uint32_t size, uint32_t eos) {
  return Dispatch::on_upstream_data(vm(), id, size, eos);
}
SLUICE_EXPORT(proxy_on_downstream_connection_close)
void sluice_on_downstream_connection_close(uint32_t id, uint32_t peer) {
  Dispatch::on_downstream_connection_close(vm(), id, peer);
}
SLUICE_EXPORT(proxy_on_upstream_connection_close)
void sluice_on_upstream_connection_close(uint32_t id, uint32_t peer) {
  Dispatch::on_upstream_connection_close(vm(), id, peer);
}
SLUICE_EXPORT(proxy_on_done) uint32_t sluice_on_done(uint32_t id) {
  return Dispatch::on_done(vm(), id);
}
SLUICE_EXPORT(proxy_on_log) void sluice_on_log(uint32_t id) { Dispatch::on_log(vm(), id); }
SLUICE_EXPORT(proxy_on_delete) void sluice_on_delete(uint32_t id) { Dispatch::on_delete(vm(), id); }

// Sluice's fused exports (src/wasm/abi/sluice_functions.h); other hosts ignore them.
SLUICE_EXPORT(sluice_on_stream_start)
uint32_t sluice_on_stream_start(uint32_t id, uint32_t root, uint32_t headers, uint32_t eos) {
  return Dispatch::on_stream_start(vm(), id, root, headers, eos);
}
SLUICE_EXPORT(sluice_on_stream_end) void sluice_on_stream_end(uint32_t id) {
  Dispatch::on_stream_end(vm(), id);
}
SLUICE_EXPORT(sluice_on_delete_batch) void sluice_on_delete_batch(uint32_t count) {
  Dispatch::on_delete_batch(vm(), count);
}
