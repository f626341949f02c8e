// The one interface between the Proxy-Wasm host and a Wasm runtime. Nothing above src/wasm/vm/
// knows whether V8 or the null runtime (native plugins) runs a module.
//
//   WasmRuntime   one per runtime, process-wide: compiles modules (main thread).
//   CompiledModule  shared, immutable, thread-safe: each worker instantiates its own VM from it.
//   WasmVm        one instance (its memory, its globals), used only on the thread that made it.
//
// Values cross the boundary as uint64_t: i32 zero-extended, i64 as is. Host functions are plain
// function pointers with the same shape, so a runtime binds them without knowing what they do.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::wasm {

enum class ValType : uint8_t { I32, I64, F32, F64 };

struct Signature {
  std::vector<ValType> params;
  std::vector<ValType> results;  // Proxy-Wasm uses at most one
  bool operator==(const Signature&) const = default;
  std::string to_string() const;  // "(i32, i64) -> i32", "() -> ()"
};

class WasmVm;
struct ModuleInfo;

// A host function: reads its arguments (signature order), returns its result (ignored for a
// function with no result). It may call vm.trap() to abort the running Wasm call.
using HostCallback = uint64_t (*)(WasmVm& vm, const uint64_t* args, void* data);

struct HostFunction {
  std::string module;  // "env", "wasi_snapshot_preview1", "wasi_unstable"
  std::string name;
  Signature signature;
  HostCallback callback = nullptr;
  void* data = nullptr;
  // A leaf never calls into a module (not even its allocator: see WasmVm::in_leaf_call) and
  // runs nothing that could. A runtime may then call it straight from compiled code, which is
  // much cheaper (V8: no JS call frame), but cannot unwind the module from inside it: a trap()
  // in a leaf takes effect a little later, at the module's next interrupt check and at the
  // latest when the call into the module returns, which then fails with the trap's message.
  bool leaf = false;
};

// Finds the host function a module imports, or nullptr (the module then fails to link with an
// error naming the import). The runtime checks that the signatures match.
using ImportResolver =
    std::function<const HostFunction*(std::string_view module, std::string_view name)>;

// A handle on an exported function, valid for the VM that returned it.
struct WasmFunction {
  uint32_t index = UINT32_MAX;  // runtime-specific
  Signature signature;
  explicit operator bool() const { return index != UINT32_MAX; }
};

struct CallResult {
  bool ok = true;
  uint64_t value = 0;  // the first result, zero-extended
  std::string error;   // on failure: the trap or termination message ("unreachable", ...)
};

class WasmVm {
 public:
  virtual ~WasmVm() = default;

  virtual std::string_view runtime_name() const = 0;  // "envoy.wasm.runtime.v8"
  // Whether a call into the module costs about as much as a native function call (the null
  // runtime), so that batching calls (deferred on_delete) would cost more than it saves.
  virtual bool calls_are_cheap() const { return false; }

  // The exported function `name`, or an empty handle when absent. Its signature is as declared.
  virtual WasmFunction function(std::string_view name) = 0;
  // Calls an exported function. A trap, a host-requested trap or a termination returns ok=false
  // and leaves the VM usable for the runtime, but the host treats the instance as failed (its
  // memory may be half-updated).
  virtual CallResult call(const WasmFunction& f, std::initializer_list<uint64_t> args) = 0;

  // Linear memory. memory_at returns a pointer to [ptr, ptr+size) or nullptr when any of it is
  // outside memory; it stays valid until the next call into the VM (memory.grow may move it).
  // Zero-size ranges at or below the memory size are valid. Inline, not virtual: every host
  // function checks its pointers through it, several times a call.
  char* memory_at(uint64_t ptr, uint64_t size) {
    if (memory_view_.stale) refresh_memory_view();
    const uint64_t bytes = memory_view_.bytes;
    if (size > bytes || ptr > bytes - size) return nullptr;
    const uintptr_t at = memory_view_.base + static_cast<uintptr_t>(ptr);
    // Address 0: the empty range of a memory-less module, or the null VM's null pointer.
    if (at == 0) return size == 0 ? &empty_range_ : nullptr;
    return reinterpret_cast<char*>(at);
  }
  uint64_t memory_size() {
    if (memory_view_.stale) refresh_memory_view();
    return memory_view_.bytes;
  }
  // Pointers and sizes in memory: 4 bytes little-endian in wasm32, 8 bytes native in the null VM.
  virtual uint32_t word_size() const = 0;

  // Called from a host function: the current Wasm call fails with `message` once it returns.
  virtual void trap(std::string message) = 0;
  // True while a host function runs as a leaf (HostFunction::leaf): it must not call into the
  // module, so a value that would need the module's allocator cannot be returned now.
  bool in_leaf_call() const { return in_leaf_call_; }
  // Stops the running Wasm code; the only method callable from another thread (a watchdog).
  virtual void terminate() = 0;

  // Helpers over memory_at and word_size.
  // Stores `value` at `at` as one word of `word_size` bytes (4: wasm32, where the caller has
  // checked it fits; 8: the null VM), for callers already holding a checked pointer.
  static void store_word(char* at, uint32_t word_size, uint64_t value) {
    if (word_size == 4) {
      const uint32_t v = static_cast<uint32_t>(value);
      std::memcpy(at, &v, 4);  // wasm is little-endian, as are the hosts Sluice runs on
    } else {
      std::memcpy(at, &value, 8);
    }
  }
  bool get_word(uint64_t ptr, uint64_t* out);
  bool set_word(uint64_t ptr, uint64_t value);
  bool set_u32(uint64_t ptr, uint32_t value);
  bool set_u64(uint64_t ptr, uint64_t value);
  bool read(uint64_t ptr, uint64_t size, std::string_view* out);
  bool write(uint64_t ptr, std::string_view data);

 protected:
  // Where memory_at finds the module's memory: host address `base` + module address, `bytes`
  // long. A runtime whose memory can move or grow marks it stale after every call into the
  // module (and every host call from it); memory_at then asks for a refresh first.
  struct MemoryView {
    uintptr_t base = 0;
    uint64_t bytes = 0;
    bool stale = true;
  };
  // Brings memory_view_ up to date and clears `stale`.
  virtual void refresh_memory_view() = 0;

  MemoryView memory_view_;
  bool in_leaf_call_ = false;

 private:
  static inline char empty_range_ = 0;  // a valid pointer for an empty range at address 0
};

class CompiledModule {
 public:
  virtual ~CompiledModule() = default;
  // What the module declares (for the null runtime: its registered exports, ABI 0.2.1).
  virtual const ModuleInfo& info() const = 0;
  // A new instance on the calling thread, its imports bound through `resolver`. A Wasm start
  // section runs during instantiation; _initialize / _start are the host's to call.
  virtual Result<std::unique_ptr<WasmVm>> instantiate(const ImportResolver& resolver) = 0;
};

class WasmRuntime {
 public:
  virtual ~WasmRuntime() = default;
  virtual std::string_view name() const = 0;
  // `code` is the module binary (V8) or the registered plugin name (null).
  virtual Result<std::shared_ptr<CompiledModule>> compile(std::string_view code) = 0;
};

// The runtime registered under `name` ("envoy.wasm.runtime.v8", "envoy.wasm.runtime.null"), or
// why there is none: an unknown name, or V8's shared object that cannot be loaded. Runtimes are
// created on first use and live for the process.
Result<WasmRuntime*> find_runtime(std::string_view name);
// Every runtime name this build knows, for error messages.
std::vector<std::string_view> runtime_names();

}  // namespace sluice::wasm
