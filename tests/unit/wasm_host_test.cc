// The Proxy-Wasm host functions, one by one: normal, edge and hostile calls (bad pointers,
// oversized lengths, wrong map and buffer types, calls outside their phase), made from inside real
// callbacks through the real classes (WasmInstance, Context) on both runtimes.
//
//   - V8: tests/wasm/host_probe.wat imports every host function and exports a thunk per import
//     (probe_<name>), so a test can pass any argument, hostile pointers included.
//   - null: a native plugin defined below ("test.host_probe") exports the same probe_* names and
//     calls the proxy_* C functions of sdk/cpp/include/sluice/proxy_wasm_abi.h. Null plugins are
//     trusted native code: their "pointers" are host addresses and are NOT bounds-checked, so the
//     hostile-pointer tests are V8 only.
//
// Addresses: tests name scratch offsets; addr() maps them to module memory (V8) or to a buffer
// owned by the test (null). Out-params hold words of the VM's size (4 in wasm32, 8 native).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>

#include "common/header_map.h"
#include "common/stats.h"
#include "common/stream_info.h"
#include "http/filter.h"
#include "sluice/proxy_wasm_abi.h"
#include "test_modules.h"
#include "wasm/abi/host_functions.h"
#include "wasm/abi/pairs.h"
#include "wasm/abi/sluice_functions.h"
#include "wasm/context.h"
#include "wasm/foreign_functions.h"
#include "wasm/plugin.h"
#include "wasm/shared_state.h"
#include "wasm/thread_loop.h"
#include "wasm/vm/null/null_plugin_abi.h"
#include "wasm/vm/runtimes.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

using sluice::testing::read_test_module;
using ::testing::HasSubstr;

constexpr uint64_t kOk = 0, kNotFound = 1, kBadArgument = 2, kSerializationFailure = 3,
                   kInvalidMemoryAccess = 6, kEmpty = 7, kCasMismatch = 8, kInternalFailure = 10,
                   kUnimplemented = 12;
// WASI errno values.
constexpr uint64_t kEBadf = 8, kEFault = 21, kEInval = 28, kENotsup = 58;

// ---- the null-runtime probe plugin ----------------------------------------------------------

// One per VM: the same state layout as host_probe.wat's (see its header), and an arena for what
// the host allocates through malloc, freed with the instance.
struct NullProbe {
  alignas(8) char state[0x3000] = {};
  std::vector<std::unique_ptr<char[]>> heap;
};

template <typename T>
T* P(uint64_t v) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(v));
}
#define CP(i) P<const char>(a[i])
#define CPP(i) P<const char*>(a[i])
#define SZP(i) P<size_t>(a[i])
#define U32P(i) P<uint32_t>(a[i])
#define U32(i) static_cast<uint32_t>(a[i])

char* state_of(void* inst) { return static_cast<NullProbe*>(inst)->state; }

void record(void* inst, uint32_t cb, uint64_t x, uint64_t y) {
  char* s = state_of(inst);
  uint32_t n;
  std::memcpy(&n, s + 0x100, 4);
  if (n >= 600) return;
  const uint32_t e[3] = {cb, static_cast<uint32_t>(x), static_cast<uint32_t>(y)};
  std::memcpy(s + 0x104 + n * 12, e, 12);
  ++n;
  std::memcpy(s + 0x100, &n, 4);
}
void store_u32(void* inst, size_t off, uint32_t v) { std::memcpy(state_of(inst) + off, &v, 4); }
uint32_t load_u32(void* inst, size_t off) {
  uint32_t v;
  std::memcpy(&v, state_of(inst) + off, 4);
  return v;
}

uint64_t n_nop(void*, const uint64_t*) { return 0; }
uint64_t n_malloc(void* inst, const uint64_t* a) {
  auto& heap = static_cast<NullProbe*>(inst)->heap;
  heap.emplace_back(new char[a[0] ? a[0] : 1]);
  return reinterpret_cast<uintptr_t>(heap.back().get());
}
uint64_t n_state_addr(void* inst, const uint64_t*) {
  return reinterpret_cast<uintptr_t>(state_of(inst));
}
uint64_t n_on_context_create(void* i, const uint64_t* a) { return record(i, 1, a[0], a[1]), 0; }
uint64_t n_on_vm_start(void* i, const uint64_t* a) {
  record(i, 2, a[0], a[1]);
  char* s = state_of(i);
  store_u32(i, 0x28,
            proxy_get_buffer_bytes(6, 0, 1000, reinterpret_cast<const char**>(s + 0x30),
                                   reinterpret_cast<size_t*>(s + 0x38)));
  return load_u32(i, 0x00) == 0;
}
uint64_t n_on_configure(void* i, const uint64_t* a) {
  record(i, 3, a[0], a[1]);
  char* s = state_of(i);
  store_u32(i, 0x10,
            proxy_get_buffer_bytes(7, 0, 1000, reinterpret_cast<const char**>(s + 0x18),
                                   reinterpret_cast<size_t*>(s + 0x20)));
  return load_u32(i, 0x08) == 0;
}
uint64_t n_on_done(void* i, const uint64_t* a) { return record(i, 4, a[0], 0), 1; }
uint64_t n_on_log(void* i, const uint64_t* a) { return record(i, 5, a[0], 0), 0; }
uint64_t n_on_delete(void* i, const uint64_t* a) { return record(i, 6, a[0], 0), 0; }
uint64_t n_on_request_headers(void* i, const uint64_t* a) { return record(i, 7, a[0], a[1]), 0; }
uint64_t n_on_stream_start(void* i, const uint64_t* a) {
  record(i, 15, a[0], a[1]);
  record(i, 1, a[0], a[1]);
  return record(i, 7, a[0], a[2]), 0;
}
uint64_t n_on_stream_end(void* i, const uint64_t* a) {
  record(i, 16, a[0], 0);
  record(i, 5, a[0], 0);
  return record(i, 6, a[0], 0), 0;
}
uint64_t n_on_delete_batch(void* i, const uint64_t* a) {
  record(i, 17, a[0], 0);
  for (uint32_t k = 0; k < U32(0); ++k) record(i, 6, load_u32(i, 0x1e00 + 4 * k), 0);
  return 0;
}
uint64_t n_on_tick(void* i, const uint64_t* a) { return record(i, 13, a[0], 0), 0; }
uint64_t n_on_queue_ready(void* i, const uint64_t* a) { return record(i, 14, a[0], a[1]), 0; }
uint64_t n_on_response_headers(void* i, const uint64_t* a) { return record(i, 9, a[0], a[1]), 0; }

uint64_t n_log(void*, const uint64_t* a) { return proxy_log(U32(0), CP(1), a[2]); }
uint64_t n_get_log_level(void*, const uint64_t* a) { return proxy_get_log_level(U32P(0)); }
uint64_t n_time(void*, const uint64_t* a) {
  return proxy_get_current_time_nanoseconds(P<uint64_t>(a[0]));
}
uint64_t n_get_status(void*, const uint64_t* a) {
  return proxy_get_status(U32P(0), CPP(1), SZP(2));
}
uint64_t n_set_effective(void*, const uint64_t* a) { return proxy_set_effective_context(U32(0)); }
uint64_t n_done(void*, const uint64_t*) { return proxy_done(); }
uint64_t n_get_property(void*, const uint64_t* a) {
  return proxy_get_property(CP(0), a[1], CPP(2), SZP(3));
}
uint64_t n_set_property(void*, const uint64_t* a) {
  return proxy_set_property(CP(0), a[1], CP(2), a[3]);
}
uint64_t n_get_pairs(void*, const uint64_t* a) {
  return proxy_get_header_map_pairs(U32(0), CPP(1), SZP(2));
}
uint64_t n_set_pairs(void*, const uint64_t* a) {
  return proxy_set_header_map_pairs(U32(0), CP(1), a[2]);
}
uint64_t n_map_size(void*, const uint64_t* a) { return proxy_get_header_map_size(U32(0), SZP(1)); }
uint64_t n_get_value(void*, const uint64_t* a) {
  return proxy_get_header_map_value(U32(0), CP(1), a[2], CPP(3), SZP(4));
}
uint64_t n_add_value(void*, const uint64_t* a) {
  return proxy_add_header_map_value(U32(0), CP(1), a[2], CP(3), a[4]);
}
uint64_t n_replace_value(void*, const uint64_t* a) {
  return proxy_replace_header_map_value(U32(0), CP(1), a[2], CP(3), a[4]);
}
uint64_t n_remove_value(void*, const uint64_t* a) {
  return proxy_remove_header_map_value(U32(0), CP(1), a[2]);
}
uint64_t n_get_buffer(void*, const uint64_t* a) {
  return proxy_get_buffer_bytes(U32(0), a[1], a[2], CPP(3), SZP(4));
}
uint64_t n_buffer_status(void*, const uint64_t* a) {
  return proxy_get_buffer_status(U32(0), SZP(1), U32P(2));
}
uint64_t n_set_buffer(void*, const uint64_t* a) {
  return proxy_set_buffer_bytes(U32(0), a[1], a[2], CP(3), a[4]);
}
uint64_t n_continue(void*, const uint64_t* a) { return proxy_continue_stream(U32(0)); }
uint64_t n_close(void*, const uint64_t* a) { return proxy_close_stream(U32(0)); }
uint64_t n_local_response(void*, const uint64_t* a) {
  return proxy_send_local_response(U32(0), CP(1), a[2], CP(3), a[4], CP(5), a[6],
                                   static_cast<int32_t>(a[7]));
}
uint64_t n_tick(void*, const uint64_t* a) { return proxy_set_tick_period_milliseconds(U32(0)); }
uint64_t n_http_call(void*, const uint64_t* a) {
  return proxy_http_call(CP(0), a[1], CP(2), a[3], CP(4), a[5], CP(6), a[7], U32(8), U32P(9));
}
uint64_t n_grpc_call(void*, const uint64_t* a) {
  return proxy_grpc_call(CP(0), a[1], CP(2), a[3], CP(4), a[5], CP(6), a[7], CP(8), a[9], U32(10),
                         U32P(11));
}
uint64_t n_grpc_stream(void*, const uint64_t* a) {
  return proxy_grpc_stream(CP(0), a[1], CP(2), a[3], CP(4), a[5], CP(6), a[7], U32P(8));
}
uint64_t n_grpc_send(void*, const uint64_t* a) {
  return proxy_grpc_send(U32(0), CP(1), a[2], U32(3));
}
uint64_t n_grpc_cancel(void*, const uint64_t* a) { return proxy_grpc_cancel(U32(0)); }
uint64_t n_grpc_close(void*, const uint64_t* a) { return proxy_grpc_close(U32(0)); }
uint64_t n_get_shared(void*, const uint64_t* a) {
  return proxy_get_shared_data(CP(0), a[1], CPP(2), SZP(3), U32P(4));
}
uint64_t n_set_shared(void*, const uint64_t* a) {
  return proxy_set_shared_data(CP(0), a[1], CP(2), a[3], U32(4));
}
uint64_t n_register_queue(void*, const uint64_t* a) {
  return proxy_register_shared_queue(CP(0), a[1], U32P(2));
}
uint64_t n_resolve_queue(void*, const uint64_t* a) {
  return proxy_resolve_shared_queue(CP(0), a[1], CP(2), a[3], U32P(4));
}
uint64_t n_enqueue(void*, const uint64_t* a) {
  return proxy_enqueue_shared_queue(U32(0), CP(1), a[2]);
}
uint64_t n_dequeue(void*, const uint64_t* a) {
  return proxy_dequeue_shared_queue(U32(0), CPP(1), SZP(2));
}
uint64_t n_define_metric(void*, const uint64_t* a) {
  return proxy_define_metric(U32(0), CP(1), a[2], U32P(3));
}
uint64_t n_increment_metric(void*, const uint64_t* a) {
  return proxy_increment_metric(U32(0), static_cast<int64_t>(a[1]));
}
uint64_t n_record_metric(void*, const uint64_t* a) { return proxy_record_metric(U32(0), a[1]); }
uint64_t n_get_metric(void*, const uint64_t* a) {
  return proxy_get_metric(U32(0), P<uint64_t>(a[1]));
}
uint64_t n_foreign(void*, const uint64_t* a) {
  return proxy_call_foreign_function(CP(0), a[1], CP(2), a[3], CPP(4), SZP(5));
}
uint64_t n_effective_then_get(void*, const uint64_t* a) {
  const uint32_t r = proxy_set_effective_context(U32(0));
  if (r != 0) return 100 + r;
  return proxy_get_header_map_value(0, CP(1), a[2], CPP(3), SZP(4));
}

void* n_create() { return new NullProbe(); }
void n_destroy(void* p) { delete static_cast<NullProbe*>(p); }

const SluiceNullExport kProbeExports[] = {
    {"proxy_abi_version_0_2_1", ":", n_nop},
    {"_initialize", ":", n_nop},
    {"malloc", "i:i", n_malloc},
    {"probe_state_addr", ":i", n_state_addr},
    {"proxy_on_context_create", "ii:", n_on_context_create},
    {"proxy_on_vm_start", "ii:i", n_on_vm_start},
    {"proxy_on_configure", "ii:i", n_on_configure},
    {"proxy_on_done", "i:i", n_on_done},
    {"proxy_on_log", "i:", n_on_log},
    {"proxy_on_delete", "i:", n_on_delete},
    {"proxy_on_request_headers", "iii:i", n_on_request_headers},
    {"sluice_on_stream_start", "iiii:i", n_on_stream_start},
    {"sluice_on_stream_end", "i:", n_on_stream_end},
    {"sluice_on_delete_batch", "i:", n_on_delete_batch},
    {"proxy_on_response_headers", "iii:i", n_on_response_headers},
    {"proxy_on_tick", "i:", n_on_tick},
    {"proxy_on_queue_ready", "ii:", n_on_queue_ready},
    {"probe_proxy_log", "iii:i", n_log},
    {"probe_proxy_get_log_level", "i:i", n_get_log_level},
    {"probe_proxy_get_current_time_nanoseconds", "i:i", n_time},
    {"probe_proxy_get_status", "iii:i", n_get_status},
    {"probe_proxy_set_effective_context", "i:i", n_set_effective},
    {"probe_proxy_done", ":i", n_done},
    {"probe_proxy_get_property", "iiii:i", n_get_property},
    {"probe_proxy_set_property", "iiii:i", n_set_property},
    {"probe_proxy_get_header_map_pairs", "iii:i", n_get_pairs},
    {"probe_proxy_set_header_map_pairs", "iii:i", n_set_pairs},
    {"probe_proxy_get_header_map_size", "ii:i", n_map_size},
    {"probe_proxy_get_header_map_value", "iiiii:i", n_get_value},
    {"probe_proxy_add_header_map_value", "iiiii:i", n_add_value},
    {"probe_proxy_replace_header_map_value", "iiiii:i", n_replace_value},
    {"probe_proxy_remove_header_map_value", "iii:i", n_remove_value},
    {"probe_proxy_get_buffer_bytes", "iiiii:i", n_get_buffer},
    {"probe_proxy_get_buffer_status", "iii:i", n_buffer_status},
    {"probe_proxy_set_buffer_bytes", "iiiii:i", n_set_buffer},
    {"probe_proxy_continue_stream", "i:i", n_continue},
    {"probe_proxy_close_stream", "i:i", n_close},
    {"probe_proxy_send_local_response", "iiiiiiii:i", n_local_response},
    {"probe_proxy_set_tick_period_milliseconds", "i:i", n_tick},
    {"probe_proxy_http_call", "iiiiiiiiii:i", n_http_call},
    {"probe_proxy_grpc_call", "iiiiiiiiiiii:i", n_grpc_call},
    {"probe_proxy_grpc_stream", "iiiiiiiii:i", n_grpc_stream},
    {"probe_proxy_grpc_send", "iiii:i", n_grpc_send},
    {"probe_proxy_grpc_cancel", "i:i", n_grpc_cancel},
    {"probe_proxy_grpc_close", "i:i", n_grpc_close},
    {"probe_proxy_get_shared_data", "iiiii:i", n_get_shared},
    {"probe_proxy_set_shared_data", "iiiii:i", n_set_shared},
    {"probe_proxy_register_shared_queue", "iii:i", n_register_queue},
    {"probe_proxy_resolve_shared_queue", "iiiii:i", n_resolve_queue},
    {"probe_proxy_enqueue_shared_queue", "iii:i", n_enqueue},
    {"probe_proxy_dequeue_shared_queue", "iii:i", n_dequeue},
    {"probe_proxy_define_metric", "iiii:i", n_define_metric},
    {"probe_proxy_increment_metric", "iI:i", n_increment_metric},
    {"probe_proxy_record_metric", "iI:i", n_record_metric},
    {"probe_proxy_get_metric", "ii:i", n_get_metric},
    {"probe_proxy_call_foreign_function", "iiiiii:i", n_foreign},
    {"probe_effective_then_get_value", "iiiii:i", n_effective_then_get},
};
const SluiceNullPlugin kProbePlugin = {SLUICE_NULL_PLUGIN_ABI_VERSION,
                                       "test.host_probe",
                                       n_create,
                                       n_destroy,
                                       kProbeExports,
                                       sizeof(kProbeExports) / sizeof(kProbeExports[0])};

// An ABI 0.2.0 plugin calling proxy_get_log_level, which only 0.2.1 offers: a .wasm module would
// fail to link; a native one can always call the C function, so the host traps the call.
const SluiceNullExport kProbe020Exports[] = {
    {"proxy_abi_version_0_2_0", ":", n_nop},
    {"_initialize", ":", n_nop},
    {"malloc", "i:i", n_malloc},
    {"probe_proxy_get_log_level", "i:i", n_get_log_level},
};
const SluiceNullPlugin kProbe020Plugin = {SLUICE_NULL_PLUGIN_ABI_VERSION,
                                          "test.host_probe_020",
                                          n_create,
                                          n_destroy,
                                          kProbe020Exports,
                                          sizeof(kProbe020Exports) / sizeof(kProbe020Exports[0])};

[[maybe_unused]] const bool kRegistered = [] {
  sluice_register_null_plugin(&kProbePlugin);
  sluice_register_null_plugin(&kProbe020Plugin);
  return true;
}();

// ---- the fake stream and log capture --------------------------------------------------------

class FakeStream : public http::StreamFilterCallbacks {
 public:
  HeaderMap request;
  HeaderMap response;
  bool has_response = false;
  std::optional<std::string> request_body_bytes, response_body_bytes;
  StreamInfo info;
  int route_cache_clears = 0, continue_decoding_calls = 0, continue_encoding_calls = 0;
  struct Reply {
    uint32_t status;
    std::string body, details;
  };
  std::vector<Reply> replies;
  std::vector<std::string> resets;

  HeaderMap& request_headers() override { return request; }
  HeaderMap* response_headers() override { return has_response ? &response : nullptr; }
  std::string* request_body() override {
    return request_body_bytes ? &*request_body_bytes : nullptr;
  }
  std::string* response_body() override {
    return response_body_bytes ? &*response_body_bytes : nullptr;
  }
  // Trailers: present when the test sets them; add_* creates them as the connection manager
  // does in a message's last data call.
  std::optional<HeaderMap> request_trailer_map, response_trailer_map;
  HeaderMap* request_trailers() override {
    return request_trailer_map ? &*request_trailer_map : nullptr;
  }
  HeaderMap* response_trailers() override {
    return response_trailer_map ? &*response_trailer_map : nullptr;
  }
  HeaderMap* add_request_trailers() override {
    if (!request_trailer_map) request_trailer_map.emplace();
    return &*request_trailer_map;
  }
  HeaderMap* add_response_trailers() override {
    if (!response_trailer_map) response_trailer_map.emplace();
    return &*response_trailer_map;
  }
  void clear_route_cache() override { ++route_cache_clears; }
  const config::Route* route() override { return nullptr; }
  void continue_decoding() override { ++continue_decoding_calls; }
  void continue_encoding() override { ++continue_encoding_calls; }
  void send_local_reply(uint32_t status, std::string body, HeaderMap,
                        std::string details) override {
    replies.push_back(Reply{status, std::move(body), std::move(details)});
  }
  void reset_stream(std::string details) override { resets.push_back(std::move(details)); }
  StreamInfo& stream_info() override { return info; }
  uint64_t connection_id() const override { return 42; }
  uint32_t buffer_limit() const override { return 1 << 20; }
};

class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::pair<spdlog::level::level_enum, std::string>> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    lines.emplace_back(m.level, std::string(m.payload.data(), m.payload.size()));
  }
  void flush_() override {}
};

