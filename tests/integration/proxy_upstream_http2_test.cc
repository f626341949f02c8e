// HTTP/2 clusters through the in-process proxy, against a scripted h2c upstream
// (test_h2_upstream_util.h): requests from HTTP/1.1 and HTTP/2 clients multiplexed onto one
// upstream connection, bodies, trailers, a headers-only (gRPC trailers-only) reply, a refused
// stream retried, and an upstream reset mid-response.
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http2_client_util.h"
#include "integration_fixture.h"
#include "test_h2_upstream_util.h"

namespace sluice::testing {
namespace {

using ::testing::Contains;
using ::testing::Pair;

class IntegrationUpstreamHttp2 : public IntegrationFixture {
 protected:
  void StartH2() {
    StartProxy(
        ProxyYaml(prefix_, CatchAllRoutes(cluster_),
                  "[" + ClusterYaml(cluster_, h2_.port(), "http2_protocol_options: {}") + "]"));
  }
  TestH2Upstream h2_;
};

TEST_F(IntegrationUpstreamHttp2, Http1ClientsShareOneUpstreamConnection) {
  StartH2();
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/echo/one");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "len=0");
  ASSERT_TRUE(r.has_header("x-authority"));
  ASSERT_TRUE(client.Send("POST /echo/post HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" +
                          std::string(100000, 'b')));
  r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "len=100000");
  EXPECT_EQ(*r.header("x-method"), "POST");
  HttpClient other(proxy_.port());
  r = other.Get("/echo/two");
  ASSERT_EQ(r.status, 200) << r.error;
  // One worker here would share one connection; with two, at most one each.
  EXPECT_LE(h2_.connections(), 2u);
  EXPECT_EQ(h2_.streams(), 3u);
  EXPECT_GE(ClusterStat("upstream_cx_http2_total"), 1);
}

TEST_F(IntegrationUpstreamHttp2, Http2ClientTrailersAndTeTrailers) {
  StartH2();
  Http2Client client(proxy_.port());
  const int32_t te = client.Submit("GET", "/echo/te", "", {{"te", "trailers"}});
  const int32_t tr = client.Submit("GET", "/trailers");
  ASSERT_TRUE(client.WaitFor(te));
  ASSERT_TRUE(client.WaitFor(tr));
  EXPECT_EQ(client.response(te).header("x-te"), "trailers");
  EXPECT_EQ(client.response(tr).body, "trailed");
  EXPECT_THAT(client.response(tr).trailers, Contains(Pair("grpc-status", "0")));
  EXPECT_THAT(client.response(tr).trailers, Contains(Pair("x-checksum", "abc")));
}

TEST_F(IntegrationUpstreamHttp2, HeadersOnlyReplyStaysHeadersOnly) {
  StartH2();
  Http2Client client(proxy_.port());
  const int32_t id = client.Submit("POST", "/headers-only", "payload");
  ASSERT_TRUE(client.WaitFor(id));
  const Http2Response& r = client.response(id);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("grpc-status"), "7");  // in the one HEADERS frame, where gRPC looks
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.error_code, 0u);
  EXPECT_EQ(ClusterStat("upstream_rq_200"), 1);
}

TEST_F(IntegrationUpstreamHttp2, RefusedStreamIsRetriedOnce) {
  StartH2();
  {
    HttpClient client(proxy_.port());
    const HttpResponse r = client.Get("/refuse-once/a");
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "ok");
  }
  EXPECT_EQ(ClusterStat("upstream_rq_total"), 2);
  EXPECT_EQ(ClusterStat("upstream_rq_rx_reset"), 1);
  ExpectQuiescent();
}

TEST_F(IntegrationUpstreamHttp2, UpstreamResetMidResponseResetsTheClientStream) {
  StartH2();
  auto client = std::make_unique<Http2Client>(proxy_.port());
  const int32_t id = client->Submit("GET", "/reset");
  ASSERT_TRUE(client->WaitFor(id));
  // Never a short body that looks complete.
  EXPECT_NE(client->response(id).error_code, 0u)
      << "status " << client->response(id).status << " body '" << client->response(id).body << "'";
  const int32_t next = client->Submit("GET", "/echo/after");
  ASSERT_TRUE(client->WaitFor(next));
  EXPECT_EQ(client->response(next).status, 200);
  client.reset();
  ExpectQuiescent();
}

}  // namespace
}  // namespace sluice::testing
