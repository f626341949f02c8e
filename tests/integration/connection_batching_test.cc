// net::Connection hands on a loop turn's reads together: every ready socket is read before any
// of them is handled, and what the handling wrote leaves afterwards. A quiet loop (a turn with a
// single read) goes back to handling reads at once. Real loopback sockets; the peers are plain
// blocking sockets written to before the loop runs, so their bytes are ready in one turn.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <asio.hpp>

#include "net/connection.h"

namespace sluice::net {
namespace {

using asio::ip::tcp;

// Records what a connection was handed; `on_data` runs inside the handling.
struct Recorder : ConnectionCallbacks {
  std::string received;
  int reads = 0;
  std::function<void()> on_data;
  void on_read(const char* data, size_t len) override {
    received.append(data, len);
    ++reads;
    if (on_data) on_data();
  }
  void on_close(CloseReason) override {}
};

class ConnectionBatchingTest : public ::testing::Test {
 protected:
  // `n` accepted connections with callbacks, reading, and their peers.
  void open(int n) {
    tcp::acceptor acceptor(loop_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    for (int i = 0; i < n; ++i) {
      peers_.emplace_back(loop_);
      peers_.back().connect(acceptor.local_endpoint());
      tcp::socket accepted(loop_);
      acceptor.accept(accepted);
      conns_.push_back(std::make_shared<Connection>(std::move(accepted), 0));
      recorders_.push_back(std::make_unique<Recorder>());
      conns_.back()->set_callbacks(recorders_.back().get());
    }
    Connection::reset_thread_read_batching();
    for (auto& c : conns_) c->start_reading();
  }
  void send(int i, const std::string& bytes) { asio::write(peers_[i], asio::buffer(bytes)); }
  // Runs the loop until `done` or 10 s.
  template <typename Done>
  void run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      loop_.run_for(std::chrono::milliseconds(5));
      loop_.restart();
    }
  }
  size_t unread(int i) { return conns_[i]->socket().available(); }
  size_t peer_unread(int i) { return peers_[i].available(); }

  void TearDown() override {
    for (auto& c : conns_) {
      c->set_callbacks(nullptr);
      c->close(false);
    }
    loop_.restart();
    loop_.poll();
  }

