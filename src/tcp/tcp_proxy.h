// envoy.filters.network.tcp_proxy: a downstream connection piped to one upstream connection of
// a cluster, bytes both ways, with back-pressure (a side whose peer cannot keep up stops being
// read), half-close (one side's FIN is passed on and the other direction keeps flowing), an
// idle timeout, Envoy's tcp.<stat_prefix>.* stats and an access log line per connection.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <asio.hpp>

#include "accesslog/access_log.h"
#include "common/stats.h"
#include "common/stream_info.h"
#include "config/bootstrap.h"
#include "net/connection.h"
#include "net/lazy_timer.h"
#include "upstream/cluster_manager.h"

namespace sluice::tcp {

struct TcpProxyStats {
  explicit TcpProxyStats(std::string_view stat_prefix);
  stats::Counter downstream_cx_total, downstream_cx_no_route, downstream_cx_rx_bytes_total,
      downstream_cx_tx_bytes_total, idle_timeout, downstream_flow_control_paused_reading_total,
      downstream_flow_control_resumed_reading_total, upstream_flush_total;
  stats::Gauge downstream_cx_rx_bytes_buffered, downstream_cx_tx_bytes_buffered,
      upstream_flush_active;
};

// One filter chain's tcp_proxy, shared read-only by the workers.
struct TcpProxyConfig {
  explicit TcpProxyConfig(const config::TcpProxy& config);
  const config::TcpProxy config;
  TcpProxyStats stats;
  std::vector<std::shared_ptr<accesslog::AccessLog>> access_logs;
  // The cluster for a new connection (weighted_clusters: by weight).
  const std::string& pick_cluster(std::mt19937_64& rng) const;
};

// What a session needs from its worker.
class TcpProxyOwner {
 public:
  virtual ~TcpProxyOwner() = default;
  virtual asio::io_context& loop() = 0;
  virtual upstream::ClusterManager& clusters() = 0;
  virtual std::mt19937_64& rng() = 0;
  // The session is over: the worker drops its reference (deferred, never re-entrant).
  virtual void tcp_session_closed(class TcpProxySession* session) = 0;
};

class TcpProxySession : public std::enable_shared_from_this<TcpProxySession> {
 public:
  TcpProxySession(TcpProxyOwner& owner, std::shared_ptr<const TcpProxyConfig> config,
                  std::shared_ptr<net::Connection> downstream);
  ~TcpProxySession();

  void start();
  // Worker shutdown: both sides closed now.
  void close_now();

 private:
  // Each connection's callbacks, telling the session which side spoke.
  struct Side : net::ConnectionCallbacks {
    Side(TcpProxySession& s, bool upstream) : session(s), is_upstream(upstream) {}
    void on_read(const char* data, size_t len) override;
    void on_close(net::CloseReason reason) override;
    void on_above_write_high_watermark() override;
    void on_below_write_low_watermark() override;
    void on_end_of_stream() override;
    TcpProxySession& session;
    bool is_upstream;
  };

  void connect(upstream::WorkerCluster& cluster);
  void on_connected();
  void on_data(bool from_upstream, const char* data, size_t len);
  void on_peer_closed(bool upstream_side, net::CloseReason reason);
  void on_eof(bool upstream_side);
  void on_idle_timeout();
  // Closes both sides (`flush`: pending bytes go out first) and tells the owner.
  void finish(bool flush);
  net::Connection& other(bool upstream_side);

  TcpProxyOwner& owner_;
  std::shared_ptr<const TcpProxyConfig> config_;
  std::shared_ptr<net::Connection> downstream_;
  std::unique_ptr<upstream::UpstreamConnection> upstream_;
  upstream::WorkerCluster* cluster_ = nullptr;
  Side downstream_side_{*this, false};
  Side upstream_side_{*this, true};
  net::LazyTimer idle_timer_;
  // What the access log prints: addresses, the upstream, bytes each way, response flags
  // (UH no healthy host, UO overflow, UF connect failure, NC no cluster), the duration. The
  // connection's network filters read the same one (upstream.address, xds.cluster_name): it
  // is theirs when they exist, else own_info_.
  StreamInfo own_info_;
  StreamInfo* info_;
  uint32_t connect_attempts_ = 0;
  bool downstream_eof_ = false, upstream_eof_ = false;
  bool finished_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::tcp
