// HTTP/2 clients through the in-process proxy (h2c with prior knowledge on an AUTO listener) to
// the scripted HTTP/1.1 upstream: requests and bodies, multiplexing, trailers, resets in both
// directions that end only their stream, and GOAWAY on drain. (Floods and TLS/ALPN are covered
// end to end in tests/e2e/http2_test.sh, with real clients.)
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http2_client_util.h"
#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

class IntegrationHttp2 : public IntegrationFixture {};

TEST_F(IntegrationHttp2, RequestsAndBodies) {
  StartSimple();
  Http2Client client(proxy_.port());
  ASSERT_TRUE(client.connected());
  const int32_t get = client.Submit("GET", "/echo/get", "", {{"cookie", "a=1"}, {"cookie", "b=2"}});
  ASSERT_TRUE(client.WaitFor(get));
  const Http2Response& g = client.response(get);
  EXPECT_EQ(g.status, 200);
  // The upstream sees HTTP/1.1 with Host from :authority and the cookies on one line.
  EXPECT_THAT(g.body, HasSubstr("GET /echo/get HTTP/1.1\r\n"));
  EXPECT_THAT(g.body, HasSubstr("host: test.local\r\n"));
  EXPECT_THAT(g.body, HasSubstr("cookie: a=1; b=2\r\n"));
  EXPECT_EQ(g.header("server"), "envoy");

  std::string body(300 * 1024, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  const int32_t post = client.Submit("POST", "/echo/post", body);
  ASSERT_TRUE(client.WaitFor(post));
  const Http2Response& p = client.response(post);
  EXPECT_EQ(p.status, 200);
  // No content-length from the client: the body went upstream chunked, whole.
  EXPECT_THAT(p.body, HasSubstr("transfer-encoding: chunked\r\n"));
  ASSERT_GE(p.body.size(), body.size());
  EXPECT_EQ(p.body.substr(p.body.size() - body.size()), body);

  EXPECT_EQ(HcmStat("downstream_rq_http2_total"), 2);
  EXPECT_EQ(HcmStat("downstream_cx_http2_total"), 1);
  EXPECT_EQ(HcmStat("downstream_rq_http1_total"), 0);
}

// RFC 9113 8.3.1: a client may send Host instead of :authority. The proxy takes it as the
// authority, with enough other headers that the request's header map grows meanwhile.
TEST_F(IntegrationHttp2, HostStandsInForAuthority) {
  StartSimple();
  Http2Client client(proxy_.port());
  ASSERT_TRUE(client.connected());
  for (int extra = 0; extra < 12; ++extra) {
    std::vector<std::pair<std::string, std::string>> headers = {{"host", "h.local"}};
    for (int i = 0; i < extra; ++i) headers.emplace_back("x-h" + std::to_string(i), "v");
    const int32_t id = client.Submit("GET", "/echo/host", "", headers);
    ASSERT_TRUE(client.WaitFor(id));
    const Http2Response& r = client.response(id);
    EXPECT_EQ(r.status, 200);
    EXPECT_THAT(r.body, HasSubstr("host: h.local\r\n")) << extra << " extra headers";
    size_t hosts = 0;
    for (size_t at = r.body.find("\r\nhost:"); at != std::string::npos;
         at = r.body.find("\r\nhost:", at + 1)) {
      ++hosts;
    }
    EXPECT_EQ(hosts, 1u) << r.body;
  }
}

TEST_F(IntegrationHttp2, StreamsRunConcurrently) {
  StartSimple();
  Http2Client client(proxy_.port());
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(client.Submit("GET", "/slow?ms=300"));
  for (int32_t id : ids) {
    ASSERT_TRUE(client.WaitFor(id));
    EXPECT_EQ(client.response(id).status, 200);
    EXPECT_EQ(client.response(id).body, "slow");
  }
  // Every stream held an upstream connection at the same time: none waited for another.
  EXPECT_EQ(upstream_.accepted_connections(), 20u);
}

TEST_F(IntegrationHttp2, UpstreamTrailersReachTheClient) {
  StartSimple("", "", kClusterTrailers);
  Http2Client client(proxy_.port());
  const int32_t id = client.Submit("GET", "/trailers");
  ASSERT_TRUE(client.WaitFor(id));
  const Http2Response& r = client.response(id);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "trailed");
  EXPECT_THAT(r.trailers, Contains(Pair("x-checksum", "abc")));
  EXPECT_THAT(r.trailers, Contains(Pair("grpc-status", "0")));
}

TEST_F(IntegrationHttp2, ClientResetEndsOnlyItsStream) {
  StartSimple();
  auto client_holder = std::make_unique<Http2Client>(proxy_.port());
  Http2Client& client = *client_holder;
  const int32_t hung = client.Submit("GET", "/hang");
  client.RunFor(std::chrono::milliseconds(100));
  ASSERT_TRUE(upstream_.WaitForRequests(1));
  client.Reset(hung);
  client.RunFor(std::chrono::milliseconds(50));
  EXPECT_TRUE(WaitForStat("http." + prefix_ + ".downstream_rq_rx_reset", 1));
  // The upstream request is abandoned with it.
  EXPECT_TRUE(upstream_.WaitForClosedConnections(1));
  const int32_t next = client.Submit("GET", "/echo/after");
  ASSERT_TRUE(client.WaitFor(next));
  EXPECT_EQ(client.response(next).status, 200);
  EXPECT_FALSE(client.closed());
  client_holder.reset();
  ExpectQuiescent();
}

TEST_F(IntegrationHttp2, UpstreamFailureMidResponseResetsOnlyItsStream) {
  StartSimple();
  auto client_holder = std::make_unique<Http2Client>(proxy_.port());
  Http2Client& client = *client_holder;
  const int32_t cut = client.Submit("GET", "/close-mid-body");
  ASSERT_TRUE(client.WaitFor(cut));
  // Headers went out already: the stream is reset, never completed with a short body.
  EXPECT_NE(client.response(cut).error_code, 0u);
  EXPECT_GT(StatValue("http2.tx_reset"), 0);
  const int32_t next = client.Submit("GET", "/echo/next");
  ASSERT_TRUE(client.WaitFor(next));
  EXPECT_EQ(client.response(next).status, 200);
  EXPECT_FALSE(client.closed());
  client_holder.reset();
  ExpectQuiescent();
}

TEST_F(IntegrationHttp2, DrainSendsGoawayAndFinishesStreamsInFlight) {
  StartSimple();
  Http2Client client(proxy_.port());
  const int32_t slow = client.Submit("GET", "/slow?ms=500");
  client.RunFor(std::chrono::milliseconds(100));
  ASSERT_TRUE(upstream_.WaitForRequests(1));
  proxy_.Drain();
  ASSERT_TRUE(client.WaitFor(slow));
  EXPECT_EQ(client.response(slow).status, 200);
  EXPECT_EQ(client.response(slow).body, "slow");
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_TRUE(client.goaway_received());
  EXPECT_TRUE(proxy_.WaitForExit(std::chrono::seconds(10)));
}

}  // namespace
}  // namespace sluice::testing
