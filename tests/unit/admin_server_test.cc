// The admin listener: its rule for calls that change the server (a bearer token when one is
// configured; without one, only on a loopback address), and answers given later (a deploy waits
// for its reload) over a real connection.
#include <chrono>

#include <gtest/gtest.h>

#include "admin/admin_server.h"

namespace sluice::admin {
namespace {

class FakeBackend : public AdminBackend {
 public:
  std::string server_info_json() override { return "{}"; }
  std::string config_dump_json() override { return "{}"; }
  std::string clusters_text(bool) override { return ""; }
  std::string listeners_text(bool) override { return ""; }
  bool health_check_failed() const override { return failed; }
  void set_health_check_failed(bool f) override { failed = f; }
  void quit() override {}
  std::string reload_config(int* status) override {
    *status = 200;
    ++reloads;
    return "{}";
  }
  std::string wasm_json() override { return "{}"; }
  void refresh_server_stats() override {}
  std::string admin_token() const override { return token; }
  std::string deployed_plugins_json() override { return R"({"plugins":[]})"; }
  void deploy_plugin(std::string body, std::function<void(AdminResponse)> done) override {
    deployed = body;
    if (defer) {
      pending = std::move(done);
      return;
    }
    done(AdminResponse{201, "application/json", "{}"});
  }
  void undeploy_plugin(std::string name, std::function<void(AdminResponse)> done) override {
    undeployed = name;
    done(AdminResponse{200, "application/json", "{}"});
  }

  std::string token, deployed, undeployed;
  bool defer = false;  // keep deploy's answer in `pending`
  std::function<void(AdminResponse)> pending;
  bool failed = false;
  int reloads = 0;
};

class AdminAuth : public testing::Test {
 protected:
  int Status(const std::string& method, const std::string& target,
             const std::string& authorization = "", const std::string& body = "") {
    int status = 0;
    server.handle(AdminRequest{method, target, authorization, body},
                  [&](AdminResponse r) { status = r.status; });
    return status;
  }

  asio::io_context loop;
  FakeBackend backend;
  AdminServer server{loop, backend};
};

TEST_F(AdminAuth, LoopbackWithoutTokenAllowsEverything) {
  EXPECT_EQ(Status("POST", "/reload"), 200);
  EXPECT_EQ(Status("POST", "/wasm/plugins", "", R"({"name":"a"})"), 201);
  EXPECT_EQ(backend.deployed, R"({"name":"a"})");
  EXPECT_EQ(Status("DELETE", "/wasm/plugins/a"), 200);
  EXPECT_EQ(backend.undeployed, "a");
}

TEST_F(AdminAuth, NotLoopbackWithoutTokenRefusesChangesOnly) {
  server.set_loopback(false);
  EXPECT_EQ(Status("POST", "/reload"), 403);
  EXPECT_EQ(Status("POST", "/healthcheck/fail"), 403);
  EXPECT_FALSE(backend.failed);
  EXPECT_EQ(Status("POST", "/wasm/plugins", "", "{}"), 403);
  EXPECT_EQ(Status("DELETE", "/wasm/plugins/a"), 403);
  EXPECT_EQ(Status("POST", "/quitquitquit"), 403);
  EXPECT_EQ(backend.reloads, 0);
  EXPECT_TRUE(backend.deployed.empty());
  EXPECT_EQ(Status("GET", "/ready"), 200);
  EXPECT_EQ(Status("GET", "/wasm/plugins"), 200);
}

TEST_F(AdminAuth, TokenIsRequiredWhenConfiguredEvenOnLoopback) {
  backend.token = "0123456789abcdef0123";
  EXPECT_EQ(Status("POST", "/reload"), 401);
  EXPECT_EQ(Status("POST", "/reload", "Bearer 0123456789abcdef012"), 401);    // a prefix
  EXPECT_EQ(Status("POST", "/reload", "Bearer 0123456789abcdef01234"), 401);  // longer
  EXPECT_EQ(Status("POST", "/reload", "Basic 0123456789abcdef0123"), 401);
  EXPECT_EQ(Status("POST", "/reload", "0123456789abcdef0123"), 401);
  EXPECT_EQ(backend.reloads, 0);
  EXPECT_EQ(Status("POST", "/reload", "Bearer 0123456789abcdef0123"), 200);
  EXPECT_EQ(Status("POST", "/reload", "bearer 0123456789abcdef0123"), 200);  // scheme: any case
  server.set_loopback(false);
  EXPECT_EQ(Status("DELETE", "/wasm/plugins/x", "Bearer 0123456789abcdef0123"), 200);
  EXPECT_EQ(Status("GET", "/stats"), 200);
}

TEST_F(AdminAuth, RefusalSaysWhatToSend) {
  backend.token = "0123456789abcdef0123";
  AdminResponse r = server.handle("POST", "/reload");
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("Authorization: Bearer"), std::string::npos);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "www-authenticate");
}

