#include "http/upstream_request.h"

#include <spdlog/spdlog.h>

#include "http/http2_client.h"

namespace sluice::http {

std::unique_ptr<UpstreamRequest> UpstreamRequest::create(upstream::WorkerCluster& cluster,
                                                         std::shared_ptr<const upstream::Host> host,
                                                         UpstreamRequestCallbacks& callbacks) {
  if (cluster.info().config().http2) {
    return std::make_unique<Http2UpstreamRequest>(cluster, std::move(host), callbacks);
  }
  return std::make_unique<Http1UpstreamRequest>(cluster, std::move(host), callbacks);
}

Http1UpstreamRequest::Http1UpstreamRequest(upstream::WorkerCluster& cluster,
                                           std::shared_ptr<const upstream::Host> host,
                                           UpstreamRequestCallbacks& callbacks)
    : cluster_(cluster),
      host_(std::move(host)),
      callbacks_(callbacks),
      parser_(MessageType::Response, *this, 96 * 1024) {}

Http1UpstreamRequest::~Http1UpstreamRequest() {
  if (alive_) *alive_ = false;
  stop_waiting();
  release_pending_slot();
  // A connection whose exchange did not complete cleanly is closed, never pooled.
  if (conn_) cluster_.info().stats().upstream_cx_destroy_local.inc();
}

void Http1UpstreamRequest::cancel() {
  failed_ = true;
  stop_waiting();
  release_pending_slot();
  if (conn_) conn_->conn().set_callbacks(nullptr);
  conn_.reset();
}

void Http1UpstreamRequest::start(asio::io_context& loop, bool head_request) {
  parser_.expect_head_response(head_request);
  loop_ = &loop;
  auto& info = cluster_.info();
  if (auto idle = cluster_.take_idle(host_.get())) {
    use_idle(std::move(idle));
    return;
  }
  // No ready connection: the request is pending (Envoy's term) until it has one.
  if (!info.try_acquire_pending()) {
    info.stats().upstream_rq_pending_overflow.inc();
    fail(UpstreamFailure::Overflow);
    return;
  }
  pending_slot_ = true;
  info.stats().upstream_rq_pending_total.inc();
  info.stats().upstream_rq_pending_active.inc();
  connect_or_wait();
}

void Http1UpstreamRequest::connect_or_wait() {
  auto& info = cluster_.info();
  if (!info.try_acquire_connection()) {
    if (cluster_.connections_to(*host_) > 0) {
      if (!waiting_) info.stats().upstream_cx_overflow.inc();
      waiting_ = true;
      cluster_.wait_for_connection(this);
      return;
    }
    // Nothing of ours to wait for: open one past the limit rather than starve (as Envoy).
    info.stats().upstream_cx_overflow.inc();
    info.force_acquire_connection();
  }
  connect();
}

void Http1UpstreamRequest::on_connection_available() {
  if (failed_) return;
  if (auto idle = cluster_.take_idle(host_.get())) {
    waiting_ = false;
    release_pending_slot();
    use_idle(std::move(idle));
    return;
  }
  connect_or_wait();  // stays `waiting_` if it queues again
  if (conn_) waiting_ = false;
}

void Http1UpstreamRequest::stop_waiting() {
  if (!waiting_) return;
  waiting_ = false;
  cluster_.cancel_wait(this);
}

void Http1UpstreamRequest::release_pending_slot() {
  if (!pending_slot_) return;
  pending_slot_ = false;
  cluster_.info().release_pending();
  cluster_.info().stats().upstream_rq_pending_active.dec();
}

void Http1UpstreamRequest::use_idle(std::unique_ptr<upstream::UpstreamConnection> idle) {
  conn_ = std::move(idle);
  reused_ = true;
  on_connected();
}

void Http1UpstreamRequest::connect() {
  auto& info = cluster_.info();
  auto conn = net::Connection::create(*loop_, info.config().per_connection_buffer_limit_bytes);
  conn_ = std::make_unique<upstream::UpstreamConnection>(cluster_, host_, conn);
  const auto started = std::chrono::steady_clock::now();
  if (!alive_) alive_ = std::make_shared<bool>(true);
  // With TLS the handshake shares connect_timeout; a failed one is a connect failure (503, flag
  // UF), counted in cluster.<name>.ssl.connection_error too.
  conn->connect(host_->endpoint, info.config().connect_timeout, info.tls(),
                [this, alive = alive_, started](const asio::error_code& ec, bool in_tls) {
                  if (!*alive) return;
                  auto& stats = cluster_.info().stats();
                  release_pending_slot();
                  if (failed_) return;
                  if (ec) {
                    if (in_tls) stats.ssl_connection_error.inc();
                    stats.upstream_cx_connect_fail.inc();
                    if (ec == asio::error::timed_out) stats.upstream_cx_connect_timeout.inc();
                    spdlog::debug("upstream {} to {} failed: {}",
                                  in_tls ? "TLS handshake" : "connect", host_->address,
                                  ec.message());
                    conn_.reset();
                    fail(ec == asio::error::timed_out ? UpstreamFailure::ConnectTimeout
                                                      : UpstreamFailure::ConnectFailure);
                    return;
                  }
                  if (in_tls) {
                    stats.ssl_handshake.inc();
                    if (conn_->conn().tls_info().session_reused) stats.ssl_session_reused.inc();
                  }
                  stats.upstream_cx_connect_ms.record(
                      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count()));
                  on_connected();
                });
}

