// The V8 runtime through the WasmVm interface: compile and link errors, calls and conversions,
// host functions and traps, memory bounds, termination from another thread, and VMs on several
// threads. Modules are tests/wasm/v8_*.wat.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test_modules.h"
#include "wasm/vm/module_info.h"
#include "wasm/vm/runtimes.h"
#include "wasm/vm/v8/v8_runtime.h"
#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

using sluice::testing::read_test_module;
using ::testing::HasSubstr;

WasmRuntime& v8_runtime() {
  Result<WasmRuntime*> runtime = find_runtime(kV8RuntimeName);
  EXPECT_TRUE(runtime.ok()) << runtime.error();
  return **runtime;
}

std::shared_ptr<CompiledModule> compile(const std::string& name) {
  auto compiled = v8_runtime().compile(read_test_module(name));
  EXPECT_TRUE(compiled.ok()) << compiled.error();
  return compiled.ok() ? compiled.value() : nullptr;
}

const Signature kI32ToI32{{ValType::I32}, {ValType::I32}};

// Host functions for v8_basic.wat.
uint64_t host_add(WasmVm&, const uint64_t* args, void* data) {
  ++*static_cast<int*>(data);
  return args[0] + args[1];
}
uint64_t host_trap(WasmVm& vm, const uint64_t* args, void*) {
  if (args[0] != 0) vm.trap("host says no: " + std::to_string(args[0]));
  return 0;
}
uint64_t host_memory_size(WasmVm& vm, const uint64_t*, void*) {
  // memory_at must see the memory as the module left it (just grown): its last byte is writable.
  const uint64_t size = vm.memory_size();
  if (vm.memory_at(size - 1, 1) == nullptr) return 0;
  return size;
}

uint64_t host_load_u32(WasmVm& vm, const uint64_t* args, void*) {
  const char* p = vm.memory_at(args[0], 4);
  if (p == nullptr) return 0;
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Resolves imports to `functions` by module and name (they must outlive the resolver).
ImportResolver resolver_of(const std::vector<HostFunction>& functions) {
  return [&functions](std::string_view module, std::string_view name) -> const HostFunction* {
    for (const HostFunction& f : functions) {
      if (f.module == module && f.name == name) return &f;
    }
    return nullptr;
  };
}

struct BasicHost {
  // `leaf`: the memory functions are leaves (HostFunction::leaf), called from compiled code.
  explicit BasicHost(bool leaf = false) {
    functions[2].leaf = functions[3].leaf = leaf;  // host_memory_size, host_load_u32
  }
  int add_calls = 0;
  std::vector<HostFunction> functions{
      {"env", "host_add", {{ValType::I32, ValType::I64}, {ValType::I64}}, &host_add, &add_calls},
      {"env", "host_trap", {{ValType::I32}, {}}, &host_trap, nullptr},
      {"env", "host_memory_size", {{}, {ValType::I32}}, &host_memory_size, nullptr},
      {"env", "host_load_u32", {{ValType::I32}, {ValType::I32}}, &host_load_u32, nullptr},
  };
  ImportResolver resolver() { return resolver_of(functions); }
};

ImportResolver no_imports() {
  return [](std::string_view, std::string_view) -> const HostFunction* { return nullptr; };
}

std::unique_ptr<WasmVm> instantiate(CompiledModule& module, const ImportResolver& resolver) {
  auto vm = module.instantiate(resolver);
  EXPECT_TRUE(vm.ok()) << vm.error();
  return vm.ok() ? std::move(vm).value() : nullptr;
}

class V8VmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_ = compile("v8_basic");
    ASSERT_NE(module_, nullptr);
    vm_ = instantiate(*module_, host_.resolver());
    ASSERT_NE(vm_, nullptr);
  }

  CallResult call(std::string_view name, std::initializer_list<uint64_t> args) {
    WasmFunction f = vm_->function(name);
    EXPECT_TRUE(f) << name;
    return vm_->call(f, args);
  }
  uint64_t call_ok(std::string_view name, std::initializer_list<uint64_t> args) {
    CallResult r = call(name, args);
    EXPECT_TRUE(r.ok) << name << ": " << r.error;
    return r.value;
  }

  BasicHost host_;
  std::shared_ptr<CompiledModule> module_;
  std::unique_ptr<WasmVm> vm_;
};

