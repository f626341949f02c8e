// The V8 runtime behind WasmVm (V8 from Debian's libnode; see /work/shared/v8-notes.md).
//
//   - V8 is initialized once per process (default multi-threaded platform, no semantic flags).
//   - compile() validates and compiles a module in the calling thread's isolate and keeps the
//     resulting CompiledWasmModule, which every isolate can instantiate without recompiling.
//   - Each thread gets one isolate + context, made on its first compile or instantiate and kept
//     entered until the thread exits; every VM on that thread is an instance in that context.
//
// This directory builds to its own shared object, libsluice-v8.so, the only part of Sluice linked
// against libnode. The executable loads it on the first use of V8 (../v8_loader.cc), so a proxy
// with no V8 plugin never maps libnode: 12-14 MiB of resident pages and most of the dynamic
// linker's start-up work. The object is built with hidden visibility and carries its own copy of
// what it needs from the host side (module_info.cc, signature.cc); the C entry points below are
// all it exports. Only this directory includes V8 headers.
#pragma once

#include <memory>

#include "common/result.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {

// Also declared in runtimes.h (the registry's view); repeated so tests and benchmarks can make a
// runtime without going through the registry. Fails when libsluice-v8.so cannot be loaded.
Result<std::unique_ptr<WasmRuntime>> make_v8_runtime();

// Whether V8's trap-based bounds checks (a SIGSEGV handler) are on in this process (V8 is set up
// by this call if it was not yet); false when libsluice-v8.so cannot be loaded.
bool v8_trap_handler_enabled();

// The shared object's file name, looked for next to the executable (see v8_loader.cc).
inline constexpr char kV8ModuleFile[] = "libsluice-v8.so";

}  // namespace sluice::wasm

// The shared object's entry points, found with dlsym. The interface string is a hash of the headers
// both sides compile against (CMake's SLUICE_V8_INTERFACE): an object from another build is refused
// before anything in it is called.
extern "C" {
const char* sluice_v8_interface();
sluice::wasm::WasmRuntime* sluice_v8_make_runtime();  // owned by the caller
bool sluice_v8_trap_handler_enabled();
}