void Http1UpstreamRequest::on_connected() {
  connected_ = true;
  conn_->conn().set_callbacks(this);
  conn_->conn().start_reading();
  if (!pending_.empty()) {
    cluster_.info().stats().upstream_cx_tx_bytes_total.inc(pending_.size());
    conn_->conn().write(pending_);
    pending_.clear();
    pending_.shrink_to_fit();
  }
  callbacks_.on_upstream_connected();
}

void Http1UpstreamRequest::send(std::string_view bytes) {
  if (failed_) return;
  if (connected()) {
    cluster_.info().stats().upstream_cx_tx_bytes_total.inc(bytes.size());
    conn_->conn().write(bytes);
  } else {
    pending_.append(bytes);
  }
}

void Http1UpstreamRequest::encode_headers(const HeaderMap& headers, bool end_stream) {
  chunked_ = !end_stream && !headers.has("content-length");
  const auto encode = [&](std::string& out) {
    encode_request_head(headers, out);
    if (chunked_) out.insert(out.size() - 2, "transfer-encoding: chunked\r\n");
  };
  if (failed_) return;
  if (connected()) {
    const size_t n = conn_->conn().write_with(encode);
    cluster_.info().stats().upstream_cx_tx_bytes_total.inc(n);
  } else {
    encode(pending_);
  }
  if (end_stream) request_complete_ = true;
}

void Http1UpstreamRequest::encode_data(std::string_view data) {
  if (!chunked_) {
    send(data);
    return;
  }
  if (data.empty()) return;  // an empty chunk would end the body
  std::string chunk;
  encode_chunk(data, chunk);
  send(chunk);
}

void Http1UpstreamRequest::encode_end(const HeaderMap* trailers) {
  if (chunked_) {
    if (trailers && !trailers->empty()) {
      std::string end;
      encode_last_chunk(*trailers, end);
      send(end);
    } else {
      send(kLastChunk);
    }
  }
  request_complete_ = true;
}

bool Http1UpstreamRequest::forwards_trailers() const {
  return cluster_.info().config().enable_trailers;
}

void Http1UpstreamRequest::read_disable(bool disable) {
  if (!connected() || conn_->conn().reading_disabled() == disable) return;
  conn_->conn().read_disable(disable);
  // The downstream cannot take the response as fast as it comes (Envoy's flow-control stats).
  auto& st = cluster_.info().stats();
  (disable ? st.upstream_flow_control_paused_reading_total
           : st.upstream_flow_control_resumed_reading_total)
      .inc();
}

void Http1UpstreamRequest::fail(UpstreamFailure f) {
  if (failed_) return;
  failed_ = true;
  stop_waiting();
  if (conn_) {
    conn_->conn().set_callbacks(nullptr);
    conn_.reset();
  }
  callbacks_.on_upstream_failure(f, response_started_);
}

void Http1UpstreamRequest::on_read(const char* data, size_t len) {
  if (failed_) return;
  cluster_.info().stats().upstream_cx_rx_bytes_total.inc(len);
  const size_t consumed = parser_.execute(data, len);
  if (failed_) return;
  if (parser_.failed()) {
    cluster_.info().stats().upstream_cx_protocol_error.inc();
    spdlog::debug("upstream {}: {}", host_->address, parser_.error());
    fail(UpstreamFailure::ProtocolError);
    return;
  }
  if (response_complete_) {
    // Bytes after the response, or an upstream that wants to close: not reusable.
    const bool reusable = consumed == len && parser_.keep_alive() && request_complete_ && conn_ &&
                          !conn_->conn().closing();
    failed_ = true;  // no more callbacks from this attempt
    if (conn_) {
      conn_->requests_served++;
      conn_->conn().set_callbacks(nullptr);
      if (reusable) {
        parser_.resume();
        cluster_.release(std::move(conn_));
      } else {
        cluster_.info().stats().upstream_cx_destroy_remote.inc();
        conn_.reset();
      }
    }
    callbacks_.on_upstream_complete();
  }
}

void Http1UpstreamRequest::on_close(net::CloseReason) {
  if (failed_) return;
  // A close-delimited body (no Content-Length, not chunked) ends with the connection.
  parser_.finish();
  if (response_complete_) {
    failed_ = true;
    conn_.reset();
    callbacks_.on_upstream_complete();
    return;
  }
  cluster_.info().stats().upstream_cx_destroy_remote.inc();
  cluster_.info().stats().upstream_rq_rx_reset.inc();
  fail(UpstreamFailure::Reset);
}

void Http1UpstreamRequest::on_above_write_high_watermark() {
  callbacks_.on_upstream_above_write_high_watermark();
}
void Http1UpstreamRequest::on_below_write_low_watermark() {
  callbacks_.on_upstream_below_write_low_watermark();
}

void Http1UpstreamRequest::on_message_headers(HeaderMap& headers, bool end_stream) {
  response_started_ = true;
  callbacks_.on_upstream_headers(headers, end_stream);
}

void Http1UpstreamRequest::on_message_body(std::string_view data) {
  if (!failed_) callbacks_.on_upstream_data(data);
}

void Http1UpstreamRequest::on_message_trailers(HeaderMap& trailers) {
  if (!failed_) callbacks_.on_upstream_trailers(trailers);
}

void Http1UpstreamRequest::on_message_complete() { response_complete_ = true; }

}  // namespace sluice::http
