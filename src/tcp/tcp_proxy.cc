#include "tcp/tcp_proxy.h"

#include <spdlog/spdlog.h>

#include "upstream/outlier_detector.h"

namespace sluice::tcp {

TcpProxyStats::TcpProxyStats(std::string_view p) {
  auto& s = stats::Store::instance();
  auto counter = [&](std::string_view n) { return s.counter(stats::tcp_proxy_stat(p, n)); };
  auto gauge = [&](std::string_view n) { return s.gauge(stats::tcp_proxy_stat(p, n)); };
  downstream_cx_total = counter("downstream_cx_total");
  downstream_cx_no_route = counter("downstream_cx_no_route");
  downstream_cx_rx_bytes_total = counter("downstream_cx_rx_bytes_total");
  downstream_cx_tx_bytes_total = counter("downstream_cx_tx_bytes_total");
  idle_timeout = counter("idle_timeout");
  downstream_flow_control_paused_reading_total =
      counter("downstream_flow_control_paused_reading_total");
  downstream_flow_control_resumed_reading_total =
      counter("downstream_flow_control_resumed_reading_total");
  upstream_flush_total = counter("upstream_flush_total");
  downstream_cx_rx_bytes_buffered = gauge("downstream_cx_rx_bytes_buffered");
  downstream_cx_tx_bytes_buffered = gauge("downstream_cx_tx_bytes_buffered");
  upstream_flush_active = gauge("upstream_flush_active");
}

TcpProxyConfig::TcpProxyConfig(const config::TcpProxy& c) : config(c), stats(c.stat_prefix) {}

const std::string& TcpProxyConfig::pick_cluster(std::mt19937_64& rng) const {
  if (config.weighted_clusters.empty()) return config.cluster;
  uint64_t pick = rng() % config.total_weight;
  for (const auto& wc : config.weighted_clusters) {
    if (pick < wc.weight) return wc.name;
    pick -= wc.weight;
  }
  return config.weighted_clusters.back().name;
}

TcpProxySession::TcpProxySession(TcpProxyOwner& owner, std::shared_ptr<const TcpProxyConfig> config,
                                 std::shared_ptr<net::Connection> downstream)
    : owner_(owner),
      config_(std::move(config)),
      downstream_(std::move(downstream)),
      idle_timer_(owner.loop(), [this] { on_idle_timeout(); }) {
  if (net::FilterManager* filters = downstream_->filters()) {
    info_ = &filters->stream_info();
  } else {
    own_info_ = net::connection_stream_info(*downstream_);
    info_ = &own_info_;
  }
}

TcpProxySession::~TcpProxySession() {
  *alive_ = false;
  downstream_->set_callbacks(nullptr);
  // A finished session may still be flushing to the client: that connection outlives it.
  if (!finished_) downstream_->close(false);
  if (upstream_) {
    upstream_->conn().set_callbacks(nullptr);
    upstream_->conn().set_close_hook(nullptr);
  }
}

void TcpProxySession::start() {
  auto& st = config_->stats;
  st.downstream_cx_total.inc();
  downstream_->set_callbacks(&downstream_side_);
  downstream_->enable_half_close();
  const std::string& cluster_name = config_->pick_cluster(owner_.rng());
  info_->upstream_cluster = cluster_name;
  cluster_ = owner_.clusters().get(cluster_name);
  if (!cluster_) {
    st.downstream_cx_no_route.inc();
    info_->set_flag(kNoClusterFound);
    finish(false);
    return;
  }
  // The downstream is read only once the upstream is there: until then the kernel holds what
  // the client sends (bounded by its socket buffer).
  connect(*cluster_);
}

void TcpProxySession::connect(upstream::WorkerCluster& cluster) {
  auto& info = cluster.info();
  const upstream::Host* chosen = cluster.lb().choose(upstream_ ? &*upstream_->host() : nullptr);
  upstream_.reset();
  if (!chosen) {
    info.stats().upstream_cx_none_healthy.inc();
    info_->set_flag(kNoHealthyUpstream);
    finish(false);
    return;
  }
  if (!info.try_acquire_connection()) {
    info.stats().upstream_cx_overflow.inc();
    info_->set_flag(kUpstreamOverflow);
    finish(false);
    return;
  }
  ++connect_attempts_;
  auto host = cluster.host_ptr(chosen);
  info_->upstream_host = host->address;
  auto conn =
      net::Connection::create(owner_.loop(), info.config().per_connection_buffer_limit_bytes);
  upstream_ = std::make_unique<upstream::UpstreamConnection>(cluster, host, conn);
  conn->set_callbacks(&upstream_side_);
  conn->connect(host->endpoint, info.config().connect_timeout, info.tls(),
                [this, alive = alive_, &cluster](const asio::error_code& ec, bool in_tls) {
                  if (!*alive || finished_) return;
                  auto& stats = cluster.info().stats();
                  if (!ec) {
                    if (in_tls) stats.ssl_handshake.inc();
                    on_connected();
                    return;
                  }
                  if (in_tls) stats.ssl_connection_error.inc();
                  if (upstream::OutlierDetector* od = cluster.info().outlier()) {
                    od->report(*upstream_->host(), 503, cluster.lb().hosts().size());
                  }
                  stats.upstream_cx_connect_fail.inc();
                  if (ec == asio::error::timed_out) stats.upstream_cx_connect_timeout.inc();
                  spdlog::debug("tcp_proxy {}: {} to {} failed: {}", config_->config.stat_prefix,
                                in_tls ? "TLS handshake" : "connect", upstream_->host()->address,
                                ec.message());
                  if (connect_attempts_ < config_->config.max_connect_attempts) {
                    connect(cluster);
                  } else {
                    upstream_.reset();
                    info_->set_flag(kUpstreamConnectionFailure);
                    finish(false);
                  }
                });
}

void TcpProxySession::on_connected() {
  if (upstream::OutlierDetector* od = cluster_->info().outlier()) {
    od->report(*upstream_->host(), 200, cluster_->lb().hosts().size());
  }
  upstream_->conn().enable_half_close();
  upstream_->conn().start_reading();
  downstream_->start_reading();
  if (config_->config.idle_timeout.count() > 0)
    idle_timer_.expires_after(config_->config.idle_timeout);
}

net::Connection& TcpProxySession::other(bool upstream_side) {
  return upstream_side ? *downstream_ : upstream_->conn();
}

void TcpProxySession::on_data(bool from_upstream, const char* data, size_t len) {
  if (finished_) return;
  auto& st = config_->stats;
  auto& cluster_stats = cluster_->info().stats();
  if (from_upstream) {
    st.downstream_cx_tx_bytes_total.inc(len);
    cluster_stats.upstream_cx_rx_bytes_total.inc(len);
    info_->bytes_sent += len;
  } else {
    st.downstream_cx_rx_bytes_total.inc(len);
    cluster_stats.upstream_cx_tx_bytes_total.inc(len);
    info_->bytes_received += len;
  }
  other(from_upstream).write(std::string_view(data, len));
  if (config_->config.idle_timeout.count() > 0)
    idle_timer_.expires_after(config_->config.idle_timeout);
}

// A side's write buffer is over its limit: stop reading the side that fills it.
void TcpProxySession::Side::on_above_write_high_watermark() {
  TcpProxySession& s = session;
  if (s.finished_ || !s.upstream_) return;
  if (is_upstream) {
    s.config_->stats.downstream_flow_control_paused_reading_total.inc();
    s.downstream_->read_disable(true);
  } else {
    s.cluster_->info().stats().upstream_flow_control_paused_reading_total.inc();
    s.upstream_->conn().read_disable(true);
  }
}

void TcpProxySession::Side::on_below_write_low_watermark() {
  TcpProxySession& s = session;
  if (s.finished_ || !s.upstream_) return;
  if (is_upstream) {
    s.config_->stats.downstream_flow_control_resumed_reading_total.inc();
    s.downstream_->read_disable(false);
  } else {
    s.cluster_->info().stats().upstream_flow_control_resumed_reading_total.inc();
    s.upstream_->conn().read_disable(false);
  }
}

void TcpProxySession::Side::on_read(const char* data, size_t len) {
  session.on_data(is_upstream, data, len);
}
void TcpProxySession::Side::on_close(net::CloseReason reason) {
  session.on_peer_closed(is_upstream, reason);
}
void TcpProxySession::Side::on_end_of_stream() { session.on_eof(is_upstream); }

// One side sent its FIN: pass it on once what it sent is written; the other direction goes on.
void TcpProxySession::on_eof(bool upstream_side) {
  if (finished_) return;
  (upstream_side ? upstream_eof_ : downstream_eof_) = true;
  other(upstream_side).shutdown_write();
  if (downstream_eof_ && upstream_eof_) finish(true);
}

// One side is gone (reset, error, or a close without half-close): the other gets what is still
// buffered for it, then closes.
void TcpProxySession::on_peer_closed(bool upstream_side, net::CloseReason reason) {
  if (finished_) return;
  if (upstream_side) {
    if (reason == net::CloseReason::RemoteClose) {
      cluster_->info().stats().upstream_cx_destroy_remote.inc();
    }
  }
  finish(true);
}

void TcpProxySession::on_idle_timeout() {
  if (finished_) return;
  config_->stats.idle_timeout.inc();
  finish(false);
}

void TcpProxySession::close_now() { finish(false); }

void TcpProxySession::finish(bool flush) {
  if (finished_) return;
  finished_ = true;
  idle_timer_.cancel();
  info_->last_downstream_tx_byte =
      std::chrono::steady_clock::now();  // %DURATION%: the whole session
  for (const auto& log : config_->access_logs) log->log(*info_);
  downstream_->set_callbacks(nullptr);
  downstream_->close(flush);
  if (upstream_) {
    net::Connection& up = upstream_->conn();
    up.set_callbacks(nullptr);
    if (flush && up.write_buffered() > 0) {
      // The upstream connection (and its pool slot) ends when its last bytes are out.
      auto& st = config_->stats;
      st.upstream_flush_total.inc();
      st.upstream_flush_active.inc();
      up.set_close_hook([this, alive = alive_] {
        if (!*alive) return;
        config_->stats.upstream_flush_active.dec();
        // Not from inside the connection's own close: release on a later turn.
        asio::post(owner_.loop(), [this, alive] {
          if (!*alive) return;
          upstream_.reset();
          owner_.tcp_session_closed(this);
        });
      });
      up.close(true);
      return;
    }
    upstream_.reset();
  }
  owner_.tcp_session_closed(this);
}

}  // namespace sluice::tcp
