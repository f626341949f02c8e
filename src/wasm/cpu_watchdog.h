// The CPU budget of Wasm callbacks: a looping plugin must not take its worker down. Each thread
// that runs Wasm has a slot; a top-level call into a VM marks it (two atomic stores, no syscall,
// no lock), and one watchdog thread samples each busy thread's CPU clock every few milliseconds
// (and parks while no call comes, so an idle proxy is not woken up 200 times a second).
// A call that has used more than its budget of its thread's CPU time is stopped with
// WasmVm::terminate() (V8's TerminateExecution); the caller sees the call fail and fails the VM.
//
// CPU time, not wall time: a worker that the kernel does not schedule (a loaded machine) does not
// spend its plugin's budget. The budget is honoured within about one sampling period.
#pragma once

#include <cstdint>

namespace sluice::wasm {

class WasmVm;

// Marks the calling thread busy in `vm` for the scope of one top-level call, with a budget of
// `budget_ms` of the thread's CPU time (0: unwatched). Not nested: the host's own nested calls
// (malloc from a host function) belong to the outer call.
class WatchedCall {
 public:
  WatchedCall(WasmVm& vm, uint32_t budget_ms);
  ~WatchedCall();
  WatchedCall(const WatchedCall&) = delete;
  WatchedCall& operator=(const WatchedCall&) = delete;
  // After the call: whether the watchdog stopped it for its budget.
  bool over_budget() const;

 private:
  uint64_t call_ = 0;
};

// Before a VM that ran on this thread is destroyed: waits until the watchdog is not looking at it.
void forget_watched_vm();

// How many calls the watchdog has stopped, process-wide (for tests and stats).
uint64_t watchdog_terminations();
// How many times it has sampled the threads, and whether it runs at all (tests): it starts with
// the first watched call, samples every few milliseconds while calls come, and parks after a
// second without one, waking with the next.
uint64_t watchdog_samples();
bool watchdog_started();

}  // namespace sluice::wasm
