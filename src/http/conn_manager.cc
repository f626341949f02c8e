#include "http/conn_manager.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/strings.h"

#include "accesslog/access_log.h"
#include "upstream/outlier_detector.h"

namespace sluice::http {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

HcmStats::HcmStats(std::string_view p) {
  auto& s = stats::Store::instance();
  auto counter = [&](std::string_view n) { return s.counter(stats::http_conn_manager_stat(p, n)); };
  downstream_cx_total = counter("downstream_cx_total");
  downstream_cx_destroy = counter("downstream_cx_destroy");
  downstream_cx_protocol_error = counter("downstream_cx_protocol_error");
  downstream_cx_idle_timeout = counter("downstream_cx_idle_timeout");
  downstream_cx_drain_close = counter("downstream_cx_drain_close");
  downstream_rq_total = counter("downstream_rq_total");
  downstream_rq_http1_total = counter("downstream_rq_http1_total");
  downstream_rq_http2_total = counter("downstream_rq_http2_total");
  downstream_cx_http1_total = counter("downstream_cx_http1_total");
  downstream_cx_http2_total = counter("downstream_cx_http2_total");
  downstream_rq_timeout = counter("downstream_rq_timeout");
  downstream_rq_idle_timeout = counter("downstream_rq_idle_timeout");
  downstream_rq_rx_reset = counter("downstream_rq_rx_reset");
  downstream_rq_tx_reset = counter("downstream_rq_tx_reset");
  downstream_rq_too_large = counter("downstream_rq_too_large");
  downstream_rq_completed = counter("downstream_rq_completed");
  no_route = counter("no_route");
  no_cluster = counter("no_cluster");
  rq_direct_response = counter("rq_direct_response");
  rq_redirect = counter("rq_redirect");
  downstream_cx_rx_bytes_total = counter("downstream_cx_rx_bytes_total");
  downstream_cx_tx_bytes_total = counter("downstream_cx_tx_bytes_total");
  for (int i = 0; i < 5; ++i) {
    downstream_rq_xx[i] = s.counter(stats::response_class_stat(
        stats::http_conn_manager_stat(p, str_cat("downstream_rq_", i + 1, "xx")),
        "http.downstream_rq_xx", i + 1));
  }
  downstream_cx_active = s.gauge(stats::http_conn_manager_stat(p, "downstream_cx_active"));
  downstream_rq_active = s.gauge(stats::http_conn_manager_stat(p, "downstream_rq_active"));
  downstream_cx_http2_active =
      s.gauge(stats::http_conn_manager_stat(p, "downstream_cx_http2_active"));
  downstream_rq_time = s.histogram(stats::http_conn_manager_stat(p, "downstream_rq_time"));
  downstream_cx_length_ms =
      s.histogram(stats::http_conn_manager_stat(p, "downstream_cx_length_ms"));
}

HttpListenerConfig::HttpListenerConfig(const config::HttpConnectionManager& hcm,
                                       uint32_t buffer_limit)
    : config(hcm), routes(hcm.route_config), stats(hcm.stat_prefix), buffer_limit(buffer_limit) {}

HttpListenerConfig::~HttpListenerConfig() = default;

struct HttpConnection::Stream {
  StreamInfo info;
  HeaderMap request_headers;
  HeaderMap response_headers;
  const config::VirtualHost* vhost = nullptr;
  const config::Route* route = nullptr;
  const config::RouteAction* action = nullptr;
  upstream::WorkerCluster* cluster = nullptr;
  std::unique_ptr<UpstreamRequest> upstream;
  std::shared_ptr<const upstream::Host> last_host;
  std::string request_body;  // kept for retries while within the buffer limit
  bool body_retained = true;
  bool request_complete = false;  // the downstream request was fully read
  bool router_complete = false;   // the router has seen the end of the request (after filters)
  uint64_t router_bytes = 0;      // request body bytes that reached the router
  bool response_started = false;  // response headers are on the wire
  bool response_chunked = false;
  bool http10 = false;
  bool keep_alive = true;
  bool head_request = false;
  bool holds_request_slot = false;
  bool holds_retry_slot = false;
  bool stale_connection_retry_used = false;
  bool upstream_paused_downstream = false;
  uint32_t retries_left = 0;
  uint32_t attempts = 0;
  Clock::time_point last_activity;
  Clock::time_point attempt_start;
  // The stream's filters (before the router), in config order. Declared last: destroyed first,
  // while the rest of the stream is still intact for their final callbacks.
  std::vector<std::unique_ptr<FilterSlot>> filters;
  bool encode_started = false;           // response headers entered the encoding filters
  bool headers_end_stream = false;       // the request has no body
  bool response_end_at_headers = false;  // the response has no body
  bool local_replied = false;            // answered locally: later request bytes are dropped
  bool upstream_headers_only = false;    // the upstream's response ended with its headers
  // Trailers (HTTP/1: chunked messages with enable_trailers). has_*: the message ends with them.
  HeaderMap request_trailers, response_trailers;
  bool has_request_trailers = false, has_response_trailers = false;
  bool request_trailers_decoded = false;  // reached the router

  Stream() = default;
  Stream& operator=(Stream&&) = default;
  ~Stream();
  // A new stream's state in this object, for the connection's next request: its filters get
  // their last callback, every field starts over, and StreamInfo's strings keep their buffers.
  void reset();
};

// One filter of one stream, with what the connection manager holds for it: whether it stopped
// the stream in either direction, and the body bytes buffered for it meanwhile.
struct HttpConnection::FilterSlot final : StreamFilterCallbacks {
  FilterSlot(HttpConnection& c, Stream& st, size_t i) : conn(c), stream(st), index(i) {}

  HttpConnection& conn;
  Stream& stream;  // (not conn.stream_: that is already null while the stream is destroyed)
  size_t index;
  std::unique_ptr<StreamFilter> filter;
  bool decode_stopped = false;       // stopped on headers or data; waits for continue_decoding
  bool decode_headers_held = false;  // the stop was on headers (the next filters have none yet)
  bool decode_end = false;           // the request's end reached this filter while stopped
  std::string decode_buffer;
  bool encode_stopped = false;
  bool encode_headers_held = false;
  bool encode_end = false;
  std::string encode_buffer;
  bool in_decode_body = false, in_encode_body = false;
  bool decode_end_is_last = false, encode_end_is_last = false;  // in the end_stream data call
  // The trailers reached this filter while it held the stream; they follow once it continues.
  bool decode_trailers_pending = false, encode_trailers_pending = false;
  bool decode_trailers_held = false, encode_trailers_held = false;  // it stopped on them
  // Actions asked for inside a callback, run once it returns.
  int depth = 0;
  bool want_continue_decoding = false, want_continue_encoding = false;
  struct LocalReply {
    uint32_t status;
    std::string body;
    HeaderMap headers;
    std::string details;
  };
  std::optional<LocalReply> want_local_reply;
  std::optional<std::string> want_reset;
  bool done = false;  // the stream is over: callbacks are inert

  void complete() {
    if (done) return;
    done = true;
    if (filter) filter->on_stream_complete();
  }

