// net::FilterManager over a real loopback connection: network filters see reads in config order
// and writes in reverse, may edit and hold bytes, hold a new connection, close it; held bytes are
// bounded (reading stops, watermarks count them); end of stream travels through them both ways.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <asio.hpp>

#include "net/connection.h"
#include "net/filter_manager.h"

namespace sluice::net {
namespace {

using std::chrono::milliseconds;

// A filter that records what it sees (in a log shared by the chain) and does what the test
// set: tag the bytes, hold them, hold the start, close.
struct TestFilter : ConnectionFilter {
  TestFilter(std::string n, std::vector<std::string>& l) : name(std::move(n)), log(l) {}
  void set_callbacks(ConnectionFilterCallbacks& c) override { cb = &c; }
  FilterStatus on_new_connection() override {
    log.push_back(name + ".new");
    return hold_start ? FilterStatus::StopIteration : FilterStatus::Continue;
  }
  FilterStatus on_read(std::string& data, bool end_stream) override {
    ++reads;
    log.push_back(name + ".read:" + std::to_string(data.size()) + (end_stream ? ":end" : ""));
    if (close_on_read) {
      cb->close_connection();
      return FilterStatus::StopIteration;
    }
    if (hold_reads) return FilterStatus::StopIteration;
    data += tag;
    return FilterStatus::Continue;
  }
  FilterStatus on_write(std::string& data, bool end_stream) override {
    log.push_back(name + ".write:" + std::to_string(data.size()) + (end_stream ? ":end" : ""));
    if (hold_writes) return FilterStatus::StopIteration;
    if (!data.empty()) data += tag;
    return FilterStatus::Continue;
  }
  void on_close(bool local) override {
    log.push_back(name + (local ? ".close:local" : ".close:remote"));
  }

  std::string name, tag;
  std::vector<std::string>& log;
  ConnectionFilterCallbacks* cb = nullptr;
  bool hold_start = false, hold_reads = false, hold_writes = false, close_on_read = false;
  int reads = 0;
};

// The terminal filter's side: the connection's callbacks.
struct Terminal : ConnectionCallbacks {
  void on_read(const char* data, size_t len) override { received.append(data, len); }
  void on_close(CloseReason r) override { closed = r; }
  void on_end_of_stream() override { end_of_stream = true; }
  void on_above_write_high_watermark() override { ++above; }
  void on_below_write_low_watermark() override { ++below; }
  std::string received;
  std::optional<CloseReason> closed;
  bool end_of_stream = false;
  int above = 0, below = 0;
};

class NetworkFilterChain : public ::testing::Test {
 protected:
  // A connected pair: `client_` a plain non-blocking socket, `conn_` the proxy's side.
  void Connect(uint32_t buffer_limit = 1024 * 1024) {
    asio::ip::tcp::acceptor acceptor(loop_, {asio::ip::make_address("127.0.0.1"), 0});
    client_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(acceptor.local_endpoint().port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::fcntl(client_, F_SETFL, O_NONBLOCK);
    conn_ = std::make_shared<Connection>(acceptor.accept(), buffer_limit);
  }
  ~NetworkFilterChain() override {
    if (conn_) {
      conn_->set_callbacks(nullptr);
      conn_->close(false);
    }
    if (client_ >= 0) ::close(client_);
  }

  TestFilter& AddFilter(std::string name, std::string tag = "") {
    auto f = std::make_unique<TestFilter>(std::move(name), log_);
    f->tag = std::move(tag);
    filters_.push_back(f.get());
    pending_.push_back(std::move(f));
    return *filters_.back();
  }
  // Installs the filters and runs the chain's start; the terminal starts when it lets it.
  void Start() {
    conn_->install_filters(std::move(pending_));
    conn_->filters()->start(
        [this] {
          started_ = true;
          conn_->set_callbacks(&terminal_);
          conn_->start_reading();
        },
        [this] { abandoned_ = true; });
  }

  bool RunUntil(const std::function<bool()>& done, milliseconds limit = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_.restart();
      loop_.run_for(milliseconds(5));
      DrainClient();
    }
    return true;
  }
  void Send(const std::string& s) {
    ASSERT_EQ(::send(client_, s.data(), s.size(), 0), ssize_t(s.size()));
  }
  void DrainClient() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(client_, buf, sizeof(buf), 0);
      if (n > 0) {
        client_received_.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) client_eof_ = true;
      return;
    }
  }

