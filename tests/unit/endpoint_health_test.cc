// Endpoint health in the load balancer (unhealthy hosts skipped, Envoy's 50% panic threshold),
// outlier detection's consecutive_5xx ejections, and the health check / outlier config.
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_join.h"
#include "config/loader.h"
#include "upstream/cluster.h"
#include "upstream/outlier_detector.h"

namespace sluice::upstream {
namespace {

HostSet MakeHosts(int n) {
  HostSet hosts;
  for (int i = 0; i < n; ++i) {
    auto h = std::make_shared<Host>();
    h->endpoint = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                          static_cast<uint16_t>(1000 + i));
    h->address = "127.0.0.1:" + std::to_string(1000 + i);
    hosts.push_back(std::move(h));
  }
  return hosts;
}

std::set<const Host*> Picks(LoadBalancer& lb, int n, const Host* exclude = nullptr) {
  std::set<const Host*> seen;
  for (int i = 0; i < n; ++i) seen.insert(lb.choose(exclude));
  return seen;
}

class LoadBalancerHealth : public ::testing::TestWithParam<config::Cluster::LbPolicy> {};

TEST_P(LoadBalancerHealth, SkipsUnhealthyHostsUntilPanic) {
  HostSet hosts = MakeHosts(4);
  LoadBalancer lb(GetParam(), 42);
  lb.set_hosts(hosts);
  EXPECT_EQ(Picks(lb, 200).size(), 4u);

  hosts[1]->health_flags = Host::kFailedActiveHc;
  auto seen = Picks(lb, 200);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen.count(hosts[1].get()));

  // Exactly half healthy: still no panic.
  hosts[2]->health_flags = Host::kFailedOutlierCheck;
  seen = Picks(lb, 200);
  EXPECT_EQ(seen, (std::set<const Host*>{hosts[0].get(), hosts[3].get()}));
  // A retry avoids the host it tried, among the healthy ones.
  EXPECT_EQ(Picks(lb, 50, hosts[0].get()), std::set<const Host*>{hosts[3].get()});

