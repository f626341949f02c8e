// Integration tests of the normal proxy path over real loopback sockets: forwarding headers and
// bodies, keep-alive reuse, response framing (chunked, close-delimited, HTTP/1.0), pipelining and
// back-pressure in both directions.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class IntegrationProxy : public IntegrationFixture {};

bool AllDigits(const std::string* s) {
  return s && !s->empty() && s->find_first_not_of("0123456789") == std::string::npos;
}

// "TE: trailers" is the one TE value passed on (as Envoy does): gRPC clients send it, and HTTP/2
// allows no other.
TEST_F(IntegrationProxy, TeTrailersIsForwarded) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("GET /echo/te HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n"));
  const HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  const auto req = upstream_.last_request();
  ASSERT_TRUE(req.has_value());
  ASSERT_TRUE(req->header("te"));
  EXPECT_EQ(*req->header("te"), "trailers");
}

TEST_F(IntegrationProxy, GetForwardsHeadersAndStripsHopByHop) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("GET /echo/basic?x=1 HTTP/1.1\r\n"
                  "Host: example.test:8080\r\n"
                  "Connection: keep-alive, X-Custom-Hop\r\n"
                  "Keep-Alive: timeout=5\r\n"
                  "TE: gzip\r\n"
                  "Proxy-Connection: keep-alive\r\n"
                  "X-Custom-Hop: secret\r\n"
                  "X-Keep: yes\r\n"
                  "\r\n"));
  const HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(r.complete);
  ASSERT_TRUE(r.has_header("server"));
  EXPECT_EQ(*r.header("server"), "envoy");  // the upstream's "test-upstream" is overwritten
  EXPECT_TRUE(AllDigits(r.header("x-envoy-upstream-service-time")));
  EXPECT_FALSE(r.has_header("connection"));

  const auto req = upstream_.last_request();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->method, "GET");
  EXPECT_EQ(req->target, "/echo/basic?x=1");
  EXPECT_EQ(req->version, "HTTP/1.1");
  ASSERT_EQ(req->header_count("host"), 1u);
  EXPECT_EQ(*req->header("host"), "example.test:8080");  // from :authority
  ASSERT_TRUE(req->header("x-forwarded-proto"));
  EXPECT_EQ(*req->header("x-forwarded-proto"), "http");
  ASSERT_TRUE(req->header("x-request-id"));
  EXPECT_TRUE(std::regex_match(
      *req->header("x-request-id"),
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << *req->header("x-request-id");
  for (const char* hop : {"connection", "keep-alive", "te", "proxy-connection", "x-custom-hop"}) {
    EXPECT_EQ(req->header(hop), nullptr) << hop << " was forwarded";
  }
  ASSERT_TRUE(req->header("x-keep"));
  EXPECT_EQ(*req->header("x-keep"), "yes");
  // The echo body is exactly what the upstream read.
  EXPECT_EQ(r.body, req->raw_head);
}

TEST_F(IntegrationProxy, PostBodiesAreForwarded) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(
      client.Send("POST /echo/cl HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  auto req = upstream_.last_request();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->body, "hello world");
  ASSERT_TRUE(req->header("content-length"));
  EXPECT_EQ(*req->header("content-length"), "11");
  EXPECT_EQ(r.body, req->raw_head + "hello world");

  // A chunked request body stays chunked upstream (its length is unknown when the head goes out).
  ASSERT_TRUE(
      client.Send("POST /echo/chunked HTTP/1.1\r\nHost: a\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  req = upstream_.last_request();
  ASSERT_TRUE(req.has_value());
  EXPECT_TRUE(req->chunked);
  EXPECT_EQ(req->header_count("transfer-encoding"), 1u);
  EXPECT_EQ(req->body, "hello world");

  // Expect: 100-continue is answered by the proxy and not forwarded.
  ASSERT_TRUE(
      client.Send("POST /echo/expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  "Content-Length: 3\r\n\r\nabc"));
  r = client.ReadResponse();  // skips the interim 100
  ASSERT_EQ(r.status, 200) << r.error;
  req = upstream_.last_request();
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->header("expect"), nullptr);
  EXPECT_EQ(req->body, "abc");
}

TEST_F(IntegrationProxy, HeadResponseHasNoBodyAndKeepsConnectionUsable) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("HEAD /echo/head HTTP/1.1\r\nHost: a\r\n\r\n"));
  ReadOptions head;
  head.head_request = true;
  HttpResponse r = client.ReadResponse(head);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.has_header("content-length"));
  // The next response on the connection must start right here: no body bytes were sent.
  r = client.Get("/echo/after-head");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_NE(r.body.find("GET /echo/after-head HTTP/1.1"), std::string::npos);
}

TEST_F(IntegrationProxy, KeepAliveReusesOneUpstreamConnection) {
  StartSimple();
  HttpClient client(proxy_.port());
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) {
    const HttpResponse r = client.Get(fmt::format("/echo/ka{}", i));
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error;
    EXPECT_FALSE(r.closed);
  }
  EXPECT_EQ(upstream_.requests(), static_cast<size_t>(kRequests));
  EXPECT_EQ(upstream_.accepted_connections(), 1u);
  EXPECT_EQ(ClusterStat("upstream_cx_total"), 1);
  EXPECT_EQ(ClusterStat("upstream_rq_total"), kRequests);
  EXPECT_TRUE(WaitForStat("http." + prefix_ + ".downstream_rq_2xx", kRequests))
      << HcmStat("downstream_rq_2xx");
}

// A keep-alive connection reuses its stream object from request to request: nothing of one
// request may show in the next one's stream info (here, its access log line).
TEST_F(IntegrationProxy, EachKeepAliveRequestStartsWithAFreshStream) {
  const std::string log_path = ::testing::TempDir() + "/" + UniqueName("fresh_stream") + ".log";
  const std::string routes = fmt::format(
      "[{{name: direct, match: {{prefix: \"/direct\"}}, direct_response: {{status: 204}}}}, "
      "{{name: proxied, match: {{prefix: \"/echo/\"}}, route: {{cluster: {}}}}}]",
      cluster_);
  const std::string access_log = fmt::format(R"(access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {}
              log_format:
                text_format_source:
                  inline_string: "%ROUTE_NAME% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %UPSTREAM_CLUSTER%\n")",
                                             log_path);
  StartProxy(
      ProxyYaml(prefix_, routes, "[" + ClusterYaml(cluster_, upstream_.port()) + "]", access_log));
  HttpClient client(proxy_.port());
  const std::vector<std::pair<std::string, int>> requests = {
      {"/echo/1", 200}, {"/direct", 204}, {"/none", 404}, {"/echo/2", 200}, {"/direct", 204}};
  for (const auto& [path, status] : requests) {
    const HttpResponse r = client.Get(path);
    ASSERT_EQ(r.status, status) << path << ": " << r.error;
    ASSERT_FALSE(r.closed) << path;
  }
  EXPECT_EQ(upstream_.accepted_connections(), 1u);

  const std::string upstream = fmt::format("127.0.0.1:{} {}", upstream_.port(), cluster_);
  const std::string expected = "proxied 200 - " + upstream + "\n" +
                               "direct 204 - - -\n"
                               "- 404 NR - -\n"
                               "proxied 200 - " +
                               upstream + "\n" + "direct 204 - - -\n";
  std::string logged;
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    logged = ReadFileOrEmpty(log_path);
    if (logged.size() >= expected.size()) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(logged, expected);
  std::remove(log_path.c_str());
}

