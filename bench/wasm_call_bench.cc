// Costs of crossing the WasmVm boundary and of running a Proxy-Wasm plugin, per runtime (/v8 is
// the V8 runtime, /null the null runtime of natively compiled plugins). See bench/README.md.
//
// Same shape on both runtimes:
//   BM_CallEmpty/<rt>        host -> module: call() of an empty export
//   BM_HostCallEmpty/<rt>    module -> host: one call of an empty host function, per item (the
//                            module calls it 1000 times from one call()); /v8_leaf is the same
//                            function bound as a leaf (HostFunction::leaf), as most of
//                            Proxy-Wasm's per-request host functions are
// V8 only:
//   BM_V8CallThenMemoryAt    call() then memory_at(), which re-reads the memory base after the call
//   BM_V8MemoryBoundLoop     a byte-copy loop, per byte: shows what the trap handler buys
//   BM_V8InstantiateTiny     a new VM of the tiny module below (this thread's isolate exists)
// Shared data (bench/cas_increment, a plugin built with the SDK):
//   BM_SharedDataCasIncrement/<rt>   one increment of a shared-data counter from inside the
//                            module (get + CAS set, retried on a lost race), per item; /threads:2
//                            is two workers' VMs on the same key
// The add_header example extension (extensions/examples/add_header), as a real plugin:
//   BM_Compile/<rt>          V8: compile of add_header.wasm's bytes (each iteration's bytes carry
//                            a distinct custom section, so V8's native-module cache cannot hit);
//                            null: the registry lookup of "sluice.add_header"
//   BM_Instantiate/<rt>      CompiledModule::instantiate, every import bound to a stub
//   BM_StartInstance/<rt>    WasmInstance::create + initialize + start_root (on_vm_start,
//                            on_configure): what a worker does the first time it needs the plugin
//   BM_FilterRequest/<rt>    one request through filters::WasmFilterConfig with a fake stream:
//                            create_filter (on_context_create), decode_headers (on_request_headers,
//                            which sets a request header), encode_headers (on_response_headers,
//                            which sets a response header), on_stream_complete (on_log, on_done,
//                            on_delete). /none is the same loop without a filter (copying the
//                            header maps): the filter's cost is the difference.
//   BM_TelemetryRequest/<rt> the same with the telemetry extension (stats_inbound) and a request
//                            carrying a client sidecar's peer metadata; /none without a filter.
//
// Compile, instantiate and start report wall time and the process's CPU time (V8 compiles on its
// platform's background threads as well).
// add_header.wasm is read from $SLUICE_BENCH_ADD_HEADER_WASM, else from the build tree.
//
// The tiny V8 module is embedded (source, wat2wasm, no flags):
//   (module
//     (import "env" "nop" (func $nop (result i32)))
//     (memory (export "memory") 1)
//     (func (export "empty"))
//     (func (export "call_host_n") (param $n i32)
//       (block $done
//         (loop $again
//           (br_if $done (i32.eqz (local.get $n)))
//           (drop (call $nop))
//           (local.set $n (i32.sub (local.get $n) (i32.const 1)))
//           (br $again))))
//     ;; Byte-wise copy of the first half of the page into the second (a memcpy-like loop, as
//     ;; SDKs run over header and body bytes), `rounds` times: every access is bounds-checked
//     ;; unless the trap handler is on.
//     (func (export "memory_loop") (param $rounds i32) (result i32)
//       (local $i i32)
//       (block $done
//         (loop $round
//           (br_if $done (i32.eqz (local.get $rounds)))
//           (local.set $i (i32.const 0))
//           (loop $byte
//             (i32.store8 offset=32768 (local.get $i)
//               (i32.add (i32.load8_u (local.get $i)) (i32.const 1)))
//             (local.set $i (i32.add (local.get $i) (i32.const 1)))
//             (br_if $byte (i32.lt_u (local.get $i) (i32.const 32768))))
//           (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
//           (br $round)))
//       (i32.load8_u (i32.const 40000)))
//   )
// Its null twin is the native plugin "sluice.bench.calls" below: "empty" returns at once,
// "call_host_n" calls proxy_done() n times (through the null runtime's host-function shim, the
// same path every SDK host call takes), bound here to an empty host function.
#include <benchmark/benchmark.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.h"
#include "common/header_map.h"
#include "common/stream_info.h"
#include "filters/http/wasm_filter.h"
#include "http/filter.h"
#include "sluice/proxy_wasm_abi.h"
#include "wasm/context.h"
#include "wasm/plugin.h"
#include "wasm/vm/module_info.h"
#include "wasm/vm/null/null_plugin_abi.h"
#include "wasm/vm/runtimes.h"
#include "wasm/vm/v8/v8_runtime.h"
#include "wasm/vm/wasm_vm.h"

