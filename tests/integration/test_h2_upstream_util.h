// A scripted HTTP/2 (h2c) upstream for integration tests: a real TCP server on 127.0.0.1 with
// one thread per connection running nghttp2's server session over a blocking socket. What it
// does is chosen by the request path:
//
//   /echo...          200 with x-method, x-authority, x-te (the request's values) and the body
//                     "len=<request body bytes>".
//   /trailers         200 "trailed", then trailers x-checksum: abc and grpc-status: 0.
//   /headers-only     a single HEADERS frame with END_STREAM: 200, grpc-status: 7 (a gRPC
//                     trailers-only error).
//   /refuse-once...   RST_STREAM REFUSED_STREAM the first time this exact path is asked, then
//                     200 "ok".
//   /reset            200 headers and 5 bytes of body, then RST_STREAM INTERNAL_ERROR.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sluice::testing {

class TestH2Upstream {
 public:
  TestH2Upstream();
  ~TestH2Upstream();
  TestH2Upstream(const TestH2Upstream&) = delete;
  TestH2Upstream& operator=(const TestH2Upstream&) = delete;

  uint16_t port() const { return port_; }
  size_t connections() const { return connections_.load(); }
  size_t streams() const { return streams_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> connections_{0};
  std::atomic<size_t> streams_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<int> fds_;
  std::set<std::string> refused_paths_;
};

}  // namespace sluice::testing
