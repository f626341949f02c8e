// The admin listener (Envoy's paths): readiness, server info, stats in text and Prometheus form,
// config dump, clusters, listeners, log level, health-check fail/ok and quit. Runs on the main
// thread's loop, never on a worker.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio.hpp>

#include "common/header_map.h"

namespace sluice::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=UTF-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};  // extra response headers
};

// What the admin endpoints need from the server.
class AdminBackend {
 public:
  virtual ~AdminBackend() = default;
  virtual std::string server_info_json() = 0;
  virtual std::string config_dump_json() = 0;
  virtual std::string clusters_text(bool json) = 0;
  virtual std::string listeners_text(bool json) = 0;
  virtual bool health_check_failed() const = 0;
  virtual void set_health_check_failed(bool failed) = 0;
  virtual void quit() = 0;
  // POST /reload: reloads the configuration now; `status` 200 (accepted), 202 (fetching remote
  // code first: /config_dump's last_update shows the end) or 400 (rejected). The body is JSON
  // (the outcome, as /config_dump's last_update).
  virtual std::string reload_config(int* status) = 0;
  // GET /wasm: every Wasm plugin, its limits, its VMs per thread, its last failure (JSON).
  virtual std::string wasm_json() = 0;
  virtual void refresh_server_stats() = 0;
  // sluice.admin.token: what a mutating call's "Authorization: Bearer" must carry; "" for none.
  virtual std::string admin_token() const = 0;
  // GET /wasm/plugins: the plugins deployed through this API (the overlay), and whether each runs.
  virtual std::string deployed_plugins_json() = 0;
  // POST /wasm/plugins (body: config/overlay.h's JSON) and DELETE /wasm/plugins/NAME: answered
  // through `done` when the reload that applies the change has ended (fetching an image first
  // may take a while); the overlay file changes only if that reload is accepted.
  virtual void deploy_plugin(std::string body, std::function<void(AdminResponse)> done) = 0;
  virtual void undeploy_plugin(std::string name, std::function<void(AdminResponse)> done) = 0;
};

struct AdminRequest {
  std::string method;
  std::string target;         // path and query
  std::string authorization;  // the Authorization header, or ""
  std::string body;
};

class AdminServer {
 public:
  AdminServer(asio::io_context& loop, AdminBackend& backend);
  ~AdminServer();
  // Binds and starts accepting. Returns an error message or "".
  std::string listen(const asio::ip::tcp::endpoint& endpoint);
  uint16_t port() const;
  void close();

  // Routes one request; `done` may be called later (deploys wait for their reload).
  void handle(const AdminRequest& request, std::function<void(AdminResponse)> done);
  // The synchronous endpoints (everything but deploy and undeploy), for tests.
  AdminResponse handle(std::string_view method, std::string_view path_and_query,
                       std::string_view authorization = "");

  // Mutating calls on an address that is not loopback need a token: see authorize().
  void set_loopback(bool loopback) { loopback_ = loopback; }

 private:
  class Session;
  void accept();
  // Refuses a mutating call (any method but GET and HEAD) without the configured bearer token,
  // or any mutating call when the admin address is not loopback and no token is configured.
  std::optional<AdminResponse> authorize(std::string_view method,
                                         std::string_view authorization) const;

  asio::io_context& loop_;
  AdminBackend& backend_;
  asio::ip::tcp::acceptor acceptor_;
  bool loopback_ = true;
};

}  // namespace sluice::admin
