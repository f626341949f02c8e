// The admin listener (Envoy's paths): readiness, server info, stats in text and Prometheus form,
// config dump, clusters, listeners, log level, health-check fail/ok and quit. Runs on the main
// thread's loop, never on a worker.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <asio.hpp>

#include "common/header_map.h"

namespace sluice::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=UTF-8";
  std::string body;
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
};

class AdminServer {
 public:
  AdminServer(asio::io_context& loop, AdminBackend& backend);
  ~AdminServer();
  // Binds and starts accepting. Returns an error message or "".
  std::string listen(const asio::ip::tcp::endpoint& endpoint);
  uint16_t port() const;
  void close();

  // Routes one request (also used directly by tests).
  AdminResponse handle(std::string_view method, std::string_view path_and_query);

 private:
  class Session;
  void accept();

  asio::io_context& loop_;
  AdminBackend& backend_;
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace sluice::admin