TEST_F(AdminAuth, PluginsPathMethods) {
  EXPECT_EQ(Status("PUT", "/wasm/plugins"), 405);
  EXPECT_EQ(Status("POST", "/wasm/plugins/a"), 405);
  EXPECT_EQ(Status("DELETE", "/wasm/plugins/"), 405);
}

// A deploy answered later: the request pipelined behind it waits, then both answers come in
// order on the same connection.
TEST(AdminSession, PipelinedRequestWaitsForADeferredAnswer) {
  using namespace std::chrono_literals;
  asio::io_context loop;
  FakeBackend backend;
  backend.defer = true;
  AdminServer server(loop, backend);
  ASSERT_EQ(server.listen({asio::ip::make_address("127.0.0.1"), 0}), "");
  asio::ip::tcp::socket client(loop);
  client.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  const std::string requests =
      "POST /wasm/plugins HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\n\r\n{\"name\":\"a\"}"
      "GET /ready HTTP/1.1\r\nhost: x\r\n\r\n";
  asio::write(client, asio::buffer(requests));
  loop.run_for(300ms);
  ASSERT_TRUE(backend.pending) << "the deploy did not reach the backend";
  EXPECT_EQ(backend.deployed, R"({"name":"a"})");
  EXPECT_EQ(client.available(), 0u) << "something was answered before the deploy";

  backend.pending(AdminResponse{201, "application/json", "{\"deployed\":true}"});
  std::string received;
  for (int i = 0; i < 50 && received.find("LIVE") == std::string::npos; ++i) {
    loop.run_for(20ms);
    while (client.available() > 0) {
      char buf[4096];
      const size_t n = client.read_some(asio::buffer(buf));
      received.append(buf, n);
    }
  }
  const size_t deployed = received.find("HTTP/1.1 201");
  const size_t ready = received.find("HTTP/1.1 200");
  ASSERT_NE(deployed, std::string::npos) << received;
  ASSERT_NE(ready, std::string::npos) << received;
  EXPECT_LT(deployed, ready);
  EXPECT_NE(received.find("{\"deployed\":true}"), std::string::npos);
  EXPECT_NE(received.find("LIVE"), std::string::npos);
  // The session lives while its connection does: close it and let it go.
  client.close();
  loop.run_for(100ms);
}

// A body over the limit is refused, and the connection closed.
TEST(AdminSession, OversizedBodyIsRefused) {
  using namespace std::chrono_literals;
  asio::io_context loop;
  FakeBackend backend;
  AdminServer server(loop, backend);
  ASSERT_EQ(server.listen({asio::ip::make_address("127.0.0.1"), 0}), "");
  asio::ip::tcp::socket client(loop);
  client.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  const size_t size = 2 * 1024 * 1024;
  const std::string head =
      "POST /wasm/plugins HTTP/1.1\r\nhost: x\r\ncontent-length: " + std::to_string(size) +
      "\r\n\r\n";
  asio::write(client, asio::buffer(head));
  std::string body(size, 'x');
  size_t sent = 0;
  std::string received;
  client.non_blocking(true);
  for (int i = 0; i < 500 && received.find("\r\n\r\n") == std::string::npos; ++i) {
    asio::error_code ec;
    if (sent < body.size())
      sent += client.write_some(asio::buffer(body.data() + sent, body.size() - sent), ec);
    loop.run_for(5ms);
    char buf[4096];
    const size_t n = client.read_some(asio::buffer(buf), ec);
    if (!ec) received.append(buf, n);
  }
  EXPECT_NE(received.find("HTTP/1.1 413"), std::string::npos) << received;
  EXPECT_TRUE(backend.deployed.empty());
}

}  // namespace
}  // namespace sluice::admin