  asio::io_context loop_;
  int client_ = -1;
  std::shared_ptr<Connection> conn_;
  std::vector<std::string> log_;
  std::vector<TestFilter*> filters_;
  std::vector<std::unique_ptr<ConnectionFilter>> pending_;
  Terminal terminal_;
  bool started_ = false, abandoned_ = false;
  std::string client_received_;
  bool client_eof_ = false;
};

TEST_F(NetworkFilterChain, ReadsInOrderWritesInReverse) {
  Connect();
  AddFilter("a", "A");
  AddFilter("b", "B");
  Start();
  EXPECT_TRUE(started_);
  Send("x");
  ASSERT_TRUE(RunUntil([&] { return terminal_.received == "xAB"; })) << terminal_.received;
  conn_->write("y");
  ASSERT_TRUE(RunUntil([&] { return client_received_ == "yBA"; })) << client_received_;
  const std::vector<std::string> want = {"a.new",    "b.new",     "a.read:1",
                                         "b.read:2", "b.write:1", "a.write:2"};
  EXPECT_EQ(log_, want);
}

// A filter that stops sees its held bytes again with the new ones; its continue passes them on
// without calling it again.
TEST_F(NetworkFilterChain, StopHoldsBytesUntilContinue) {
  Connect();
  TestFilter& a = AddFilter("a");
  a.hold_reads = true;
  Start();
  Send("12");
  ASSERT_TRUE(RunUntil([&] { return a.reads == 1; }));
  Send("34");
  ASSERT_TRUE(RunUntil([&] { return a.reads == 2; }));
  EXPECT_EQ(log_.back(), "a.read:4");
  EXPECT_EQ(a.cb->held_read(), "1234");
  EXPECT_EQ(terminal_.received, "");
  a.cb->continue_reading();
  EXPECT_EQ(terminal_.received, "1234");
  EXPECT_EQ(a.reads, 2);
  EXPECT_EQ(a.cb->held_read(), "");
}

// A stopped on_new_connection holds the terminal filter (and the later filters) until continue.
TEST_F(NetworkFilterChain, NewConnectionHeldUntilContinue) {
  Connect();
  TestFilter& a = AddFilter("a");
  a.hold_start = true;
  AddFilter("b");
  Start();
  EXPECT_FALSE(started_);
  EXPECT_EQ(log_, std::vector<std::string>{"a.new"});
  Send("early");
  RunUntil([] { return false; }, milliseconds(50));
  EXPECT_EQ(a.reads, 0);  // not read while held
  a.cb->continue_reading();
  EXPECT_TRUE(started_);
  EXPECT_EQ(log_.back(), "b.new");
  ASSERT_TRUE(RunUntil([&] { return terminal_.received == "early"; }));
}

// Closed while held: the terminal never starts, the owner is told to let go.
TEST_F(NetworkFilterChain, ClosedBeforeStartIsAbandoned) {
  Connect();
  AddFilter("a").hold_start = true;
  Start();
  conn_->close(false);
  EXPECT_TRUE(abandoned_);
  EXPECT_FALSE(started_);
  EXPECT_EQ(log_.back(), "a.close:local");
}

// A close that waits for the flush ends the filters at once: the connection may outlive its
// worker's bookkeeping while it flushes, and plugins must end on their own thread.
TEST_F(NetworkFilterChain, FlushingCloseEndsTheFiltersAtOnce) {
  Connect();
  AddFilter("a");
  Start();
  conn_->write(std::string(4 * 1024 * 1024, 'f'));  // more than the socket takes at once
  conn_->close(true);
  EXPECT_EQ(log_.back(), "a.close:local");
  EXPECT_TRUE(conn_->open());  // still flushing
  ASSERT_TRUE(RunUntil([&] { return client_eof_; }));
  EXPECT_EQ(client_received_.size(), 4u * 1024 * 1024);
  EXPECT_EQ(std::count(log_.begin(), log_.end(), "a.close:local"), 1);
}