// Captures what the default logger writes while it lives, at `level` and above.
class LogCapture {
 public:
  explicit LogCapture(spdlog::level::level_enum level = spdlog::level::trace)
      : saved_(spdlog::get_level()) {
    spdlog::default_logger()->sinks().push_back(sink_);
    spdlog::set_level(level);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    spdlog::set_level(saved_);
  }
  bool has(spdlog::level::level_enum level, std::string_view text) const {
    for (const auto& [l, line] : sink_->lines) {
      if (l == level && line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  size_t count() const { return sink_->lines.size(); }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& [l, line] : sink_->lines) out.push_back(line);
    return out;
  }

 private:
  std::shared_ptr<CaptureSink> sink_ = std::make_shared<CaptureSink>();
  spdlog::level::level_enum saved_;
};

Result<std::unique_ptr<WasmInstance>> instantiate(const std::string& runtime, std::string_view code,
                                                  const PluginSpec& spec) {
  Result<WasmRuntime*> rt = find_runtime(runtime);
  if (!rt) return std::move(rt).take_error();
  auto compiled = (*rt)->compile(code);
  if (!compiled) return std::move(compiled).take_error();
  return WasmInstance::create(*compiled, runtime, spec.vm_id, spec.vm_configuration, spec.env,
                              Capabilities{spec.allowed_capabilities});
}

std::string pairs_blob(const std::vector<std::pair<std::string, std::string>>& kv) {
  Pairs p;
  for (const auto& [k, v] : kv) p.emplace_back(k, v);
  std::string out;
  encode_pairs(p, out);
  return out;
}

// ---- the harness ----------------------------------------------------------------------------

// Scratch offsets (below the V8 probe's heap at 0x20000; state at 0x1000..0x2fff).
constexpr uint64_t kPtr = 0x3000, kLen = 0x3010, kAux = 0x3020;  // out-params (16 apart)
constexpr uint64_t kKey = 0x4000, kVal = 0x5000, kBlob = 0x6000, kBuf = 0x8000;
constexpr uint64_t kSentinel = 0xA5A5A5A5u;

// Public: tests also run a second Harness (another worker's instance) next to their own.
class Harness {
 public:
  void boot(const std::string& runtime, bool start = true, std::string vm_id = "vm1",
            const std::string& module = "host_probe") {
    runtime_ = runtime;
    null_ = runtime == kNullRuntimeName;
    spec_.name = "probe";
    spec_.root_id = "probe_root";
    spec_.vm_id = std::move(vm_id);
    spec_.configuration = "plugin-config";
    spec_.vm_configuration = "vm-config";
    spec_.runtime = runtime;
    spec_.env = {{"A", "1"}, {"BB", "22"}};
    spec_.node_id = "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local";
    spec_.node_cluster = "app.ns";
    spec_.node_metadata = NodeMetadata::from_json(
        R"({"NAME":"pod","LABELS":{"app":"web","version":"v1","nested":{"x":"1"}},)"
        R"("IPS":["10.0.0.1"],"N":8080,"":{"a":"empty key"}})");
    scratch_.assign(0x10000, '\0');
    auto w = instantiate(runtime, null_ ? std::string("test.host_probe") : read_test_module(module),
                         spec_);
    ASSERT_TRUE(w.ok()) << w.error();
    w_ = std::move(*w);
    ASSERT_TRUE(w_->initialize()) << w_->failure();
    auto state = w_->call(nullptr, w_->vm().function("probe_state_addr"), {});
    ASSERT_TRUE(state.has_value());
    state_ = *state;

    stream_.request.add(":method", "GET");
    stream_.request.add(":path", "/foo?x=1");
    stream_.request.add(":authority", "example.com");
    stream_.request.add("x-custom", "v1");
    stream_.request.add("x-multi", "a");
    stream_.request.add("x-multi", "b");
    stream_.info.downstream_direct_remote_address = "10.0.0.1:5555";
    stream_.info.downstream_local_address = "10.0.0.2:8080";
    stream_.info.protocol = "HTTP/1.1";
    if (start) start_contexts();
  }

  void start_contexts() {
    auto root = w_->start_root(spec_);
    ASSERT_TRUE(root.ok()) << root.error();
    root_ = *root;
    ctx_ = w_->create_stream_context(*root_);
    ASSERT_NE(ctx_, nullptr);
    ctx_->set_stream(&stream_);
  }

  WasmVm& vm() { return w_->vm(); }
  uint64_t addr(uint64_t off) {
    return null_ ? reinterpret_cast<uintptr_t>(scratch_.data()) + off : off;
  }
  uint64_t put(uint64_t off, std::string_view data) {
    EXPECT_TRUE(vm().write(addr(off), data));
    return addr(off);
  }
  uint64_t word_at(uint64_t absolute) {
    uint64_t v = 0;
    EXPECT_TRUE(vm().get_word(absolute, &v));
    return v;
  }
  uint64_t word(uint64_t off) { return word_at(addr(off)); }
  uint32_t u32_at(uint64_t absolute) {
    uint32_t v = 0;
    const char* p = vm().memory_at(absolute, 4);
    EXPECT_NE(p, nullptr);
    if (p) std::memcpy(&v, p, 4);
    return v;
  }
  void set_word(uint64_t off, uint64_t v) { ASSERT_TRUE(vm().set_word(addr(off), v)); }
  // The (ptr, len) result the host wrote into two out-params.
  std::string out_at(uint64_t ptr_abs, uint64_t len_abs) {
    const uint64_t p = word_at(ptr_abs), n = word_at(len_abs);
    if (n == 0) return "";
    std::string_view s;
    EXPECT_TRUE(vm().read(p, n, &s)) << "result at " << p << "+" << n;
    return std::string(s);
  }
  std::string out() { return out_at(addr(kPtr), addr(kLen)); }
  void clear_out() {
    set_word(kPtr, kSentinel);
    set_word(kLen, kSentinel);
  }

  // Calls a probe export on behalf of `ctx` (default: the stream context); the status.
  uint64_t call(std::string_view fn, std::initializer_list<uint64_t> args, Context* ctx = nullptr) {
    WasmFunction f = vm().function(fn);
    EXPECT_TRUE(f) << fn << " is not exported";
    auto r = w_->call(ctx ? ctx : ctx_, f, args);
    EXPECT_TRUE(r.has_value()) << fn << " failed: " << w_->failure();
    return r.value_or(UINT64_MAX);
  }

  // Host function wrappers on scratch memory.
  uint64_t get_property(std::string_view path, std::string* value, Context* ctx = nullptr) {
    put(kKey, path);
    clear_out();
    const uint64_t r =
        call("probe_proxy_get_property", {addr(kKey), path.size(), addr(kPtr), addr(kLen)}, ctx);
    if (r == kOk && value) *value = out();
    return r;
  }
  uint64_t set_property(std::string_view path, std::string_view value, Context* ctx = nullptr) {
    put(kKey, path);
    put(kVal, value);
    return call("probe_proxy_set_property", {addr(kKey), path.size(), addr(kVal), value.size()},
                ctx);
  }
  uint64_t get_value(uint32_t type, std::string_view key, std::string* value,
                     Context* ctx = nullptr) {
    put(kKey, key);
    clear_out();
    const uint64_t r = call("probe_proxy_get_header_map_value",
                            {type, addr(kKey), key.size(), addr(kPtr), addr(kLen)}, ctx);
    if (r == kOk && value) *value = out();
    return r;
  }
  uint64_t map_op(std::string_view fn, uint32_t type, std::string_view key,
                  std::string_view value) {
    put(kKey, key);
    put(kVal, value);
    return call(fn, {type, addr(kKey), key.size(), addr(kVal), value.size()});
  }
  uint64_t add(uint32_t type, std::string_view k, std::string_view v) {
    return map_op("probe_proxy_add_header_map_value", type, k, v);
  }
  uint64_t replace(uint32_t type, std::string_view k, std::string_view v) {
    return map_op("probe_proxy_replace_header_map_value", type, k, v);
  }
  uint64_t remove(uint32_t type, std::string_view k) {
    put(kKey, k);
    return call("probe_proxy_remove_header_map_value", {type, addr(kKey), k.size()});
  }
  uint64_t get_pairs(uint32_t type, std::string* blob, Context* ctx = nullptr) {
    clear_out();
    const uint64_t r =
        call("probe_proxy_get_header_map_pairs", {type, addr(kPtr), addr(kLen)}, ctx);
    if (r == kOk && blob) *blob = out();
    return r;
  }
  uint64_t set_pairs(uint32_t type, std::string_view blob) {
    put(kBlob, blob);
    return call("probe_proxy_set_header_map_pairs", {type, addr(kBlob), blob.size()});
  }
  uint64_t get_buffer(uint32_t type, uint64_t start, uint64_t max, std::string* data,
                      Context* ctx = nullptr) {
    clear_out();
    const uint64_t r =
        call("probe_proxy_get_buffer_bytes", {type, start, max, addr(kPtr), addr(kLen)}, ctx);
    if (r == kOk && data) *data = out();
    return r;
  }
  uint64_t set_buffer(uint32_t type, uint64_t start, uint64_t size, std::string_view data) {
    put(kBuf, data);
    return call("probe_proxy_set_buffer_bytes", {type, start, size, addr(kBuf), data.size()});
  }
  uint64_t local_response(uint32_t status, std::string_view details, std::string_view body,
                          std::string_view pairs, Context* ctx = nullptr) {
    put(kKey, details);
    put(kVal, body);
    put(kBlob, pairs);
    return call("probe_proxy_send_local_response",
                {status, addr(kKey), details.size(), addr(kVal), body.size(), addr(kBlob),
                 pairs.size(), static_cast<uint32_t>(-1)},
                ctx);
  }

  // The probe's callback log: {callback id, arg0, arg1}.
  std::vector<std::array<uint32_t, 3>> callback_log() {
    std::vector<std::array<uint32_t, 3>> out;
    const uint32_t n = u32_at(state_ + 0x100);
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t e = state_ + 0x104 + i * 12;
      out.push_back({u32_at(e), u32_at(e + 4), u32_at(e + 8)});
    }
    return out;
  }
  void clear_callback_log() { ASSERT_TRUE(vm().write(state_ + 0x100, std::string(4, '\0'))); }
  // How many log entries callback `cb` (13 tick, 14 queue_ready, ...) left.
  size_t callbacks_of(uint32_t cb) {
    size_t n = 0;
    for (const auto& e : callback_log()) n += e[0] == cb;
    return n;
  }

  // This thread's loop: runs until `done()` (true) or 10 s pass (false).
  template <typename Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      run_for(std::chrono::milliseconds(2));
    }
    return true;
  }
  // Runs the loop for `d` of wall time, idle or not.
  void run_for(std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      io_.restart();
      if (io_.run_one_for(std::chrono::milliseconds(1)) == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }

  // A name no other test (or runtime, or --gtest_repeat round) uses: the stats Store and the
  // shared state are process-wide.
  std::string unique(std::string_view what) {
    static int generation = 0;
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '_');
    return fmt::format("wasm_host_test.{}.{}.{}", test, ++generation, what);
  }

  // Metrics.
  uint64_t define_metric(uint32_t type, std::string_view name, uint32_t* id) {
    put(kKey, name);
    set_word(kAux, kSentinel);
    const uint64_t r =
        call("probe_proxy_define_metric", {type, addr(kKey), name.size(), addr(kAux)});
    if (r == kOk && id) *id = u32_at(addr(kAux));
    return r;
  }
  uint64_t increment_metric(uint32_t id, int64_t delta) {
    return call("probe_proxy_increment_metric", {id, static_cast<uint64_t>(delta)});
  }
  uint64_t record_metric(uint32_t id, uint64_t value) {
    return call("probe_proxy_record_metric", {id, value});
  }
  uint64_t get_metric(uint32_t id, uint64_t* value) {
    set_word(kAux, kSentinel);
    const uint64_t r = call("probe_proxy_get_metric", {id, addr(kAux)});
    if (r == kOk && value) std::memcpy(value, vm().memory_at(addr(kAux), 8), 8);
    return r;
  }

  // Shared data.
  uint64_t get_shared(std::string_view key, std::string* value, uint32_t* cas) {
    put(kKey, key);
    clear_out();
    set_word(kAux, kSentinel);
    const uint64_t r = call("probe_proxy_get_shared_data",
                            {addr(kKey), key.size(), addr(kPtr), addr(kLen), addr(kAux)});
    if (r == kOk) {
      if (value) *value = out();
      if (cas) *cas = u32_at(addr(kAux));
    }
    return r;
  }
  uint64_t set_shared(std::string_view key, std::string_view value, uint32_t cas) {
    put(kKey, key);
    put(kVal, value);
    return call("probe_proxy_set_shared_data",
                {addr(kKey), key.size(), addr(kVal), value.size(), cas});
  }

  // Shared queues.
  uint64_t register_queue(std::string_view name, uint32_t* token, Context* ctx = nullptr) {
    put(kKey, name);
    set_word(kAux, kSentinel);
    const uint64_t r =
        call("probe_proxy_register_shared_queue", {addr(kKey), name.size(), addr(kAux)}, ctx);
    if (r == kOk && token) *token = u32_at(addr(kAux));
    return r;
  }
  uint64_t resolve_queue(std::string_view vm_id, std::string_view name, uint32_t* token) {
    put(kKey, vm_id);
    put(kVal, name);
    set_word(kAux, kSentinel);
    const uint64_t r = call("probe_proxy_resolve_shared_queue",
                            {addr(kKey), vm_id.size(), addr(kVal), name.size(), addr(kAux)});
    if (r == kOk && token) *token = u32_at(addr(kAux));
    return r;
  }
  uint64_t enqueue(uint32_t token, std::string_view value) {
    put(kVal, value);
    return call("probe_proxy_enqueue_shared_queue", {token, addr(kVal), value.size()});
  }
  uint64_t dequeue(uint32_t token, std::string* value) {
    clear_out();
    const uint64_t r = call("probe_proxy_dequeue_shared_queue", {token, addr(kPtr), addr(kLen)});
    if (r == kOk && value) *value = out();
    return r;
  }

  // Foreign functions.
  uint64_t foreign(std::string_view name, std::string_view args, std::string* result,
                   Context* ctx = nullptr) {
    put(kKey, name);
    put(kBuf, args);
    clear_out();
    const uint64_t r =
        call("probe_proxy_call_foreign_function",
             {addr(kKey), name.size(), addr(kBuf), args.size(), addr(kPtr), addr(kLen)}, ctx);
    if (r == kOk && result) *result = out();
    return r;
  }

  // Declared first: destroyed after the instance, whose tick timers live on this loop.
  asio::io_context io_;
  std::optional<ScopedThreadLoop> thread_loop_{std::in_place, io_};
  std::string runtime_;
  bool null_ = false;
  PluginSpec spec_;
  std::string scratch_;  // the null runtime's "module memory" for test inputs
  FakeStream stream_;
  std::unique_ptr<WasmInstance> w_;
  Context* root_ = nullptr;
  Context* ctx_ = nullptr;
  uint64_t state_ = 0;
};

// ---- both runtimes --------------------------------------------------------------------------

