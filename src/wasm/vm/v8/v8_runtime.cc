#include "wasm/vm/v8/v8_runtime.h"

#include <libplatform/libplatform.h>
#include <v8-fast-api-calls.h>
#include <v8.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "wasm/vm/module_info.h"
#include "wasm/vm/runtimes.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLUICE_V8_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_V8_UNDER_SANITIZER 1
#endif
#endif

namespace sluice::wasm {

namespace {

// Trap-based bounds checks: V8 reserves guard regions around each memory (10 GB virtual per
// memory) and turns the SIGSEGV of an out-of-bounds access into a Wasm trap, so compiled code has
// no explicit bounds checks. Measured with bench/wasm_call_bench.cc on the shared 2 vCPU VM (min
// CPU time over runs): BM_V8MemoryBoundLoop, a byte-copy loop, 14.3-15.0 us with the handler vs
// 17.4-19.1 us without (1.2-1.3x); empty host->Wasm and Wasm->host calls showed no difference.
// The handler owns SIGSEGV, which ASan/TSan also need, so sanitizer builds keep explicit checks.
#ifdef SLUICE_V8_UNDER_SANITIZER
constexpr bool kUseTrapHandler = false;
#else
constexpr bool kUseTrapHandler = true;
#endif

// Host functions and calls with more parameters than this take a heap path; Proxy-Wasm needs 5.
constexpr size_t kInlineArgs = 8;
// A dropped instance keeps its memory's address-space reservation (10 GB with the trap handler)
// until V8 collects it, and a small heap seldom needs a GC: 1000 instantiate/drop cycles reserved
// 10 TB (of 128 TB) when nothing forced one. A full GC after every 16 drops kept the peak at
// 168 GB for ~0.2 ms per drop (VMs are dropped only on failure or reconfiguration).
constexpr uint32_t kDroppedVmsPerGc = 16;
// The same for the memory itself: a dropped VM's pages stay resident until that GC, so a plugin
// that balloons to its limit and fails, again and again, would hold several limits' worth of RSS.
// A GC once this much linear memory was dropped keeps that to less than one VM's limit.
constexpr uint64_t kDroppedBytesPerGc = 8 * 1024 * 1024;
// Foreground tasks V8 posts for an isolate (GC helpers) run when its thread pumps them; doing that
// every this many top-level calls keeps the queue short at no per-call cost.
constexpr uint32_t kCallsPerPump = 256;

// Leaf host functions (HostFunction::leaf) bound as fast API functions: the first this many
// function imports of a module, in these signature shapes (every Proxy-Wasm leaf has one).
constexpr size_t kMaxLeafImports = 64;
constexpr size_t kMaxLeafI32Params = 8;
constexpr size_t kLeafShapeI32I64 = kMaxLeafI32Params + 1;  // (i32, i64) -> i32: metrics
constexpr size_t kLeafShapes = kLeafShapeI32I64 + 1;        // 0..8 x i32 -> i32, then that

// The shape of a leaf with this signature, or -1 when it has none of them.
int leaf_shape(const Signature& sig) {
  if (sig.results.size() != 1 || sig.results[0] != ValType::I32) return -1;
  if (sig.params == std::vector<ValType>{ValType::I32, ValType::I64}) {
    return static_cast<int>(kLeafShapeI32I64);
  }
  if (sig.params.size() > kMaxLeafI32Params) return -1;
  for (ValType t : sig.params) {
    if (t != ValType::I32) return -1;
  }
  return static_cast<int>(sig.params.size());
}

struct V8Process {
  std::unique_ptr<v8::Platform> platform;
  v8::ArrayBuffer::Allocator* allocator = nullptr;
  bool trap_handler = false;
};

// V8 is set up once and never torn down: isolates on other threads may outlive static destructors.
V8Process& v8_process() {
  static V8Process* process = [] {
    auto* p = new V8Process;
    p->platform = v8::platform::NewDefaultPlatform();
    v8::V8::InitializePlatform(p->platform.get());
    if (kUseTrapHandler) p->trap_handler = v8::V8::EnableWebAssemblyTrapHandler(true);
    // Leaf host functions are bound as V8 "fast API" functions (see LeafCalls below); without
    // this flag V8 calls their ordinary callback. Given first, so SLUICE_V8_FLAGS can undo it
    // (--no-turbo-fast-api-calls) to compare.
    v8::V8::SetFlagsFromString("--turbo-fast-api-calls");
    // A debugging and profiling knob, not configuration: e.g. SLUICE_V8_FLAGS=--perf-basic-prof
    // makes `perf` name the JIT-compiled Wasm functions.
    if (const char* flags = std::getenv("SLUICE_V8_FLAGS"); flags && *flags) {
      v8::V8::SetFlagsFromString(flags);
    }
    v8::V8::Initialize();
    p->allocator = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    return p;
  }();
  return *process;
}

v8::Local<v8::String> v8_str(v8::Isolate* isolate, std::string_view s) {
  return v8::String::NewFromUtf8(isolate, s.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(s.size()))
      .ToLocalChecked();
}

// " (wasm backtrace: inner@0x2f < outer@0x41)": the frames of a trap, innermost first, named
// from the module's name section (else wasm-function[index]), with their byte offsets in the
// module. Empty when V8 captured no frames.
std::string wasm_backtrace(v8::Isolate* isolate, v8::Local<v8::Message> message) {
  if (message.IsEmpty()) return "";
  v8::Local<v8::StackTrace> trace = message->GetStackTrace();
  if (trace.IsEmpty() || trace->GetFrameCount() == 0) return "";
  std::string out = " (wasm backtrace: ";
  for (int i = 0; i < trace->GetFrameCount(); ++i) {
    v8::Local<v8::StackFrame> frame = trace->GetFrame(isolate, i);
    std::string name;
    if (v8::Local<v8::String> fn = frame->GetFunctionName(); !fn.IsEmpty()) {
      v8::String::Utf8Value text(isolate, fn);
      if (*text != nullptr) name.assign(*text, text.length());
      if (!name.empty() && name[0] == '$') name.erase(0, 1);  // V8 prints name-section names so
    }
    if (name.empty()) name = fmt::format("wasm-function[{}]", frame->GetLineNumber() - 1);
    out += fmt::format("{}{}@0x{:x}", i ? " < " : "", name, frame->GetColumn() - 1);
  }
  return out + ")";
}

// "RuntimeError: unreachable", "CompileError: WebAssembly.Module(): ...", or the host's message.
std::string exception_text(v8::Isolate* isolate, const v8::TryCatch& try_catch) {
  if (try_catch.HasTerminated()) return "terminated";
  if (!try_catch.HasCaught()) return "unknown error";
  v8::String::Utf8Value text(isolate, try_catch.Exception());
  if (*text == nullptr) return "unprintable exception";
  return std::string(*text, text.length()) + wasm_backtrace(isolate, try_catch.Message());
}

// Values cross the WasmVm boundary as uint64_t: i32 zero-extended, floats as their bit patterns.
v8::Local<v8::Value> to_js(v8::Isolate* isolate, ValType type, uint64_t v) {
  switch (type) {
    case ValType::I32:
      return v8::Integer::New(isolate, static_cast<int32_t>(static_cast<uint32_t>(v)));
    case ValType::I64:
      return v8::BigInt::NewFromUnsigned(isolate, v);
    case ValType::F32: {
      float f;
      const uint32_t bits = static_cast<uint32_t>(v);
      std::memcpy(&f, &bits, 4);
      return v8::Number::New(isolate, f);
    }
    case ValType::F64: {
      double d;
      std::memcpy(&d, &v, 8);
      return v8::Number::New(isolate, d);
    }
  }
  return v8::Undefined(isolate);
}

// `v` comes from Wasm (an argument of an import or an export's result), so it already has the
// JS type of `type`: a Number for i32/f32/f64, a BigInt for i64.
uint64_t from_js(ValType type, v8::Local<v8::Value> v) {
  switch (type) {
    case ValType::I32:
      return static_cast<uint32_t>(v.As<v8::Int32>()->Value());
    case ValType::I64:
      return v.As<v8::BigInt>()->Uint64Value();
    case ValType::F32: {
      const float f = static_cast<float>(v.As<v8::Number>()->Value());
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      return bits;
    }
    case ValType::F64: {
      const double d = v.As<v8::Number>()->Value();
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      return bits;
    }
  }
  return 0;
}

void set_return(const v8::FunctionCallbackInfo<v8::Value>& info, ValType type, uint64_t v) {
  switch (type) {
    case ValType::I32:
      info.GetReturnValue().Set(static_cast<int32_t>(static_cast<uint32_t>(v)));
      return;
    case ValType::I64:
      info.GetReturnValue().Set(v8::BigInt::NewFromUnsigned(info.GetIsolate(), v));
      return;
    case ValType::F32:
    case ValType::F64:
      info.GetReturnValue().Set(to_js(info.GetIsolate(), type, v));
      return;
  }
}

// The text of the last exception that escaped a top-level call of this thread (see V8Vm::call:
// top-level calls run without a TryCatch, which costs ~15% of an empty call; V8 reports what
// escapes to this listener instead, only when something does).
thread_local std::string tls_uncaught_exception;

void on_uncaught_exception(v8::Local<v8::Message> message, v8::Local<v8::Value> exception) {
  v8::Isolate* isolate = message->GetIsolate();
  v8::String::Utf8Value text(isolate, exception);
  tls_uncaught_exception =
      *text == nullptr ? std::string("unprintable exception") : std::string(*text, text.length());
  tls_uncaught_exception += wasm_backtrace(isolate, message);
}

// One isolate + context per thread, made on first use and kept entered until the thread exits, so
// calls need no Isolate::Scope or Context::Scope. VMs share ownership: one destroyed after the
// thread_local (a VM held by a static on the main thread) still finds its isolate alive.
class ThreadIsolate {
 public:
  static const std::shared_ptr<ThreadIsolate>& current() {
    thread_local std::shared_ptr<ThreadIsolate> self;
    if (!self) self = std::make_shared<ThreadIsolate>(v8_process());
    return self;
  }

