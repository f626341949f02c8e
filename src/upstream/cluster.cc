#include "upstream/cluster.h"

#include <algorithm>

#include "common/strings.h"

#include "net/connection.h"

namespace sluice::upstream {

ClusterStats::ClusterStats(std::string_view c) {
  auto& s = stats::Store::instance();
  auto counter = [&](std::string_view n) { return s.counter(stats::cluster_stat(c, n)); };
  auto gauge = [&](std::string_view n) { return s.gauge(stats::cluster_stat(c, n)); };
  upstream_cx_total = counter("upstream_cx_total");
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
  ssl_connection_error = counter("ssl.connection_error");
  upstream_flow_control_paused_reading_total =
      counter("upstream_flow_control_paused_reading_total");
  upstream_flow_control_resumed_reading_total =
      counter("upstream_flow_control_resumed_reading_total");
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

LoadBalancer::LoadBalancer(config::Cluster::LbPolicy policy, uint64_t seed)
    : policy_(policy), rng_(seed) {}

void LoadBalancer::set_hosts(HostSet hosts) {
  hosts_ = std::move(hosts);
  active_requests_.assign(hosts_.size(), 0);
  current_weight_.assign(hosts_.size(), 0);
  total_weight_ = 0;
  for (const auto& h : hosts_) total_weight_ += h->weight;
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
  if (n == 1) return hosts_[0].get();
  const size_t excluded = exclude ? index_of(exclude) : n;
  switch (policy_) {
    case config::Cluster::LbPolicy::RoundRobin: {
      size_t best = n;
      for (size_t i = 0; i < n; ++i) {
        current_weight_[i] += hosts_[i]->weight;
        if (i != excluded && (best == n || current_weight_[i] > current_weight_[best])) best = i;
      }
      current_weight_[best] -= total_weight_;
      return hosts_[best].get();
    }
    case config::Cluster::LbPolicy::LeastRequest: {
      // Power of two choices, as Envoy's default (choice_count 2).
      std::uniform_int_distribution<size_t> dist(0, n - 1);
      size_t a = dist(rng_), b = dist(rng_);
      if (a == excluded) a = (a + 1) % n;
      if (b == excluded) b = (b + 1) % n;
      return hosts_[active_requests_[a] <= active_requests_[b] ? a : b].get();
    }
    case config::Cluster::LbPolicy::Random: {
      std::uniform_int_distribution<size_t> dist(0, n - 1);
      size_t i = dist(rng_);
      if (i == excluded) i = (i + 1) % n;
      return hosts_[i].get();
    }
  }
  return hosts_[0].get();
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
