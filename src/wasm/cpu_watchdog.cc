#include "wasm/cpu_watchdog.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

constexpr std::chrono::milliseconds kSamplePeriod{5};

// One thread that runs Wasm. The owner writes `vm`, `call` and `budget_ms`; the watchdog reads
// them, and keeps its own view of the current call under `mu`.
struct Slot {
  std::mutex mu;  // held by the watchdog while it looks at `vm` (forget_watched_vm waits on it)
  std::atomic<WasmVm*> vm{nullptr};  // the VM a top-level call runs in, or null
  std::atomic<uint64_t> call{0};     // numbers the owner's top-level calls
  std::atomic<uint32_t> budget_ms{0};
  std::atomic<uint64_t> stopped_call{0};  // the call the watchdog terminated
  clockid_t clock{};                      // the owner thread's CPU clock
  uint64_t seen_call = 0;                 // the watchdog's: the call it first saw...
  int64_t seen_cpu_ns = 0;                // ...and the thread's CPU time then
};

class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog* w = new Watchdog();  // never destroyed: its thread samples until exit
    return *w;
  }

  void add(std::shared_ptr<Slot> slot) {
    std::lock_guard lock(mu_);
    slots_.push_back(std::move(slot));
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
  }
  void remove(Slot* slot) {
    std::lock_guard lock(mu_);
    slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                                [slot](const auto& s) { return s.get() == slot; }),
                 slots_.end());
  }

  std::atomic<uint64_t> terminations{0};

 private:
  void run() {
    std::vector<std::shared_ptr<Slot>> slots;
    for (;;) {
      std::this_thread::sleep_for(kSamplePeriod);
      {
        std::lock_guard lock(mu_);
        slots = slots_;
      }
      for (const auto& s : slots) check(*s);
      slots.clear();
    }
  }

  void check(Slot& s) {
    std::lock_guard lock(s.mu);
    const uint64_t call = s.call.load(std::memory_order_acquire);
    WasmVm* vm = s.vm.load(std::memory_order_acquire);
    if (vm == nullptr) return;  // idle
    timespec ts{};
    if (clock_gettime(s.clock, &ts) != 0) return;  // the thread is gone
    const int64_t cpu = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    if (call != s.seen_call) {  // a call not seen before: its budget counts from here
      s.seen_call = call;
      s.seen_cpu_ns = cpu;
      return;
    }
    const uint32_t budget = s.budget_ms.load(std::memory_order_relaxed);
    if (budget == 0 || s.stopped_call.load(std::memory_order_relaxed) == call) return;
    if (cpu - s.seen_cpu_ns < static_cast<int64_t>(budget) * 1'000'000) return;
    // The call may have ended since it was read: a new one must not pay for it. (A call that
    // ends and another that starts in the next few nanoseconds could still be hit; a call gets
    // here only after it used its whole budget.)
    if (s.call.load(std::memory_order_acquire) != call ||
        s.vm.load(std::memory_order_acquire) != vm) {
      return;
    }
    s.stopped_call.store(call, std::memory_order_release);
    vm->terminate();
    terminations.fetch_add(1, std::memory_order_relaxed);
  }

  std::mutex mu_;
  std::vector<std::shared_ptr<Slot>> slots_;
  bool started_ = false;
};

// The calling thread's slot: registered on first use, unregistered when the thread exits.
struct ThreadSlot {
  std::shared_ptr<Slot> slot = std::make_shared<Slot>();
  ThreadSlot() {
    pthread_getcpuclockid(pthread_self(), &slot->clock);
    Watchdog::get().add(slot);
  }
  ~ThreadSlot() { Watchdog::get().remove(slot.get()); }
};

Slot& this_slot() {
  thread_local ThreadSlot t;
  return *t.slot;
}

}  // namespace

WatchedCall::WatchedCall(WasmVm& vm, uint32_t budget_ms) {
  if (budget_ms == 0) return;
  Slot& s = this_slot();
  s.budget_ms.store(budget_ms, std::memory_order_relaxed);
  s.vm.store(&vm, std::memory_order_release);
  // Only this thread writes `call`: a plain increment, published after `vm`.
  call_ = s.call.load(std::memory_order_relaxed) + 1;
  s.call.store(call_, std::memory_order_release);
}

WatchedCall::~WatchedCall() {
  if (call_ != 0) this_slot().vm.store(nullptr, std::memory_order_release);
}

bool WatchedCall::over_budget() const {
  return call_ != 0 && this_slot().stopped_call.load(std::memory_order_acquire) == call_;
}

void forget_watched_vm() {
  Slot& s = this_slot();
  std::lock_guard lock(s.mu);
}

uint64_t watchdog_terminations() {
  return Watchdog::get().terminations.load(std::memory_order_relaxed);
}

}  // namespace sluice::wasm
