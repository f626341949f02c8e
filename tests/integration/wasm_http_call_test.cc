// Proxy-Wasm HTTP callouts (proxy_http_call) through the real proxy, on V8 and null: the
// http_auth example extension pauses each request, asks an authorization service (a cluster by
// name) and resumes or answers; plus the hostile cases: a dead or slow service, an unknown
// cluster, a client that leaves while its callout is in flight, and the bound on outstanding
// callouts.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"
#include "wasm/context.h"

namespace sluice::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

class WasmHttpCall : public IntegrationFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  void TearDown() override { wasm::set_max_outstanding_http_calls(1024); }

  // `auth_port`: where the "auth" cluster points; `config`: the plugin's configuration lines.
  void Start(uint16_t auth_port, std::string_view config, uint32_t concurrency = 2) {
    const std::string yaml = WithHttpFilter(
        ProxyYaml(prefix_, CatchAllRoutes(cluster_, route_extra_),
                  "[" + ClusterYaml(cluster_, upstream_.port(), "") + ", " +
                      ClusterYaml("auth", auth_port, "") + "]"),
        WasmFilterYaml("http_auth", "http_auth", GetParam(), SLUICE_EXTENSIONS_DIR, config));
    StartProxy(yaml, seconds(5), concurrency);
  }
  std::string route_extra_;

  void StartWithRouteTimeout(std::string_view config, std::string_view route_timeout) {
    route_extra_ = fmt::format("timeout: {}", route_timeout);
    Start(upstream_.port(), config);
  }
  void StartWithAuth(std::string_view extra = "") {
    Start(upstream_.port(), fmt::format("cluster = auth\\npath = /auth-check{}", extra));
  }
};

TEST_P(WasmHttpCall, GoodTokenPassesWithTheServicesHeader) {
  StartWithAuth();
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/in", "Authorization: Bearer good\r\n");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  // The service saw the original request; the upstream got the request with the user.
  bool checked = false;
  for (const auto& got : upstream_.received()) {
    if (got.path == "/auth-check") {
      checked = true;
      ASSERT_TRUE(got.header("x-original-path"));
      EXPECT_EQ(*got.header("x-original-path"), "/echo/in");
      ASSERT_TRUE(got.header("host"));
      EXPECT_EQ(*got.header("host"), "auth");
    }
  }
  EXPECT_TRUE(checked);
  const auto app = upstream_.received().back();
  EXPECT_EQ(app.path, "/echo/in");
  ASSERT_TRUE(app.header("x-auth-user"));
  EXPECT_EQ(*app.header("x-auth-user"), "alice");
  // The connection carries on.
  EXPECT_EQ(client.Get("/echo/again", "Authorization: Bearer good\r\n").status, 200);
}

TEST_P(WasmHttpCall, BadTokenIsRefusedWithTheServicesAnswer) {
  StartWithAuth();
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/secret", "Authorization: Bearer bad\r\n");
  EXPECT_EQ(r.status, 403) << r.error;
  EXPECT_EQ(r.body, "bad token");
  EXPECT_EQ(upstream_.requests_for("/echo/secret"), 0u);
}

TEST_P(WasmHttpCall, DeadServiceAnswers503) {
  TestUpstream dead;
  const uint16_t port = dead.port();
  dead.Stop();
  Start(port, "cluster = auth\\npath = /auth-check");
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/x", "Authorization: Bearer good\r\n");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body, "auth service unavailable\n");
  EXPECT_EQ(upstream_.requests_for("/echo/x"), 0u);
}

TEST_P(WasmHttpCall, SlowServiceTimesOut) {
  Start(upstream_.port(), "cluster = auth\\npath = /hang\\ntimeout_ms = 300");
  const int64_t before = ClusterStatFor("auth", "upstream_rq_timeout");  // (a process-wide name)
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/slow", "Authorization: Bearer good\r\n");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(ClusterStatFor("auth", "upstream_rq_timeout"), before + 1);
}

TEST_P(WasmHttpCall, UnknownClusterIsRefusedAtOnce) {
  Start(upstream_.port(), "cluster = nope");
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/x");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(upstream_.requests(), 0u);
}

// A plugin that never resumes its paused request (the service never answers and the callout has
// no timeout): the route's timeout answers the client.
TEST_P(WasmHttpCall, PluginThatNeverResumesMeetsTheRouteTimeout) {
  StartWithRouteTimeout("cluster = auth\\npath = /hang\\ntimeout_ms = 0", "0.4s");
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/echo/stuck");
  EXPECT_EQ(r.status, 504) << r.error;
  EXPECT_EQ(r.body, "upstream request timeout");
  EXPECT_EQ(upstream_.requests_for("/echo/stuck"), 0u);
}