class WasmHostTest : public ::testing::TestWithParam<std::string>, public Harness {
 protected:
  void SetUp() override { boot(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(WasmHostRuntimes, WasmHostTest,
                         ::testing::Values(std::string(kV8RuntimeName),
                                           std::string(kNullRuntimeName)),
                         [](const auto& info) {
                           return info.param == kV8RuntimeName ? std::string("v8")
                                                               : std::string("null");
                         });

TEST_P(WasmHostTest, LogLevelsAndBadLevel) {
  LogCapture logs;
  const std::string msg = "hello from probe";
  put(kKey, msg);
  for (uint32_t level = 0; level <= 5; ++level) {
    EXPECT_EQ(call("probe_proxy_log", {level, addr(kKey), msg.size()}), kOk) << level;
  }
  EXPECT_TRUE(logs.has(spdlog::level::trace, "wasm log probe probe_root: hello from probe"));
  EXPECT_TRUE(logs.has(spdlog::level::info, "hello from probe"));
  EXPECT_TRUE(logs.has(spdlog::level::critical, "hello from probe"));
  const size_t before = logs.count();
  EXPECT_EQ(call("probe_proxy_log", {6, addr(kKey), msg.size()}), kBadArgument);
  EXPECT_EQ(logs.count(), before);                              // nothing logged
  EXPECT_EQ(call("probe_proxy_log", {2, addr(kKey), 0}), kOk);  // an empty message is fine
}

TEST_P(WasmHostTest, GetLogLevelFollowsTheLogger) {
  LogCapture logs(spdlog::level::warn);
  set_word(kPtr, kSentinel);
  EXPECT_EQ(call("probe_proxy_get_log_level", {addr(kPtr)}), kOk);
  EXPECT_EQ(u32_at(addr(kPtr)), 3u);
  spdlog::set_level(spdlog::level::off);
  EXPECT_EQ(call("probe_proxy_get_log_level", {addr(kPtr)}), kOk);
  EXPECT_EQ(u32_at(addr(kPtr)), 6u);  // "off", as Envoy reports it
}

TEST_P(WasmHostTest, CurrentTimeIsWallClock) {
  const auto ns = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const uint64_t before = ns();
  EXPECT_EQ(call("probe_proxy_get_current_time_nanoseconds", {addr(kPtr)}), kOk);
  const uint64_t after = ns();
  uint64_t t;
  std::memcpy(&t, vm().memory_at(addr(kPtr), 8), 8);
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
}

// node and xds.node: the bootstrap's node, its metadata answered from an index built once.
TEST_P(WasmHostTest, NodeProperties) {
  using namespace std::string_view_literals;
  std::string v;
  for (Context* c : {root_, ctx_}) {
    for (const std::string_view prefix : {"node\0"sv, "xds\0node\0"sv}) {
      const auto path = [&](std::string_view rest) {
        return std::string(prefix) + std::string(rest);
      };
      EXPECT_EQ(get_property(path("id"), &v, c), kOk);
      EXPECT_EQ(v, "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local");
      EXPECT_EQ(get_property(path("cluster"), &v, c), kOk);
      EXPECT_EQ(v, "app.ns");
      EXPECT_EQ(get_property(path("metadata\0NAME"sv), &v, c), kOk);
      EXPECT_EQ(v, "pod");
      EXPECT_EQ(get_property(path("metadata\0N"sv), &v, c), kOk);
      EXPECT_EQ(v, "8080");
      EXPECT_EQ(get_property(path("metadata\0LABELS\0version\0"sv), &v, c), kOk);
      EXPECT_EQ(v, "v1");
      EXPECT_EQ(get_property(path("metadata\0LABELS\0nested\0x"sv), &v, c), kOk);
      EXPECT_EQ(v, "1");
      // A struct: pairs of its scalar members (a nested struct is left out).
      EXPECT_EQ(get_property(path("metadata\0LABELS"sv), &v, c), kOk);
      auto pairs = decode_pairs(v);
      ASSERT_TRUE(pairs);
      EXPECT_EQ(*pairs, (Pairs{{"app", "web"}, {"version", "v1"}}));
      EXPECT_EQ(get_property(path("metadata"), &v, c), kOk);
      pairs = decode_pairs(v);
      ASSERT_TRUE(pairs);
      EXPECT_EQ(*pairs, (Pairs{{"NAME", "pod"}, {"N", "8080"}}));
      // An empty key is a key like any other, not the struct itself.
      EXPECT_EQ(get_property(path("metadata\0\0a"sv), &v, c), kOk);
      EXPECT_EQ(v, "empty key");
      EXPECT_EQ(get_property(path("metadata\0IPS"sv), &v, c), kSerializationFailure);
      EXPECT_EQ(get_property(path("metadata\0NOPE"sv), &v, c), kNotFound);
      EXPECT_EQ(get_property(path("metadata\0NAME\0deeper"sv), &v, c), kNotFound);
      EXPECT_EQ(get_property(path("metadata\0LABELS\0app\0x"sv), &v, c), kNotFound);
      EXPECT_EQ(get_property(path("nope"), &v, c), kNotFound);
    }
  }
}

TEST(NodeMetadata, JsonThatDoesNotParseAnswersSerializationFailure) {
  std::string v = "untouched";
  const auto bad = NodeMetadata::from_json("{\"a\": [");
  EXPECT_EQ(bad->lookup("a", false, v), WasmResult::SerializationFailure);
  EXPECT_EQ(bad->lookup("", true, v), WasmResult::SerializationFailure);
  EXPECT_EQ(v, "untouched");
  EXPECT_EQ(bad->json(), "{\"a\": [");
  // The default: an empty struct, whose members are all absent.
  EXPECT_EQ(NodeMetadata::empty()->lookup("a", false, v), WasmResult::NotFound);
  EXPECT_EQ(NodeMetadata::empty()->lookup("", true, v), WasmResult::Ok);
  EXPECT_EQ(decode_pairs(v)->size(), 0u);
}

TEST_P(WasmHostTest, PluginIdentityProperties) {
  std::string v;
  for (Context* c : {root_, ctx_}) {
    EXPECT_EQ(get_property("plugin_name", &v, c), kOk);
    EXPECT_EQ(v, "probe");
    EXPECT_EQ(get_property("plugin_root_id", &v, c), kOk);
    EXPECT_EQ(v, "probe_root");
    EXPECT_EQ(get_property(std::string_view("plugin_vm_id\0", 13), &v, c), kOk);
    EXPECT_EQ(v, "vm1");
  }
}

TEST_P(WasmHostTest, RequestProperties) {
  std::string v;
  EXPECT_EQ(get_property(std::string_view("request\0path", 12), &v), kOk);
  EXPECT_EQ(v, "/foo?x=1");
  // The C++ SDK's trailing NUL is accepted.
  EXPECT_EQ(get_property(std::string_view("request\0path\0", 13), &v), kOk);
  EXPECT_EQ(v, "/foo?x=1");
  EXPECT_EQ(get_property(std::string_view("request\0url_path", 16), &v), kOk);
  EXPECT_EQ(v, "/foo");
  EXPECT_EQ(get_property(std::string_view("request\0method", 14), &v), kOk);
  EXPECT_EQ(v, "GET");
  EXPECT_EQ(get_property(std::string_view("request\0headers\0X-Custom", 24), &v), kOk);
  EXPECT_EQ(v, "v1");
  // Repeated headers are joined with "," in both the single-header and the map view.
  EXPECT_EQ(get_property(std::string_view("request\0headers\0x-multi", 23), &v), kOk);
  EXPECT_EQ(v, "a,b");
  EXPECT_EQ(get_property(std::string_view("request\0headers", 15), &v), kOk);
  auto pairs = decode_pairs(v);
  ASSERT_TRUE(pairs);
  EXPECT_THAT(*pairs,
              ::testing::Contains(std::pair<std::string_view, std::string_view>("x-multi", "a,b")));
  EXPECT_EQ(get_property(std::string_view("request\0headers\0absent", 22), &v), kNotFound);
  EXPECT_EQ(get_property(std::string_view("source\0address", 14), &v), kOk);
  EXPECT_EQ(v, "10.0.0.1:5555");
  EXPECT_EQ(get_property(std::string_view("source\0port", 11), &v), kOk);
  ASSERT_EQ(v.size(), 8u);
  int64_t port;
  std::memcpy(&port, v.data(), 8);
  EXPECT_EQ(port, 5555);
  EXPECT_EQ(get_property(std::string_view("destination\0address", 19), &v), kOk);
  EXPECT_EQ(v, "10.0.0.2:8080");
}

TEST_P(WasmHostTest, UnknownAndMalformedPropertyPaths) {
  std::string v;
  EXPECT_EQ(get_property(std::string_view("foo\0bar", 7), &v), kNotFound);
  // Dots are not separators.
  EXPECT_EQ(get_property("request.path", &v), kNotFound);
  EXPECT_EQ(get_property("", &v), kNotFound);
  EXPECT_EQ(get_property(std::string_view("\0", 1), &v), kNotFound);
  EXPECT_EQ(get_property(std::string_view("request\0nope", 12), &v), kNotFound);
  // Stream properties do not exist on a root context.
  EXPECT_EQ(get_property(std::string_view("request\0path", 12), &v, root_), kNotFound);
}

// A fixed attribute (one hash lookup of the whole path) answers the same however the path is
// spelled: exactly, with the C++ SDK's trailing NUL, and for request and response attributes
// with more segments after it. Unknown fields of the fixed tops name nothing.
TEST_P(WasmHostTest, FixedAttributesAnswerTheSameWhateverTheSpelling) {
  using namespace std::string_literals;
  const std::vector<std::string> paths = {"plugin_name",
                                          "plugin_root_id",
                                          "plugin_vm_id",
                                          "connection_id",
                                          "cluster_name",
                                          "route_name",
                                          "request\0path"s,
                                          "request\0url_path"s,
                                          "request\0host"s,
                                          "request\0scheme"s,
                                          "request\0method"s,
                                          "request\0referer"s,
                                          "request\0useragent"s,
                                          "request\0id"s,
                                          "request\0protocol"s,
                                          "request\0query"s,
                                          "request\0time"s,
                                          "request\0duration"s,
                                          "request\0size"s,
                                          "request\0total_size"s,
                                          "request\0headers_bytes"s,
                                          "response\0code"s,
                                          "response\0code_details"s,
                                          "response\0flags"s,
                                          "response\0size"s,
                                          "response\0total_size"s,
                                          "response\0headers_bytes"s,
                                          "source\0address"s,
                                          "source\0port"s,
                                          "destination\0address"s,
                                          "destination\0port"s,
                                          "connection\0id"s,
                                          "connection\0mtls"s,
                                          "connection\0tls_version"s,
                                          "upstream\0address"s,
                                          "upstream\0port"s,
                                          "xds\0cluster_name"s,
                                          "xds\0route_name"s};
  for (Context* ctx : {static_cast<Context*>(nullptr), static_cast<Context*>(root_)}) {
    for (const std::string& path : paths) {
      SCOPED_TRACE(path + (ctx ? " (root)" : ""));
      std::string exact, with_nul;
      const uint64_t status = get_property(path, &exact, ctx);
      EXPECT_EQ(get_property(path + '\0', &with_nul, ctx), status);
      if (status == kOk) {
        EXPECT_EQ(with_nul, exact);
      }
      if (path.rfind("request\0", 0) == 0 || path.rfind("response\0", 0) == 0) {
        std::string longer;
        const uint64_t longer_status = get_property(path + "\0more"s, &longer, ctx);
        EXPECT_EQ(longer_status, status);
        if (status == kOk) {
          EXPECT_EQ(longer, exact);
        }
      }
    }
  }
  std::string v;
  for (const std::string& unknown :
       {"source\0nope"s, "destination\0nope"s, "connection\0nope"s, "upstream\0nope"s, "xds\0nope"s,
        "response\0nope"s, "connection_id\0x"s, "plugin_name\0x"s}) {
    EXPECT_EQ(get_property(unknown, &v), kNotFound) << unknown;
  }
}

TEST_P(WasmHostTest, SetThenGetProperty) {
  EXPECT_EQ(set_property("my_key", "my value"), kOk);
  std::string v;
  EXPECT_EQ(get_property("my_key", &v), kOk);
  EXPECT_EQ(v, "my value");
  EXPECT_EQ(set_property("my_key", ""), kOk);  // overwritten, with an empty value
  EXPECT_EQ(get_property("my_key", &v), kOk);
  EXPECT_EQ(v, "");
  // Root contexts have no stream to store it in.
  EXPECT_EQ(set_property("root_key", "x", root_), kNotFound);
  EXPECT_EQ(get_property("root_key", &v, root_), kNotFound);
}

TEST_P(WasmHostTest, PathsOfManySegmentsAndLongSegments) {
  std::string v;
  // Segments across the splitter's 8-byte steps, NULs at every offset within a step.
  for (size_t pad = 0; pad < 9; ++pad) {
    const std::string name = "x-" + std::string(pad, 'p');
    ASSERT_EQ(set_property(std::string("wasm\0", 5) + name, "value " + name), kOk);
    ASSERT_EQ(get_property(std::string("wasm\0", 5) + name, &v), kOk) << name;
    EXPECT_EQ(v, "value " + name);
  }
  EXPECT_EQ(get_property(std::string_view("request\0headers\0X-Custom\0", 25), &v), kOk);
  EXPECT_EQ(v, "v1");
  // Paths deeper than any attribute are only what the module stored under them.
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += std::string("seg\0", 4);
  EXPECT_EQ(get_property(deep, &v), kNotFound);
  ASSERT_EQ(set_property(deep, "deep value"), kOk);
  EXPECT_EQ(get_property(deep, &v), kOk);
  EXPECT_EQ(v, "deep value");
}

TEST_P(WasmHostTest, HostileHeaderValuesDoNotBreakNumericProperties) {
  // A module may set content-length and :status to anything; parsing them must not overflow.
  ctx_->set_phase(Phase::RequestHeaders);
  stream_.info.bytes_received = 7;
  EXPECT_EQ(replace(0, "content-length", "99999999999999999999999999"), kOk);
  std::string v;
  EXPECT_EQ(get_property(std::string_view("request\0size", 12), &v), kOk);
  ASSERT_EQ(v.size(), 8u);
  int64_t size;
  std::memcpy(&size, v.data(), 8);
  EXPECT_EQ(size, 7);  // not a number: the bytes received
  EXPECT_EQ(replace(0, "content-length", "12"), kOk);
  EXPECT_EQ(get_property(std::string_view("request\0size", 12), &v), kOk);
  std::memcpy(&size, v.data(), 8);
  EXPECT_EQ(size, 12);

  stream_.has_response = true;
  ctx_->set_phase(Phase::ResponseHeaders);
  EXPECT_EQ(replace(2, ":status", "9999999999999999999999999"), kOk);
  EXPECT_EQ(get_property(std::string_view("response\0code", 13), &v), kOk);
  EXPECT_EQ(v.size(), 8u);
}

TEST_P(WasmHostTest, GetHeaderMapValueEveryType) {
  std::string v;
  EXPECT_EQ(get_value(0, "x-custom", &v), kOk);
  EXPECT_EQ(v, "v1");
  EXPECT_EQ(get_value(0, "X-CUSTOM", &v), kOk);  // keys are lower-cased
  EXPECT_EQ(v, "v1");
  EXPECT_EQ(get_value(0, "x-multi", &v), kOk);  // first value only
  EXPECT_EQ(v, "a");
  EXPECT_EQ(get_value(0, "absent", &v), kNotFound);  // 0.2.x
  EXPECT_EQ(word(kPtr), kSentinel);                  // nothing written
  EXPECT_EQ(get_value(2, "x", &v), kBadArgument);    // no response yet
  stream_.has_response = true;
  stream_.response.add(":status", "200");
  stream_.response.add("server", "up");
  EXPECT_EQ(get_value(2, "server", &v), kOk);
  EXPECT_EQ(v, "up");
  for (uint32_t type : {1u, 3u, 4u, 5u, 6u, 7u}) {
    EXPECT_EQ(get_value(type, "x", &v), kBadArgument) << type;  // not available to HTTP filters
  }
  EXPECT_EQ(get_value(8, "x", &v), kBadArgument);
  EXPECT_EQ(get_value(0xffffffff, "x", &v), kBadArgument);
  // Root contexts have no stream.
  EXPECT_EQ(get_value(0, "x-custom", &v, root_), kBadArgument);
}

TEST_P(WasmHostTest, GetHeaderMapPairsEveryType) {
  std::string blob;
  EXPECT_EQ(get_pairs(0, &blob), kOk);
  auto pairs = decode_pairs(blob);
  ASSERT_TRUE(pairs);
  ASSERT_EQ(pairs->size(), 6u);
  EXPECT_EQ((*pairs)[0].first, ":method");
  EXPECT_EQ((*pairs)[5].second, "b");
  // Unavailable maps: Ok and an empty result (0/0), as Envoy (SDKs panic on BadArgument here).
  for (uint32_t type : {1u, 2u, 3u, 4u, 5u, 6u, 7u}) {
    EXPECT_EQ(get_pairs(type, &blob), kOk) << type;
    EXPECT_EQ(word(kPtr), 0u) << type;
    EXPECT_EQ(word(kLen), 0u) << type;
  }
  EXPECT_EQ(get_pairs(8, &blob), kBadArgument);
  EXPECT_EQ(get_pairs(0, &blob, root_), kOk);
  EXPECT_EQ(word(kLen), 0u);
}

TEST_P(WasmHostTest, GetHeaderMapSize) {
  EXPECT_EQ(call("probe_proxy_get_header_map_size", {0, addr(kPtr)}), kOk);
  EXPECT_EQ(word(kPtr), stream_.request.byte_size());
  EXPECT_EQ(call("probe_proxy_get_header_map_size", {2, addr(kPtr)}), kBadArgument);
  EXPECT_EQ(call("probe_proxy_get_header_map_size", {8, addr(kPtr)}), kBadArgument);
}

TEST_P(WasmHostTest, AddReplaceRemoveInPhase) {
  ctx_->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(add(0, "X-New", "1"), kOk);
  EXPECT_EQ(add(0, "x-new", "2"), kOk);  // duplicates allowed
  EXPECT_EQ(stream_.request.count("x-new"), 2u);
  EXPECT_EQ(replace(0, "x-new", "3"), kOk);
  EXPECT_EQ(stream_.request.count("x-new"), 1u);
  EXPECT_EQ(stream_.request.get_or_empty("x-new"), "3");
  EXPECT_EQ(replace(0, "x-fresh", "f"), kOk);  // replace adds an absent header
  EXPECT_EQ(stream_.request.get_or_empty("x-fresh"), "f");
  EXPECT_EQ(remove(0, "X-NEW"), kOk);
  EXPECT_FALSE(stream_.request.has("x-new"));
  EXPECT_EQ(remove(0, "never-there"), kOk);
  EXPECT_EQ(stream_.route_cache_clears, 6);  // every request-header change
  EXPECT_EQ(add(0, "x-empty", ""), kOk);     // an empty value is a value
  EXPECT_TRUE(stream_.request.has("x-empty"));
  // Wrong map types.
  for (uint32_t type : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    EXPECT_EQ(add(type, "k", "v"), kBadArgument) << type;
    EXPECT_EQ(replace(type, "k", "v"), kBadArgument) << type;
    EXPECT_EQ(remove(type, "k"), kBadArgument) << type;
  }
}

TEST_P(WasmHostTest, HeaderWritesOutsideTheirPhase) {
  const size_t before = stream_.request.size();
  for (Phase p : {Phase::None, Phase::ResponseHeaders, Phase::Log, Phase::Done}) {
    ctx_->set_phase(p);
    EXPECT_EQ(add(0, "k", "v"), kBadArgument);
    EXPECT_EQ(replace(0, "x-custom", "v"), kBadArgument);
    EXPECT_EQ(remove(0, "x-custom"), kBadArgument);
    EXPECT_EQ(set_pairs(0, pairs_blob({{"a", "b"}})), kBadArgument);
  }
  EXPECT_EQ(stream_.request.size(), before);
  EXPECT_EQ(stream_.request.get_or_empty("x-custom"), "v1");
  // Response headers: writable while the response is in the filter's hands.
  stream_.has_response = true;
  ctx_->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(add(2, "k", "v"), kBadArgument);
  ctx_->set_phase(Phase::ResponseBody);
  EXPECT_EQ(add(2, "k", "v"), kOk);
  EXPECT_EQ(stream_.response.get_or_empty("k"), "v");
  EXPECT_EQ(stream_.route_cache_clears, 0);  // response headers do not re-route
  // Reading stays possible in on_log; an absent map there is NotFound (Envoy's access-log phase).
  ctx_->set_phase(Phase::Log);
  std::string v;
  EXPECT_EQ(get_value(0, "x-custom", &v), kOk);
  EXPECT_EQ(get_value(1, "x", &v), kNotFound);
}

// Trailers (map types 1 and 3): readable once they exist, writable in their own callback, and
// creatable in a message's last body callback (Envoy's addDecodedTrailers).
TEST_P(WasmHostTest, TrailerMaps) {
  std::string v;
  EXPECT_EQ(get_value(1, "x-sum", &v), kBadArgument);  // the request has no trailers (yet)
  stream_.request_trailer_map.emplace();
  stream_.request_trailer_map->add("x-sum", "42");
  EXPECT_EQ(get_value(1, "x-sum", &v), kOk);
  EXPECT_EQ(v, "42");
  std::string blob;
  EXPECT_EQ(get_pairs(1, &blob), kOk);
  auto pairs = decode_pairs(blob);
  ASSERT_TRUE(pairs);
  ASSERT_EQ(pairs->size(), 1u);
  // Writable in on_request_trailers only (and on_request_body), not in other phases.
  ctx_->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(add(1, "x-more", "1"), kBadArgument);
  ctx_->set_phase(Phase::RequestTrailers);
  EXPECT_EQ(add(1, "x-more", "1"), kOk);
  EXPECT_EQ(replace(1, "x-sum", "43"), kOk);
  EXPECT_EQ(remove(1, "x-more"), kOk);
  EXPECT_EQ(stream_.request_trailer_map->get_or_empty("x-sum"), "43");
  EXPECT_FALSE(stream_.request_trailer_map->has("x-more"));
  EXPECT_EQ(stream_.route_cache_clears, 0);  // trailers never re-route
  // Response trailers created from the last response body callback.
  ctx_->set_phase(Phase::ResponseBody);
  EXPECT_EQ(add(3, "grpc-status", "0"), kOk);
  ASSERT_TRUE(stream_.response_trailer_map);
  EXPECT_EQ(stream_.response_trailer_map->get_or_empty("grpc-status"), "0");
  ctx_->set_phase(Phase::ResponseTrailers);
  EXPECT_EQ(add(3, "x-late", "1"), kOk);
  EXPECT_EQ(add(1, "x-no", "1"), kBadArgument);  // request trailers are past
  EXPECT_EQ(add(0, "x-no", "1"), kBadArgument);
  // Readable in on_log.
  ctx_->set_phase(Phase::Log);
  EXPECT_EQ(get_value(3, "x-late", &v), kOk);
  EXPECT_EQ(add(3, "x-no", "1"), kBadArgument);
}

TEST_P(WasmHostTest, HeaderInjectionIsRefused) {
  ctx_->set_phase(Phase::RequestHeaders);
  const size_t before = stream_.request.size();
  EXPECT_EQ(add(0, "x-evil", "a\r\nx-injected: 1"), kBadArgument);
  EXPECT_EQ(replace(0, "x-custom", std::string_view("a\0b", 3)), kBadArgument);
  EXPECT_EQ(add(0, "x-evil\r\nhost", "v"), kBadArgument);
  EXPECT_EQ(add(0, "", "v"), kBadArgument);
  EXPECT_EQ(set_pairs(0, pairs_blob({{"ok", "1"}, {"x-evil", "1\nGET / HTTP/1.1"}})), kBadArgument);
  EXPECT_EQ(stream_.request.size(), before);  // untouched, not cleared
  EXPECT_EQ(stream_.request.get_or_empty("x-custom"), "v1");
  EXPECT_EQ(local_response(403, "d", "b", pairs_blob({{"x-a", "1\r\n"}})), kBadArgument);
  EXPECT_FALSE(ctx_->local_response);
}

TEST_P(WasmHostTest, SetHeaderMapPairs) {
  ctx_->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(set_pairs(0, pairs_blob({{":method", "POST"}, {"X-A", "1"}, {"x-a", "2"}})), kOk);
  EXPECT_EQ(stream_.request.size(), 3u);
  EXPECT_EQ(stream_.request.method(), "POST");
  EXPECT_EQ(stream_.request.count("x-a"), 2u);
  // A malformed blob (count says 5, no room for them) decodes to nothing: the map is cleared.
  std::string bad = pairs_blob({{"a", "b"}});
  bad[0] = 5;
  EXPECT_EQ(set_pairs(0, bad), kOk);
  EXPECT_TRUE(stream_.request.empty());
  EXPECT_EQ(set_pairs(0, pairs_blob({{"x", "y"}})), kOk);
  EXPECT_EQ(set_pairs(0, ""), kOk);  // empty blob: an empty map
  EXPECT_TRUE(stream_.request.empty());
  EXPECT_EQ(set_pairs(8, pairs_blob({{"x", "y"}})), kBadArgument);
  EXPECT_EQ(set_pairs(1, pairs_blob({{"x", "y"}})), kBadArgument);
}

TEST_P(WasmHostTest, Buffers) {
  stream_.request_body_bytes = "hello world";
  std::string data;
  EXPECT_EQ(get_buffer(0, 0, 5, &data), kOk);
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(get_buffer(0, 6, 1000, &data), kOk);  // clamped
  EXPECT_EQ(data, "world");
  EXPECT_EQ(get_buffer(0, 0, 0xffffffff, &data), kOk);  // start + max = 2^32 - 1: no overflow
  EXPECT_EQ(data, "hello world");
  EXPECT_EQ(get_buffer(0, 100, 5, &data), kOk);  // past the end: empty
  EXPECT_EQ(word(kPtr), 0u);
  EXPECT_EQ(word(kLen), 0u);
  EXPECT_EQ(get_buffer(0, 1, 0xffffffff, &data), kBadArgument);  // start + max overflows u32
  EXPECT_EQ(get_buffer(0, 0xffffffff, 1, &data), kBadArgument);
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(get_buffer(1, 0, 10, &data), kNotFound);  // no response body now
  stream_.response_body_bytes = "resp";
  EXPECT_EQ(get_buffer(1, 0, 10, &data), kOk);
  EXPECT_EQ(data, "resp");
  for (uint32_t type : {2u, 3u, 4u, 5u, 8u}) {
    EXPECT_EQ(get_buffer(type, 0, 10, &data), kNotFound) << type;
  }
  EXPECT_EQ(get_buffer(6, 0, 100, &data), kOk);
  EXPECT_EQ(data, "vm-config");
  EXPECT_EQ(get_buffer(7, 0, 100, &data), kNotFound);  // only during on_configure
  EXPECT_EQ(get_buffer(9, 0, 10, &data), kBadArgument);
  // Root contexts have no stream bodies but do see the VM configuration.
  EXPECT_EQ(get_buffer(0, 0, 10, &data, root_), kNotFound);
  EXPECT_EQ(get_buffer(6, 3, 2, &data, root_), kOk);
  EXPECT_EQ(data, "co");
}

TEST_P(WasmHostTest, PluginConfigurationReadableDuringOnConfigureOnly) {
  EXPECT_EQ(u32_at(state_ + 0x10), kOk);
  EXPECT_EQ(out_at(state_ + 0x18, state_ + 0x20), "plugin-config");
  EXPECT_EQ(u32_at(state_ + 0x28), kOk);
  EXPECT_EQ(out_at(state_ + 0x30, state_ + 0x38), "vm-config");
  std::string data;
  EXPECT_EQ(get_buffer(7, 0, 100, &data, root_), kNotFound);
}

TEST_P(WasmHostTest, BufferStatus) {
  stream_.request_body_bytes = "12345";
  set_word(kAux, kSentinel);
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {0, addr(kPtr), addr(kAux)}), kOk);
  EXPECT_EQ(word(kPtr), 5u);
  EXPECT_EQ(u32_at(addr(kAux)), 0u);  // flags: always 0
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {6, addr(kPtr), addr(kAux)}), kOk);
  EXPECT_EQ(word(kPtr), 9u);
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {1, addr(kPtr), addr(kAux)}), kNotFound);
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {9, addr(kPtr), addr(kAux)}), kBadArgument);
}

TEST_P(WasmHostTest, SetBufferBytes) {
  stream_.request_body_bytes = "hello world";
  EXPECT_EQ(set_buffer(0, 0, 5, "HOWDY"), kOk);  // start 0: replace the first `size` bytes
  EXPECT_EQ(*stream_.request_body_bytes, "HOWDY world");
  EXPECT_EQ(set_buffer(0, 0, 0, ">"), kOk);  // (0, 0): prepend
  EXPECT_EQ(*stream_.request_body_bytes, ">HOWDY world");
  EXPECT_EQ(set_buffer(0, 12, 0, "!"), kOk);    // at the end: append
  EXPECT_EQ(set_buffer(0, 1000, 5, "?"), kOk);  // past the end: append
  EXPECT_EQ(*stream_.request_body_bytes, ">HOWDY world!?");
  EXPECT_EQ(set_buffer(0, 3, 2, "xx"), kBadArgument);   // the middle: refused (as Envoy)
  EXPECT_EQ(set_buffer(0, 0, 0xffffffff, "all"), kOk);  // size past the end: all replaced
  EXPECT_EQ(*stream_.request_body_bytes, "all");
  EXPECT_EQ(set_buffer(1, 0, 0, "x"), kNotFound);     // no response body
  EXPECT_EQ(set_buffer(6, 0, 0, "x"), kBadArgument);  // configurations are read-only
  EXPECT_EQ(set_buffer(9, 0, 0, "x"), kBadArgument);
  EXPECT_EQ(set_buffer(2, 0, 0, "x"), kNotFound);
}

TEST_P(WasmHostTest, SendLocalResponse) {
  EXPECT_EQ(local_response(403, "access denied by probe", "nope", pairs_blob({{"x-a", "1"}})), kOk);
  ASSERT_TRUE(ctx_->local_response);
  EXPECT_EQ(ctx_->local_response->status, 403u);
  EXPECT_EQ(ctx_->local_response->details, "access_denied_by_probe");
  EXPECT_EQ(ctx_->local_response->body, "nope");
  ASSERT_EQ(ctx_->local_response->headers.size(), 1u);
  EXPECT_EQ(ctx_->local_response->headers[0].first, "x-a");
  // Malformed header pairs: the reply goes out without them (Envoy's toPairs gives nothing).
  ctx_->local_response.reset();
  std::string bad = pairs_blob({{"x-a", "1"}});
  bad.pop_back();
  EXPECT_EQ(local_response(500, "", "", bad), kOk);
  ASSERT_TRUE(ctx_->local_response);
  EXPECT_TRUE(ctx_->local_response->headers.empty());
  ctx_->local_response.reset();
  EXPECT_EQ(local_response(99, "", "", ""), kBadArgument);
  EXPECT_EQ(local_response(600, "", "", ""), kBadArgument);
  EXPECT_EQ(local_response(0xffffffff, "", "", ""), kBadArgument);
  EXPECT_FALSE(ctx_->local_response);
  EXPECT_EQ(local_response(200, "", "", "", root_), kNotFound);
  EXPECT_TRUE(stream_.replies.empty());  // the filter sends it once the call returned
}