// --- The null runtime's tiny plugin -------------------------------------------------------------

namespace {

uint64_t null_empty(void*, const uint64_t*) { return 0; }

uint64_t null_call_host_n(void*, const uint64_t* args) {
  for (uint64_t n = args[0]; n != 0; --n) proxy_done();
  return 0;
}

const SluiceNullExport kBenchExports[] = {
    {"empty", ":", &null_empty},
    {"call_host_n", "i:", &null_call_host_n},
};

int bench_instance_state;

const SluiceNullPlugin kBenchPlugin = {
    SLUICE_NULL_PLUGIN_ABI_VERSION,
    "sluice.bench.calls",
    [] { return static_cast<void*>(&bench_instance_state); },
    [](void*) {},
    kBenchExports,
    sizeof(kBenchExports) / sizeof(kBenchExports[0]),
};

[[maybe_unused]] const bool kBenchPluginRegistered = [] {
  sluice_register_null_plugin(&kBenchPlugin);
  spdlog::set_level(spdlog::level::warn);  // add_header logs its configuration at info
  return true;
}();

}  // namespace

namespace sluice::wasm {
namespace {

using bench::Runtime;

constexpr unsigned char kBenchModule[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x11, 0x04, 0x60, 0x00, 0x01, 0x7f, 0x60,
    0x00, 0x00, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x02, 0x0b, 0x01, 0x03, 0x65,
    0x6e, 0x76, 0x03, 0x6e, 0x6f, 0x70, 0x00, 0x00, 0x03, 0x04, 0x03, 0x01, 0x02, 0x03, 0x05, 0x03,
    0x01, 0x00, 0x01, 0x07, 0x2e, 0x04, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x05,
    0x65, 0x6d, 0x70, 0x74, 0x79, 0x00, 0x01, 0x0b, 0x63, 0x61, 0x6c, 0x6c, 0x5f, 0x68, 0x6f, 0x73,
    0x74, 0x5f, 0x6e, 0x00, 0x02, 0x0b, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x5f, 0x6c, 0x6f, 0x6f,
    0x70, 0x00, 0x03, 0x0a, 0x64, 0x03, 0x02, 0x00, 0x0b, 0x19, 0x00, 0x02, 0x40, 0x03, 0x40, 0x20,
    0x00, 0x45, 0x0d, 0x01, 0x10, 0x00, 0x1a, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00,
    0x0b, 0x0b, 0x0b, 0x45, 0x01, 0x01, 0x7f, 0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x45, 0x0d, 0x01,
    0x41, 0x00, 0x21, 0x01, 0x03, 0x40, 0x20, 0x01, 0x20, 0x01, 0x2d, 0x00, 0x00, 0x41, 0x01, 0x6a,
    0x3a, 0x00, 0x80, 0x80, 0x02, 0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, 0x20, 0x01, 0x41, 0x80,
    0x80, 0x02, 0x49, 0x0d, 0x00, 0x0b, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b,
    0x0b, 0x41, 0xc0, 0xb8, 0x02, 0x2d, 0x00, 0x00, 0x0b,
};

uint64_t empty_host_function(WasmVm&, const uint64_t*, void*) { return 0; }

// V8: env.nop () -> i32, bound as an ordinary host function or as a leaf (HostFunction::leaf);
// null: env.proxy_done () -> i32, what the shim of proxy_done() calls.
const HostFunction kNop{"env", "nop", {{}, {ValType::I32}}, &empty_host_function, nullptr};
const HostFunction kLeafNop{"env",        "nop", {{}, {ValType::I32}}, &empty_host_function,
                            nullptr,
                            /*leaf=*/true};
const HostFunction kNullDone{
    "env", "proxy_done", {{}, {ValType::I32}}, &empty_host_function, nullptr};

const HostFunction* resolve_tiny(std::string_view module, std::string_view name) {
  if (module != "env") return nullptr;
  if (name == "nop") return &kNop;
  if (name == "proxy_done") return &kNullDone;
  return nullptr;
}
const HostFunction* resolve_tiny_leaf(std::string_view module, std::string_view name) {
  return module == "env" && name == "nop" ? &kLeafNop : nullptr;
}

std::shared_ptr<CompiledModule> tiny_module(Runtime rt) {
  static std::shared_ptr<CompiledModule> modules[2];
  auto& m = modules[static_cast<int>(rt)];
  if (!m) {
    auto compiled = rt == Runtime::V8
                        ? bench::runtime(kV8RuntimeName)
                              .compile(std::string_view(reinterpret_cast<const char*>(kBenchModule),
                                                        sizeof(kBenchModule)))
                        : bench::runtime(kNullRuntimeName).compile("sluice.bench.calls");
    if (!compiled.ok()) {
      std::fprintf(stderr, "wasm_call_bench: %s\n", compiled.error().c_str());
      std::abort();
    }
    m = compiled.value();
  }
  return m;
}

std::unique_ptr<WasmVm> tiny_vm(benchmark::State& state, Runtime rt, bool leaf = false) {
  auto vm = tiny_module(rt)->instantiate(leaf ? &resolve_tiny_leaf : &resolve_tiny);
  if (!vm.ok()) {
    state.SkipWithError(vm.error().c_str());
    return nullptr;
  }
  if (rt == Runtime::V8) {
    state.SetLabel(v8_trap_handler_enabled() ? "trap handler on" : "trap handler off");
  }
  return std::move(vm).value();
}

void BM_CallEmpty(benchmark::State& state, Runtime rt) {
  auto vm = tiny_vm(state, rt);
  if (!vm) return;
  const WasmFunction empty = vm->function("empty");
  for (auto _ : state) {
    CallResult r = vm->call(empty, {});
    benchmark::DoNotOptimize(r.ok);
  }
}
BENCHMARK_CAPTURE(BM_CallEmpty, v8, Runtime::V8);
BENCHMARK_CAPTURE(BM_CallEmpty, null, Runtime::Null);

void BM_HostCallEmpty(benchmark::State& state, Runtime rt, bool leaf = false) {
  auto vm = tiny_vm(state, rt, leaf);
  if (!vm) return;
  const WasmFunction loop = vm->function("call_host_n");
  constexpr uint64_t kCallsPerLoop = 1000;
  for (auto _ : state) {
    CallResult r = vm->call(loop, {kCallsPerLoop});
    benchmark::DoNotOptimize(r.ok);
  }
  // Items are host calls: 1 / items_per_second, or Time / 1000, is the cost of one (the one
  // call() per 1000 host calls adds a fraction of a nanosecond to each). No user counters in
  // this file: the CSV reporter bench/run.sh reads wants the same columns in every row.
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kCallsPerLoop));
}
BENCHMARK_CAPTURE(BM_HostCallEmpty, v8, Runtime::V8);
BENCHMARK_CAPTURE(BM_HostCallEmpty, v8_leaf, Runtime::V8, true);
BENCHMARK_CAPTURE(BM_HostCallEmpty, null, Runtime::Null);

