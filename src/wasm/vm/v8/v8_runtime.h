// The V8 runtime behind WasmVm (V8 from Debian's libnode; see /work/shared/v8-notes.md).
//
//   - V8 is initialized once per process (default multi-threaded platform, no semantic flags).
//   - compile() validates and compiles a module in the calling thread's isolate and keeps the
//     resulting CompiledWasmModule, which every isolate can instantiate without recompiling.
//   - Each thread gets one isolate + context, made on its first compile or instantiate and kept
//     entered until the thread exits; every VM on that thread is an instance in that context.
//
// Only this directory includes V8 headers; the rest of Sluice sees the WasmVm interface.
#pragma once

#include <memory>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

// Also declared in runtimes.h (the registry's view); repeated so tests and benchmarks can make a
// runtime without going through the registry.
std::unique_ptr<WasmRuntime> make_v8_runtime();

// Whether V8's trap-based bounds checks (a SIGSEGV handler) are on in this process. Valid after
// the first make_v8_runtime().
bool v8_trap_handler_enabled();

}  // namespace sluice::wasm
