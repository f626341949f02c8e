#include "wasm/cpu_watchdog.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "wasm/vm/wasm_vm.h"

namespace sluice::wasm {
namespace {

constexpr std::chrono::milliseconds kSamplePeriod{5};
// An idle proxy should not wake up 200 times a second: after this many samples in a row that
// found no thread in a watched call (one second), the watchdog parks until the next watched call
// starts (WatchedCall wakes it). Under load some sample always finds a call, so it never parks.
constexpr int kIdleSamplesBeforePark = 200;
// A call that starts while the watchdog is parking can miss its flag (the flag and the call's
// marks are not ordered against each other): a parked watchdog still samples this often, so
// such a call is looked at late, never missed.
constexpr std::chrono::milliseconds kParkedPeriod{250};

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
  bool started() {
    std::lock_guard lock(mu_);
    return started_;
  }

  // At the start of every watched call: one load, and a wake-up only when parked.
  void on_call() {
    if (parked_.load(std::memory_order_relaxed)) wake();
  }

  std::atomic<uint64_t> terminations{0};
  std::atomic<uint64_t> samples{0};

 private:
  void wake() {
    {
      std::lock_guard lock(park_mu_);
      parked_.store(false, std::memory_order_relaxed);
    }
    park_cv_.notify_one();
  }

  void run() {
    std::vector<std::shared_ptr<Slot>> slots;
    int idle_samples = 0;
    for (;;) {
      if (parked_.load(std::memory_order_relaxed)) {
        std::unique_lock lock(park_mu_);
        if (park_cv_.wait_for(lock, kParkedPeriod,
                              [this] { return !parked_.load(std::memory_order_relaxed); })) {
          idle_samples = 0;  // woken by a call: sample closely again for a while
        }
      } else {
        std::this_thread::sleep_for(kSamplePeriod);
      }
      {
        std::lock_guard lock(mu_);
        slots = slots_;
      }
      bool busy = false;
      for (const auto& s : slots) busy |= check(*s);
      slots.clear();
      samples.fetch_add(1, std::memory_order_relaxed);
      if (busy) {
        idle_samples = 0;
        parked_.store(false, std::memory_order_relaxed);  // a call the wake-up missed
      } else if (++idle_samples >= kIdleSamplesBeforePark) {
        parked_.store(true, std::memory_order_relaxed);
      }
    }
  }

  // Returns whether the slot's thread is in a watched call.
  bool check(Slot& s) {
    std::lock_guard lock(s.mu);
    const uint64_t call = s.call.load(std::memory_order_acquire);
    WasmVm* vm = s.vm.load(std::memory_order_acquire);
    if (vm == nullptr) return false;  // idle
    timespec ts{};
    if (clock_gettime(s.clock, &ts) != 0) return false;  // the thread is gone
    const int64_t cpu = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    if (call != s.seen_call) {  // a call not seen before: its budget counts from here
      s.seen_call = call;
      s.seen_cpu_ns = cpu;
      return true;
    }
    const uint32_t budget = s.budget_ms.load(std::memory_order_relaxed);
    if (budget == 0 || s.stopped_call.load(std::memory_order_relaxed) == call) return true;
    if (cpu - s.seen_cpu_ns < static_cast<int64_t>(budget) * 1'000'000) return true;
    // The call may have ended since it was read: a new one must not pay for it. (A call that
    // ends and another that starts in the next few nanoseconds could still be hit; a call gets
    // here only after it used its whole budget.)
    if (s.call.load(std::memory_order_acquire) != call ||
        s.vm.load(std::memory_order_acquire) != vm) {
      return true;
    }
    s.stopped_call.store(call, std::memory_order_release);
    vm->terminate();
    terminations.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  std::mutex mu_;
  std::vector<std::shared_ptr<Slot>> slots_;
  bool started_ = false;
  std::atomic<bool> parked_{false};
  std::mutex park_mu_;
  std::condition_variable park_cv_;
};

// The calling thread's slot, once it has one (see this_slot).
thread_local Slot* tls_slot = nullptr;

// The calling thread's slot: registered on first use, unregistered when the thread exits.
struct ThreadSlot {
  std::shared_ptr<Slot> slot = std::make_shared<Slot>();
  ThreadSlot() {
    pthread_getcpuclockid(pthread_self(), &slot->clock);
    Watchdog::get().add(slot);
    tls_slot = slot.get();
  }
  ~ThreadSlot() {
    tls_slot = nullptr;
    Watchdog::get().remove(slot.get());
  }
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
  Watchdog::get().on_call();
}

WatchedCall::~WatchedCall() {
  if (call_ != 0) this_slot().vm.store(nullptr, std::memory_order_release);
}

bool WatchedCall::over_budget() const {
  return call_ != 0 && this_slot().stopped_call.load(std::memory_order_acquire) == call_;
}

void forget_watched_vm() {
  // A thread that never made a watched call (null-runtime plugins are not watched) has no slot
  // the watchdog could be looking at, and gets none: that would start the watchdog for nothing.
  if (Slot* s = tls_slot) {
    std::lock_guard lock(s->mu);
  }
}

uint64_t watchdog_terminations() {
  return Watchdog::get().terminations.load(std::memory_order_relaxed);
}

uint64_t watchdog_samples() { return Watchdog::get().samples.load(std::memory_order_relaxed); }

bool watchdog_started() { return Watchdog::get().started(); }

}  // namespace sluice::wasm
