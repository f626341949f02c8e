#include "http2_client_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace sluice::testing {

std::string Http2Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct Http2Client::Callbacks {
  static Http2Client& self(void* p) { return *static_cast<Http2Client*>(p); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) {
    Http2Response& r = self(user_data).streams_[frame->hd.stream_id].response;
    std::string k(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (k == ":status") {
      const int status = std::stoi(v);
      if (status >= 200) r.status = status;  // 1xx are interim
      return 0;
    }
    // A second header block after the final response head carries trailers.
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && r.status >= 200) {
      r.trailers.emplace_back(std::move(k), std::move(v));
    } else {
      r.headers.emplace_back(std::move(k), std::move(v));
    }
    return 0;
  }

  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                     void* user_data) {
    self(user_data).streams_[id].response.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user_data) {
    Http2Response& r = self(user_data).streams_[id].response;
    r.closed = true;
    r.error_code = error_code;
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_GOAWAY) self(user_data).goaway_received_ = true;
    return 0;
  }

  static ssize_t read_upload(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* u = static_cast<Upload*>(source->ptr);
    const size_t n = std::min(length, u->data.size() - u->offset);
    std::memcpy(buf, u->data.data() + u->offset, n);
    u->offset += n;
    if (u->offset == u->data.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

Http2Client::Http2Client(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, Callbacks::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Callbacks::on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::on_frame_recv);
  nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
}

Http2Client::~Http2Client() {
  if (session_) nghttp2_session_del(session_);
  if (fd_ >= 0) ::close(fd_);
}

int32_t Http2Client::Submit(std::string_view method, std::string_view path, std::string body,
                            std::vector<std::pair<std::string, std::string>> headers) {
  const bool has_host =
      std::any_of(headers.begin(), headers.end(), [](const auto& h) { return h.first == "host"; });
  headers.insert(
      headers.begin(),
      {{":method", std::string(method)}, {":scheme", "http"}, {":path", std::string(path)}});
  if (!has_host) headers.insert(headers.begin() + 3, {":authority", "test.local"});
  std::vector<nghttp2_nv> nva;
  for (auto& [k, v] : headers) {
    nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()),
                   k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  if (body.empty()) {
    const int32_t id =
        nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    if (id > 0) streams_[id];
    return id;
  }
  // nghttp2 keeps a copy of the provider: its source must stay where it is.
  auto upload = std::make_unique<Upload>();
  upload->data = std::move(body);
  nghttp2_data_provider provider{};
  provider.source.ptr = upload.get();
  provider.read_callback = Callbacks::read_upload;
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id > 0) streams_[id];
  uploads_.push_back(std::move(upload));
  return id;
}

void Http2Client::Reset(int32_t stream_id) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
}

void Http2Client::Pump(std::chrono::milliseconds wait) {
  if (fd_ < 0 || closed_) return;
  while (nghttp2_session_want_write(session_)) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      const ssize_t w = ::send(fd_, data + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) {
        closed_ = true;
        return;
      }
      off += w;
    }
  }
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
  char buf[65536];
  const ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
  if (r <= 0) {
    closed_ = true;
    return;
  }
  if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                               static_cast<size_t>(r)) < 0) {
    closed_ = true;
  }
}

bool Http2Client::WaitFor(int32_t stream_id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!streams_[stream_id].response.closed && !closed_) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    Pump(std::chrono::milliseconds(20));
  }
  return streams_[stream_id].response.closed;
}

bool Http2Client::WaitForClose(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    Pump(std::chrono::milliseconds(20));
  }
  return true;
}

void Http2Client::RunFor(std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (!closed_ && std::chrono::steady_clock::now() < deadline) {
    Pump(std::chrono::milliseconds(10));
  }
}

}  // namespace sluice::testing
