// The HTTP connection manager. An HttpConnection runs requests one stream at a time: routing
// (local replies, redirects, or the router to an upstream cluster with retries and timeouts), the
// filter chain, streaming the response back, logging and counting it.
//
// Over HTTP/1 it is the whole connection: it parses requests off the socket, and pipelined
// requests wait in the input buffer until the current response is complete, so responses go out
// in order. Over HTTP/2 (http2_server.h) the session demultiplexes streams and runs one
// HttpConnection per stream, which then speaks to its MultiplexedStream instead of a socket.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <asio.hpp>

#include "common/stats.h"
#include "common/stream_info.h"
#include "config/bootstrap.h"
#include "http/filter.h"
#include "http/http1_parser.h"
#include "http/route_table.h"
#include "http/upstream_request.h"
#include "net/connection.h"
#include "net/lazy_timer.h"
#include "upstream/cluster_manager.h"

namespace sluice::accesslog {
class AccessLog;
}

namespace sluice::http {

struct HcmStats {
  explicit HcmStats(std::string_view prefix);
  stats::Counter downstream_cx_total, downstream_cx_destroy, downstream_cx_protocol_error,
      downstream_cx_idle_timeout, downstream_cx_drain_close, downstream_rq_total,
      downstream_rq_http1_total, downstream_rq_http2_total, downstream_cx_http1_total,
      downstream_cx_http2_total, downstream_rq_timeout, downstream_rq_idle_timeout,
      downstream_rq_rx_reset, downstream_rq_tx_reset, downstream_rq_too_large,
      downstream_rq_completed, no_route, no_cluster, rq_direct_response, rq_redirect,
      downstream_cx_rx_bytes_total, downstream_cx_tx_bytes_total;
  stats::Counter downstream_rq_xx[5];
  stats::Gauge downstream_cx_active, downstream_rq_active, downstream_cx_http2_active;
  stats::Histogram downstream_rq_time, downstream_cx_length_ms;
};

// Built once per config snapshot for each HCM; shared read-only by all workers.
struct HttpListenerConfig {
  HttpListenerConfig(const config::HttpConnectionManager& hcm, uint32_t buffer_limit);
  ~HttpListenerConfig();
  const config::HttpConnectionManager& config;
  RouteTable routes;
  HcmStats stats;
  uint32_t buffer_limit;
  std::vector<std::shared_ptr<accesslog::AccessLog>> access_logs;
  // http_filters[] before the router, in config order.
  std::vector<std::shared_ptr<HttpFilterConfig>> filters;
  // Keeps `config` (part of a bootstrap) alive while a connection still uses this snapshot.
  std::shared_ptr<const void> config_owner;
};

// The HTTP config one filter chain of a listener serves now, as one worker sees it: a reload
// replaces `current` on that worker's thread, and open connections take it for their next stream
// (in-flight streams finish on theirs). Null: the chain is gone; its connections finish the
// stream they run and close.
struct HttpConfigSlot {
  std::shared_ptr<const HttpListenerConfig> current;
};

// Whether a connection on `from` may serve its next stream on `to`: the connection-level stats
// (stat_prefix) must stay the same series. Else the connection drains and the client reconnects.
bool can_switch_config(const HttpListenerConfig& from, const HttpListenerConfig& to);

// A downstream HTTP connection as its worker holds it (HTTP/1 or HTTP/2).
class DownstreamConnection {
 public:
  virtual ~DownstreamConnection() = default;
  // Drain: finish the streams in flight (HTTP/1: "connection: close"; HTTP/2: GOAWAY), then close.
  virtual void start_drain() = 0;
  // Closes immediately (shutdown).
  virtual void close_now() = 0;
};

// The downstream side of one stream of a multiplexed connection (an HTTP/2 stream), as the
// HttpConnection running that stream sees it.
class MultiplexedStream {
 public:
  virtual ~MultiplexedStream() = default;
  virtual void send_100_continue() = 0;
  virtual void send_headers(const HeaderMap& headers, bool end_stream) = 0;
  virtual void send_data(std::string_view data, bool end_stream) = 0;
  virtual void send_trailers(const HeaderMap& trailers) = 0;
  // Stop (true) or resume taking the request body: the client's flow-control window stays shut.
  virtual void pause_request_body(bool pause) = 0;
  // The HttpConnection is done with the stream: `complete` when the whole response was sent,
  // else the stream is reset (unless the client reset it first). Releases the HttpConnection
  // on a later turn of the loop.
  virtual void stream_finished(bool complete) = 0;
};

// What a connection needs from its worker.
class WorkerContext {
 public:
  virtual ~WorkerContext() = default;
  virtual asio::io_context& loop() = 0;
  virtual upstream::ClusterManager& clusters() = 0;
  virtual bool draining() const = 0;
  virtual std::mt19937_64& rng() = 0;
  // The connection is finished: the worker drops its reference (deferred, never re-entrant).
  virtual void connection_closed(DownstreamConnection* conn) = 0;
  // An HTTP/1 connection (codec AUTO) received the HTTP/2 connection preface: the worker serves
  // `conn` over HTTP/2 from now on, starting with `received` (the bytes read so far), and drops
  // `http1`.
  virtual void switch_to_http2(DownstreamConnection* http1, std::shared_ptr<net::Connection> conn,
                               std::string received) = 0;
};

class HttpConnection : public DownstreamConnection,
                       public net::ConnectionCallbacks,
                       public Http1ParserCallbacks,
                       public UpstreamRequestCallbacks,
                       public std::enable_shared_from_this<HttpConnection> {
 public:
  // HTTP/1: `conn` is this connection's socket. HTTP/2: `stream` is the one stream this runs,
  // and `conn` the session's socket (for addresses, TLS and the connection id only).
  HttpConnection(WorkerContext& worker, std::shared_ptr<const HttpListenerConfig> config,
                 std::shared_ptr<net::Connection> conn, MultiplexedStream* stream = nullptr);
  ~HttpConnection() override;

  // Each new stream takes the slot's current config (hot reload). HTTP/1 only: an HTTP/2
  // session switches for its streams itself.
  void follow(std::shared_ptr<const HttpConfigSlot> slot) { slot_ = std::move(slot); }
  // HTTP/1: starts reading the socket.
  void start();
  // Drain: finish the current stream with "connection: close", or close now when idle.
  void start_drain() override;
  // Closes immediately (shutdown).
  void close_now() override;

  // HTTP/2: the session delivers the stream's request through the Http1ParserCallbacks below
  // (on_message_headers ... on_message_complete); then these.
  // The client reset the stream, or the connection went away, before the response completed.
  void on_stream_reset();
  // The client's window for this stream's response filled up (true) or drained (false).
  void on_stream_send_blocked(bool blocked);

  // net::ConnectionCallbacks
  void on_read(const char* data, size_t len) override;
  void on_close(net::CloseReason reason) override;
  void on_above_write_high_watermark() override;
  void on_below_write_low_watermark() override;
  // Http1ParserCallbacks (requests)
  void on_message_headers(HeaderMap& headers, bool end_stream) override;
  void on_message_body(std::string_view data) override;
  void on_message_trailers(HeaderMap& trailers) override;
  void on_message_complete() override;
  // UpstreamRequestCallbacks
  void on_upstream_connected() override;
  void on_upstream_headers(HeaderMap& headers, bool end_stream) override;
  void on_upstream_data(std::string_view data) override;
  void on_upstream_trailers(HeaderMap& trailers) override;
  void on_upstream_complete() override;
  void on_upstream_failure(UpstreamFailure failure, bool response_started) override;
  void on_upstream_above_write_high_watermark() override;
  void on_upstream_below_write_low_watermark() override;

 private:
  struct Stream;
  struct FilterSlot;

  void process_input();
  void handle_parse_error();
  void route_request();
  void start_upstream_attempt();
  void send_local_reply(uint32_t status, std::string_view body, uint32_t flag,
                        std::string_view details, bool overloaded = false);
  void encode_response_headers(HeaderMap& headers, bool end_stream);
  void encode_response_data(std::string_view data);
  void encode_response_end();
  void finish_stream();
  // Destroys the finished stream, keeping its header maps' storage for the next one.
  void release_stream();
  void reset_stream(uint32_t flag);
  bool retry_on_response(uint32_t status);
  bool retry_on_failure(UpstreamFailure failure);
  // Starts a retry after a backoff; false when the retry budget (circuit breaker) is exhausted.
  bool schedule_retry();
  std::chrono::milliseconds stream_idle_timeout() const;
  void arm_stream_idle_timer();
  void arm_connection_idle_timer();
  void arm_route_timeout(std::chrono::milliseconds timeout);
  void arm_route_timeout_while_held();
  // Timer expiries (net::LazyTimer callbacks).
  void on_connection_idle_timeout();
  void on_stream_timer();
  void on_per_try_timer();
  void on_stream_idle_timer();
  void on_route_timeout();
  void on_per_try_timeout();
  void close_connection(bool flush);
  void discard_upstream();

  // The filter chain (filter.h). Decoding runs slots from..last, then the router; encoding runs
  // slots end-1..0 (reverse config order), then the wire.
  void create_filters();
  void decode_headers_from(size_t from);
  void decode_data_from(size_t from, std::string_view data, bool end_stream);
  void decode_trailers_from(size_t from);
  void encode_trailers_from(size_t end);
  // The end of the request upstream: the last chunk (with trailers where allowed).
  void send_request_end(UpstreamRequest& up);
  void resume_decoding(size_t index);
  void encode_headers_from(size_t from);
  void encode_data_from(size_t from, std::string_view data, bool end_stream);
  void resume_encoding(size_t index);
  // Runs what a filter asked for inside its callback; false when the stream is gone or answered.
  bool run_filter_actions(FilterSlot& slot);
  bool after_filter_call(FilterSlot& slot, uint64_t generation);
  void router_data(std::string_view data);
  void router_end();
  // The response, after the encoding filters: to the wire.
  void write_response_data(std::string_view data, bool end_stream);
  // The prepared response_headers and `body` as a local reply through encoding slots end-1..0
  // (the router's replies pass every filter; a filter's pass those before it).
  void local_reply_through_filters(size_t end, std::string_view body);

  // Stops (true) or resumes reading the request: the socket (HTTP/1) or the stream's window.
  void read_disable(bool disable);
  // The first bytes of an AUTO connection (in input_): true when they are HTTP/1; false while
  // they may still be the HTTP/2 preface, or when they were (the connection is handed over).
  bool detect_http2();

  // A new HTTP/1 stream: take the slot's config, or drain when it cannot be taken.
  void take_latest_config();

  WorkerContext& worker_;
  std::shared_ptr<const HttpListenerConfig> config_;
  std::shared_ptr<const HttpConfigSlot> slot_;
  std::shared_ptr<net::Connection> conn_;
  MultiplexedStream* const mux_;  // HTTP/2: the stream this runs; null for HTTP/1
  bool first_read_ = true;        // AUTO: the protocol is not known yet
  bool first_request_ = true;
  Http1Parser parser_;
  std::string input_;  // bytes received but not yet parsed (pipelined requests)
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Stream> spare_stream_;  // the last stream's object, reset (release_stream)
  HeaderMap spare_response_headers_;      // storage for the next upstream response's headers
  std::vector<std::unique_ptr<UpstreamRequest>> retired_upstreams_;
  net::LazyTimer idle_timer_;    // connection idle (no stream)
  net::LazyTimer stream_timer_;  // request timeout, then the route timeout
  enum class StreamTimerPurpose { RequestTimeout, RouteTimeout } stream_timer_purpose_{};
  net::LazyTimer per_try_timer_;  // per-try timeout, or the backoff before a retry
  enum class PerTryPurpose { PerTryTimeout, RetryBackoff } per_try_purpose_{};
  uint32_t per_try_attempt_ = 0;  // the attempt a per-try timeout is for
  net::LazyTimer stream_idle_timer_;
  uint64_t generation_ = 0;  // invalidates timers of finished streams
  bool draining_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point connection_start_;
};

}  // namespace sluice::http
