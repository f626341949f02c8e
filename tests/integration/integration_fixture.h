// The fixture shared by the integration tests: one scripted upstream and one in-process proxy per
// test. Members are destroyed in reverse order, so the proxy stops before the upstream.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "http_client_util.h"
#include "proxy_harness_util.h"
#include "test_upstream_util.h"

namespace sluice::testing {

// A cluster's extra YAML (ClusterYaml's `cluster_extra`) that turns on HTTP/1 trailers upstream.
inline constexpr char kClusterTrailers[] =
    "typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: "
    "{\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, "
    "explicit_http_config: {http_protocol_options: {enable_trailers: true}}}}";

class IntegrationFixture : public ::testing::Test {
 protected:
  // Starts the proxy with one cluster (`cluster_`) on the test upstream, a catch-all route to it
  // with `route_extra` in its action, and `hcm_extra` in the connection manager.
  void StartSimple(std::string_view route_extra = "", std::string_view hcm_extra = "",
                   std::string_view cluster_extra = "", uint32_t concurrency = 2) {
    StartProxy(
        ProxyYaml(prefix_, CatchAllRoutes(cluster_, route_extra),
                  "[" + ClusterYaml(cluster_, upstream_.port(), cluster_extra) + "]", hcm_extra),
        std::chrono::seconds(5), concurrency);
  }
  void StartProxy(const std::string& yaml,
                  std::chrono::seconds drain_time = std::chrono::seconds(5),
                  uint32_t concurrency = 2) {
    const std::string error = proxy_.Start(yaml, drain_time, concurrency);
    ASSERT_EQ(error, "");
  }
  // "cluster.<cluster_>.<stat>" / "http.<prefix_>.<stat>".
  int64_t ClusterStat(std::string_view stat) const {
    return StatValue("cluster." + cluster_ + "." + std::string(stat));
  }
  int64_t ClusterStatFor(std::string_view cluster, std::string_view stat) const {
    return StatValue("cluster." + std::string(cluster) + "." + std::string(stat));
  }
  int64_t HcmStat(std::string_view stat) const {
    return StatValue("http." + prefix_ + "." + std::string(stat));
  }

  // Some counters move just after the response bytes are written (the stream finishes after its
  // last write): poll instead of racing the worker thread.
  bool WaitForStat(const std::string& name, int64_t value,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (StatValue(name) != value) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // Once every client is gone, no request, stream or connection may still be accounted as active
  // (a leaked circuit-breaker slot or gauge would show here).
  void ExpectQuiescent() const {
    for (const std::string& name :
         {"http." + prefix_ + ".downstream_cx_active", "http." + prefix_ + ".downstream_rq_active",
          "cluster." + cluster_ + ".upstream_rq_active",
          "cluster." + cluster_ + ".upstream_rq_pending_active"}) {
      EXPECT_TRUE(WaitForStat(name, 0)) << name << " = " << StatValue(name);
    }
  }

  // Unique per test run: stats are process-wide and never forgotten.
  const std::string cluster_ = UniqueName("it_cluster");
  const std::string prefix_ = UniqueName("it_hcm");
  TestUpstream upstream_;
  ProxyHarness proxy_;
};

}  // namespace sluice::testing
