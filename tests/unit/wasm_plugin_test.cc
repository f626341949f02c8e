// Plugin: load-time canary errors, one instance per thread, and VM sharing by VM key.
#include "wasm/plugin.h"

#include "wasm/cpu_watchdog.h"

#include "test_modules.h"

#include <thread>

#include <gtest/gtest.h>

namespace sluice::wasm {
namespace {

using sluice::testing::read_test_module;

PluginSpec basic_spec(std::string name, std::string vm_id) {
  PluginSpec spec;
  spec.name = std::move(name);
  spec.root_id = spec.name + "_root";
  spec.vm_id = std::move(vm_id);
  spec.runtime = "envoy.wasm.runtime.v8";
  spec.code = read_test_module("filter_basic");
  spec.code_origin = "filter_basic.wasm";
  spec.configuration = "cfg-" + spec.name;
  return spec;
}

TEST(WasmPlugin, PluginsWithTheSameVmKeyShareOneInstancePerThread) {
  auto a = Plugin::load(basic_spec("a", "shared"));
  auto b = Plugin::load(basic_spec("b", "shared"));
  auto c = Plugin::load(basic_spec("c", "other"));
  ASSERT_TRUE(a && b && c) << (a ? "" : a.error()) << (b ? "" : b.error());
  std::thread worker([&] {
    Plugin::Running* ra = (*a)->running_on_this_thread();
    Plugin::Running* rb = (*b)->running_on_this_thread();
    Plugin::Running* rc = (*c)->running_on_this_thread();
    ASSERT_TRUE(ra && rb && rc);
    EXPECT_EQ(ra->instance.get(), rb->instance.get());
    EXPECT_NE(ra->root, rb->root);  // one root context per plugin
    EXPECT_NE(ra->root->id(), rb->root->id());
    EXPECT_EQ(ra->root->plugin()->name, "a");
    EXPECT_EQ(rb->root->plugin()->name, "b");
    EXPECT_NE(ra->instance.get(), rc->instance.get());  // another vm_id: another VM
    // Asking again returns the same running instance.
    EXPECT_EQ((*a)->running_on_this_thread(), ra);
    release_thread_instances();
  });
  worker.join();
}

TEST(WasmPlugin, EachThreadGetsItsOwnInstance) {
  auto a = Plugin::load(basic_spec("a", ""));
  ASSERT_TRUE(a) << a.error();
  WasmInstance* first = nullptr;
  WasmInstance* second = nullptr;
  std::thread t1([&] {
    first = (*a)->running_on_this_thread()->instance.get();
    release_thread_instances();
  });
  t1.join();
  std::thread t2([&] {
    auto* r = (*a)->running_on_this_thread();
    ASSERT_TRUE(r);
    second = r->instance.get();
    EXPECT_FALSE(r->instance->failed());
    release_thread_instances();
  });
  t2.join();
  EXPECT_NE(first, nullptr);
  EXPECT_NE(second, nullptr);
}

TEST(WasmPlugin, LoadErrorsNameThePluginAndTheStep) {
  PluginSpec unknown = basic_spec("x", "");
  unknown.runtime = "envoy.wasm.runtime.wavm";
  auto r = Plugin::load(unknown);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("unknown Wasm runtime 'envoy.wasm.runtime.wavm'"), std::string::npos)
      << r.error();

  PluginSpec garbage = basic_spec("g", "");
  garbage.code = "not a module";
  r = Plugin::load(garbage);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot load filter_basic.wasm"), std::string::npos) << r.error();

  PluginSpec missing_null = basic_spec("n", "");
  missing_null.runtime = "envoy.wasm.runtime.null";
  missing_null.code = "sluice.no_such_plugin";
  r = Plugin::load(missing_null);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("no null-runtime plugin named 'sluice.no_such_plugin'"),
            std::string::npos)
      << r.error();
}

// Null-runtime plugins are trusted native code without CPU budgets: loading one, running it on
// a worker and dropping it must not start the CPU watchdog thread (it used to start, and then
// woke up every 5 ms for the life of the process).
TEST(WasmPlugin, NullRuntimePluginsStartNoCpuWatchdog) {
  if (watchdog_started()) GTEST_SKIP() << "another test in this process started the watchdog";
  PluginSpec spec = basic_spec("native", "");
  spec.runtime = "envoy.wasm.runtime.null";
  spec.code = "sluice.add_header";
  spec.root_id = "add_header";
  spec.configuration = "request.set.x-a = 1";
  auto p = Plugin::load(spec);
  ASSERT_TRUE(p) << p.error();
  std::thread worker([&] {
    Plugin::Running* r = (*p)->running_on_this_thread();
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->instance->failed());
    release_thread_instances();
  });
  worker.join();
  p->reset();
  EXPECT_FALSE(watchdog_started());
}

}  // namespace
}  // namespace sluice::wasm