// The client goes away while its callout is in flight: the answer still reaches the plugin's
// root context, the dead stream is never touched, and the proxy carries on.
TEST_P(WasmHttpCall, ClientLeavingDuringTheCalloutIsHarmless) {
  Start(upstream_.port(), "cluster = auth\\npath = /slow?ms=300\\ntimeout_ms = 5000", 1);
  {
    HttpClient leaver(proxy_.port());
    ASSERT_TRUE(leaver.Send("GET /echo/leaver HTTP/1.1\r\nHost: a\r\n\r\n"));
    ASSERT_TRUE(upstream_.WaitForRequests(1));  // the callout reached the service
  }
  std::this_thread::sleep_for(milliseconds(500));  // its answer arrives after the client left
  EXPECT_EQ(upstream_.requests_for("/echo/leaver"), 0u);
  // The worker and the plugin still serve (the service answers 200 "slow" here).
  HttpClient next(proxy_.port());
  EXPECT_EQ(next.Get("/echo/next").status, 200);
}

// Past the bound on outstanding callouts, proxy_http_call fails (InternalFailure): the plugin
// answers 503 at once, and wasm.http_call_overflow counts it.
TEST_P(WasmHttpCall, OutstandingCalloutsAreBounded) {
  wasm::set_max_outstanding_http_calls(2);
  Start(upstream_.port(), "cluster = auth\\npath = /hang\\ntimeout_ms = 5000", 1);
  const int64_t before = StatValue("wasm.http_call_overflow");
  std::vector<std::unique_ptr<HttpClient>> waiting;
  for (int i = 0; i < 2; ++i) {
    waiting.push_back(std::make_unique<HttpClient>(proxy_.port()));
    ASSERT_TRUE(waiting.back()->Send("GET /echo/w HTTP/1.1\r\nHost: a\r\n\r\n"));
  }
  ASSERT_TRUE(upstream_.WaitForRequests(2));
  HttpClient third(proxy_.port());
  const HttpResponse r = third.Get("/echo/third");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(StatValue("wasm.http_call_overflow"), before + 1);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, WasmHttpCall, ::testing::Values("v8", "null"));

// A singleton service (bootstrap_extensions, envoy.bootstrap.wasm) refreshes configuration on a
// timer with http_call, on the main thread; an HTTP filter of the same vm_id on every worker
// serves what it stored in shared data.
class WasmSingleton : public IntegrationFixture,
                      public ::testing::WithParamInterface<std::string> {};

TEST_P(WasmSingleton, TickDrivenRefresherFeedsTheWorkers) {
  std::string yaml =
      WithHttpFilter(ProxyYaml(prefix_, CatchAllRoutes(cluster_, ""),
                               "[" + ClusterYaml(cluster_, upstream_.port(), "") + ", " +
                                   ClusterYaml("config", upstream_.port(), "") + "]"),
                     WasmFilterYaml("refresher_filter", "config_refresher", GetParam(),
                                    SLUICE_EXTENSIONS_DIR, "", "refresher"));
  // The service: the same plugin (same vm_id), fetching, as a singleton on the main thread.
  const std::string service = WasmPluginConfigYaml(
      "refresher_service", "config_refresher", GetParam(), SLUICE_EXTENSIONS_DIR,
      "period_ms = 100\\ncluster = config", "refresher");
  yaml += fmt::format(R"(
bootstrap_extensions:
- name: refresher_service
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
    singleton: true
    config: {}
)",
                      service);
  StartProxy(yaml);
  // No request is needed for the service to run: the fetches happen on their own.
  ASSERT_TRUE(upstream_.WaitForRequests(2));
  EXPECT_EQ(upstream_.requests_for("/config"), upstream_.requests());
  // Every worker serves the stored value, and it keeps changing (config-N grows).
  std::string first;
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  bool changed = false;
  while (std::chrono::steady_clock::now() < deadline && !changed) {
    HttpClient client(proxy_.port());
    const HttpResponse r = client.Get("/echo/x");
    ASSERT_EQ(r.status, 200) << r.error;
    ASSERT_TRUE(r.header("x-config"));
    const std::string v = *r.header("x-config");
    if (v != "none") {
      EXPECT_TRUE(v.rfind("config-", 0) == 0) << v;
      if (first.empty()) {
        first = v;
      } else {
        changed = v != first;
      }
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(changed) << "x-config stayed at '" << first << "'";
  EXPECT_GE(StatValue("wasmcustom.config_refresher.fetches_total"), 2);  // (hidden namespace)
}

INSTANTIATE_TEST_SUITE_P(Runtimes, WasmSingleton, ::testing::Values("v8", "null"));

}  // namespace
}  // namespace sluice::testing
