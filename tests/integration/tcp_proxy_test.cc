// The TCP proxy in process, over real loopback sockets (so the sanitizer pass covers it): bytes
// both ways, half-close, back-pressure against a slow client, an upstream that goes away, and a
// server stop with sessions open.
#include <chrono>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

class IntegrationTcpProxy : public IntegrationFixture {
 protected:
  void StartTcp(std::string_view extra = "", std::string_view cluster_extra = "") {
    StartProxy(fmt::format(R"(
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {0}
          cluster: {1}
          {2}
  clusters: [{3}]
)",
                           prefix_, cluster_, extra,
                           ClusterYaml(cluster_, upstream_.port(), cluster_extra)));
  }
  int64_t TcpStat(std::string_view stat) const {
    return StatValue("tcp." + prefix_ + "." + std::string(stat));
  }
};

TEST_F(IntegrationTcpProxy, BytesBothWaysOnOneUpstreamConnection) {
  StartTcp();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = client.Get(fmt::format("/echo/{}", i));
    ASSERT_EQ(r.status, 200) << r.error;
    // The upstream sees the client's bytes untouched: no x-forwarded-for, no rewriting.
    EXPECT_THAT(r.body, HasSubstr(fmt::format("GET /echo/{} HTTP/1.1", i)));
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr("x-forwarded")));
  }
  EXPECT_EQ(upstream_.accepted_connections(), 1u);
  EXPECT_EQ(TcpStat("downstream_cx_total"), 1);
  EXPECT_GT(TcpStat("downstream_cx_rx_bytes_total"), 90);
  EXPECT_GT(TcpStat("downstream_cx_tx_bytes_total"), 90);
  EXPECT_EQ(ClusterStat("upstream_cx_total"), 1);
}

// The client's FIN reaches the upstream, which then closes: the client sees the close.
TEST_F(IntegrationTcpProxy, HalfCloseIsPassedOn) {
  StartTcp();
  HttpClient client(proxy_.port());
  ASSERT_EQ(client.Get("/echo/first").status, 200);
  ASSERT_TRUE(client.ShutdownWrite());
  EXPECT_TRUE(client.WaitForClose(seconds(10)));
  EXPECT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_cx_active", 0));
}

// The half-closed client still gets a response that the upstream sends after the FIN.
TEST_F(IntegrationTcpProxy, ResponseAfterTheClientsFin) {
  StartTcp();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(client.ShutdownWrite());
  HttpResponse r = client.ReadResponse();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "slow");
}

// 8 MiB to a client that reads slowly: the proxy pauses the upstream rather than buffering.
TEST_F(IntegrationTcpProxy, SlowClientPausesTheUpstream) {
  StartTcp("", "per_connection_buffer_limit_bytes: 65536");
  HttpClient client(proxy_.port(), /*rcvbuf=*/16384);
  ASSERT_TRUE(client.Send("GET /big?bytes=8388608 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(300));
  ReadOptions slow;
  slow.timeout = seconds(60);
  HttpResponse r = client.ReadResponse(slow);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body.size(), 8388608u);
  EXPECT_GE(ClusterStat("upstream_flow_control_paused_reading_total"), 1);
  EXPECT_GE(ClusterStat("upstream_flow_control_resumed_reading_total"), 1);
}

TEST_F(IntegrationTcpProxy, UpstreamCloseClosesTheClient) {
  StartTcp();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("GET /reset HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(client.WaitForClose(seconds(10)));
}

TEST_F(IntegrationTcpProxy, ConnectFailureClosesTheClient) {
  StartProxy(fmt::format(R"(
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {0}
          cluster: {1}
          max_connect_attempts: 2
  clusters: [{2}]
)",
                         prefix_, cluster_, ClusterYaml(cluster_, /*port=*/1)));
  HttpClient client(proxy_.port());
  EXPECT_TRUE(client.WaitForClose(seconds(10)));
  EXPECT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_cx_connect_fail", 2));
}

// Stopping the server with sessions open (one idle, one mid-transfer) closes them cleanly.
TEST_F(IntegrationTcpProxy, StopWithOpenSessions) {
  StartTcp();
  HttpClient idle(proxy_.port());
  HttpClient busy(proxy_.port(), 16384);
  ASSERT_EQ(idle.Get("/echo").status, 200);
  ASSERT_TRUE(busy.Send("GET /big?bytes=8388608 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds(200));
  proxy_.Stop();
  EXPECT_TRUE(idle.WaitForClose(seconds(10)));
  EXPECT_TRUE(busy.WaitForClose(seconds(10)));
}

}  // namespace
}  // namespace sluice::testing
