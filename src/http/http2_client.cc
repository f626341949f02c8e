#include "http/http2_client.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "common/strings.h"
#include "http/http2_body.h"

namespace sluice::http {

// One HTTP/2 connection to one host, shared by every request of its worker to that host.
class Http2ClientConnection final : public net::ConnectionCallbacks,
                                    public std::enable_shared_from_this<Http2ClientConnection> {
 public:
  Http2ClientConnection(upstream::WorkerCluster& cluster,
                        std::shared_ptr<const upstream::Host> host);
  ~Http2ClientConnection() override;

  void connect();
  // Takes new streams: not closed, and the server has not said GOAWAY.
  bool usable() const { return !closed_ && !goaway_; }
  bool connected() const { return connected_; }
  const upstream::Host& host() const { return *host_; }

  // Opens a stream for `req`; -1 when nghttp2 refuses (the request fails).
  int32_t submit(Http2UpstreamRequest& req, const HeaderMap& headers, bool end_stream);
  void send_data(int32_t id, std::string_view data);
  void send_end(int32_t id, const HeaderMap* trailers);
  // `req` is done with the stream: nothing more is reported to it; with `reset` the stream is
  // abandoned too (RST_STREAM CANCEL).
  void detach(int32_t id, Http2UpstreamRequest* req, bool reset);
  // Stop (true) or resume taking the stream's response body (its window stays shut).
  void pause(int32_t id, bool pause);
  // Closes now; streams still open fail (Reset).
  void close();

  // net::ConnectionCallbacks
  void on_read(const char* data, size_t len) override;
  void on_close(net::CloseReason) override;
  void on_above_write_high_watermark() override {}
  void on_below_write_low_watermark() override { flush(); }

 private:
  struct Stream {
    Http2ClientConnection* owner = nullptr;
    int32_t id = -1;
    Http2UpstreamRequest* req = nullptr;  // null once cancelled or done
    HeaderMap headers;                    // response headers, then trailers, as they arrive
    size_t header_bytes = 0;
    bool final_headers = false;
    Http2OutgoingBody body;  // the request's body (and trailers), waiting for the server's window
    bool send_blocked = false;
    Http2IncomingWindow window;
  };
  struct Callbacks;
  friend struct Callbacks;

  Stream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  void resume(Stream& s);
  void receive(const char* data, size_t len);
  void schedule_flush();
  void flush();
  void on_connected();
  // Fails every stream still attached to a request, then leaves the pool.
  void fail_all(UpstreamFailure failure);
  void leave_pool();

  upstream::WorkerCluster& cluster_;
  std::shared_ptr<const upstream::Host> host_;
  std::unique_ptr<upstream::UpstreamConnection> conn_;  // cluster accounting + the socket
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  bool connected_ = false;
  bool closed_ = false;
  bool goaway_ = false;
  bool in_receive_ = false;
  bool flush_posted_ = false;
};

namespace {

// A worker's HTTP/2 connections to one cluster's hosts.
class Http2Pool final : public upstream::WorkerCluster::SharedPool {
 public:
  std::vector<std::shared_ptr<Http2ClientConnection>> connections;

  void close_all() override {
    auto all = std::move(connections);
    connections.clear();
    for (auto& c : all) c->close();
  }

