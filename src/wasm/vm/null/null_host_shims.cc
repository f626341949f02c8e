// Generated once from sdk/cpp/include/sluice/proxy_wasm_abi.h's declarations (one shim per
// host function); keep the two in step: the SDK header is the source of truth.
#include "wasm/vm/null/null_host_shims.h"

#include "sluice/proxy_wasm_abi.h"

namespace sluice::wasm {

const std::vector<std::string_view>& null_shim_names() {
  static const std::vector<std::string_view> names = {
      "proxy_log",
      "proxy_get_log_level",
      "proxy_get_current_time_nanoseconds",
      "proxy_set_tick_period_milliseconds",
      "proxy_get_status",
      "proxy_get_property",
      "proxy_set_property",
      "proxy_get_buffer_bytes",
      "proxy_get_buffer_status",
      "proxy_set_buffer_bytes",
      "proxy_get_header_map_pairs",
      "proxy_set_header_map_pairs",
      "proxy_get_header_map_size",
      "proxy_get_header_map_value",
      "proxy_add_header_map_value",
      "proxy_replace_header_map_value",
      "proxy_remove_header_map_value",
      "proxy_continue_stream",
      "proxy_close_stream",
      "proxy_send_local_response",
      "proxy_http_call",
      "proxy_grpc_call",
      "proxy_grpc_stream",
      "proxy_grpc_send",
      "proxy_grpc_cancel",
      "proxy_grpc_close",
      "proxy_get_shared_data",
      "proxy_set_shared_data",
      "proxy_register_shared_queue",
      "proxy_resolve_shared_queue",
      "proxy_enqueue_shared_queue",
      "proxy_dequeue_shared_queue",
      "proxy_define_metric",
      "proxy_increment_metric",
      "proxy_record_metric",
      "proxy_get_metric",
      "proxy_set_effective_context",
      "proxy_done",
      "proxy_call_foreign_function",
  };
  return names;
}

}  // namespace sluice::wasm

extern "C" {

proxy_status_t proxy_log(uint32_t level, const char* msg, size_t len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      0, {static_cast<uint64_t>(level), reinterpret_cast<uintptr_t>(msg),
          static_cast<uint64_t>(len)}));
}

proxy_status_t proxy_get_log_level(uint32_t* level) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(1, {reinterpret_cast<uintptr_t>(level)}));
}

proxy_status_t proxy_get_current_time_nanoseconds(uint64_t* nanos) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(2, {reinterpret_cast<uintptr_t>(nanos)}));
}

proxy_status_t proxy_set_tick_period_milliseconds(uint32_t period_ms) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(3, {static_cast<uint64_t>(period_ms)}));
}

proxy_status_t proxy_get_status(uint32_t* code, const char** msg, size_t* msg_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      4, {reinterpret_cast<uintptr_t>(code), reinterpret_cast<uintptr_t>(msg),
          reinterpret_cast<uintptr_t>(msg_len)}));
}

proxy_status_t proxy_get_property(const char* path, size_t path_len, const char** value,
                                  size_t* value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      5, {reinterpret_cast<uintptr_t>(path), static_cast<uint64_t>(path_len),
          reinterpret_cast<uintptr_t>(value), reinterpret_cast<uintptr_t>(value_len)}));
}

proxy_status_t proxy_set_property(const char* path, size_t path_len, const char* value,
                                  size_t value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      6, {reinterpret_cast<uintptr_t>(path), static_cast<uint64_t>(path_len),
          reinterpret_cast<uintptr_t>(value), static_cast<uint64_t>(value_len)}));
}

proxy_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size,
                                      const char** data, size_t* size) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      7,
      {static_cast<uint64_t>(type), static_cast<uint64_t>(start), static_cast<uint64_t>(max_size),
       reinterpret_cast<uintptr_t>(data), reinterpret_cast<uintptr_t>(size)}));
}

proxy_status_t proxy_get_buffer_status(uint32_t type, size_t* size, uint32_t* flags) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      8, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(size),
          reinterpret_cast<uintptr_t>(flags)}));
}

proxy_status_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const char* data,
                                      size_t data_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      9, {static_cast<uint64_t>(type), static_cast<uint64_t>(start), static_cast<uint64_t>(size),
          reinterpret_cast<uintptr_t>(data), static_cast<uint64_t>(data_len)}));
}

proxy_status_t proxy_get_header_map_pairs(uint32_t type, const char** pairs, size_t* size) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      10, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(pairs),
           reinterpret_cast<uintptr_t>(size)}));
}

