// A timer for deadlines that are usually pushed back or cancelled long before they expire: idle
// timeouts, request and route timeouts. Moving the deadline later or cancelling it touches no
// timer queue: the wait already armed fires at its old time, sees the deadline moved, and waits
// again for the rest. Only a deadline earlier than the armed wait re-arms at once. On a busy
// keep-alive connection this turns several timer-queue operations per request into none.
//
// Single-threaded (the owning loop's thread). The callback never runs after cancel() (unless the
// timer is armed again) or after destruction.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <asio.hpp>

namespace sluice::net {

class LazyTimer {
 public:
  using Clock = std::chrono::steady_clock;

  LazyTimer(asio::io_context& loop, std::function<void()> on_expire);
  ~LazyTimer();
  LazyTimer(const LazyTimer&) = delete;
  LazyTimer& operator=(const LazyTimer&) = delete;

  // Replaces any pending deadline.
  void expires_at(Clock::time_point deadline);
  void expires_after(Clock::duration d) { expires_at(Clock::now() + d); }
  void cancel() { deadline_ = kNever; }
  bool pending() const { return deadline_ != kNever; }

 private:
  static constexpr Clock::time_point kNever = Clock::time_point::max();
  void arm(Clock::time_point when);
  void on_wait_done();

  asio::steady_timer timer_;
  std::function<void()> on_expire_;
  Clock::time_point deadline_ = kNever;  // when the callback is due
  Clock::time_point armed_ = kNever;     // when the asio wait in flight fires (kNever: none)
  // Completions already queued when the timer is destroyed must not touch it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::net