  // StreamFilterCallbacks
  HeaderMap& request_headers() override { return stream.request_headers; }
  HeaderMap* response_headers() override {
    return stream.encode_started ? &stream.response_headers : nullptr;
  }
  std::string* request_body() override {
    return in_decode_body || decode_stopped ? &decode_buffer : nullptr;
  }
  std::string* response_body() override {
    return in_encode_body || encode_stopped ? &encode_buffer : nullptr;
  }
  HeaderMap* request_trailers() override {
    return stream.has_request_trailers && trailers_reached(true) ? &stream.request_trailers
                                                                 : nullptr;
  }
  HeaderMap* response_trailers() override {
    return stream.has_response_trailers && trailers_reached(false) ? &stream.response_trailers
                                                                   : nullptr;
  }
  HeaderMap* add_request_trailers() override {
    if (done || !in_decode_body || !decode_end_is_last || stream.has_request_trailers) {
      return request_trailers();
    }
    stream.has_request_trailers = true;
    stream.request_trailers.clear();
    trailers_seen_decode = true;  // its creator may go on using them in the same call
    return &stream.request_trailers;
  }
  HeaderMap* add_response_trailers() override {
    if (done || !in_encode_body || !encode_end_is_last || stream.has_response_trailers) {
      return response_trailers();
    }
    stream.has_response_trailers = true;
    stream.response_trailers.clear();
    trailers_seen_encode = true;
    return &stream.response_trailers;
  }
  // Trailers are this filter's to see once they were delivered to it (or while it holds them).
  bool trailers_reached(bool request) const {
    return request ? (trailers_seen_decode || decode_trailers_held)
                   : (trailers_seen_encode || encode_trailers_held);
  }
  bool trailers_seen_decode = false, trailers_seen_encode = false;
  void clear_route_cache() override {
    if (!done) stream.route = nullptr;
  }
  const config::Route* route() override {
    if (!stream.route && !done) {
      stream.route = conn.config_->routes.route(stream.request_headers, &stream.vhost);
    }
    return stream.route;
  }
  void continue_decoding() override {
    if (done) return;
    if (depth > 0) {
      want_continue_decoding = true;
    } else {
      conn.resume_decoding(index);
    }
  }
  void continue_encoding() override {
    if (done) return;
    if (depth > 0) {
      want_continue_encoding = true;
    } else {
      conn.resume_encoding(index);
    }
  }
  void send_local_reply(uint32_t status, std::string body, HeaderMap extra_headers,
                        std::string details) override {
    if (done) return;
    want_local_reply =
        LocalReply{status, std::move(body), std::move(extra_headers), std::move(details)};
    if (depth == 0) conn.run_filter_actions(*this);
  }
  void reset_stream(std::string details) override {
    if (done) return;
    want_reset = std::move(details);
    if (depth == 0) conn.run_filter_actions(*this);
  }
  StreamInfo& stream_info() override { return stream.info; }
  uint64_t connection_id() const override { return conn.conn_->id(); }
  uint32_t buffer_limit() const override { return conn.config_->buffer_limit; }
};

HttpConnection::Stream::~Stream() {
  // Filters get their last callback (Proxy-Wasm on_log, on_done, on_delete) after the access log,
  // while the headers and stream info are still here.
  for (auto& f : filters) f->complete();
}

void HttpConnection::Stream::reset() {
  for (auto& f : filters) f->complete();
  filters.clear();
  info.clear();
  StreamInfo kept_info = std::move(info);
  auto kept_filters = std::move(filters);  // empty, with its capacity
  *this = Stream();
  info = std::move(kept_info);
  filters = std::move(kept_filters);
}

namespace {

std::string_view address_without_port(std::string_view a) {
  if (!a.empty() && a[0] == '[') {
    const size_t end = a.find(']');
    return end == std::string_view::npos ? a : a.substr(1, end - 1);
  }
  const size_t colon = a.rfind(':');
  return colon == std::string_view::npos ? a : a.substr(0, colon);
}

bool is_hop_by_hop(std::string_view key) {
  switch (key.size()) {
    case 2:
      return key == "te";
    case 7:
      return key == "upgrade";
    case 10:
      return key == "connection" || key == "keep-alive";
    case 16:
      return key == "proxy-connection";
    case 17:
      return key == "transfer-encoding";
    default:
      return false;
  }
}

void remove_hop_by_hop(HeaderMap& h) {
  // Headers named in Connection are hop-by-hop too. (A copy: removing entries moves strings.)
  if (const std::string* c = h.get("connection")) {
    const std::string connection = *c;
    for_each_piece(connection, ',', [&](std::string_view token) {
      std::string name(trim(token));
      ascii_lower(name);
      if (name != "close" && name != "keep-alive" && !name.empty() && name[0] != ':') {
        h.remove(name);
      }
    });
  }
  // "te: trailers" is end to end in practice (gRPC needs it, and HTTP/2 allows only it): kept.
  h.remove_if([](const HeaderMap::Entry& e) {
    return is_hop_by_hop(e.key) && !(e.key == "te" && e.value == "trailers");
  });
}

void apply_mutations(HeaderMap& h, const std::vector<config::HeaderValueOption>& add,
                     const std::vector<std::string>& remove) {
  for (const auto& name : remove) h.remove(name);
  for (const auto& o : add) {
    if (o.append) {
      h.add(o.key, o.value);
    } else {
      h.set(o.key, o.value);
    }
  }
}

// A random (version 4) UUID's text form into `out`: hex digits by hand, since snprintf cost
// about 0.5 % of a proxied request's CPU.
void uuid4(std::mt19937_64& rng, char (&out)[36]) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t a = (rng() & ~uint64_t{0xf000}) | 0x4000;  // digit 12: the version, 4
  const uint64_t b = (rng() & ~(uint64_t{0xc} << 60)) | (uint64_t{0x8} << 60);  // variant 10xx
  size_t at = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[at++] = '-';
    const uint64_t word = i < 16 ? a : b;
    out[at++] = kHex[(word >> (60 - 4 * (i % 16))) & 0xf];
  }
}

uint32_t parse_status(std::string_view s) {
  uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  return v;
}

}  // namespace

HttpConnection::HttpConnection(WorkerContext& worker,
                               std::shared_ptr<const HttpListenerConfig> config,
                               std::shared_ptr<net::Connection> conn, MultiplexedStream* stream)
    : worker_(worker),
      config_(std::move(config)),
      conn_(std::move(conn)),
      mux_(stream),
      parser_(MessageType::Request, *this, config_->config.max_request_headers_kb * 1024),
      idle_timer_(worker.loop(), [this] { on_connection_idle_timeout(); }),
      stream_timer_(worker.loop(), [this] { on_stream_timer(); }),
      per_try_timer_(worker.loop(), [this] { on_per_try_timer(); }),
      stream_idle_timer_(worker.loop(), [this] { on_stream_idle_timer(); }),
      connection_start_(Clock::now()) {}

HttpConnection::~HttpConnection() {
  if (stream_) discard_upstream();
  if (mux_ || !conn_) return;  // HTTP/2: the socket is the session's; handed over: not ours
  conn_->set_close_hook(nullptr);
  conn_->set_callbacks(nullptr);
  conn_->close(false);
}

void HttpConnection::start() {
  auto& st = config_->stats;
  st.downstream_cx_total.inc();
  st.downstream_cx_active.inc();
  conn_->set_callbacks(this);
  conn_->start_reading();
  arm_connection_idle_timer();
}

void HttpConnection::arm_connection_idle_timer() {
  const auto timeout = config_->config.idle_timeout;
  if (timeout.count() == 0) return;
  idle_timer_.expires_after(timeout);
}

void HttpConnection::on_connection_idle_timeout() {
  if (closed_ || stream_) return;
  auto self = shared_from_this();
  config_->stats.downstream_cx_idle_timeout.inc();
  close_connection(true);
}

void HttpConnection::on_stream_timer() {
  if (!stream_ || closed_) return;
  auto self = shared_from_this();
  if (stream_timer_purpose_ == StreamTimerPurpose::RouteTimeout) {
    on_route_timeout();
    return;
  }
  // The request timeout: the whole request must arrive in time.
  Stream& s = *stream_;
  if (s.request_complete) return;
  config_->stats.downstream_rq_timeout.inc();
  s.keep_alive = false;
  if (s.response_started) {
    reset_stream(0);
  } else {
    discard_upstream();
    send_local_reply(408, "request timeout", 0, "request_overall_timeout");
  }
}

void HttpConnection::arm_route_timeout(milliseconds timeout) {
  stream_timer_purpose_ = StreamTimerPurpose::RouteTimeout;
  stream_timer_.expires_after(timeout);
}

void HttpConnection::on_per_try_timer() {
  if (!stream_ || closed_) return;
  auto self = shared_from_this();
  if (per_try_purpose_ == PerTryPurpose::RetryBackoff) {
    if (!stream_->upstream) start_upstream_attempt();
    return;
  }
  if (stream_->attempts == per_try_attempt_) on_per_try_timeout();
}

void HttpConnection::start_drain() {
  draining_ = true;
  if (!stream_) {
    config_->stats.downstream_cx_drain_close.inc();
    close_connection(true);
  }
}

void HttpConnection::close_now() {
  if (closed_ && !mux_) {
    conn_->close(false);  // still flushing a final response: cut it (shutdown)
    return;
  }
  close_connection(false);
}

void HttpConnection::close_connection(bool flush) {
  if (closed_) return;
  closed_ = true;
  idle_timer_.cancel();
  stream_timer_.cancel();
  per_try_timer_.cancel();
  stream_idle_timer_.cancel();
  if (stream_) {
    discard_upstream();
    stream_.reset();
  }
  if (mux_) {
    mux_->stream_finished(flush);
    return;
  }
  conn_->set_callbacks(nullptr);
  auto& st = config_->stats;
  st.downstream_cx_active.dec();
  st.downstream_cx_destroy.inc();
  st.downstream_cx_length_ms.record(static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(Clock::now() - connection_start_).count()));
  if (flush && (conn_->write_buffered() > 0 || conn_->tls())) {
    // The worker keeps this connection (and counts it, so a drain waits) until the last bytes of
    // the response are out (and, over TLS, close_notify is sent).
    conn_->set_close_hook([this] { worker_.connection_closed(this); });
    conn_->close(true);
    return;
  }
  conn_->close(false);
  worker_.connection_closed(this);
}

bool HttpConnection::detect_http2() {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const size_t n = std::min(input_.size(), kPreface.size());
  if (std::string_view(input_).substr(0, n) != kPreface.substr(0, n)) {
    first_read_ = false;  // HTTP/1 it is
    return true;
  }
  if (n < kPreface.size()) return false;  // wait for the rest of the preface
  // HTTP/2 with prior knowledge: the session takes the socket and every byte read so far.
  closed_ = true;
  idle_timer_.cancel();
  conn_->set_callbacks(nullptr);
  worker_.switch_to_http2(this, std::move(conn_), std::move(input_));
  return false;
}