  explicit ThreadIsolate(V8Process& process) : process_(process) {
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = process.allocator;
    isolate_ = v8::Isolate::New(params);
    isolate_->Enter();
    // Traps carry their Wasm frames (the failure log's backtrace); captured only when one is
    // thrown.
    isolate_->SetCaptureStackTraceForUncaughtExceptions(true, 16);
    // Wasm enqueues no microtasks; the default (kAuto) would still run a checkpoint after every
    // top-level call, about 5% of an empty call.
    isolate_->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    isolate_->AddMessageListenerWithErrorLevel(on_uncaught_exception, v8::Isolate::kMessageError);
    {
      v8::HandleScope handles(isolate_);
      v8::Local<v8::Context> context = v8::Context::New(isolate_);
      context->Enter();
      context_.Reset(isolate_, context);
      v8::Local<v8::Object> webassembly = context->Global()
                                              ->Get(context, v8_str(isolate_, "WebAssembly"))
                                              .ToLocalChecked()
                                              .As<v8::Object>();
      auto constructor = [&](const char* name) {
        return v8::Global<v8::Function>(
            isolate_,
            webassembly->Get(context, v8_str(isolate_, name)).ToLocalChecked().As<v8::Function>());
      };
      instance_ctor_ = constructor("Instance");
      memory_ctor_ = constructor("Memory");
    }
    // An outer handle scope open for the thread's lifetime: each call's own HandleScope then
    // starts inside an allocated handle block instead of at an empty stack, where V8 extended
    // (and on close deleted) a block per call, ~5% of an empty call. HandleScope is meant for
    // the stack; its LIFO rule holds here as it is opened after every other scope above
    // closed and closed before the isolate goes. One handle in it makes V8 allocate the block.
    ::new (outer_scope_) v8::HandleScope(isolate_);
    v8::Integer::New(isolate_, 0);
  }

