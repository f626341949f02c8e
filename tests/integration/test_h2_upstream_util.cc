#include "test_h2_upstream_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

namespace sluice::testing {
namespace {

// One connection's session, on its own thread.
struct H2Conn {
  TestH2Upstream* owner = nullptr;
  std::set<std::string>* refused = nullptr;
  std::mutex* mu = nullptr;
  std::atomic<size_t>* streams = nullptr;
  nghttp2_session* session = nullptr;
  struct Stream {
    std::map<std::string, std::string> headers;
    size_t body_bytes = 0;
    std::string out;
    size_t offset = 0;
    bool trailers = false;
  };
  std::map<int32_t, Stream> stream;
  std::vector<int32_t> resets_after_send;

  static nghttp2_nv nv(const std::string& k, const std::string& v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }

  static ssize_t read_body(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    const size_t n = std::min(length, s->out.size() - s->offset);
    std::memcpy(buf, s->out.data() + s->offset, n);
    s->offset += n;
    if (s->offset == s->out.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        const std::string k1 = "x-checksum", v1 = "abc", k2 = "grpc-status", v2 = "0";
        const nghttp2_nv t[] = {nv(k1, v1), nv(k2, v2)};
        nghttp2_submit_trailer(session, id, t, 2);
      }
    }
    return static_cast<ssize_t>(n);
  }

  void respond(int32_t id) {
    Stream& s = stream[id];
    const std::string path = s.headers[":path"];
    const std::string status = "200";
    nghttp2_data_provider provider{};
    provider.source.ptr = &s;
    provider.read_callback = read_body;
    if (path.rfind("/refuse-once", 0) == 0) {
      std::lock_guard<std::mutex> lock(*mu);
      if (refused->insert(path).second) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
      }
      s.out = "ok";
      const std::string k = ":status";
      const nghttp2_nv h[] = {nv(k, status)};
      nghttp2_submit_response(session, id, h, 1, &provider);
      return;
    }
    if (path == "/headers-only") {
      const std::string k1 = ":status", k2 = "grpc-status", v2 = "7";
      const nghttp2_nv h[] = {nv(k1, status), nv(k2, v2)};
      nghttp2_submit_response(session, id, h, 2, nullptr);
      return;
    }
    if (path == "/trailers") {
      s.out = "trailed";
      s.trailers = true;
      const std::string k = ":status";
      const nghttp2_nv h[] = {nv(k, status)};
      nghttp2_submit_response(session, id, h, 1, &provider);
      return;
    }
    if (path == "/reset") {
      // Headers and a little body go out, then the reset (a DATA frame without END_STREAM).
      const std::string k = ":status";
      const nghttp2_nv h[] = {nv(k, status)};
      nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id, nullptr, h, 1, nullptr);
      s.out = "part!";
      nghttp2_data_provider partial{};
      partial.source.ptr = &s;
      partial.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                 uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
        auto* st = static_cast<Stream*>(src->ptr);
        const size_t n = std::min(length, st->out.size() - st->offset);
        std::memcpy(buf, st->out.data() + st->offset, n);
        st->offset += n;
        if (st->offset == st->out.size())
          *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return static_cast<ssize_t>(n);
      };
      nghttp2_submit_data(session, NGHTTP2_FLAG_NONE, id, &partial);
      // Reset once those are on the wire (nghttp2 would drop them for a reset queued now).
      resets_after_send.push_back(id);
      return;
    }
    s.out = "len=" + std::to_string(s.body_bytes);
    const std::string k1 = ":status", k2 = "x-method", k3 = "x-authority", k4 = "x-te";
    const nghttp2_nv h[] = {nv(k1, status), nv(k2, s.headers[":method"]),
                            nv(k3, s.headers[":authority"]), nv(k4, s.headers["te"])};
    nghttp2_submit_response(session, id, h, 4, &provider);
  }

  static H2Conn& self(void* p) { return *static_cast<H2Conn*>(p); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    self(p)
        .stream[frame->hd.stream_id]
        .headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
        std::string(reinterpret_cast<const char*>(value), valuelen);
    return 0;
  }
  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t*, size_t len, void* p) {
    self(p).stream[id].body_bytes += len;
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      self(p).streams->fetch_add(1);
      self(p).respond(frame->hd.stream_id);
    }
    return 0;
  }
};

}  // namespace

TestH2Upstream::TestH2Upstream() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listen_fd_, 64);
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TestH2Upstream::~TestH2Upstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : workers_) t.join();
  for (int fd : fds_) ::close(fd);  // closed only now: a number is never reused while shut down
}

void TestH2Upstream::accept_loop() {
  while (!stopping_) {
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    connections_++;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void TestH2Upstream::serve(int fd) {
  H2Conn c;
  c.refused = &refused_paths_;
  c.mu = &mu_;
  c.streams = &streams_;
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2Conn::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2Conn::on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2Conn::on_frame_recv);
  nghttp2_session_server_new(&c.session, cb, &c);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, nullptr, 0);
  char buf[65536];
  while (!stopping_) {
    for (int round = 0; round < 2; ++round) {
      while (nghttp2_session_want_write(c.session)) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(c.session, &data);
        if (n <= 0) break;
        if (::send(fd, data, static_cast<size_t>(n), MSG_NOSIGNAL) != n) goto done;
      }
      for (int32_t id : c.resets_after_send) {
        nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
      }
      c.resets_after_send.clear();
    }
    {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
      if (r <= 0) break;
      if (nghttp2_session_mem_recv(c.session, reinterpret_cast<const uint8_t*>(buf),
                                   static_cast<size_t>(r)) < 0) {
        break;
      }
    }
  }
done:
  nghttp2_session_del(c.session);
  ::shutdown(fd, SHUT_RDWR);
}

}  // namespace sluice::testing
