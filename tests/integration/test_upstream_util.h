// A scripted HTTP/1.1 upstream for integration tests: a real TCP server on 127.0.0.1:<random>
// with one thread per connection (blocking POSIX sockets), so behaviours such as "hang" or
// "close mid-body" are plain sequential code. What it does is chosen by the request path:
//
//   /echo...               200, Content-Length; body = the raw request head as received, then the
//                          (de-chunked) request body. Any path not listed below also echoes.
//   /status/<code>...      <code> with body "status <code>".
//   /fail-once/<code>...   <code> for the first request to this exact path, then 200 "ok".
//   /chunked               200 chunked in three chunks: "hello " "chunked " "world".
//   /interim?split=B       "100 Continue", then 200 "after interim" (in a second write when B=1).
//   /garbage               answers bytes that are not HTTP, then closes.
//   /huge-headers          a response head of 128 KiB, then closes.
//   /close-delimited       200 without Content-Length or chunking; the body ends with the close.
//   /hang...               reads the request and never answers (until the peer closes).
//   /hang-once...          like /hang for the first request to this exact path, then 200 "ok".
//   /conn-close            200 "closing" with Content-Length and "Connection: close", then closes.
//   /close-mid-body        200 with Content-Length 1000, then 10 bytes, then close.
//   /reset...              closes (FIN) right after reading the request.
//   /rst...                closes with an RST (SO_LINGER 0) right after reading the request.
//   /reset-once...         like /reset for the first request to this exact path, then 200 "ok".
//   /reset-if-reused       closes without answering when it is not the connection's first
//                          request (a keep-alive connection closed just as the proxy reused it).
//   /slow?ms=N             waits N ms (default 1000), then 200 "slow".
//   /slow-body?ms=N        sends the head (Content-Length 4) now, the body "body" after N ms.
//   /big?bytes=N           200, Content-Length N (default 8 MiB), body BigBodyByte(0..N-1), sent
//                          in 64 KiB blocking writes (so proxy back-pressure stalls this thread).
//   /config                200 "config-N", N counting the fetches of /config so far.
//   /auth-check            200 with X-Auth-User: alice when Authorization is "Bearer good",
//                          else 403 "bad token" (an authorization service for http_call tests).
//   /trailers              a chunked 200 "trailed" ending with trailers "x-checksum: abc" and
//                          "grpc-status: 0".
//   /slow-sink?chunk=C&ms=M  reads the request body C bytes at a time (default 16 KiB) sleeping
//                          M ms (default 1) between reads; answers "bytes=<n> fnv=<hex>".
//
// Request bodies are read by Content-Length or chunked framing before answering (except
// /slow-sink). Responses keep the connection open unless the request asked for a close.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::testing {

// FNV-1a 64, a cheap checksum for large bodies.
uint64_t Fnv1a(std::string_view data, uint64_t seed = 14695981039346656037ull);

// A request as the upstream received it.
struct ReceivedRequest {
  std::string method;
  std::string target;                                        // path with query
  std::string path;                                          // without query
  std::string version;                                       // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string raw_head;  // request line + headers + blank line, as received
  std::string body;      // de-chunked
  bool chunked = false;
  std::vector<std::string> trailer_lines;  // chunked requests: trailer lines as received
  size_t connection_index = 0;             // which accepted connection (0-based)
  size_t request_on_connection = 0;        // 0 for the first request on its connection

  const std::string* header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
};

class TestUpstream {
 public:
  TestUpstream();
  ~TestUpstream();
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  uint16_t port() const { return port_; }
  // Stops accepting, unblocks every connection thread and joins them. Idempotent.
  void Stop();

  size_t accepted_connections() const { return accepted_.load(); }
  // Requests whose head was read (bodies may still be in flight).
  size_t requests() const;
  size_t requests_for(std::string_view path) const;  // path without query
  std::vector<ReceivedRequest> received() const;
  std::optional<ReceivedRequest> last_request() const;
  // Connections whose handler finished (the peer closed or the upstream closed).
  size_t closed_connections() const { return closed_.load(); }
  // Bytes of /big bodies written so far.
  uint64_t big_bytes_written() const { return big_bytes_written_.load(); }

  // Waits until at least `n` requests (heads) were received. False on timeout.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool WaitForClosedConnections(size_t n,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The byte at offset `i` of a /big body.
  static char BigBodyByte(uint64_t i) { return static_cast<char>('a' + (i * 7 + (i >> 13)) % 26); }

 private:
  struct Conn {
    int fd = -1;
    std::thread thread;
  };
  void AcceptLoop();
  void Serve(int fd, size_t index);
  // Sleeps up to `ms`, returning early (false) when stopping.
  bool SleepFor(std::chrono::milliseconds ms);
  void Record(const ReceivedRequest& r);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> accepted_{0};
  std::atomic<size_t> closed_{0};
  std::atomic<uint64_t> big_bytes_written_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Conn> conns_;
  std::vector<ReceivedRequest> received_;
  std::map<std::string, size_t, std::less<>> per_path_;
};

}  // namespace sluice::testing