  ~ThreadIsolate() {
    reinterpret_cast<v8::HandleScope*>(outer_scope_)->~HandleScope();
    {
      v8::HandleScope handles(isolate_);
      context_.Get(isolate_)->Exit();
    }
    for (auto& row : leaf_functions_) {
      for (auto& fn : row) fn.Reset();
    }
    instance_ctor_.Reset();
    memory_ctor_.Reset();
    context_.Reset();
    isolate_->Exit();
    v8::platform::NotifyIsolateShutdown(process_.platform.get(), isolate_);
    isolate_->Dispose();
  }

  ThreadIsolate(const ThreadIsolate&) = delete;
  ThreadIsolate& operator=(const ThreadIsolate&) = delete;

  v8::Isolate* isolate() const { return isolate_; }
  v8::Local<v8::Context> context() const { return context_.Get(isolate_); }
  v8::Local<v8::Function> instance_ctor() const { return instance_ctor_.Get(isolate_); }
  v8::Local<v8::Function> memory_ctor() const { return memory_ctor_.Get(isolate_); }
  // The function every VM of this thread imports as its `index`-th function import when that
  // import is a leaf of the given shape (see LeafCalls); made on first use.
  v8::Local<v8::Function> leaf_function(size_t index, size_t shape, int length);

  // Called after each top-level call; cheap except every kCallsPerPump-th time.
  void maybe_pump() {
    if (++calls_since_pump_ < kCallsPerPump) return;
    pump();
  }
  // A VM of this thread released its instance, with `memory_bytes` of linear memory.
  void vm_dropped(uint64_t memory_bytes) {
    bytes_dropped_since_gc_ += memory_bytes;
    if (++vms_dropped_since_gc_ < kDroppedVmsPerGc &&
        bytes_dropped_since_gc_ < kDroppedBytesPerGc) {
      return;
    }
    vms_dropped_since_gc_ = 0;
    bytes_dropped_since_gc_ = 0;
    isolate_->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
  }
  void pump() {
    calls_since_pump_ = 0;
    for (int i = 0; i < 16; ++i) {
      if (!v8::platform::PumpMessageLoop(process_.platform.get(), isolate_)) break;
    }
  }

 private:
  V8Process& process_;
  v8::Isolate* isolate_ = nullptr;
  v8::Global<v8::Context> context_;
  v8::Global<v8::Function> instance_ctor_;
  v8::Global<v8::Function> memory_ctor_;
  std::array<std::array<v8::Global<v8::Function>, kLeafShapes>, kMaxLeafImports> leaf_functions_;
  uint32_t calls_since_pump_ = 0;
  uint32_t vms_dropped_since_gc_ = 0;
  uint64_t bytes_dropped_since_gc_ = 0;
  alignas(v8::HandleScope) unsigned char outer_scope_[sizeof(v8::HandleScope)];
};

class V8Module;
class V8Vm;

// The VM whose module runs on this thread (innermost, when a host function runs another VM's
// code): how a leaf host function, which V8 calls without any data, finds its VM. Read on every
// leaf call and written twice per call into a module: initial-exec, since this library is
// dlopen'ed and its thread_locals would otherwise each cost a __tls_get_addr call (about 24 a
// request through the telemetry filter). Eight bytes of glibc's static TLS reserve for
// dlopen'ed libraries, which is there for exactly this.
__attribute__((tls_model("initial-exec"))) thread_local V8Vm* tls_running_vm = nullptr;

// What a host function's FunctionCallback needs: its VM and a copy of the HostFunction (the
// resolver's pointer may not outlive instantiate()).
struct HostBinding {
  V8Vm* vm;
  HostFunction fn;
};

class V8Vm final : public WasmVm {
 public:
  V8Vm(std::shared_ptr<ThreadIsolate> thread, std::shared_ptr<const V8Module> module);
  ~V8Vm() override;

  std::string_view runtime_name() const override { return kV8RuntimeName; }
  WasmFunction function(std::string_view name) override;
  CallResult call(const WasmFunction& f, std::initializer_list<uint64_t> args) override;
  uint32_t word_size() const override { return 4; }
  void trap(std::string message) override;
  void terminate() override;

 private:
  friend class V8Module;

  // run_state_: whether a top-level call is running, so terminate() from another thread only
  // interrupts this VM's own code (other VMs share the isolate) and never leaves a termination
  // pending for whatever runs next. kTerminating holds off the end of the call until
  // TerminateExecution returned, so the call's CancelTerminateExecution comes after it.
  enum RunState : int { kIdle, kRunning, kTerminating };

  static void host_trampoline(const v8::FunctionCallbackInfo<v8::Value>& info);
  // A host function called through V8's ordinary API callback.
  void run_host(HostBinding& binding, const v8::FunctionCallbackInfo<v8::Value>& info);
  template <size_t kIndex>
  static void leaf_callback(const v8::FunctionCallbackInfo<v8::Value>& info);
  template <size_t kIndex, typename... Params>
  static uint32_t leaf_fast_call(v8::Local<v8::Object> receiver, Params... params);
  // The `index`-th function import, a leaf, called from compiled code (no V8 frame).
  uint64_t call_leaf(size_t index, const uint64_t* args);
  friend struct LeafCalls;

