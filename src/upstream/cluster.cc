#include "upstream/cluster.h"

#include <algorithm>

#include "common/strings.h"
#include "upstream/outlier_detector.h"

#include "net/connection.h"

namespace sluice::upstream {

ClusterStats::ClusterStats(std::string_view c) {
  auto& s = stats::Store::instance();
  auto counter = [&](std::string_view n) { return s.counter(stats::cluster_stat(c, n)); };
  auto gauge = [&](std::string_view n) { return s.gauge(stats::cluster_stat(c, n)); };
  upstream_cx_total = counter("upstream_cx_total");
  upstream_cx_http1_total = counter("upstream_cx_http1_total");
  upstream_cx_http2_total = counter("upstream_cx_http2_total");
  upstream_cx_connect_fail = counter("upstream_cx_connect_fail");
  upstream_cx_connect_timeout = counter("upstream_cx_connect_timeout");
  upstream_cx_destroy_remote = counter("upstream_cx_destroy_remote");
  upstream_cx_destroy_local = counter("upstream_cx_destroy_local");
  upstream_cx_overflow = counter("upstream_cx_overflow");
  upstream_rq_total = counter("upstream_rq_total");
  upstream_rq_completed = counter("upstream_rq_completed");
  upstream_rq_timeout = counter("upstream_rq_timeout");
  upstream_rq_per_try_timeout = counter("upstream_rq_per_try_timeout");
  upstream_rq_retry = counter("upstream_rq_retry");
  upstream_rq_retry_success = counter("upstream_rq_retry_success");
  upstream_rq_retry_overflow = counter("upstream_rq_retry_overflow");
  upstream_rq_pending_overflow = counter("upstream_rq_pending_overflow");
  upstream_rq_pending_total = counter("upstream_rq_pending_total");
  upstream_rq_rx_reset = counter("upstream_rq_rx_reset");
  upstream_rq_tx_reset = counter("upstream_rq_tx_reset");
  upstream_cx_protocol_error = counter("upstream_cx_protocol_error");
  upstream_cx_rx_bytes_total = counter("upstream_cx_rx_bytes_total");
  upstream_cx_tx_bytes_total = counter("upstream_cx_tx_bytes_total");
  upstream_cx_none_healthy = counter("upstream_cx_none_healthy");
  update_attempt = counter("update_attempt");
  ssl_handshake = counter("ssl.handshake");
  ssl_session_reused = counter("ssl.session_reused");
  ssl_connection_error = counter("ssl.connection_error");
  upstream_flow_control_paused_reading_total =
      counter("upstream_flow_control_paused_reading_total");
  upstream_flow_control_resumed_reading_total =
      counter("upstream_flow_control_resumed_reading_total");
  lb_healthy_panic = counter("lb_healthy_panic");
  health_check_attempt = counter("health_check.attempt");
  health_check_success = counter("health_check.success");
  health_check_failure = counter("health_check.failure");
  health_check_network_failure = counter("health_check.network_failure");
  health_check_healthy = gauge("health_check.healthy");
  outlier_ejections_enforced_total = counter("outlier_detection.ejections_enforced_total");
  outlier_ejections_enforced_consecutive_5xx =
      counter("outlier_detection.ejections_enforced_consecutive_5xx");
  outlier_ejections_detected_consecutive_5xx =
      counter("outlier_detection.ejections_detected_consecutive_5xx");
  outlier_ejections_overflow = counter("outlier_detection.ejections_overflow");
  outlier_ejections_active = gauge("outlier_detection.ejections_active");
  update_success = counter("update_success");
  update_failure = counter("update_failure");
  for (int i = 0; i < 5; ++i) {
    upstream_rq_xx[i] = s.counter(
        stats::response_class_stat(stats::cluster_stat(c, str_cat("upstream_rq_", i + 1, "xx")),
                                   "cluster.upstream_rq_xx", i + 1));
  }
  upstream_cx_active = gauge("upstream_cx_active");
  upstream_rq_active = gauge("upstream_rq_active");
  upstream_rq_pending_active = gauge("upstream_rq_pending_active");
  membership_total = gauge("membership_total");
  membership_healthy = gauge("membership_healthy");
  upstream_rq_time = s.histogram(stats::cluster_stat(c, "upstream_rq_time"));
  upstream_cx_connect_ms = s.histogram(stats::cluster_stat(c, "upstream_cx_connect_ms"));
}

ClusterInfo::ClusterInfo(const config::Cluster& config) : config_(config), stats_(config.name) {}
ClusterInfo::~ClusterInfo() = default;

void ClusterInfo::set_outlier(std::unique_ptr<OutlierDetector> outlier) {
  outlier_ = std::move(outlier);
}

LoadBalancer::LoadBalancer(config::Cluster::LbPolicy policy, uint64_t seed)
    : policy_(policy), rng_(seed) {}

void LoadBalancer::set_hosts(HostSet hosts) {
  hosts_ = std::move(hosts);
  active_requests_.assign(hosts_.size(), 0);
  current_weight_.assign(hosts_.size(), 0);
  eligible_.reserve(hosts_.size());
}

size_t LoadBalancer::index_of(const Host* h) const {
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i].get() == h) return i;
  }
  return hosts_.size();
}

