// A blocking HTTP/2 client for integration tests (h2c with prior knowledge, nghttp2's client
// session over a POSIX socket): submit streams, reset them, and run the connection until a
// stream closes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace sluice::testing {

struct Http2Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;
  bool closed = false;
  uint32_t error_code = 0;  // the stream's close code (0: NO_ERROR)
  std::string header(std::string_view name) const;
};

class Http2Client {
 public:
  explicit Http2Client(uint16_t port);
  ~Http2Client();
  Http2Client(const Http2Client&) = delete;
  Http2Client& operator=(const Http2Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Opens a stream; returns its id (or a negative nghttp2 error). `body` is sent in full with
  // END_STREAM (none: END_STREAM on the headers). :authority is test.local, unless `headers` has a
  // host (then it is left out, as some clients do).
  int32_t Submit(std::string_view method, std::string_view path, std::string body = "",
                 std::vector<std::pair<std::string, std::string>> headers = {});
  void Reset(int32_t stream_id);
  // Runs the connection until `stream_id` is closed, the connection closes, or `timeout`.
  bool WaitFor(int32_t stream_id, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Runs the connection until it is closed by the server (or `timeout`).
  bool WaitForClose(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Runs the connection for `duration` (sending what is queued, reading what comes).
  void RunFor(std::chrono::milliseconds duration);

  Http2Response& response(int32_t stream_id) { return streams_[stream_id].response; }
  bool goaway_received() const { return goaway_received_; }
  bool closed() const { return closed_; }

 private:
  struct StreamState {
    Http2Response response;
  };
  struct Upload {
    std::string data;
    size_t offset = 0;
  };
  struct Callbacks;
  friend struct Callbacks;
  // One round: send what is queued, then read once (waiting at most `wait`).
  void Pump(std::chrono::milliseconds wait);

  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, StreamState> streams_;
  std::vector<std::unique_ptr<Upload>> uploads_;
  bool goaway_received_ = false;
  bool closed_ = false;
};

}  // namespace sluice::testing