TEST_F(IntegrationProxy, ChunkedUpstreamResponseIsStreamedChunked) {
  StartSimple();
  HttpClient client(proxy_.port());
  const HttpResponse r = client.Get("/chunked");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.body, "hello chunked world");
  EXPECT_EQ(client.Get("/echo/next").status, 200);
}

TEST_F(IntegrationProxy, CloseDelimitedResponseIsChunkedForHttp11Client) {
  StartSimple();
  HttpClient client(proxy_.port());
  HttpResponse r = client.Get("/close-delimited");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(r.has_header("content-length"));
  EXPECT_EQ(r.body, "close-delimited body");
  // The client connection outlives the upstream one.
  r = client.Get("/echo/after-close-delimited");
  EXPECT_EQ(r.status, 200) << r.error;
}

TEST_F(IntegrationProxy, CloseDelimitedResponseStaysCloseDelimitedForHttp10Client) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send("GET /close-delimited HTTP/1.0\r\n\r\n"));
  const HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.version, "HTTP/1.0");
  EXPECT_FALSE(r.chunked);
  EXPECT_FALSE(r.has_header("transfer-encoding"));
  EXPECT_FALSE(r.has_header("content-length"));
  EXPECT_TRUE(r.closed);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.body, "close-delimited body");
}

TEST_F(IntegrationProxy, PipelinedRequestsAreAnsweredInOrder) {
  StartSimple();
  HttpClient client(proxy_.port());
  // The first one is the slowest: answering out of order would put it last.
  ASSERT_TRUE(
      client.Send("GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /echo/second HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n"));
  const HttpResponse first = client.ReadResponse();
  const HttpResponse second = client.ReadResponse();
  const HttpResponse third = client.ReadResponse();
  ASSERT_EQ(first.status, 200) << first.error;
  ASSERT_EQ(second.status, 200) << second.error;
  ASSERT_EQ(third.status, 200) << third.error;
  EXPECT_EQ(first.body, "slow");
  EXPECT_EQ(second.body.rfind("GET /echo/second HTTP/1.1\r\n", 0), 0u) << second.body;
  EXPECT_EQ(third.body, "hello chunked world");
  EXPECT_TRUE(client.buffered().empty());
  EXPECT_EQ(upstream_.requests(), 3u);
}

