// Integration tests of connection and server lifecycle over real loopback sockets: idle timeout,
// graceful drain, and the admin endpoints on the real admin port.
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

class IntegrationLifecycle : public IntegrationFixture {};
class IntegrationAdmin : public IntegrationFixture {
 protected:
  HttpResponse Admin(std::string_view method, std::string_view path) {
    HttpClient admin(proxy_.admin_port());
    // "connection: close": the admin session ends with the exchange (nothing left open on the
    // server's loop when the test stops it).
    admin.Send(
        fmt::format("{} {} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n", method, path));
    return admin.ReadResponse();
  }
};

TEST_F(IntegrationLifecycle, IdleConnectionIsClosed) {
  StartSimple("", "common_http_protocol_options: {idle_timeout: 0.3s}");
  HttpClient client(proxy_.port());
  ASSERT_EQ(client.Get("/echo/x").status, 200);
  EXPECT_TRUE(client.WaitForClose(seconds(10)));
  EXPECT_EQ(HcmStat("downstream_cx_idle_timeout"), 1);
}

TEST_F(IntegrationLifecycle, GracefulDrainFinishesInFlightRequest) {
  StartSimple();
  HttpClient idle(proxy_.port());  // idle keep-alive connection: closed by the drain right away
  ASSERT_EQ(idle.Get("/echo/idle").status, 200);
  HttpClient busy(proxy_.port());
  ASSERT_TRUE(busy.Send("GET /slow?ms=1000 HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(2));

  proxy_.Drain();
  EXPECT_TRUE(idle.WaitForClose());
  const HttpResponse r = busy.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "slow");
  ASSERT_TRUE(r.header("connection"));
  EXPECT_EQ(*r.header("connection"), "close");
  EXPECT_TRUE(busy.WaitForClose());

  // The drain ends once no connection is left, well before the 5 s drain time; then nothing
  // listens any more.
  ASSERT_TRUE(proxy_.WaitForExit(seconds(10)));
  EXPECT_EQ(TryConnect(proxy_.port()), ECONNREFUSED);
}

// Regression: a connection used to count as gone as soon as its HttpConnection closed, while up to
// 1 MiB of its response still waited in the write buffer for a slow reader; the drain then ended
// early and the tail of the response was dropped.
TEST_F(IntegrationLifecycle, DrainDeliversTheBufferedTailOfAResponse) {
  StartSimple();
  constexpr uint64_t kSize = 8 * 1024 * 1024;
  HttpClient client(proxy_.port(), /*rcvbuf=*/32 * 1024);
  ASSERT_TRUE(client.Send(fmt::format("GET /big?bytes={} HTTP/1.1\r\nHost: a\r\n\r\n", kSize)));
  ASSERT_TRUE(upstream_.WaitForRequests(1));
  std::this_thread::sleep_for(milliseconds(300));  // the proxy's write buffer is full now
  proxy_.Drain();
  ReadOptions slow;
  slow.timeout = seconds(60);
  slow.max_read = 16 * 1024;
  int reads = 0;
  slow.before_body_read = [&reads] {
    if (++reads % 4 == 0) std::this_thread::sleep_for(milliseconds(2));
  };
  const HttpResponse r = client.ReadResponse(slow);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.complete) << "got " << r.body.size() << " of " << kSize << " bytes";
  EXPECT_EQ(r.body.size(), kSize);
  EXPECT_TRUE(proxy_.WaitForExit(seconds(10)));
}

TEST_F(IntegrationAdmin, ReadyStatsAndPrometheus) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_EQ(client.Get("/echo/counted").status, 200);
  ASSERT_TRUE(WaitForStat("http." + prefix_ + ".downstream_rq_completed", 1));

  HttpResponse r = Admin("GET", "/ready");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "LIVE\n");

  r = Admin("GET", "/stats");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_rq_total: 1\n", cluster_)));
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_cx_total: 1\n", cluster_)));
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_rq_2xx: 1\n", cluster_)));
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_rq_200: 1\n", cluster_)));
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_rq_completed: 1\n", cluster_)));
  EXPECT_THAT(r.body, HasSubstr(fmt::format("http.{}.downstream_rq_total: 1\n", prefix_)));

  r = Admin("GET", fmt::format("/stats?filter=^cluster\\.{}\\.", cluster_));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_THAT(r.body, HasSubstr(fmt::format("cluster.{}.upstream_rq_total: 1\n", cluster_)));
  EXPECT_THAT(r.body, Not(HasSubstr("http.")));

  r = Admin("GET", "/stats/prometheus");
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(r.header("content-type"));
  EXPECT_THAT(*r.header("content-type"), HasSubstr("text/plain"));
  EXPECT_THAT(r.body, HasSubstr("# TYPE envoy_cluster_upstream_rq_total counter\n"));
  EXPECT_THAT(r.body,
              HasSubstr(fmt::format(
                  "envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"{}\"}} 1\n", cluster_)));
  // Per-code counters, tagged as Envoy's envoy.response_code extractor does.
  EXPECT_THAT(r.body, HasSubstr(fmt::format("envoy_cluster_upstream_rq{{envoy_response_code="
                                            "\"200\",envoy_cluster_name=\"{}\"}} 1\n",
                                            cluster_)));
  EXPECT_THAT(r.body,
              HasSubstr(fmt::format("envoy_http_downstream_rq_total{{envoy_http_conn_manager_"
                                    "prefix=\"{}\"}} 1\n",
                                    prefix_)));

  r = Admin("GET", "/clusters");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_THAT(r.body, HasSubstr(fmt::format("{}::127.0.0.1:{}::health_flags::healthy", cluster_,
                                            upstream_.port())));

  // Readiness follows /healthcheck/fail and /healthcheck/ok.
  EXPECT_EQ(Admin("POST", "/healthcheck/fail").status, 200);
  r = Admin("GET", "/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "DRAINING\n");
  EXPECT_EQ(Admin("POST", "/healthcheck/ok").status, 200);
  EXPECT_EQ(Admin("GET", "/ready").status, 200);
}

