#include "http_client_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

namespace sluice::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

}  // namespace

const std::string* HttpResponse::header(std::string_view name) const {
  const std::string lower = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == lower) return &v;
  }
  return nullptr;
}

size_t HttpResponse::header_count(std::string_view name) const {
  const std::string lower = Lower(name);
  size_t n = 0;
  for (const auto& [k, v] : headers) n += k == lower;
  return n;
}

int TryConnect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const sockaddr_in addr = Loopback(port);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

HttpClient::HttpClient(uint16_t port, int rcvbuf) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    connect_errno_ = errno;
    return;
  }
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const sockaddr_in addr = Loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    connect_errno_ = errno;
    ::close(fd);
    return;
  }
  fd_ = fd;
}

HttpClient::~HttpClient() { Close(); }

bool HttpClient::ShutdownWrite() { return fd_ >= 0 && ::shutdown(fd_, SHUT_WR) == 0; }

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpClient::Send(std::string_view bytes) {
  if (fd_ < 0) return false;
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

HttpClient::FillResult HttpClient::Fill(Clock::time_point deadline, size_t max_read) {
  if (fd_ < 0 || eof_) return FillResult::kClosed;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return FillResult::kTimeout;
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;  // re-check the deadline
    std::string tmp(std::min<size_t>(max_read, 256 * 1024), '\0');
    const ssize_t n = ::recv(fd_, tmp.data(), tmp.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EOF, or a reset: either way the peer is gone
      eof_ = true;
      return FillResult::kClosed;
    }
    buffer_.append(tmp.data(), static_cast<size_t>(n));
    return FillResult::kData;
  }
}

HttpResponse HttpClient::ReadResponse(const ReadOptions& o) {
  HttpResponse r;
  const auto deadline = Clock::now() + o.timeout;
  bool in_body = false;
  // Reads more; false (with r.closed or r.error set) when nothing more can come.
  auto more = [&]() {
    if (in_body && o.before_body_read) o.before_body_read();
    switch (Fill(deadline, in_body ? o.max_read : 64 * 1024)) {
      case FillResult::kData:
        return true;
      case FillResult::kClosed:
        r.closed = true;
        return false;
      case FillResult::kTimeout:
        r.error = "timeout";
        return false;
    }
    return false;
  };

  // Status line and headers; interim (1xx) responses are skipped.
  while (true) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!more()) {
        if (r.error.empty())
          r.error = buffer_.empty() ? "closed before response" : "closed in head";
        return r;
      }
    }
    const std::string head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    r.headers.clear();
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    const size_t sp = status_line.find(' ');
    r.version = status_line.substr(0, sp);
    r.status = sp == std::string::npos ? 0 : std::atoi(status_line.c_str() + sp + 1);
    for (size_t pos = line_end + 2; pos < head.size(); pos = line_end + 2) {
      line_end = head.find("\r\n", pos);
      const std::string_view line(head.data() + pos, line_end - pos);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      r.headers.emplace_back(Lower(line.substr(0, colon)),
                             std::string(Trim(line.substr(colon + 1))));
    }
    if (r.status / 100 != 1) break;
  }

  in_body = true;
  const std::string* te = r.header("transfer-encoding");
  const std::string* cl = r.header("content-length");
  if (o.head_request || r.status == 204 || r.status == 304) {
    r.complete = true;
  } else if (te && Lower(*te).find("chunked") != std::string::npos) {
    r.chunked = true;
    while (true) {
      size_t le;
      while ((le = buffer_.find("\r\n")) == std::string::npos) {
        if (!more()) return r;
      }
      const uint64_t size = std::strtoull(buffer_.c_str(), nullptr, 16);
      if (size == 0) {
        buffer_.erase(0, le + 2);
        while (true) {  // trailers, then the blank line
          while ((le = buffer_.find("\r\n")) == std::string::npos) {
            if (!more()) return r;
          }
          const std::string line = buffer_.substr(0, le);
          buffer_.erase(0, le + 2);
          if (le == 0) break;
          const size_t colon = line.find(':');
          if (colon != std::string::npos) {
            r.trailers.emplace_back(Lower(line.substr(0, colon)),
                                    std::string(Trim(line.substr(colon + 1))));
          }
        }
        r.complete = true;
        break;
      }
      while (buffer_.size() < le + 2 + size + 2) {
        if (!more()) {
          // Keep what arrived of a truncated chunk: tests compare lengths.
          if (buffer_.size() > le + 2) r.body.append(buffer_, le + 2, size);
          buffer_.clear();
          return r;
        }
      }
      r.body.append(buffer_, le + 2, size);
      buffer_.erase(0, le + 2 + size + 2);
    }
  } else if (cl) {
    const uint64_t want = std::strtoull(cl->c_str(), nullptr, 10);
    r.body.reserve(want);
    while (r.body.size() < want) {
      if (buffer_.empty() && !more()) return r;
      const size_t take = std::min<uint64_t>(want - r.body.size(), buffer_.size());
      r.body.append(buffer_, 0, take);
      buffer_.erase(0, take);
    }
    r.complete = true;
  } else {
    // Close-delimited.
    while (more()) {
    }
    r.body += buffer_;
    buffer_.clear();
    r.complete = r.closed;
  }
  if (eof_) r.closed = true;
  return r;
}

HttpResponse HttpClient::Get(std::string_view path, std::string_view extra_headers) {
  Send(fmt::format("GET {} HTTP/1.1\r\nHost: test.local\r\n{}\r\n", path, extra_headers));
  return ReadResponse();
}

bool HttpClient::WaitForClose(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    switch (Fill(deadline, 64 * 1024)) {
      case FillResult::kData:
        continue;
      case FillResult::kClosed:
        return true;
      case FillResult::kTimeout:
        return false;
    }
  }
}

bool HttpClient::StaysQuiet(std::chrono::milliseconds duration) {
  return Fill(Clock::now() + duration, 64 * 1024) == FillResult::kTimeout;
}

}  // namespace sluice::testing
