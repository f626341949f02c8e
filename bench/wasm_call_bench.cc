// Costs of crossing the WasmVm boundary with the V8 runtime:
//   BM_V8CallEmpty        host -> Wasm: call() of an empty export (HandleScope, TryCatch, Call)
//   BM_V8HostCallEmpty    Wasm -> host: one call of an empty host function, per item
//   BM_V8CallThenMemoryAt call() then memory_at(), which re-reads the memory base after the call
//   BM_V8MemoryBoundLoop  a byte-copy loop, per byte: shows what the trap handler buys
//   BM_V8Instantiate      a new VM from an already compiled module (this thread's isolate exists)
// The module is embedded so the benchmark needs no test data; its source (wat2wasm, no flags):
//   (module
//     (import "env" "nop" (func $nop))
//     (memory (export "memory") 1)
//     (func (export "empty"))
//     (func (export "call_host_n") (param $n i32)
//       (block $done
//         (loop $again
//           (br_if $done (i32.eqz (local.get $n)))
//           (call $nop)
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
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "wasm/vm/runtimes.h"
#include "wasm/vm/v8/v8_runtime.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

constexpr unsigned char kBenchModule[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0d, 0x03, 0x60, 0x00, 0x00, 0x60, 0x01,
    0x7f, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x02, 0x0b, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x6e,
    0x6f, 0x70, 0x00, 0x00, 0x03, 0x04, 0x03, 0x00, 0x01, 0x02, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07,
    0x2e, 0x04, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x05, 0x65, 0x6d, 0x70, 0x74,
    0x79, 0x00, 0x01, 0x0b, 0x63, 0x61, 0x6c, 0x6c, 0x5f, 0x68, 0x6f, 0x73, 0x74, 0x5f, 0x6e, 0x00,
    0x02, 0x0b, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x5f, 0x6c, 0x6f, 0x6f, 0x70, 0x00, 0x03, 0x0a,
    0x63, 0x03, 0x02, 0x00, 0x0b, 0x18, 0x00, 0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x45, 0x0d, 0x01,
    0x10, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b, 0x0b, 0x45, 0x01,
    0x01, 0x7f, 0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x45, 0x0d, 0x01, 0x41, 0x00, 0x21, 0x01, 0x03,
    0x40, 0x20, 0x01, 0x20, 0x01, 0x2d, 0x00, 0x00, 0x41, 0x01, 0x6a, 0x3a, 0x00, 0x80, 0x80, 0x02,
    0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, 0x20, 0x01, 0x41, 0x80, 0x80, 0x02, 0x49, 0x0d, 0x00,
    0x0b, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b, 0x41, 0xc0, 0xb8, 0x02,
    0x2d, 0x00, 0x00, 0x0b,
};

uint64_t empty_host_function(WasmVm&, const uint64_t*, void*) { return 0; }

const HostFunction kNop{"env", "nop", {}, &empty_host_function, nullptr};

const HostFunction* resolve(std::string_view module, std::string_view name) {
  return module == "env" && name == "nop" ? &kNop : nullptr;
}

std::shared_ptr<CompiledModule> bench_module() {
  static std::shared_ptr<CompiledModule> module = [] {
    WasmRuntime* runtime = runtime_by_name(kV8RuntimeName);
    auto compiled = runtime->compile(
        std::string_view(reinterpret_cast<const char*>(kBenchModule), sizeof(kBenchModule)));
    if (!compiled.ok()) std::abort();
    return compiled.value();
  }();
  return module;
}

std::unique_ptr<WasmVm> bench_vm(benchmark::State& state) {
  auto vm = bench_module()->instantiate(&resolve);
  if (!vm.ok()) {
    state.SkipWithError(vm.error().c_str());
    return nullptr;
  }
  state.SetLabel(v8_trap_handler_enabled() ? "trap handler on" : "trap handler off");
  return std::move(vm).value();
}

void BM_V8CallEmpty(benchmark::State& state) {
  auto vm = bench_vm(state);
  if (!vm) return;
  const WasmFunction empty = vm->function("empty");
  for (auto _ : state) {
    CallResult r = vm->call(empty, {});
    benchmark::DoNotOptimize(r.ok);
  }
}
BENCHMARK(BM_V8CallEmpty);

void BM_V8HostCallEmpty(benchmark::State& state) {
  auto vm = bench_vm(state);
  if (!vm) return;
  const WasmFunction loop = vm->function("call_host_n");
  constexpr uint64_t kCallsPerLoop = 1000;
  for (auto _ : state) {
    CallResult r = vm->call(loop, {kCallsPerLoop});
    benchmark::DoNotOptimize(r.ok);
  }
  // Items are host calls (1 / items_per_second is the cost of one); the single call() per
  // 1000 host calls adds ~0.2 ns to each.
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kCallsPerLoop));
}
BENCHMARK(BM_V8HostCallEmpty);

void BM_V8CallThenMemoryAt(benchmark::State& state) {
  auto vm = bench_vm(state);
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
  auto vm = bench_vm(state);
  if (!vm) return;
  const WasmFunction loop = vm->function("memory_loop");
  for (auto _ : state) {
    CallResult r = vm->call(loop, {1});
    benchmark::DoNotOptimize(r.value);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 32768));
}
BENCHMARK(BM_V8MemoryBoundLoop);

void BM_V8Instantiate(benchmark::State& state) {
  bench_vm(state).reset();  // creates this thread's isolate outside the timed loop
  for (auto _ : state) {
    auto vm = bench_module()->instantiate(&resolve);
    benchmark::DoNotOptimize(vm.ok());
  }
}
BENCHMARK(BM_V8Instantiate)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sluice::wasm