  static Http2Pool& of(upstream::WorkerCluster& cluster) {
    auto& slot = cluster.shared_pool();
    if (!slot) slot = std::make_unique<Http2Pool>();
    return static_cast<Http2Pool&>(*slot);
  }
};

bool is_connection_header(std::string_view key) {
  return key == "connection" || key == "keep-alive" || key == "proxy-connection" ||
         key == "transfer-encoding" || key == "upgrade" || key == "host";
}

}  // namespace

// ---- nghttp2's callbacks -------------------------------------------------------------------

struct Http2ClientConnection::Callbacks {
  static Http2ClientConnection& self(void* p) { return *static_cast<Http2ClientConnection*>(p); }
  static Stream* stream(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if (Stream* s = stream(session, frame->hd.stream_id)) {
      s->headers.clear();
      s->header_bytes = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    Stream* s = stream(session, frame->hd.stream_id);
    if (!s || !s->req) return 0;
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > 96 * 1024) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    HeaderMap::Entry& e = s->headers.append_empty();
    e.key.assign(reinterpret_cast<const char*>(name), namelen);
    e.value.assign(reinterpret_cast<const char*>(value), valuelen);
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Http2ClientConnection& c = self(user_data);
    const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = stream(session, frame->hd.stream_id);
        if (!s || !s->req) return 0;
        Http2UpstreamRequest* req = s->req;
        if (!s->final_headers) {
          const std::string_view status = s->headers.status();
          if (!status.empty() && status[0] == '1') return 0;  // interim (100 Continue)
          s->final_headers = true;
          req->on_headers(s->headers, end_stream);
          if (end_stream && s->req) req->on_complete();
        } else if (end_stream) {
          req->on_trailers(s->headers);
          if (s->req) req->on_complete();
        }
        return 0;
      }
      case NGHTTP2_DATA:
        if (end_stream) {
          Stream* s = stream(session, frame->hd.stream_id);
          if (s && s->req) s->req->on_complete();
        }
        return 0;
      case NGHTTP2_RST_STREAM:
        c.cluster_.info().stats().upstream_rq_rx_reset.inc();
        return 0;
      case NGHTTP2_GOAWAY:
        // Streams above its last id are refused (closed with REFUSED_STREAM, retriable); no new
        // ones go on this connection.
        c.goaway_ = true;
        c.leave_pool();
        return 0;
      default:
        return 0;
    }
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void*) {
    Stream* s = stream(session, id);
    const bool wanted = s && s->req;
    Http2IncomingWindow::received(session, id, len, wanted ? &s->window : nullptr);
    if (!wanted) return 0;
    s->req->on_data(std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, int32_t id, uint32_t error_code,
                             void* user_data) {
    Http2ClientConnection& c = self(user_data);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    std::unique_ptr<Stream> s = std::move(it->second);
    c.streams_.erase(it);
    nghttp2_session_set_stream_user_data(session, id, nullptr);
    // Closed before the response completed: reset by the server, refused after a GOAWAY, or
    // the response was malformed.
    if (s->req) {
      s->req->refused_ = error_code == NGHTTP2_REFUSED_STREAM && !s->final_headers;
      s->req->on_failure(UpstreamFailure::Reset);
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session* session, int32_t, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    const ssize_t n = s->body.read(session, s->id, buf, length, flags);
    const uint32_t limit = s->owner->cluster_.info().config().per_connection_buffer_limit_bytes;
    if (s->send_blocked && s->body.pending() <= limit / 2) {
      s->send_blocked = false;
      if (s->req) s->req->on_send_blocked(false);
    }
    return n;
  }

  static nghttp2_session_callbacks* make() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
  }
};

// ---- The connection ------------------------------------------------------------------------

Http2ClientConnection::Http2ClientConnection(upstream::WorkerCluster& cluster,
                                             std::shared_ptr<const upstream::Host> host)
    : cluster_(cluster), host_(std::move(host)) {
  static nghttp2_session_callbacks* const callbacks = Callbacks::make();
  const auto& o = *cluster_.info().config().http2;
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_outbound_ack(option, o.max_outbound_control_frames);
  nghttp2_session_client_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o.initial_stream_window_size},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, o.hpack_table_size},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(o.initial_connection_window_size));
}

Http2ClientConnection::~Http2ClientConnection() {
  streams_.clear();
  nghttp2_session_del(session_);
}