TEST(V8RuntimeTest, NameAndRegistry) {
  EXPECT_EQ(v8_runtime().name(), "envoy.wasm.runtime.v8");
  auto vm = instantiate(*compile("v8_no_memory"), no_imports());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->runtime_name(), "envoy.wasm.runtime.v8");
  EXPECT_EQ(vm->word_size(), 4u);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
#else
constexpr bool kSanitizerBuild = false;
#endif

TEST(V8RuntimeTest, TrapHandlerIsOffOnlyUnderSanitizers) {
  v8_runtime();
  EXPECT_EQ(v8_trap_handler_enabled(), !kSanitizerBuild);
}

TEST(V8RuntimeTest, GarbageBytesFailToCompile) {
  auto compiled = v8_runtime().compile("this is not a wasm module");
  ASSERT_FALSE(compiled.ok());
  EXPECT_THAT(compiled.error(), HasSubstr("CompileError"));
  EXPECT_THAT(compiled.error(), HasSubstr("magic"));
}

TEST(V8RuntimeTest, EmptyAndTruncatedModulesFailToCompile) {
  EXPECT_FALSE(v8_runtime().compile("").ok());
  const std::string bytes = read_test_module("v8_basic");
  ASSERT_GT(bytes.size(), 40u);
  auto compiled = v8_runtime().compile(std::string_view(bytes).substr(0, bytes.size() - 20));
  ASSERT_FALSE(compiled.ok());
  EXPECT_THAT(compiled.error(), HasSubstr("CompileError"));
}

TEST(V8RuntimeTest, CompiledModuleReportsItsInfo) {
  auto module = compile("v8_basic");
  ASSERT_NE(module, nullptr);
  const ExportInfo* add = module->info().find_export("add_i32");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->signature, (Signature{{ValType::I32, ValType::I32}, {ValType::I32}}));
  ASSERT_TRUE(module->info().memory.has_value());
  EXPECT_EQ(module->info().memory->initial_pages, 1u);
}

TEST(V8RuntimeTest, MissingImportNamesIt) {
  auto vm = compile("v8_import_foo")->instantiate(no_imports());
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error(),
            "module imports env.foo " + kI32ToI32.to_string() + ", which Sluice does not provide");
}

TEST(V8RuntimeTest, ImportSignatureMismatchNamesBothSignatures) {
  const Signature two_args{{ValType::I32, ValType::I32}, {ValType::I32}};
  HostFunction foo{"env", "foo", two_args, &host_add, nullptr};
  auto vm = compile("v8_import_foo")->instantiate([&](std::string_view, std::string_view name) {
    return name == "foo" ? &foo : nullptr;
  });
  ASSERT_FALSE(vm.ok());
  EXPECT_THAT(vm.error(), HasSubstr("env.foo"));
  EXPECT_THAT(vm.error(), HasSubstr(kI32ToI32.to_string()));
  EXPECT_THAT(vm.error(), HasSubstr(two_args.to_string()));
}

TEST(V8RuntimeTest, MatchingImportLinksAndIsCalled) {
  HostFunction foo{"env", "foo", kI32ToI32,
                   [](WasmVm&, const uint64_t* args, void*) -> uint64_t { return args[0] * 3; },
                   nullptr};
  auto vm =
      instantiate(*compile("v8_import_foo"), [&](std::string_view module, std::string_view name) {
        return module == "env" && name == "foo" ? &foo : nullptr;
      });
  ASSERT_NE(vm, nullptr);
  CallResult r = vm->call(vm->function("call_foo"), {14});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 42u);
}

TEST(V8RuntimeTest, GlobalImportIsAnError) {
  auto vm = compile("v8_import_global")->instantiate(no_imports());
  ASSERT_FALSE(vm.ok());
  EXPECT_THAT(vm.error(), HasSubstr("global env.g"));
}

