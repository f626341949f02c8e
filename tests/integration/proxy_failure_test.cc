// Integration tests of upstream failures over real loopback sockets: timeouts, resets before and
// after the response head, retries, connect failures and timeouts, circuit breakers and the
// stream idle timeout. Every wait is bounded; no assertion depends on how fast anything is.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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

class IntegrationFailure : public IntegrationFixture {};

// Routes: requests with an "x-retry" header get `retry_policy`; the others none.
std::string RetryRoutes(std::string_view cluster, std::string_view retry_policy) {
  return fmt::format(
      "[{{match: {{prefix: \"/\", headers: [{{name: x-retry, present_match: true}}]}}, "
      "route: {{cluster: {0}, retry_policy: {1}}}}}, "
      "{{match: {{prefix: \"/\"}}, route: {{cluster: {0}}}}}]",
      cluster, retry_policy);
}

// A loopback port with nothing listening (bound once, then released).
uint16_t ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A listener whose accept queue is full and never drained: the kernel drops further SYNs, so a
// connect() to it neither succeeds nor fails until the connector gives up.
class BlackholeListener {
 public:
  BlackholeListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int i = 0; i < 3; ++i) {  // fill the queue (backlog 0 admits one)
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fillers_.push_back(c);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ~BlackholeListener() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_;
  std::vector<int> fillers_;
};

TEST_F(IntegrationFailure, RouteTimeoutAnswers504) {
  StartSimple("timeout: 0.5s");
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/hang");
  ASSERT_EQ(r.status, 504) << r.error;
  EXPECT_EQ(r.body, "upstream request timeout");
  EXPECT_EQ(ClusterStat("upstream_rq_timeout"), 1);
  // The downstream connection is still good, and the hung upstream connection was abandoned.
  r = client.Get("/echo/after-timeout");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(upstream_.WaitForClosedConnections(1));
}

TEST_F(IntegrationFailure, RouteTimeoutAfterResponseStartedClosesConnection) {
  // The head arrives at once, the body after the route timeout: too late for a 504, so the only
  // honest signal left is closing the connection.
  StartSimple("timeout: 0.5s");
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/slow-body?ms=3000");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(ClusterStat("upstream_rq_timeout"), 1);
}

TEST_F(IntegrationFailure, ResetBeforeResponseAnswers503) {
  StartSimple();
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/reset");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body,
            "upstream connect error or disconnect/reset before headers. "
            "reset reason: connection termination");
  EXPECT_EQ(upstream_.requests_for("/reset"), 1u);  // no retry policy: one attempt
  // An RST instead of a FIN is the same failure.
  r = client.Get("/rst");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_THAT(r.body, HasSubstr("reset reason: connection termination"));
  EXPECT_EQ(ClusterStat("upstream_rq_rx_reset"), 2);
  EXPECT_EQ(client.Get("/echo/after-reset").status, 200);
}

TEST_F(IntegrationFailure, RetryOnResetSucceedsOnSecondAttempt) {
  StartProxy(ProxyYaml(prefix_, RetryRoutes(cluster_, "{retry_on: reset, num_retries: 2}"),
                       "[" + ClusterYaml(cluster_, upstream_.port()) + "]"));
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/reset-once/a", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(upstream_.requests_for("/reset-once/a"), 2u);
  EXPECT_EQ(ClusterStat("upstream_rq_retry"), 1);
  EXPECT_EQ(ClusterStat("upstream_rq_retry_success"), 1);

  // A request body is replayed on the retry.
  ASSERT_TRUE(
      client.Send("POST /reset-once/body HTTP/1.1\r\nHost: a\r\nx-retry: 1\r\n"
                  "Content-Length: 7\r\n\r\npayload"));
  r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  const auto received = upstream_.received();
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received.back().path, "/reset-once/body");
  EXPECT_EQ(received.back().body, "payload");

  // Without the policy a reset is a 503 (/reset resets every attempt: a pooled connection gets
  // one transparent retry, which resets too).
  r = client.Get("/reset");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_THAT(r.body, HasSubstr("reset reason: connection termination"));
}