TEST_P(WasmHostTest, ContinueAndCloseStream) {
  EXPECT_EQ(call("probe_proxy_continue_stream", {0}), kOk);
  EXPECT_TRUE(ctx_->want_continue_request);
  EXPECT_EQ(call("probe_proxy_continue_stream", {1}), kOk);
  EXPECT_TRUE(ctx_->want_continue_response);
  EXPECT_EQ(call("probe_proxy_continue_stream", {2}), kUnimplemented);
  EXPECT_EQ(call("probe_proxy_continue_stream", {3}), kUnimplemented);
  EXPECT_EQ(call("probe_proxy_continue_stream", {4}), kBadArgument);
  EXPECT_EQ(call("probe_proxy_continue_stream", {0}, root_), kNotFound);
  EXPECT_EQ(stream_.continue_decoding_calls, 0);  // deferred to the filter
  for (uint32_t type = 0; type <= 3; ++type) {
    ctx_->want_close.reset();
    EXPECT_EQ(call("probe_proxy_close_stream", {type}), kOk) << type;
    EXPECT_EQ(ctx_->want_close.value_or(""), "wasm_close_stream");
  }
  ctx_->want_close.reset();
  EXPECT_EQ(call("probe_proxy_close_stream", {4}), kBadArgument);
  EXPECT_FALSE(ctx_->want_close);
  EXPECT_EQ(call("probe_proxy_close_stream", {0}, root_), kNotFound);
}

TEST_P(WasmHostTest, SetEffectiveContext) {
  FakeStream other;
  other.request.add("x-custom", "other");
  Context* second = w_->create_stream_context(*root_);
  ASSERT_NE(second, nullptr);
  second->set_stream(&other);
  EXPECT_EQ(call("probe_proxy_set_effective_context", {999}), kBadArgument);
  EXPECT_EQ(call("probe_proxy_set_effective_context", {0}), kBadArgument);
  EXPECT_EQ(call("probe_proxy_set_effective_context", {second->id()}), kOk);
  // In one callback: the switch, then a call acting on the other stream.
  const std::string key = "x-custom";
  put(kKey, key);
  clear_out();
  EXPECT_EQ(call("probe_effective_then_get_value",
                 {second->id(), addr(kKey), key.size(), addr(kPtr), addr(kLen)}),
            kOk);
  EXPECT_EQ(out(), "other");
  // The next callback starts on its own context again.
  std::string v;
  EXPECT_EQ(get_value(0, key, &v), kOk);
  EXPECT_EQ(v, "v1");
  EXPECT_EQ(call("probe_effective_then_get_value",
                 {12345, addr(kKey), key.size(), addr(kPtr), addr(kLen)}),
            100 + kBadArgument);
  w_->destroy_stream_context(second, false);
}

TEST_P(WasmHostTest, DoneAndStatus) {
  EXPECT_EQ(call("probe_proxy_done", {}), kNotFound);  // nothing pending
  root_->done_pending = true;
  EXPECT_EQ(call("probe_proxy_done", {}), kOk);
  EXPECT_FALSE(root_->done_pending);

  set_word(kAux, kSentinel);
  clear_out();
  EXPECT_EQ(call("probe_proxy_get_status", {addr(kAux), addr(kPtr), addr(kLen)}), kOk);
  EXPECT_EQ(u32_at(addr(kAux)), 0u);
  EXPECT_EQ(word(kLen), 0u);
  root_->status_code = 11;
  root_->status_message = "reset";
  // A stream context reads its root's status.
  EXPECT_EQ(call("probe_proxy_get_status", {addr(kAux), addr(kPtr), addr(kLen)}), kOk);
  EXPECT_EQ(u32_at(addr(kAux)), 11u);
  EXPECT_EQ(out(), "reset");
}

// proxy_http_call's checks before anything is sent (the calls themselves are tested through the
// proxy in tests/integration/wasm_http_call_test.cc).
TEST_P(WasmHostTest, HttpCallArgumentChecks) {
  WasmFunction f = vm().function("probe_proxy_http_call");
  ASSERT_TRUE(f);
  // No HTTP client on this thread (as in a canary): InternalFailure, nothing sent.
  EXPECT_EQ(w_->call(ctx_, f, {0, 0, 0, 0, 0, 0, 0, 0, 0, addr(kPtr)}).value_or(UINT64_MAX),
            kInternalFailure);
  // A token out-param or a blob outside memory: InvalidMemoryAccess (V8: null plugins use host
  // addresses and are trusted).
  if (GetParam() == kV8RuntimeName) {
    EXPECT_EQ(w_->call(ctx_, f, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfffffff0}).value_or(UINT64_MAX),
              kInvalidMemoryAccess);
    EXPECT_EQ(
        w_->call(ctx_, f, {0xfffffff0, 64, 0, 0, 0, 0, 0, 0, 0, addr(kPtr)}).value_or(UINT64_MAX),
        kInvalidMemoryAccess);
  }
  EXPECT_EQ(w_->outstanding_http_calls(), 0u);
  // Outside proxy_on_http_call_response the callout maps and body are not there.
  std::string blob;
  EXPECT_EQ(get_pairs(6, &blob), kOk);
  EXPECT_EQ(word(kLen), 0u);
  std::string v;
  EXPECT_EQ(get_value(6, ":status", &v), kBadArgument);
  EXPECT_FALSE(w_->failed());
}

// The gRPC host functions' own checks (the calls themselves run in e2e/wasm_grpc_call_test.sh,
// against a real gRPC server): statuses stay within what the public SDKs accept.
TEST_P(WasmHostTest, GrpcCalloutStatusesWithoutAClient) {
  auto call = [&](std::string_view fn, std::initializer_list<uint64_t> args) {
    WasmFunction f = vm().function(fn);
    EXPECT_TRUE(f) << fn;
    return f ? w_->call(ctx_, f, args).value_or(UINT64_MAX) : UINT64_MAX;
  };
  const uint64_t name = put(0x4000, "echo"), bad = put(0x4100, "Echo\r\nx: y");
  const uint64_t msg = put(0x4200, "m"), token = addr(kAux);
  // No worker loop on this thread (as on the canary's): InternalFailure, never BadArgument.
  EXPECT_EQ(call("probe_proxy_grpc_call", {name, 4, name, 4, name, 4, 0, 0, msg, 1, 1000, token}),
            kInternalFailure);
  EXPECT_EQ(call("probe_proxy_grpc_stream", {name, 4, name, 4, name, 4, 0, 0, token}),
            kInternalFailure);
  // A method name that would break the request line: refused the same way.
  EXPECT_EQ(call("probe_proxy_grpc_call", {name, 4, name, 4, bad, 11, 0, 0, msg, 1, 0, token}),
            kInternalFailure);
  // send needs a stream token (low bits 2); unknown tokens are NotFound.
  EXPECT_EQ(call("probe_proxy_grpc_send", {5, msg, 1, 0}), kBadArgument);
  EXPECT_EQ(call("probe_proxy_grpc_send", {6, msg, 1, 0}), kNotFound);
  EXPECT_EQ(call("probe_proxy_grpc_cancel", {5}), kNotFound);
  EXPECT_EQ(call("probe_proxy_grpc_close", {6}), kNotFound);
  EXPECT_EQ(call("probe_proxy_grpc_close", {0}), kNotFound);
  EXPECT_EQ(w_->outstanding_grpc_calls(), 0u);
  EXPECT_FALSE(w_->failed());
}

// ---- timers ----------------------------------------------------------------------------------

TEST_P(WasmHostTest, TickRunsOnTheRootAndRearms) {
  clear_callback_log();
  // From a stream context: the period is its root's.
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {2}), kOk);
  EXPECT_EQ(root_->tick_period_ms, 2u);
  EXPECT_EQ(ctx_->tick_period_ms, 0u);
  EXPECT_EQ(callbacks_of(13), 0u);  // armed, not run inline
  ASSERT_TRUE(run_until([&] { return callbacks_of(13) >= 3; }));
  for (const auto& e : callback_log()) {
    if (e[0] == 13) {
      EXPECT_EQ(e[1], root_->id());
    }
  }
  // Period 0 stops it: no tick afterwards, however long the loop runs.
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {0}, root_), kOk);
  const size_t ticks = callbacks_of(13);
  run_for(std::chrono::milliseconds(30));
  EXPECT_EQ(callbacks_of(13), ticks);
  // And it starts again.
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {1}, root_), kOk);
  ASSERT_TRUE(run_until([&] { return callbacks_of(13) > ticks; }));
  EXPECT_FALSE(w_->failed());
}

TEST_P(WasmHostTest, SettingTheSamePeriodAgainDoesNotPostponeTheTick) {
  // A plugin may set its period on every request; the tick must still come.
  clear_callback_log();
  const bool ticked = run_until([&] {
    EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {20}), kOk);
    return callbacks_of(13) > 0;
  });
  EXPECT_TRUE(ticked);
}

TEST_P(WasmHostTest, NoTickIntoAFailedInstance) {
  clear_callback_log();
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {1}), kOk);
  w_->fail("failed by the test");
  run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(callbacks_of(13), 0u);
}

TEST_P(WasmHostTest, TickTimerDiesWithItsRoot) {
  clear_callback_log();
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {1}), kOk);
  w_->destroy_stream_context(ctx_, false);
  ctx_ = nullptr;
  w_->destroy_root(root_);
  root_ = nullptr;
  clear_callback_log();
  run_for(std::chrono::milliseconds(20));  // the cancelled wait completes: nothing is called
  EXPECT_EQ(callbacks_of(13), 0u);
  EXPECT_FALSE(w_->failed());
}

TEST_P(WasmHostTest, TickWithoutALoopOnThisThreadKeepsThePeriodOnly) {
  thread_loop_.reset();  // as on the main thread, where a canary runs
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {1}), kOk);
  EXPECT_EQ(root_->tick_period_ms, 1u);
  EXPECT_EQ(root_->tick_timer, nullptr);
}

// ---- metrics ---------------------------------------------------------------------------------

TEST_P(WasmHostTest, DefineMetricGivesTypedIds) {
  const std::string c1 = unique("c1"), c2 = unique("c2"), g = unique("g"), h = unique("h");
  uint32_t id = 0;
  EXPECT_EQ(define_metric(0, c1, &id), kOk);
  EXPECT_EQ(id, 4u);
  EXPECT_EQ(define_metric(1, g, &id), kOk);
  EXPECT_EQ(id, 5u);
  EXPECT_EQ(define_metric(2, h, &id), kOk);
  EXPECT_EQ(id, 6u);
  EXPECT_EQ(define_metric(0, c2, &id), kOk);
  EXPECT_EQ(id, 8u);
  EXPECT_EQ(define_metric(0, c1, &id), kOk);  // the same (type, name): the same id
  EXPECT_EQ(id, 4u);
  EXPECT_EQ(define_metric(1, c1, &id), kOk);  // another type may use the name
  EXPECT_EQ(id, 9u);
  EXPECT_EQ(define_metric(3, unique("bad"), &id), kBadArgument);
  EXPECT_EQ(define_metric(0xffffffff, unique("bad"), &id), kBadArgument);
  EXPECT_EQ(define_metric(2, "", &id), kOk);  // as in Envoy (Rust SDKs panic on anything else)
  EXPECT_EQ(id, 10u);
}

TEST_P(WasmHostTest, CounterMetric) {
  uint32_t id = 0;
  ASSERT_EQ(define_metric(0, unique("requests"), &id), kOk);
  uint64_t v = 1;
  EXPECT_EQ(get_metric(id, &v), kOk);
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(increment_metric(id, 5), kOk);
  EXPECT_EQ(increment_metric(id, 0), kBadArgument);  // counters only go up
  EXPECT_EQ(increment_metric(id, -1), kBadArgument);
  EXPECT_EQ(increment_metric(id, INT64_MIN), kBadArgument);
  EXPECT_EQ(record_metric(id, 7), kOk);  // record adds to a counter
  EXPECT_EQ(get_metric(id, &v), kOk);
  EXPECT_EQ(v, 12u);
}

TEST_P(WasmHostTest, GaugeMetric) {
  uint32_t id = 0;
  ASSERT_EQ(define_metric(1, unique("level"), &id), kOk);
  uint64_t v = 0;
  EXPECT_EQ(increment_metric(id, -3), kOk);
  EXPECT_EQ(get_metric(id, &v), kOk);
  EXPECT_EQ(static_cast<int64_t>(v), -3);  // two's complement in the u64
  EXPECT_EQ(record_metric(id, 42), kOk);   // record sets a gauge
  EXPECT_EQ(increment_metric(id, 8), kOk);
  EXPECT_EQ(get_metric(id, &v), kOk);
  EXPECT_EQ(v, 50u);
}

TEST_P(WasmHostTest, HistogramMetric) {
  const std::string name = unique("sizes");
  uint32_t id = 0;
  ASSERT_EQ(define_metric(2, name, &id), kOk);
  EXPECT_EQ(increment_metric(id, 1), kBadArgument);
  EXPECT_EQ(record_metric(id, 3), kOk);
  EXPECT_EQ(record_metric(id, 700), kOk);
  uint64_t v = 0;
  EXPECT_EQ(get_metric(id, &v), kBadArgument);
  bool found = false;
  for (const auto& m : stats::Store::instance().snapshot()) {
    if (stats::visible_name(m.name->dotted) != name) continue;
    found = true;
    EXPECT_EQ(m.type, stats::MetricType::Histogram);
    EXPECT_EQ(m.histogram.count, 2u);
    EXPECT_EQ(m.histogram.sum, 703u);
  }
  EXPECT_TRUE(found);
}

TEST_P(WasmHostTest, UnknownMetricIds) {
  uint32_t c = 0, g = 0, h = 0;
  ASSERT_EQ(define_metric(0, unique("c"), &c), kOk);
  ASSERT_EQ(define_metric(1, unique("g"), &g), kOk);
  ASSERT_EQ(define_metric(2, unique("h"), &h), kOk);
  uint64_t v = 0;
  for (uint32_t id : {0u, 1u, 2u, 3u, 7u, 11u, c + 4, g + 4, h + 4, 0xfffffffcu, 0xffffffffu}) {
    EXPECT_EQ(increment_metric(id, 1), kNotFound) << id;
    EXPECT_EQ(record_metric(id, 1), kNotFound) << id;
    EXPECT_EQ(get_metric(id, &v), kNotFound) << id;
  }
}

TEST_P(WasmHostTest, MetricsShowUnderThePluginsNameInStats) {
  const std::string name = unique("hits-total");  // '-' is not valid in Prometheus
  uint32_t id = 0;
  ASSERT_EQ(define_metric(0, name, &id), kOk);
  ASSERT_EQ(increment_metric(id, 9), kOk);
  std::vector<stats::MetricSnapshot> mine;
  for (auto& m : stats::Store::instance().snapshot()) {
    if (stats::visible_name(m.name->dotted) == name) mine.push_back(std::move(m));
  }
  ASSERT_EQ(mine.size(), 1u);
  // Kept apart from the proxy's own stats internally, shown as the plugin named it.
  EXPECT_EQ(mine[0].name->dotted, "wasmcustom." + name);
  EXPECT_EQ(stats::render_text(mine), name + ": 9\n");
  std::string prom = name;
  for (char& ch : prom) {
    if (ch == '.' || ch == '-') ch = '_';
  }
  EXPECT_EQ(stats::render_prometheus(mine), fmt::format("# TYPE {0} counter\n{0} 9\n", prom));
}

TEST_P(WasmHostTest, MetricsMergeAcrossWorkers) {
  const std::string counter = unique("c"), gauge = unique("g");
  uint32_t c = 0, g = 0;
  ASSERT_EQ(define_metric(0, counter, &c), kOk);
  ASSERT_EQ(define_metric(1, gauge, &g), kOk);
  ASSERT_EQ(increment_metric(c, 3), kOk);
  ASSERT_EQ(record_metric(g, 5), kOk);
  // Another worker: its own instance (and ids), the same names.
  std::thread other([&] {
    Harness h;
    h.boot(runtime_);
    uint32_t c2 = 0, g2 = 0;
    ASSERT_EQ(h.define_metric(0, counter, &c2), kOk);
    ASSERT_EQ(h.define_metric(1, gauge, &g2), kOk);
    EXPECT_EQ(h.increment_metric(c2, 4), kOk);
    uint64_t v = 0;
    EXPECT_EQ(h.get_metric(g2, &v), kOk);
    EXPECT_EQ(v, 5u);                        // one process-wide gauge
    EXPECT_EQ(h.record_metric(g2, 7), kOk);  // the last set wins
  });
  other.join();
  uint64_t v = 0;
  EXPECT_EQ(get_metric(c, &v), kOk);
  EXPECT_EQ(v, 7u);  // counters add up across workers
  EXPECT_EQ(get_metric(g, &v), kOk);
  EXPECT_EQ(v, 7u);
  EXPECT_EQ(increment_metric(g, -2), kOk);  // and increments accumulate
  EXPECT_EQ(get_metric(g, &v), kOk);
  EXPECT_EQ(v, 5u);
}

// ---- shared data -----------------------------------------------------------------------------

TEST_P(WasmHostTest, SharedDataGetSetCas) {
  const std::string key = unique("k");
  std::string value;
  uint32_t cas = 0, cas2 = 0;
  EXPECT_EQ(get_shared(key, &value, &cas), kNotFound);
  EXPECT_EQ(word(kLen), kSentinel);  // nothing written
  EXPECT_EQ(set_shared(key, "one", 0), kOk);
  EXPECT_EQ(get_shared(key, &value, &cas), kOk);
  EXPECT_EQ(value, "one");
  EXPECT_NE(cas, 0u);
  EXPECT_EQ(set_shared(key, "stale", cas + 1), kCasMismatch);
  EXPECT_EQ(get_shared(key, &value, &cas2), kOk);
  EXPECT_EQ(value, "one");
  EXPECT_EQ(cas2, cas);
  EXPECT_EQ(set_shared(key, "two", cas), kOk);
  EXPECT_EQ(get_shared(key, &value, &cas2), kOk);
  EXPECT_EQ(value, "two");
  EXPECT_NE(cas2, cas);                                    // every write is a new version
  EXPECT_EQ(set_shared(key, "again", cas), kCasMismatch);  // the old cas is stale now
  EXPECT_EQ(set_shared(key, "three", 0), kOk);             // 0: unconditional
  EXPECT_EQ(get_shared(key, &value, nullptr), kOk);
  EXPECT_EQ(value, "three");
  // A missing key is created whatever the cas.
  const std::string other = unique("other");
  EXPECT_EQ(set_shared(other, "x", 12345), kOk);
  EXPECT_EQ(get_shared(other, &value, nullptr), kOk);
  EXPECT_EQ(value, "x");
  // Empty values and binary keys.
  const std::string binary_key = unique(std::string("a\0b", 3));
  EXPECT_EQ(set_shared(binary_key, "", 0), kOk);
  EXPECT_EQ(get_shared(binary_key, &value, &cas), kOk);
  EXPECT_EQ(value, "");
  EXPECT_EQ(word(kLen), 0u);
  EXPECT_EQ(get_shared(unique("a"), &value, nullptr), kNotFound);
}

TEST_P(WasmHostTest, SharedDataIsScopedByVmId) {
  const std::string key = unique("k");
  ASSERT_EQ(set_shared(key, "vm1 value", 0), kOk);
  for (const char* vm_id : {"vm1", "other-vm"}) {
    Harness h;
    h.boot(runtime_, true, vm_id);
    std::string value;
    if (std::string_view(vm_id) == "vm1") {
      EXPECT_EQ(h.get_shared(key, &value, nullptr), kOk);
      EXPECT_EQ(value, "vm1 value");
    } else {
      EXPECT_EQ(h.get_shared(key, &value, nullptr), kNotFound);
    }
  }
}

// Two workers add to one counter with get + CAS set, retrying on a mismatch: no update is lost.
TEST_P(WasmHostTest, SharedDataCasIncrementsFromTwoThreadsLoseNothing) {
  const std::string key = unique("counter");
  ASSERT_EQ(set_shared(key, "0", 0), kOk);
  constexpr int kPerThread = 500;
  std::atomic<int> mismatches{0};
  const auto add_many = [&](Harness& h) {
    for (int i = 0; i < kPerThread; ++i) {
      while (true) {
        std::string value;
        uint32_t cas = 0;
        ASSERT_EQ(h.get_shared(key, &value, &cas), kOk);
        const uint64_t r = h.set_shared(key, std::to_string(std::stoi(value) + 1), cas);
        if (r == kOk) break;
        ASSERT_EQ(r, kCasMismatch);
        ++mismatches;
      }
    }
  };
  std::thread other([&] {
    Harness h;
    h.boot(runtime_);
    add_many(h);
  });
  add_many(*this);
  other.join();
  std::string value;
  ASSERT_EQ(get_shared(key, &value, nullptr), kOk);
  EXPECT_EQ(value, std::to_string(2 * kPerThread));
  std::printf("(%d CAS mismatches retried)\n", mismatches.load());
}

// ---- shared queues ---------------------------------------------------------------------------

TEST_P(WasmHostTest, SharedQueueRoundTrip) {
  const std::string name = unique("q");
  uint32_t token = 0, again = 0, resolved = 0;
  ASSERT_EQ(register_queue(name, &token), kOk);
  EXPECT_NE(token, 0u);
  EXPECT_EQ(register_queue(name, &again, root_), kOk);
  EXPECT_EQ(again, token);
  EXPECT_EQ(resolve_queue("", name, &resolved), kOk);  // "" is the caller's vm_id
  EXPECT_EQ(resolved, token);
  EXPECT_EQ(resolve_queue("vm1", name, &resolved), kOk);
  EXPECT_EQ(resolved, token);
  EXPECT_EQ(resolve_queue("", unique("absent"), &resolved), kNotFound);
  EXPECT_EQ(resolve_queue("no-such-vm", name, &resolved), kNotFound);

  std::string value;
  EXPECT_EQ(dequeue(token, &value), kEmpty);
  clear_callback_log();
  EXPECT_EQ(enqueue(token, "first"), kOk);
  EXPECT_EQ(enqueue(token, ""), kOk);
  EXPECT_EQ(enqueue(token, "third"), kOk);
  EXPECT_EQ(callbacks_of(14), 0u);  // notified through the loop, never inside enqueue
  ASSERT_TRUE(run_until([&] { return callbacks_of(14) == 3; }));
  for (const auto& e : callback_log()) {
    if (e[0] == 14) {
      EXPECT_EQ(e, (std::array<uint32_t, 3>{14, root_->id(), token}));
    }
  }
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "first");
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "");
  EXPECT_EQ(word(kLen), 0u);
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "third");
  EXPECT_EQ(dequeue(token, &value), kEmpty);
}

