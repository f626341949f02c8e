// Active health checks and outlier detection in process (so the sanitizer pass covers the
// checker's probes and the workers' reports): a host passing its HTTP check is brought in, one
// failing it stays out (panic routing still reaches it), and a host answering 5xx is ejected.
#include <chrono>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using std::chrono::seconds;

class IntegrationEndpointHealth : public IntegrationFixture {
 protected:
  bool WaitHealthy(int64_t n) {
    return WaitForStat("cluster." + cluster_ + ".health_check.healthy", n, seconds(10));
  }
  bool WaitAtLeast(std::string_view stat, int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (ClusterStat(stat) < n) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
};

TEST_F(IntegrationEndpointHealth, HttpCheckBringsTheHostIn) {
  StartSimple("", "",
              "health_checks: [{timeout: 1s, interval: 0.05s, unhealthy_threshold: 1, "
              "healthy_threshold: 1, http_health_check: {path: /echo/hc}}]");
  ASSERT_TRUE(WaitHealthy(1));
  EXPECT_GE(upstream_.requests_for("/echo/hc"), 1u);
  const auto last = upstream_.last_request();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last->header("user-agent"), "Envoy/HC");
  EXPECT_EQ(*last->header("host"), cluster_);
  HttpClient client(proxy_.port());
  EXPECT_EQ(client.Get("/echo/x").status, 200);
  EXPECT_GE(ClusterStat("health_check.success"), 1);
}

TEST_F(IntegrationEndpointHealth, FailingCheckKeepsTheHostUnhealthy) {
  StartSimple("", "",
              "health_checks: [{timeout: 1s, interval: 0.05s, unhealthy_threshold: 1, "
              "healthy_threshold: 1, http_health_check: {path: /status/503}}]");
  ASSERT_TRUE(WaitAtLeast("health_check.failure", 3));
  EXPECT_EQ(ClusterStat("health_check.healthy"), 0);
  EXPECT_EQ(ClusterStat("membership_healthy"), 0);
  // The only host is unhealthy: panic routing still sends the request there (as Envoy).
  HttpClient client(proxy_.port());
  EXPECT_EQ(client.Get("/echo/x").status, 200);
  EXPECT_GE(ClusterStat("lb_healthy_panic"), 1);
}

TEST_F(IntegrationEndpointHealth, OutlierEjectsAfterConsecutive5xx) {
  StartSimple("", "",
              "outlier_detection: {consecutive_5xx: 2, interval: 0.05s, base_ejection_time: 60s}",
              /*concurrency=*/1);
  HttpClient client(proxy_.port());
  EXPECT_EQ(client.Get("/status/500").status, 500);
  EXPECT_EQ(ClusterStat("outlier_detection.ejections_active"), 0);
  EXPECT_EQ(client.Get("/status/502").status, 502);
  EXPECT_EQ(ClusterStat("outlier_detection.ejections_enforced_total"), 1);
  EXPECT_EQ(ClusterStat("outlier_detection.ejections_active"), 1);
}

}  // namespace
}  // namespace sluice::testing
