// Clusters: the process-wide part (config, stats, circuit-breaker counters, the current host set)
// and the per-worker part (load-balancer state, per-host request counts). Host sets change on the
// main thread (DNS) and reach workers by a post to their loop, so workers read them without locks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <asio.hpp>

#include "common/stats.h"
#include "config/bootstrap.h"
#include "net/tls.h"

namespace sluice::upstream {

struct Host {
  std::string address;  // "ip:port", as %UPSTREAM_HOST% prints it
  asio::ip::tcp::endpoint endpoint;
  uint32_t weight = 1;

  // Health, shared by every worker: Envoy's health flags. The main thread's active health checker
  // sets and clears kFailedActiveHc; outlier detection sets kFailedOutlierCheck from the worker
  // that saw the failures, and the main thread clears it when the ejection time is up.
  static constexpr uint32_t kFailedActiveHc = 1;
  static constexpr uint32_t kFailedOutlierCheck = 2;
  mutable std::atomic<uint32_t> health_flags{0};
  bool healthy() const { return health_flags.load(std::memory_order_relaxed) == 0; }
  // Outlier detection: consecutive 5xx so far, times ejected, and until when (steady clock, ms).
  mutable std::atomic<uint32_t> consecutive_5xx{0};
  mutable std::atomic<uint32_t> ejections{0};
  mutable std::atomic<int64_t> ejected_until_ms{0};
};
using HostSet = std::vector<std::shared_ptr<const Host>>;

struct ClusterStats {
  explicit ClusterStats(std::string_view cluster);
  stats::Counter upstream_cx_total, upstream_cx_connect_fail, upstream_cx_connect_timeout,
      upstream_cx_destroy_remote, upstream_cx_destroy_local, upstream_cx_overflow,
      upstream_rq_total, upstream_rq_completed, upstream_rq_timeout, upstream_rq_per_try_timeout,
      upstream_rq_retry, upstream_rq_retry_success, upstream_rq_retry_overflow,
      upstream_rq_pending_overflow, upstream_rq_pending_total, upstream_rq_rx_reset,
      upstream_rq_tx_reset, upstream_cx_protocol_error, upstream_cx_rx_bytes_total,
      upstream_cx_tx_bytes_total, upstream_cx_none_healthy, update_attempt, update_success,
      update_failure, ssl_handshake, ssl_session_reused, ssl_connection_error,
      upstream_flow_control_paused_reading_total, upstream_flow_control_resumed_reading_total,
      upstream_cx_http1_total, upstream_cx_http2_total, lb_healthy_panic, health_check_attempt,
      health_check_success, health_check_failure, health_check_network_failure,
      outlier_ejections_enforced_total, outlier_ejections_enforced_consecutive_5xx,
      outlier_ejections_detected_consecutive_5xx, outlier_ejections_overflow;
  stats::Counter upstream_rq_xx[5];  // 1xx..5xx
  stats::Gauge upstream_cx_active, upstream_rq_active, upstream_rq_pending_active, membership_total,
      membership_healthy, health_check_healthy, outlier_ejections_active;
  stats::Histogram upstream_rq_time, upstream_cx_connect_ms;
};

class OutlierDetector;

// Shared by all workers. Circuit-breaker counters are process-wide, as in Envoy.
class ClusterInfo {
 public:
  explicit ClusterInfo(const config::Cluster& config);
  ~ClusterInfo();
  const config::Cluster& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  ClusterStats& stats() { return stats_; }
  // The client TLS context of a cluster with an UpstreamTlsContext (null: plain TCP). Read once
  // per new upstream connection; replaced from the main thread when its files are reloaded.
  std::shared_ptr<net::TlsClientContext> tls() const {
    return tls_.load(std::memory_order_acquire);
  }
  void set_tls(std::shared_ptr<net::TlsClientContext> tls) {
    tls_.store(std::move(tls), std::memory_order_release);
  }
  // Outlier detection (null when the cluster has none). Set once before workers start.
  OutlierDetector* outlier() const { return outlier_.get(); }
  void set_outlier(std::unique_ptr<OutlierDetector> outlier);

  // Circuit breakers: try_acquire_* fails when the threshold is reached.
  bool try_acquire_connection() {
    return try_acquire(active_connections_, config_.circuit_breakers.max_connections);
  }
  // Past the limit: a worker with no connection at all to a host opens one anyway (as Envoy's
  // pools do), so a request waiting in that worker always has a connection that will free up.
  void force_acquire_connection() { active_connections_.fetch_add(1, std::memory_order_relaxed); }
  void release_connection() { active_connections_.fetch_sub(1, std::memory_order_relaxed); }
  bool try_acquire_request() {
    return try_acquire(active_requests_, config_.circuit_breakers.max_requests);
  }
  void release_request() { active_requests_.fetch_sub(1, std::memory_order_relaxed); }
  bool try_acquire_pending() {
    return try_acquire(pending_requests_, config_.circuit_breakers.max_pending_requests);
  }
  void release_pending() { pending_requests_.fetch_sub(1, std::memory_order_relaxed); }
  bool try_acquire_retry() {
    return try_acquire(active_retries_, config_.circuit_breakers.max_retries);
  }
  void release_retry() { active_retries_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  static bool try_acquire(std::atomic<uint32_t>& counter, uint32_t limit) {
    if (counter.fetch_add(1, std::memory_order_relaxed) >= limit) {
      counter.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  const config::Cluster& config_;
  ClusterStats stats_;
  std::atomic<std::shared_ptr<net::TlsClientContext>> tls_;
  std::unique_ptr<OutlierDetector> outlier_;
  std::atomic<uint32_t> active_connections_{0}, active_requests_{0}, pending_requests_{0},
      active_retries_{0};
};

// Picks hosts for one worker. Not thread-safe: each worker has its own.
class LoadBalancer {
 public:
  LoadBalancer(config::Cluster::LbPolicy policy, uint64_t seed);
  void set_hosts(HostSet hosts);
  const HostSet& hosts() const { return hosts_; }
  // nullptr when there is no host. `exclude` (may be null) is avoided when another host exists
  // (retries go elsewhere). Unhealthy hosts are skipped unless fewer than half of the hosts are
  // healthy (Envoy's panic threshold, 50%): then every host is used and lb_healthy_panic counts.
  const Host* choose(const Host* exclude = nullptr);
  void set_panic_counter(stats::Counter c) { panic_counter_ = c; }
  // LEAST_REQUEST bookkeeping.
  void request_started(const Host* h);
  void request_finished(const Host* h);

 private:
  size_t index_of(const Host* h) const;
  config::Cluster::LbPolicy policy_;
  HostSet hosts_;
  std::vector<uint32_t> active_requests_;
  // Smooth weighted round robin (nginx's algorithm): even spread, honours weights.
  std::vector<int64_t> current_weight_;
  std::mt19937_64 rng_;
  std::vector<size_t> eligible_;  // reused by choose(): no allocation per request
  stats::Counter panic_counter_;
};

// Resolves endpoints of a cluster into hosts. STATIC: parses IP literals; STRICT_DNS: every address
// of every endpoint; LOGICAL_DNS: the first address. Blocking (getaddrinfo): call on the main
// thread.
HostSet resolve_hosts(const config::Cluster& cluster, std::string* error);

}  // namespace sluice::upstream
