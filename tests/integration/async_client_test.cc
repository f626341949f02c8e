// http::AsyncClient (the proxy's own requests, e.g. Proxy-Wasm http_call) against a real test
// upstream on loopback: responses, bodies, trailers, timeouts, resets, unknown clusters, cancel;
// and its streamed form (start_stream, under gRPC callouts): a body sent in pieces, the response
// delivered piece by piece in order, reset.
#include "http/async_client.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_upstream_util.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"

namespace sluice::http {
namespace {

using ::sluice::testing::TestUpstream;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

struct Outcome : AsyncRequestCallbacks {
  std::optional<AsyncResponse> response;
  std::optional<AsyncFailure> failure;
  int calls = 0;
  void on_async_success(AsyncResponse& r) override {
    ++calls;
    response = std::move(r);
  }
  void on_async_failure(AsyncFailure f) override {
    ++calls;
    failure = f;
  }
  bool done() const { return calls > 0; }
};

class AsyncClientTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(upstream_.port()); }

  void Build(uint16_t port) {
    client_.reset();
    manager_.reset();
    config_.name = "callout";
    config_.endpoints = {config::Endpoint{{"127.0.0.1", port}, 1}};
    config_.enable_trailers = true;
    info_.clear();
    info_.push_back(std::make_unique<upstream::ClusterInfo>(config_));
    manager_ = std::make_unique<upstream::ClusterManager>(info_, &loop_, 1);
    std::string error;
    manager_->set_hosts("callout", upstream::resolve_hosts(config_, &error));
    ASSERT_EQ(error, "");
    client_ = std::make_unique<AsyncClient>(loop_, *manager_);
  }

  static HeaderMap Headers(std::string_view method, std::string_view path) {
    HeaderMap h;
    h.add(":method", method);
    h.add(":path", path);
    h.add(":authority", "callout.test");
    return h;
  }

  // Runs the loop until `o` completes (bounded).
  void Run(const Outcome& o) {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!o.done() && std::chrono::steady_clock::now() < limit) {
      loop_.run_for(milliseconds(10));
      loop_.restart();
    }
  }

  AsyncRequest* Send(const HeaderMap& h, Outcome& o, std::string_view body = "",
                     const HeaderMap& trailers = HeaderMap(),
                     milliseconds timeout = milliseconds(0), std::string* error = nullptr) {
    AsyncClient::Options options;
    options.timeout = timeout;
    std::string err;
    AsyncRequest* r = client_->send("callout", h, body, trailers, options, o, &err);
    if (error) *error = err;
    return r;
  }

  TestUpstream upstream_;
  asio::io_context loop_{1};
  config::Cluster config_;
  std::vector<std::unique_ptr<upstream::ClusterInfo>> info_;
  std::unique_ptr<upstream::ClusterManager> manager_;
  std::unique_ptr<AsyncClient> client_;
};

TEST_F(AsyncClientTest, GetReturnsStatusHeadersAndBody) {
  Outcome o;
  ASSERT_NE(Send(Headers("GET", "/echo/hello"), o), nullptr);
  EXPECT_FALSE(o.done());  // never inside send()
  Run(o);
  ASSERT_TRUE(o.response) << (o.failure ? async_failure_name(*o.failure) : "no outcome");
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.response->headers.status(), "200");
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->path, "/echo/hello");
  ASSERT_TRUE(got->header("host"));
  EXPECT_EQ(*got->header("host"), "callout.test");
  EXPECT_EQ(client_->in_flight(), 0u);
  EXPECT_EQ(info_[0]->stats().upstream_rq_completed.value(), 1u);
}

TEST_F(AsyncClientTest, PostSendsBodyWithContentLength) {
  Outcome o;
  ASSERT_NE(Send(Headers("POST", "/echo/post"), o, "payload"), nullptr);
  Run(o);
  ASSERT_TRUE(o.response);
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, "payload");
  ASSERT_TRUE(got->header("content-length"));
  EXPECT_EQ(*got->header("content-length"), "7");
}

