/* The Proxy-Wasm ABI as C declarations: the host functions an extension imports and the
 * callbacks it exports. One header serves both builds of an extension:
 *   - wasm32 (clang --target=wasm32-wasi): the functions are imports from module "env"; pointers
 *     and size_t are 32-bit, so the types match the ABI's i32s exactly.
 *   - native (the null runtime): the same names are plain C functions that the sluice binary
 *     defines (src/wasm/vm/null/); pointers and sizes are 64-bit there.
 * Statuses are proxy_status_t (0 = Ok); see shared/proxy-wasm-abi.md for every value. */
#ifndef SLUICE_PROXY_WASM_ABI_H_
#define SLUICE_PROXY_WASM_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__wasm__)
#define SLUICE_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#else
#define SLUICE_IMPORT(name)
#endif

typedef uint32_t proxy_status_t;

/* Logging, time, status */
SLUICE_IMPORT(proxy_log) proxy_status_t proxy_log(uint32_t level, const char* msg, size_t len);
SLUICE_IMPORT(proxy_get_log_level) proxy_status_t proxy_get_log_level(uint32_t* level);
SLUICE_IMPORT(proxy_get_current_time_nanoseconds)
proxy_status_t proxy_get_current_time_nanoseconds(uint64_t* nanos);
SLUICE_IMPORT(proxy_set_tick_period_milliseconds)
proxy_status_t proxy_set_tick_period_milliseconds(uint32_t period_ms);
SLUICE_IMPORT(proxy_get_status)
proxy_status_t proxy_get_status(uint32_t* code, const char** msg, size_t* msg_len);

/* Properties: path segments joined with NUL bytes */
SLUICE_IMPORT(proxy_get_property)
proxy_status_t proxy_get_property(const char* path, size_t path_len, const char** value,
                                  size_t* value_len);
SLUICE_IMPORT(proxy_set_property)
proxy_status_t proxy_set_property(const char* path, size_t path_len, const char* value,
                                  size_t value_len);

/* Buffers (proxy_buffer_type_t) */
SLUICE_IMPORT(proxy_get_buffer_bytes)
proxy_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size,
                                      const char** data, size_t* size);
SLUICE_IMPORT(proxy_get_buffer_status)
proxy_status_t proxy_get_buffer_status(uint32_t type, size_t* size, uint32_t* flags);
SLUICE_IMPORT(proxy_set_buffer_bytes)
proxy_status_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const char* data,
                                      size_t data_len);

/* Header maps (proxy_map_type_t); pairs are serialized as in the ABI */
SLUICE_IMPORT(proxy_get_header_map_pairs)
proxy_status_t proxy_get_header_map_pairs(uint32_t type, const char** pairs, size_t* size);
SLUICE_IMPORT(proxy_set_header_map_pairs)
proxy_status_t proxy_set_header_map_pairs(uint32_t type, const char* pairs, size_t size);
SLUICE_IMPORT(proxy_get_header_map_size)
proxy_status_t proxy_get_header_map_size(uint32_t type, size_t* size);
SLUICE_IMPORT(proxy_get_header_map_value)
proxy_status_t proxy_get_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char** value, size_t* value_len);
SLUICE_IMPORT(proxy_add_header_map_value)
proxy_status_t proxy_add_header_map_value(uint32_t type, const char* key, size_t key_len,
                                          const char* value, size_t value_len);
SLUICE_IMPORT(proxy_replace_header_map_value)
proxy_status_t proxy_replace_header_map_value(uint32_t type, const char* key, size_t key_len,
                                              const char* value, size_t value_len);
SLUICE_IMPORT(proxy_remove_header_map_value)
proxy_status_t proxy_remove_header_map_value(uint32_t type, const char* key, size_t key_len);

/* Stream control */
SLUICE_IMPORT(proxy_continue_stream) proxy_status_t proxy_continue_stream(uint32_t stream_type);
SLUICE_IMPORT(proxy_close_stream) proxy_status_t proxy_close_stream(uint32_t stream_type);
SLUICE_IMPORT(proxy_send_local_response)
proxy_status_t proxy_send_local_response(uint32_t status_code, const char* details,
                                         size_t details_len, const char* body, size_t body_len,
                                         const char* header_pairs, size_t header_pairs_len,
                                         int32_t grpc_status);

