// A tiny blocking HTTP/1.x client over a raw loopback socket, for integration tests: send exact
// bytes, read one response at a time (responses to pipelined requests stay buffered), with a
// deadline on every read so a test can never hang.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::testing {

struct HttpResponse {
  std::string version;                                       // "HTTP/1.1"
  int status = 0;                                            // 0: no status line was read
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;                                          // de-chunked
  bool chunked = false;
  std::vector<std::pair<std::string, std::string>> trailers;  // names lower-cased, in order
  // The framing was satisfied: Content-Length bytes read, the last chunk read, or (no length) the
  // connection closed.
  bool complete = false;
  // The peer closed the connection while or right after this response was read.
  bool closed = false;
  std::string error;  // "timeout", "closed before headers", ...

  const std::string* header(std::string_view name) const;
  bool has_header(std::string_view name) const { return header(name) != nullptr; }
  size_t header_count(std::string_view name) const;
};

struct ReadOptions {
  std::chrono::milliseconds timeout{10000};  // for the whole response
  bool head_request = false;                 // the response has no body
  size_t max_read = 64 * 1024;               // bytes per recv()
  // Called before each recv() once the head is read (slow readers sleep here).
  std::function<void()> before_body_read;
};

class HttpClient {
 public:
  // Connects to 127.0.0.1:`port`. `rcvbuf` > 0 sets SO_RCVBUF first (a small window makes the
  // proxy's write buffer fill up quickly).
  explicit HttpClient(uint16_t port, int rcvbuf = 0);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int connect_errno() const { return connect_errno_; }

  bool Send(std::string_view bytes);
  HttpResponse ReadResponse(const ReadOptions& options = {});
  // Convenience: sends a GET with Host "test.local" (plus `extra_headers`, each ending in CRLF).
  HttpResponse Get(std::string_view path, std::string_view extra_headers = "");

  // True when the peer closes the connection (EOF or reset) within `timeout`; bytes that arrive
  // meanwhile are kept for the next ReadResponse.
  bool WaitForClose(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True when nothing arrives and the connection stays open for `duration`.
  bool StaysQuiet(std::chrono::milliseconds duration);
  // Bytes received but not consumed by a response yet.
  const std::string& buffered() const { return buffer_; }
  // Half-closes: sends FIN, keeps reading.
  bool ShutdownWrite();
  void Close();

 private:
  enum class FillResult { kData, kClosed, kTimeout };
  FillResult Fill(std::chrono::steady_clock::time_point deadline, size_t max_read);

  int fd_ = -1;
  int connect_errno_ = 0;
  bool eof_ = false;
  std::string buffer_;
};

// Connects to 127.0.0.1:`port` and returns 0 on success or the connect() errno.
int TryConnect(uint16_t port);

}  // namespace sluice::testing
