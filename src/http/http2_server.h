// The server side of HTTP/2 (nghttp2): one session per downstream connection, demultiplexing
// streams. Each stream's request runs in its own HttpConnection (conn_manager.h), which answers
// through the session's MultiplexedStream for that stream; the session frames its response,
// honours both sides' flow control and bounds what a client can make the proxy do (floods).
//
// Flow control, end to end: a stream's request body is taken from the client's window only as
// fast as the upstream accepts it (pause_request_body keeps the stream's window shut), and a
// response the client does not read piles up at most per_connection_buffer_limit_bytes per
// stream (and 4x that over the whole connection) before the upstream stops being read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/stats.h"
#include "http/conn_manager.h"
#include "net/connection.h"
#include "net/lazy_timer.h"

struct nghttp2_session;

namespace sluice::http {

// Envoy's HTTP/2 codec stats, rooted at "http2." for downstream connections.
struct Http2Stats {
  Http2Stats();
  static const Http2Stats& downstream();
  stats::Counter rx_reset, tx_reset, header_overflow, rx_messaging_error, trailers, goaway_sent,
      outbound_flood, outbound_control_flood, inbound_empty_frames_flood,
      inbound_priority_frames_flood, inbound_window_update_frames_flood, too_many_premature_resets;
  stats::Gauge streams_active, pending_send_data;
};

class Http2ServerConnection final : public DownstreamConnection,
                                    public net::ConnectionCallbacks,
                                    public std::enable_shared_from_this<Http2ServerConnection> {
 public:
  Http2ServerConnection(WorkerContext& worker, std::shared_ptr<const HttpListenerConfig> config,
                        std::shared_ptr<net::Connection> conn);
  ~Http2ServerConnection() override;

  // `received`: bytes an HTTP/1 connection already read (and counted) before it recognised the
  // HTTP/2 preface; that connection was counted in the listener's connection stats too.
  void start(std::string received = {}, bool handed_over = false);
  // New streams take the slot's current config (hot reload); when they cannot
  // (can_switch_config), the session drains and the client reconnects.
  void follow(std::shared_ptr<const HttpConfigSlot> slot) { slot_ = std::move(slot); }
  // GOAWAY: a notice at once, the final one (last stream id) a second later; the connection
  // closes once its streams are done.
  void start_drain() override;
  void close_now() override;

  // net::ConnectionCallbacks
  void on_read(const char* data, size_t len) override;
  void on_close(net::CloseReason reason) override;
  void on_above_write_high_watermark() override {}
  void on_below_write_low_watermark() override;

 private:
  class Stream;
  friend class Stream;
  struct Callbacks;  // nghttp2's C callbacks, in the .cc
  friend struct Callbacks;

  // Feeds received bytes to nghttp2, then sends what it queued.
  void receive(const char* data, size_t len);
  // Moves frames nghttp2 queued to the socket while the socket's buffer is below its high
  // watermark, then closes when neither side has more to say.
  void flush();
  // Stream output from outside a receive: flushed once, later in this turn of the loop.
  void schedule_flush();
  // nghttp2 closed stream `id` (ended both ways, or reset by either side).
  void stream_closed(int32_t id);
  // A stream's request headers are complete: its HttpConnection starts.
  void start_request(Stream& s, bool end_stream);
  void arm_idle_timer();
  void on_idle_timeout();
  void send_final_goaway();
  // Floods and protocol errors: closes at once, without waiting for the client.
  void abort(stats::Counter counter, std::string_view why);
  void close_connection(bool flush);
  // Response bytes waiting for clients' windows, over all streams (and http2.pending_send_data).
  void add_pending(int64_t delta);
  // The connection holds more than 4x per_connection_buffer_limit_bytes of responses (`low`:
  // more than half that, the level at which blocked streams resume).
  bool over_budget(bool low = false) const;

  WorkerContext& worker_;
  std::shared_ptr<const HttpListenerConfig> config_;
  std::shared_ptr<net::Connection> conn_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  net::LazyTimer idle_timer_;
  net::LazyTimer goaway_timer_;
  bool in_receive_ = false;
  bool flush_posted_ = false;
  bool draining_ = false;
  std::shared_ptr<const HttpConfigSlot> slot_;
  bool final_goaway_sent_ = false;
  uint64_t pending_bytes_ = 0;
  bool resuming_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point start_;
  // Flood accounting (Envoy's formulas; see http2_server.cc).
  uint32_t consecutive_empty_frames_ = 0;
  uint64_t inbound_streams_ = 0;
  uint64_t inbound_priority_frames_ = 0;
  uint64_t inbound_window_update_frames_ = 0;
  uint64_t outbound_data_frames_ = 0;
  uint64_t premature_resets_ = 0;
  bool flood_ = false;  // a callback found a flood: the receive fails and the connection closes
};

}  // namespace sluice::http