proxy_status_t proxy_set_header_map_pairs(uint32_t type, const char* pairs, size_t size) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      11, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(pairs),
           static_cast<uint64_t>(size)}));
}

proxy_status_t proxy_get_header_map_size(uint32_t type, size_t* size) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      12, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(size)}));
}

proxy_status_t proxy_get_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char** value, size_t* value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      13, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(key),
           static_cast<uint64_t>(key_len), reinterpret_cast<uintptr_t>(value),
           reinterpret_cast<uintptr_t>(value_len)}));
}

proxy_status_t proxy_add_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char* value, size_t value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      14, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(key),
           static_cast<uint64_t>(key_len), reinterpret_cast<uintptr_t>(value),
           static_cast<uint64_t>(value_len)}));
}

proxy_status_t proxy_replace_header_map_value(uint32_t type, const char* key, size_t key_len,
                                              const char* value, size_t value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      15, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(key),
           static_cast<uint64_t>(key_len), reinterpret_cast<uintptr_t>(value),
           static_cast<uint64_t>(value_len)}));
}

proxy_status_t proxy_remove_header_map_value(uint32_t type, const char* key, size_t key_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      16, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(key),
           static_cast<uint64_t>(key_len)}));
}

proxy_status_t proxy_continue_stream(uint32_t stream_type) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(17, {static_cast<uint64_t>(stream_type)}));
}

proxy_status_t proxy_close_stream(uint32_t stream_type) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(18, {static_cast<uint64_t>(stream_type)}));
}

proxy_status_t proxy_send_local_response(uint32_t status_code, const char* details,
                                         size_t details_len, const char* body, size_t body_len,
                                         const char* header_pairs, size_t header_pairs_len,
                                         int32_t grpc_status) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      19, {static_cast<uint64_t>(status_code), reinterpret_cast<uintptr_t>(details),
           static_cast<uint64_t>(details_len), reinterpret_cast<uintptr_t>(body),
           static_cast<uint64_t>(body_len), reinterpret_cast<uintptr_t>(header_pairs),
           static_cast<uint64_t>(header_pairs_len), static_cast<uint64_t>(grpc_status)}));
}

proxy_status_t proxy_http_call(const char* upstream, size_t upstream_len, const char* headers,
                               size_t headers_len, const char* body, size_t body_len,
                               const char* trailers, size_t trailers_len, uint32_t timeout_ms,
                               uint32_t* token) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      20, {reinterpret_cast<uintptr_t>(upstream), static_cast<uint64_t>(upstream_len),
           reinterpret_cast<uintptr_t>(headers), static_cast<uint64_t>(headers_len),
           reinterpret_cast<uintptr_t>(body), static_cast<uint64_t>(body_len),
           reinterpret_cast<uintptr_t>(trailers), static_cast<uint64_t>(trailers_len),
           static_cast<uint64_t>(timeout_ms), reinterpret_cast<uintptr_t>(token)}));
}

proxy_status_t proxy_grpc_call(const char* upstream, size_t upstream_len, const char* service,
                               size_t service_len, const char* method, size_t method_len,
                               const char* metadata, size_t metadata_len, const char* message,
                               size_t message_len, uint32_t timeout_ms, uint32_t* token) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      21, {reinterpret_cast<uintptr_t>(upstream), static_cast<uint64_t>(upstream_len),
           reinterpret_cast<uintptr_t>(service), static_cast<uint64_t>(service_len),
           reinterpret_cast<uintptr_t>(method), static_cast<uint64_t>(method_len),
           reinterpret_cast<uintptr_t>(metadata), static_cast<uint64_t>(metadata_len),
           reinterpret_cast<uintptr_t>(message), static_cast<uint64_t>(message_len),
           static_cast<uint64_t>(timeout_ms), reinterpret_cast<uintptr_t>(token)}));
}

proxy_status_t proxy_grpc_stream(const char* upstream, size_t upstream_len, const char* service,
                                 size_t service_len, const char* method, size_t method_len,
                                 const char* metadata, size_t metadata_len, uint32_t* token) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      22, {reinterpret_cast<uintptr_t>(upstream), static_cast<uint64_t>(upstream_len),
           reinterpret_cast<uintptr_t>(service), static_cast<uint64_t>(service_len),
           reinterpret_cast<uintptr_t>(method), static_cast<uint64_t>(method_len),
           reinterpret_cast<uintptr_t>(metadata), static_cast<uint64_t>(metadata_len),
           reinterpret_cast<uintptr_t>(token)}));
}