TEST_F(V8VmTest, AbsentExportIsAnEmptyHandle) {
  EXPECT_FALSE(vm_->function("no_such_export"));
  EXPECT_FALSE(vm_->function("memory"));  // not a function
  CallResult r = vm_->call(WasmFunction{}, {});
  EXPECT_FALSE(r.ok);
}

TEST_F(V8VmTest, FunctionHandleCarriesItsSignature) {
  WasmFunction f = vm_->function("add_i64");
  ASSERT_TRUE(f);
  EXPECT_EQ(f.signature, (Signature{{ValType::I64, ValType::I64}, {ValType::I64}}));
}

TEST_F(V8VmTest, CallsWithI32ArgsAndResults) {
  EXPECT_EQ(call_ok("add_i32", {2, 40}), 42u);
  EXPECT_EQ(call_ok("add_i32", {0xffffffffu, 2}), 1u);  // wraps at 32 bits
  EXPECT_EQ(call_ok("negate_i32", {1}), 0xffffffffu);   // zero-extended, not sign-extended
  EXPECT_EQ(call_ok("add_i32", {0x80000000u, 0}), 0x80000000u);
}

TEST_F(V8VmTest, CallsWithI64ArgsAndResults) {
  EXPECT_EQ(call_ok("add_i64", {1, 2}), 3u);
  EXPECT_EQ(call_ok("add_i64", {0xffffffff00000000ull, 0xffffffffull}), 0xffffffffffffffffull);
  EXPECT_EQ(call_ok("add_i64", {UINT64_MAX, 2}), 1u);
}

TEST_F(V8VmTest, WrongArgumentCountFails) {
  CallResult r = call("add_i32", {1});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("add_i32"));
}

TEST_F(V8VmTest, HostFunctionReceivesArgsAndReturnsValue) {
  EXPECT_EQ(call_ok("call_host_add", {0xffffffffu, 1ull << 40}), 0xffffffffull + (1ull << 40));
  EXPECT_EQ(call_ok("call_host_add", {1, UINT64_MAX}), 0u);
  EXPECT_EQ(host_.add_calls, 2);
}

TEST_F(V8VmTest, HostTrapAbortsTheCallWithItsMessage) {
  CallResult r = call("call_host_trap", {5});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "host says no: 5");
  // The VM stays callable; a call that does not trap succeeds.
  EXPECT_EQ(call_ok("call_host_trap", {0}), 7u);
  r = call("call_host_trap", {6});
  EXPECT_EQ(r.error, "host says no: 6");
}

TEST_F(V8VmTest, UnreachableTraps) {
  CallResult r = call("do_unreachable", {});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("RuntimeError"));
  EXPECT_THAT(r.error, HasSubstr("unreachable"));
  EXPECT_EQ(call_ok("add_i32", {1, 1}), 2u);
}

TEST_F(V8VmTest, TrapsCarryTheirWasmBacktrace) {
  CallResult r = call("nested_trap", {});
  EXPECT_FALSE(r.ok);
  // Innermost first, named from the name section (wat2wasm --debug-names).
  EXPECT_THAT(r.error, HasSubstr("unreachable (wasm backtrace: innermost@0x"));
  EXPECT_THAT(r.error, HasSubstr(" < middle@0x"));
  EXPECT_THAT(r.error, HasSubstr(" < nested_trap@0x"));
}

TEST_F(V8VmTest, OutOfBoundsAccessTraps) {
  CallResult r = call("load", {65536 - 2});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("out of bounds"));
  r = call("store", {0xfffffff0u, 1});
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr("out of bounds"));
  EXPECT_EQ(call_ok("load", {65536 - 4}), 0u);
}