  // Fewer than half healthy: panic, every host is used.
  hosts[3]->health_flags = Host::kFailedActiveHc;
  EXPECT_EQ(Picks(lb, 400).size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(Policies, LoadBalancerHealth,
                         ::testing::Values(config::Cluster::LbPolicy::RoundRobin,
                                           config::Cluster::LbPolicy::LeastRequest,
                                           config::Cluster::LbPolicy::Random));

config::OutlierDetection Od(uint32_t consecutive, uint32_t max_percent) {
  config::OutlierDetection od;
  od.consecutive_5xx = consecutive;
  od.max_ejection_percent = max_percent;
  od.base_ejection_time = std::chrono::milliseconds(0);  // over at once: sweep() un-ejects
  return od;
}

TEST(OutlierDetector, EjectsAfterConsecutive5xxAndASuccessResets) {
  ClusterStats stats("unit_outlier_a");
  OutlierDetector od(Od(3, 100), stats);
  HostSet hosts = MakeHosts(2);
  const Host& h = *hosts[0];
  od.report(h, 503, 2);
  od.report(h, 500, 2);
  od.report(h, 200, 2);  // the streak starts again
  od.report(h, 502, 2);
  od.report(h, 503, 2);
  EXPECT_TRUE(h.healthy());
  od.report(h, 504, 2);
  EXPECT_FALSE(h.healthy());
  EXPECT_EQ(h.ejections.load(), 1u);
  EXPECT_EQ(stats.outlier_ejections_enforced_total.value(), 1u);
  EXPECT_EQ(od.sweep(hosts), 1u);
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.consecutive_5xx.load(), 0u);
}

TEST(OutlierDetector, MaxEjectionPercentAllowsAtLeastOne) {
  ClusterStats stats("unit_outlier_b");
  OutlierDetector od(Od(1, 10), stats);  // 10% of 3 hosts rounds to 0: one is still allowed
  HostSet hosts = MakeHosts(3);
  od.report(*hosts[0], 503, 3);
  od.report(*hosts[1], 503, 3);
  EXPECT_FALSE(hosts[0]->healthy());
  EXPECT_TRUE(hosts[1]->healthy());
  EXPECT_EQ(stats.outlier_ejections_overflow.value(), 1u);
  od.host_removed(*hosts[0]);  // its slot comes back
  hosts[1]->consecutive_5xx = 0;
  od.report(*hosts[1], 503, 3);
  EXPECT_FALSE(hosts[1]->healthy());
}

TEST(OutlierDetector, NotEnforcedWhenEnforcingIsZero) {
  ClusterStats stats("unit_outlier_c");
  config::OutlierDetection cfg = Od(1, 100);
  cfg.enforcing_consecutive_5xx = 0;
  OutlierDetector od(cfg, stats);
  HostSet hosts = MakeHosts(1);
  od.report(*hosts[0], 503, 1);
  EXPECT_TRUE(hosts[0]->healthy());
  EXPECT_EQ(stats.outlier_ejections_detected_consecutive_5xx.value(), 1u);
}

std::string Describe(const std::vector<config::Diagnostic>& diags) {
  std::vector<std::string> lines;
  for (const auto& d : diags) lines.push_back(d.to_string());
  return absl::StrJoin(lines, "\n");
}

TEST(HealthConfig, ParsesHealthChecksAndOutlierDetection) {
  auto r = config::load_from_string(R"(static_resources:
  clusters:
  - name: c
    load_assignment: {cluster_name: c}
    health_checks:
    - timeout: 2s
      interval: 5s
      unhealthy_threshold: 4
      healthy_threshold: 1
      interval_jitter: 1s
      http_health_check: {path: /healthz, host: svc.local, codec_client_type: HTTP1, expected_statuses: [{start: 200, end: 300}]}
    outlier_detection: {consecutive_5xx: 7, interval: 1s, base_ejection_time: 10s, max_ejection_percent: 50}
)");
  ASSERT_TRUE(r.ok()) << Describe(r.errors);
  const auto& c = r.bootstrap->clusters[0];
  ASSERT_TRUE(c.health_check);
  EXPECT_EQ(c.health_check->kind, config::HealthCheck::Kind::Http);
  EXPECT_EQ(c.health_check->path, "/healthz");
  EXPECT_EQ(c.health_check->host, "svc.local");
  EXPECT_EQ(c.health_check->timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c.health_check->unhealthy_threshold, 4u);
  EXPECT_EQ(c.health_check->expected_statuses,
            (std::vector<std::pair<uint32_t, uint32_t>>{{200, 300}}));
  ASSERT_TRUE(c.outlier_detection);
  EXPECT_EQ(c.outlier_detection->consecutive_5xx, 7u);
  EXPECT_EQ(c.outlier_detection->base_ejection_time, std::chrono::milliseconds(10000));
  EXPECT_EQ(c.outlier_detection->max_ejection_percent, 50u);
}

TEST(HealthConfig, Errors) {
  auto r = config::load_from_string(R"(static_resources:
  clusters:
  - name: c
    load_assignment: {cluster_name: c}
    health_checks:
    - {interval: 1s, http_health_check: {codec_client_type: HTTP2}, tcp_health_check: {send: {text: "00"}}}
    - {timeout: 1s, interval: 1s, grpc_health_check: {}}
    outlier_detection: {consecutive_gateway_failure: 3}
)");
  const std::string hc = "static_resources.clusters[0].health_checks[0]";
  auto has = [&](const std::string& path, const std::string& msg) {
    for (const auto& d : r.errors) {
      if (d.path == path && d.message.find(msg) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has(hc + ".timeout", "missing required field")) << Describe(r.errors);
  EXPECT_TRUE(has(hc, "exactly one of http_health_check, tcp_health_check")) << Describe(r.errors);
  EXPECT_TRUE(has(hc + ".http_health_check.path", "missing required field")) << Describe(r.errors);
  EXPECT_TRUE(has(hc + ".tcp_health_check.send", "not supported")) << Describe(r.errors);
  // Envoy's default codec (HTTP1, accepted above) is the only one the health checker speaks.
  EXPECT_TRUE(has(hc + ".http_health_check.codec_client_type", "\"HTTP2\" is not supported yet"))
      << Describe(r.errors);
  EXPECT_TRUE(has("static_resources.clusters[0].health_checks", "only one health check"))
      << Describe(r.errors);
  EXPECT_TRUE(has("static_resources.clusters[0].outlier_detection.consecutive_gateway_failure",
                  "not supported yet"))
      << Describe(r.errors);
}

}  // namespace
}  // namespace sluice::upstream