void HttpConnection::read_disable(bool disable) {
  if (mux_) {
    mux_->pause_request_body(disable);
  } else {
    conn_->read_disable(disable);
  }
}

void HttpConnection::on_read(const char* data, size_t len) {
  // Upstream attempts retired earlier are off the call stack now.
  retired_upstreams_.clear();
  config_->stats.downstream_cx_rx_bytes_total.inc(len);
  input_.append(data, len);
  if (first_read_ && config_->config.codec_type == config::HttpConnectionManager::Codec::Auto &&
      !detect_http2()) {
    return;
  }
  process_input();
}

void HttpConnection::process_input() {
  // Parse until a request completes whose response is still pending (pipelining), input runs out,
  // or an error.
  size_t offset = 0;
  while (!closed_ && offset < input_.size()) {
    if (stream_ && stream_->request_complete) break;
    if (parser_.paused()) {
      if (stream_) break;
      parser_.resume();
    }
    const size_t n = parser_.execute(input_.data() + offset, input_.size() - offset);
    offset += n;
    if (closed_) return;
    if (parser_.failed()) {
      handle_parse_error();
      return;
    }
    if (n == 0 && !parser_.paused()) break;
  }
  if (closed_) return;
  input_.erase(0, offset);
  // Do not buffer an unbounded backlog of pipelined requests.
  read_disable(input_.size() > config_->buffer_limit ||
               (stream_ && stream_->upstream_paused_downstream));
}

void HttpConnection::handle_parse_error() {
  auto& st = config_->stats;
  st.downstream_cx_protocol_error.inc();
  const int status = parser_.error_status();
  if (status == 431) st.downstream_rq_too_large.inc();
  spdlog::debug("downstream {}: {}", conn_->remote_address(), parser_.error());
  if (!stream_) {
    // No request yet: account for it so the access log and stats see the rejected request.
    stream_ = std::make_unique<Stream>();
    ++generation_;
    stream_->info.start_time = std::chrono::system_clock::now();
    stream_->info.start_mono = Clock::now();
    stream_->info.protocol = "HTTP/1.1";
    stream_->info.downstream_remote_address = conn_->remote_address();
    stream_->info.downstream_direct_remote_address = conn_->remote_address();
    stream_->info.downstream_local_address = conn_->local_address();
    st.downstream_rq_total.inc();
    st.downstream_rq_active.inc();
  }
  stream_->keep_alive = false;
  if (stream_->response_started) {
    reset_stream(kDownstreamProtocolError);
    return;
  }
  discard_upstream();
  send_local_reply(static_cast<uint32_t>(status), reason_phrase(status), kDownstreamProtocolError,
                   "codec_error");
}

void HttpConnection::on_close(net::CloseReason) { on_stream_reset(); }

void HttpConnection::on_stream_send_blocked(bool blocked) {
  if (blocked) {
    on_above_write_high_watermark();
  } else {
    on_below_write_low_watermark();
  }
}

void HttpConnection::on_stream_reset() {
  if (closed_) return;
  if (stream_) {
    config_->stats.downstream_rq_rx_reset.inc();
    stream_->info.set_flag(kDownstreamConnectionTermination);
    // Log the interrupted request, as Envoy does (flag DC).
    for (const auto& log : config_->access_logs) log->log(stream_->info);
    if (stream_->holds_request_slot && stream_->cluster) {
      stream_->cluster->info().release_request();
      stream_->cluster->info().stats().upstream_rq_active.dec();
      stream_->holds_request_slot = false;
    }
    if (stream_->holds_retry_slot) stream_->cluster->info().release_retry();
    config_->stats.downstream_rq_active.dec();
  }
  close_connection(false);
}

void HttpConnection::on_above_write_high_watermark() {
  // The client reads slower than the upstream sends: stop reading the upstream.
  if (stream_ && stream_->upstream) stream_->upstream->read_disable(true);
}

void HttpConnection::on_below_write_low_watermark() {
  if (stream_ && stream_->upstream) stream_->upstream->read_disable(false);
}

bool can_switch_config(const HttpListenerConfig& from, const HttpListenerConfig& to) {
  return from.config.stat_prefix == to.config.stat_prefix;
}

void HttpConnection::take_latest_config() {
  const auto& latest = slot_->current;
  if (latest == config_) return;
  if (latest && can_switch_config(*config_, *latest)) {
    config_ = latest;
  } else {
    draining_ = true;  // this stream runs on the old config and ends with "connection: close"
  }
}

void HttpConnection::on_message_headers(HeaderMap& headers, bool end_stream) {
  idle_timer_.cancel();
  if (slot_ && !mux_) take_latest_config();
  stream_ = spare_stream_ ? std::move(spare_stream_) : std::make_unique<Stream>();
  ++generation_;
  Stream& s = *stream_;
  auto& st = config_->stats;
  const auto& hcm = config_->config;
  st.downstream_rq_total.inc();
  st.downstream_rq_active.inc();

  s.request_headers.swap(headers);  // the parser gets this (empty) map for the next message
  HeaderMap& h = s.request_headers;
  s.info.start_time = std::chrono::system_clock::now();
  s.info.start_mono = s.last_activity = Clock::now();
  if (mux_) {
    st.downstream_rq_http2_total.inc();
    s.info.protocol = "HTTP/2";
  } else {
    if (first_request_) st.downstream_cx_http1_total.inc();
    st.downstream_rq_http1_total.inc();
    s.http10 = parser_.http_major() == 1 && parser_.http_minor() == 0;
    s.info.protocol = s.http10 ? "HTTP/1.0" : "HTTP/1.1";
    s.keep_alive = parser_.keep_alive() && !draining_ && !worker_.draining();
  }
  first_request_ = false;
  s.head_request = h.method() == "HEAD";
  s.request_complete = false;
  s.info.request_headers = &s.request_headers;
  s.info.downstream_direct_remote_address = conn_->remote_address();
  s.info.downstream_local_address = conn_->local_address();
  if (conn_->tls()) {
    s.info.tls = &conn_->tls_info();
    if (std::string* scheme = h.get_mutable(":scheme")) *scheme = "https";
  }
  arm_stream_idle_timer();
  if (hcm.request_timeout.count() > 0) {
    stream_timer_purpose_ = StreamTimerPurpose::RequestTimeout;
    stream_timer_.expires_after(hcm.request_timeout);
  }

  // HTTP/1.1 requires Host; HTTP/1.0 may omit it (routed to the "*" virtual host).
  if (h.authority().empty() && !s.http10) {
    s.keep_alive = false;
    send_local_reply(400, "missing required header: host", kDownstreamProtocolError,
                     "missing_host_header");
    return;
  }

  // Expect: 100-continue is answered here, as Envoy does, and not forwarded.
  if (const std::string* expect = h.get("expect");
      expect && equals_ignore_case(*expect, "100-continue")) {
    h.remove("expect");
    if (end_stream || s.http10) {
      // No body to wait for, or a client that knows no 1xx.
    } else if (mux_) {
      mux_->send_100_continue();
    } else {
      conn_->write("HTTP/1.1 100 Continue\r\n\r\n");
    }
  }

  remove_hop_by_hop(h);

  // Client address and forwarding headers.
  const std::string_view peer_ip = address_without_port(conn_->remote_address());
  if (hcm.use_remote_address) {
    const std::string* xff = h.get("x-forwarded-for");
    h.set("x-forwarded-for", xff ? str_cat(*xff, ", ", peer_ip) : std::string(peer_ip));
    h.set("x-forwarded-proto", conn_->tls() ? "https" : "http");
    s.info.downstream_remote_address = conn_->remote_address();
  } else {
    s.info.downstream_remote_address = conn_->remote_address();
    if (const std::string* xff = h.get("x-forwarded-for")) {
      std::vector<std::string_view> hops = split(*xff, ',');
      const size_t trusted = hcm.xff_num_trusted_hops;
      if (hops.size() > trusted) {
        s.info.downstream_remote_address = std::string(trim(hops[hops.size() - 1 - trusted]));
      }
    }
    if (!h.has("x-forwarded-proto")) h.set("x-forwarded-proto", conn_->tls() ? "https" : "http");
  }
  if (hcm.generate_request_id && !h.has("x-request-id")) {
    char id[36];
    uuid4(worker_.rng(), id);
    h.set("x-request-id", std::string_view(id, sizeof id));
  }
  if (const std::string* id = h.get("x-request-id")) s.info.request_id = *id;

  s.request_complete = end_stream;
  s.headers_end_stream = end_stream;
  if (config_->filters.empty()) {
    route_request();
    return;
  }
  create_filters();
  decode_headers_from(0);
  arm_route_timeout_while_held();
}

void HttpConnection::arm_route_timeout_while_held() {
  if (!stream_) return;
  Stream& s = *stream_;
  if (!s.request_complete || s.router_complete || s.local_replied || s.filters.empty()) return;
  // The whole request is in, but a filter holds it (a plugin waiting on a callout, or one that
  // never resumes): the route's timeout covers that wait too, so the client gets a 504 instead
  // of waiting for the stream idle timeout. The router re-arms it in full once it runs.
  const config::Route* route =
      s.route ? s.route : config_->routes.route(s.request_headers, &s.vhost);
  const auto* action = route ? std::get_if<config::RouteAction>(&route->action) : nullptr;
  if (action && action->timeout.count() > 0) arm_route_timeout(action->timeout);
}