  asio::io_context loop_;
  std::vector<tcp::socket> peers_;
  std::vector<std::shared_ptr<Connection>> conns_;
  std::vector<std::unique_ptr<Recorder>> recorders_;
};

TEST_F(ConnectionBatchingTest, EveryReadySocketIsReadBeforeAnyIsHandled) {
  constexpr int kConns = 4;
  open(kConns);
  // When any connection is handed its bytes, the others' are already out of the kernel.
  std::vector<size_t> unread_seen;
  for (int i = 0; i < kConns; ++i) {
    recorders_[i]->on_data = [this, &unread_seen] {
      size_t total = 0;
      for (int j = 0; j < kConns; ++j) total += unread(j);
      unread_seen.push_back(total);
    };
    send(i, "request " + std::to_string(i));
  }
  run_until([&] { return unread_seen.size() == kConns; });
  ASSERT_EQ(unread_seen.size(), static_cast<size_t>(kConns));
  for (size_t u : unread_seen) EXPECT_EQ(u, 0u);
  for (int i = 0; i < kConns; ++i)
    EXPECT_EQ(recorders_[i]->received, "request " + std::to_string(i));
  const Connection::ReadBatching b = Connection::thread_read_batching();
  EXPECT_EQ(b.drains, 1u);
  EXPECT_EQ(b.batched_reads, static_cast<uint64_t>(kConns));
  EXPECT_EQ(b.inline_reads, 0u);
}

TEST_F(ConnectionBatchingTest, WritesOfATurnLeaveAfterAllOfItsHandling) {
  open(2);
  // Each answers its peer; while the second is handled, the first's answer is still ours.
  std::vector<size_t> answered_before;
  for (int i = 0; i < 2; ++i) {
    recorders_[i]->on_data = [this, i, &answered_before] {
      answered_before.push_back(peer_unread(0) + peer_unread(1));
      conns_[i]->write("answer " + std::to_string(i));
    };
    send(i, "q");
  }
  run_until([&] { return peer_unread(0) > 0 && peer_unread(1) > 0; });
  ASSERT_EQ(answered_before.size(), 2u);
  EXPECT_EQ(answered_before[0], 0u);
  EXPECT_EQ(answered_before[1], 0u);
  for (int i = 0; i < 2; ++i) {
    std::string got(peer_unread(i), '\0');
    asio::read(peers_[i], asio::buffer(got));
    EXPECT_EQ(got, "answer " + std::to_string(i));
  }
}

TEST_F(ConnectionBatchingTest, AConnectionClosedEarlierInItsTurnIsHandedNothing) {
  open(2);
  // Whichever is handled first closes the other, whose bytes were read in the same turn.
  for (int i = 0; i < 2; ++i) {
    recorders_[i]->on_data = [this, i] { conns_[1 - i]->close(false); };
    send(i, "bytes");
  }
  run_until([&] { return recorders_[0]->reads + recorders_[1]->reads > 0; });
  loop_.restart();
  loop_.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(recorders_[0]->reads + recorders_[1]->reads, 1);
}

TEST_F(ConnectionBatchingTest, AReadResumedBeforeItsBytesWereHandedOnDoesNotOverwriteThem) {
  open(2);
  // The first handled re-enables reading on the other, whose bytes still wait in its buffer:
  // no second read may start into that buffer before they are handed on. Without the receive
  // queue hint asio reads speculatively, inside the call that starts a read: such a read would
  // overwrite the waiting bytes there and then.
  for (auto& c : conns_) {
    const int off = 0;
    ASSERT_EQ(::setsockopt(c->socket().native_handle(), IPPROTO_TCP, TCP_INQ, &off, sizeof off), 0);
  }
  bool resumed = false;
  for (int i = 0; i < 2; ++i) {
    recorders_[i]->on_data = [this, i, &resumed] {
      if (resumed) return;
      resumed = true;
      conns_[1 - i]->read_disable(true);
      send(1 - i, "-more");  // ready now: a read started too early would take it
      conns_[1 - i]->read_disable(false);
    };
    send(i, "first" + std::to_string(i));
  }
  run_until([&] { return recorders_[0]->received.size() + recorders_[1]->received.size() == 17; });
  const int other = recorders_[0]->received.size() > recorders_[1]->received.size() ? 0 : 1;
  EXPECT_EQ(recorders_[other]->received, "first" + std::to_string(other) + "-more");
  EXPECT_EQ(recorders_[1 - other]->received, "first" + std::to_string(1 - other));
}

TEST_F(ConnectionBatchingTest, ALoneReadSendsTheLoopBackToHandlingReadsAtOnce) {
  open(1);
  send(0, "1");
  run_until([&] { return recorders_[0]->reads == 1; });
  Connection::ReadBatching b = Connection::thread_read_batching();
  EXPECT_EQ(b.drains, 1u);
  EXPECT_EQ(b.batched_reads, 1u);
  // The next 64 reads are handed on as they come; the one after is batched again (and, alone
  // in its turn, starts another quiet spell).
  auto one_more = [&](int total) {
    send(0, "x");
    run_until([&] { return recorders_[0]->reads == total; });
    ASSERT_EQ(recorders_[0]->reads, total);
  };
  for (int i = 2; i <= 65; ++i) one_more(i);
  b = Connection::thread_read_batching();
  EXPECT_EQ(b.inline_reads, 64u);
  EXPECT_EQ(b.drains, 1u);
  one_more(66);
  b = Connection::thread_read_batching();
  EXPECT_EQ(b.inline_reads, 64u);
  EXPECT_EQ(b.drains, 2u);
  EXPECT_EQ(b.batched_reads, 2u);
  one_more(67);
  EXPECT_EQ(Connection::thread_read_batching().inline_reads, 65u);
}

// Each connection keeps the memory of its read and its write in flight (net/handler_memory.h):
// request after request, batched or not, neither goes to the heap.
TEST_F(ConnectionBatchingTest, ReadsAndWritesUseTheConnectionsOwnMemory) {
  open(4);
  for (int i = 0; i < 4; ++i) {
    Connection* c = conns_[i].get();
    recorders_[i]->on_data = [c] { c->write("pong"); };
  }
  const auto answered = [&](int i, size_t pongs) {
    run_until([&] { return peer_unread(i) >= 4 * pongs; });
    return peer_unread(i) == 4 * pongs;
  };
  // Five turns of four reads each (a batch), then five of connection 0 alone (handled inline).
  for (size_t round = 1; round <= 5; ++round) {
    for (int i = 0; i < 4; ++i) send(i, "ping");
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(answered(i, round)) << "connection " << i;
  }
  for (size_t round = 6; round <= 10; ++round) {
    send(0, "ping");
    ASSERT_TRUE(answered(0, round));
  }
  EXPECT_EQ(recorders_[0]->received.size(), 40u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(conns_[i]->io_heap_allocations(), 0u) << "connection " << i;
  }
}

// Core sharing: a thread that has handled reads without a pause for the interval offers its core
// (sched_yield) once its writes are out; a thread that pauses in between starts a new stretch.
class CoreYieldTest : public ConnectionBatchingTest {
 protected:
  void TearDown() override {
    Connection::set_core_yield_interval(Connection::kDefaultCoreYieldInterval);
    ConnectionBatchingTest::TearDown();
  }
  static void spin(std::chrono::microseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  // `reads` reads back to back, each busy for `busy`: the peer's next bytes are sent while the
  // last are handled, so the thread never waits.
  void busy_reads(int reads, std::chrono::microseconds busy) {
    open(1);
    recorders_[0]->on_data = [this, reads, busy] {
      spin(busy);
      if (recorders_[0]->reads < reads) send(0, "x");
    };
    send(0, "x");
    run_until([&] { return recorders_[0]->reads == reads; });
    ASSERT_EQ(recorders_[0]->reads, reads);
  }
};

TEST_F(CoreYieldTest, AThreadBusyForTheIntervalOffersItsCore) {
  Connection::set_core_yield_interval(std::chrono::microseconds(1000));
  const auto started = std::chrono::steady_clock::now();
  busy_reads(40, std::chrono::microseconds(200));  // 8 ms of work or more, without a pause
  const auto elapsed = std::chrono::steady_clock::now() - started;
  // At most once per 1000 us of it (every fifth or sixth read on an idle machine); fewer when
  // the machine is busy: a thread put aside for longer than the interval has had its pause.
  const uint64_t yields = Connection::thread_read_batching().core_yields;
  EXPECT_GE(yields, 1u);
  EXPECT_LE(yields, static_cast<uint64_t>(elapsed / std::chrono::microseconds(1000)));
}

TEST_F(CoreYieldTest, AThreadThatPausesDoesNotYield) {
  // The stretch is measured in wall time, so a thread put aside in the middle of a read for the
  // whole interval would yield rightly: the interval is long next to the work (50 us), so that
  // takes a 20 ms stall, which a loaded machine running the tests in parallel does not reach.
  Connection::set_core_yield_interval(std::chrono::milliseconds(20));
  open(1);
  for (int i = 1; i <= 10; ++i) {
    recorders_[0]->on_data = [] { spin(std::chrono::microseconds(50)); };
    send(0, "x");
    run_until([&] { return recorders_[0]->reads == i; });
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // idle: longer than the interval
  }
  EXPECT_EQ(recorders_[0]->reads, 10);
  EXPECT_EQ(Connection::thread_read_batching().core_yields, 0u);
}

TEST_F(CoreYieldTest, ZeroNeverYields) {
  Connection::set_core_yield_interval(std::chrono::microseconds(0));
  busy_reads(20, std::chrono::microseconds(200));
  EXPECT_EQ(Connection::thread_read_batching().core_yields, 0u);
}

}  // namespace
}  // namespace sluice::net
