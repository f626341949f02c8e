#include "http/http2_server.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/strings.h"
#include "http/http2_body.h"

namespace sluice::http {

using Clock = std::chrono::steady_clock;

Http2Stats::Http2Stats() {
  auto& s = stats::Store::instance();
  const auto counter = [&](const char* name) {
    return s.counter(stats::MetricName{str_cat("http2.", name), str_cat("http2.", name), {}});
  };
  rx_reset = counter("rx_reset");
  tx_reset = counter("tx_reset");
  header_overflow = counter("header_overflow");
  rx_messaging_error = counter("rx_messaging_error");
  trailers = counter("trailers");
  goaway_sent = counter("goaway_sent");
  outbound_flood = counter("outbound_flood");
  outbound_control_flood = counter("outbound_control_flood");
  inbound_empty_frames_flood = counter("inbound_empty_frames_flood");
  inbound_priority_frames_flood = counter("inbound_priority_frames_flood");
  inbound_window_update_frames_flood = counter("inbound_window_update_frames_flood");
  too_many_premature_resets = counter("too_many_premature_resets");
  streams_active = s.gauge(stats::MetricName{"http2.streams_active", "http2.streams_active", {}});
  pending_send_data =
      s.gauge(stats::MetricName{"http2.pending_send_data", "http2.pending_send_data", {}});
}

const Http2Stats& Http2Stats::downstream() {
  static const Http2Stats stats;
  return stats;
}

// ---- One stream ----------------------------------------------------------------------------

class Http2ServerConnection::Stream final : public MultiplexedStream {
 public:
  Stream(Http2ServerConnection& owner, int32_t id) : owner_(owner), id_(id) {}
  ~Stream() { owner_.add_pending(-static_cast<int64_t>(body.pending())); }

  Http2ServerConnection& owner_;
  const int32_t id_;
  // Runs the stream's request, from its complete headers until stream_finished().
  std::shared_ptr<HttpConnection> handler;
  bool handler_done = false;
  HeaderMap headers;  // the request's headers (then trailers) as they arrive
  size_t header_bytes = 0;
  bool reset_by_peer = false;
  // The response's body (and trailers), waiting for the client's window.
  Http2OutgoingBody body;
  bool send_blocked = false;  // the handler was told to stop reading the upstream
  // The request body: window held back while the handler cannot take more.
  Http2IncomingWindow window;

  bool can_resume() const {
    return body.pending() <= owner_.config_->buffer_limit / 2 && !owner_.over_budget(/*low=*/true);
  }
  // The connection's backlog fell: streams that stopped for it (not for their own) go on.
  void maybe_resume() {
    if (send_blocked && can_resume()) {
      send_blocked = false;
      if (handler && !handler_done) handler->on_stream_send_blocked(false);
    }
  }

  void send_100_continue() override {
    const nghttp2_nv nv[] = {make_nghttp2_nv(":status", "100")};
    nghttp2_submit_headers(owner_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, nv, 1, nullptr);
    owner_.schedule_flush();
  }

  void send_headers(const HeaderMap& h, bool end_stream) override {
    std::vector<nghttp2_nv> nva;
    nva.reserve(h.size());
    // Pseudo-headers first (RFC 9113 8.3), then the rest; HTTP/1's connection headers were
    // removed by the connection manager already.
    for (const auto& e : h) {
      if (!e.key.empty() && e.key[0] == ':') nva.push_back(make_nghttp2_nv(e.key, e.value));
    }
    for (const auto& e : h) {
      if (e.key.empty() || e.key[0] != ':') nva.push_back(make_nghttp2_nv(e.key, e.value));
    }
    if (end_stream) {
      body.end();
      nghttp2_submit_response(owner_.session_, id_, nva.data(), nva.size(), nullptr);
    } else {
      nghttp2_data_provider provider{};
      provider.source.ptr = this;
      provider.read_callback = &Stream::read_body;
      nghttp2_submit_response(owner_.session_, id_, nva.data(), nva.size(), &provider);
    }
    owner_.schedule_flush();
  }