TEST_F(V8VmTest, MemoryAtIsBoundsChecked) {
  const uint64_t size = vm_->memory_size();
  EXPECT_EQ(size, 65536u);
  std::string_view hello;
  ASSERT_TRUE(vm_->read(16, 5, &hello));
  EXPECT_EQ(hello, "hello");

  EXPECT_NE(vm_->memory_at(0, size), nullptr);
  EXPECT_NE(vm_->memory_at(size - 1, 1), nullptr);
  EXPECT_NE(vm_->memory_at(size, 0), nullptr);
  EXPECT_EQ(vm_->memory_at(size - 1, 2), nullptr);
  EXPECT_EQ(vm_->memory_at(size, 1), nullptr);
  EXPECT_EQ(vm_->memory_at(size + 1, 0), nullptr);
  EXPECT_EQ(vm_->memory_at(0, size + 1), nullptr);
  // ptr + size wraps around 2^64.
  EXPECT_EQ(vm_->memory_at(UINT64_MAX, 2), nullptr);
  EXPECT_EQ(vm_->memory_at(2, UINT64_MAX), nullptr);
  EXPECT_EQ(vm_->memory_at(UINT64_MAX, UINT64_MAX), nullptr);
  EXPECT_EQ(vm_->memory_at(1ull << 32, 4), nullptr);
}

TEST_F(V8VmTest, HostAndModuleShareMemory) {
  ASSERT_TRUE(vm_->set_u32(100, 0xdeadbeef));
  EXPECT_EQ(call_ok("load", {100}), 0xdeadbeefu);
  call_ok("store", {200, 0x01020304});
  uint64_t word = 0;
  ASSERT_TRUE(vm_->get_word(200, &word));
  EXPECT_EQ(word, 0x01020304u);
}

TEST_F(V8VmTest, MemoryGrowIsSeenAfterTheCall) {
  EXPECT_EQ(call_ok("grow", {1}), 1u);  // previous size in pages
  EXPECT_EQ(vm_->memory_size(), 2u * 65536);
  ASSERT_NE(vm_->memory_at(2 * 65536 - 4, 4), nullptr);
  ASSERT_TRUE(vm_->set_u32(2 * 65536 - 4, 77));
  EXPECT_EQ(call_ok("load", {2 * 65536 - 4}), 77u);
  // Beyond the declared maximum (4 pages) grow fails and nothing changes.
  EXPECT_EQ(call_ok("grow", {10}), 0xffffffffu);
  EXPECT_EQ(vm_->memory_size(), 2u * 65536);
}

TEST_F(V8VmTest, MemoryGrowIsSeenInsideHostFunctions) {
  EXPECT_EQ(vm_->memory_size(), 65536u);  // caches the one-page view
  EXPECT_EQ(call_ok("grow_then_ask_host", {}), 2u * 65536);
}

// The host's view of memory is cached between host calls; every grow inside one call (an
// unlimited memory, 33 grows to 16 MiB) must still be seen, with the bytes written before it,
// by ordinary host functions and by leaves alike.
class V8GrowTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Leaf, V8GrowTest, ::testing::Bool());

TEST_P(V8GrowTest, ManyGrowsInsideOneCallAreSeenByTheHost) {
  BasicHost host(GetParam());
  auto vm = instantiate(*compile("v8_growing"), host.resolver());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->memory_size(), 65536u);
  CallResult r = vm->call(vm->function("grow_loop"), {33, 8});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 1u + 33 * 8);
  EXPECT_EQ(vm->memory_size(), (1u + 33 * 8) * 65536);
  r = vm->call(vm->function("grow_loop"), {1, 1});  // and again in a later call
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 2u + 33 * 8);
}

// ---- leaf host functions ------------------------------------------------------------------

struct LeafHost {
  int add_calls = 0;
  int slow_calls = 0;
  bool all_in_leaf_calls = true;  // each leaf call saw WasmVm::in_leaf_call()
  bool slow_in_leaf_call = false;
  uint64_t wide_b = 0;

  static LeafHost& of(void* data) { return *static_cast<LeafHost*>(data); }
  static uint64_t add(WasmVm& vm, const uint64_t* a, void* data) {
    LeafHost& h = of(data);
    ++h.add_calls;
    h.all_in_leaf_calls = h.all_in_leaf_calls && vm.in_leaf_call();
    return a[0] + a[1];
  }
  static uint64_t wide(WasmVm& vm, const uint64_t* a, void* data) {
    LeafHost& h = of(data);
    h.all_in_leaf_calls = h.all_in_leaf_calls && vm.in_leaf_call();
    h.wide_b = a[1];
    return a[0] ^ (a[1] >> 32);
  }
  static uint64_t trap(WasmVm& vm, const uint64_t* a, void*) {
    if (a[0] != 0) vm.trap("leaf says no: " + std::to_string(a[0]));
    return 7;
  }
  static uint64_t slow(WasmVm& vm, const uint64_t* a, void* data) {
    LeafHost& h = of(data);
    ++h.slow_calls;
    h.slow_in_leaf_call = h.slow_in_leaf_call || vm.in_leaf_call();
    return a[0] + a[1];
  }
  static uint64_t none(WasmVm& vm, const uint64_t*, void* data) {
    LeafHost& h = of(data);
    h.all_in_leaf_calls = h.all_in_leaf_calls && vm.in_leaf_call();
    return 99;
  }