// Each worker's connections show in listener.<address>.worker_<i>.downstream_cx_{total,active};
// with connection_balance_config.exact_balance they are even, wherever the kernel put them.
class IntegrationConnectionBalance : public IntegrationFixture {
 protected:
  void StartBalanced(bool exact, uint32_t workers) {
    std::string yaml = ProxyYaml(prefix_, CatchAllRoutes(cluster_),
                                 "[" + ClusterYaml(cluster_, upstream_.port()) + "]");
    if (exact) {
      const std::string address_line =
          "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n";
      const size_t at = yaml.find(address_line);
      ASSERT_NE(at, std::string::npos);
      yaml.insert(at + address_line.size(), "    connection_balance_config: {exact_balance: {}}\n");
    }
    StartProxy(yaml, seconds(5), workers);
  }
  // Opens clients[from, to) one after another, each answered once (so it was accepted).
  ::testing::AssertionResult Connect(std::vector<std::unique_ptr<HttpClient>>& clients, int from,
                                     int to) {
    for (int i = from; i < to; ++i) {
      auto& c = clients[static_cast<size_t>(i)];
      c = std::make_unique<HttpClient>(proxy_.port());
      const int status = c->Get("/echo/x").status;
      if (status != 200) return ::testing::AssertionFailure() << "client " << i << ": " << status;
    }
    return ::testing::AssertionSuccess();
  }
  std::string WorkerStat(int worker, std::string_view stat) const {
    return fmt::format("listener.127.0.0.1:{}.worker_{}.{}", proxy_.port(), worker, stat);
  }
};

TEST_F(IntegrationConnectionBalance, ExactBalanceEvensOutTheWorkers) {
  constexpr int kWorkers = 3, kConnections = 24;
  StartBalanced(true, kWorkers);
  std::vector<std::unique_ptr<HttpClient>> clients(kConnections);
  ASSERT_TRUE(Connect(clients, 0, kConnections));
  // Each connection went to the worker with the fewest at its accept: 8 each, exactly.
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_TRUE(WaitForStat(WorkerStat(w, "downstream_cx_active"), kConnections / kWorkers))
        << "worker " << w << ": " << StatValue(WorkerStat(w, "downstream_cx_active"));
    EXPECT_EQ(StatValue(WorkerStat(w, "downstream_cx_total")), kConnections / kWorkers);
  }
  // Closing half of them, then opening as many again, refills the emptied workers first.
  for (int i = 0; i < kConnections / 2; ++i) clients[static_cast<size_t>(i)].reset();
  int64_t active = kConnections;
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  while (active != kConnections / 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
    active = 0;
    for (int w = 0; w < kWorkers; ++w) active += StatValue(WorkerStat(w, "downstream_cx_active"));
  }
  ASSERT_EQ(active, kConnections / 2);
  ASSERT_TRUE(Connect(clients, 0, kConnections / 2));
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_TRUE(WaitForStat(WorkerStat(w, "downstream_cx_active"), kConnections / kWorkers))
        << "worker " << w << ": " << StatValue(WorkerStat(w, "downstream_cx_active"));
  }
  clients.clear();
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_TRUE(WaitForStat(WorkerStat(w, "downstream_cx_active"), 0)) << "worker " << w;
  }
  ExpectQuiescent();
}

// Without a balancer the kernel spreads them: the per-worker counts still add up.
TEST_F(IntegrationConnectionBalance, PerWorkerCountsWithoutABalancer) {
  constexpr int kWorkers = 2, kConnections = 10;
  StartBalanced(false, kWorkers);
  std::vector<std::unique_ptr<HttpClient>> clients(kConnections);
  ASSERT_TRUE(Connect(clients, 0, kConnections));
  int64_t active = 0, total = 0;
  for (int w = 0; w < kWorkers; ++w) {
    active += StatValue(WorkerStat(w, "downstream_cx_active"));
    total += StatValue(WorkerStat(w, "downstream_cx_total"));
  }
  EXPECT_EQ(active, kConnections);
  EXPECT_EQ(total, kConnections);
  clients.clear();
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_TRUE(WaitForStat(WorkerStat(w, "downstream_cx_active"), 0)) << "worker " << w;
  }
}

}  // namespace
}  // namespace sluice::testing