  CallResult fail(std::string message) {
    CallResult r;
    r.ok = false;
    r.error = std::move(message);
    return r;
  }
  void begin_top_level_call();
  void end_top_level_call();
  void refresh_memory_view() override;

  // Destroyed last: the Globals below need the isolate.
  std::shared_ptr<ThreadIsolate> thread_;
  v8::Isolate* const isolate_;
  std::shared_ptr<const V8Module> module_;
  std::vector<std::unique_ptr<HostBinding>> bindings_;
  uint32_t leaf_imports_ = 0;  // of bindings_, bound as leaves
  v8::Global<v8::Object> instance_;
  v8::Global<v8::WasmMemoryObject> memory_;
  std::vector<v8::Global<v8::Function>> functions_;  // indexed like ModuleInfo::exports

  // memory_view_ goes stale after any call into Wasm: memory.grow detaches the old buffer.
  // The store behind memory_view_. A grow in place keeps it and only its length changes; a grow
  // that moves the memory leaves us its only owner. Either is seen without a HandleScope, which
  // a full refresh costs on every host call.
  std::shared_ptr<v8::BackingStore> memory_store_;

  uint32_t call_depth_ = 0;  // host functions may call back into the module (malloc)
  bool trap_requested_ = false;
  bool trap_thrown_ = false;
  std::string trap_message_;

  std::atomic<int> run_state_{kIdle};
  std::atomic<bool> terminate_requested_{false};
};

// Leaves cost each instance its own import wrappers (V8 10.2 compiles a fast API call's wrapper
// per instance and import), which V8 keeps with the compiled module until the module itself is
// dropped: about 0.4 KiB per leaf import, measured. A VM made again and again from one module (a
// plugin in a crash loop, reloads of the same code) would pile them up, so a module compiles
// itself afresh after this many instances with leaves; an older compilation goes with its last
// instance.
constexpr uint32_t kInstancesPerCompilation = 64;

class V8Module final : public CompiledModule, public std::enable_shared_from_this<V8Module> {
 public:
  V8Module(ModuleInfo info, v8::CompiledWasmModule compiled)
      : info_(std::move(info)),
        compiled_(std::make_shared<v8::CompiledWasmModule>(std::move(compiled))) {}

  const ModuleInfo& info() const override { return info_; }
  Result<std::unique_ptr<WasmVm>> instantiate(const ImportResolver& resolver) override;

 private:
  Result<v8::Local<v8::Object>> build_imports(V8Vm& vm, const ImportResolver& resolver,
                                              v8::Local<v8::Object>* imported_memory);

  // The compilation the next instance comes from (after kInstancesPerCompilation instances
  // with leaves, a fresh one); on this thread's isolate.
  Result<std::shared_ptr<v8::CompiledWasmModule>> compilation_for_next_instance(
      v8::Isolate* isolate);