const Host* LoadBalancer::choose(const Host* exclude) {
  const size_t n = hosts_.size();
  if (n == 0) return nullptr;
  // The candidates: healthy hosts, or all of them in panic; then without `exclude` when another
  // candidate remains.
  eligible_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (hosts_[i]->healthy()) eligible_.push_back(i);
  }
  if (eligible_.size() * 2 < n) {
    panic_counter_.inc();
    eligible_.clear();
    for (size_t i = 0; i < n; ++i) eligible_.push_back(i);
  }
  if (eligible_.size() > 1 && exclude) {
    const size_t excluded = index_of(exclude);
    eligible_.erase(std::remove(eligible_.begin(), eligible_.end(), excluded), eligible_.end());
  }
  if (eligible_.size() == 1) return hosts_[eligible_[0]].get();
  switch (policy_) {
    case config::Cluster::LbPolicy::RoundRobin: {
      // Smooth weighted round robin over the candidates.
      size_t best = n;
      int64_t total = 0;
      for (size_t i : eligible_) {
        current_weight_[i] += hosts_[i]->weight;
        total += hosts_[i]->weight;
        if (best == n || current_weight_[i] > current_weight_[best]) best = i;
      }
      current_weight_[best] -= total;
      return hosts_[best].get();
    }
    case config::Cluster::LbPolicy::LeastRequest: {
      // Power of two choices, as Envoy's default (choice_count 2).
      std::uniform_int_distribution<size_t> dist(0, eligible_.size() - 1);
      const size_t a = eligible_[dist(rng_)], b = eligible_[dist(rng_)];
      return hosts_[active_requests_[a] <= active_requests_[b] ? a : b].get();
    }
    case config::Cluster::LbPolicy::Random: {
      std::uniform_int_distribution<size_t> dist(0, eligible_.size() - 1);
      return hosts_[eligible_[dist(rng_)]].get();
    }
  }
  return hosts_[eligible_[0]].get();
}

void LoadBalancer::request_started(const Host* h) {
  if (size_t i = index_of(h); i < hosts_.size()) ++active_requests_[i];
}

void LoadBalancer::request_finished(const Host* h) {
  if (size_t i = index_of(h); i < hosts_.size() && active_requests_[i] > 0) --active_requests_[i];
}

HostSet resolve_hosts(const config::Cluster& cluster, std::string* error) {
  HostSet out;
  asio::io_context ctx;
  asio::ip::tcp::resolver resolver(ctx);
  for (const auto& ep : cluster.endpoints) {
    asio::error_code ec;
    const auto addr = asio::ip::make_address(ep.address.address, ec);
    if (!ec) {
      auto h = std::make_shared<Host>();
      h->endpoint = asio::ip::tcp::endpoint(addr, ep.address.port);
      h->address = net::endpoint_to_string(h->endpoint);
      h->weight = ep.load_balancing_weight;
      out.push_back(std::move(h));
      continue;
    }
    if (cluster.type == config::Cluster::Type::Static) {
      if (error) *error = str_cat("'", ep.address.address, "' is not an IP address");
      continue;
    }
    auto results = resolver.resolve(asio::ip::tcp::v4(), ep.address.address,
                                    std::to_string(ep.address.port), ec);
    if (ec) {
      if (error) {
        *error = str_cat("cannot resolve '", ep.address.address, "': ", ec.message());
      }
      continue;
    }
    for (const auto& r : results) {
      auto h = std::make_shared<Host>();
      h->endpoint = r.endpoint();
      h->address = net::endpoint_to_string(h->endpoint);
      h->weight = ep.load_balancing_weight;
      out.push_back(std::move(h));
      if (cluster.type == config::Cluster::Type::LogicalDns) break;
    }
  }
  return out;
}

}  // namespace sluice::upstream