void HttpConnection::route_request() {
  Stream& s = *stream_;
  auto& st = config_->stats;
  HeaderMap& h = s.request_headers;
  // Looked up before the filters ran (or by one of them), for headers no filter changed since;
  // else now.
  if (!s.route) s.route = config_->routes.route(h, &s.vhost);
  if (!s.route) {
    st.no_route.inc();
    send_local_reply(404, "", kNoRouteFound, "route_not_found");
    return;
  }
  s.info.route_name = s.route->name;

  if (const auto* direct = std::get_if<config::DirectResponseAction>(&s.route->action)) {
    st.rq_direct_response.inc();
    send_local_reply(direct->status, direct->body, 0, "direct_response");
    return;
  }
  if (const auto* redirect = std::get_if<config::RedirectAction>(&s.route->action)) {
    st.rq_redirect.inc();
    std::string scheme = redirect->https_redirect ? "https" : std::string(h.scheme());
    if (const std::string* proto = h.get("x-forwarded-proto"); proto && !redirect->https_redirect) {
      scheme = *proto;
    }
    std::string host =
        redirect->host_redirect.empty() ? std::string(h.authority()) : redirect->host_redirect;
    if (redirect->https_redirect && redirect->host_redirect.empty()) {
      host = std::string(address_without_port(host));  // the old port belongs to the old scheme
    }
    const std::string path =
        redirect->path_redirect.empty() ? std::string(h.path()) : redirect->path_redirect;
    s.response_headers.set("location", str_cat(scheme, "://", host, path));
    send_local_reply(redirect->response_code, "", 0, "direct_response");
    return;
  }

  s.action = &std::get<config::RouteAction>(s.route->action);
  const config::RouteAction& a = *s.action;
  if (a.idle_timeout) arm_stream_idle_timer();
  std::string_view cluster_name = a.cluster;
  if (!a.cluster_header.empty()) {
    cluster_name = h.get_or_empty(a.cluster_header);
  } else if (!a.weighted_clusters.empty()) {
    std::uniform_int_distribution<uint32_t> dist(0, a.total_weight - 1);
    uint32_t pick = dist(worker_.rng());
    for (const auto& wc : a.weighted_clusters) {
      if (pick < wc.weight) {
        cluster_name = wc.name;
        break;
      }
      pick -= wc.weight;
    }
  }
  s.cluster = worker_.clusters().get(cluster_name);
  if (!s.cluster) {
    st.no_cluster.inc();
    send_local_reply(503, "", kNoClusterFound, "cluster_not_found");
    return;
  }
  s.info.upstream_cluster = s.cluster->info().name();

  // Header mutations: route, then virtual host, then route configuration (Envoy's default order:
  // the least specific level wins).
  const auto& rc = config_->routes.config();
  apply_mutations(h, s.route->headers.request_headers_to_add,
                  s.route->headers.request_headers_to_remove);
  apply_mutations(h, s.vhost->headers.request_headers_to_add,
                  s.vhost->headers.request_headers_to_remove);
  apply_mutations(h, rc.headers.request_headers_to_add, rc.headers.request_headers_to_remove);

  if (a.prefix_rewrite) {
    const std::string original(h.path());
    const auto& m = s.route->match;
    size_t matched = 0;
    if (m.kind == config::RouteMatch::PathKind::Prefix) {
      matched = m.value.size();
    } else if (m.kind == config::RouteMatch::PathKind::Path) {
      matched = std::min(original.find_first_of('?'), original.size());
    }
    h.set(":path", str_cat(*a.prefix_rewrite, original.substr(matched)));
    h.set("x-envoy-original-path", original);
  }
  if (a.host_rewrite_literal) h.set(":authority", *a.host_rewrite_literal);

  auto& info = s.cluster->info();
  if (!info.try_acquire_request()) {
    info.stats().upstream_rq_pending_overflow.inc();
    send_local_reply(
        503, "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        kUpstreamOverflow, "upstream_reset_before_response_started{overflow}", true);
    return;
  }
  s.holds_request_slot = true;
  info.stats().upstream_rq_active.inc();
  if (a.retry_policy) s.retries_left = a.retry_policy->num_retries;

  s.router_complete = s.headers_end_stream;
  if (s.request_complete) s.info.last_downstream_rx_byte = Clock::now();
  const milliseconds route_timeout = a.timeout;
  start_upstream_attempt();
  // The route timeout runs from the end of the request. `s` may be gone: the attempt can fail
  // synchronously and answer locally.
  if (stream_ && stream_->router_complete && !stream_->response_started &&
      route_timeout.count() > 0) {
    arm_route_timeout(route_timeout);
  }
}

void HttpConnection::start_upstream_attempt() {
  Stream& s = *stream_;
  auto& lb = s.cluster->lb();
  const upstream::Host* host = lb.choose(s.last_host.get());
  if (!host) {
    s.cluster->info().stats().upstream_cx_none_healthy.inc();
    send_local_reply(503, "no healthy upstream", kNoHealthyUpstream, "no_healthy_upstream");
    return;
  }
  s.last_host = s.cluster->host_ptr(host);
  s.info.upstream_host = host->address;
  s.attempts++;
  s.attempt_start = Clock::now();
  s.cluster->info().stats().upstream_rq_total.inc();
  lb.request_started(host);
  s.upstream = UpstreamRequest::create(*s.cluster, s.last_host, *this);
  UpstreamRequest& up = *s.upstream;
  up.recycle_response_headers(spare_response_headers_);
  if (s.action->retry_policy && s.action->retry_policy->per_try_timeout.count() > 0) {
    per_try_purpose_ = PerTryPurpose::PerTryTimeout;
    per_try_attempt_ = s.attempts;
    per_try_timer_.expires_after(s.action->retry_policy->per_try_timeout);
  }
  if (!s.info.first_upstream_tx_byte) s.info.first_upstream_tx_byte = Clock::now();
  // Started before the bytes are handed over: a pooled connection is attached at once, so they
  // go straight to its write buffer. A synchronous failure (overflow) may already have answered
  // the stream or started another attempt.
  up.start(worker_.loop(), s.head_request);
  if (!stream_ || stream_->upstream.get() != &up) return;
  up.encode_headers(s.request_headers, s.headers_end_stream);
  if (!s.request_body.empty()) up.encode_data(s.request_body);
  if (s.router_complete) send_request_end(up);
}

void HttpConnection::on_message_body(std::string_view data) {
  if (!stream_) return;
  Stream& s = *stream_;
  s.info.bytes_received += data.size();
  s.last_activity = Clock::now();
  if (s.filters.empty()) {
    router_data(data);
  } else {
    decode_data_from(0, data, false);
  }
}

void HttpConnection::router_data(std::string_view data) {
  Stream& s = *stream_;
  s.router_bytes += data.size();
  // Answered locally: the body is discarded.
  if ((s.response_started || s.local_replied) && !s.upstream) return;
  if (s.body_retained) {
    if (s.request_body.size() + data.size() <= config_->buffer_limit) {
      s.request_body.append(data);
    } else {
      s.body_retained = false;  // too big to replay: this request will not be retried
      s.request_body.clear();
      s.request_body.shrink_to_fit();
    }
  }
  if (!s.upstream) return;
  s.upstream->encode_data(data);
  // Until the upstream connection is up, bytes wait in memory: bound them.
  if (!s.upstream->connected() && s.router_bytes > config_->buffer_limit) {
    s.upstream_paused_downstream = true;
    read_disable(true);
  }
}

void HttpConnection::on_message_trailers(HeaderMap& trailers) {
  // Without enable_trailers (Envoy's default) HTTP/1 trailers are read and dropped; HTTP/2
  // always carries them.
  if (!stream_ || (!mux_ && !config_->config.enable_trailers) || stream_->local_replied) return;
  Stream& s = *stream_;
  s.request_trailers.swap(trailers);
  s.has_request_trailers = true;
}

void HttpConnection::on_message_complete() {
  if (!stream_) return;
  Stream& s = *stream_;
  if (s.request_complete) return;  // no body: already handled with the headers
  s.request_complete = true;
  s.info.last_downstream_rx_byte = Clock::now();
  if (s.has_request_trailers) {
    if (s.filters.empty()) {
      router_end();
    } else {
      decode_trailers_from(0);
      arm_route_timeout_while_held();
    }
    return;
  }
  if (s.filters.empty()) {
    router_end();
  } else {
    decode_data_from(0, {}, true);
    arm_route_timeout_while_held();
  }
}

void HttpConnection::send_request_end(UpstreamRequest& up) {
  Stream& s = *stream_;
  if (s.headers_end_stream) return;  // the headers ended the request
  // Trailers go upstream only where the cluster takes them (HTTP/1: enable_trailers, as Envoy).
  up.encode_end(s.has_request_trailers && up.forwards_trailers() ? &s.request_trailers : nullptr);
}

void HttpConnection::router_end() {
  Stream& s = *stream_;
  if (s.router_complete) return;
  s.router_complete = true;
  if (s.local_replied && !s.upstream) return;
  if (s.upstream) {
    send_request_end(*s.upstream);
  }
  if (s.action && !s.response_started && s.action->timeout.count() > 0) {
    arm_route_timeout(s.action->timeout);
  } else if (!s.action) {
    stream_timer_.cancel();
  }
}

void HttpConnection::on_upstream_connected() {
  if (stream_ && stream_->upstream_paused_downstream) {
    stream_->upstream_paused_downstream = false;
    read_disable(false);
  }
}

void HttpConnection::on_upstream_above_write_high_watermark() {
  if (!stream_) return;
  stream_->upstream_paused_downstream = true;
  read_disable(true);
}

void HttpConnection::on_upstream_below_write_low_watermark() {
  if (!stream_) return;
  stream_->upstream_paused_downstream = false;
  read_disable(false);
}

bool HttpConnection::retry_on_response(uint32_t status) {
  Stream& s = *stream_;
  if (!s.action || !s.action->retry_policy || s.retries_left == 0 || !s.body_retained ||
      !s.router_complete) {
    return false;
  }
  const config::RetryPolicy& p = *s.action->retry_policy;
  bool retriable = (p.retry_on_5xx && status >= 500) ||
                   (p.retry_on_gateway_error && (status == 502 || status == 503 || status == 504));
  if (!retriable && p.retry_on_retriable_status_codes) {
    for (uint32_t code : p.retriable_status_codes) retriable |= code == status;
  }
  return retriable && schedule_retry();
}

bool HttpConnection::retry_on_failure(UpstreamFailure f) {
  Stream& s = *stream_;
  if (!s.body_retained || (!s.router_complete && s.request_body.size() != s.router_bytes)) {
    return false;
  }
  // A keep-alive connection that the upstream closed just as we reused it, or an HTTP/2 stream
  // it refused: one free retry on a fresh connection (the request never reached the application).
  if (f == UpstreamFailure::Reset && s.upstream && s.upstream->request_not_processed() &&
      !s.stale_connection_retry_used) {
    s.stale_connection_retry_used = true;
    discard_upstream();
    start_upstream_attempt();
    return true;
  }
  if (!s.action || !s.action->retry_policy || s.retries_left == 0) return false;
  const config::RetryPolicy& p = *s.action->retry_policy;
  const bool connect = f == UpstreamFailure::ConnectFailure || f == UpstreamFailure::ConnectTimeout;
  const bool reset = f == UpstreamFailure::Reset || f == UpstreamFailure::ProtocolError;
  const bool retriable =
      (connect && (p.retry_on_connect_failure || p.retry_on_5xx || p.retry_on_gateway_error)) ||
      (reset && (p.retry_on_reset || p.retry_on_5xx));
  return retriable && schedule_retry();
}

bool HttpConnection::schedule_retry() {
  Stream& s = *stream_;
  auto& info = s.cluster->info();
  if (!s.holds_retry_slot && !info.try_acquire_retry()) {
    // As Envoy: with the retry budget exhausted, the attempt's own outcome (the upstream's
    // response, or its failure) goes to the client, flagged UO.
    info.stats().upstream_rq_retry_overflow.inc();
    s.retries_left = 0;
    s.info.set_flag(kUpstreamOverflow);
    return false;
  }
  s.holds_retry_slot = true;
  s.retries_left--;
  info.stats().upstream_rq_retry.inc();
  discard_upstream();
  per_try_timer_.cancel();
  // Envoy's backoff: 25 ms base, full jitter, doubling per attempt, capped at 10x base.
  const uint64_t ceiling = std::min<uint64_t>(25ull << std::min<uint32_t>(s.attempts - 1, 4), 250);
  std::uniform_int_distribution<uint64_t> dist(0, ceiling);
  per_try_purpose_ = PerTryPurpose::RetryBackoff;
  per_try_timer_.expires_after(milliseconds(dist(worker_.rng())));
  return true;
}

void HttpConnection::on_upstream_headers(HeaderMap& headers, bool end_stream) {
  Stream& s = *stream_;
  const uint32_t status = parse_status(headers.status());
  if (upstream::OutlierDetector* od = s.cluster->info().outlier()) {
    od->report(s.upstream->host(), status, s.cluster->lb().hosts().size());
  }
  if (retry_on_response(status)) return;
  if (!stream_) return;
  per_try_timer_.cancel();
  s.info.first_upstream_rx_byte = Clock::now();
  s.info.response_code_details = "via_upstream";
  s.response_headers.swap(headers);
  const auto service_ms =
      std::chrono::duration_cast<milliseconds>(Clock::now() - s.attempt_start).count();
  s.response_headers.set("x-envoy-upstream-service-time", str_cat(service_ms));
  if (s.attempts > 1 && s.holds_retry_slot)
    s.cluster->info().stats().upstream_rq_retry_success.inc();
  s.response_end_at_headers = false;
  if (end_stream) {
    // Headers only (a 204, a gRPC trailers-only reply): they leave with the end of the stream
    // when the codec reports completion, which it does right after this.
    s.upstream_headers_only = true;
    return;
  }
  if (s.filters.empty()) {
    encode_response_headers(s.response_headers, false);
  } else {
    encode_headers_from(s.filters.size());
  }
}

void HttpConnection::on_upstream_data(std::string_view data) {
  if (!stream_) return;
  stream_->last_activity = Clock::now();
  if (stream_->filters.empty()) {
    encode_response_data(data);
  } else {
    encode_data_from(stream_->filters.size(), data, false);
  }
}

void HttpConnection::on_upstream_trailers(HeaderMap& trailers) {
  // HTTP/1 upstreams' trailers pass only with the cluster's enable_trailers; HTTP/2 carries them.
  if (!stream_ || !stream_->cluster) return;
  const auto& cluster_config = stream_->cluster->info().config();
  if (!cluster_config.enable_trailers && !cluster_config.http2) return;
  stream_->response_trailers.swap(trailers);
  stream_->has_response_trailers = true;
  stream_->info.response_trailers = &stream_->response_trailers;
}

void HttpConnection::on_upstream_complete() {
  if (!stream_) return;
  Stream& s = *stream_;
  auto& cs = s.cluster->info().stats();
  // A headers-only response has not been encoded yet: its status is still in the headers.
  const uint32_t code = s.upstream_headers_only ? parse_status(s.response_headers.status())
                                                : s.info.response_code.value_or(0);
  if (code >= 100 && code < 600) cs.upstream_rq_xx[code / 100 - 1].inc();
  s.cluster->count_response_code(code);
  cs.upstream_rq_completed.inc();
  cs.upstream_rq_time.record(static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(Clock::now() - s.attempt_start).count()));
  discard_upstream();
  if (s.upstream_headers_only) {
    stream_timer_.cancel();
    per_try_timer_.cancel();
    s.response_end_at_headers = true;
    if (s.filters.empty()) {
      encode_response_headers(s.response_headers, true);
    } else {
      encode_headers_from(s.filters.size());
    }
  } else if (s.filters.empty()) {
    encode_response_end();
  } else if (s.has_response_trailers) {
    stream_timer_.cancel();
    per_try_timer_.cancel();
    encode_trailers_from(s.filters.size());
  } else {
    stream_timer_.cancel();  // the upstream is done; filters may still hold the response
    per_try_timer_.cancel();
    encode_data_from(s.filters.size(), {}, true);
  }
}

