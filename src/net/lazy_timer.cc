#include "net/lazy_timer.h"

namespace sluice::net {

LazyTimer::LazyTimer(asio::io_context& loop, std::function<void()> on_expire)
    : timer_(loop), on_expire_(std::move(on_expire)) {}

LazyTimer::~LazyTimer() { *alive_ = false; }

void LazyTimer::expires_at(Clock::time_point deadline) {
  deadline_ = deadline;
  if (deadline < armed_) arm(deadline);  // (armed_ is kNever when no wait is in flight)
}

void LazyTimer::arm(Clock::time_point when) {
  armed_ = when;
  timer_.expires_at(when);  // cancels a wait in flight: its completion is ignored below
  timer_.async_wait([this, alive = alive_](const asio::error_code& ec) {
    if (ec == asio::error::operation_aborted || !*alive) return;
    on_wait_done();
  });
}

void LazyTimer::on_wait_done() {
  armed_ = kNever;
  if (deadline_ == kNever) return;  // cancelled meanwhile
  if (Clock::now() < deadline_) {
    arm(deadline_);  // pushed back meanwhile: wait for the rest
    return;
  }
  deadline_ = kNever;
  // A copy: the callback may destroy this timer (and the function object with it).
  const std::function<void()> fn = on_expire_;
  fn();
}

}  // namespace sluice::net