  const ModuleInfo info_;
  std::mutex mutex_;                                  // workers instantiate concurrently
  std::shared_ptr<v8::CompiledWasmModule> compiled_;  // shared by every isolate
  uint32_t leaf_instances_of_compiled_ = 0;           // instances that bound a leaf
  uint32_t compilations_ = 1;
};

Result<std::shared_ptr<v8::CompiledWasmModule>> V8Module::compilation_for_next_instance(
    v8::Isolate* isolate) {
  uint32_t generation = 0;
  std::shared_ptr<v8::CompiledWasmModule> current;
  {
    std::lock_guard lock(mutex_);
    if (leaf_instances_of_compiled_ < kInstancesPerCompilation) return compiled_;
    leaf_instances_of_compiled_ = 0;
    generation = ++compilations_;
    current = compiled_;
  }
  // The same bytes plus a custom section naming the generation: V8 caches compilations by their
  // bytes, and the same bytes would give back the current one.
  const v8::MemorySpan<const uint8_t> wire = current->GetWireBytesRef();
  std::string bytes(reinterpret_cast<const char*>(wire.data()), wire.size());
  const std::string name = "sluice.compilation";
  const std::string payload = std::to_string(generation);
  bytes.push_back('\0');  // a custom section: id 0, size, name length, name, payload
  bytes.push_back(static_cast<char>(1 + name.size() + payload.size()));
  bytes.push_back(static_cast<char>(name.size()));
  bytes += name;
  bytes += payload;
  v8::TryCatch try_catch(isolate);
  v8::Local<v8::WasmModuleObject> module;
  if (!v8::WasmModuleObject::Compile(isolate,
                                     {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()})
           .ToLocal(&module)) {
    return Error{"cannot compile the module again: " + exception_text(isolate, try_catch)};
  }
  auto fresh = std::make_shared<v8::CompiledWasmModule>(module->GetCompiledModule());
  std::lock_guard lock(mutex_);
  compiled_ = fresh;
  return fresh;
}

V8Vm::V8Vm(std::shared_ptr<ThreadIsolate> thread, std::shared_ptr<const V8Module> module)
    : thread_(std::move(thread)), isolate_(thread_->isolate()), module_(std::move(module)) {}

V8Vm::~V8Vm() {
  functions_.clear();
  const uint64_t memory_bytes = memory_size();
  memory_store_.reset();
  memory_.Reset();
  const bool had_instance = !instance_.IsEmpty();
  instance_.Reset();
  if (had_instance) thread_->vm_dropped(memory_bytes);
}

WasmFunction V8Vm::function(std::string_view name) {
  const auto& exports = module_->info().exports;
  for (size_t i = 0; i < exports.size(); ++i) {
    if (exports[i].kind == ExternKind::Function && exports[i].name == name &&
        !functions_[i].IsEmpty()) {
      return WasmFunction{static_cast<uint32_t>(i), exports[i].signature};
    }
  }
  return {};
}

// One atomic read-modify-write per call (the CAS at the end); the rest are plain stores on x86.
void V8Vm::begin_top_level_call() {
  terminate_requested_.store(false, std::memory_order_relaxed);
  run_state_.store(kRunning, std::memory_order_release);
}

void V8Vm::end_top_level_call() {
  int expected = kRunning;
  while (!run_state_.compare_exchange_weak(expected, kIdle, std::memory_order_acq_rel)) {
    expected = kRunning;  // terminate() is between its CAS and TerminateExecution: wait
  }
  if (terminate_requested_.load(std::memory_order_relaxed)) isolate_->CancelTerminateExecution();
  thread_->maybe_pump();
}

void V8Vm::terminate() {
  int expected = kRunning;
  if (run_state_.compare_exchange_strong(expected, kTerminating, std::memory_order_acq_rel)) {
    // Stored after the CAS so it is ordered after begin_top_level_call()'s reset; the release
    // store of kRunning publishes it to end_top_level_call().
    terminate_requested_.store(true, std::memory_order_relaxed);
    isolate_->TerminateExecution();
    run_state_.store(kRunning, std::memory_order_release);
  }
}

void V8Vm::trap(std::string message) {
  trap_requested_ = true;
  trap_message_ = std::move(message);
}

CallResult V8Vm::call(const WasmFunction& f, std::initializer_list<uint64_t> args) {
  if (f.index >= functions_.size() || functions_[f.index].IsEmpty()) {
    return fail("call of a function this VM does not export");
  }
  const Signature& sig = module_->info().exports[f.index].signature;
  if (args.size() != sig.params.size()) {
    return fail("call of " + module_->info().exports[f.index].name + " " + sig.to_string() +
                " with " + std::to_string(args.size()) + " arguments");
  }

  v8::HandleScope handles(isolate_);
  v8::Local<v8::Context> context = thread_->context();
  v8::Local<v8::Value> inline_argv[kInlineArgs];
  std::vector<v8::Local<v8::Value>> heap_argv;
  v8::Local<v8::Value>* argv = inline_argv;
  if (args.size() > kInlineArgs) {
    heap_argv.resize(args.size());
    argv = heap_argv.data();
  }
  size_t i = 0;
  for (uint64_t a : args) {
    argv[i] = to_js(isolate_, sig.params[i], a);
    ++i;
  }

  const bool top_level = call_depth_ == 0;
  if (top_level) begin_top_level_call();
  ++call_depth_;
  V8Vm* const outer_vm = tls_running_vm;  // a host function may run another VM's code
  tls_running_vm = this;
  // A nested call (a host function calling back into the module, e.g. malloc) catches its own
  // exception, so the module's outer frames are not unwound by it. A top-level call has no
  // TryCatch: an exception ends at the API boundary anyway, and its text reaches
  // on_uncaught_exception.
  std::optional<v8::TryCatch> try_catch;
  if (!top_level) try_catch.emplace(isolate_);
  v8::MaybeLocal<v8::Value> maybe_result = functions_[f.index].Get(isolate_)->Call(
      context, v8::Undefined(isolate_), static_cast<int>(args.size()), argv);
  tls_running_vm = outer_vm;
  --call_depth_;
  memory_view_.stale = true;

  CallResult result;
  v8::Local<v8::Value> value;
  if (trap_thrown_) {
    // Checked first: a leaf's trap stops the module only at its next interrupt check, and the
    // call may have returned normally before reaching one.
    trap_thrown_ = false;
    result.ok = false;
    result.error = std::move(trap_message_);
    trap_message_.clear();
  } else if (maybe_result.ToLocal(&value)) {
    if (!sig.results.empty()) {
      if (sig.results.size() > 1) {  // multi-value: an Array
        value = value.As<v8::Array>()->Get(context, 0).ToLocalChecked();
      }
      result.value = from_js(sig.results[0], value);
    }
  } else {
    result.ok = false;
    if ((try_catch && try_catch->HasTerminated()) || terminate_requested_.load()) {
      result.error = "terminated";
    } else if (try_catch) {
      result.error = exception_text(isolate_, *try_catch);
    } else if (!tls_uncaught_exception.empty()) {
      result.error = std::move(tls_uncaught_exception);
      tls_uncaught_exception.clear();
    } else {
      result.error = "terminated";  // a termination is not reported as a message
    }
  }
  if (top_level) {
    end_top_level_call();
    trap_requested_ = false;  // a trap() outside any host function has nothing to abort
  }
  return result;
}

void V8Vm::host_trampoline(const v8::FunctionCallbackInfo<v8::Value>& info) {
  auto* binding = static_cast<HostBinding*>(info.Data().As<v8::External>()->Value());
  binding->vm->run_host(*binding, info);
}

void V8Vm::run_host(HostBinding& binding, const v8::FunctionCallbackInfo<v8::Value>& info) {
  V8Vm& vm = *this;
  const Signature& sig = binding.fn.signature;
  v8::Isolate* isolate = info.GetIsolate();
  if (vm.trap_thrown_) {  // a leaf trapped and the module has not stopped yet: unwind it now
    isolate->ThrowException(v8::Exception::Error(v8_str(isolate, vm.trap_message_)));
    return;
  }

  uint64_t inline_args[kInlineArgs];
  std::vector<uint64_t> heap_args;
  uint64_t* args = inline_args;
  if (sig.params.size() > kInlineArgs) {
    heap_args.resize(sig.params.size());
    args = heap_args.data();
  }
  for (size_t i = 0; i < sig.params.size(); ++i) args[i] = from_js(sig.params[i], info[i]);

  vm.memory_view_.stale = true;  // the module may have grown its memory since the last look
  const uint64_t result = binding.fn.callback(vm, args, binding.fn.data);

  if (vm.trap_requested_) {
    vm.trap_requested_ = false;
    vm.trap_thrown_ = true;
    isolate->ThrowException(v8::Exception::Error(v8_str(isolate, vm.trap_message_)));
    return;
  }
  if (vm.terminate_requested_.load(std::memory_order_relaxed) && vm.call_depth_ > 0) {
    // A nested call's TryCatch may have swallowed the termination (no JS frames between it and
    // the outer call): unwind the outer Wasm frames too.
    isolate->TerminateExecution();
    isolate->ThrowException(v8::Exception::Error(v8_str(isolate, "terminated")));
    return;
  }
  if (!sig.results.empty()) set_return(info, sig.results[0], result);
}

// ---- leaf host functions ------------------------------------------------------------------
// V8 calls a "fast API" function straight from a Wasm import's wrapper: no FunctionCallbackInfo,
// no boxed arguments, no JS frame (libnode 18, an (i32, i32) -> i32 import: 4 ns a call instead
// of 27). In exchange the function must not call into V8 at all: no exception, no JS heap
// allocation, no Wasm call; leaf host functions promise that. V8 10.2 passes such a function
// only its arguments and a receiver that says nothing (neither the template's data nor
// FastApiCallbackOptions reach it from Wasm), so the import it stands for is compiled into it:
// one function per import index and shape, which finds its VM through tls_running_vm. The JS
// functions are made once per thread and shared by its VMs; each instance then compiles its
// own wrapper per import (about 50 us each, at instantiation).
struct LeafCalls {
  template <size_t, typename T>
  using Repeat = T;