TEST_P(WasmHostTest, SharedQueueUnknownTokens) {
  std::string value;
  for (uint32_t token : {0u, 0xffffffffu, 0x7fffffffu}) {
    EXPECT_EQ(enqueue(token, "x"), kNotFound) << token;
    EXPECT_EQ(dequeue(token, &value), kNotFound) << token;
  }
}

TEST_P(WasmHostTest, SharedQueueDropsTheOldestPastItsBound) {
  const std::string name = unique("bounded");
  uint32_t token = 0;
  ASSERT_EQ(register_queue(name, &token), kOk);
  const size_t bound = SharedQueue::kDefaultCapacity;
  for (size_t i = 0; i < bound + 5; ++i) ASSERT_EQ(enqueue(token, std::to_string(i)), kOk);
  std::shared_ptr<SharedQueue> q = find_shared_queue(token);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->size(), bound);
  EXPECT_EQ(q->dropped(), 5u);
  // Notifications are bounded too: one per entry the queue can hold.
  EXPECT_EQ(q->pending_notifications(), bound);
  ASSERT_TRUE(run_until([&] { return q->pending_notifications() == 0; }));
  bool counted = false;
  for (const auto& m : stats::Store::instance().snapshot()) {
    if (m.name->dotted == "wasm.shared_queue.vm1." + name + ".dropped") {
      counted = true;
      EXPECT_EQ(m.counter, 5u);
    }
  }
  EXPECT_TRUE(counted);
  std::string value;
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "5");  // 0..4 went
}

TEST_P(WasmHostTest, SharedQueueReRegistrationRetargetsNotifications) {
  const std::string name = unique("q");
  uint32_t token = 0, again = 0;
  ASSERT_EQ(register_queue(name, &token), kOk);
  PluginSpec second = spec_;
  second.name = "second";
  second.root_id = "second_root";
  auto root2 = w_->start_root(second);
  ASSERT_TRUE(root2.ok()) << root2.error();
  ASSERT_EQ(register_queue(name, &again, *root2), kOk);
  EXPECT_EQ(again, token);
  ASSERT_EQ(enqueue(token, "x"), kOk);
  clear_callback_log();
  ASSERT_TRUE(run_until([&] { return callbacks_of(14) == 1; }));
  EXPECT_EQ(callback_log().back(), (std::array<uint32_t, 3>{14, (*root2)->id(), token}));
  std::string value;
  EXPECT_EQ(dequeue(token, &value), kOk);  // the data stayed
  EXPECT_EQ(value, "x");
}

TEST_P(WasmHostTest, SharedQueueRegistrationWithoutALoopKeepsTheConsumer) {
  const std::string name = unique("q");
  uint32_t token = 0, again = 0;
  ASSERT_EQ(register_queue(name, &token), kOk);
  // A canary: another instance, on a thread without a loop, registers the same queue.
  std::thread canary([&] {
    Harness h;
    h.thread_loop_.reset();
    h.boot(runtime_);
    EXPECT_EQ(h.register_queue(name, &again), kOk);
  });
  canary.join();
  EXPECT_EQ(again, token);
  clear_callback_log();
  ASSERT_EQ(enqueue(token, "x"), kOk);
  ASSERT_TRUE(run_until([&] { return callbacks_of(14) == 1; }));  // still ours
  EXPECT_EQ(callback_log().back(), (std::array<uint32_t, 3>{14, root_->id(), token}));
}

TEST_P(WasmHostTest, SharedQueueOutlivesItsConsumer) {
  const std::string name = unique("q");
  uint32_t token = 0;
  {
    Harness consumer;               // another instance on this thread...
    consumer.thread_loop_.reset();  // ...using this test's loop
    consumer.boot(runtime_);
    ASSERT_EQ(consumer.register_queue(name, &token), kOk);
    // Posted while the consumer's instance exists, run after it is gone.
    ASSERT_EQ(enqueue(token, "posted"), kOk);
  }
  ASSERT_EQ(enqueue(token, "after"), kOk);  // nobody to notify: still Ok
  clear_callback_log();
  run_for(std::chrono::milliseconds(10));  // the posted notification finds no instance
  EXPECT_EQ(callbacks_of(14), 0u);
  std::string value;
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "posted");
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "after");
}

TEST_P(WasmHostTest, SharedQueueNoNotificationIntoAFailedConsumer) {
  const std::string name = unique("q");
  uint32_t token = 0;
  ASSERT_EQ(register_queue(name, &token), kOk);
  ASSERT_EQ(enqueue(token, "x"), kOk);
  clear_callback_log();
  w_->fail("failed by the test");
  run_for(std::chrono::milliseconds(10));
  EXPECT_EQ(callbacks_of(14), 0u);
}

// The consumer registered on another worker: its notifications run on that worker's thread.
TEST_P(WasmHostTest, SharedQueueNotifiesOnTheConsumersThread) {
  const std::string name = unique("q");
  std::atomic<uint32_t> token{0};
  std::atomic<bool> stop{false};
  std::atomic<size_t> notified{0};
  std::thread::id consumer_thread;
  std::thread consumer([&] {
    consumer_thread = std::this_thread::get_id();
    Harness h;  // its own instance and loop
    h.boot(runtime_);
    uint32_t t = 0;
    ASSERT_EQ(h.register_queue(name, &t), kOk);
    h.clear_callback_log();
    token = t;
    while (!stop) {
      h.run_for(std::chrono::milliseconds(2));
      notified = h.callbacks_of(14);
    }
  });
  ASSERT_TRUE(run_until([&] { return token != 0; }));
  uint32_t resolved = 0;
  ASSERT_EQ(resolve_queue("", name, &resolved), kOk);
  EXPECT_EQ(resolved, token);
  clear_callback_log();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(enqueue(resolved, "from the producer"), kOk);
  const bool delivered = run_until([&] { return notified == 20; });
  stop = true;
  consumer.join();
  EXPECT_TRUE(delivered) << notified;
  EXPECT_EQ(callbacks_of(14), 0u);  // none ran on the producer's thread
  EXPECT_NE(consumer_thread, std::this_thread::get_id());
}

// ---- foreign functions -----------------------------------------------------------------------

TEST_P(WasmHostTest, CompressAndUncompressRoundTrip) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += fmt::format("line {} of a compressible text\n", i % 7);
  std::string compressed, plain;
  ASSERT_EQ(foreign("compress", text, &compressed), kOk);
  EXPECT_LT(compressed.size(), text.size() / 4);
  EXPECT_EQ(static_cast<unsigned char>(compressed[0]), 0x78);  // a zlib stream
  ASSERT_EQ(foreign("uncompress", compressed, &plain), kOk);
  EXPECT_EQ(plain, text);
  // The empty input is a (short) valid stream.
  ASSERT_EQ(foreign("compress", "", &compressed), kOk);
  EXPECT_FALSE(compressed.empty());
  ASSERT_EQ(foreign("uncompress", compressed, &plain), kOk);
  EXPECT_EQ(plain, "");
  EXPECT_EQ(word(kLen), 0u);
}

TEST_P(WasmHostTest, ForeignFunctionErrors) {
  std::string out;
  EXPECT_EQ(foreign("no_such_function", "x", &out), kNotFound);
  EXPECT_EQ(foreign("", "", &out), kNotFound);
  EXPECT_EQ(foreign("uncompress", "not zlib at all", &out), kSerializationFailure);
  EXPECT_EQ(foreign("uncompress", "", &out), kSerializationFailure);
  std::string compressed;
  ASSERT_EQ(foreign("compress", std::string(5000, 'a'), &compressed), kOk);
  EXPECT_EQ(foreign("uncompress", compressed.substr(0, compressed.size() / 2), &out),
            kSerializationFailure);  // truncated
  EXPECT_EQ(foreign("uncompress", compressed + "trailing", &out), kSerializationFailure);
  EXPECT_EQ(word(kLen), kSentinel);  // no output on failure
}

TEST_P(WasmHostTest, ForeignFunctionResultCanBeDiscarded) {
  const std::string name = "compress", args(1000, 'z');
  put(kKey, name);
  put(kBuf, args);
  set_word(kLen, kSentinel);
  // ret_ptr_ptr 0: the result is not copied (nothing allocated), its size still written.
  EXPECT_EQ(call("probe_proxy_call_foreign_function",
                 {addr(kKey), name.size(), addr(kBuf), args.size(), 0, addr(kLen)}),
            kOk);
  EXPECT_GT(word(kLen), 0u);
  EXPECT_LT(word(kLen), 100u);
  EXPECT_EQ(call("probe_proxy_call_foreign_function",
                 {addr(kKey), name.size(), addr(kBuf), args.size(), 0, 0}),
            kOk);
  // A pointer wanted without a size: refused.
  EXPECT_EQ(call("probe_proxy_call_foreign_function",
                 {addr(kKey), name.size(), addr(kBuf), args.size(), addr(kPtr), 0}),
            kBadArgument);
}

// ---- Sluice's own functions (abi/sluice_functions.h) --------------------------------------

std::string u64_args(std::initializer_list<uint64_t> values) {
  std::string out;
  for (uint64_t v : values) {
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>(v >> (8 * b)));
  }
  return out;
}

std::string u32_args(std::initializer_list<uint32_t> values) {
  std::string out;
  for (uint32_t v : values) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}

// sluice_define_header_edits' arguments (sluice_functions.h).
struct EditArg {
  uint32_t op;
  std::string name, value;
};
std::string edit_set_args(uint32_t id, const std::vector<EditArg>& edits) {
  std::string out = u32_args({id, static_cast<uint32_t>(edits.size())});
  for (const EditArg& e : edits) {
    out += u32_args(
        {e.op, static_cast<uint32_t>(e.name.size()), static_cast<uint32_t>(e.value.size())});
  }
  for (const EditArg& e : edits) out += e.name + e.value;
  return out;
}

// Header edit sets: defined once, applied by the filter to a stream's response headers with no
// call into the module (WasmFilter::encode_headers calls apply_response_header_edits).
TEST_P(WasmHostTest, ResponseHeaderEditSetsApplyWithoutACall) {
  namespace sf = sluice_functions;
  const std::string define(sf::kDefineHeaderEdits), edit(sf::kEditResponseHeaders);
  std::string answer;
  ASSERT_EQ(foreign(define,
                    edit_set_args(0, {{sf::kHeaderReplace, "X-Peer", "me"},
                                      {sf::kHeaderAdd, "x-multi", "2"},
                                      {sf::kHeaderRemove, "server", ""},
                                      {sf::kHeaderReplace, "x-secret", "forged"}}),
                    &answer),
            kOk);
  ASSERT_EQ(answer, u32_args({1}));
  const uint32_t id = 1;

  // Malformed definitions change nothing.
  for (const std::string& bad :
       {edit_set_args(0, {{3, "x", "y"}}), edit_set_args(0, {{sf::kHeaderReplace, "", "y"}}),
        edit_set_args(0, {{sf::kHeaderReplace, "x", "a\r\nb"}}),
        edit_set_args(0, {{sf::kHeaderAdd, std::string("x\0y", 3), "v"}}),
        edit_set_args(0, {{sf::kHeaderRemove, "x", "not empty"}}), edit_set_args(9, {}),
        edit_set_args(0, std::vector<EditArg>(sf::kMaxHeaderEdits + 1, {sf::kHeaderAdd, "x", ""})),
        edit_set_args(0, {{sf::kHeaderAdd, "x", "y"}}) + "trailing",
        edit_set_args(0, {{sf::kHeaderAdd, "x", "y"}}).substr(0, 20), std::string("\0\0\0"),
        u32_args({0, 0xffffffff})}) {
    EXPECT_EQ(foreign(define, bad, nullptr), kBadArgument) << ::testing::PrintToString(bad);
  }

  // Asked for by a stream during its request callbacks, for a set that exists.
  ctx_->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(foreign(edit, u32_args({id, 0}), nullptr, root_), kBadArgument);
  EXPECT_EQ(foreign(edit, u32_args({2, 0}), nullptr), kBadArgument);
  EXPECT_EQ(foreign(edit, u32_args({id, 4}), nullptr), kBadArgument);  // no such flag
  EXPECT_EQ(
      foreign(edit,
              u32_args({id, sf::kSkipResponseHeadersCallback | sf::kCallResponseHeadersCallback}),
              nullptr),
      kBadArgument);  // skip and call
  EXPECT_EQ(foreign(edit, u32_args({id}), nullptr), kBadArgument);
  EXPECT_EQ(ctx_->response_header_edits, 0u);
  ASSERT_EQ(foreign(edit, u32_args({id, sf::kSkipResponseHeadersCallback}), nullptr), kOk);
  EXPECT_EQ(ctx_->response_header_edits, id);
  EXPECT_TRUE(ctx_->skip_response_headers_callback);

  // Applied in order, as the header-map calls would; a hidden header is left alone.
  spec_.hide.response_headers = {"x-secret"};
  spec_.hide.writes = stats::Store::instance().counter(
      stats::MetricName{"test.edit_sets.hidden_writes", "test.edit_sets.hidden_writes", {}});
  ASSERT_EQ(ctx_->plugin(), &spec_);
  const uint64_t hidden_writes = spec_.hide.writes.value();
  HeaderMap response;
  response.add(":status", "200");
  response.add("server", "nginx");
  response.add("x-multi", "1");
  response.add("x-peer", "other");
  response.add("x-secret", "real");
  apply_response_header_edits(*ctx_, response);
  EXPECT_EQ(response.get_or_empty("x-peer"), "me");
  EXPECT_EQ(response.count("x-peer"), 1u);
  EXPECT_EQ(response.count("x-multi"), 2u);
  EXPECT_FALSE(response.has("server"));
  EXPECT_EQ(response.get_or_empty("x-secret"), "real");
  EXPECT_EQ(spec_.hide.writes.value(), hidden_writes + 1);

  // A redefined set is what later responses get; a later request replaces the earlier one.
  ASSERT_EQ(foreign(define, edit_set_args(id, {{sf::kHeaderReplace, "x-peer", "again"}}), &answer),
            kOk);
  EXPECT_EQ(answer, u32_args({id}));
  ASSERT_EQ(foreign(edit, u32_args({id, 0}), nullptr), kOk);
  EXPECT_FALSE(ctx_->skip_response_headers_callback);
  apply_response_header_edits(*ctx_, response);
  EXPECT_EQ(response.get_or_empty("x-peer"), "again");
  ASSERT_EQ(foreign(edit, u32_args({0, sf::kSkipResponseHeadersCallback}), nullptr), kOk);
  EXPECT_EQ(ctx_->response_header_edits, 0u);  // no edits, the callback still skipped
  ASSERT_EQ(foreign(edit, u32_args({0, sf::kCallResponseHeadersCallback}), nullptr), kOk);
  EXPECT_FALSE(ctx_->skip_response_headers_callback);
  EXPECT_TRUE(ctx_->call_response_headers_callback);  // even if the root declined it

  // Too late once the response headers have passed.
  ctx_->set_phase(Phase::ResponseHeaders);
  EXPECT_EQ(foreign(edit, u32_args({id, 0}), nullptr), kBadArgument);

  // At most kMaxHeaderEditSets sets per VM.
  uint32_t defined = 1;
  while (foreign(define, edit_set_args(0, {}), nullptr) == kOk) ++defined;
  EXPECT_EQ(defined, sf::kMaxHeaderEditSets);
  EXPECT_FALSE(w_->failed());
}

// A module that exports sluice_retries_buffer_too_small gets property and header reads as
// leaf calls on V8 (HostFunction::leaf), which cannot call its malloc: a value that does not
// fit its return buffer is answered kBufferTooSmall with the size it needs.
class WasmHostLeafTest : public ::testing::Test, public Harness {};

TEST_F(WasmHostLeafTest, LeafReadsAnswerBufferTooSmall) {
  namespace sf = sluice_functions;
  boot(std::string(kV8RuntimeName), true, "vm1", "host_probe_retrying");
  std::string value;
  ASSERT_EQ(get_value(0, "x-custom", &value), sf::kBufferTooSmall);  // no buffer yet
  EXPECT_EQ(word(kPtr), 0u);
  EXPECT_EQ(word(kLen), 2u);  // "v1"
  ASSERT_EQ(get_property(std::string("request\0path", 12), &value), sf::kBufferTooSmall);
  EXPECT_EQ(word(kLen), 8u);  // "/foo?x=1"
  // Missing values and bad out-params answer as ever.
  EXPECT_EQ(get_value(0, "x-none", &value), kNotFound);
  put(kKey, "x-custom");
  EXPECT_EQ(
      call("probe_proxy_get_header_map_value", {0, addr(kKey), 8, vm().memory_size(), addr(kLen)}),
      kInvalidMemoryAccess);

  const uint64_t buffer = addr(0xC000);
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, 256}), nullptr), kOk);
  ASSERT_EQ(get_value(0, "x-custom", &value), kOk);
  EXPECT_EQ(value, "v1");
  EXPECT_EQ(word(kPtr), buffer);
  stream_.request.add("x-big", std::string(300, 'z'));
  ASSERT_EQ(get_value(0, "x-big", &value), sf::kBufferTooSmall);
  EXPECT_EQ(word(kLen), 300u);
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, 512}), nullptr), kOk);
  ASSERT_EQ(get_value(0, "x-big", &value), kOk);
  EXPECT_EQ(value, std::string(300, 'z'));
  // Foreign functions are leaves too: a result past the buffer is kBufferTooSmall with its size,
  // and the same call with a buffer that fits answers it.
  std::string text;
  for (int i = 0; i < 500; ++i) text += std::to_string(i * 7919 % 10007) + ",";
  std::string compressed;
  ASSERT_EQ(foreign("compress", text, &compressed), sf::kBufferTooSmall);
  const uint64_t needed = word(kLen);
  EXPECT_GT(needed, 512u);
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, needed}), nullptr), kOk);
  ASSERT_EQ(foreign("compress", text, &compressed), kOk);
  EXPECT_EQ(compressed.size(), needed);
  EXPECT_EQ(word(kPtr), buffer);
  std::string plain;
  ASSERT_EQ(foreign("uncompress", compressed, &plain), sf::kBufferTooSmall);
  EXPECT_EQ(word(kLen), text.size());
  EXPECT_FALSE(w_->failed());
}

// A foreign function whose answer a leaf call refused runs once: the host keeps the answer for
// the module's next call of it (same name and arguments) in the same callback. A module that
// does not ask again within the callback leaves nothing behind.
int g_counted_calls = 0;
WasmResult counted_foreign_function(std::string_view args, std::string* out) {
  ++g_counted_calls;
  out->assign(1000, args.empty() ? '-' : args[0]);
  return WasmResult::Ok;
}

TEST_F(WasmHostLeafTest, RefusedForeignAnswerIsKeptForTheCallAgain) {
  namespace sf = sluice_functions;
  register_foreign_function("test.counted", &counted_foreign_function);
  boot(std::string(kV8RuntimeName), true, "vm1", "host_probe_retrying");
  const uint64_t buffer = addr(0xC000);
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, 256}), nullptr), kOk);
  const std::string name = "test.counted", set_name(sf::kSetReturnBuffer);
  const std::string set_args = u64_args({buffer, 1024});
  put(kKey, name);
  put(kBuf, "q");
  put(kVal, set_name);
  put(kBlob, set_args);
  g_counted_calls = 0;
  ASSERT_EQ(call("probe_foreign_call_again",
                 {addr(kKey), name.size(), addr(kBuf), 1, addr(kPtr), addr(kLen), addr(kVal),
                  set_name.size(), addr(kBlob), set_args.size()}),
            kOk);
  EXPECT_EQ(g_counted_calls, 1);
  EXPECT_EQ(out(), std::string(1000, 'q'));
  EXPECT_EQ(word(kPtr), buffer);

  // Other arguments are a new call; a refusal not followed up in its callback is forgotten.
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, 256}), nullptr), kOk);
  std::string value;
  ASSERT_EQ(foreign(name, "r", &value), sf::kBufferTooSmall);
  EXPECT_EQ(g_counted_calls, 2);
  ASSERT_EQ(foreign(std::string(sf::kSetReturnBuffer), u64_args({buffer, 1024}), nullptr), kOk);
  ASSERT_EQ(foreign(name, "r", &value), kOk);
  EXPECT_EQ(g_counted_calls, 3);
  EXPECT_EQ(value, std::string(1000, 'r'));
  EXPECT_FALSE(w_->failed());
}

TEST_P(WasmHostTest, ReturnBufferTakesTheValuesThatFit) {
  namespace sf = sluice_functions;
  const std::string set(sf::kSetReturnBuffer);
  const uint64_t buffer = addr(0xC000);
  ASSERT_EQ(foreign(set, u64_args({buffer, 256}), nullptr), kOk);
  EXPECT_EQ(w_->return_buffer_size(), 256u);
  std::string value;
  ASSERT_EQ(get_value(0, "x-custom", &value), kOk);
  EXPECT_EQ(value, "v1");
  EXPECT_EQ(word(kPtr), buffer);  // written there: no malloc
  ASSERT_EQ(get_property(std::string("request\0path", 12), &value), kOk);
  EXPECT_EQ(value, "/foo?x=1");
  EXPECT_EQ(word(kPtr), buffer);
  // Too big for it: through malloc, as without a buffer.
  stream_.request.add("x-big", std::string(300, 'z'));
  ASSERT_EQ(get_value(0, "x-big", &value), kOk);
  EXPECT_EQ(value, std::string(300, 'z'));
  EXPECT_NE(word(kPtr), buffer);

  // Refused: sizes out of bounds, the wrong argument layout, a buffer outside memory.
  EXPECT_EQ(foreign(set, u64_args({buffer, sf::kMinReturnBuffer - 1}), nullptr), kBadArgument);
  EXPECT_EQ(foreign(set, u64_args({buffer}), nullptr), kBadArgument);
  EXPECT_EQ(foreign(set, u64_args({buffer, 256, 0}), nullptr), kBadArgument);
  EXPECT_EQ(foreign(set, u64_args({0, 256}), nullptr), kInvalidMemoryAccess);
  if (!null_) {  // the null runtime's memory is the process's: no bounds to check
    EXPECT_EQ(foreign(set, u64_args({vm().memory_size() - 100, 256}), nullptr),
              kInvalidMemoryAccess);
  }
  EXPECT_EQ(w_->return_buffer_size(), 256u);  // a refusal keeps the buffer there was
  if (!null_) {                               // a bad out-param: refused before anything changes
    const std::string other = u64_args({addr(0xD000), 512});
    put(kKey, set);
    put(kBuf, other);
    EXPECT_EQ(
        call("probe_proxy_call_foreign_function", {addr(kKey), set.size(), addr(kBuf), other.size(),
                                                   vm().memory_size() + 8, addr(kLen)}),
        kInvalidMemoryAccess);
    EXPECT_EQ(w_->return_buffer_size(), 256u);
  }

  // Size 0 stops it.
  ASSERT_EQ(foreign(set, u64_args({0, 0}), nullptr), kOk);
  ASSERT_EQ(get_value(0, "x-custom", &value), kOk);
  EXPECT_EQ(value, "v1");
  EXPECT_NE(word(kPtr), buffer);
}

