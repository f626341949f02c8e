#include "test_upstream_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace sluice::testing {
namespace {

// A peer closing mid-write must not kill the test binary (sends also use MSG_NOSIGNAL).
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Query parameter `name` as a number, or `fallback`.
uint64_t QueryNumber(std::string_view target, std::string_view name, uint64_t fallback) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return fallback;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == name) {
      return std::strtoull(std::string(kv.substr(eq + 1)).c_str(), nullptr, 10);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return fallback;
}

std::string Response(int status, std::string_view body, bool close = false) {
  return fmt::format(
      "HTTP/1.1 {} {}\r\nServer: test-upstream\r\nContent-Type: text/plain\r\n"
      "Content-Length: {}\r\n{}\r\n{}",
      status, status == 200 ? "OK" : "Scripted", body.size(), close ? "Connection: close\r\n" : "",
      body);
}

// Blocking buffered reads from one socket. Stop() unblocks it with shutdown().
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // Reads more bytes into the buffer; false on EOF or error.
  bool Fill(size_t max = 64 * 1024) {
    char tmp[64 * 1024];
    while (true) {
      const ssize_t n = ::recv(fd_, tmp, std::min(max, sizeof(tmp)), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }
  // Reads through `delim`; `out` gets everything up to and including it.
  bool ReadUntil(std::string_view delim, std::string* out) {
    size_t searched = 0;
    while (true) {
      const size_t pos = buf_.find(delim, searched > delim.size() ? searched - delim.size() : 0);
      if (pos != std::string::npos) {
        out->assign(buf_, 0, pos + delim.size());
        buf_.erase(0, pos + delim.size());
        return true;
      }
      searched = buf_.size();
      if (!Fill()) return false;
    }
  }
  bool ReadLine(std::string* line) {
    if (!ReadUntil("\r\n", line)) return false;
    line->resize(line->size() - 2);
    return true;
  }
  bool ReadExactly(size_t n, std::string* out) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    out->append(buf_, 0, n);
    buf_.erase(0, n);
    return true;
  }
  // Up to `max` bytes: buffered ones first, else one recv. 0 on EOF or error.
  size_t ReadSome(size_t max, std::string* out) {
    if (buf_.empty() && !Fill(max)) return 0;
    const size_t n = std::min(max, buf_.size());
    out->append(buf_, 0, n);
    buf_.erase(0, n);
    return n;
  }

 private:
  int fd_;
  std::string buf_;
};

// Parses the request line and headers of `head` (which ends with the blank line).
bool ParseHead(const std::string& head, ReceivedRequest* r) {
  r->raw_head = head;
  size_t line_end = head.find("\r\n");
  const std::string_view request_line(head.data(), line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  r->method = request_line.substr(0, sp1);
  r->target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  r->version = request_line.substr(sp2 + 1);
  r->path = r->target.substr(0, r->target.find('?'));
  size_t pos = line_end + 2;
  while (pos < head.size()) {
    line_end = head.find("\r\n", pos);
    if (line_end == pos || line_end == std::string::npos) break;
    const std::string_view line(head.data() + pos, line_end - pos);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      r->headers.emplace_back(Lower(line.substr(0, colon)),
                              std::string(Trim(line.substr(colon + 1))));
    }
    pos = line_end + 2;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

uint64_t Fnv1a(std::string_view data, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

const std::string* ReceivedRequest::header(std::string_view name) const {
  const std::string lower = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == lower) return &v;
  }
  return nullptr;
}

size_t ReceivedRequest::header_count(std::string_view name) const {
  const std::string lower = Lower(name);
  size_t n = 0;
  for (const auto& [k, v] : headers) n += k == lower;
  return n;
}

TestUpstream::TestUpstream() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    throw std::runtime_error(fmt::format("bind/listen failed: {}", std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestUpstream::~TestUpstream() { Stop(); }

void TestUpstream::Stop() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) accept_thread_.join();
  ::close(listen_fd_);
  std::vector<Conn> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Wakes threads blocked in recv/send ("hang", back-pressured writes).
    for (auto& c : conns_) {
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
    }
    conns.swap(conns_);
  }
  cv_.notify_all();
  for (auto& c : conns) c.thread.join();
}

void TestUpstream::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(mu_);
    const size_t index = accepted_++;
    conns_.push_back(Conn{fd, std::thread([this, fd, index] { Serve(fd, index); })});
  }
}

bool TestUpstream::SleepFor(std::chrono::milliseconds ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, ms, [this] { return stopping_.load(); });
}

size_t TestUpstream::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_.size();
}

size_t TestUpstream::requests_for(std::string_view path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_path_.find(path);
  return it == per_path_.end() ? 0 : it->second;
}

std::vector<ReceivedRequest> TestUpstream::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

std::optional<ReceivedRequest> TestUpstream::last_request() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (received_.empty()) return std::nullopt;
  return received_.back();
}

bool TestUpstream::WaitForRequests(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return received_.size() >= n; });
}

bool TestUpstream::WaitForClosedConnections(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return closed_.load() >= n; });
}