/* Callouts */
SLUICE_IMPORT(proxy_http_call)
proxy_status_t proxy_http_call(const char* upstream, size_t upstream_len, const char* headers,
                               size_t headers_len, const char* body, size_t body_len,
                               const char* trailers, size_t trailers_len, uint32_t timeout_ms,
                               uint32_t* token);
SLUICE_IMPORT(proxy_grpc_call)
proxy_status_t proxy_grpc_call(const char* upstream, size_t upstream_len, const char* service,
                               size_t service_len, const char* method, size_t method_len,
                               const char* metadata, size_t metadata_len, const char* message,
                               size_t message_len, uint32_t timeout_ms, uint32_t* token);
SLUICE_IMPORT(proxy_grpc_stream)
proxy_status_t proxy_grpc_stream(const char* upstream, size_t upstream_len, const char* service,
                                 size_t service_len, const char* method, size_t method_len,
                                 const char* metadata, size_t metadata_len, uint32_t* token);
SLUICE_IMPORT(proxy_grpc_send)
proxy_status_t proxy_grpc_send(uint32_t token, const char* message, size_t message_len,
                               uint32_t end_stream);
SLUICE_IMPORT(proxy_grpc_cancel) proxy_status_t proxy_grpc_cancel(uint32_t token);
SLUICE_IMPORT(proxy_grpc_close) proxy_status_t proxy_grpc_close(uint32_t token);

/* Shared data and queues */
SLUICE_IMPORT(proxy_get_shared_data)
proxy_status_t proxy_get_shared_data(const char* key, size_t key_len, const char** value,
                                     size_t* value_len, uint32_t* cas);
SLUICE_IMPORT(proxy_set_shared_data)
proxy_status_t proxy_set_shared_data(const char* key, size_t key_len, const char* value,
                                     size_t value_len, uint32_t cas);
SLUICE_IMPORT(proxy_register_shared_queue)
proxy_status_t proxy_register_shared_queue(const char* name, size_t name_len, uint32_t* token);
SLUICE_IMPORT(proxy_resolve_shared_queue)
proxy_status_t proxy_resolve_shared_queue(const char* vm_id, size_t vm_id_len, const char* name,
                                          size_t name_len, uint32_t* token);
SLUICE_IMPORT(proxy_enqueue_shared_queue)
proxy_status_t proxy_enqueue_shared_queue(uint32_t token, const char* value, size_t value_len);
SLUICE_IMPORT(proxy_dequeue_shared_queue)
proxy_status_t proxy_dequeue_shared_queue(uint32_t token, const char** value, size_t* value_len);

/* Metrics (proxy_metric_type_t: counter 0, gauge 1, histogram 2) */
SLUICE_IMPORT(proxy_define_metric)
proxy_status_t proxy_define_metric(uint32_t type, const char* name, size_t name_len,
                                   uint32_t* metric_id);
SLUICE_IMPORT(proxy_increment_metric)
proxy_status_t proxy_increment_metric(uint32_t metric_id, int64_t delta);
SLUICE_IMPORT(proxy_record_metric) proxy_status_t proxy_record_metric(uint32_t metric_id, uint64_t value);
SLUICE_IMPORT(proxy_get_metric) proxy_status_t proxy_get_metric(uint32_t metric_id, uint64_t* value);

/* Contexts and foreign functions */
SLUICE_IMPORT(proxy_set_effective_context)
proxy_status_t proxy_set_effective_context(uint32_t context_id);
SLUICE_IMPORT(proxy_done) proxy_status_t proxy_done(void);
SLUICE_IMPORT(proxy_call_foreign_function)
proxy_status_t proxy_call_foreign_function(const char* name, size_t name_len, const char* args,
                                           size_t args_len, const char** result,
                                           size_t* result_len);

#undef SLUICE_IMPORT

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_PROXY_WASM_ABI_H_ */