  const Signature i32x2{{ValType::I32, ValType::I32}, {ValType::I32}};
  std::vector<HostFunction> functions{
      {"env", "leaf_add", i32x2, &add, this, true},
      {"env", "leaf_wide", {{ValType::I32, ValType::I64}, {ValType::I32}}, &wide, this, true},
      {"env", "leaf_trap", kI32ToI32, &trap, this, true},
      {"env", "slow_add", i32x2, &slow, this, false},
      {"env", "leaf_none", {{}, {ValType::I32}}, &none, this, true},
  };
  ImportResolver resolver() { return resolver_of(functions); }
};

class V8LeafTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_ = compile("v8_leaf");
    ASSERT_NE(module_, nullptr);
    vm_ = instantiate(*module_, host_.resolver());
    ASSERT_NE(vm_, nullptr);
  }
  CallResult call(std::string_view name, std::initializer_list<uint64_t> args) {
    return vm_->call(vm_->function(name), args);
  }

  LeafHost host_;
  std::shared_ptr<CompiledModule> module_;
  std::unique_ptr<WasmVm> vm_;
};

// Each call went the fast way (in_leaf_call seen by the function), with its arguments intact.
TEST_F(V8LeafTest, LeavesAreCalledFromCompiledCode) {
  CallResult r = call("sum", {1000});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 999u * 1000 / 2 + 1000u * 1000);
  EXPECT_EQ(host_.add_calls, 1000);
  r = call("wide", {0x12345678, 0xabcdef0100000000ull});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(host_.wide_b, 0xabcdef0100000000ull);
  EXPECT_EQ(r.value, 0x12345678u ^ 0xabcdef01u);
  r = call("none", {});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 99u);
  EXPECT_TRUE(host_.all_in_leaf_calls);
  EXPECT_FALSE(vm_->in_leaf_call());  // only while one runs
}

TEST_F(V8LeafTest, OrdinaryHostFunctionsRunNextToLeaves) {
  CallResult r = call("mixed", {5});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 16u);
  EXPECT_EQ(host_.add_calls, 1);
  EXPECT_EQ(host_.slow_calls, 1);
  EXPECT_FALSE(host_.slow_in_leaf_call);
  EXPECT_TRUE(host_.all_in_leaf_calls);
}

// A leaf cannot throw: its trap stops the module at the next check. The call fails with the
// trap's message whether the module then loops forever or returns at once, and nothing the
// module calls in between runs. The VM works for the next call.
TEST_F(V8LeafTest, ATrapInALeafStopsTheModule) {
  CallResult r = call("trap_then_spin", {3});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "leaf says no: 3");
  r = call("trap_then_return", {4});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "leaf says no: 4");
  r = call("trap_then_call", {5});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "leaf says no: 5");
  EXPECT_EQ(host_.add_calls, 0);
  EXPECT_EQ(host_.slow_calls, 0);

  r = call("trap_then_return", {0});  // no trap
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 42u);
  r = call("sum", {3});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 3003u);
}

// Leaf functions are shared by the VMs of a thread (one per import index and shape): each
// must still reach its own VM's host function.
TEST(V8RuntimeTest, LeavesOfTwoVmsReachTheirOwnHosts) {
  auto module = compile("v8_leaf");
  ASSERT_NE(module, nullptr);
  LeafHost a, b;
  auto vm_a = instantiate(*module, a.resolver());
  auto vm_b = instantiate(*module, b.resolver());
  ASSERT_TRUE(vm_a && vm_b);
  ASSERT_TRUE(vm_a->call(vm_a->function("sum"), {2}).ok);
  ASSERT_TRUE(vm_b->call(vm_b->function("sum"), {5}).ok);
  EXPECT_EQ(a.add_calls, 2);
  EXPECT_EQ(b.add_calls, 5);
}