  template <size_t kIndex, size_t... kParam>
  static v8::CFunction all_i32(std::index_sequence<kParam...>) {
    return v8::CFunction::Make(&V8Vm::leaf_fast_call<kIndex, Repeat<kParam, uint32_t>...>);
  }

  template <size_t kIndex, size_t... kCount>
  static std::array<v8::CFunction, kLeafShapes> row(std::index_sequence<kCount...>) {
    return {all_i32<kIndex>(std::make_index_sequence<kCount>())...,
            v8::CFunction::Make(&V8Vm::leaf_fast_call<kIndex, uint32_t, uint64_t>)};
  }

  template <size_t... kIndex>
  static auto table(std::index_sequence<kIndex...>) {
    using Row = std::array<v8::CFunction, kLeafShapes>;
    return std::array<Row, kMaxLeafImports>{
        row<kIndex>(std::make_index_sequence<kMaxLeafI32Params + 1>())...};
  }

  template <size_t... kIndex>
  static std::array<v8::FunctionCallback, kMaxLeafImports> callbacks(
      std::index_sequence<kIndex...>) {
    return {&V8Vm::leaf_callback<kIndex>...};
  }
};

template <size_t kIndex>
void V8Vm::leaf_callback(const v8::FunctionCallbackInfo<v8::Value>& info) {
  V8Vm* vm = tls_running_vm;
  vm->run_host(*vm->bindings_[kIndex], info);
}

template <size_t kIndex, typename... Params>
uint32_t V8Vm::leaf_fast_call(v8::Local<v8::Object>, Params... params) {
  const uint64_t args[sizeof...(Params) + 1] = {static_cast<uint64_t>(params)...};
  return static_cast<uint32_t>(tls_running_vm->call_leaf(kIndex, args));
}

uint64_t V8Vm::call_leaf(size_t index, const uint64_t* args) {
  // After a leaf's trap the module is stopping: nothing more of it runs on the host's side.
  if (trap_thrown_) return UINT32_MAX;
  HostBinding& binding = *bindings_[index];
  memory_view_.stale = true;  // the module may have grown its memory since the last look
  in_leaf_call_ = true;
  const uint64_t result = binding.fn.callback(*this, args, binding.fn.data);
  in_leaf_call_ = false;
  if (trap_requested_) {
    // No exception can be thrown from here: terminate the module instead (V8 only sets a flag
    // the compiled code checks). call() reports the trap's message; end_top_level_call()
    // cancels the termination.
    trap_requested_ = false;
    trap_thrown_ = true;
    terminate_requested_.store(true, std::memory_order_relaxed);
    isolate_->TerminateExecution();
  }
  return result;
}

v8::Local<v8::Function> ThreadIsolate::leaf_function(size_t index, size_t shape, int length) {
  v8::Global<v8::Function>& slot = leaf_functions_[index][shape];
  if (slot.IsEmpty()) {
    static const auto kFastCalls = LeafCalls::table(std::make_index_sequence<kMaxLeafImports>());
    static const auto kCallbacks =
        LeafCalls::callbacks(std::make_index_sequence<kMaxLeafImports>());
    v8::Local<v8::FunctionTemplate> tmpl = v8::FunctionTemplate::New(
        isolate_, kCallbacks[index], v8::Local<v8::Value>(), v8::Local<v8::Signature>(), length,
        v8::ConstructorBehavior::kThrow, v8::SideEffectType::kHasSideEffect,
        &kFastCalls[index][shape]);
    slot.Reset(isolate_, tmpl->GetFunction(context()).ToLocalChecked());
  }
  return slot.Get(isolate_);
}

void V8Vm::refresh_memory_view() {
  memory_view_.stale = false;
  if (memory_.IsEmpty()) {
    memory_view_.base = 0;
    memory_view_.bytes = 0;
    return;
  }
  // Still shared with the memory's buffer: unchanged, or grown in place (same base, the store's
  // length is the memory's). This is also what a leaf call may do: no V8 call.
  if (memory_store_ && memory_store_.use_count() > 1) {
    memory_view_.bytes = memory_store_->ByteLength();
    return;
  }
  // Moved by a grow (we are the old store's only owner), or not looked at yet. Buffer() returns
  // the memory's existing buffer object: no JS heap allocation, so a leaf may come here too.
  v8::HandleScope handles(isolate_);
  v8::Local<v8::ArrayBuffer> buffer = memory_.Get(isolate_)->Buffer();
  memory_store_ = buffer->GetBackingStore();
  memory_view_.base = reinterpret_cast<uintptr_t>(buffer->Data());
  memory_view_.bytes = buffer->ByteLength();
}

std::string import_name(const ImportInfo& import) { return import.module + "." + import.name; }

Result<v8::Local<v8::Object>> V8Module::build_imports(V8Vm& vm, const ImportResolver& resolver,
                                                      v8::Local<v8::Object>* imported_memory) {
  v8::Isolate* isolate = vm.isolate_;
  v8::Local<v8::Context> context = vm.thread_->context();
  v8::Local<v8::Object> imports = v8::Object::New(isolate);

  for (const ImportInfo& import : info_.imports) {
    v8::Local<v8::Value> value;
    switch (import.kind) {
      case ExternKind::Function: {
        const HostFunction* host = resolver(import.module, import.name);
        if (host == nullptr) {
          return Error{"module imports " + import_name(import) + " " +
                       import.signature.to_string() + ", which Sluice does not provide"};
        }
        if (!(host->signature == import.signature)) {
          return Error{"module imports " + import_name(import) + " as " +
                       import.signature.to_string() + ", but Sluice provides " +
                       import_name(import) + " " + host->signature.to_string()};
        }
        if (host->callback == nullptr || host->signature.results.size() > 1) {
          return Error{"host function " + import_name(import) + " cannot be bound"};
        }
        // bindings_ holds the function imports in import order: a leaf finds its own by index.
        const size_t index = vm.bindings_.size();
        vm.bindings_.push_back(std::make_unique<HostBinding>(HostBinding{&vm, *host}));
        const int length = static_cast<int>(import.signature.params.size());
        const int shape = host->leaf ? leaf_shape(import.signature) : -1;
        if (shape >= 0 && index < kMaxLeafImports) {
          value = vm.thread_->leaf_function(index, static_cast<size_t>(shape), length);
          ++vm.leaf_imports_;
          break;
        }
        v8::Local<v8::External> data = v8::External::New(isolate, vm.bindings_.back().get());
        v8::Local<v8::Function> fn;
        if (!v8::Function::New(context, &V8Vm::host_trampoline, data, length,
                               v8::ConstructorBehavior::kThrow)
                 .ToLocal(&fn)) {
          return Error{"cannot create host function " + import_name(import)};
        }
        value = fn;
        break;
      }
      case ExternKind::Memory: {
        // The host creates an imported memory with the declared limits (ModuleInfo::memory is the
        // first memory, and the import section precedes the memory section).
        if (!info_.memory || !info_.memory->imported) {
          return Error{"module imports memory " + import_name(import) + " without its limits"};
        }
        const MemoryLimits& limits = *info_.memory;
        if (limits.memory64) {
          return Error{"module imports 64-bit memory " + import_name(import) +
                       ", which V8 does not support here"};
        }
        v8::Local<v8::Object> descriptor = v8::Object::New(isolate);
        descriptor
            ->Set(context, v8_str(isolate, "initial"),
                  v8::Integer::NewFromUnsigned(isolate, limits.initial_pages))
            .Check();
        if (limits.max_pages) {
          descriptor
              ->Set(context, v8_str(isolate, "maximum"),
                    v8::Integer::NewFromUnsigned(isolate, *limits.max_pages))
              .Check();
        }
        if (limits.shared) {
          descriptor->Set(context, v8_str(isolate, "shared"), v8::True(isolate)).Check();
        }
        v8::TryCatch try_catch(isolate);
        v8::Local<v8::Value> argv[] = {descriptor};
        v8::Local<v8::Object> memory;
        if (!vm.thread_->memory_ctor()->NewInstance(context, 1, argv).ToLocal(&memory)) {
          return Error{"cannot create memory " + import_name(import) + ": " +
                       exception_text(isolate, try_catch)};
        }
        if (imported_memory->IsEmpty()) *imported_memory = memory;
        value = memory;
        break;
      }
      case ExternKind::Table:
        // TODO(v8): ModuleInfo does not report table limits yet; without them the host cannot
        // create a table the module would accept.
        return Error{"module imports table " + import_name(import) +
                     ", which Sluice does not provide"};
      case ExternKind::Global:
        return Error{"module imports global " + import_name(import) +
                     ", which Sluice does not provide (no global imports)"};
      case ExternKind::Tag:
        return Error{"module imports exception tag " + import_name(import) +
                     ", which Sluice does not provide"};
    }

    v8::Local<v8::String> module_key = v8_str(isolate, import.module);
    v8::Local<v8::Value> module_object;
    if (!imports->Get(context, module_key).ToLocal(&module_object) || !module_object->IsObject()) {
      module_object = v8::Object::New(isolate);
      imports->Set(context, module_key, module_object).Check();
    }
    module_object.As<v8::Object>()->Set(context, v8_str(isolate, import.name), value).Check();
  }
  return imports;
}

Result<std::unique_ptr<WasmVm>> V8Module::instantiate(const ImportResolver& resolver) {
  const std::shared_ptr<ThreadIsolate>& thread = ThreadIsolate::current();
  v8::Isolate* isolate = thread->isolate();
  v8::HandleScope handles(isolate);
  v8::Local<v8::Context> context = thread->context();
  auto vm = std::make_unique<V8Vm>(thread, shared_from_this());

  v8::TryCatch try_catch(isolate);
  v8::Local<v8::WasmModuleObject> module;
  Result<std::shared_ptr<v8::CompiledWasmModule>> compiled = compilation_for_next_instance(isolate);
  if (!compiled.ok()) return std::move(compiled).take_error();
  if (!v8::WasmModuleObject::FromCompiledModule(isolate, *compiled.value()).ToLocal(&module)) {
    return Error{"cannot load the compiled module: " + exception_text(isolate, try_catch)};
  }
  v8::Local<v8::Object> imported_memory;
  Result<v8::Local<v8::Object>> imports = build_imports(*vm, resolver, &imported_memory);
  if (!imports.ok()) return std::move(imports).take_error();
  if (vm->leaf_imports_ > 0) {
    std::lock_guard lock(mutex_);
    ++leaf_instances_of_compiled_;
  }
  // Host functions called by a start function can already use an imported memory (an exported
  // one is known only once the constructor returns).
  if (!imported_memory.IsEmpty()) {
    vm->memory_.Reset(isolate, imported_memory.As<v8::WasmMemoryObject>());
  }

  // A start function runs inside the constructor; it may call host functions and trap.
  v8::Local<v8::Value> argv[] = {module, imports.value()};
  vm->begin_top_level_call();
  ++vm->call_depth_;
  V8Vm* const outer_vm = tls_running_vm;
  tls_running_vm = vm.get();
  v8::MaybeLocal<v8::Object> maybe_instance =
      thread->instance_ctor()->NewInstance(context, 2, argv);
  tls_running_vm = outer_vm;
  --vm->call_depth_;
  vm->end_top_level_call();
  v8::Local<v8::Object> instance;
  // A start function's exception can leave the constructor returning its bare receiver, so an
  // object back is not proof of success.
  if (!maybe_instance.ToLocal(&instance) || try_catch.HasCaught() || vm->trap_thrown_) {
    std::string why = vm->trap_thrown_ ? vm->trap_message_ : exception_text(isolate, try_catch);
    return Error{"cannot instantiate the module: " + why};
  }
  vm->instance_.Reset(isolate, instance);

  v8::Local<v8::Value> exports_value;
  if (!instance->Get(context, v8_str(isolate, "exports")).ToLocal(&exports_value) ||
      !exports_value->IsObject()) {
    return Error{"instance has no exports object: " + exception_text(isolate, try_catch)};
  }
  v8::Local<v8::Object> exports = exports_value.As<v8::Object>();

  vm->functions_.resize(info_.exports.size());
  v8::Local<v8::Object> exported_memory;
  for (size_t i = 0; i < info_.exports.size(); ++i) {
    const ExportInfo& e = info_.exports[i];
    if (e.kind != ExternKind::Function && e.kind != ExternKind::Memory) continue;
    v8::Local<v8::Value> value;
    if (!exports->Get(context, v8_str(isolate, e.name)).ToLocal(&value)) continue;
    if (e.kind == ExternKind::Function && value->IsFunction()) {
      vm->functions_[i].Reset(isolate, value.As<v8::Function>());
    } else if (e.kind == ExternKind::Memory && value->IsWasmMemoryObject()) {
      // Proxy-Wasm's memory is the export named "memory"; otherwise take the first one.
      if (exported_memory.IsEmpty() || e.name == "memory") exported_memory = value.As<v8::Object>();
    }
  }
  if (imported_memory.IsEmpty() && !exported_memory.IsEmpty()) {
    vm->memory_.Reset(isolate, exported_memory.As<v8::WasmMemoryObject>());
  }
  vm->memory_view_.stale = true;

  thread->pump();
  return std::unique_ptr<WasmVm>(std::move(vm));
}

class V8Runtime final : public WasmRuntime {
 public:
  std::string_view name() const override { return kV8RuntimeName; }