void Http2ClientConnection::connect() {
  auto& info = cluster_.info();
  auto conn =
      net::Connection::create(*cluster_.loop(), info.config().per_connection_buffer_limit_bytes);
  conn_ = std::make_unique<upstream::UpstreamConnection>(cluster_, host_, conn);
  info.stats().upstream_cx_http2_total.inc();
  const auto started = std::chrono::steady_clock::now();
  conn->connect(host_->endpoint, info.config().connect_timeout, info.tls(),
                [self = weak_from_this(), started](const asio::error_code& ec, bool in_tls) {
                  auto c = self.lock();
                  if (!c || c->closed_) return;
                  auto& stats = c->cluster_.info().stats();
                  if (ec) {
                    if (in_tls) stats.ssl_connection_error.inc();
                    stats.upstream_cx_connect_fail.inc();
                    if (ec == asio::error::timed_out) stats.upstream_cx_connect_timeout.inc();
                    spdlog::debug("upstream HTTP/2 connect to {} failed: {}", c->host_->address,
                                  ec.message());
                    c->fail_all(ec == asio::error::timed_out ? UpstreamFailure::ConnectTimeout
                                                             : UpstreamFailure::ConnectFailure);
                    return;
                  }
                  if (in_tls) {
                    stats.ssl_handshake.inc();
                    if (c->conn_->conn().tls_info().session_reused) stats.ssl_session_reused.inc();
                  }
                  stats.upstream_cx_connect_ms.record(
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count()));
                  c->on_connected();
                });
}

void Http2ClientConnection::on_connected() {
  connected_ = true;
  conn_->conn().set_callbacks(this);
  conn_->conn().start_reading();
  flush();
  std::vector<Http2UpstreamRequest*> waiting;
  for (auto& [id, s] : streams_) {
    if (s->req) waiting.push_back(s->req);
  }
  for (Http2UpstreamRequest* r : waiting) r->on_connected();
}

int32_t Http2ClientConnection::submit(Http2UpstreamRequest& req, const HeaderMap& h,
                                      bool end_stream) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(h.size() + 1);
  // Pseudo-headers first; :scheme is the upstream connection's.
  const std::string_view scheme = cluster_.info().tls() ? "https" : "http";
  nva.push_back(make_nghttp2_nv(":method", h.method()));
  nva.push_back(make_nghttp2_nv(":scheme", scheme));
  nva.push_back(make_nghttp2_nv(":path", h.path()));
  nva.push_back(make_nghttp2_nv(":authority", h.authority()));
  for (const auto& e : h) {
    if (e.key.empty() || e.key[0] == ':' || is_connection_header(e.key)) continue;
    if (e.key == "te" && e.value != "trailers") continue;  // the only TE HTTP/2 allows
    nva.push_back(make_nghttp2_nv(e.key, e.value));
  }
  auto s = std::make_unique<Stream>();
  s->owner = this;
  s->req = &req;
  if (end_stream) s->body.end();
  nghttp2_data_provider provider{};
  provider.source.ptr = s.get();
  provider.read_callback = &Callbacks::read_body;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                            end_stream ? nullptr : &provider, s.get());
  if (id < 0) return -1;
  s->id = id;
  streams_.emplace(id, std::move(s));
  schedule_flush();
  return id;
}

void Http2ClientConnection::resume(Stream& s) {
  s.body.resume(session_, s.id);
  schedule_flush();
}

void Http2ClientConnection::send_data(int32_t id, std::string_view data) {
  Stream* s = find(id);
  if (!s || s->body.ended()) return;
  s->body.append(data);
  resume(*s);
  // The server (or the connection) takes the body slower than the client sends it: pause the
  // client until it catches up.
  const uint32_t limit = cluster_.info().config().per_connection_buffer_limit_bytes;
  if (!s->send_blocked && s->body.pending() > limit && s->req) {
    s->send_blocked = true;
    s->req->on_send_blocked(true);
  }
}

void Http2ClientConnection::send_end(int32_t id, const HeaderMap* trailers) {
  Stream* s = find(id);
  if (!s || s->body.ended()) return;
  s->body.end(trailers);
  resume(*s);
}

void Http2ClientConnection::detach(int32_t id, Http2UpstreamRequest* req, bool reset) {
  Stream* s = find(id);
  if (!s || s->req != req) return;
  s->req = nullptr;
  if (closed_ || !reset) return;
  cluster_.info().stats().upstream_rq_tx_reset.inc();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  schedule_flush();
}

