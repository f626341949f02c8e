// The hub's HTTP server over real loopback connections: bodies streamed to the handler piece by
// piece, "Expect: 100-continue" answered only when the body is wanted, pipelined requests
// answered in order, a file streamed whole under back-pressure, a handler that throws costing
// its request a 500 (never the server), and malformed requests refused.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "hub/http_server.h"

namespace sluice::hub {
namespace {

using namespace std::chrono_literals;

class Service : public HttpService {
 public:
  std::unique_ptr<Exchange> begin(HttpRequest& request) override {
    if (request.path == "/throw") throw std::runtime_error("handler bug");
    if (request.path == "/refuse") return respond_now(HttpResponse::text(403, "no\n"));
    if (request.path == "/file") {
      HttpResponse r;
      r.content_type = "application/octet-stream";
      r.file = file;
      r.file_size = std::filesystem::file_size(file);
      return respond_now(std::move(r));
    }
    if (request.path == "/query") {
      return respond_now(
          HttpResponse::text(200, request.param("a") + "|" + request.param("b") + "|" +
                                      std::to_string(request.params("a").size()) + "\n"));
    }
    // Echoes the body's size and how many pieces it came in.
    return collect_body(
        1 << 20,
        [this](std::string body) {
          return HttpResponse::text(200, "got " + std::to_string(body.size()) + "\n");
        },
        [](size_t) { return HttpResponse::text(413, "too big\n"); });
  }
  std::string file;
};

class HubHttpServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(server.listen({asio::ip::make_address("127.0.0.1"), 0}), "");
    client.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  }
  // Runs the loop until `until` is in what the client received (or 3 s pass).
  std::string receive(const std::string& until) {
    for (int i = 0; i < 150 && received.find(until) == std::string::npos; ++i) {
      if (until == "never" && i > 0) break;  // one round
      loop.run_for(20ms);
      while (client.available() > 0) {
        char buf[65536];
        received.append(buf, client.read_some(asio::buffer(buf)));
      }
    }
    return received;
  }
  void send(const std::string& bytes) { asio::write(client, asio::buffer(bytes)); }

  asio::io_context loop;
  Service service;
  HttpServer server{loop, service, HttpServerOptions{}};
  asio::ip::tcp::socket client{loop};
  std::string received;
};

TEST_F(HubHttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  send(
      "POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
      "GET /query?a=1%2F2&b=x+y&a=3 HTTP/1.1\r\nhost: x\r\n\r\n"
      "POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: "
      "chunked\r\n\r\n2\r\nhi\r\n3\r\nyou\r\n0\r\n\r\n");
  const std::string r = receive("got 5");
  const size_t first = r.find("got 3"), second = r.find("1/2|x y|2"), third = r.find("got 5");
  ASSERT_NE(first, std::string::npos) << r;
  ASSERT_NE(second, std::string::npos) << r;
  ASSERT_NE(third, std::string::npos) << r;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
}

TEST_F(HubHttpServerTest, ContinueOnlyWhenTheBodyIsWanted) {
  send("POST /refuse HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 100\r\n\r\n");
  std::string r = receive("no\n");
  EXPECT_EQ(r.find("100 Continue"), std::string::npos) << r;
  EXPECT_NE(r.find("HTTP/1.1 403"), std::string::npos) << r;
  EXPECT_NE(r.find("connection: close"), std::string::npos) << "an unread body must close: " << r;

  asio::ip::tcp::socket second(loop);
  second.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  client = std::move(second);
  received.clear();
  send("POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n");
  r = receive("100 Continue");
  EXPECT_NE(r.find("HTTP/1.1 100 Continue"), std::string::npos) << r;
  send("body");
  r = receive("got 4");
  EXPECT_NE(r.find("got 4"), std::string::npos) << r;
}

TEST_F(HubHttpServerTest, AThrowingHandlerCostsOnlyItsRequest) {
  send(
      "GET /throw HTTP/1.1\r\nhost: x\r\n\r\nPOST /after HTTP/1.1\r\nhost: x\r\ncontent-length: "
      "2\r\n\r\nok");
  const std::string r = receive("got 2");
  EXPECT_NE(r.find("HTTP/1.1 500"), std::string::npos) << r;
  EXPECT_NE(r.find("got 2"), std::string::npos) << r;
}

TEST_F(HubHttpServerTest, BodyOverTheLimitIsRefusedAndTheConnectionClosed) {
  send("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n");
  send(std::string(1100000, 'x'));
  const std::string r = receive("too big");
  EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r;
  EXPECT_NE(r.find("connection: close"), std::string::npos) << r;
}

TEST_F(HubHttpServerTest, MalformedRequestIsRefused) {
  send("GET /x HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n");
  const std::string r = receive("\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
}

TEST_F(HubHttpServerTest, LargeFileIsStreamedWhole) {
  service.file =
      (std::filesystem::temp_directory_path() / ("hub-http-file-" + std::to_string(::getpid())))
          .string();
  std::string content;
  for (int i = 0; content.size() < 5 * 1024 * 1024; ++i) content += std::to_string(i) + ",";
  std::ofstream(service.file, std::ios::binary) << content;
  send("GET /file HTTP/1.1\r\nhost: x\r\n\r\nHEAD /file HTTP/1.1\r\nhost: x\r\n\r\n");
  // The HEAD's answer comes after the whole file: read until its header block is in.
  auto complete = [&] {
    const size_t end = received.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const size_t after = end + 4 + content.size();
    return received.size() > after && received.find("\r\n\r\n", after) != std::string::npos;
  };
  for (int i = 0; i < 3000 && !complete(); ++i) receive("never");  // ASan is slow
  const std::string r = received;
  const size_t body = r.find("\r\n\r\n") + 4;
  ASSERT_GE(r.size(), body + content.size()) << "got " << r.size() << " bytes";
  EXPECT_EQ(r.substr(body, content.size()), content);
  const std::string head = r.substr(body + content.size());
  EXPECT_NE(head.find("content-length: " + std::to_string(content.size())), std::string::npos);
  EXPECT_EQ(head.find("\r\n\r\n") + 4, head.size()) << "HEAD carried a body";
  std::filesystem::remove(service.file);
}

}  // namespace
}  // namespace sluice::hub