void BM_V8CallThenMemoryAt(benchmark::State& state) {
  auto vm = tiny_vm(state, Runtime::V8);
  if (!vm) return;
  const WasmFunction empty = vm->function("empty");
  for (auto _ : state) {
    CallResult r = vm->call(empty, {});
    benchmark::DoNotOptimize(r.ok);
    benchmark::DoNotOptimize(vm->memory_at(64, 8));
  }
}
BENCHMARK(BM_V8CallThenMemoryAt);

void BM_V8MemoryBoundLoop(benchmark::State& state) {
  auto vm = tiny_vm(state, Runtime::V8);
  if (!vm) return;
  const WasmFunction loop = vm->function("memory_loop");
  for (auto _ : state) {
    CallResult r = vm->call(loop, {1});
    benchmark::DoNotOptimize(r.value);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 32768));
}
BENCHMARK(BM_V8MemoryBoundLoop);

void BM_V8InstantiateTiny(benchmark::State& state) {
  tiny_vm(state, Runtime::V8).reset();  // creates this thread's isolate outside the timed loop
  for (auto _ : state) {
    auto vm = tiny_module(Runtime::V8)->instantiate(&resolve_tiny);
    benchmark::DoNotOptimize(vm.ok());
  }
}
BENCHMARK(BM_V8InstantiateTiny)->Unit(benchmark::kMicrosecond);