// Every 64 instances a module compiles itself afresh (leaf wrappers stay with a compilation
// until it is dropped): instances on both sides of several such steps work, old ones too.
TEST(V8RuntimeTest, ManyInstancesOfOneModuleAllWork) {
  auto module = compile("v8_leaf");
  ASSERT_NE(module, nullptr);
  LeafHost host;
  std::vector<std::unique_ptr<WasmVm>> kept;
  for (int i = 0; i < 200; ++i) {
    auto vm = instantiate(*module, host.resolver());
    ASSERT_NE(vm, nullptr) << i;
    CallResult r = vm->call(vm->function("sum"), {1});
    ASSERT_TRUE(r.ok) << i << ": " << r.error;
    if (i % 50 == 0) kept.push_back(std::move(vm));
  }
  for (auto& vm : kept) EXPECT_TRUE(vm->call(vm->function("sum"), {2}).ok);
  EXPECT_EQ(host.add_calls, 200 + 2 * static_cast<int>(kept.size()));
  EXPECT_TRUE(host.all_in_leaf_calls);
}

TEST(V8RuntimeTest, ModuleWithoutMemory) {
  auto vm = instantiate(*compile("v8_no_memory"), no_imports());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->memory_size(), 0u);
  EXPECT_NE(vm->memory_at(0, 0), nullptr);
  EXPECT_EQ(vm->memory_at(0, 1), nullptr);
  EXPECT_EQ(vm->memory_at(1, 0), nullptr);
  CallResult r = vm->call(vm->function("one"), {});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 1u);
}

TEST(V8RuntimeTest, ImportedMemoryIsCreatedWithTheDeclaredLimits) {
  auto vm = instantiate(*compile("v8_imported_memory"), no_imports());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->memory_size(), 2u * 65536);
  ASSERT_TRUE(vm->set_u32(65536 + 8, 1234));
  CallResult r = vm->call(vm->function("load"), {65536 + 8});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 1234u);
  r = vm->call(vm->function("grow"), {1});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 2u);
  EXPECT_EQ(vm->memory_size(), 3u * 65536);
  r = vm->call(vm->function("grow"), {1});  // the declared maximum is 3 pages
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 0xffffffffu);
}

// v8_start.wat: the start function runs during instantiate() and its host function already sees
// the imported memory.
struct StartHost {
  uint64_t word_seen = 0;
  bool refuse = false;
  HostFunction on_start{"env", "on_start", {{ValType::I32}, {}}, &StartHost::on_start_cb, this};
  static uint64_t on_start_cb(WasmVm& vm, const uint64_t* args, void* data) {
    auto* host = static_cast<StartHost*>(data);
    if (!vm.get_word(args[0], &host->word_seen)) host->word_seen = UINT64_MAX;
    if (host->refuse) vm.trap("start refused");
    return 0;
  }
};

TEST(V8RuntimeTest, StartFunctionRunsAndSeesImportedMemory) {
  StartHost host;
  auto resolver = [&](std::string_view, std::string_view name) {
    return name == "on_start" ? &host.on_start : nullptr;
  };
  auto module = compile("v8_start");
  ASSERT_NE(module, nullptr);
  auto vm = instantiate(*module, resolver);
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(host.word_seen, 1234u);

  host.refuse = true;
  auto failed = module->instantiate(resolver);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.error(), HasSubstr("start refused"));
}

// v8_loop.wat: env.call_spin calls back into the module's endless `spin`.
struct LoopHost {
  HostFunction call_spin{"env", "call_spin", {}, &LoopHost::spin, nullptr};
  static uint64_t spin(WasmVm& vm, const uint64_t*, void*) {
    CallResult inner = vm.call(vm.function("spin"), {});
    EXPECT_FALSE(inner.ok);
    return 0;
  }
  ImportResolver resolver() {
    return [this](std::string_view, std::string_view name) {
      return name == "call_spin" ? &call_spin : nullptr;
    };
  }
};