TEST_P(WasmHostTest, DeclinedStreamCallbacksAreSkipped) {
  namespace sf = sluice_functions;
  const std::string decline(sf::kDeclineStreamCallbacks);
  // Only a root decides, for its streams.
  EXPECT_EQ(foreign(decline, u64_args({sf::kLog}), nullptr), kBadArgument);
  EXPECT_TRUE(ctx_->stream_callbacks().on_log);
  EXPECT_EQ(foreign(decline, u64_args({sf::kLog | (1u << 20)}), nullptr, root_), kBadArgument);
  EXPECT_EQ(foreign(decline, "", nullptr, root_), kBadArgument);

  ASSERT_EQ(foreign(decline, u64_args({sf::kLog | sf::kDone | sf::kResponseBody}), nullptr, root_),
            kOk);
  EXPECT_FALSE(ctx_->stream_callbacks().on_log);
  EXPECT_FALSE(ctx_->stream_callbacks().on_done);
  EXPECT_FALSE(ctx_->stream_callbacks().on_response_body);
  EXPECT_TRUE(ctx_->stream_callbacks().on_request_headers);
  EXPECT_TRUE(w_->callbacks().on_log);  // the instance's own table is untouched

  // Teardown skips on_log and on_done; on_delete (the module frees the context) still runs.
  clear_callback_log();
  const uint32_t id = ctx_->id();
  w_->destroy_stream_context(ctx_, true);
  ctx_ = nullptr;
  EXPECT_EQ(callbacks_of(5), 0u);  // on_log
  EXPECT_EQ(callbacks_of(4), 0u);  // on_done
  ASSERT_EQ(callback_log().size(), 1u);
  EXPECT_EQ(callback_log()[0], (std::array<uint32_t, 3>{6, id, 0}));  // on_delete

  // 0 gives them all back.
  ASSERT_EQ(foreign(decline, u64_args({0}), nullptr, root_), kOk);
  Context* s = w_->create_stream_context(*root_);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->stream_callbacks().on_log);
  clear_callback_log();
  w_->destroy_stream_context(s, true);
  EXPECT_EQ(callbacks_of(5), 1u);
  EXPECT_EQ(callbacks_of(4), 1u);
}

// sluice_get_properties' wire format (sluice_functions.h).
std::string batch_request(const std::vector<std::string>& paths) {
  std::string out;
  const auto put_u32 = [&](uint32_t v) {
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>(v >> (8 * b)));
  };
  put_u32(static_cast<uint32_t>(paths.size()));
  for (const std::string& p : paths) put_u32(static_cast<uint32_t>(p.size()));
  for (const std::string& p : paths) out += p;
  return out;
}

// nullopt for kNoProperty; the whole answer must be consumed.
std::vector<std::optional<std::string>> batch_values(std::string_view result, size_t n) {
  std::vector<std::optional<std::string>> values;
  size_t at = 4 * n;
  EXPECT_GE(result.size(), at);
  for (size_t i = 0; i < n && result.size() >= 4 * n; ++i) {
    uint32_t size = 0;
    for (int b = 0; b < 4; ++b) size |= uint32_t(uint8_t(result[4 * i + b])) << (8 * b);
    if (size == sluice_functions::kNoProperty) {
      values.emplace_back();
      continue;
    }
    values.emplace_back(std::string(result.substr(at, size)));
    at += size;
  }
  EXPECT_EQ(at, result.size());
  return values;
}

// A batch answers each path exactly as proxy_get_property does: values, missing ones, ints.
TEST_P(WasmHostTest, BatchedPropertiesMatchSingleReads) {
  const std::string get(sluice_functions::kGetProperties);
  const std::vector<std::string> paths = {std::string("request\0path", 12),
                                          std::string("request\0method", 14),
                                          std::string("response\0code", 13),
                                          std::string("xds\0cluster_name", 16),
                                          std::string("connection\0mtls", 15),
                                          std::string("no\0such\0thing", 13),
                                          std::string("request\0headers\0x-custom", 24),
                                          "plugin_name",
                                          std::string("connection\0uri_san_peer_certificate", 35),
                                          std::string("request\0total_size", 18)};
  std::string result;
  ASSERT_EQ(foreign(get, batch_request(paths), &result), kOk);
  const auto values = batch_values(result, paths.size());
  ASSERT_EQ(values.size(), paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    std::string single;
    const uint64_t status = get_property(paths[i], &single);
    SCOPED_TRACE(paths[i]);
    if (status == kOk) {
      ASSERT_TRUE(values[i].has_value());
      EXPECT_EQ(*values[i], single);
    } else {
      EXPECT_FALSE(values[i].has_value()) << status;
    }
  }
  EXPECT_EQ(values[0], "/foo?x=1");
  EXPECT_FALSE(values[5].has_value());
  EXPECT_EQ(values[6], "v1");
  // No paths: an empty answer.
  ASSERT_EQ(foreign(get, batch_request({}), &result), kOk);
  EXPECT_EQ(result, "");
  // A root context has no stream: stream properties are missing, identity ones are there.
  ASSERT_EQ(foreign(get, batch_request({std::string("request\0path", 12), "plugin_root_id"}),
                    &result, root_),
            kOk);
  const auto root_values = batch_values(result, 2);
  EXPECT_FALSE(root_values[0].has_value());
  EXPECT_TRUE(root_values[1].has_value());
}

TEST_P(WasmHostTest, MalformedBatchedPropertyRequestsAreRefused) {
  const std::string get(sluice_functions::kGetProperties);
  std::string out = "untouched";
  const std::string good = batch_request({std::string("request\0path", 12), "plugin_name"});
  EXPECT_EQ(foreign(get, "", &out), kBadArgument);                               // no count
  EXPECT_EQ(foreign(get, good.substr(0, 3), &out), kBadArgument);                // a short count
  EXPECT_EQ(foreign(get, good.substr(0, 8), &out), kBadArgument);                // sizes cut off
  EXPECT_EQ(foreign(get, good.substr(0, good.size() - 1), &out), kBadArgument);  // a short path
  EXPECT_EQ(foreign(get, good + "x", &out), kBadArgument);  // bytes past the last path
  std::string huge_count = good;
  huge_count[3] = '\x7f';  // 2^30 paths: more than the sizes that follow, and than allowed
  EXPECT_EQ(foreign(get, huge_count, &out), kBadArgument);
  std::vector<std::string> too_many(sluice_functions::kMaxBatchedProperties + 1, "plugin_name");
  EXPECT_EQ(foreign(get, batch_request(too_many), &out), kBadArgument);
  too_many.pop_back();
  std::string result;
  ASSERT_EQ(foreign(get, batch_request(too_many), &result), kOk);
  EXPECT_EQ(batch_values(result, too_many.size()).size(), too_many.size());
  EXPECT_EQ(out, "untouched");
}

// Sluice's fused exports: an HTTP stream's deferred on_context_create goes with its
// on_request_headers (sluice_on_stream_start), and on_log with on_delete when on_done is not
// called (sluice_on_stream_end). The module sees the same events in the same order, whatever
// callback reaches a deferred stream first.
TEST_P(WasmHostTest, FusedExportsCarryTheSameEventsInFewerCalls) {
  namespace sf = sluice_functions;
  using Log = std::vector<std::array<uint32_t, 3>>;
  ASSERT_TRUE(w_->callbacks().on_stream_start);
  ASSERT_TRUE(w_->callbacks().on_stream_end);
  const uint32_t root = root_->id();

  // Deferred: nothing reaches the module until the request headers, then one call does both.
  clear_callback_log();
  Context* s = w_->create_stream_context(*root_, /*defer_create=*/true);
  ASSERT_NE(s, nullptr);
  const uint32_t id = s->id();
  EXPECT_TRUE(s->create_deferred);
  EXPECT_TRUE(callback_log().empty());
  s->set_phase(Phase::RequestHeaders);
  EXPECT_EQ(w_->start_stream(s, 3, true), std::optional<uint64_t>(0));
  EXPECT_EQ(callback_log(), (Log{{15, id, root}, {1, id, root}, {7, id, 3}}));
  EXPECT_FALSE(s->create_deferred);
  // A second start_stream (no longer deferred) is on_request_headers alone.
  clear_callback_log();
  EXPECT_EQ(w_->start_stream(s, 4, false), std::optional<uint64_t>(0));
  EXPECT_EQ(callback_log(), (Log{{7, id, 4}}));
  // on_done is exported and wanted: teardown makes the three calls.
  clear_callback_log();
  w_->destroy_stream_context(s, true);
  EXPECT_EQ(callback_log(), (Log{{5, id, 0}, {4, id, 0}, {6, id, 0}}));

  // With on_done declined, on_log and on_delete go in one call; unlogged, on_delete alone.
  ASSERT_EQ(
      foreign(std::string(sf::kDeclineStreamCallbacks), u64_args({sf::kDone}), nullptr, root_),
      kOk);
  Context* logged = w_->create_stream_context(*root_);
  ASSERT_NE(logged, nullptr);
  clear_callback_log();
  const uint32_t logged_id = logged->id();
  w_->destroy_stream_context(logged, true);
  EXPECT_EQ(callback_log(), (Log{{16, logged_id, 0}, {5, logged_id, 0}, {6, logged_id, 0}}));
  Context* unlogged = w_->create_stream_context(*root_);
  ASSERT_NE(unlogged, nullptr);
  clear_callback_log();
  const uint32_t unlogged_id = unlogged->id();
  w_->destroy_stream_context(unlogged, false);
  EXPECT_EQ(callback_log(), (Log{{6, unlogged_id, 0}}));

  // A deferred stream whose first callback is another one (a local reply from an earlier filter
  // answers before its request headers): on_context_create first, in phase None, then that one.
  clear_callback_log();
  Context* early = w_->create_stream_context(*root_, true);
  ASSERT_NE(early, nullptr);
  const uint32_t early_id = early->id();
  early->set_phase(Phase::ResponseHeaders);
  w_->call(early, early->stream_callbacks().on_response_headers, {early_id, 2, 1});
  EXPECT_EQ(callback_log(), (Log{{1, early_id, root}, {9, early_id, 2}}));
  EXPECT_EQ(early->phase(), Phase::ResponseHeaders);
  w_->destroy_stream_context(early, true);
  // One that no callback reached before it ended still gets created, then logged and deleted.
  Context* unseen = w_->create_stream_context(*root_, true);
  ASSERT_NE(unseen, nullptr);
  const uint32_t unseen_id = unseen->id();
  clear_callback_log();
  w_->destroy_stream_context(unseen, true);
  EXPECT_EQ(callback_log(),
            (Log{{1, unseen_id, root}, {16, unseen_id, 0}, {5, unseen_id, 0}, {6, unseen_id, 0}}));

  // Streams of a root that declined on_request_headers are not deferred (the fused start would
  // run it); nor are streams created without the flag (TCP connections).
  ASSERT_EQ(foreign(std::string(sf::kDeclineStreamCallbacks),
                    u64_args({sf::kDone | sf::kRequestHeaders}), nullptr, root_),
            kOk);
  clear_callback_log();
  Context* plain = w_->create_stream_context(*root_, true);
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->create_deferred);
  EXPECT_EQ(callback_log(), (Log{{1, plain->id(), root}}));
  w_->destroy_stream_context(plain, true);
  ASSERT_EQ(foreign(std::string(sf::kDeclineStreamCallbacks), u64_args({0}), nullptr, root_), kOk);
  Context* tcp = w_->create_stream_context(*root_);
  ASSERT_NE(tcp, nullptr);
  EXPECT_FALSE(tcp->create_deferred);
  w_->destroy_stream_context(tcp, true);
}

// sluice_set_delete_mailbox with kDeferDelete: streams that end leave their on_delete for one
// call per loop turn (sluice_on_delete_batch), at most a mailbox full each, oldest first; their
// on_log and on_done stay at their end. A root's teardown delivers what waits first.
TEST_P(WasmHostTest, DeferredDeletesGoInBatchesOncePerLoopTurn) {
  namespace sf = sluice_functions;
  using Log = std::vector<std::array<uint32_t, 3>>;
  ASSERT_TRUE(w_->callbacks().on_delete_batch);
  const std::string set(sf::kSetDeleteMailbox), decline(sf::kDeclineStreamCallbacks);
  const uint64_t mailbox = state_ + 0x1e00;
  EXPECT_EQ(foreign(set, u64_args({mailbox, sf::kMaxDeleteMailbox + 1}), nullptr), kBadArgument);
  EXPECT_EQ(foreign(set, u64_args({0, 2}), nullptr), kInvalidMemoryAccess);
  if (!null_) {
    EXPECT_EQ(foreign(set, u64_args({vm().memory_size() - 4, 2}), nullptr), kInvalidMemoryAccess);
  }
  EXPECT_EQ(foreign(set, u64_args({mailbox}), nullptr), kBadArgument);  // one argument
  ASSERT_EQ(foreign(set, u64_args({mailbox, 2}), nullptr), kOk);        // two ids a call
  // A new stream under the root, ended (the callback log cleared first); its id, 0 if none.
  const auto end_new_stream = [&](bool log) -> uint32_t {
    Context* c = w_->create_stream_context(*root_);
    if (c == nullptr) {
      ADD_FAILURE() << "no stream context";
      return 0;
    }
    const uint32_t ended = c->id();
    clear_callback_log();
    w_->destroy_stream_context(c, log);
    return ended;
  };

  // The root has not set kDeferDelete: on_delete at the stream's end.
  w_->destroy_stream_context(ctx_, false);
  ctx_ = nullptr;
  uint32_t id = end_new_stream(false);
  EXPECT_EQ(callback_log(), (Log{{4, id, 0}, {6, id, 0}}));

  ASSERT_EQ(foreign(decline, u64_args({sf::kDeferDelete}), nullptr, root_), kOk);
  if (null_) {  // a call into a null plugin costs less than deferring it: nothing is deferred
    id = end_new_stream(false);
    EXPECT_EQ(callback_log(), (Log{{4, id, 0}, {6, id, 0}}));
    EXPECT_EQ(w_->deferred_deletes(), 0u);
    return;
  }
  // Three streams end in one turn: on_log and on_done at once, the deletes when the loop runs.
  std::vector<uint32_t> ids;  // on_done comes for these (the root does not decline it)
  for (int i = 0; i < 3; ++i) {
    ids.push_back(end_new_stream(true));
    EXPECT_EQ(callback_log(), (Log{{5, ids.back(), 0}, {4, ids.back(), 0}}));
    EXPECT_EQ(w_->find_context(ids.back()), nullptr);  // gone from the host at once
  }
  EXPECT_EQ(w_->deferred_deletes(), 3u);
  clear_callback_log();
  run_for(std::chrono::milliseconds(5));
  EXPECT_EQ(callback_log(),
            (Log{{17, 2, 0}, {6, ids[0], 0}, {6, ids[1], 0}, {17, 1, 0}, {6, ids[2], 0}}));
  EXPECT_EQ(w_->deferred_deletes(), 0u);

  // Withdrawn after a stream ended: that one is deleted on its own at the flush.
  id = end_new_stream(false);
  ASSERT_EQ(foreign(set, u64_args({0, 0}), nullptr, root_), kOk);
  clear_callback_log();
  run_for(std::chrono::milliseconds(5));
  EXPECT_EQ(callback_log(), (Log{{6, id, 0}}));
  // And without a mailbox nothing is deferred.
  id = end_new_stream(false);
  EXPECT_EQ(callback_log(), (Log{{4, id, 0}, {6, id, 0}}));

  // A stream created while this thread has no loop (where a canary runs) is deleted at once.
  ASSERT_EQ(foreign(set, u64_args({mailbox, 2}), nullptr, root_), kOk);
  thread_loop_.reset();
  id = end_new_stream(false);
  EXPECT_EQ(callback_log(), (Log{{4, id, 0}, {6, id, 0}}));
  thread_loop_.emplace(io_);

  // The root's teardown: the waiting delete first, then the root's on_done and on_delete.
  id = end_new_stream(false);
  const uint32_t root = root_->id();
  clear_callback_log();
  w_->destroy_root(root_);
  root_ = nullptr;
  EXPECT_EQ(callback_log(), (Log{{17, 1, 0}, {6, id, 0}, {4, root, 0}, {6, root, 0}}));
  run_for(std::chrono::milliseconds(5));  // the posted flush finds nothing
  EXPECT_EQ(callback_log().size(), 4u);
  EXPECT_FALSE(w_->failed());
}

// A failed instance is never called again: what waits is dropped.
TEST_P(WasmHostTest, DeferredDeletesOfAFailedInstanceAreDropped) {
  namespace sf = sluice_functions;
  ASSERT_EQ(foreign(std::string(sf::kSetDeleteMailbox), u64_args({state_ + 0x1e00, 4}), nullptr),
            kOk);
  ASSERT_EQ(foreign(std::string(sf::kDeclineStreamCallbacks), u64_args({sf::kDeferDelete}), nullptr,
                    root_),
            kOk);
  w_->destroy_stream_context(ctx_, false);
  ctx_ = nullptr;
  EXPECT_EQ(w_->deferred_deletes(), null_ ? 0u : 1u);
  w_->fail("failed by the test");
  clear_callback_log();
  run_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(callback_log().empty());
}

TEST_P(WasmHostTest, LifecycleOrderAndIds) {
  const uint32_t root = root_->id(), s1 = ctx_->id();
  auto log = callback_log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0], (std::array<uint32_t, 3>{1, root, 0}));   // on_context_create(root, 0)
  EXPECT_EQ(log[1], (std::array<uint32_t, 3>{2, root, 9}));   // on_vm_start(root, |vm-config|)
  EXPECT_EQ(log[2], (std::array<uint32_t, 3>{3, root, 13}));  // on_configure(root, |plugin-config|)
  EXPECT_EQ(log[3], (std::array<uint32_t, 3>{1, s1, root}));  // stream on_context_create
  Context* s2 = w_->create_stream_context(*root_);
  ASSERT_NE(s2, nullptr);
  EXPECT_GT(s1, root);
  EXPECT_GT(s2->id(), s1);
  const uint32_t s2id = s2->id();
  clear_callback_log();
  w_->destroy_stream_context(ctx_, true);
  ctx_ = nullptr;
  log = callback_log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0][0], 5u);  // on_log, on_done, on_delete: Envoy's order for HTTP streams
  EXPECT_EQ(log[1][0], 4u);
  EXPECT_EQ(log[2][0], 6u);
  for (const auto& e : log) EXPECT_EQ(e[1], s1);
  EXPECT_EQ(w_->find_context(s1), nullptr);
  clear_callback_log();
  w_->destroy_stream_context(s2, false);  // without a log
  log = callback_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], (std::array<uint32_t, 3>{4, s2id, 0}));
  EXPECT_EQ(log[1], (std::array<uint32_t, 3>{6, s2id, 0}));
  // Ids are never reused.
  Context* s3 = w_->create_stream_context(*root_);
  ASSERT_NE(s3, nullptr);
  EXPECT_GT(s3->id(), s2id);
  clear_callback_log();
  w_->destroy_stream_context(s3, false);
  w_->destroy_root(root_);
  root_ = nullptr;
  log = callback_log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2], (std::array<uint32_t, 3>{4, root, 0}));
  EXPECT_EQ(log[3], (std::array<uint32_t, 3>{6, root, 0}));
}

TEST_P(WasmHostTest, StreamCallbacksGetTheirArguments) {
  clear_callback_log();
  ctx_->set_phase(Phase::RequestHeaders);
  auto r = w_->call(ctx_, w_->callbacks().on_request_headers, {ctx_->id(), 6, 1});
  EXPECT_EQ(r.value_or(UINT64_MAX), 0u);
  auto log = callback_log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], (std::array<uint32_t, 3>{7, ctx_->id(), 6}));
}

class WasmHostStartTest : public ::testing::TestWithParam<std::string>, public Harness {};
INSTANTIATE_TEST_SUITE_P(WasmHostRuntimes, WasmHostStartTest,
                         ::testing::Values(std::string(kV8RuntimeName),
                                           std::string(kNullRuntimeName)),
                         [](const auto& info) {
                           return info.param == kV8RuntimeName ? std::string("v8")
                                                               : std::string("null");
                         });

TEST_P(WasmHostStartTest, OnVmStartFalseFailsStart) {
  ASSERT_NO_FATAL_FAILURE(boot(GetParam(), false));
  ASSERT_TRUE(vm().write(state_ + 0x00, std::string("\1\0\0\0", 4)));
  auto root = w_->start_root(spec_);
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.error(), HasSubstr("proxy_on_vm_start returned false"));
  // on_configure was not called.
  for (const auto& e : callback_log()) EXPECT_NE(e[0], 3u);
}

TEST_P(WasmHostStartTest, OnConfigureFalseFailsStart) {
  ASSERT_NO_FATAL_FAILURE(boot(GetParam(), false));
  ASSERT_TRUE(vm().write(state_ + 0x08, std::string("\1\0\0\0", 4)));
  auto root = w_->start_root(spec_);
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.error(), HasSubstr("proxy_on_configure returned false"));
}

