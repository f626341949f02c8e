// net::DrainingBuffer: after a read that left nothing behind, the next read waits for epoll
// instead of trying a recv() that answers EAGAIN, and no byte or end of stream is missed for it.
//
// This binary is separate from unit_tests because it counts recv() calls by defining recv()
// itself (the executable's definition wins over libc's for asio's calls).
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "net/draining_read.h"

namespace {
std::atomic<int> g_counted_fd{-1};
std::atomic<int> g_eagain{0};
std::atomic<int> g_recv{0};
}  // namespace

namespace {
ssize_t count(int fd, long n) {
  if (fd == g_counted_fd.load()) {
    ++g_recv;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ++g_eagain;
  }
  return n;
}
}  // namespace

extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
  return count(fd, syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr));
}
extern "C" ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  return count(fd, syscall(SYS_recvmsg, fd, msg, flags));
}

namespace sluice::net {
namespace {

using asio::ip::tcp;

class DrainingReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client_.connect(acceptor.local_endpoint());
    acceptor.accept(server_);
    ASSERT_TRUE(enable_receive_queue_hint(server_));
    g_counted_fd = server_.native_handle();
    g_eagain = 0;
    g_recv = 0;
  }
  void TearDown() override { g_counted_fd = -1; }

  // Rounds of "the peer sends, we read and ask for the next read inside the handler, then the
  // peer sends again": the proxy's pattern. Returns the bytes read.
  template <typename Buffer>
  std::string ping_rounds(int rounds) {
    std::string received;
    int left = rounds;
    std::function<void()> arm = [&] {
      server_.async_read_some(Buffer(buf_, sizeof buf_), [&](const asio::error_code& ec, size_t n) {
        ASSERT_FALSE(ec) << ec.message();
        received.append(buf_, n);
        if (--left == 0) return;
        arm();  // the next read, asked for at once: where asio would recv() and get EAGAIN
        asio::write(client_, asio::buffer("ping", 4));
      });
    };
    arm();
    asio::write(client_, asio::buffer("ping", 4));
    io_.run_for(std::chrono::seconds(10));
    EXPECT_EQ(left, 0);
    return received;
  }

  // Reads until an error (end of stream), asking for each next read inside the handler, as
  // net::Connection does; `after_read` runs once the next read is asked for. Returns the bytes.
  std::string read_until_error(asio::error_code* last, std::function<void()> after_read = {}) {
    std::string received;
    std::function<void()> arm = [&] {
      server_.async_read_some(DrainingBuffer(buf_, sizeof buf_),
                              [&](const asio::error_code& ec, size_t n) {
                                *last = ec;
                                if (ec) return;
                                received.append(buf_, n);
                                arm();
                                if (after_read) after_read();
                              });
    };
    arm();
    io_.run_for(std::chrono::seconds(5));
    return received;
  }

  asio::io_context io_;
  tcp::socket client_{io_};
  tcp::socket server_{io_};
  char buf_[64];
};

TEST_F(DrainingReadTest, ReadsThatLeaveNothingSkipTheRecvThatWouldFail) {
  ASSERT_TRUE(kShortReadsSkipSpeculativeRecv) << "asio release not covered by draining_read.h";
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "ping";
  EXPECT_EQ(ping_rounds<DrainingBuffer>(50), expected);
  // Only the very first read tries at once (nothing is known about a new socket), then one
  // recv() per round, each with data.
  EXPECT_EQ(g_eagain.load(), 1);
  EXPECT_EQ(g_recv.load(), 51);
}

TEST_F(DrainingReadTest, PlainBuffersPayTheFailedRecvEachRound) {
  // The control: shows the counter sees what asio does without the hint.
  EXPECT_EQ(ping_rounds<asio::mutable_buffer>(50).size(), 200u);
  EXPECT_GE(g_eagain.load(), 49);
}

TEST_F(DrainingReadTest, BytesThatArriveWhileNotReadingAreStillRead) {
  std::string received;
  server_.async_read_some(DrainingBuffer(buf_, sizeof buf_),
                          [&](const asio::error_code& ec, size_t n) {
                            ASSERT_FALSE(ec);
                            received.append(buf_, n);
                          });
  asio::write(client_, asio::buffer("first", 5));
  io_.run_for(std::chrono::seconds(5));
  ASSERT_EQ(received, "first");
  // Reading paused: the peer's bytes raise an edge that nobody waits for...
  asio::write(client_, asio::buffer("second", 6));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(50));
  // ...and the read asked for afterwards still finds them.
  server_.async_read_some(DrainingBuffer(buf_, sizeof buf_),
                          [&](const asio::error_code& ec, size_t n) {
                            ASSERT_FALSE(ec);
                            received.append(buf_, n);
                          });
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  EXPECT_EQ(received, "firstsecond");
}

TEST_F(DrainingReadTest, EndOfStreamAfterAShortReadIsReported) {
  asio::write(client_, asio::buffer("bye", 3));
  asio::error_code last;
  // The FIN follows once the next read waits (after the short read).
  EXPECT_EQ(read_until_error(&last, [&] { client_.shutdown(tcp::socket::shutdown_send); }), "bye");
  EXPECT_EQ(last, asio::error::eof);
}

TEST_F(DrainingReadTest, EndOfStreamThatCameWithTheLastBytesIsReported) {
  // Bytes and FIN arrive before the read: one epoll edge for both, none after the read.
  asio::write(client_, asio::buffer("last words", 10));
  client_.shutdown(tcp::socket::shutdown_send);
  usleep(20 * 1000);
  asio::error_code last;
  EXPECT_EQ(read_until_error(&last), "last words");
  EXPECT_EQ(last, asio::error::eof);
}

TEST_F(DrainingReadTest, WithoutTheKernelHintEveryReadTriesAtOnce) {
  const int off = 0;
  ASSERT_EQ(setsockopt(server_.native_handle(), IPPROTO_TCP, TCP_INQ, &off, sizeof off), 0);
  EXPECT_EQ(ping_rounds<DrainingBuffer>(20).size(), 80u);
  EXPECT_GE(g_eagain.load(), 19);
}

TEST_F(DrainingReadTest, FullReadsKeepReadingWhatIsQueued) {
  // 150 bytes through a 64-byte buffer: full reads are not "drained", so the rest follows.
  const std::string sent(150, 'x');
  asio::write(client_, asio::buffer(sent));
  std::string received;
  std::function<void()> arm = [&] {
    server_.async_read_some(DrainingBuffer(buf_, sizeof buf_),
                            [&](const asio::error_code& ec, size_t n) {
                              ASSERT_FALSE(ec);
                              received.append(buf_, n);
                              if (received.size() < sent.size()) arm();
                            });
  };
  arm();
  io_.run_for(std::chrono::seconds(5));
  EXPECT_EQ(received, sent);
  EXPECT_EQ(g_eagain.load(), 0);
}

}  // namespace
}  // namespace sluice::net