void TestUpstream::Serve(int fd, size_t index) {
  Reader in(fd);
  bool rst = false;
  for (size_t n = 0; !stopping_; ++n) {
    std::string head;
    if (!in.ReadUntil("\r\n\r\n", &head)) break;
    ReceivedRequest r;
    if (!ParseHead(head, &r)) break;
    r.connection_index = index;
    r.request_on_connection = n;
    if (const std::string* te = r.header("transfer-encoding")) r.chunked = Lower(*te) == "chunked";
    size_t slot;
    size_t path_count;
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot = received_.size();
      received_.push_back(r);
      path_count = ++per_path_[r.path];
    }
    cv_.notify_all();
    const std::string& path = r.path;

    // The request body.
    uint64_t content_length = 0;
    if (const std::string* cl = r.header("content-length")) {
      content_length = std::strtoull(cl->c_str(), nullptr, 10);
    }
    std::string body;
    bool ok = true;
    if (StartsWith(path, "/slow-sink") && !r.chunked) {
      const size_t chunk = QueryNumber(r.target, "chunk", 16 * 1024);
      const auto pause = std::chrono::milliseconds(QueryNumber(r.target, "ms", 1));
      uint64_t got = 0;
      uint64_t fnv = Fnv1a("");
      std::string piece;
      while (ok && got < content_length) {
        piece.clear();
        const size_t k = in.ReadSome(std::min<uint64_t>(chunk, content_length - got), &piece);
        if (k == 0) ok = false;
        got += k;
        fnv = Fnv1a(piece, fnv);
        if (ok && !SleepFor(pause)) ok = false;
      }
      if (!ok) break;
      body = fmt::format("bytes={} fnv={:016x}", got, fnv);
    } else if (r.chunked) {
      while (ok) {
        std::string line;
        if (!in.ReadLine(&line)) {
          ok = false;
          break;
        }
        const uint64_t size = std::strtoull(line.c_str(), nullptr, 16);
        if (size == 0) {
          std::vector<std::string> trailers;
          while ((ok = in.ReadLine(&line)) && !line.empty()) trailers.push_back(line);
          std::lock_guard<std::mutex> lock(mu_);
          received_[slot].trailer_lines = std::move(trailers);
          break;
        }
        ok = in.ReadExactly(size, &body) && in.ReadLine(&line);
      }
    } else {
      ok = in.ReadExactly(content_length, &body);
    }
    if (!ok) break;
    if (!StartsWith(path, "/slow-sink")) {
      std::lock_guard<std::mutex> lock(mu_);
      received_[slot].body = body;
    }

    const std::string* conn_header = r.header("connection");
    const bool close_after =
        (conn_header && Lower(*conn_header) == "close") ||
        (r.version == "HTTP/1.0" && !(conn_header && Lower(*conn_header) == "keep-alive"));

    if (StartsWith(path, "/hang-once") && path_count > 1) {
      if (!SendAll(fd, Response(200, "ok", close_after)) || close_after) break;
      continue;
    }
    if (path == "/conn-close") {
      // Content-Length and "Connection: close", then the close: never reusable.
      SendAll(fd, Response(200, "closing", /*close=*/true));
      break;
    }
    if (StartsWith(path, "/hang")) {
      // Never answer: wait for the peer (or Stop()) to close.
      std::string ignored;
      while (in.ReadSome(64 * 1024, &ignored) > 0) ignored.clear();
      break;
    }
    if (StartsWith(path, "/reset-once")) {
      if (path_count == 1) break;
      if (!SendAll(fd, Response(200, "ok", close_after)) || close_after) break;
      continue;
    }
    if (path == "/reset-if-reused") {
      if (n > 0) break;
      if (!SendAll(fd, Response(200, "first", close_after)) || close_after) break;
      continue;
    }
    if (StartsWith(path, "/reset")) break;
    if (StartsWith(path, "/rst")) {
      rst = true;
      break;
    }
    if (path == "/close-mid-body") {
      SendAll(fd,
              "HTTP/1.1 200 OK\r\nServer: test-upstream\r\nContent-Length: 1000\r\n\r\n0123456789");
      break;
    }
    if (path == "/close-delimited") {
      SendAll(fd, "HTTP/1.1 200 OK\r\nServer: test-upstream\r\nConnection: close\r\n\r\n");
      SendAll(fd, "close-delimited ");
      SleepFor(std::chrono::milliseconds(20));  // two segments: the proxy streams, not buffers
      SendAll(fd, "body");
      break;
    }
    if (path == "/interim") {
      // 100 Continue, then (in a second segment with ?split=1) the real response.
      bool sent = SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n");
      if (sent && QueryNumber(r.target, "split", 0)) sent = SleepFor(std::chrono::milliseconds(20));
      if (!sent || !SendAll(fd, Response(200, "after interim", close_after)) || close_after) break;
      continue;
    }
    if (path == "/garbage") {
      SendAll(fd, "this is not http\r\n\r\n");
      break;
    }
    if (path == "/huge-headers") {
      // 128 KiB of headers: more than any sane limit on the response head.
      std::string headers;
      for (int i = 0; i < 128; ++i)
        headers += fmt::format("X-Big-{}: {}\r\n", i, std::string(1000, 'h'));
      SendAll(fd, "HTTP/1.1 200 OK\r\n" + headers + "Content-Length: 0\r\n\r\n");
      break;
    }
    if (path == "/config") {
      // A configuration service whose answer changes with every fetch.
      if (!SendAll(fd, Response(200, fmt::format("config-{}", path_count), close_after)) ||
          close_after) {
        break;
      }
      continue;
    }
    if (path == "/auth-check") {
      // An authorization service: "Bearer good" passes (naming the user), anything else not.
      const std::string* auth = r.header("authorization");
      const std::string* orig = r.header("x-original-path");
      if (auth && *auth == "Bearer good") {
        const bool sent = SendAll(
            fd, fmt::format("HTTP/1.1 200 OK\r\nX-Auth-User: alice\r\nX-Checked-Path: {}\r\n"
                            "Content-Length: 0\r\n{}\r\n",
                            orig ? *orig : "", close_after ? "Connection: close\r\n" : ""));
        if (!sent || close_after) break;
      } else {
        if (!SendAll(fd, Response(403, "bad token", close_after)) || close_after) break;
      }
      continue;
    }
    if (path == "/trailers") {
      const bool sent = SendAll(fd, fmt::format("HTTP/1.1 200 OK\r\nServer: test-upstream\r\n"
                                                "Transfer-Encoding: chunked\r\n{}\r\n"
                                                "7\r\ntrailed\r\n0\r\nX-Checksum: abc\r\n"
                                                "grpc-status: 0\r\n\r\n",
                                                close_after ? "Connection: close\r\n" : ""));
      if (!sent || close_after) break;
      continue;
    }
    if (path == "/chunked") {
      const bool sent = SendAll(fd, fmt::format("HTTP/1.1 200 OK\r\nServer: test-upstream\r\n"
                                                "Transfer-Encoding: chunked\r\n{}\r\n",
                                                close_after ? "Connection: close\r\n" : "")) &&
                        SendAll(fd, "6\r\nhello \r\n8\r\nchunked \r\n") &&
                        SleepFor(std::chrono::milliseconds(10)) &&
                        SendAll(fd, "5\r\nworld\r\n0\r\n\r\n");
      if (!sent || close_after) break;
      continue;
    }
    if (StartsWith(path, "/slow-body")) {
      const auto ms = std::chrono::milliseconds(QueryNumber(r.target, "ms", 1000));
      const bool sent = SendAll(fd, fmt::format("HTTP/1.1 200 OK\r\nServer: test-upstream\r\n"
                                                "Content-Length: 4\r\n{}\r\n",
                                                close_after ? "Connection: close\r\n" : "")) &&
                        SleepFor(ms) && SendAll(fd, "body");
      if (!sent || close_after) break;
      continue;
    }
    if (StartsWith(path, "/slow") && !StartsWith(path, "/slow-sink")) {
      if (!SleepFor(std::chrono::milliseconds(QueryNumber(r.target, "ms", 1000)))) break;
      if (!SendAll(fd, Response(200, "slow", close_after)) || close_after) break;
      continue;
    }
    if (StartsWith(path, "/big")) {
      const uint64_t total = QueryNumber(r.target, "bytes", 8 * 1024 * 1024);
      bool sent = SendAll(fd, fmt::format("HTTP/1.1 200 OK\r\nServer: test-upstream\r\n"
                                          "Content-Length: {}\r\n{}\r\n",
                                          total, close_after ? "Connection: close\r\n" : ""));
      std::string block;
      for (uint64_t off = 0; sent && off < total && !stopping_;) {
        const uint64_t k = std::min<uint64_t>(64 * 1024, total - off);
        block.resize(k);
        for (uint64_t i = 0; i < k; ++i) block[i] = BigBodyByte(off + i);
        sent = SendAll(fd, block);
        if (sent) big_bytes_written_ += k;
        off += k;
      }
      if (!sent || close_after) break;
      continue;
    }
    std::string response;
    if (StartsWith(path, "/status/") || StartsWith(path, "/fail-once/")) {
      const size_t start = path.find('/', 1) + 1;
      const int code = std::atoi(path.c_str() + start);
      if (StartsWith(path, "/fail-once/") && path_count > 1) {
        response = Response(200, "ok", close_after);
      } else {
        response = Response(code, fmt::format("status {}", code), close_after);
      }
    } else if (StartsWith(path, "/slow-sink")) {
      response = Response(200, body, close_after);
    } else {
      response = Response(200, head + body, close_after);  // echo
    }
    if (!SendAll(fd, response) || close_after) break;
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (rst) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  // Closed under the lock so Stop() never shuts down a reused descriptor number.
  for (auto& c : conns_) {
    if (c.fd == fd) c.fd = -1;
  }
  ::close(fd);
  ++closed_;
  cv_.notify_all();
}

}  // namespace sluice::testing
