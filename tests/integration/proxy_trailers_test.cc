// HTTP/1 trailers through the proxy: dropped by default (as Envoy's HTTP/1 codec does), passed
// on in both directions when http_protocol_options.enable_trailers is set on the listener and the
// cluster.
#include <string>

#include <fmt/format.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "integration_fixture.h"

namespace sluice::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr char kListenerTrailers[] = "http_protocol_options: {enable_trailers: true}";

constexpr char kChunkedRequestWithTrailers[] =
    "POST /echo/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\nX-Request-Sum: 42\r\nX-Other: yes\r\n\r\n";

class IntegrationTrailers : public IntegrationFixture {};

TEST_F(IntegrationTrailers, DroppedByDefaultInBothDirections) {
  StartSimple();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send(kChunkedRequestWithTrailers));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "hello");
  EXPECT_TRUE(got->trailer_lines.empty());

  r = client.Get("/trailers");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "trailed");
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.trailers.empty());
}

TEST_F(IntegrationTrailers, PassedOnWhenEnabled) {
  StartSimple("", kListenerTrailers, kClusterTrailers);
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send(kChunkedRequestWithTrailers));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "hello");
  EXPECT_THAT(got->trailer_lines, ElementsAre("x-request-sum: 42", "x-other: yes"));

  r = client.Get("/trailers");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "trailed");
  EXPECT_TRUE(r.chunked);
  EXPECT_THAT(r.trailers, ElementsAre(Pair("x-checksum", "abc"), Pair("grpc-status", "0")));
  // The connection stays usable after trailers in both directions.
  EXPECT_EQ(client.Get("/echo/after").status, 200);
}

// The listener accepts trailers but the cluster does not: the upstream gets a plain last chunk
// (and its own trailers are not passed back).
TEST_F(IntegrationTrailers, ClusterWithoutTrailersGetsPlainLastChunk) {
  StartSimple("", kListenerTrailers);
  HttpClient client(proxy_.port());
  ASSERT_TRUE(client.Send(kChunkedRequestWithTrailers));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "hello");
  EXPECT_TRUE(got->trailer_lines.empty());
  r = client.Get("/trailers");
  EXPECT_TRUE(r.trailers.empty());
}

// Trailers with a bare LF are refused like headers with one.
TEST_F(IntegrationTrailers, MalformedTrailersAre400) {
  StartSimple("", kListenerTrailers, kClusterTrailers);
  HttpClient client(proxy_.port());
  ASSERT_TRUE(
      client.Send("POST /echo/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1\r\na\r\n0\r\nX: 1\n\r\n"));
  const HttpResponse r = client.ReadResponse();
  // The head and body were already on their way upstream; the upstream had not answered, so the
  // client gets a 400 and the connection closes. The upstream never sees a trailer.
  EXPECT_EQ(r.status, 400) << r.error;
  EXPECT_TRUE(client.WaitForClose());
  for (const auto& got : upstream_.received()) EXPECT_TRUE(got.trailer_lines.empty());
}

// A Wasm plugin (extensions/examples/trailers) reads a request trailer, adds one for the
// upstream, and ends the response with trailers of its own, on both runtimes.
class IntegrationWasmTrailers : public IntegrationFixture,
                                public ::testing::WithParamInterface<std::string> {
 protected:
  void StartWithPlugin() {
    StartProxy(WithHttpFilter(
        ProxyYaml(prefix_, CatchAllRoutes(cluster_, ""),
                  "[" + ClusterYaml(cluster_, upstream_.port(), kClusterTrailers) + "]",
                  kListenerTrailers),
        WasmFilterYaml("trailers", "trailers", GetParam(), SLUICE_EXTENSIONS_DIR)));
  }
};

TEST_P(IntegrationWasmTrailers, PluginReadsAndAddsTrailers) {
  StartWithPlugin();
  HttpClient client(proxy_.port());
  ASSERT_TRUE(
      client.Send("POST /echo/t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n0\r\nX-Checksum: 5d41402a\r\n\r\n"));
  HttpResponse r = client.ReadResponse();
  ASSERT_EQ(r.status, 200) << r.error;
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_THAT(got->trailer_lines,
              ElementsAre("x-checksum: 5d41402a", "x-checksum-seen-by-plugin: yes"));
  // /echo answers with a Content-Length: no chunked framing, so no trailers can follow it.
  EXPECT_TRUE(r.trailers.empty());

  // A chunked response without trailers of its own: the plugin adds them in its last body call.
  r = client.Get("/chunked");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "hello chunked world");
  EXPECT_THAT(r.trailers,
              ElementsAre(Pair("x-response-bytes", "19"), Pair("x-request-checksum", "none")));
  // A response with trailers: the plugin's join them.
  r = client.Get("/trailers");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_THAT(r.trailers,
              ElementsAre(Pair("x-checksum", "abc"), Pair("grpc-status", "0"),
                          Pair("x-response-bytes", "7"), Pair("x-request-checksum", "none")));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, IntegrationWasmTrailers, ::testing::Values("v8", "null"));

}  // namespace
}  // namespace sluice::testing