TEST_F(AsyncClientTest, TrailersGoChunkedAndComeBack) {
  HeaderMap trailers;
  trailers.add("x-sum", "7");
  Outcome o;
  ASSERT_NE(Send(Headers("POST", "/echo/t"), o, "payload", trailers), nullptr);
  Run(o);
  ASSERT_TRUE(o.response);
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->chunked);
  EXPECT_EQ(got->body, "payload");
  EXPECT_THAT(got->trailer_lines, ::testing::ElementsAre("x-sum: 7"));

  Outcome t;
  ASSERT_NE(Send(Headers("GET", "/trailers"), t), nullptr);
  Run(t);
  ASSERT_TRUE(t.response);
  EXPECT_EQ(t.response->body, "trailed");
  EXPECT_EQ(t.response->trailers.get_or_empty("grpc-status"), "0");
}

TEST_F(AsyncClientTest, ConnectionIsReused) {
  for (int i = 0; i < 3; ++i) {
    Outcome o;
    ASSERT_NE(Send(Headers("GET", "/echo/again"), o), nullptr);
    Run(o);
    ASSERT_TRUE(o.response);
  }
  EXPECT_EQ(upstream_.accepted_connections(), 1u);
}

TEST_F(AsyncClientTest, TimeoutFailsAndCounts) {
  Outcome o;
  ASSERT_NE(Send(Headers("GET", "/hang"), o, "", HeaderMap(), milliseconds(200)), nullptr);
  Run(o);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(*o.failure, AsyncFailure::Timeout);
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(info_[0]->stats().upstream_rq_timeout.value(), 1u);
  EXPECT_EQ(info_[0]->stats().upstream_rq_active.value(), 0);
}

TEST_F(AsyncClientTest, ResetBeforeResponseIsAFailure) {
  Outcome o;
  ASSERT_NE(Send(Headers("GET", "/reset"), o), nullptr);
  Run(o);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(*o.failure, AsyncFailure::Reset);
}

TEST_F(AsyncClientTest, ConnectFailureIsAFailure) {
  TestUpstream gone;
  const uint16_t port = gone.port();
  gone.Stop();
  Build(port);
  Outcome o;
  ASSERT_NE(Send(Headers("GET", "/"), o), nullptr);
  Run(o);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(*o.failure, AsyncFailure::ConnectFailure);
}

TEST_F(AsyncClientTest, ResponseOverTheLimitFails) {
  AsyncClient::Options options;
  options.max_response_body = 1000;
  Outcome o;
  std::string err;
  ASSERT_NE(client_->send("callout", Headers("GET", "/big?bytes=100000"), "", HeaderMap(), options,
                          o, &err),
            nullptr);
  Run(o);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(*o.failure, AsyncFailure::ResponseTooLarge);
}

TEST_F(AsyncClientTest, BadRequestsAreRefusedAtOnce) {
  Outcome o;
  std::string err;
  AsyncClient::Options options;
  EXPECT_EQ(client_->send("nope", Headers("GET", "/"), "", HeaderMap(), options, o, &err), nullptr);
  EXPECT_THAT(err, HasSubstr("unknown cluster 'nope'"));
  HeaderMap no_path;
  no_path.add(":method", "GET");
  no_path.add(":authority", "a");
  EXPECT_EQ(client_->send("callout", no_path, "", HeaderMap(), options, o, &err), nullptr);
  EXPECT_THAT(err, HasSubstr(":path"));
  EXPECT_FALSE(o.done());
}

TEST_F(AsyncClientTest, CancelledRequestNeverCallsBack) {
  Outcome o;
  AsyncRequest* r = Send(Headers("GET", "/slow?ms=100"), o);
  ASSERT_NE(r, nullptr);
  loop_.run_for(milliseconds(20));
  r->cancel();
  loop_.restart();
  loop_.run_for(milliseconds(300));
  EXPECT_FALSE(o.done());
  EXPECT_EQ(client_->in_flight(), 0u);
  // A failure already queued (no host) is not reported after a cancel either.
  config_.endpoints.clear();
  manager_->set_hosts("callout", {});
  Outcome o2;
  AsyncRequest* r2 = Send(Headers("GET", "/"), o2);
  ASSERT_NE(r2, nullptr);
  r2->cancel();
  loop_.restart();
  loop_.run_for(milliseconds(50));
  EXPECT_FALSE(o2.done());
}