// --- add_header ---------------------------------------------------------------------------------

// Appends a custom section ("bench", 8 bytes of `n`) so every compile sees new bytes.
std::string with_custom_section(const std::string& bytes, uint64_t n) {
  std::string out = bytes;
  const std::string name = "bench";
  out.push_back(0);                                               // custom section id
  out.push_back(static_cast<char>(1 + name.size() + sizeof(n)));  // size (< 128: one byte)
  out.push_back(static_cast<char>(name.size()));
  out += name;
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
  return out;
}

void BM_Compile(benchmark::State& state, Runtime rt) {
  const std::string* bytes = rt == Runtime::V8 ? bench::add_header_wasm() : nullptr;
  if (rt == Runtime::V8 && !bytes) {
    state.SkipWithError("add_header.wasm not found (set SLUICE_BENCH_ADD_HEADER_WASM)");
    return;
  }
  WasmRuntime* runtime = &bench::runtime(bench::runtime_name(rt));
  uint64_t n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::string code =
        rt == Runtime::V8 ? with_custom_section(*bytes, n++) : std::string("sluice.add_header");
    state.ResumeTiming();
    auto compiled = runtime->compile(code);
    if (!compiled.ok()) {
      state.SkipWithError(compiled.error().c_str());
      return;
    }
    benchmark::DoNotOptimize(compiled.value().get());
  }
  if (bytes) state.SetLabel(std::to_string(bytes->size()) + " bytes");
}
BENCHMARK_CAPTURE(BM_Compile, v8, Runtime::V8)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Compile, null, Runtime::Null)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void BM_Instantiate(benchmark::State& state, Runtime rt) {
  auto module = bench::add_header_module(rt);
  if (!module) {
    state.SkipWithError("cannot compile add_header");
    return;
  }
  bench::StubImports stubs(module->info());
  const ImportResolver resolver = stubs.resolver();
  module->instantiate(resolver).value().reset();  // this thread's isolate, outside the loop
  for (auto _ : state) {
    auto vm = module->instantiate(resolver);
    if (!vm.ok()) {
      state.SkipWithError(vm.error().c_str());
      return;
    }
    benchmark::DoNotOptimize(vm.value().get());
  }
}
BENCHMARK_CAPTURE(BM_Instantiate, v8, Runtime::V8)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Instantiate, null, Runtime::Null)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void BM_StartInstance(benchmark::State& state, Runtime rt) {
  auto module = bench::add_header_module(rt);
  if (!module) {
    state.SkipWithError("cannot compile add_header");
    return;
  }
  const PluginSpec spec = bench::add_header_spec(rt);
  // Torn down outside the timing, in batches (PauseTiming costs about a microsecond).
  constexpr size_t kBatch = 32;
  std::vector<bench::StartedInstance> alive;
  alive.reserve(kBatch);
  bench::start_add_header(module, spec).reset();  // warm-up, this thread's isolate
  for (auto _ : state) {
    auto started = bench::start_add_header(module, spec);
    if (!started) {
      state.SkipWithError("add_header did not start");
      return;
    }
    alive.push_back(std::move(started));
    if (alive.size() == kBatch) {
      state.PauseTiming();
      alive.clear();
      state.ResumeTiming();
    }
  }
  alive.clear();  // (the timed loop is over)
}
BENCHMARK_CAPTURE(BM_StartInstance, v8, Runtime::V8)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_StartInstance, null, Runtime::Null)
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// A stream as the connection manager shows it to a filter: headers of a small GET and its 200.
class FakeStream : public http::StreamFilterCallbacks {
 public:
  HeaderMap request, response;
  bool response_visible = false;
  StreamInfo info;