proxy_status_t proxy_grpc_send(uint32_t token, const char* message, size_t message_len,
                               uint32_t end_stream) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      23, {static_cast<uint64_t>(token), reinterpret_cast<uintptr_t>(message),
           static_cast<uint64_t>(message_len), static_cast<uint64_t>(end_stream)}));
}

proxy_status_t proxy_grpc_cancel(uint32_t token) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(24, {static_cast<uint64_t>(token)}));
}

proxy_status_t proxy_grpc_close(uint32_t token) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(25, {static_cast<uint64_t>(token)}));
}

proxy_status_t proxy_get_shared_data(const char* key, size_t key_len, const char** value,
                                     size_t* value_len, uint32_t* cas) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      26, {reinterpret_cast<uintptr_t>(key), static_cast<uint64_t>(key_len),
           reinterpret_cast<uintptr_t>(value), reinterpret_cast<uintptr_t>(value_len),
           reinterpret_cast<uintptr_t>(cas)}));
}

proxy_status_t proxy_set_shared_data(const char* key, size_t key_len, const char* value,
                                     size_t value_len, uint32_t cas) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      27, {reinterpret_cast<uintptr_t>(key), static_cast<uint64_t>(key_len),
           reinterpret_cast<uintptr_t>(value), static_cast<uint64_t>(value_len),
           static_cast<uint64_t>(cas)}));
}

proxy_status_t proxy_register_shared_queue(const char* name, size_t name_len, uint32_t* token) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      28, {reinterpret_cast<uintptr_t>(name), static_cast<uint64_t>(name_len),
           reinterpret_cast<uintptr_t>(token)}));
}

proxy_status_t proxy_resolve_shared_queue(const char* vm_id, size_t vm_id_len, const char* name,
                                          size_t name_len, uint32_t* token) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      29, {reinterpret_cast<uintptr_t>(vm_id), static_cast<uint64_t>(vm_id_len),
           reinterpret_cast<uintptr_t>(name), static_cast<uint64_t>(name_len),
           reinterpret_cast<uintptr_t>(token)}));
}

proxy_status_t proxy_enqueue_shared_queue(uint32_t token, const char* value, size_t value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      30, {static_cast<uint64_t>(token), reinterpret_cast<uintptr_t>(value),
           static_cast<uint64_t>(value_len)}));
}

proxy_status_t proxy_dequeue_shared_queue(uint32_t token, const char** value, size_t* value_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      31, {static_cast<uint64_t>(token), reinterpret_cast<uintptr_t>(value),
           reinterpret_cast<uintptr_t>(value_len)}));
}

proxy_status_t proxy_define_metric(uint32_t type, const char* name, size_t name_len,
                                   uint32_t* metric_id) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      32, {static_cast<uint64_t>(type), reinterpret_cast<uintptr_t>(name),
           static_cast<uint64_t>(name_len), reinterpret_cast<uintptr_t>(metric_id)}));
}

proxy_status_t proxy_increment_metric(uint32_t metric_id, int64_t delta) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      33, {static_cast<uint64_t>(metric_id), static_cast<uint64_t>(delta)}));
}

proxy_status_t proxy_record_metric(uint32_t metric_id, uint64_t value) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      34, {static_cast<uint64_t>(metric_id), static_cast<uint64_t>(value)}));
}

proxy_status_t proxy_get_metric(uint32_t metric_id, uint64_t* value) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      35, {static_cast<uint64_t>(metric_id), reinterpret_cast<uintptr_t>(value)}));
}

proxy_status_t proxy_set_effective_context(uint32_t context_id) {
  return static_cast<proxy_status_t>(
      sluice::wasm::null_host_call(36, {static_cast<uint64_t>(context_id)}));
}

proxy_status_t proxy_done(void) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(37, {}));
}

proxy_status_t proxy_call_foreign_function(const char* name, size_t name_len, const char* args,
                                           size_t args_len, const char** result,
                                           size_t* result_len) {
  return static_cast<proxy_status_t>(sluice::wasm::null_host_call(
      38, {reinterpret_cast<uintptr_t>(name), static_cast<uint64_t>(name_len),
           reinterpret_cast<uintptr_t>(args), static_cast<uint64_t>(args_len),
           reinterpret_cast<uintptr_t>(result), reinterpret_cast<uintptr_t>(result_len)}));
}

}  // extern "C"