void HttpConnection::on_upstream_failure(UpstreamFailure f, bool response_started) {
  if (!stream_) return;
  Stream& s = *stream_;
  per_try_timer_.cancel();
  // A connect failure or a reset counts against the host like a 503 (Envoy without
  // split_external_local_origin_errors); an overflow is ours, not the host's.
  if (f != UpstreamFailure::Overflow && s.upstream) {
    if (upstream::OutlierDetector* od = s.cluster->info().outlier()) {
      od->report(s.upstream->host(), 503, s.cluster->lb().hosts().size());
    }
  }
  if (!s.response_started && retry_on_failure(f)) return;
  if (!stream_) return;
  uint32_t flag = kUpstreamConnectionTermination;
  std::string_view reason = "connection termination";
  uint32_t status = 503;
  switch (f) {
    case UpstreamFailure::ConnectFailure:
    case UpstreamFailure::ConnectTimeout:
      flag = kUpstreamConnectionFailure;
      reason = "connection failure";
      break;
    case UpstreamFailure::Reset:
      break;
    case UpstreamFailure::ProtocolError:
      flag = kUpstreamProtocolError;
      reason = "protocol error";
      status = 502;
      break;
    case UpstreamFailure::Overflow:
      flag = kUpstreamOverflow;
      reason = "overflow";
      break;
  }
  if (s.attempts > 1 && s.retries_left == 0 && s.action && s.action->retry_policy) {
    flag |= kUpstreamRetryLimitExceeded;
  }
  discard_upstream();
  if (s.response_started) {
    reset_stream(flag);
    return;
  }
  send_local_reply(status,
                   str_cat("upstream connect error or disconnect/reset before headers. "
                           "reset reason: ",
                           reason),
                   flag, str_cat("upstream_reset_before_response_started{", reason, "}"),
                   f == UpstreamFailure::Overflow);
}