  Result<std::shared_ptr<CompiledModule>> compile(std::string_view code) override {
    const std::shared_ptr<ThreadIsolate>& thread = ThreadIsolate::current();
    v8::Isolate* isolate = thread->isolate();
    v8::HandleScope handles(isolate);
    v8::TryCatch try_catch(isolate);
    v8::Local<v8::WasmModuleObject> module;
    if (!v8::WasmModuleObject::Compile(isolate,
                                       {reinterpret_cast<const uint8_t*>(code.data()), code.size()})
             .ToLocal(&module)) {
      return Error{exception_text(isolate, try_catch)};
    }
    // V8 validated the module; ModuleInfo reads what the host needs from it.
    Result<ModuleInfo> info = ModuleInfo::parse(code);
    if (!info.ok()) return Error{"cannot read the module: " + info.error()};
    thread->pump();
    return std::shared_ptr<CompiledModule>(
        std::make_shared<V8Module>(std::move(info).value(), module->GetCompiledModule()));
  }
};

}  // namespace

}  // namespace sluice::wasm

#define SLUICE_V8_EXPORT __attribute__((visibility("default")))

extern "C" SLUICE_V8_EXPORT const char* sluice_v8_interface() { return SLUICE_V8_INTERFACE; }

extern "C" SLUICE_V8_EXPORT sluice::wasm::WasmRuntime* sluice_v8_make_runtime() {
  sluice::wasm::v8_process();
  return new sluice::wasm::V8Runtime();
}

extern "C" SLUICE_V8_EXPORT bool sluice_v8_trap_handler_enabled() {
  return sluice::wasm::v8_process().trap_handler;
}
