// One attempt of a request against one upstream host: get a pooled or new connection, send the
// request, parse the response and stream it back through UpstreamRequestCallbacks. Retries,
// timeouts and the choice of host belong to the router (the stream), not here.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/header_map.h"
#include "http/http1_parser.h"
#include "upstream/cluster_manager.h"

namespace sluice::http {

enum class UpstreamFailure {
  ConnectFailure,  // UF
  ConnectTimeout,  // UF
  Reset,           // UC: closed or reset before the response completed
  ProtocolError,   // UPE
  Overflow,        // UO: max_pending_requests reached
};

class UpstreamRequestCallbacks {
 public:
  virtual ~UpstreamRequestCallbacks() = default;
  virtual void on_upstream_connected() = 0;
  virtual void on_upstream_headers(HeaderMap& headers, bool end_stream) = 0;
  virtual void on_upstream_data(std::string_view data) = 0;
  // The response's trailers, just before on_upstream_complete (chunked responses only).
  virtual void on_upstream_trailers(HeaderMap& trailers) {}
  virtual void on_upstream_complete() = 0;
  // `response_started`: headers were already delivered.
  virtual void on_upstream_failure(UpstreamFailure failure, bool response_started) = 0;
  virtual void on_upstream_above_write_high_watermark() {}
  virtual void on_upstream_below_write_low_watermark() {}
};

class UpstreamRequest : public net::ConnectionCallbacks,
                        public Http1ParserCallbacks,
                        public upstream::ConnectionWaiter {
 public:
  UpstreamRequest(upstream::WorkerCluster& cluster, std::shared_ptr<const upstream::Host> host,
                  UpstreamRequestCallbacks& callbacks);
  ~UpstreamRequest() override;

  // Starts the attempt: reuses an idle connection, connects, or (max_connections reached) waits
  // for a connection of this worker's pool. Callbacks may run synchronously only for an idle
  // connection (connected) or a pending overflow; otherwise from the loop.
  void start(asio::io_context& loop, bool head_request);

  // Request bytes, already framed by the caller (head, then body pieces). Buffered until connected.
  void send(std::string_view bytes);
  // The request is fully sent by the caller; lets the connection be reused after the response.
  void request_complete() { request_complete_ = true; }
  // Detaches from the callbacks and closes the connection: nothing more is reported.
  void cancel();

  void read_disable(bool disable);
  // Storage for the response's header map (see Http1Parser::recycle_headers).
  void recycle_response_headers(HeaderMap& used) { parser_.recycle_headers(used); }
  bool connected() const { return conn_ != nullptr && connected_; }
  bool reused_connection() const { return reused_; }
  bool response_started() const { return response_started_; }
  const upstream::Host& host() const { return *host_; }

  // net::ConnectionCallbacks
  void on_read(const char* data, size_t len) override;
  void on_close(net::CloseReason reason) override;
  void on_above_write_high_watermark() override;
  void on_below_write_low_watermark() override;
  // upstream::ConnectionWaiter
  const upstream::Host& waiting_host() const override { return *host_; }
  void on_connection_available() override;
  // Http1ParserCallbacks (response)
  void on_message_headers(HeaderMap& headers, bool end_stream) override;
  void on_message_body(std::string_view data) override;
  void on_message_trailers(HeaderMap& trailers) override;
  void on_message_complete() override;

 private:
  // Opens a new connection, or waits when max_connections is reached and this worker already has
  // a connection to the host that will free up.
  void connect_or_wait();
  void connect();
  void use_idle(std::unique_ptr<upstream::UpstreamConnection> idle);
  void release_pending_slot();
  void stop_waiting();
  void on_connected();
  void fail(UpstreamFailure f);

  upstream::WorkerCluster& cluster_;
  std::shared_ptr<const upstream::Host> host_;
  UpstreamRequestCallbacks& callbacks_;
  std::unique_ptr<upstream::UpstreamConnection> conn_;
  Http1Parser parser_;
  std::string pending_;  // bytes sent before the connection was up
  bool connected_ = false;
  bool reused_ = false;
  asio::io_context* loop_ = nullptr;
  bool pending_slot_ = false;  // holds a max_pending_requests slot while waiting or connecting
  bool waiting_ = false;       // queued in the worker's pool for a connection
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool failed_ = false;
  // Guards callbacks into a destroyed UpstreamRequest from the connect completion (made only
  // when connecting: most requests reuse a pooled connection).
  std::shared_ptr<bool> alive_;
};

}  // namespace sluice::http