void HttpConnection::on_route_timeout() {
  Stream& s = *stream_;
  if (s.cluster) s.cluster->info().stats().upstream_rq_timeout.inc();
  discard_upstream();
  if (s.response_started) {
    reset_stream(kUpstreamRequestTimeout);
    return;
  }
  send_local_reply(504, "upstream request timeout", kUpstreamRequestTimeout,
                   "upstream_response_timeout");
}

void HttpConnection::on_per_try_timeout() {
  Stream& s = *stream_;
  if (s.response_started) return;
  s.cluster->info().stats().upstream_rq_per_try_timeout.inc();
  const config::RetryPolicy& p = *s.action->retry_policy;
  if (s.retries_left > 0 && s.body_retained && s.router_complete &&
      (p.retry_on_5xx || p.retry_on_gateway_error || p.retry_on_reset) && schedule_retry()) {
    return;
  }
  discard_upstream();
  send_local_reply(504, "upstream request timeout", kUpstreamRequestTimeout,
                   "upstream_per_try_timeout");
}

milliseconds HttpConnection::stream_idle_timeout() const {
  // A route's idle_timeout overrides the connection manager's stream_idle_timeout once routed.
  if (stream_->action && stream_->action->idle_timeout) return *stream_->action->idle_timeout;
  return config_->config.stream_idle_timeout;
}

void HttpConnection::arm_stream_idle_timer() {
  const milliseconds timeout = stream_idle_timeout();
  if (timeout.count() == 0) {
    stream_idle_timer_.cancel();
    return;
  }
  // One timer checks the last-activity stamp instead of being re-armed on every byte.
  stream_idle_timer_.expires_at(stream_->last_activity + timeout);
}

void HttpConnection::on_stream_idle_timer() {
  if (!stream_ || closed_) return;
  auto self = shared_from_this();
  Stream& st = *stream_;
  if (Clock::now() - st.last_activity < stream_idle_timeout()) {
    arm_stream_idle_timer();
    return;
  }
  config_->stats.downstream_rq_idle_timeout.inc();
  st.keep_alive = false;
  discard_upstream();
  if (st.response_started) {
    reset_stream(kStreamIdleTimeout);
  } else {
    send_local_reply(st.request_complete ? 504 : 408, "stream timeout", kStreamIdleTimeout,
                     "stream_idle_timeout");
  }
}

void HttpConnection::send_local_reply(uint32_t status, std::string_view body, uint32_t flag,
                                      std::string_view details, bool overloaded) {
  Stream& s = *stream_;
  s.info.set_flag(static_cast<ResponseFlag>(flag));
  s.info.response_code_details = std::string(details);
  // Keep headers a redirect or direct response already set (location).
  HeaderMap& h = s.response_headers;
  h.set(":status", str_cat(status));
  if (!body.empty()) h.set("content-type", "text/plain");
  h.set("content-length", str_cat(body.size()));
  if (overloaded) h.set("x-envoy-overloaded", "true");
  // A reply before the request body was read: the connection cannot be reused safely.
  if (!s.request_complete) s.keep_alive = false;
  s.local_replied = true;
  local_reply_through_filters(s.filters.size(), body);
}

void HttpConnection::encode_response_headers(HeaderMap& h, bool end_stream) {
  Stream& s = *stream_;
  s.response_started = true;
  s.info.response_code = parse_status(h.status());
  s.info.response_headers = &h;
  remove_hop_by_hop(h);
  if (s.route) {
    const auto& rc = config_->routes.config();
    apply_mutations(h, s.route->headers.response_headers_to_add,
                    s.route->headers.response_headers_to_remove);
    apply_mutations(h, s.vhost->headers.response_headers_to_add,
                    s.vhost->headers.response_headers_to_remove);
    apply_mutations(h, rc.headers.response_headers_to_add, rc.headers.response_headers_to_remove);
  }
  h.set("server", config_->config.server_name);
  if (mux_) {
    // HTTP/2 frames the body itself: no chunking, no connection management headers.
    mux_->send_headers(h, end_stream);
    if (end_stream) encode_response_end();
    return;
  }
  if (draining_ || worker_.draining()) s.keep_alive = false;
  const uint32_t code = *s.info.response_code;
  const bool bodyless = s.head_request || code == 204 || code == 304 || code / 100 == 1;
  s.response_chunked = false;
  if (!end_stream && !bodyless && !h.has("content-length")) {
    if (s.http10) {
      s.keep_alive = false;  // HTTP/1.0 has no chunking: the body ends with the connection
    } else {
      s.response_chunked = true;
      h.set("transfer-encoding", "chunked");
    }
  }
  if (!s.keep_alive) {
    h.set("connection", "close");
  } else if (s.http10) {
    h.set("connection", "keep-alive");
  }
  const size_t head_bytes =
      conn_->write_with([&](std::string& out) { encode_response_head(h, s.http10, out); });
  config_->stats.downstream_cx_tx_bytes_total.inc(head_bytes);
  if (end_stream) encode_response_end();
}

void HttpConnection::encode_response_data(std::string_view data) {
  Stream& s = *stream_;
  if (s.head_request || data.empty()) return;
  s.info.bytes_sent += data.size();
  if (mux_) {
    mux_->send_data(data, false);  // the session counts the connection's bytes
    return;
  }
  config_->stats.downstream_cx_tx_bytes_total.inc(data.size());
  if (s.response_chunked) {
    std::string chunk;
    encode_chunk(data, chunk);
    conn_->write(chunk);
  } else {
    conn_->write(data);
  }
}

void HttpConnection::encode_response_end() {
  Stream& s = *stream_;
  if (mux_) {
    if (s.has_response_trailers && !s.head_request) {
      mux_->send_trailers(s.response_trailers);
    } else {
      mux_->send_data({}, true);
    }
  } else if (s.response_chunked) {
    if (s.has_response_trailers && config_->config.enable_trailers) {
      conn_->write_with([&](std::string& out) { encode_last_chunk(s.response_trailers, out); });
    } else {
      conn_->write(kLastChunk);
    }
  }
  s.info.last_downstream_tx_byte = Clock::now();
  finish_stream();
}

void HttpConnection::discard_upstream() {
  if (!stream_ || !stream_->upstream) return;
  Stream& s = *stream_;
  s.upstream->cancel();
  s.cluster->lb().request_finished(&s.upstream->host());
  // It may be on the call stack (this can run inside its own callbacks): retire it, and free it
  // at the next downstream read or with this connection.
  retired_upstreams_.push_back(std::move(s.upstream));
}

void HttpConnection::reset_stream(uint32_t flag) {
  // The response already started: the only honest signal left is to reset the stream (HTTP/2)
  // or close the connection (HTTP/1).
  Stream& s = *stream_;
  s.info.set_flag(static_cast<ResponseFlag>(flag));
  s.keep_alive = false;
  config_->stats.downstream_rq_tx_reset.inc();
  for (const auto& log : config_->access_logs) log->log(s.info);
  if (s.holds_request_slot) {
    s.cluster->info().release_request();
    s.cluster->info().stats().upstream_rq_active.dec();
    s.holds_request_slot = false;
  }
  if (s.holds_retry_slot) {
    s.cluster->info().release_retry();
    s.holds_retry_slot = false;
  }
  config_->stats.downstream_rq_active.dec();
  close_connection(false);
}

void HttpConnection::finish_stream() {
  Stream& s = *stream_;
  auto& st = config_->stats;
  discard_upstream();
  stream_timer_.cancel();
  per_try_timer_.cancel();
  stream_idle_timer_.cancel();
  const uint32_t code = s.info.response_code.value_or(0);
  if (code >= 100 && code < 600) st.downstream_rq_xx[code / 100 - 1].inc();
  st.downstream_rq_completed.inc();
  st.downstream_rq_active.dec();
  st.downstream_rq_time.record(static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(Clock::now() - s.info.start_mono).count()));
  if (s.holds_request_slot) {
    s.cluster->info().release_request();
    s.cluster->info().stats().upstream_rq_active.dec();
  }
  if (s.holds_retry_slot) s.cluster->info().release_retry();
  for (const auto& log : config_->access_logs) log->log(s.info);

  const bool keep_alive = s.keep_alive && s.request_complete;
  release_stream();
  if (mux_) {
    close_connection(true);  // the HTTP/2 stream is done; the session keeps the connection
    return;
  }
  if (!keep_alive) {
    close_connection(true);
    return;
  }
  arm_connection_idle_timer();
  if (draining_) {
    st.downstream_cx_drain_close.inc();
    close_connection(true);
    return;
  }
  // Serve the next pipelined request, if one is waiting. Defer: we may be deep in a parser
  // callback of the upstream or the downstream. (With no input waiting, the next read resumes
  // the parser itself.)
  if (!input_.empty()) {
    asio::post(worker_.loop(), [self = weak_from_this()] {
      if (auto c = self.lock(); c && !c->closed_ && !c->stream_) c->process_input();
    });
  }
}