  void send_data(std::string_view data, bool end_stream) override {
    if (body.ended()) return;  // the response already ended (headers only)
    body.append(data);
    owner_.add_pending(static_cast<int64_t>(data.size()));
    if (end_stream) body.end();
    resume();
    // The client reads slower than the upstream sends: stop reading the upstream until it
    // catches up (resumed in read_body at half the limit). The connection as a whole holds at
    // most a few streams' worth: past that, every stream that adds to it stops too.
    if (!send_blocked && handler && !handler_done &&
        (body.pending() > owner_.config_->buffer_limit || owner_.over_budget())) {
      send_blocked = true;
      handler->on_stream_send_blocked(true);
    }
  }

  void send_trailers(const HeaderMap& t) override {
    if (body.ended()) return;
    body.end(&t);
    resume();
  }

  void pause_request_body(bool pause) override {
    if (window.set_paused(owner_.session_, id_, pause)) owner_.schedule_flush();
  }

  void stream_finished(bool complete) override {
    if (handler_done) return;
    handler_done = true;
    // Release the handler later: it is on the call stack.
    asio::post(owner_.worker_.loop(), [keep = std::move(handler)] {});
    if (complete || reset_by_peer) return;
    // The response cannot complete: reset the stream (nghttp2 drops what it still held for it).
    Http2Stats::downstream().tx_reset.inc();
    nghttp2_submit_rst_stream(owner_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    owner_.schedule_flush();
  }

 private:
  void resume() {
    body.resume(owner_.session_, id_);
    owner_.schedule_flush();
  }

  // nghttp2 pulls the body when the client's window allows.
  static ssize_t read_body(nghttp2_session* session, int32_t, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    const size_t before = s->body.pending();
    const ssize_t n = s->body.read(session, s->id_, buf, length, flags);
    s->owner_.add_pending(-static_cast<int64_t>(before - s->body.pending()));
    s->maybe_resume();
    return n;
  }
};

// ---- nghttp2's callbacks -------------------------------------------------------------------

struct Http2ServerConnection::Callbacks {
  static Http2ServerConnection& self(void* user_data) {
    return *static_cast<Http2ServerConnection*>(user_data);
  }
  static Stream* stream(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data) {
    Http2ServerConnection& c = self(user_data);
    const auto& o = c.config_->config.http2;
    const auto& st = Http2Stats::downstream();
    if (hd->type == NGHTTP2_PRIORITY) {
      ++c.inbound_priority_frames_;
      if (c.inbound_priority_frames_ >
          static_cast<uint64_t>(o.max_inbound_priority_frames_per_stream) *
              (1 + c.inbound_streams_)) {
        st.inbound_priority_frames_flood.inc();
        c.flood_ = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
    } else if (hd->type == NGHTTP2_WINDOW_UPDATE) {
      ++c.inbound_window_update_frames_;
      if (c.inbound_window_update_frames_ >
          1 + 2 * (c.inbound_streams_ +
                   static_cast<uint64_t>(o.max_inbound_window_update_frames_per_data_frame_sent) *
                       c.outbound_data_frames_)) {
        st.inbound_window_update_frames_flood.inc();
        c.flood_ = true;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame,
                              void* user_data) {
    Http2ServerConnection& c = self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto s = std::make_unique<Stream>(c, frame->hd.stream_id);
      nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s.get());
      c.streams_.emplace(frame->hd.stream_id, std::move(s));
      c.idle_timer_.cancel();
      Http2Stats::downstream().streams_active.inc();
    } else if (Stream* s = stream(session, frame->hd.stream_id)) {
      s->headers.clear();  // trailers
      s->header_bytes = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) {
    Http2ServerConnection& c = self(user_data);
    Stream* s = stream(session, frame->hd.stream_id);
    if (!s) return 0;
    // HPACK's accounting (RFC 7541 4.1) against max_request_headers_kb, as Envoy counts it.
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > c.config_->config.max_request_headers_kb * 1024) {
      Http2Stats::downstream().header_overflow.inc();
      c.config_->stats.downstream_rq_too_large.inc();
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets this stream only
    }
    // nghttp2 checked the field (lower-case name, valid characters, pseudo-header rules).
    HeaderMap::Entry& e = s->headers.append_empty();
    e.key.assign(reinterpret_cast<const char*>(name), namelen);
    e.value.assign(reinterpret_cast<const char*>(value), valuelen);
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Http2ServerConnection& c = self(user_data);
    const auto& hd = frame->hd;
    if (hd.type == NGHTTP2_DATA || hd.type == NGHTTP2_HEADERS) {
      const size_t padding = hd.type == NGHTTP2_DATA ? frame->data.padlen : frame->headers.padlen;
      if (hd.length - padding == 0 && !(hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (++c.consecutive_empty_frames_ >
            c.config_->config.http2.max_consecutive_inbound_frames_with_empty_payload) {
          Http2Stats::downstream().inbound_empty_frames_flood.inc();
          c.flood_ = true;
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
      } else {
        c.consecutive_empty_frames_ = 0;
      }
    }
    switch (hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = stream(session, hd.stream_id);
        if (!s) return 0;
        const bool end_stream = hd.flags & NGHTTP2_FLAG_END_STREAM;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          ++c.inbound_streams_;
          c.start_request(*s, end_stream);
        } else if (s->handler && !s->handler_done && end_stream) {
          Http2Stats::downstream().trailers.inc();
          auto keep = s->handler;
          keep->on_message_trailers(s->headers);
          if (!s->handler_done) keep->on_message_complete();
        }
        return 0;
      }
      case NGHTTP2_DATA:
        if (hd.flags & NGHTTP2_FLAG_END_STREAM) {
          Stream* s = stream(session, hd.stream_id);
          if (s && s->handler && !s->handler_done) {
            auto keep = s->handler;
            keep->on_message_complete();
          }
        }
        return 0;
      case NGHTTP2_RST_STREAM:
        Http2Stats::downstream().rx_reset.inc();
        if (Stream* s = stream(session, hd.stream_id)) {
          s->reset_by_peer = true;
          // A reset before the response completed (Envoy's "premature" reset): a client that
          // opens and cancels streams in a loop makes the proxy work for nothing (CVE-2023-44487).
          if (!s->handler_done) ++c.premature_resets_;
          if (c.inbound_streams_ >= 100 && c.premature_resets_ * 2 >= c.inbound_streams_) {
            Http2Stats::downstream().too_many_premature_resets.inc();
            c.flood_ = true;
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
        }
        return 0;
      default:
        return 0;
    }
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void*) {
    Stream* s = stream(session, id);
    const bool wanted = s && s->handler && !s->handler_done;
    Http2IncomingWindow::received(session, id, len, wanted ? &s->window : nullptr);
    if (!wanted) return 0;
    auto keep = s->handler;
    keep->on_message_body(std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Http2ServerConnection& c = self(user_data);
    if (frame->hd.type == NGHTTP2_DATA) ++c.outbound_data_frames_;
    if (frame->hd.type == NGHTTP2_GOAWAY) Http2Stats::downstream().goaway_sent.inc();
    return 0;
  }

  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame*, int error, void*) {
    if (error == NGHTTP2_ERR_HTTP_HEADER || error == NGHTTP2_ERR_HTTP_MESSAGING) {
      Http2Stats::downstream().rx_messaging_error.inc();
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t, void* user_data) {
    self(user_data).stream_closed(id);
    return 0;
  }

  static nghttp2_session_callbacks* make() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
  }
};

// ---- The session ---------------------------------------------------------------------------

Http2ServerConnection::Http2ServerConnection(WorkerContext& worker,
                                             std::shared_ptr<const HttpListenerConfig> config,
                                             std::shared_ptr<net::Connection> conn)
    : worker_(worker),
      config_(std::move(config)),
      conn_(std::move(conn)),
      idle_timer_(worker.loop(), [this] { on_idle_timeout(); }),
      goaway_timer_(worker.loop(), [this] { send_final_goaway(); }),
      start_(Clock::now()) {
  static nghttp2_session_callbacks* const callbacks = Callbacks::make();
  const auto& o = config_->config.http2;
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Windows open as the proxy forwards the body, not as nghttp2 receives it.
  nghttp2_option_set_no_auto_window_update(option, 1);
  // SETTINGS and PING acknowledgements and RST_STREAMs queued for a client that does not read.
  nghttp2_option_set_max_outbound_ack(option, o.max_outbound_control_frames);
  nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
}

Http2ServerConnection::~Http2ServerConnection() {
  closed_ = true;  // no stream resumes while they are destroyed
  Http2Stats::downstream().streams_active.dec(static_cast<int64_t>(streams_.size()));
  streams_.clear();
  nghttp2_session_del(session_);
  if (conn_) {
    conn_->set_close_hook(nullptr);
    conn_->set_callbacks(nullptr);
    conn_->close(false);
  }
}

void Http2ServerConnection::start(std::string received, bool handed_over) {
  auto& st = config_->stats;
  if (!handed_over) {
    st.downstream_cx_total.inc();
    st.downstream_cx_active.inc();
  }
  st.downstream_cx_http2_total.inc();
  st.downstream_cx_http2_active.inc();
  const auto& o = config_->config.http2;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o.initial_stream_window_size},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, o.hpack_table_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, config_->config.max_request_headers_kb * 1024},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(o.initial_connection_window_size));
  conn_->set_callbacks(this);
  conn_->start_reading();
  arm_idle_timer();
  if (!received.empty()) {
    receive(received.data(), received.size());
  } else {
    flush();
  }
}

void Http2ServerConnection::on_read(const char* data, size_t len) {
  config_->stats.downstream_cx_rx_bytes_total.inc(len);
  receive(data, len);
}

void Http2ServerConnection::receive(const char* data, size_t len) {
  if (closed_) return;
  auto self = shared_from_this();
  in_receive_ = true;
  const ssize_t rv =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  in_receive_ = false;
  if (closed_) return;
  if (rv < 0) {
    if (rv == NGHTTP2_ERR_FLOODED) {
      abort(Http2Stats::downstream().outbound_control_flood, "too many control frames queued");
    } else if (flood_) {
      abort(stats::Counter{}, "flood");
    } else {
      abort(config_->stats.downstream_cx_protocol_error, nghttp2_strerror(static_cast<int>(rv)));
    }
    return;
  }
  if (nghttp2_session_get_outbound_queue_size(session_) >
      config_->config.http2.max_outbound_frames) {
    abort(Http2Stats::downstream().outbound_flood, "too many frames queued for a slow reader");
    return;
  }
  flush();
}

void Http2ServerConnection::schedule_flush() {
  if (in_receive_ || flush_posted_ || closed_) return;  // a receive flushes when it returns
  flush_posted_ = true;
  asio::post(worker_.loop(), [self = weak_from_this()] {
    if (auto c = self.lock()) {
      c->flush_posted_ = false;
      c->flush();
    }
  });
}

void Http2ServerConnection::flush() {
  if (closed_) return;
  // Frames stay in nghttp2 while the socket is backed up (its queue is what max_outbound_frames
  // bounds); on_below_write_low_watermark resumes.
  while (!conn_->above_high_watermark()) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      abort(config_->stats.downstream_cx_protocol_error, nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    conn_->write(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
    config_->stats.downstream_cx_tx_bytes_total.inc(static_cast<uint64_t>(n));
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    close_connection(true);  // GOAWAY both ways, or a protocol error nghttp2 answered
  } else if (final_goaway_sent_ && streams_.empty() && !nghttp2_session_want_write(session_)) {
    close_connection(true);  // drained
  }
}

void Http2ServerConnection::on_below_write_low_watermark() { flush(); }

void Http2ServerConnection::add_pending(int64_t delta) {
  const bool was_over = over_budget(/*low=*/true);
  pending_bytes_ = static_cast<uint64_t>(static_cast<int64_t>(pending_bytes_) + delta);
  Http2Stats::downstream().pending_send_data.inc(delta);
  if (delta < 0 && was_over && !over_budget(/*low=*/true) && !resuming_ && !closed_) {
    // Resume the streams that stopped for the connection's backlog (once per crossing).
    resuming_ = true;
    std::vector<Stream*> all;
    for (auto& [id, st] : streams_) all.push_back(st.get());
    for (Stream* st : all) st->maybe_resume();
    resuming_ = false;
  }
}

bool Http2ServerConnection::over_budget(bool low) const {
  const uint64_t budget = 4ull * config_->buffer_limit;
  return pending_bytes_ > (low ? budget / 2 : budget);
}

void Http2ServerConnection::stream_closed(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<Stream> s = std::move(it->second);
  streams_.erase(it);
  Http2Stats::downstream().streams_active.dec();
  nghttp2_session_set_stream_user_data(session_, id, nullptr);
  if (s->handler && !s->handler_done) {
    // Closed before the response completed (a reset, by either side): nothing more can go out.
    s->reset_by_peer = true;
    auto keep = s->handler;
    keep->on_stream_reset();
  }
  if (streams_.empty()) arm_idle_timer();
}

void Http2ServerConnection::start_request(Stream& s, bool end_stream) {
  HeaderMap& h = s.headers;
  // HTTP/1's Host is :authority; a client may send either (RFC 9113 8.3.1).
  if (const std::string* host = h.get("host")) {
    if (h.authority().empty()) h.set(":authority", *host);
    h.remove("host");
  }
  // Cookies may come split in several fields (RFC 9113 8.2.3): one line for HTTP/1.
  if (h.count("cookie") > 1) {
    std::string joined;
    for (const auto& e : h) {
      if (e.key == "cookie") str_append(&joined, joined.empty() ? "" : "; ", e.value);
    }
    h.set("cookie", joined);
  }
  if (slot_ && slot_->current != config_) {
    if (slot_->current && can_switch_config(*config_, *slot_->current)) {
      config_ = slot_->current;
    } else {
      start_drain();  // this stream still runs, on the config the session started with
    }
  }
  s.handler = std::make_shared<HttpConnection>(worker_, config_, conn_, &s);
  auto keep = s.handler;
  keep->on_message_headers(h, end_stream);
}

void Http2ServerConnection::arm_idle_timer() {
  const auto timeout = config_->config.idle_timeout;
  if (timeout.count() > 0 && !closed_) idle_timer_.expires_after(timeout);
}

void Http2ServerConnection::on_idle_timeout() {
  if (closed_ || !streams_.empty()) return;
  auto self = shared_from_this();
  config_->stats.downstream_cx_idle_timeout.inc();
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  flush();
}

void Http2ServerConnection::start_drain() {
  if (draining_ || closed_) return;
  auto self = shared_from_this();
  draining_ = true;
  config_->stats.downstream_cx_drain_close.inc();
  // A GOAWAY with the largest stream id first: the client stops opening streams, and those
  // already on the wire still count. The final GOAWAY names the last stream served.
  nghttp2_submit_shutdown_notice(session_);
  goaway_timer_.expires_after(std::chrono::seconds(1));
  flush();
}

void Http2ServerConnection::send_final_goaway() {
  if (closed_) return;
  auto self = shared_from_this();
  final_goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  flush();
}

void Http2ServerConnection::close_now() {
  if (closed_) {
    conn_->close(false);  // still flushing: cut it (shutdown)
    return;
  }
  close_connection(false);
}

void Http2ServerConnection::on_close(net::CloseReason) {
  if (closed_) return;
  auto self = shared_from_this();
  close_connection(false);
}

void Http2ServerConnection::abort(stats::Counter counter, std::string_view why) {
  if (counter.valid()) counter.inc();
  spdlog::debug("HTTP/2 connection from {} closed: {}", conn_->remote_address(), why);
  close_connection(false);
}

void Http2ServerConnection::close_connection(bool flush) {
  if (closed_) return;
  closed_ = true;
  idle_timer_.cancel();
  goaway_timer_.cancel();
  // Streams still running are cut off: their handlers log them as reset.
  std::vector<std::shared_ptr<HttpConnection>> running;
  for (auto& [id, s] : streams_) {
    if (s->handler && !s->handler_done) {
      s->reset_by_peer = true;  // nothing more goes on the wire for it
      running.push_back(s->handler);
    }
  }
  for (auto& h : running) h->on_stream_reset();
  auto& st = config_->stats;
  st.downstream_cx_active.dec();
  st.downstream_cx_http2_active.dec();
  st.downstream_cx_destroy.inc();
  st.downstream_cx_length_ms.record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count()));
  conn_->set_callbacks(nullptr);
  if (flush && (conn_->write_buffered() > 0 || conn_->tls())) {
    conn_->set_close_hook([this] { worker_.connection_closed(this); });
    conn_->close(true);
    return;
  }
  conn_->close(false);
  worker_.connection_closed(this);
}

}  // namespace sluice::http
