// net::LazyTimer: deadlines that move later or get cancelled without re-arming the underlying
// timer, and callbacks that never run early, late-cancelled, or after destruction.
#include "net/lazy_timer.h"

#include <chrono>
#include <memory>

#include <gtest/gtest.h>

namespace sluice::net {
namespace {

using Clock = LazyTimer::Clock;
using std::chrono::milliseconds;

// Runs the loop until `done` or a generous bound.
void RunUntil(asio::io_context& loop, const bool& done) {
  const auto limit = Clock::now() + std::chrono::seconds(10);
  while (!done && Clock::now() < limit) {
    loop.run_for(milliseconds(5));
    loop.restart();
  }
}

TEST(LazyTimer, FiresOnceAtItsDeadline) {
  asio::io_context loop;
  int fired = 0;
  Clock::time_point fired_at;
  bool done = false;
  LazyTimer t(loop, [&] {
    ++fired;
    fired_at = Clock::now();
    done = true;
  });
  const auto deadline = Clock::now() + milliseconds(20);
  t.expires_at(deadline);
  EXPECT_TRUE(t.pending());
  RunUntil(loop, done);
  EXPECT_EQ(fired, 1);
  EXPECT_GE(fired_at, deadline);
  EXPECT_FALSE(t.pending());
  loop.run_for(milliseconds(30));
  EXPECT_EQ(fired, 1);
}

TEST(LazyTimer, DeadlinePushedBackFiresAtTheNewDeadline) {
  asio::io_context loop;
  Clock::time_point fired_at;
  bool done = false;
  LazyTimer t(loop, [&] {
    fired_at = Clock::now();
    done = true;
  });
  t.expires_after(milliseconds(10));
  const auto later = Clock::now() + milliseconds(60);
  t.expires_at(later);  // no re-arm: the first wait fires, finds the deadline moved, waits again
  RunUntil(loop, done);
  ASSERT_TRUE(done);
  EXPECT_GE(fired_at, later);
}

TEST(LazyTimer, EarlierDeadlineReplacesALaterOne) {
  asio::io_context loop;
  bool done = false;
  Clock::time_point fired_at;
  LazyTimer t(loop, [&] {
    fired_at = Clock::now();
    done = true;
  });
  const auto start = Clock::now();
  t.expires_after(std::chrono::seconds(30));
  t.expires_after(milliseconds(10));
  RunUntil(loop, done);
  ASSERT_TRUE(done);  // well before the 30 s one
  EXPECT_LT(fired_at - start, std::chrono::seconds(30));
}

TEST(LazyTimer, CancelledDeadlineNeverFires) {
  asio::io_context loop;
  int fired = 0;
  LazyTimer t(loop, [&] { ++fired; });
  t.expires_after(milliseconds(10));
  t.cancel();
  EXPECT_FALSE(t.pending());
  loop.run_for(milliseconds(50));
  EXPECT_EQ(fired, 0);
  // Armed again after a cancel, it fires.
  bool done = false;
  LazyTimer t2(loop, [&] { done = true; });
  t2.expires_after(milliseconds(5));
  t2.cancel();
  t2.expires_after(milliseconds(5));
  RunUntil(loop, done);
  EXPECT_TRUE(done);
}

TEST(LazyTimer, DestroyedWithAWaitInFlightIsSafe) {
  asio::io_context loop;
  int fired = 0;
  {
    auto t = std::make_unique<LazyTimer>(loop, [&] { ++fired; });
    t->expires_after(milliseconds(1));
    loop.run_for(milliseconds(20));  // likely completed; maybe not yet run
    t->expires_after(milliseconds(1));
  }
  loop.restart();
  loop.run_for(milliseconds(30));
  EXPECT_LE(fired, 1);  // the first expiry may have run; nothing after destruction
}

TEST(LazyTimer, CallbackMayDestroyItsOwner) {
  asio::io_context loop;
  bool done = false;
  std::unique_ptr<LazyTimer> t;
  t = std::make_unique<LazyTimer>(loop, [&] {
    t.reset();
    done = true;
  });
  t->expires_after(milliseconds(5));
  RunUntil(loop, done);
  EXPECT_TRUE(done);
  EXPECT_EQ(t, nullptr);
}

}  // namespace
}  // namespace sluice::net
