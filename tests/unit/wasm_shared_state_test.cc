// The process-wide Proxy-Wasm state without a VM (src/wasm/shared_state.h): shared data and its
// CAS under threads, queue bounds and notification accounting, and the lifetime of a vm_id's
// state. Host functions over it are tested on both runtimes in wasm_host_test.cc.
#include "wasm/shared_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace sluice::wasm {
namespace {

// Unique per test (and --gtest_repeat round): states are process-wide.
std::string unique(std::string_view what) {
  static int generation = 0;
  return fmt::format("shared_state_test.{}.{}.{}",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), ++generation,
                     what);
}

TEST(SharedData, CasVersionsEveryWrite) {
  SharedData d;
  EXPECT_FALSE(d.get("k"));
  EXPECT_EQ(d.set("k", "a", 0), WasmResult::Ok);
  const uint32_t c1 = d.get("k")->cas;
  EXPECT_NE(c1, 0u);
  EXPECT_EQ(d.set("k", "b", c1 + 1), WasmResult::CasMismatch);
  EXPECT_EQ(d.get("k")->value, "a");
  EXPECT_EQ(d.set("k", "b", c1), WasmResult::Ok);
  const uint32_t c2 = d.get("k")->cas;
  EXPECT_NE(c2, c1);
  EXPECT_EQ(d.set("k", "c", c1), WasmResult::CasMismatch);
  EXPECT_EQ(d.set("new", "x", 77), WasmResult::Ok);  // absent: created whatever the cas
  EXPECT_EQ(d.get("new")->value, "x");
}

TEST(SharedData, ManyKeysLandInEveryShardAndStayApart) {
  SharedData d;
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(d.set(std::to_string(i), std::to_string(i * 2), 0), WasmResult::Ok);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(d.get(std::to_string(i))->value, std::to_string(i * 2));
}