TEST_F(AsyncClientTest, DestroyingTheClientWithRequestsInFlightIsSafe) {
  Outcome o;
  ASSERT_NE(Send(Headers("GET", "/hang"), o), nullptr);
  loop_.run_for(milliseconds(20));
  client_.reset();
  loop_.restart();
  loop_.run_for(milliseconds(50));
  EXPECT_FALSE(o.done());
}

// What a streamed request reported, in order.
struct StreamEvents : AsyncStreamCallbacks {
  std::vector<std::string> events;
  std::string body;
  HeaderMap headers, trailers;
  bool finished = false;
  void on_stream_headers(HeaderMap& h, bool end_stream) override {
    events.push_back(end_stream ? "headers+end" : "headers");
    headers = h;
  }
  void on_stream_data(std::string_view data) override {
    if (events.empty() || events.back() != "data") events.push_back("data");
    body.append(data);
  }
  void on_stream_trailers(HeaderMap& t) override {
    events.push_back("trailers");
    trailers = t;
  }
  void on_stream_complete() override {
    events.push_back("complete");
    finished = true;
  }
  void on_stream_failure(AsyncFailure f) override {
    events.push_back(std::string("failure: ") + std::string(async_failure_name(f)));
    finished = true;
  }
};

class AsyncStreamTest : public AsyncClientTest {
 protected:
  void RunUntil(const StreamEvents& e) {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!e.finished && std::chrono::steady_clock::now() < limit) {
      loop_.run_for(milliseconds(10));
      loop_.restart();
    }
  }
  AsyncStream* Start(const HeaderMap& h, StreamEvents& e, bool end_stream = false) {
    std::string error;
    AsyncStream* s = client_->start_stream("callout", h, {}, e, &error, end_stream);
    EXPECT_EQ(error, "");
    return s;
  }
};

TEST_F(AsyncStreamTest, BodyGoesOutInPiecesChunked) {
  StreamEvents e;
  AsyncStream* s = Start(Headers("POST", "/echo/stream"), e);
  ASSERT_NE(s, nullptr);
  s->send_data("pay", false);
  loop_.run_for(milliseconds(50));  // the first piece leaves before the second exists
  loop_.restart();
  EXPECT_TRUE(e.events.empty());
  s->send_data("load", false);
  s->send_data({}, true);
  RunUntil(e);
  EXPECT_THAT(e.events, ::testing::ElementsAre("headers", "data", "complete"));
  EXPECT_EQ(e.headers.status(), "200");
  auto got = upstream_.last_request();
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->chunked);  // no length known up front
  EXPECT_EQ(got->body, "payload");
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(AsyncStreamTest, HeadersOnlyRequestAndTrailersInOrder) {
  StreamEvents e;
  ASSERT_NE(Start(Headers("GET", "/trailers"), e, /*end_stream=*/true), nullptr);
  RunUntil(e);
  EXPECT_THAT(e.events, ::testing::ElementsAre("headers", "data", "trailers", "complete"));
  EXPECT_EQ(e.body, "trailed");
  EXPECT_EQ(e.trailers.get_or_empty("grpc-status"), "0");
}

TEST_F(AsyncStreamTest, ResetMeansNoMoreCallbacks) {
  StreamEvents e;
  AsyncStream* s = Start(Headers("GET", "/hang"), e);
  ASSERT_NE(s, nullptr);
  loop_.run_for(milliseconds(20));
  loop_.restart();
  s->reset();
  loop_.run_for(milliseconds(100));
  EXPECT_TRUE(e.events.empty());
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(AsyncStreamTest, ConnectFailureIsReportedOnce) {
  Build(1);  // nothing listens on port 1
  StreamEvents e;
  AsyncStream* s = Start(Headers("POST", "/"), e);
  ASSERT_NE(s, nullptr);
  s->send_data("ignored", true);  // harmless after a failure, before or after it is known
  RunUntil(e);
  EXPECT_THAT(e.events, ::testing::ElementsAre("failure: connection failure"));
}

}  // namespace
}  // namespace sluice::http
