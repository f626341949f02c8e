// One attempt of a request against one upstream host: get a pooled or new connection, send the
// request, parse the response and stream it back through UpstreamRequestCallbacks. Retries,
// timeouts and the choice of host belong to the router (the stream), not here.
//
// UpstreamRequest is the codec-neutral face the router and the async client use (headers, body,
// end); Http1UpstreamRequest frames it as HTTP/1.1 on a connection of its own.
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

class UpstreamRequest {
 public:
  // The request codec for `cluster`'s protocol.
  static std::unique_ptr<UpstreamRequest> create(upstream::WorkerCluster& cluster,
                                                 std::shared_ptr<const upstream::Host> host,
                                                 UpstreamRequestCallbacks& callbacks);
  virtual ~UpstreamRequest() = default;

  // Starts the attempt: reuses an idle connection, connects, or (max_connections reached) waits
  // for a connection of this worker's pool. Callbacks may run synchronously only for an idle
  // connection (connected) or a pending overflow; otherwise from the loop.
  virtual void start(asio::io_context& loop, bool head_request) = 0;

  // The request, in order: headers (`end_stream`: there is no body), body pieces, then the end
  // (with trailers, or null). Buffered until connected.
  virtual void encode_headers(const HeaderMap& headers, bool end_stream) = 0;
  virtual void encode_data(std::string_view data) = 0;
  virtual void encode_end(const HeaderMap* trailers) = 0;
  // Whether request trailers reach this upstream (HTTP/1: the cluster's enable_trailers).
  virtual bool forwards_trailers() const = 0;
  // Detaches from the callbacks and abandons the request: nothing more is reported.
  virtual void cancel() = 0;

  virtual void read_disable(bool disable) = 0;
  // Storage for the response's header map (see Http1Parser::recycle_headers).
  virtual void recycle_response_headers(HeaderMap& used) = 0;
  virtual bool connected() const = 0;
  // The upstream did not process the request, for certain: a reused HTTP/1 keep-alive connection
  // that closed before any response, or an HTTP/2 stream the server refused (REFUSED_STREAM, or
  // beyond its GOAWAY). Such a request may be sent again safely.
  virtual bool request_not_processed() const = 0;
  virtual bool response_started() const = 0;
  virtual const upstream::Host& host() const = 0;
};

class Http1UpstreamRequest final : public UpstreamRequest,
                                   public net::ConnectionCallbacks,
                                   public Http1ParserCallbacks,
                                   public upstream::ConnectionWaiter {
 public:
  Http1UpstreamRequest(upstream::WorkerCluster& cluster, std::shared_ptr<const upstream::Host> host,
                       UpstreamRequestCallbacks& callbacks);
  ~Http1UpstreamRequest() override;

  // UpstreamRequest
  void start(asio::io_context& loop, bool head_request) override;
  // A body of unknown length (no content-length) goes chunked.
  void encode_headers(const HeaderMap& headers, bool end_stream) override;
  void encode_data(std::string_view data) override;
  void encode_end(const HeaderMap* trailers) override;
  bool forwards_trailers() const override;
  void cancel() override;
  void read_disable(bool disable) override;
  void recycle_response_headers(HeaderMap& used) override { parser_.recycle_headers(used); }
  bool connected() const override { return conn_ != nullptr && connected_; }
  bool request_not_processed() const override { return reused_ && !response_started_; }
  bool response_started() const override { return response_started_; }
  const upstream::Host& host() const override { return *host_; }

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
  // Framed request bytes: to the socket, or buffered until connected.
  void send(std::string_view bytes);

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
  bool request_complete_ =
      false;  // the whole request was handed over: the connection may be reused
  bool chunked_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool failed_ = false;
  // Guards callbacks into a destroyed UpstreamRequest from the connect completion (made only
  // when connecting: most requests reuse a pooled connection).
  std::shared_ptr<bool> alive_;
};

}  // namespace sluice::http