  HeaderMap& request_headers() override { return request; }
  HeaderMap* response_headers() override { return response_visible ? &response : nullptr; }
  std::string* request_body() override { return nullptr; }
  std::string* response_body() override { return nullptr; }
  HeaderMap* request_trailers() override { return nullptr; }
  HeaderMap* response_trailers() override { return nullptr; }
  HeaderMap* add_request_trailers() override { return nullptr; }
  HeaderMap* add_response_trailers() override { return nullptr; }
  void clear_route_cache() override { ++route_cache_clears; }
  const config::Route* route() override { return nullptr; }
  void continue_decoding() override {}
  void continue_encoding() override {}
  void send_local_reply(uint32_t, std::string, HeaderMap, std::string) override { ++replies; }
  void reset_stream(std::string) override { ++resets; }
  StreamInfo& stream_info() override { return info; }
  uint64_t connection_id() const override { return 1; }
  uint32_t buffer_limit() const override { return 1 << 20; }

  uint64_t route_cache_clears = 0, replies = 0, resets = 0;
};

HeaderMap request_template() {
  HeaderMap h;
  h.add(":method", "GET");
  h.add(":path", "/");
  h.add(":scheme", "http");
  h.add(":authority", "127.0.0.1:8080");
  h.add("user-agent", "wrk");
  h.add("accept", "*/*");
  return h;
}

HeaderMap response_template() {
  HeaderMap h;
  h.add(":status", "200");
  h.add("server", "nginx/1.22.1");
  h.add("date", "Wed, 25 Nov 2026 06:10:50 GMT");
  h.add("content-type", "application/octet-stream");
  h.add("content-length", "17");
  h.add("connection", "keep-alive");
  return h;
}

// One request's headers through `config`'s filter (none: only the header copies), as the
// connection manager drives it: request headers, response headers, stream end.
void filter_one_request(FakeStream& stream, filters::WasmFilterConfig* config, const HeaderMap& req,
                        const HeaderMap& resp) {
  stream.request = req;
  stream.response = resp;
  stream.response_visible = false;
  std::unique_ptr<http::StreamFilter> filter;
  if (config) filter = config->create_filter(stream);
  if (filter) filter->decode_headers(stream.request, true);
  stream.response_visible = true;
  if (filter) filter->encode_headers(stream.response, false);
  if (filter) filter->on_stream_complete();
  benchmark::DoNotOptimize(stream.response.size());
}

// rt: the runtime, or nullopt for no filter.
void BM_FilterRequest(benchmark::State& state, int rt_or_none) {
  std::unique_ptr<filters::WasmFilterConfig> config;
  if (rt_or_none >= 0) {
    const Runtime rt = static_cast<Runtime>(rt_or_none);
    if (rt == Runtime::V8 && !bench::add_header_wasm()) {
      state.SkipWithError("add_header.wasm not found (set SLUICE_BENCH_ADD_HEADER_WASM)");
      return;
    }
    auto plugin = Plugin::load(bench::add_header_spec(rt));
    if (!plugin.ok()) {
      state.SkipWithError(plugin.error().c_str());
      return;
    }
    config = std::make_unique<filters::WasmFilterConfig>("add_header", std::move(plugin).value());
  }
  const HeaderMap req = request_template(), resp = response_template();
  FakeStream stream;
  auto one_request = [&] { filter_one_request(stream, config.get(), req, resp); };
  one_request();  // this thread's instance starts here, outside the loop
  if (config && (!stream.request.has("x-bench") || !stream.response.has("x-bench"))) {
    state.SkipWithError("add_header did not set its headers");
    return;
  }
  for (auto _ : state) one_request();
  if (stream.replies || stream.resets) state.SkipWithError("the filter answered or reset");
  release_thread_instances();
}
BENCHMARK_CAPTURE(BM_FilterRequest, none, -1);
BENCHMARK_CAPTURE(BM_FilterRequest, v8, static_cast<int>(Runtime::V8));
BENCHMARK_CAPTURE(BM_FilterRequest, null, static_cast<int>(Runtime::Null));