// Four threads add to one counter and to a key of their own with read + CAS write: the shared
// counter loses no increment, and the private keys never see a mismatch.
TEST(SharedData, ConcurrentCasIncrementsLoseNothing) {
  SharedData d;
  ASSERT_EQ(d.set("counter", "0", 0), WasmResult::Ok);
  constexpr int kThreads = 4, kEach = 2000;
  std::atomic<int> private_mismatches{0};
  const auto increment = [&](const std::string& key, bool own) {
    while (true) {
      auto v = d.get(key);
      const std::string next = std::to_string((v ? std::stoi(v->value) : 0) + 1);
      WasmResult r = d.set(key, next, v ? v->cas : 0);
      if (r == WasmResult::Ok) return;
      ASSERT_EQ(r, WasmResult::CasMismatch);
      if (own) ++private_mismatches;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "own" + std::to_string(t);
      for (int i = 0; i < kEach; ++i) {
        increment("counter", false);
        increment(own, true);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(d.get("counter")->value, std::to_string(kThreads * kEach));
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(d.get("own" + std::to_string(t))->value, std::to_string(kEach));
  EXPECT_EQ(private_mismatches, 0);
}

// A notifier that keeps the notifications it is given (as an unrun loop would).
struct Collector {
  std::vector<std::shared_ptr<QueueNotification>> held;
  QueueNotifier notifier() {
    return std::make_shared<const std::function<void(std::shared_ptr<QueueNotification>)>>(
        [this](std::shared_ptr<QueueNotification> n) { held.push_back(std::move(n)); });
  }
};

TEST(SharedQueue, BoundedEntriesAndNotifications) {
  auto state = VmSharedState::get(unique("vm"));
  Collector c;
  const uint32_t token = state->register_queue("q", c.notifier(), /*capacity=*/3);
  auto q = find_shared_queue(token);
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 5; ++i) q->enqueue(std::to_string(i));
  EXPECT_EQ(q->size(), 3u);
  EXPECT_EQ(q->dropped(), 2u);
  // Three notifications in flight: enough for the three entries; the other two were not sent.
  EXPECT_EQ(c.held.size(), 3u);
  EXPECT_EQ(q->pending_notifications(), 3u);
  EXPECT_EQ(c.held[0]->token(), token);
  // Delivered (or dropped): no longer pending, and the next enqueue notifies again.
  c.held.pop_back();
  EXPECT_EQ(q->pending_notifications(), 2u);
  q->enqueue("5");
  EXPECT_EQ(c.held.size(), 3u);
  std::string v;
  EXPECT_EQ(q->dequeue(&v), WasmResult::Ok);
  EXPECT_EQ(v, "3");  // 0, 1 and 2 were dropped as the oldest
  c.held.clear();
  EXPECT_EQ(q->pending_notifications(), 0u);
}

TEST(SharedQueue, ReRegistrationKeepsDataAndTokenButMovesNotifications) {
  auto state = VmSharedState::get(unique("vm"));
  Collector first, second;
  const uint32_t token = state->register_queue("q", first.notifier());
  find_shared_queue(token)->enqueue("a");
  EXPECT_EQ(state->register_queue("q", second.notifier()), token);
  find_shared_queue(token)->enqueue("b");
  EXPECT_EQ(first.held.size(), 1u);
  EXPECT_EQ(second.held.size(), 1u);
  EXPECT_EQ(find_shared_queue(token)->size(), 2u);
  // A registration without a notifier (from a thread without a loop, such as a canary's) keeps
  // the consumer that can be notified.
  EXPECT_EQ(state->register_queue("q", nullptr), token);
  find_shared_queue(token)->enqueue("c");
  EXPECT_EQ(second.held.size(), 2u);
  EXPECT_EQ(find_shared_queue(token)->size(), 3u);
}

TEST(SharedQueue, WithoutAnyNotifierEntriesWait) {
  auto state = VmSharedState::get(unique("vm"));
  const uint32_t token = state->register_queue("q", nullptr);
  auto q = find_shared_queue(token);
  q->enqueue("a");
  EXPECT_EQ(q->pending_notifications(), 0u);
  std::string v;
  EXPECT_EQ(q->dequeue(&v), WasmResult::Ok);
  EXPECT_EQ(v, "a");
  EXPECT_EQ(q->dequeue(&v), WasmResult::Empty);
}

TEST(VmSharedState, OneStatePerVmIdWhileHeld) {
  const std::string vm = unique("vm");
  EXPECT_EQ(VmSharedState::find(vm), nullptr);
  auto a = VmSharedState::get(vm);
  auto b = VmSharedState::get(vm);
  EXPECT_EQ(a, b);
  EXPECT_EQ(VmSharedState::find(vm), a);
  EXPECT_NE(VmSharedState::get(unique("other")), a);
  a->data().set("k", "v", 0);
  const uint32_t token = a->register_queue("q", nullptr);
  EXPECT_NE(token, 0u);
  EXPECT_EQ(a->resolve_queue("q"), token);
  EXPECT_EQ(a->resolve_queue("absent"), std::nullopt);
  // The last holder goes: data and queues go with it; the vm_id starts afresh.
  a.reset();
  b.reset();
  EXPECT_EQ(VmSharedState::find(vm), nullptr);
  EXPECT_EQ(find_shared_queue(token), nullptr);
  auto fresh = VmSharedState::get(vm);
  EXPECT_FALSE(fresh->data().get("k"));
  EXPECT_EQ(fresh->resolve_queue("q"), std::nullopt);
}

TEST(VmSharedState, QueueTokensAreUniqueAndNeverZero) {
  auto a = VmSharedState::get(unique("a"));
  auto b = VmSharedState::get(unique("b"));
  std::vector<uint32_t> tokens;
  for (int i = 0; i < 50; ++i) {
    tokens.push_back(a->register_queue("q" + std::to_string(i), nullptr));
    tokens.push_back(b->register_queue("q" + std::to_string(i), nullptr));  // same names, other vm
  }
  std::sort(tokens.begin(), tokens.end());
  EXPECT_EQ(std::adjacent_find(tokens.begin(), tokens.end()), tokens.end());
  EXPECT_NE(tokens.front(), 0u);
}

}  // namespace
}  // namespace sluice::wasm