// Runs `export_name` on `vm` while another thread keeps calling terminate() until it returns.
CallResult call_and_terminate(WasmVm& vm, std::string_view export_name) {
  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    // terminate() only stops a running call, so repeat until the call has started and stopped.
    for (int i = 0; i < 1000 && !returned.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      vm.terminate();
    }
  });
  CallResult r = vm.call(vm.function(export_name), {});
  returned = true;
  watchdog.join();
  return r;
}

TEST(V8RuntimeTest, TerminateStopsAnEndlessLoop) {
  LoopHost host;
  auto vm = instantiate(*compile("v8_loop"), host.resolver());
  ASSERT_NE(vm, nullptr);
  CallResult r = call_and_terminate(*vm, "spin");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "terminated");
  // The isolate is usable again, for this VM and for others on the thread.
  r = vm->call(vm->function("answer"), {});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 42u);
  auto other = instantiate(*compile("v8_no_memory"), no_imports());
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(other->call(other->function("one"), {}).ok);
}

TEST(V8RuntimeTest, TerminateStopsALoopInsideANestedCall) {
  LoopHost host;
  auto vm = instantiate(*compile("v8_loop"), host.resolver());
  ASSERT_NE(vm, nullptr);
  CallResult r = call_and_terminate(*vm, "spin_via_host");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "terminated");
  r = vm->call(vm->function("answer"), {});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 42u);
}

TEST(V8RuntimeTest, TerminateWhileIdleDoesNotAffectLaterCalls) {
  auto vm = instantiate(*compile("v8_no_memory"), no_imports());
  ASSERT_NE(vm, nullptr);
  vm->terminate();
  CallResult r = vm->call(vm->function("one"), {});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value, 1u);
}

TEST(V8RuntimeTest, ThreadsInstantiateOneModuleWithIndependentMemory) {
  auto module = compile("v8_basic");
  ASSERT_NE(module, nullptr);
  constexpr int kThreads = 2;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      BasicHost host;
      auto made = module->instantiate(host.resolver());
      if (!made.ok()) {
        ++failures;
        return;
      }
      WasmVm& vm = *made.value();
      const WasmFunction store = vm.function("store");
      const WasmFunction load = vm.function("load");
      const WasmFunction host_add = vm.function("call_host_add");
      for (uint32_t i = 0; i < 2000; ++i) {
        const uint32_t mine = (static_cast<uint32_t>(t) << 24) | i;
        if (!vm.call(store, {64, mine}).ok) ++failures;
        CallResult got = vm.call(load, {64});
        if (!got.ok || got.value != mine) ++failures;
        uint64_t word = 0;
        if (!vm.get_word(64, &word) || word != mine) ++failures;
        got = vm.call(host_add, {i, static_cast<uint64_t>(t)});
        if (!got.ok || got.value != i + static_cast<uint64_t>(t)) ++failures;
      }
      if (host.add_calls != 2000) ++failures;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(V8RuntimeTest, VmsOnAThreadThatExits) {
  auto module = compile("v8_basic");
  ASSERT_NE(module, nullptr);
  std::thread worker([&] {
    BasicHost host;
    auto first = instantiate(*module, host.resolver());
    auto second = instantiate(*module, host.resolver());
    ASSERT_NE(first, nullptr);
    ASSERT_NE(second, nullptr);
    ASSERT_TRUE(first->set_u32(0, 1));
    ASSERT_TRUE(second->set_u32(0, 2));
    EXPECT_EQ(first->call(first->function("load"), {0}).value, 1u);
    EXPECT_EQ(second->call(second->function("load"), {0}).value, 2u);
    first.reset();  // `second` outlives the call below and goes with the thread's locals
  });
  worker.join();
  // The module outlives the thread's isolate and still instantiates here.
  BasicHost host;
  auto vm = instantiate(*module, host.resolver());
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->call(vm->function("add_i32"), {20, 22}).value, 42u);
}

}  // namespace
}  // namespace sluice::wasm