void Http2ClientConnection::pause(int32_t id, bool pause) {
  Stream* s = find(id);
  if (!s) return;
  if (s->window.set_paused(session_, id, pause)) schedule_flush();
}

void Http2ClientConnection::on_read(const char* data, size_t len) {
  cluster_.info().stats().upstream_cx_rx_bytes_total.inc(len);
  receive(data, len);
}

void Http2ClientConnection::receive(const char* data, size_t len) {
  auto self = shared_from_this();
  in_receive_ = true;
  const ssize_t rv =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  in_receive_ = false;
  if (closed_) return;
  if (rv < 0) {
    cluster_.info().stats().upstream_cx_protocol_error.inc();
    spdlog::debug("upstream HTTP/2 {}: {}", host_->address, nghttp2_strerror(static_cast<int>(rv)));
    fail_all(UpstreamFailure::ProtocolError);
    return;
  }
  flush();
}

void Http2ClientConnection::schedule_flush() {
  if (in_receive_ || flush_posted_ || closed_ || !connected_) return;
  flush_posted_ = true;
  asio::post(*cluster_.loop(), [self = weak_from_this()] {
    if (auto c = self.lock()) {
      c->flush_posted_ = false;
      c->flush();
    }
  });
}

void Http2ClientConnection::flush() {
  if (closed_ || !connected_) return;
  net::Connection& conn = conn_->conn();
  while (!conn.above_high_watermark()) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail_all(UpstreamFailure::ProtocolError);
      return;
    }
    if (n == 0) break;
    conn.write(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
    cluster_.info().stats().upstream_cx_tx_bytes_total.inc(static_cast<uint64_t>(n));
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    fail_all(UpstreamFailure::Reset);  // both sides are done (GOAWAY): close
  }
}

void Http2ClientConnection::on_close(net::CloseReason) {
  if (closed_) return;
  cluster_.info().stats().upstream_cx_destroy_remote.inc();
  fail_all(connected_ ? UpstreamFailure::Reset : UpstreamFailure::ConnectFailure);
}

void Http2ClientConnection::close() {
  if (closed_) return;
  fail_all(UpstreamFailure::Reset);
}

void Http2ClientConnection::fail_all(UpstreamFailure failure) {
  if (closed_) return;
  auto self = shared_from_this();
  closed_ = true;
  leave_pool();
  std::vector<Http2UpstreamRequest*> attached;
  for (auto& [id, s] : streams_) {
    if (s->req) attached.push_back(s->req);
    s->req = nullptr;
  }
  if (conn_) {
    conn_->conn().set_callbacks(nullptr);
    conn_.reset();  // closes the socket, releases the connection slot
  }
  for (Http2UpstreamRequest* r : attached) r->on_failure(failure);
}

void Http2ClientConnection::leave_pool() {
  auto* pool = static_cast<Http2Pool*>(cluster_.shared_pool().get());
  if (!pool) return;
  auto& v = pool->connections;
  v.erase(std::remove_if(v.begin(), v.end(), [this](const auto& c) { return c.get() == this; }),
          v.end());
}

// ---- One request ---------------------------------------------------------------------------

Http2UpstreamRequest::Http2UpstreamRequest(upstream::WorkerCluster& cluster,
                                           std::shared_ptr<const upstream::Host> host,
                                           UpstreamRequestCallbacks& callbacks)
    : cluster_(cluster), host_(std::move(host)), callbacks_(callbacks) {}

Http2UpstreamRequest::~Http2UpstreamRequest() {
  cancel();
  if (conn_ && stream_id_ >= 0) conn_->detach(stream_id_, this, false);
}