TEST_F(IntegrationProxy, SlowReaderGetsLargeBodyIntact) {
  StartSimple();
  constexpr uint64_t kSize = 8 * 1024 * 1024;
  // A small receive window: the proxy's write buffer fills and it must pause the upstream.
  HttpClient client(proxy_.port(), /*rcvbuf=*/32 * 1024);
  ASSERT_TRUE(client.Send(fmt::format("GET /big?bytes={} HTTP/1.1\r\nHost: a\r\n\r\n", kSize)));
  ASSERT_TRUE(upstream_.WaitForRequests(1));
  std::this_thread::sleep_for(milliseconds(500));  // let every buffer on the way fill up
  RecordProperty("upstream_bytes_written_while_client_paused",
                 std::to_string(upstream_.big_bytes_written()));
  ReadOptions slow;
  slow.timeout = seconds(120);
  slow.max_read = 16 * 1024;
  int reads = 0;
  slow.before_body_read = [&reads] {
    if (++reads % 4 == 0) std::this_thread::sleep_for(milliseconds(2));
  };
  const HttpResponse r = client.ReadResponse(slow);
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(r.complete) << "got " << r.body.size() << " bytes, error: " << r.error;
  ASSERT_EQ(r.body.size(), kSize);
  std::string expected(kSize, '\0');
  for (uint64_t i = 0; i < kSize; ++i) expected[i] = TestUpstream::BigBodyByte(i);
  EXPECT_EQ(Fnv1a(r.body), Fnv1a(expected));
  EXPECT_TRUE(r.body == expected);
  // Still usable afterwards.
  EXPECT_EQ(client.Get("/echo/after-big").status, 200);
}

TEST_F(IntegrationProxy, LargeUploadToSlowUpstreamArrivesIntact) {
  StartSimple();
  constexpr uint64_t kSize = 8 * 1024 * 1024;
  std::string body(kSize, '\0');
  for (uint64_t i = 0; i < kSize; ++i) body[i] = TestUpstream::BigBodyByte(i * 3);
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send(fmt::format(
      "POST /slow-sink?chunk=16384&ms=1 HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
      kSize)));
  // Blocks while the proxy holds back (its buffers are bounded), returns once all is accepted.
  ASSERT_TRUE(client.Send(body));
  ReadOptions options;
  options.timeout = seconds(120);
  const HttpResponse r = client.ReadResponse(options);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, fmt::format("bytes={} fnv={:016x}", kSize, Fnv1a(body)));
}

TEST_F(IntegrationProxy, Http10KeepAliveClient) {
  StartSimple();
  HttpClient client(proxy_.port());
  // With a length, an HTTP/1.0 keep-alive client keeps its connection.
  ASSERT_TRUE(client.Send("GET /echo/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.version, "HTTP/1.0");
  ASSERT_TRUE(r.header("connection"));
  EXPECT_EQ(*r.header("connection"), "keep-alive");
  EXPECT_FALSE(r.closed);
  // Without one (the upstream chunks), HTTP/1.0 can only end the body by closing.
  ASSERT_TRUE(client.Send("GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ(r.body, "hello chunked world");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.closed);
}

TEST_F(IntegrationProxy, ConnectionCloseIsHopByHop) {
  StartSimple();
  HttpClient client(proxy_.port());
  // The upstream closes its connection; the client's stays open, and the next request gets a
  // fresh upstream connection.
  HttpResponse r = client.Get("/conn-close");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "closing");
  EXPECT_FALSE(r.has_header("connection"));
  r = client.Get("/echo/after");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_FALSE(r.closed);
  EXPECT_EQ(upstream_.accepted_connections(), 2u);
  EXPECT_EQ(ClusterStat("upstream_cx_total"), 2);

  // The client asks for a close: it gets it, while the upstream connection stays pooled.
  r = client.Get("/echo/last", "Connection: close\r\n");
  ASSERT_EQ(r.status, 200) << r.error;
  ASSERT_TRUE(r.header("connection"));
  EXPECT_EQ(*r.header("connection"), "close");
  EXPECT_TRUE(client.WaitForClose());
  HttpClient other(proxy_.port());
  EXPECT_EQ(other.Get("/echo/other").status, 200);
  EXPECT_LE(upstream_.accepted_connections(), 3u);  // the other worker may need its own
}

TEST_F(IntegrationProxy, ManyConcurrentClients) {
  StartSimple();
  constexpr int kClients = 8;
  constexpr int kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      HttpClient client(proxy_.port());
      for (int i = 0; i < kRequests; ++i) {
        const char* paths[] = {"/echo/x", "/chunked", "/close-delimited", "/status/404"};
        const std::string path = paths[(c + i) % 4];
        const HttpResponse r = client.Get(path);
        const int expected = path == "/status/404" ? 404 : 200;
        if (r.status == expected && r.complete) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(upstream_.requests(), static_cast<size_t>(kClients * kRequests));
  EXPECT_TRUE(WaitForStat("http." + prefix_ + ".downstream_rq_completed", kClients * kRequests));
  ExpectQuiescent();
}

}  // namespace
}  // namespace sluice::testing
