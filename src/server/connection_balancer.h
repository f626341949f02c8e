// Envoy's exact connection balancing (listener connection_balance_config.exact_balance): the
// worker that accepts a connection hands it to the worker with the fewest of the listener's
// connections. Without it the kernel spreads connections by a hash of their addresses
// (SO_REUSEPORT), which leaves workers uneven with few long-lived connections. Costs a lock per
// accepted connection, and a post to another worker's loop when the acceptor is not the least
// loaded, so it suits few long-lived connections (Envoy says the same).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sluice::server {

class ConnectionBalancer {
 public:
  explicit ConnectionBalancer(size_t workers) : counts_(workers, 0) {}

  // The worker a connection accepted by `accepting` goes to, counted there from now on: the
  // one with the fewest connections, the acceptor itself on a tie (no hand-over).
  size_t pick(size_t accepting) {
    std::lock_guard lock(mutex_);
    size_t best = accepting < counts_.size() ? accepting : 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] < counts_[best]) best = i;
    }
    ++counts_[best];
    return best;
  }

  // Counts a connection on `worker` that another balancer handed it (a reload replaced it).
  void add(size_t worker) {
    std::lock_guard lock(mutex_);
    if (worker < counts_.size()) ++counts_[worker];
  }

  // A connection counted on `worker` closed (or was never served).
  void release(size_t worker) {
    std::lock_guard lock(mutex_);
    if (worker < counts_.size()) --counts_[worker];
  }

  // The connections each worker serves now (tests, admin).
  std::vector<int64_t> counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<int64_t> counts_;
};

}  // namespace sluice::server