void Http2UpstreamRequest::start(asio::io_context&, bool) {
  Http2Pool& pool = Http2Pool::of(cluster_);
  for (const auto& c : pool.connections) {
    if (&c->host() == host_.get() && c->usable()) {
      conn_ = c;
      break;
    }
  }
  if (!conn_) {
    auto& info = cluster_.info();
    if (!info.try_acquire_connection()) {
      // One connection per host carries every request: over the limit, open it anyway rather
      // than fail (as Envoy's pools do when they have none).
      info.stats().upstream_cx_overflow.inc();
      info.force_acquire_connection();
    }
    conn_ = std::make_shared<Http2ClientConnection>(cluster_, host_);
    pool.connections.push_back(conn_);
    conn_->connect();
  }
  if (conn_->connected()) return;
  // Waiting for the connection (TCP, TLS, the h2 preface) makes the request pending (Envoy's
  // term), bounded by max_pending_requests like HTTP/1's wait for a connection.
  auto& info = cluster_.info();
  if (!info.try_acquire_pending()) {
    info.stats().upstream_rq_pending_overflow.inc();
    on_failure(UpstreamFailure::Overflow);
    return;
  }
  pending_slot_ = true;
  info.stats().upstream_rq_pending_total.inc();
  info.stats().upstream_rq_pending_active.inc();
}

void Http2UpstreamRequest::release_pending_slot() {
  if (!pending_slot_) return;
  pending_slot_ = false;
  cluster_.info().release_pending();
  cluster_.info().stats().upstream_rq_pending_active.dec();
}

bool Http2UpstreamRequest::connected() const { return conn_ && conn_->connected(); }

void Http2UpstreamRequest::encode_headers(const HeaderMap& headers, bool end_stream) {
  if (done_ || !conn_) return;
  stream_id_ = conn_->submit(*this, headers, end_stream);
  if (stream_id_ < 0) {
    on_failure(UpstreamFailure::ProtocolError);
    return;
  }
  if (conn_->connected()) callbacks_.on_upstream_connected();
}

void Http2UpstreamRequest::encode_data(std::string_view data) {
  if (done_ || stream_id_ < 0 || data.empty()) return;
  conn_->send_data(stream_id_, data);
}

void Http2UpstreamRequest::encode_end(const HeaderMap* trailers) {
  if (done_ || stream_id_ < 0) return;
  conn_->send_end(stream_id_, trailers);
}

void Http2UpstreamRequest::cancel() {
  release_pending_slot();
  if (done_) return;
  done_ = true;
  if (conn_ && stream_id_ >= 0) conn_->detach(stream_id_, this, true);
}

void Http2UpstreamRequest::read_disable(bool disable) {
  if (done_ || stream_id_ < 0) return;
  conn_->pause(stream_id_, disable);
  auto& st = cluster_.info().stats();
  (disable ? st.upstream_flow_control_paused_reading_total
           : st.upstream_flow_control_resumed_reading_total)
      .inc();
}

void Http2UpstreamRequest::on_connected() {
  release_pending_slot();
  if (!done_) callbacks_.on_upstream_connected();
}

void Http2UpstreamRequest::on_headers(HeaderMap& headers, bool end_stream) {
  if (done_) return;
  response_started_ = true;
  callbacks_.on_upstream_headers(headers, end_stream);
}

void Http2UpstreamRequest::on_data(std::string_view data) {
  if (!done_) callbacks_.on_upstream_data(data);
}

void Http2UpstreamRequest::on_trailers(HeaderMap& trailers) {
  if (!done_) callbacks_.on_upstream_trailers(trailers);
}

void Http2UpstreamRequest::on_complete() {
  if (done_) return;
  done_ = true;
  callbacks_.on_upstream_complete();
}

void Http2UpstreamRequest::on_failure(UpstreamFailure failure) {
  release_pending_slot();
  if (done_) return;
  done_ = true;
  callbacks_.on_upstream_failure(failure, response_started_);
}

void Http2UpstreamRequest::on_send_blocked(bool blocked) {
  if (done_) return;
  if (blocked) {
    callbacks_.on_upstream_above_write_high_watermark();
  } else {
    callbacks_.on_upstream_below_write_low_watermark();
  }
}

}  // namespace sluice::http