void HttpConnection::release_stream() {
  std::unique_ptr<Stream> s = std::move(stream_);
  // The filters' last look (Proxy-Wasm on_log...) while the headers are still intact; then the
  // header maps go back to the parsers, so the next request on this connection fills their
  // entries without allocating.
  for (auto& f : s->filters) f->complete();
  s->filters.clear();
  parser_.recycle_headers(s->request_headers);
  if (spare_response_headers_.empty()) {
    s->response_headers.clear();
    spare_response_headers_.swap(s->response_headers);
  }
  // The object serves the next request on an HTTP/1 connection (an HTTP/2 stream's connection
  // manager has only one): no allocation for it, nor for the strings its StreamInfo fills again.
  if (mux_) return;
  s->reset();
  spare_stream_ = std::move(s);
}

// ---- The filter chain ---------------------------------------------------------------------

void HttpConnection::create_filters() {
  Stream& s = *stream_;
  // The route is looked up here only to honour typed_per_filter_config (disabled filters), and
  // only if some route or virtual host has it. The router keeps it unless a filter changed the
  // request headers (clear_route_cache), as Envoy's route cache does.
  if (config_->routes.disables_filters()) {
    s.route = config_->routes.route(s.request_headers, &s.vhost);
  }
  const auto disabled = [&](const std::string& name) {
    const auto in = [&](const std::vector<std::string>& list) {
      return std::find(list.begin(), list.end(), name) != list.end();
    };
    return (s.route && in(s.route->disabled_filters)) || (s.vhost && in(s.vhost->disabled_filters));
  };
  for (const auto& fc : config_->filters) {
    if (disabled(fc->name())) continue;
    auto slot = std::make_unique<FilterSlot>(*this, s, s.filters.size());
    slot->filter = fc->create_filter(*slot);
    if (slot->filter) s.filters.push_back(std::move(slot));
  }
}

bool HttpConnection::after_filter_call(FilterSlot& slot, uint64_t generation) {
  if (!stream_ || generation_ != generation || closed_) return false;
  return run_filter_actions(slot);
}

bool HttpConnection::run_filter_actions(FilterSlot& slot) {
  if (!stream_ || slot.done) return false;
  Stream& s = *stream_;
  if (slot.want_reset) {
    s.info.response_code_details = *slot.want_reset;
    slot.want_reset.reset();
    discard_upstream();
    reset_stream(kLocalReset);
    return false;
  }
  if (slot.want_local_reply) {
    FilterSlot::LocalReply r = std::move(*slot.want_local_reply);
    slot.want_local_reply.reset();
    if (s.response_started) {
      // Response headers already went downstream: a clean reply is impossible.
      s.info.response_code_details = r.details;
      discard_upstream();
      reset_stream(kLocalReset);
      return false;
    }
    // Part of the response may be inside the filters (an encoder filter answers instead of the
    // upstream's response, e.g. a Wasm filter failing in on_response_headers): as Envoy does,
    // the reply then goes straight downstream, past the filters whose state it would confuse.
    const bool direct = s.encode_started;
    discard_upstream();
    s.info.response_code_details = r.details;
    HeaderMap& h = s.response_headers;
    h = std::move(r.headers);
    h.set(":status", str_cat(r.status));
    if (!r.body.empty() && !h.has("content-type")) h.set("content-type", "text/plain");
    h.set("content-length", str_cat(r.body.size()));
    if (!s.request_complete) s.keep_alive = false;
    s.local_replied = true;
    local_reply_through_filters(direct ? 0 : slot.index, r.body);
    return false;
  }
  return true;
}

void HttpConnection::local_reply_through_filters(size_t end, std::string_view body) {
  Stream& s = *stream_;
  if (s.filters.empty() || end == 0) {
    encode_response_headers(s.response_headers, body.empty());
    if (!stream_ || body.empty()) return;
    encode_response_data(body);
    encode_response_end();
    return;
  }
  if (s.encode_started) {
    reset_stream(kLocalReset);
    return;
  }
  const uint64_t gen = generation_;
  const std::string body_copy(body);  // `body` may live in a buffer the filters change
  s.response_end_at_headers = body_copy.empty();
  encode_headers_from(end);
  if (!stream_ || generation_ != gen || body_copy.empty()) return;
  encode_data_from(end, body_copy, true);
}

void HttpConnection::decode_headers_from(size_t from) {
  Stream& s = *stream_;
  const uint64_t gen = generation_;
  for (size_t i = from; i < s.filters.size(); ++i) {
    FilterSlot& slot = *s.filters[i];
    slot.depth++;
    const FilterHeadersStatus st =
        slot.filter->decode_headers(s.request_headers, s.headers_end_stream);
    slot.depth--;
    if (!after_filter_call(slot, gen)) return;
    if (st == FilterHeadersStatus::StopIteration && !slot.want_continue_decoding) {
      slot.decode_stopped = slot.decode_headers_held = true;
      return;
    }
    slot.want_continue_decoding = false;
  }
  route_request();
}

void HttpConnection::decode_data_from(size_t from, std::string_view data, bool end_stream) {
  Stream& s = *stream_;
  if (s.local_replied) return;
  const uint64_t gen = generation_;
  size_t trailers_from = SIZE_MAX;  // a filter added trailers: they continue from here
  const uint32_t limit = config_->buffer_limit;
  std::string carry;  // bytes a filter released, on their way to the next one
  std::string_view cur = data;
  const auto too_large = [&] {
    config_->stats.downstream_rq_too_large.inc();
    s.keep_alive = false;
    send_local_reply(413, "Payload Too Large", 0, "request_payload_too_large");
  };
  for (size_t i = from; i < s.filters.size(); ++i) {
    FilterSlot& slot = *s.filters[i];
    slot.decode_buffer.append(cur);
    if (slot.decode_stopped) {
      slot.decode_end |= end_stream;
      if (trailers_from != SIZE_MAX) slot.decode_trailers_pending = true;
      if (slot.decode_buffer.size() > limit) too_large();
      return;
    }
    slot.in_decode_body = true;
    slot.decode_end_is_last = end_stream && !s.has_request_trailers;
    slot.depth++;
    const FilterDataStatus st = slot.filter->decode_data(slot.decode_buffer, end_stream);
    slot.depth--;
    slot.in_decode_body = slot.decode_end_is_last = false;
    if (!after_filter_call(slot, gen)) return;
    bool added_trailers = false;
    if (end_stream && s.has_request_trailers) {
      // This filter added trailers: the message now ends with them, after the data.
      slot.trailers_seen_decode = true;
      end_stream = false;
      trailers_from = i + 1;
      added_trailers = true;
    }
    if (st == FilterDataStatus::Continue || slot.want_continue_decoding) {
      slot.want_continue_decoding = false;
      carry = std::move(slot.decode_buffer);
      slot.decode_buffer.clear();
      cur = carry;
      continue;
    }
    // The stream stops at this filter.
    if (st == FilterDataStatus::StopIterationNoBuffer || end_stream) {
      slot.decode_stopped = true;
      slot.decode_end = end_stream;
    }
    if (slot.decode_buffer.size() > limit) {
      too_large();
      return;
    }
    if (added_trailers) {
      slot.decode_stopped = slot.decode_trailers_held = true;  // its continue sends both on
    } else if (trailers_from != SIZE_MAX) {
      if (slot.decode_stopped) {
        slot.decode_trailers_pending = true;
      } else {
        decode_trailers_from(i);  // buffering: the end of the message reaches it now
      }
    }
    return;
  }
  if (!cur.empty()) router_data(cur);
  if (!stream_ || generation_ != gen) return;
  if (trailers_from != SIZE_MAX) {
    decode_trailers_from(trailers_from);
  } else if (end_stream) {
    router_end();
  }
}

// Trailers end the message: each filter sees them in order. A filter that holds the stream
// (stopped on headers, or explicitly on data) gets them when it continues; a filter that is
// buffering the body sees them now, and its buffered bytes move on before them.
void HttpConnection::decode_trailers_from(size_t from) {
  Stream& s = *stream_;
  if (s.local_replied) return;
  const uint64_t gen = generation_;
  for (size_t i = from; i < s.filters.size(); ++i) {
    FilterSlot& slot = *s.filters[i];
    if (slot.decode_stopped) {
      slot.decode_trailers_pending = true;
      return;
    }
    slot.trailers_seen_decode = true;
    slot.depth++;
    const FilterTrailersStatus st = slot.filter->decode_trailers(s.request_trailers);
    slot.depth--;
    if (!after_filter_call(slot, gen)) return;
    if (st == FilterTrailersStatus::StopIteration && !slot.want_continue_decoding) {
      slot.decode_stopped = slot.decode_trailers_held = true;
      return;
    }
    slot.want_continue_decoding = false;
    if (!slot.decode_buffer.empty()) {
      std::string pending = std::move(slot.decode_buffer);
      slot.decode_buffer.clear();
      decode_data_from(i + 1, pending, false);
      if (!stream_ || generation_ != gen) return;
      // A later filter holding the stream now keeps both the data and the trailers.
      for (size_t j = i + 1; j < s.filters.size(); ++j) {
        if (s.filters[j]->decode_stopped) {
          s.filters[j]->decode_trailers_pending = true;
          return;
        }
      }
    }
  }
  s.request_trailers_decoded = true;
  router_end();
}