// A filter closes the connection from its read callback: nothing passes, the terminal hears a
// local close, the client sees the end.
TEST_F(NetworkFilterChain, CloseFromFilterTellsTheTerminal) {
  Connect();
  AddFilter("a").close_on_read = true;
  AddFilter("b");
  Start();
  Send("bye");
  ASSERT_TRUE(RunUntil([&] { return client_eof_; }));
  ASSERT_TRUE(terminal_.closed.has_value());
  EXPECT_EQ(*terminal_.closed, CloseReason::LocalClose);
  EXPECT_EQ(terminal_.received, "");
  EXPECT_EQ(log_.back(), "b.close:local");
}

// Held read bytes are bounded: past the buffer limit the connection stops reading.
TEST_F(NetworkFilterChain, HeldReadsStopReadingAtTheLimit) {
  Connect(64 * 1024);
  TestFilter& a = AddFilter("a");
  a.hold_reads = true;
  Start();
  const std::string chunk(64 * 1024, 'z');
  size_t sent = 0;
  // Fill the kernel buffers too: the client can send far more than the proxy holds.
  for (int i = 0; i < 400; ++i) {
    const ssize_t n = ::send(client_, chunk.data(), chunk.size(), MSG_DONTWAIT);
    if (n > 0) sent += static_cast<size_t>(n);
    loop_.restart();
    loop_.run_for(milliseconds(2));
  }
  const size_t held = a.cb->held_read().size();
  EXPECT_GT(sent, 1024u * 1024);  // what the kernel buffers take varies by machine
  EXPECT_GT(held, 64u * 1024);
  EXPECT_LE(held, 64u * 1024 + 16 * 1024);  // one read past the limit at most
  a.hold_reads = false;
  a.cb->continue_reading();
  ASSERT_TRUE(RunUntil([&] { return terminal_.received.size() == sent; }))
      << terminal_.received.size() << " of " << sent;
}

// Held written bytes take part in the watermarks: the writer is told to stop, then to go on.
TEST_F(NetworkFilterChain, HeldWritesCountInTheWatermarks) {
  Connect(64 * 1024);
  TestFilter& a = AddFilter("a");
  a.hold_writes = true;
  Start();
  conn_->write(std::string(100 * 1024, 'w'));
  EXPECT_EQ(terminal_.above, 1);
  EXPECT_EQ(conn_->write_buffered(), 0u);  // held by the filter, not queued for the socket
  a.hold_writes = false;
  a.cb->continue_writing();
  ASSERT_TRUE(RunUntil([&] { return client_received_.size() == 100 * 1024; }));
  ASSERT_TRUE(RunUntil([&] { return terminal_.below == 1; }));
}

// Half-close: the client's FIN reaches the filters with end_stream, then the terminal; the
// terminal's shutdown reaches them too, then the socket.
TEST_F(NetworkFilterChain, EndOfStreamThroughTheFilters) {
  Connect();
  conn_->enable_half_close();
  AddFilter("a");
  Start();
  Send("last");
  ::shutdown(client_, SHUT_WR);
  ASSERT_TRUE(RunUntil([&] { return terminal_.end_of_stream; }));
  EXPECT_EQ(terminal_.received, "last");
  EXPECT_EQ(log_.back(), "a.read:0:end");
  conn_->write("reply");
  conn_->shutdown_write();
  ASSERT_TRUE(RunUntil([&] { return client_eof_; }));
  EXPECT_EQ(client_received_, "reply");
  EXPECT_EQ(log_.back(), "a.write:0:end");
}

}  // namespace
}  // namespace sluice::net