TEST_F(IntegrationFailure, RetryOn5xx) {
  StartProxy(ProxyYaml(prefix_, RetryRoutes(cluster_, "{retry_on: 5xx, num_retries: 2}"),
                       "[" + ClusterYaml(cluster_, upstream_.port()) + "]"));
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/fail-once/503/a", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(upstream_.requests_for("/fail-once/503/a"), 2u);
  EXPECT_EQ(ClusterStat("upstream_rq_retry"), 1);

  // Without a retry policy the 503 passes through.
  r = client.Get("/fail-once/503/b");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body, "status 503");
  EXPECT_EQ(upstream_.requests_for("/fail-once/503/b"), 1u);

  // Retries exhausted: the last answer passes through after 1 + num_retries attempts.
  r = client.Get("/status/503", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body, "status 503");
  EXPECT_EQ(upstream_.requests_for("/status/503"), 3u);
  EXPECT_EQ(ClusterStat("upstream_rq_retry"), 3);
}

TEST_F(IntegrationFailure, UpstreamClosingMidBodyClosesDownstream) {
  StartSimple();
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/close-mid-body");
  EXPECT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(r.header("content-length"));
  EXPECT_EQ(*r.header("content-length"), "1000");
  EXPECT_FALSE(r.complete);  // truncated, not padded, and not a hang
  EXPECT_TRUE(r.closed);
  EXPECT_LE(r.body.size(), 10u);
  EXPECT_EQ(r.body, std::string("0123456789").substr(0, r.body.size()));
  // The proxy serves the next request on a new connection.
  HttpClient next(proxy_.port());
  EXPECT_EQ(next.Get("/echo/next").status, 200);
}

TEST_F(IntegrationFailure, ConnectFailureAnswers503) {
  StartProxy(ProxyYaml(prefix_, CatchAllRoutes(cluster_),
                       "[" + ClusterYaml(cluster_, ClosedPort()) + "]"));
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/anything");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body,
            "upstream connect error or disconnect/reset before headers. "
            "reset reason: connection failure");
  EXPECT_EQ(ClusterStat("upstream_cx_connect_fail"), 1);
  EXPECT_EQ(ClusterStat("upstream_cx_connect_timeout"), 0);
}

TEST_F(IntegrationFailure, ConnectTimeoutAnswers503) {
  BlackholeListener blackhole;
  StartProxy(ProxyYaml(prefix_, CatchAllRoutes(cluster_, "timeout: 5s"),
                       "[" + ClusterYaml(cluster_, blackhole.port(), "", "0.25s") + "]"));
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/anything");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_THAT(r.body, HasSubstr("reset reason: connection failure"));
  EXPECT_EQ(ClusterStat("upstream_cx_connect_fail"), 1);
  EXPECT_EQ(ClusterStat("upstream_cx_connect_timeout"), 1);
}

TEST_F(IntegrationFailure, RetryOnConnectFailure) {
  const std::string dead = UniqueName("it_dead");
  // Two hosts, one dead: with connect-failure retries every request succeeds.
  const std::string cluster = fmt::format(
      "{{name: {0}, connect_timeout: 1s, load_assignment: {{cluster_name: {0}, endpoints: "
      "[{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, "
      "port_value: {1}}}}}}}}}, {{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, "
      "port_value: {2}}}}}}}}}]}}]}}}}",
      cluster_, ClosedPort(), upstream_.port());
  StartProxy(ProxyYaml(
      prefix_,
      CatchAllRoutes(cluster_, "retry_policy: {retry_on: connect-failure, num_retries: 1}"),
      "[" + cluster + "]"));
  HttpClient client(proxy_.port());
  for (int i = 0; i < 4; ++i) {
    const HttpResponse r = client.Get(fmt::format("/echo/{}", i));
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error << " " << r.body;
  }
  EXPECT_GE(ClusterStat("upstream_cx_connect_fail"), 1);
  EXPECT_GE(ClusterStat("upstream_rq_retry"), 1);
}

