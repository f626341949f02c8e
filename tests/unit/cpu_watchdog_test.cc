// The CPU watchdog: a call past its budget is stopped, an idle watchdog parks (an idle proxy is
// not woken up every 5 ms) and wakes for the next watched call, and threads that never make a
// watched call never start it.
#include "wasm/cpu_watchdog.h"

#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

// Only what the watchdog touches: terminate(), from its thread.
class SpinningVm final : public WasmVm {
 public:
  std::string_view runtime_name() const override { return "test"; }
  WasmFunction function(std::string_view) override { return {}; }
  CallResult call(const WasmFunction&, std::initializer_list<uint64_t>) override { return {}; }
  void refresh_memory_view() override { memory_view_ = MemoryView{0, 0, false}; }  // none
  uint32_t word_size() const override { return 4; }
  void trap(std::string) override {}
  void terminate() override { terminated.store(true); }

  std::atomic<bool> terminated{false};
};

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Burns this thread's CPU inside a watched call until the watchdog stops it (or 5 s of CPU).
// Returns the CPU time the call used, in ms.
double spin_until_stopped(SpinningVm& vm, uint32_t budget_ms, bool* over_budget) {
  const double start = thread_cpu_ms();
  WatchedCall call(vm, budget_ms);
  volatile uint64_t sink = 0;
  while (!vm.terminated.load(std::memory_order_relaxed) && thread_cpu_ms() - start < 5000) {
    for (int i = 0; i < 10000; ++i) sink = sink + i;
  }
  *over_budget = call.over_budget();
  return thread_cpu_ms() - start;
}

// Samples the watchdog took during `window`.
uint64_t samples_during(std::chrono::milliseconds window) {
  const uint64_t before = watchdog_samples();
  std::this_thread::sleep_for(window);
  return watchdog_samples() - before;
}

// A looping call with a budget of 50 ms is stopped, once it has used the budget and soon after.
void expect_loop_stopped_in_time() {
  SpinningVm vm;
  bool over = false;
  const double used = spin_until_stopped(vm, 50, &over);
  EXPECT_TRUE(vm.terminated.load());
  EXPECT_TRUE(over);
  EXPECT_GE(used, 50.0);
  EXPECT_LT(used, 1000.0);  // a few 5 ms samples late at most; generous for a loaded machine
}

TEST(CpuWatchdog, StopsACallPastItsBudget) {
  expect_loop_stopped_in_time();
  EXPECT_GE(watchdog_terminations(), 1u);
}

TEST(CpuWatchdog, ACallWithinItsBudgetIsNotStopped) {
  SpinningVm vm;
  {
    WatchedCall call(vm, 5000);
    const double start = thread_cpu_ms();
    volatile uint64_t sink = 0;
    while (thread_cpu_ms() - start < 30) sink = sink + 1;
    EXPECT_FALSE(call.over_budget());
  }
  EXPECT_FALSE(vm.terminated.load());
}

TEST(CpuWatchdog, ParksWhenIdleAndStillStopsTheNextLoopingCall) {
  SpinningVm warm_up;
  { WatchedCall call(warm_up, 50); }  // starts the watchdog
  ASSERT_TRUE(watchdog_started());
  // Idle for a second, it parks: from 200 samples a second to a few (it is bounded by the
  // samples its parked wait still takes, every 250 ms).
  uint64_t rate = 0;
  for (int tries = 0; tries < 40; ++tries) {
    rate = samples_during(std::chrono::milliseconds(500));
    if (rate <= 4) break;
  }
  EXPECT_LE(rate, 4u) << "the watchdog kept sampling an idle process";
  // Parked, it wakes for a call: a loop is stopped as promptly as before.
  expect_loop_stopped_in_time();
  // And while calls come it samples closely again.
  EXPECT_GT(samples_during(std::chrono::milliseconds(200)), 4u);
}

TEST(CpuWatchdog, ThreadsWithoutWatchedCallsNeverStartIt) {
  if (watchdog_started()) GTEST_SKIP() << "another test in this process started the watchdog";
  std::thread worker([] {
    SpinningVm vm;
    { WatchedCall unwatched(vm, 0); }  // budget 0: not watched (the null runtime's calls)
    forget_watched_vm();               // as a destroyed instance does
  });
  worker.join();
  EXPECT_FALSE(watchdog_started());
}

}  // namespace
}  // namespace sluice::wasm