// The telemetry extension (stats_inbound, `{}`) on one request that carries a client sidecar's
// peer metadata: decode (cached by id after the first), strip, answer with our own, and Istio's
// four HTTP metrics with full labels. /none is BM_FilterRequest/none's loop with these headers.
PluginSpec telemetry_spec(Runtime rt, std::string root_id, std::string node_id,
                          std::string metadata_json) {
  PluginSpec spec;
  spec.name = "telemetry_" + root_id;
  spec.root_id = std::move(root_id);
  spec.configuration = "{}";
  spec.runtime = std::string(bench::runtime_name(rt));
  if (rt == Runtime::V8) {
    std::ifstream in(std::string(SLUICE_BENCH_EXTENSIONS_DIR) + "/telemetry.wasm",
                     std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    spec.code = bytes.str();
  } else {
    spec.code = "sluice.telemetry";
  }
  spec.node_id = std::move(node_id);
  spec.node_metadata = NodeMetadata::from_json(std::move(metadata_json));
  return spec;
}

std::string node_metadata(std::string_view workload, std::string_view app,
                          std::string_view version) {
  return "{\"NAME\": \"" + std::string(workload) + "-abc\", \"NAMESPACE\": \"bench\", " +
         "\"WORKLOAD_NAME\": \"" + std::string(workload) + "\", \"CLUSTER_ID\": \"Kubernetes\", " +
         "\"MESH_ID\": \"cluster.local\", \"LABELS\": {\"app\": \"" + std::string(app) +
         "\", \"version\": \"" + std::string(version) + "\"}}";
}

void BM_TelemetryRequest(benchmark::State& state, int rt_or_none) {
  // The headers a client sidecar sends: from the same extension as stats_outbound.
  HeaderMap req = request_template();
  {
    auto client = Plugin::load(
        telemetry_spec(Runtime::Null, "stats_outbound", "sidecar~10.0.0.1~productpage-v1-abc.bench",
                       node_metadata("productpage-v1", "productpage", "v1")));
    if (!client.ok()) {
      state.SkipWithError(client.error().c_str());
      return;
    }
    filters::WasmFilterConfig client_config("client", std::move(client).value());
    FakeStream s;
    s.request = req;
    auto filter = client_config.create_filter(s);
    if (filter) filter->decode_headers(s.request, true);
    if (filter) filter->on_stream_complete();
    const std::string* id = s.request.get("x-envoy-peer-metadata-id");
    const std::string* metadata = s.request.get("x-envoy-peer-metadata");
    if (!id || !metadata) {
      state.SkipWithError("the outbound side sent no peer metadata");
      return;
    }
    req.add("x-envoy-peer-metadata-id", *id);
    req.add("x-envoy-peer-metadata", *metadata);
  }
  std::unique_ptr<filters::WasmFilterConfig> config;
  if (rt_or_none >= 0) {
    auto plugin = Plugin::load(telemetry_spec(static_cast<Runtime>(rt_or_none), "stats_inbound",
                                              "sidecar~10.0.0.2~reviews-v2-abc.bench",
                                              node_metadata("reviews-v2", "reviews", "v2")));
    if (!plugin.ok()) {
      state.SkipWithError(plugin.error().c_str());
      return;
    }
    config = std::make_unique<filters::WasmFilterConfig>("telemetry", std::move(plugin).value());
  }
  const HeaderMap resp = response_template();
  FakeStream stream;
  stream.info.protocol = "HTTP/1.1";
  stream.info.response_code = 200;
  stream.info.start_mono = std::chrono::steady_clock::now();
  stream.info.last_downstream_tx_byte = stream.info.start_mono + std::chrono::microseconds(800);
  auto one_request = [&] { filter_one_request(stream, config.get(), req, resp); };
  one_request();
  if (config && (stream.request.has("x-envoy-peer-metadata") ||
                 !stream.response.has("x-envoy-peer-metadata-id"))) {
    state.SkipWithError("telemetry did not exchange metadata");
    return;
  }
  for (auto _ : state) one_request();
  if (stream.replies || stream.resets) state.SkipWithError("the filter answered or reset");
  release_thread_instances();
}
BENCHMARK_CAPTURE(BM_TelemetryRequest, none, -1);
BENCHMARK_CAPTURE(BM_TelemetryRequest, v8, static_cast<int>(Runtime::V8));
BENCHMARK_CAPTURE(BM_TelemetryRequest, null, static_cast<int>(Runtime::Null));

// --- shared data
// ----------------------------------------------------------------------------------

#ifndef SLUICE_BENCH_CAS_WASM
#define SLUICE_BENCH_CAS_WASM "build/bench/cas_increment.wasm"
#endif

std::shared_ptr<CompiledModule> compile_cas_module(Runtime rt) {
  std::string code = "sluice.cas_increment";
  if (rt == Runtime::V8) {
    const char* path = std::getenv("SLUICE_BENCH_CAS_WASM");
    std::ifstream in(path && *path ? path : SLUICE_BENCH_CAS_WASM, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    code = bytes.str();
  }
  auto compiled = bench::runtime(bench::runtime_name(rt)).compile(code);
  return compiled.ok() ? compiled.value() : nullptr;
}

// The cas_increment plugin (bench/cas_increment/), compiled once per runtime (a static made
// thread-safely: benchmark threads ask at the same time).
std::shared_ptr<CompiledModule> cas_module(Runtime rt) {
  static const std::shared_ptr<CompiledModule> modules[2] = {compile_cas_module(Runtime::V8),
                                                             compile_cas_module(Runtime::Null)};
  return modules[static_cast<int>(rt)];
}

// One shared-data counter increment as a plugin does it (get + CAS set, retried on a lost race),
// from inside the module: the plugin's on_tick runs 100 of them per call. With 2 threads, two
// workers' VMs increment the same key at once.
void BM_SharedDataCasIncrement(benchmark::State& state, Runtime rt) {
  constexpr uint64_t kPerCall = 100;
  auto module = cas_module(rt);
  if (!module) {
    state.SkipWithError("cannot compile cas_increment (set SLUICE_BENCH_CAS_WASM)");
    return;
  }
  PluginSpec spec;
  spec.name = spec.root_id = "cas_increment";
  spec.vm_id = "bench.cas";
  spec.runtime = std::string(bench::runtime_name(rt));
  spec.configuration = "increments = 100";
  auto instance =
      WasmInstance::create(module, spec.runtime, spec.vm_id, spec.vm_configuration, spec.env);
  if (!instance.ok() || !(*instance)->initialize()) {
    state.SkipWithError("cas_increment does not instantiate");
    return;
  }
  WasmInstance& w = **instance;
  auto root = w.start_root(spec);
  if (!root.ok()) {
    state.SkipWithError(root.error().c_str());
    return;
  }
  const WasmFunction on_tick = w.callbacks().on_tick;
  for (auto _ : state) {
    auto r = w.call(*root, on_tick, {(*root)->id()});
    benchmark::DoNotOptimize(r);
  }
  if (w.failed()) state.SkipWithError(w.failure().c_str());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPerCall));
  w.destroy_root(*root);
}
BENCHMARK_CAPTURE(BM_SharedDataCasIncrement, v8, Runtime::V8)->Threads(1)->Threads(2);
BENCHMARK_CAPTURE(BM_SharedDataCasIncrement, null, Runtime::Null)->Threads(1)->Threads(2);

}  // namespace
}  // namespace sluice::wasm