// ---- V8 only: hostile pointers, WASI, restricted phases, module shapes -----------------------

class WasmHostV8Test : public ::testing::Test, public Harness {
 protected:
  void SetUp() override { boot(std::string(kV8RuntimeName)); }
  static constexpr uint64_t kMem = 4 * 65536;   // the probe's memory size
  static constexpr uint64_t kFar = 0x7fff0000;  // far outside memory
};

TEST_F(WasmHostV8Test, HostileGrpcPointers) {
  EXPECT_EQ(call("probe_proxy_grpc_call", {kFar, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3020}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_grpc_call", {0x4000, 4, 0, 0, 0, 0, 0, 0, kMem - 2, 4, 0, 0x3020}),
            kInvalidMemoryAccess);  // the message runs past the end
  EXPECT_EQ(call("probe_proxy_grpc_stream", {0x4000, 4, 0, 0, 0, 0, 0, 0, kFar}),
            kInvalidMemoryAccess);  // the token's out-param
  EXPECT_EQ(call("probe_proxy_grpc_send", {6, kFar, 4, 0}), kInvalidMemoryAccess);
}

TEST_F(WasmHostV8Test, HostileLogPointers) {
  EXPECT_EQ(vm().memory_size(), kMem);
  EXPECT_EQ(call("probe_proxy_log", {2, kFar, 4}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_log", {2, 0xfffffff0, 0x20}), kInvalidMemoryAccess);  // wraps 2^32
  EXPECT_EQ(call("probe_proxy_log", {2, 0, 0xffffffff}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_log", {2, kMem - 1, 2}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_log", {2, kMem - 1, 1}), kOk);  // the last byte
  EXPECT_EQ(call("probe_proxy_log", {2, kMem, 0}), kOk);      // empty, at the end
  EXPECT_EQ(call("probe_proxy_log", {6, kFar, 4}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_log_level", {kMem - 2}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_current_time_nanoseconds", {kMem - 4}), kInvalidMemoryAccess);
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostilePropertyPointers) {
  put(kKey, "plugin_name");
  EXPECT_EQ(call("probe_proxy_get_property", {kFar, 11, kPtr, kLen}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_property", {kKey, 0xffffffff, kPtr, kLen}), kInvalidMemoryAccess);
  // A bad out-param: InvalidMemoryAccess, and the good one is left alone.
  clear_out();
  EXPECT_EQ(call("probe_proxy_get_property", {kKey, 11, kPtr, kMem - 2}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(call("probe_proxy_get_property", {kKey, 11, kFar, kLen}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kLen), kSentinel);
  // Same for an empty result (0/0 without allocating).
  EXPECT_EQ(set_property("empty", ""), kOk);
  put(kKey, "empty");
  EXPECT_EQ(call("probe_proxy_get_property", {kKey, 5, kPtr, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  put(kKey, "k");
  EXPECT_EQ(call("probe_proxy_set_property", {kKey, 1, kFar, 1}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_set_property", {kFar, 1, kKey, 1}), kInvalidMemoryAccess);
  std::string v;
  EXPECT_EQ(get_property("k", &v), kNotFound);  // nothing stored
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileHeaderMapPointers) {
  ctx_->set_phase(Phase::RequestHeaders);
  const size_t before = stream_.request.size();
  put(kKey, "x-custom");
  clear_out();
  EXPECT_EQ(call("probe_proxy_get_header_map_value", {0, kFar, 8, kPtr, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_header_map_value", {0, 0xfffffff8, 0x10, kPtr, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_header_map_value", {0, kKey, 8, kPtr, kMem}),
            kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);  // nothing written
  EXPECT_EQ(call("probe_proxy_get_header_map_value", {0, kKey, 8, 0xfffffffe, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(word(kLen), kSentinel);
  EXPECT_EQ(call("probe_proxy_get_header_map_pairs", {0, kPtr, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(call("probe_proxy_get_header_map_pairs", {1, kFar, kLen}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_header_map_size", {0, kMem - 3}), kInvalidMemoryAccess);
  put(kVal, "v");
  EXPECT_EQ(call("probe_proxy_add_header_map_value", {0, kKey, 8, kFar, 1}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_add_header_map_value", {0, kKey, 0xffffffff, kVal, 1}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_replace_header_map_value", {0, kFar, 8, kVal, 1}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_remove_header_map_value", {0, kFar, 8}), kInvalidMemoryAccess);
  // A blob out of bounds is not "malformed": the map is not cleared.
  EXPECT_EQ(call("probe_proxy_set_header_map_pairs", {0, kFar, 16}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_set_header_map_pairs", {0, 0xfffffff0, 0x20}), kInvalidMemoryAccess);
  EXPECT_EQ(stream_.request.size(), before);
  EXPECT_EQ(stream_.request.get_or_empty("x-custom"), "v1");
  EXPECT_EQ(stream_.route_cache_clears, 0);
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileBufferPointers) {
  stream_.request_body_bytes = "hello";
  clear_out();
  EXPECT_EQ(call("probe_proxy_get_buffer_bytes", {0, 0, 5, kPtr, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  set_word(kAux, kSentinel);
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {0, kPtr, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);  // the size was not written either
  EXPECT_EQ(call("probe_proxy_get_buffer_status", {0, kFar, kAux}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kAux), kSentinel);
  EXPECT_EQ(call("probe_proxy_set_buffer_bytes", {0, 0, 0, kFar, 4}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_set_buffer_bytes", {0, 0, 0, 0, 0xffffffff}), kInvalidMemoryAccess);
  EXPECT_EQ(*stream_.request_body_bytes, "hello");
  // A result larger than the module can allocate: its malloc answers 0.
  stream_.request_body_bytes = std::string(0x30000, 'x');
  EXPECT_EQ(call("probe_proxy_get_buffer_bytes", {0, 0, 0x30000, kPtr, kLen}),
            kInvalidMemoryAccess);
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileLocalResponseAndStatusPointers) {
  const std::string blob = pairs_blob({{"a", "b"}});
  put(kBlob, blob);
  EXPECT_EQ(call("probe_proxy_send_local_response", {403, kFar, 4, 0, 0, 0, 0, 0}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_send_local_response", {403, 0, 0, kFar, 4, 0, 0, 0}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_send_local_response", {403, 0, 0, 0, 0, kBlob, 0xffffffff, 0}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_send_local_response", {403, 0, 0, 0, 0, 0xfffffff0, 0x20, 0}),
            kInvalidMemoryAccess);
  EXPECT_FALSE(ctx_->local_response);
  root_->status_code = 11;
  root_->status_message = "reset";
  set_word(kAux, kSentinel);
  clear_out();
  EXPECT_EQ(call("probe_proxy_get_status", {kAux, kPtr, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(word(kAux), kSentinel);  // the code was not written
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(call("probe_proxy_get_status", {kFar, kPtr, kLen}), kInvalidMemoryAccess);
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileMetricPointers) {
  const std::string name = unique("m");
  put(kKey, name);
  EXPECT_EQ(call("probe_proxy_define_metric", {0, kFar, 4, kAux}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_define_metric", {0, 0xfffffff0, 0x20, kAux}), kInvalidMemoryAccess);
  // A bad out-param defines nothing: the next counter still gets the first id.
  EXPECT_EQ(call("probe_proxy_define_metric", {0, kKey, name.size(), kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_define_metric", {0, kKey, name.size(), kMem - 2}),
            kInvalidMemoryAccess);
  uint32_t id = 0;
  ASSERT_EQ(define_metric(0, unique("other"), &id), kOk);
  EXPECT_EQ(id, 4u);
  ASSERT_EQ(increment_metric(id, 3), kOk);
  EXPECT_EQ(call("probe_proxy_get_metric", {id, kFar}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_metric", {id, kMem - 4}), kInvalidMemoryAccess);  // u64
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileSharedDataPointers) {
  const std::string key = unique("k");
  ASSERT_EQ(set_shared(key, "value", 0), kOk);
  put(kKey, key);
  put(kVal, "new");
  EXPECT_EQ(call("probe_proxy_set_shared_data", {kFar, 4, kVal, 3, 0}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_set_shared_data", {kKey, key.size(), kFar, 3, 0}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_set_shared_data", {kKey, key.size(), kVal, 0xffffffff, 0}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_shared_data", {kFar, 4, kPtr, kLen, kAux}), kInvalidMemoryAccess);
  clear_out();
  set_word(kAux, kSentinel);
  // Any bad out-param: nothing allocated, nothing written.
  EXPECT_EQ(call("probe_proxy_get_shared_data", {kKey, key.size(), kPtr, kLen, kFar}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_shared_data", {kKey, key.size(), kFar, kLen, kAux}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_get_shared_data", {kKey, key.size(), kPtr, kMem - 2, kAux}),
            kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(word(kLen), kSentinel);
  EXPECT_EQ(word(kAux), kSentinel);
  std::string value;
  EXPECT_EQ(get_shared(key, &value, nullptr), kOk);
  EXPECT_EQ(value, "value");  // the refused writes changed nothing
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileSharedQueuePointers) {
  const std::string name = unique("q");
  put(kKey, name);
  EXPECT_EQ(call("probe_proxy_register_shared_queue", {kFar, 4, kAux}), kInvalidMemoryAccess);
  // A bad out-param registers nothing.
  EXPECT_EQ(call("probe_proxy_register_shared_queue", {kKey, name.size(), kFar}),
            kInvalidMemoryAccess);
  uint32_t token = 0;
  EXPECT_EQ(resolve_queue("", name, &token), kNotFound);
  ASSERT_EQ(register_queue(name, &token), kOk);
  put(kKey, "vm1");
  put(kVal, name);
  EXPECT_EQ(call("probe_proxy_resolve_shared_queue", {kFar, 3, kVal, name.size(), kAux}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_resolve_shared_queue", {kKey, 3, kFar, name.size(), kAux}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_resolve_shared_queue", {kKey, 3, kVal, name.size(), kFar}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_enqueue_shared_queue", {token, kFar, 4}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_enqueue_shared_queue", {token, 0, 0xffffffff}), kInvalidMemoryAccess);
  ASSERT_EQ(enqueue(token, "kept"), kOk);
  // Bad out-params: refused before the entry is taken, so it is still there.
  EXPECT_EQ(call("probe_proxy_dequeue_shared_queue", {token, kFar, kLen}), kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_dequeue_shared_queue", {token, kPtr, kMem - 2}),
            kInvalidMemoryAccess);
  std::string value;
  EXPECT_EQ(dequeue(token, &value), kOk);
  EXPECT_EQ(value, "kept");
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, HostileForeignFunctionPointers) {
  const std::string name = "compress";
  put(kKey, name);
  put(kBuf, "abc");
  EXPECT_EQ(call("probe_proxy_call_foreign_function", {kFar, 8, kBuf, 3, kPtr, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_call_foreign_function", {kKey, 8, kFar, 3, kPtr, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_call_foreign_function", {kKey, 8, 0, 0xffffffff, kPtr, kLen}),
            kInvalidMemoryAccess);
  clear_out();
  // Bad out-params are found before the function runs: nothing allocated or written.
  EXPECT_EQ(call("probe_proxy_call_foreign_function", {kKey, 8, kBuf, 3, kFar, kLen}),
            kInvalidMemoryAccess);
  EXPECT_EQ(call("probe_proxy_call_foreign_function", {kKey, 8, kBuf, 3, kPtr, kMem - 2}),
            kInvalidMemoryAccess);
  EXPECT_EQ(word(kPtr), kSentinel);
  EXPECT_EQ(word(kLen), kSentinel);
  EXPECT_FALSE(w_->failed());
}

TEST_F(WasmHostV8Test, InitializeRanItsAllowedHostCalls) {
  EXPECT_EQ(u32_at(state_ + 0x40), kOk);  // proxy_log inside _initialize
  EXPECT_EQ(u32_at(state_ + 0x48), 0u);   // environ_sizes_get inside _initialize
  EXPECT_EQ(u32_at(state_ + 0x50), 2u);
  EXPECT_EQ(u32_at(state_ + 0x58), 10u);
}

TEST_F(WasmHostV8Test, WasiFdWrite) {
  LogCapture logs;
  put(kVal, "hello ");
  put(kVal + 0x100, "stdout\n");
  // Two iovecs {u32 buf, u32 len}.
  std::string iov(16, '\0');
  const uint32_t iovs[4] = {static_cast<uint32_t>(kVal), 6, static_cast<uint32_t>(kVal + 0x100), 7};
  std::memcpy(iov.data(), iovs, 16);
  put(kBlob, iov);
  set_word(kLen, kSentinel);
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kBlob, 2, kLen}), 0u);
  EXPECT_EQ(word(kLen), 13u);
  EXPECT_TRUE(logs.has(spdlog::level::info, "wasm log probe probe_root: hello stdout"));
  EXPECT_EQ(call("probe_wasi_fd_write", {2, kBlob, 1, kLen}), 0u);
  EXPECT_TRUE(logs.has(spdlog::level::err, "hello"));
  EXPECT_EQ(call("probe_unstable_fd_write", {1, kBlob, 1, kLen}), 0u);  // wasi_unstable too
  EXPECT_EQ(call("probe_wasi_fd_write", {3, kBlob, 1, kLen}), kEBadf);
  EXPECT_EQ(call("probe_wasi_fd_write", {0, kBlob, 1, kLen}), kEBadf);
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kFar, 1, kLen}), kEFault);
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kMem - 4, 1, kLen}), kEFault);
  const uint32_t bad_iov[2] = {0xfffffff0, 0x20};  // the buffer wraps 2^32
  put(kBlob + 0x100, std::string_view(reinterpret_cast<const char*>(bad_iov), 8));
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kBlob + 0x100, 1, kLen}), kEFault);
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kBlob, 0xffffffff, kLen}), kEInval);
  EXPECT_EQ(call("probe_wasi_fd_write", {1, kBlob, 1, kFar}), kEFault);
}

TEST_F(WasmHostV8Test, WasiEnvironAndArgs) {
  EXPECT_EQ(call("probe_wasi_environ_sizes_get", {kPtr, kLen}), 0u);
  EXPECT_EQ(word(kPtr), 2u);
  EXPECT_EQ(word(kLen), 10u);  // "A=1\0" + "BB=22\0"
  EXPECT_EQ(call("probe_wasi_environ_get", {kAux, kBuf}), 0u);
  EXPECT_EQ(word(kAux), kBuf);
  EXPECT_EQ(word_at(kAux + 4), kBuf + 4);
  EXPECT_EQ(std::string(vm().memory_at(kBuf, 10), 10), std::string("A=1\0BB=22\0", 10));
  EXPECT_EQ(call("probe_wasi_environ_get", {kAux, kFar}), kEFault);
  EXPECT_EQ(call("probe_wasi_environ_sizes_get", {kFar, kLen}), kEFault);
  set_word(kPtr, kSentinel);
  set_word(kLen, kSentinel);
  EXPECT_EQ(call("probe_wasi_args_sizes_get", {kPtr, kLen}), 0u);
  EXPECT_EQ(word(kPtr), 0u);
  EXPECT_EQ(word(kLen), 0u);
  EXPECT_EQ(call("probe_wasi_args_get", {kAux, kBuf}), 0u);
}

TEST_F(WasmHostV8Test, WasiClocks) {
  const auto wall = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const auto mono = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  };
  uint64_t t;
  uint64_t before = wall();
  EXPECT_EQ(call("probe_wasi_clock_time_get", {0, 1, kPtr}), 0u);
  uint64_t after = wall();
  std::memcpy(&t, vm().memory_at(kPtr, 8), 8);
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
  before = mono();
  EXPECT_EQ(call("probe_wasi_clock_time_get", {1, 1, kPtr}), 0u);
  after = mono();
  std::memcpy(&t, vm().memory_at(kPtr, 8), 8);
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
  EXPECT_EQ(call("probe_wasi_clock_time_get", {2, 1, kPtr}), kENotsup);
  EXPECT_EQ(call("probe_wasi_clock_time_get", {0, 1, kMem - 4}), kEFault);
  EXPECT_EQ(call("probe_wasi_clock_res_get", {1, kPtr}), 0u);
  EXPECT_EQ(call("probe_wasi_clock_res_get", {3, kPtr}), kENotsup);
}

TEST_F(WasmHostV8Test, WasiRandomGet) {
  put(kBuf, std::string(16, '\0'));
  EXPECT_EQ(call("probe_wasi_random_get", {kBuf, 0}), 0u);
  EXPECT_EQ(call("probe_wasi_random_get", {kFar, 0}), 0u);  // nothing to write: not a fault
  EXPECT_EQ(call("probe_wasi_random_get", {kBuf, 16}), 0u);
  EXPECT_NE(std::string(vm().memory_at(kBuf, 16), 16), std::string(16, '\0'));
  EXPECT_EQ(call("probe_wasi_random_get", {0x10000, 65536}), 0u);
  EXPECT_EQ(call("probe_wasi_random_get", {0x10000, 65537}), kEInval);
  EXPECT_EQ(call("probe_wasi_random_get", {kFar, 16}), kEFault);
  EXPECT_EQ(call("probe_wasi_random_get", {kMem - 8, 16}), kEFault);
}

TEST_F(WasmHostV8Test, WasiFilesystemStubs) {
  EXPECT_EQ(call("probe_wasi_fd_prestat_get", {3, kPtr}), kEBadf);
  EXPECT_EQ(call("probe_wasi_fd_read", {0, kBlob, 1, kLen}), 52u);
  EXPECT_EQ(call("probe_wasi_path_open", {3, 0, kKey, 1, 0, 0, 0, 0, kPtr}), 44u);
  EXPECT_EQ(call("probe_wasi_sched_yield", {}), 0u);
  EXPECT_EQ(call("probe_wasi_fd_fdstat_get", {1, kBuf}), 0u);
  uint64_t rights;
  std::memcpy(&rights, vm().memory_at(kBuf + 8, 8), 8);
  EXPECT_EQ(rights, 64u);
  EXPECT_EQ(call("probe_wasi_fd_fdstat_get", {1, kMem - 8}), kEFault);
  EXPECT_EQ(call("probe_wasi_fd_fdstat_get", {5, kBuf}), kEBadf);
  EXPECT_EQ(call("probe_wasi_poll_oneoff", {0, 0, 0, kLen}), 0u);
  EXPECT_EQ(call("probe_pthread_equal", {3, 3}), 1u);
  EXPECT_EQ(call("probe_pthread_equal", {3, 4}), 0u);
}

TEST_F(WasmHostV8Test, ProcExitTrapsAndFailsTheInstance) {
  auto r = w_->call(ctx_, vm().function("probe_wasi_proc_exit"), {3});
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(w_->failed());
  EXPECT_THAT(w_->failure(), HasSubstr("proc_exit"));
  // A failed instance is never called again.
  EXPECT_FALSE(w_->call(ctx_, vm().function("probe_proxy_done"), {}).has_value());
  EXPECT_EQ(w_->create_stream_context(*root_), nullptr);
}

TEST_F(WasmHostV8Test, HostCallsOutsideAnyCallbackAreRefusedCleanly) {
  // A context-less call (as the host's own probe_state_addr call): properties have no context.
  put(kKey, "plugin_name");
  auto r = w_->call(nullptr, vm().function("probe_proxy_get_property"), {kKey, 11, kPtr, kLen});
  EXPECT_EQ(r.value_or(UINT64_MAX), kNotFound);
  r = w_->call(nullptr, vm().function("probe_proxy_add_header_map_value"), {0, kKey, 1, kKey, 1});
  EXPECT_EQ(r.value_or(UINT64_MAX), kBadArgument);
  r = w_->call(nullptr, vm().function("probe_proxy_get_header_map_size"), {0, kPtr});
  EXPECT_EQ(r.value_or(UINT64_MAX), kBadArgument);
  r = w_->call(nullptr, vm().function("probe_proxy_get_buffer_bytes"), {0, 0, 1, kPtr, kLen});
  EXPECT_EQ(r.value_or(UINT64_MAX), kNotFound);
  r = w_->call(nullptr, vm().function("probe_proxy_done"), {});
  EXPECT_EQ(r.value_or(UINT64_MAX), kNotFound);
  EXPECT_FALSE(w_->failed());
}

// ---- module shapes and restricted phases (V8) -------------------------------------------------

class WasmHostModuleTest : public ::testing::Test {
 protected:
  // Starts `module`, whose malloc makes a call Proxy-Wasm forbids while the host allocates, and
  // has the host allocate a result (plugin_name, "m", for its probe_proxy_get_property): the
  // instance must fail (the call itself may still return: a nested call's trap stops there).
  // Returns the instance's failure.
  std::string restricted_call_in_malloc(const std::string& module) {
    auto w = instantiate(spec_.runtime, read_test_module(module), spec_);
    EXPECT_TRUE(w.ok()) << w.error();
    if (!w.ok()) return "";
    WasmInstance& inst = **w;
    EXPECT_TRUE(inst.initialize());
    auto root = inst.start_root(spec_);
    EXPECT_TRUE(root.ok()) << root.error();
    if (!root.ok()) return "";
    EXPECT_TRUE(inst.vm().write(16, "plugin_name"));
    inst.call(*root, inst.vm().function("probe_proxy_get_property"), {16, 11, 64, 68});
    EXPECT_TRUE(inst.failed());
    return inst.failure();
  }

  PluginSpec spec_ = [] {
    PluginSpec s;
    s.name = "m";
    s.root_id = "r";
    s.vm_id = "vm";
    s.vm_configuration = "vm-config";
    s.runtime = std::string(kV8RuntimeName);
    return s;
  }();
};

TEST_F(WasmHostModuleTest, RestrictedCallInInitializeTraps) {
  auto w = instantiate(spec_.runtime, read_test_module("host_init_restricted"), spec_);
  ASSERT_TRUE(w.ok()) << w.error();
  LogCapture logs;
  EXPECT_FALSE((*w)->initialize());
  EXPECT_TRUE((*w)->failed());
  EXPECT_THAT((*w)->failure(), HasSubstr("restricted_callback"));
  EXPECT_THAT((*w)->failure(), HasSubstr("proxy_get_property"));
  EXPECT_TRUE(logs.has(spdlog::level::info, "plugin_name"));  // proxy_log was allowed
  EXPECT_FALSE((*w)->start_root(spec_).ok());
}

TEST_F(WasmHostModuleTest, RestrictedCallInMallocTraps) {
  // malloc calls proxy_log and clock_time_get (allowed), then proxy_get_property.
  const std::string failure = restricted_call_in_malloc("host_malloc_restricted");
  EXPECT_THAT(failure, HasSubstr("restricted_callback"));
  EXPECT_THAT(failure, HasSubstr("proxy_get_property"));
  EXPECT_THAT(failure, ::testing::Not(HasSubstr("proxy_log")));
  EXPECT_THAT(failure, ::testing::Not(HasSubstr("clock_time_get")));
}

// The same with a leaf (which cannot throw: it terminates the module) inside the module's
// malloc, which the host called from an ordinary host function.
TEST_F(WasmHostModuleTest, RestrictedLeafCallInMallocTraps) {
  const std::string failure = restricted_call_in_malloc("host_malloc_leaf_restricted");
  EXPECT_THAT(failure, HasSubstr("restricted_callback"));
  EXPECT_THAT(failure, HasSubstr("proxy_get_header_map_size"));
}

TEST_F(WasmHostModuleTest, WronglyTypedCallbackIsRejected) {
  auto w = instantiate(spec_.runtime, read_test_module("host_bad_callback"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(), HasSubstr("proxy_on_request_headers"));
  EXPECT_THAT(w.error(), HasSubstr("(i32, i32) -> (i32)"));
}

TEST_F(WasmHostModuleTest, WronglyTypedFusedExportIsRejected) {
  auto w = instantiate(spec_.runtime, read_test_module("host_bad_fused"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(),
              HasSubstr("export sluice_on_stream_start has type (i32, i32, i32) -> (i32), "
                        "expected (i32, i32, i32, i32) -> (i32)"));
}

TEST_F(WasmHostModuleTest, WronglyTypedDeleteBatchIsRejected) {
  auto w = instantiate(spec_.runtime, read_test_module("host_bad_delete_batch"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(),
              HasSubstr("export sluice_on_delete_batch has type (i32) -> (i32), expected (i32)"));
}

TEST_F(WasmHostModuleTest, ModuleWithoutAllocatorIsRejected) {
  auto w = instantiate(spec_.runtime, read_test_module("host_no_malloc"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(), HasSubstr("allocator"));
}

TEST_F(WasmHostModuleTest, Abi020ImportingGetLogLevelFailsToLink) {
  auto w = instantiate(spec_.runtime, read_test_module("host_abi020_log_level"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(), HasSubstr("proxy_get_log_level"));
}

TEST_F(WasmHostModuleTest, Abi021ImportingGetConfigurationFailsToLink) {
  auto w = instantiate(spec_.runtime, read_test_module("host_abi021_get_configuration"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(), HasSubstr("proxy_get_configuration"));
}

TEST_F(WasmHostModuleTest, TrapInValidateConfigurationIsReportedAsSuch) {
  auto w = instantiate(spec_.runtime, read_test_module("host_validate_trap"), spec_);
  ASSERT_TRUE(w.ok()) << w.error();
  ASSERT_TRUE((*w)->initialize());
  auto root = (*w)->start_root(spec_);
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.error(), HasSubstr("proxy_validate_configuration failed"));
  EXPECT_EQ((*w)->configuring, nullptr);
}

TEST_F(WasmHostModuleTest, ModuleWithoutAbiMarkerIsRejected) {
  auto w = instantiate(spec_.runtime, read_test_module("modinfo_no_abi"), spec_);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.error(), HasSubstr("ABI version"));
}

TEST_F(WasmHostModuleTest, Abi010Module) {
  spec_.configuration = "plugin-config";
  auto w = instantiate(spec_.runtime, read_test_module("host_abi010"), spec_);
  ASSERT_TRUE(w.ok()) << w.error();
  WasmInstance& inst = **w;
  EXPECT_EQ(inst.abi_version(), AbiVersion::V0_1_0);
  ASSERT_TRUE(inst.initialize());
  auto root = inst.start_root(spec_);
  ASSERT_TRUE(root.ok()) << root.error();
  Context* ctx = inst.create_stream_context(**root);
  ASSERT_NE(ctx, nullptr);
  FakeStream stream;
  stream.request.add("x-a", "1");
  ctx->set_stream(&stream);
  WasmVm& vm = inst.vm();
  // Two-argument on_request_headers.
  auto r = inst.call(ctx, inst.callbacks().on_request_headers, {ctx->id(), 1});
  EXPECT_EQ(r.value_or(UINT64_MAX), 0u);
  uint64_t id = 0, n = 0;
  EXPECT_TRUE(vm.get_word(0x100, &id));
  EXPECT_TRUE(vm.get_word(0x104, &n));
  EXPECT_EQ(id, ctx->id());
  EXPECT_EQ(n, 1u);
  // get_configuration outside on_configure: the VM configuration.
  r = inst.call(ctx, vm.function("probe_proxy_get_configuration"), {0x200, 0x204});
  EXPECT_EQ(r.value_or(UINT64_MAX), kOk);
  uint64_t p = 0, len = 0;
  ASSERT_TRUE(vm.get_word(0x200, &p));
  ASSERT_TRUE(vm.get_word(0x204, &len));
  EXPECT_EQ(std::string(vm.memory_at(p, len), len), "vm-config");
  // A missing key: Ok and an empty value in 0.1.0.
  ASSERT_TRUE(vm.write(0x300, "absent"));
  ASSERT_TRUE(vm.set_word(0x200, kSentinel));
  r = inst.call(ctx, vm.function("probe_proxy_get_header_map_value"), {0, 0x300, 6, 0x200, 0x204});
  EXPECT_EQ(r.value_or(UINT64_MAX), kOk);
  ASSERT_TRUE(vm.get_word(0x200, &p));
  ASSERT_TRUE(vm.get_word(0x204, &len));
  EXPECT_EQ(p, 0u);
  EXPECT_EQ(len, 0u);
  ASSERT_TRUE(vm.write(0x300, "x-a"));
  r = inst.call(ctx, vm.function("probe_proxy_get_header_map_value"), {0, 0x300, 3, 0x200, 0x204});
  EXPECT_EQ(r.value_or(UINT64_MAX), kOk);
  ASSERT_TRUE(vm.get_word(0x200, &p));
  ASSERT_TRUE(vm.get_word(0x204, &len));
  EXPECT_EQ(std::string(vm.memory_at(p, len), len), "1");
  // The 0.1.0 stream controls.
  EXPECT_EQ(inst.call(ctx, vm.function("probe_proxy_continue_request"), {}).value_or(9), kOk);
  EXPECT_TRUE(ctx->want_continue_request);
  EXPECT_EQ(inst.call(ctx, vm.function("probe_proxy_continue_response"), {}).value_or(9), kOk);
  EXPECT_TRUE(ctx->want_continue_response);
  EXPECT_EQ(inst.call(ctx, vm.function("probe_proxy_clear_route_cache"), {}).value_or(9), kOk);
  EXPECT_EQ(stream.route_cache_clears, 1);
  inst.destroy_stream_context(ctx, true);
}

// ---- null only ------------------------------------------------------------------------------

TEST(WasmHostNullTest, MemoryAtZeroIsNotMemory) {
  PluginSpec spec;
  auto w = instantiate(std::string(kNullRuntimeName), "test.host_probe", spec);
  ASSERT_TRUE(w.ok()) << w.error();
  WasmVm& vm = (*w)->vm();
  EXPECT_EQ(vm.word_size(), 8u);
  EXPECT_EQ(vm.memory_at(0, 1), nullptr);
  EXPECT_EQ(vm.memory_at(0, 8), nullptr);
  EXPECT_NE(vm.memory_at(0, 0), nullptr);  // an empty range at 0 is the 0/0 result
  char byte = 0;
  EXPECT_EQ(vm.memory_at(reinterpret_cast<uintptr_t>(&byte), UINT64_MAX), nullptr);  // wraps
  EXPECT_FALSE(vm.set_word(0, 1));
}

TEST(WasmHostNullTest, HostFunctionOutsideItsAbiVersionTraps) {
  PluginSpec spec;
  spec.runtime = std::string(kNullRuntimeName);
  auto w = instantiate(spec.runtime, "test.host_probe_020", spec);
  ASSERT_TRUE(w.ok()) << w.error();
  WasmInstance& inst = **w;
  EXPECT_EQ(inst.abi_version(), AbiVersion::V0_2_0);
  ASSERT_TRUE(inst.initialize());
  auto root = inst.start_root(spec);
  ASSERT_TRUE(root.ok()) << root.error();
  uint32_t level = 77;
  auto r = inst.call(*root, inst.vm().function("probe_proxy_get_log_level"),
                     {reinterpret_cast<uintptr_t>(&level)});
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(inst.failed());
  EXPECT_THAT(inst.failure(), HasSubstr("proxy_get_log_level is not available"));
  EXPECT_EQ(level, 77u);
}

TEST(WasmHostNullTest, UnknownPluginNameIsAnError) {
  auto compiled = find_runtime(kNullRuntimeName).value()->compile("test.no_such_plugin");
  ASSERT_FALSE(compiled.ok());
  EXPECT_THAT(compiled.error(), HasSubstr("test.host_probe"));  // lists what is built in
}

// ---- SDK-built modules ----------------------------------------------------------------------

// An instance of `code` (a registered name on null), initialized, with its root started.
void start_instance(const PluginSpec& spec, const std::string& code,
                    std::unique_ptr<WasmInstance>* instance, Context** root) {
  auto w = instantiate(spec.runtime, code, spec);
  ASSERT_TRUE(w.ok()) << w.error();
  *instance = std::move(*w);
  ASSERT_TRUE((*instance)->initialize()) << (*instance)->failure();
  auto started = (*instance)->start_root(spec);
  ASSERT_TRUE(started.ok()) << started.error();
  *root = *started;
}

// add_header built with the C++ SDK: natively (null, "sluice.add_header", linked into this
// binary) and as .wasm (V8, when the build made extensions/add_header.wasm).
class WasmHostSdkTest : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(WasmHostRuntimes, WasmHostSdkTest,
                         ::testing::Values(std::string(kV8RuntimeName),
                                           std::string(kNullRuntimeName)),
                         [](const auto& info) {
                           return info.param == kV8RuntimeName ? std::string("v8")
                                                               : std::string("null");
                         });

TEST_P(WasmHostSdkTest, AddHeaderExtension) {
  PluginSpec spec;
  spec.name = "add_header";
  spec.root_id = "add_header";
  spec.vm_id = "sdk";
  spec.runtime = GetParam();
  spec.configuration = "request.set.x-sdk = yes\nrequest.remove.x-drop\nresponse.add.x-resp = 1";
  std::string code = "sluice.add_header";
  if (GetParam() == kV8RuntimeName) {
    const auto path = std::filesystem::path(SLUICE_TEST_WASM_DIR) / ".." / ".." / "extensions" /
                      "add_header.wasm";
    Result<std::string> bytes = read_file(path.string());
    if (!bytes) GTEST_SKIP() << "not built: " << path;
    code = std::move(bytes).value();
  }
  std::unique_ptr<WasmInstance> instance;
  Context* root = nullptr;
  ASSERT_NO_FATAL_FAILURE(start_instance(spec, code, &instance, &root));
  WasmInstance& inst = *instance;
  Context* ctx = inst.create_stream_context(*root);
  ASSERT_NE(ctx, nullptr);
  FakeStream stream;
  stream.request.add(":path", "/");
  stream.request.add("x-drop", "1");
  ctx->set_stream(&stream);
  ctx->set_phase(Phase::RequestHeaders);
  auto r = inst.call(ctx, inst.callbacks().on_request_headers, {ctx->id(), 2, 0});
  EXPECT_EQ(r.value_or(UINT64_MAX), 0u) << inst.failure();
  EXPECT_EQ(stream.request.get_or_empty("x-sdk"), "yes");
  EXPECT_FALSE(stream.request.has("x-drop"));
  // The response edit went to the host as a header edit set, with no on_response_headers left
  // to call (the plugin has none): the filter applies the set when the response comes.
  ASSERT_NE(ctx->response_header_edits, 0u);
  EXPECT_TRUE(ctx->skip_response_headers_callback);
  EXPECT_FALSE(ctx->stream_callbacks().on_response_headers);
  stream.has_response = true;
  stream.response.add(":status", "200");
  apply_response_header_edits(*ctx, stream.response);
  EXPECT_EQ(stream.response.get_or_empty("x-resp"), "1");
  inst.destroy_stream_context(ctx, true);
  inst.destroy_root(root);
  EXPECT_FALSE(inst.failed());
}

// The SDK's module exports sluice_retries_buffer_too_small, so on V8 its property and header
// reads are leaf calls: values bigger than its return buffer come back all the same (the SDK
// offers a bigger buffer and asks again), and the bigger buffer is then kept.
TEST(WasmHostSdkV8Test, BigValuesReachAModuleWhoseReadsAreLeaves) {
  const auto path = std::filesystem::path(SLUICE_TEST_WASM_DIR) / ".." / "sdk" / "sdk_probe.wasm";
  Result<std::string> bytes = read_file(path.string());
  if (!bytes) GTEST_SKIP() << "not built: " << path;
  const std::string code = std::move(bytes).value();
  LogCapture quiet(spdlog::level::warn);  // the probe logs its (long) name at info
  PluginSpec spec;
  spec.name = std::string(3000, 'n');  // the probe's "props" action reads plugin_name
  spec.root_id = "probe";
  spec.runtime = std::string(kV8RuntimeName);
  std::unique_ptr<WasmInstance> instance;
  Context* root = nullptr;
  ASSERT_NO_FATAL_FAILURE(start_instance(spec, code, &instance, &root));
  WasmInstance& inst = *instance;
  for (int round = 0; round < 2; ++round) {
    FakeStream stream;
    stream.request.add("x-probe", "props");
    Context* ctx = inst.create_stream_context(*root);
    ASSERT_NE(ctx, nullptr);
    ctx->set_stream(&stream);
    ctx->set_phase(Phase::RequestHeaders);
    auto r = inst.call(ctx, inst.callbacks().on_request_headers, {ctx->id(), 1, 1});
    ASSERT_TRUE(r.has_value()) << inst.failure();
    ASSERT_TRUE(ctx->local_response);
    ASSERT_EQ(ctx->local_response->headers.size(), 1u);
    EXPECT_EQ(ctx->local_response->headers[0].second,
              "size=0 mtls=false name=" + spec.name + " missing=false");
    inst.destroy_stream_context(ctx, true);
    if (round == 0) {
      EXPECT_GE(inst.return_buffer_size(), 3000u);
    }
  }
  EXPECT_FALSE(inst.failed()) << inst.failure();
}

// The SDK's .wasm on V8: a stream class that keeps on_delete's default is destroyed when the
// loop turn its stream ended in is over, with the others of that turn, in order; one that
// overrides on_delete at its stream's end.
TEST(WasmHostSdkV8Test, StreamsKeepingTheDefaultOnDeleteGoInOneCallPerTurn) {
  const auto path = std::filesystem::path(SLUICE_TEST_WASM_DIR) / ".." / "sdk" / "sdk_probe.wasm";
  Result<std::string> bytes = read_file(path.string());
  if (!bytes) GTEST_SKIP() << "not built: " << path;
  asio::io_context io;
  ScopedThreadLoop thread_loop(io);
  LogCapture logs(spdlog::level::info);
  PluginSpec spec;
  spec.name = "quiet";
  spec.root_id = "probe_quiet";
  spec.runtime = std::string(kV8RuntimeName);
  std::unique_ptr<WasmInstance> instance;
  Context* root = nullptr;
  ASSERT_NO_FATAL_FAILURE(start_instance(spec, *bytes, &instance, &root));
  WasmInstance& inst = *instance;
  std::vector<std::string> expected;
  for (int i = 0; i < 3; ++i) {
    Context* ctx = inst.create_stream_context(*root);
    ASSERT_NE(ctx, nullptr);
    expected.push_back("probe: quiet gone " + std::to_string(ctx->id()));
    inst.destroy_stream_context(ctx, true);
  }
  EXPECT_EQ(inst.deferred_deletes(), 3u);
  const auto logged = [&](std::string_view text) {
    for (const std::string& line : logs.lines()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_FALSE(logged("quiet gone"));
  io.poll();
  EXPECT_EQ(inst.deferred_deletes(), 0u);
  std::vector<std::string> gone;
  for (const std::string& line : logs.lines()) {
    const size_t at = line.find("probe: quiet gone");
    if (at != std::string::npos) gone.push_back(line.substr(at));
  }
  EXPECT_EQ(gone, expected);

  // The probe's own streams log in on_delete: at their end.
  PluginSpec probe_spec = spec;
  probe_spec.name = "probe";
  probe_spec.root_id = "probe";
  auto probe_root = inst.start_root(probe_spec);
  ASSERT_TRUE(probe_root.ok()) << probe_root.error();
  Context* ctx = inst.create_stream_context(**probe_root);
  ASSERT_NE(ctx, nullptr);
  const std::string deleted = "probe: delete " + std::to_string(ctx->id());
  inst.destroy_stream_context(ctx, true);
  EXPECT_EQ(inst.deferred_deletes(), 0u);
  EXPECT_TRUE(logged(deleted));
  EXPECT_FALSE(inst.failed()) << inst.failure();
}

TEST_P(WasmHostSdkTest, AddHeaderRejectsBadConfiguration) {
  PluginSpec spec;
  spec.name = "add_header";
  spec.root_id = "add_header";
  spec.runtime = GetParam();
  spec.configuration = "nonsense.key = 1";
  std::string code = "sluice.add_header";
  if (GetParam() == kV8RuntimeName) {
    const auto path = std::filesystem::path(SLUICE_TEST_WASM_DIR) / ".." / ".." / "extensions" /
                      "add_header.wasm";
    Result<std::string> bytes = read_file(path.string());
    if (!bytes) GTEST_SKIP() << "not built: " << path;
    code = std::move(bytes).value();
  }
  auto w = instantiate(spec.runtime, code, spec);
  ASSERT_TRUE(w.ok()) << w.error();
  ASSERT_TRUE((*w)->initialize());
  auto root = (*w)->start_root(spec);
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.error(), HasSubstr("proxy_on_configure returned false"));
}

// capability_restriction_config: a host function left out is linked to a stand-in answering
// InternalFailure (proxy_*) or NOTCAPABLE (WASI); a callback left out is not called; what is
// listed works as before.
TEST(WasmCapabilities, RestrictedHostFunctionsAndCallbacks) {
  PluginSpec spec;
  spec.name = "restricted";
  spec.root_id = "probe_root";
  spec.runtime = std::string(kV8RuntimeName);
  spec.allowed_capabilities = {"proxy_log", "proxy_on_context_create", "proxy_on_vm_start",
                               "proxy_on_configure", "fd_write"};
  auto w = instantiate(spec.runtime, read_test_module("host_probe"), spec);
  ASSERT_TRUE(w.ok()) << w.error();
  WasmInstance& inst = **w;
  ASSERT_TRUE(inst.initialize()) << inst.failure();
  EXPECT_TRUE(inst.callbacks().on_vm_start);
  EXPECT_TRUE(inst.callbacks().on_configure);
  EXPECT_FALSE(inst.callbacks().on_request_headers);
  EXPECT_FALSE(inst.callbacks().on_log);
  EXPECT_FALSE(inst.callbacks().on_tick);
  EXPECT_TRUE(inst.callbacks().malloc_fn);  // the allocator is never restricted
  auto root = inst.start_root(spec);
  ASSERT_TRUE(root.ok()) << root.error();
  const auto call = [&](std::string_view fn, std::initializer_list<uint64_t> args) {
    auto r = inst.call(*root, inst.vm().function(fn), args);
    EXPECT_TRUE(r.has_value()) << fn << ": " << inst.failure();
    return r.value_or(UINT64_MAX);
  };
  ASSERT_TRUE(inst.vm().write(0x4000, "hello"));
  EXPECT_EQ(call("probe_proxy_log", {2, 0x4000, 5}), kOk);
  ASSERT_TRUE(inst.vm().write(0x4100, "plugin_name"));
  EXPECT_EQ(call("probe_proxy_get_property", {0x4100, 11, 0x3000, 0x3010}), kInternalFailure);
  EXPECT_EQ(call("probe_proxy_set_tick_period_milliseconds", {10}), kInternalFailure);
  // WASI: fd_write is listed (it works); clock_time_get is not (NOTCAPABLE).
  EXPECT_EQ(call("probe_wasi_clock_time_get", {0, 1, 0x3000}), 76u);
  // Foreign functions are left out: Sluice's own (which our SDK calls in every plugin) get
  // Envoy's NotFound quietly; the plugin's own calls are denied with the warning.
  {
    LogCapture logs(spdlog::level::warn);
    const std::string ours(sluice_functions::kSetReturnBuffer);
    ASSERT_TRUE(inst.vm().write(0x4200, ours));
    EXPECT_EQ(
        call("probe_proxy_call_foreign_function", {0x4200, ours.size(), 0x4300, 0, 0x3000, 0x3010}),
        kNotFound);
    EXPECT_FALSE(logs.has(spdlog::level::warn, "proxy_call_foreign_function"));
    ASSERT_TRUE(inst.vm().write(0x4200, "compress"));
    EXPECT_EQ(call("probe_proxy_call_foreign_function", {0x4200, 8, 0x4300, 0, 0x3000, 0x3010}),
              kInternalFailure);
    EXPECT_TRUE(logs.has(spdlog::level::warn, "proxy_call_foreign_function"));
  }
  EXPECT_FALSE(inst.failed());
  inst.destroy_root(*root);
}

TEST(WasmCapabilities, EmptyListAllowsEverything) {
  PluginSpec spec;
  spec.name = "open";
  spec.root_id = "probe_root";
  spec.runtime = std::string(kV8RuntimeName);
  auto w = instantiate(spec.runtime, read_test_module("host_probe"), spec);
  ASSERT_TRUE(w.ok()) << w.error();
  ASSERT_TRUE((*w)->initialize());
  EXPECT_TRUE((*w)->callbacks().on_request_headers);
  auto root = (*w)->start_root(spec);
  ASSERT_TRUE(root.ok()) << root.error();
  EXPECT_EQ(
      *(*w)->call(*root, (*w)->vm().function("probe_proxy_set_tick_period_milliseconds"), {0}),
      kOk);
  (*w)->destroy_root(*root);
}

}  // namespace
}  // namespace sluice::wasm