TEST_F(IntegrationFailure, CircuitBreakerMaxRequestsAnswers503Overloaded) {
  StartSimple("", "", "circuit_breakers: {thresholds: [{max_requests: 1}]}");
  auto hanging = std::make_unique<HttpClient>(proxy_.port());
  ASSERT_TRUE(hanging->Send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1));  // the first request holds the only slot

  HttpClient second(proxy_.port());
  const HttpResponse r = second.Get("/echo/second");
  ASSERT_EQ(r.status, 503) << r.error;
  ASSERT_TRUE(r.header("x-envoy-overloaded"));
  EXPECT_EQ(*r.header("x-envoy-overloaded"), "true");
  EXPECT_THAT(r.body, HasSubstr("overflow"));
  EXPECT_EQ(upstream_.requests(), 1u);  // never reached the upstream
  EXPECT_EQ(ClusterStat("upstream_rq_pending_overflow"), 1);

  // The client of the hanging request goes away: its slot is released.
  hanging.reset();
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    HttpClient again(proxy_.port());
    status = again.Get("/echo/again").status;
    if (status == 200) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(status, 200);
}

// max_connections reached: the request waits for a connection of its worker's pool (pending, as
// in Envoy) instead of failing, and is served on the connection the first request releases.
TEST_F(IntegrationFailure, MaxConnectionsQueuesRequestUntilAConnectionIsFree) {
  // One worker: all clients share one pool (with two, the second worker would have no
  // connection to wait for and would open one past the limit, as Envoy's pools do).
  StartSimple("", "", "circuit_breakers: {thresholds: [{max_connections: 1}]}", 1);
  HttpClient first(proxy_.port());
  ASSERT_TRUE(first.Send("GET /slow?ms=400 HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1));

  HttpClient second(proxy_.port());
  ASSERT_TRUE(second.Send("GET /echo/second HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_cx_overflow", 1));
  EXPECT_EQ(ClusterStat("upstream_rq_pending_active"), 1);  // waiting, not failed

  const HttpResponse a = first.ReadResponse();
  const HttpResponse b = second.ReadResponse();
  EXPECT_EQ(a.status, 200) << a.error;
  EXPECT_EQ(b.status, 200) << b.error;
  EXPECT_EQ(upstream_.accepted_connections(), 1u);  // the second request reused the connection
  EXPECT_EQ(ClusterStat("upstream_rq_pending_total"), 2);
  EXPECT_EQ(ClusterStat("upstream_rq_pending_overflow"), 0);
  EXPECT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_rq_pending_active", 0));
}

// With the connection busy and max_pending_requests also reached, the next request is refused
// (503 UO); the waiting one is served on a new connection once the busy one closes.
TEST_F(IntegrationFailure, PendingOverflowAnswers503AndWaiterGetsClosedConnectionsSlot) {
  // One worker, as above.
  StartSimple("", "",
              "circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 1}]}", 1);
  auto hanging = std::make_unique<HttpClient>(proxy_.port());
  ASSERT_TRUE(hanging->Send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1));

  HttpClient waiter(proxy_.port());
  ASSERT_TRUE(waiter.Send("GET /echo/waiter HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_rq_pending_active", 1));

  HttpClient refused(proxy_.port());
  const HttpResponse r = refused.Get("/echo/refused");
  ASSERT_EQ(r.status, 503) << r.error;
  ASSERT_TRUE(r.header("x-envoy-overloaded"));
  EXPECT_THAT(r.body, HasSubstr("overflow"));
  EXPECT_EQ(ClusterStat("upstream_rq_pending_overflow"), 1);

  // The hanging request's client leaves: its upstream connection closes, freeing the slot.
  hanging.reset();
  const HttpResponse w = waiter.ReadResponse();
  EXPECT_EQ(w.status, 200) << w.error;
  EXPECT_EQ(upstream_.requests_for("/echo/waiter"), 1u);
  EXPECT_EQ(upstream_.requests_for("/echo/refused"), 0u);
}

// A waiting request whose client leaves is dropped from the queue: nothing is sent for it later.
TEST_F(IntegrationFailure, WaitingRequestWhoseClientLeavesIsForgotten) {
  // One worker, as above.
  StartSimple("", "", "circuit_breakers: {thresholds: [{max_connections: 1}]}", 1);
  HttpClient first(proxy_.port());
  ASSERT_TRUE(first.Send("GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1));
  {
    HttpClient leaver(proxy_.port());
    ASSERT_TRUE(leaver.Send("GET /echo/leaver HTTP/1.1\r\nHost: a\r\n\r\n"));
    ASSERT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_rq_pending_active", 1));
  }
  ASSERT_TRUE(WaitForStat("cluster." + cluster_ + ".upstream_rq_pending_active", 0));
  EXPECT_EQ(first.ReadResponse().status, 200);
  // The freed connection serves the next request; the leaver's never reached the upstream.
  HttpClient next(proxy_.port());
  EXPECT_EQ(next.Get("/echo/next").status, 200);
  EXPECT_EQ(upstream_.requests_for("/echo/leaver"), 0u);
  EXPECT_EQ(upstream_.accepted_connections(), 1u);
}

TEST_F(IntegrationFailure, StreamIdleTimeoutAnswers408WhenRequestBodyStalls) {
  StartSimple("", "stream_idle_timeout: 0.3s");
  HttpClient client(proxy_.port());
  // Promises 10 bytes of body and sends none.
  ASSERT_TRUE(client.Send("POST /echo/idle HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"));
  const HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 408) << r.error;
  EXPECT_EQ(r.body, "stream timeout");
  ASSERT_TRUE(r.header("connection"));
  EXPECT_EQ(*r.header("connection"), "close");
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_EQ(HcmStat("downstream_rq_idle_timeout"), 1);
}

// Regression: the idle timer was armed before routing, so a route's `idle_timeout` never replaced
// the connection manager's stream_idle_timeout (300 s by default).
TEST_F(IntegrationFailure, RouteIdleTimeoutOverridesStreamIdleTimeout) {
  StartSimple("idle_timeout: 0.3s");  // the HCM keeps its default stream_idle_timeout (300 s)
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("POST /echo/idle HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"));
  ReadOptions options;
  options.timeout = seconds(5);
  const HttpResponse r = client.ReadResponse(options);
  EXPECT_EQ(r.status, 408) << r.error;
}

TEST_F(IntegrationFailure, RequestTimeoutAnswers408) {
  StartSimple("", "request_timeout: 0.3s");
  HttpClient client(proxy_.port());
  ASSERT_TRUE(
      client.Send("POST /echo/slow-client HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                  "\r\nabc"));
  const HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 408) << r.error;
  EXPECT_EQ(r.body, "request timeout");
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_EQ(HcmStat("downstream_rq_timeout"), 1);
}

TEST_F(IntegrationFailure, StaleKeepAliveConnectionIsRetriedTransparently) {
  StartSimple();
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/reset-if-reused");
  ASSERT_EQ(r.status, 200) << r.error;
  // The pooled connection is reused, and the upstream closes it without answering: the request
  // never reached the application, so it goes again on a fresh connection without any policy.
  r = client.Get("/reset-if-reused");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "first");
  EXPECT_EQ(upstream_.accepted_connections(), 2u);
  EXPECT_EQ(upstream_.requests_for("/reset-if-reused"), 3u);
}

TEST_F(IntegrationFailure, ConnectTimeoutLongerThanRouteTimeoutAnswers504) {
  BlackholeListener blackhole;
  StartProxy(ProxyYaml(prefix_, CatchAllRoutes(cluster_, "timeout: 0.3s"),
                       "[" + ClusterYaml(cluster_, blackhole.port(), "", "10s") + "]"));
  {
    HttpClient client(proxy_.port());
    const HttpResponse r = client.Get("/anything");
    ASSERT_EQ(r.status, 504) << r.error;
    EXPECT_EQ(r.body, "upstream request timeout");
  }
  // The abandoned connect attempt gives back its pending slot.
  ExpectQuiescent();
}

TEST_F(IntegrationFailure, UpstreamProtocolErrorsAnswer502) {
  StartSimple();
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/garbage");
  ASSERT_EQ(r.status, 502) << r.error;
  EXPECT_EQ(r.body,
            "upstream connect error or disconnect/reset before headers. "
            "reset reason: protocol error");
  r = client.Get("/huge-headers");
  ASSERT_EQ(r.status, 502) << r.error;
  EXPECT_THAT(r.body, HasSubstr("reset reason: protocol error"));
  EXPECT_EQ(ClusterStat("upstream_cx_protocol_error"), 2);
  EXPECT_EQ(client.Get("/echo/after").status, 200);
}

TEST_F(IntegrationFailure, UpstreamInterimResponseIsSwallowed) {
  StartSimple();
  HttpClient client(proxy_.port());
  for (const char* path : {"/interim", "/interim?split=1"}) {
    ASSERT_TRUE(client.Send(fmt::format("GET {} HTTP/1.1\r\nHost: a\r\n\r\n", path)));
    ReadOptions options;
    const HttpResponse r = client.ReadResponse(options);
    ASSERT_EQ(r.status, 200) << path << ": " << r.error;
    EXPECT_EQ(r.body, "after interim") << path;
  }
  // Nothing else (no stray 100) is waiting on the connection.
  EXPECT_TRUE(client.buffered().empty());
  EXPECT_EQ(client.Get("/echo/after").status, 200);
  // One upstream connection served all three: the interim response did not break reuse.
  EXPECT_EQ(upstream_.accepted_connections(), 1u);
}

TEST_F(IntegrationFailure, ClientDisconnectReleasesUpstreamRequest) {
  StartSimple("", "", "circuit_breakers: {thresholds: [{max_requests: 1}]}");
  {
    HttpClient client(proxy_.port());
    ASSERT_TRUE(client.Send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n"));
    ASSERT_TRUE(upstream_.WaitForRequests(1));
  }
  // The proxy closes the upstream side of the abandoned request (it is not pooled: its response
  // never came) and forgets the stream.
  EXPECT_TRUE(upstream_.WaitForClosedConnections(1));
  ExpectQuiescent();
  EXPECT_TRUE(WaitForStat("http." + prefix_ + ".downstream_rq_rx_reset", 1));
  HttpClient next(proxy_.port());
  EXPECT_EQ(next.Get("/echo/next").status, 200);
}

TEST_F(IntegrationFailure, GaugesSettleAfterFailures) {
  StartProxy(ProxyYaml(prefix_, RetryRoutes(cluster_, "{retry_on: \"5xx,reset\", num_retries: 1}"),
                       "[" + ClusterYaml(cluster_, upstream_.port()) + "]",
                       "stream_idle_timeout: 0.3s"));
  {
    HttpClient client(proxy_.port());
    EXPECT_EQ(client.Get("/reset-once/g", "x-retry: 1\r\n").status, 200);
    EXPECT_EQ(client.Get("/status/500", "x-retry: 1\r\n").status, 500);
    EXPECT_EQ(client.Get("/reset").status, 503);
    EXPECT_EQ(client.Get("/close-delimited").status, 200);
    EXPECT_EQ(client.Get("/hang").status, 504);  // stream idle timeout, request complete
    HttpClient mid_body(proxy_.port());
    EXPECT_EQ(mid_body.Get("/close-mid-body").status, 200);
  }
  ExpectQuiescent();
}

TEST_F(IntegrationFailure, PerTryTimeoutRetries) {
  StartProxy(ProxyYaml(
      prefix_, RetryRoutes(cluster_, "{retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s}"),
      "[" + ClusterYaml(cluster_, upstream_.port()) + "]"));
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/hang-once/a", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(ClusterStat("upstream_rq_per_try_timeout"), 1);
  EXPECT_EQ(ClusterStat("upstream_rq_retry"), 1);
  // Every attempt hangs: 504 once the retries are used up.
  r = client.Get("/hang", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 504) << r.error;
  EXPECT_EQ(r.body, "upstream request timeout");
  EXPECT_EQ(ClusterStat("upstream_rq_per_try_timeout"), 3);
  EXPECT_EQ(upstream_.requests_for("/hang"), 2u);
  client.Close();
  ExpectQuiescent();
}

// Envoy, when the retry circuit breaker (max_retries) refuses a retry, forwards the upstream's own
// response (flag UO) and counts upstream_rq_retry_overflow.
// Regression: on retry overflow Sluice used to discard the upstream response and answer a local
// 503.
TEST_F(IntegrationFailure, RetryOverflowForwardsUpstreamResponse) {
  StartProxy(ProxyYaml(prefix_, RetryRoutes(cluster_, "{retry_on: 5xx, num_retries: 2}"),
                       "[" +
                           ClusterYaml(cluster_, upstream_.port(),
                                       "circuit_breakers: {thresholds: [{max_retries: 0}]}") +
                           "]"));
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/status/503", "x-retry: 1\r\n");
  ASSERT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body, "status 503");
  EXPECT_FALSE(r.has_header("x-envoy-overloaded"));
  EXPECT_EQ(ClusterStat("upstream_rq_retry_overflow"), 1);
}

}  // namespace
}  // namespace sluice::testing