void HttpConnection::resume_decoding(size_t index) {
  if (!stream_ || index >= stream_->filters.size()) return;
  Stream& s = *stream_;
  FilterSlot& slot = *s.filters[index];
  if (!slot.decode_stopped) return;
  const uint64_t gen = generation_;
  slot.decode_stopped = false;
  std::string pending = std::move(slot.decode_buffer);
  slot.decode_buffer.clear();
  const bool end = slot.decode_end;
  slot.decode_end = false;
  const bool trailers_pending = slot.decode_trailers_pending;
  slot.decode_trailers_pending = false;
  if (slot.decode_headers_held) {
    slot.decode_headers_held = false;
    decode_headers_from(index + 1);
    if (!stream_ || generation_ != gen) return;
    // Body bytes that arrived while the headers were held: this filter sees them now.
    if (!pending.empty() || end) decode_data_from(index, pending, end);
    if (!stream_ || generation_ != gen) return;
    if (trailers_pending) decode_trailers_from(index);
    return;
  }
  if (slot.decode_trailers_held) {
    // It stopped on the trailers: what it buffered, then the trailers, go on.
    slot.decode_trailers_held = false;
    if (!pending.empty()) decode_data_from(index + 1, pending, false);
    if (!stream_ || generation_ != gen) return;
    decode_trailers_from(index + 1);
    return;
  }
  decode_data_from(index + 1, pending, end);
  if (!stream_ || generation_ != gen) return;
  if (trailers_pending) decode_trailers_from(index);
}

void HttpConnection::encode_headers_from(size_t end) {
  Stream& s = *stream_;
  s.encode_started = true;
  const uint64_t gen = generation_;
  for (size_t i = end; i-- > 0;) {
    FilterSlot& slot = *s.filters[i];
    slot.depth++;
    const FilterHeadersStatus st =
        slot.filter->encode_headers(s.response_headers, s.response_end_at_headers);
    slot.depth--;
    if (!after_filter_call(slot, gen)) return;
    if (st == FilterHeadersStatus::StopIteration && !slot.want_continue_encoding) {
      slot.encode_stopped = slot.encode_headers_held = true;
      return;
    }
    slot.want_continue_encoding = false;
  }
  encode_response_headers(s.response_headers, s.response_end_at_headers);
}

void HttpConnection::encode_data_from(size_t end, std::string_view data, bool end_stream) {
  Stream& s = *stream_;
  const uint64_t gen = generation_;
  // A filter added trailers (in its end_stream call): they continue from trailers_end (the
  // filters before it, in encoding order) once the data has gone on.
  size_t trailers_end = SIZE_MAX;
  const uint32_t limit = config_->buffer_limit;
  std::string carry;
  std::string_view cur = data;
  // A response too large to hold for a filter: nothing was sent yet, so answer 500 directly
  // (Envoy does the same), bypassing the filters.
  const auto too_large = [&] {
    discard_upstream();
    s.info.response_code_details = "response_payload_too_large";
    s.keep_alive = false;
    if (s.response_started) {
      // The headers are out already: closing the connection is the only honest signal left.
      reset_stream(kLocalReset);
      return;
    }
    for (auto& f : s.filters) f->encode_buffer.clear();
    s.response_headers.clear();
    s.response_headers.set(":status", "500");
    s.response_headers.set("content-type", "text/plain");
    const std::string_view body = "Internal Server Error";
    s.response_headers.set("content-length", str_cat(body.size()));
    encode_response_headers(s.response_headers, false);
    if (!stream_ || generation_ != gen) return;
    encode_response_data(body);
    encode_response_end();
  };
  for (size_t i = end; i-- > 0;) {
    FilterSlot& slot = *s.filters[i];
    slot.encode_buffer.append(cur);
    if (slot.encode_stopped) {
      slot.encode_end |= end_stream;
      if (trailers_end != SIZE_MAX) slot.encode_trailers_pending = true;
      if (slot.encode_buffer.size() > limit) too_large();
      return;
    }
    slot.in_encode_body = true;
    slot.encode_end_is_last = end_stream && !s.has_response_trailers;
    slot.depth++;
    const FilterDataStatus st = slot.filter->encode_data(slot.encode_buffer, end_stream);
    slot.depth--;
    slot.in_encode_body = slot.encode_end_is_last = false;
    if (!after_filter_call(slot, gen)) return;
    bool added_trailers = false;
    if (end_stream && s.has_response_trailers) {
      slot.trailers_seen_encode = true;
      end_stream = false;
      trailers_end = i;
      added_trailers = true;
    }
    if (st == FilterDataStatus::Continue || slot.want_continue_encoding) {
      slot.want_continue_encoding = false;
      carry = std::move(slot.encode_buffer);
      slot.encode_buffer.clear();
      cur = carry;
      continue;
    }
    if (st == FilterDataStatus::StopIterationNoBuffer || end_stream) {
      slot.encode_stopped = true;
      slot.encode_end = end_stream;
    }
    if (slot.encode_buffer.size() > limit) {
      too_large();
      return;
    }
    if (added_trailers) {
      slot.encode_stopped = slot.encode_trailers_held = true;
    } else if (trailers_end != SIZE_MAX) {
      if (slot.encode_stopped) {
        slot.encode_trailers_pending = true;
      } else {
        encode_trailers_from(i + 1);  // buffering: the end of the message reaches it now
      }
    }
    return;
  }
  if (trailers_end != SIZE_MAX) {
    if (!cur.empty()) encode_response_data(cur);
    if (!stream_ || generation_ != gen) return;
    encode_trailers_from(trailers_end);
    return;
  }
  write_response_data(cur, end_stream);
}

// The response's trailers, through the encoding filters in reverse order (see
// decode_trailers_from), then to the wire with the last chunk.
void HttpConnection::encode_trailers_from(size_t end) {
  Stream& s = *stream_;
  const uint64_t gen = generation_;
  s.info.response_trailers = &s.response_trailers;
  for (size_t i = end; i-- > 0;) {
    FilterSlot& slot = *s.filters[i];
    if (slot.encode_stopped) {
      slot.encode_trailers_pending = true;
      return;
    }
    slot.trailers_seen_encode = true;
    slot.depth++;
    const FilterTrailersStatus st = slot.filter->encode_trailers(s.response_trailers);
    slot.depth--;
    if (!after_filter_call(slot, gen)) return;
    if (st == FilterTrailersStatus::StopIteration && !slot.want_continue_encoding) {
      slot.encode_stopped = slot.encode_trailers_held = true;
      return;
    }
    slot.want_continue_encoding = false;
    if (!slot.encode_buffer.empty()) {
      std::string pending = std::move(slot.encode_buffer);
      slot.encode_buffer.clear();
      encode_data_from(i, pending, false);
      if (!stream_ || generation_ != gen) return;
      for (size_t j = i; j-- > 0;) {
        if (s.filters[j]->encode_stopped) {
          s.filters[j]->encode_trailers_pending = true;
          return;
        }
      }
    }
  }
  encode_response_end();
}

void HttpConnection::resume_encoding(size_t index) {
  if (!stream_ || index >= stream_->filters.size()) return;
  Stream& s = *stream_;
  FilterSlot& slot = *s.filters[index];
  if (!slot.encode_stopped) return;
  const uint64_t gen = generation_;
  slot.encode_stopped = false;
  std::string pending = std::move(slot.encode_buffer);
  slot.encode_buffer.clear();
  const bool end = slot.encode_end;
  slot.encode_end = false;
  const bool trailers_pending = slot.encode_trailers_pending;
  slot.encode_trailers_pending = false;
  if (slot.encode_headers_held) {
    slot.encode_headers_held = false;
    encode_headers_from(index);
    if (!stream_ || generation_ != gen) return;
    if (!pending.empty() || end) encode_data_from(index + 1, pending, end);
    if (!stream_ || generation_ != gen) return;
    if (trailers_pending) encode_trailers_from(index + 1);
    return;
  }
  if (slot.encode_trailers_held) {
    slot.encode_trailers_held = false;
    if (!pending.empty()) encode_data_from(index, pending, false);
    if (!stream_ || generation_ != gen) return;
    encode_trailers_from(index);
    return;
  }
  encode_data_from(index, pending, end);
  if (!stream_ || generation_ != gen) return;
  if (trailers_pending) encode_trailers_from(index + 1);
}

void HttpConnection::write_response_data(std::string_view data, bool end_stream) {
  if (!data.empty()) encode_response_data(data);
  if (stream_ && end_stream) encode_response_end();
}

}  // namespace sluice::http
