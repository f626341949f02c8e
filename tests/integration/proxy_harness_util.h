// Runs the real sluice::server::Server in-process (workers on their own threads, the main loop on a
// test thread) from a YAML config, plus helpers that build such configs and read stats.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "server/server.h"

namespace sluice::testing {

// A name unique in this process (stats are a process-wide singleton, and --gtest_repeat reruns
// tests): "<base>_<n>".
std::string UniqueName(std::string_view base);

// A STATIC cluster with one endpoint on 127.0.0.1:`port`. `extra` is appended inside the flow
// mapping, e.g. "circuit_breakers: {thresholds: [{max_requests: 1}]}".
std::string ClusterYaml(std::string_view name, uint16_t port, std::string_view extra = "",
                        std::string_view connect_timeout = "1s");

// Routes (a YAML flow sequence) sending every path to `cluster`; `route_extra` is appended inside
// the route action, e.g. "timeout: 0.5s".
std::string CatchAllRoutes(std::string_view cluster, std::string_view route_extra = "");

// A bootstrap with an admin listener and one HTTP listener (both on port 0) whose single virtual
// host ("*") has `routes` (a YAML flow sequence), and `clusters` (a YAML flow sequence of
// ClusterYaml() entries). `hcm_extra` is appended inside the HttpConnectionManager mapping.
std::string ProxyYaml(std::string_view stat_prefix, std::string_view routes,
                      std::string_view clusters, std::string_view hcm_extra = "");

// An http_filters[] entry for a Wasm plugin built from extensions/ (ready for WithHttpFilter):
// `runtime` "v8" (the .wasm in `extensions_dir`) or "null" (sluice.<extension>), `configuration`
// the plugin's StringValue (YAML double-quoted escapes), `vm_id` optional.
// Its PluginConfig alone (one flow mapping), e.g. for a WasmService.
std::string WasmPluginConfigYaml(std::string_view name, std::string_view extension,
                                 std::string_view runtime, std::string_view extensions_dir,
                                 std::string_view configuration = "", std::string_view vm_id = "");
std::string WasmFilterYaml(std::string_view name, std::string_view extension,
                           std::string_view runtime, std::string_view extensions_dir,
                           std::string_view configuration = "", std::string_view vm_id = "");
// `yaml` (from ProxyYaml) with `filter` inserted before the router.
std::string WithHttpFilter(std::string yaml, std::string_view filter);

// The value of a counter or gauge by its dotted name (0 when undefined).
int64_t StatValue(std::string_view dotted_name);

class ProxyHarness {
 public:
  ProxyHarness() = default;
  ~ProxyHarness();

  // Loads `yaml`, init()s the server and runs it on a thread. Returns "" or an error.
  std::string Start(std::string_view yaml,
                    std::chrono::seconds drain_time = std::chrono::seconds(5),
                    uint32_t concurrency = 2);
  // stop_now() and join (idempotent).
  void Stop();
  // Asks for a graceful drain (Server::shutdown()); WaitForExit() joins the run thread.
  void Drain();
  // True when run() returned within `timeout`.
  bool WaitForExit(std::chrono::milliseconds timeout);

  // 0 when the server did not start (connecting to port 0 fails: tests fail, never crash).
  uint16_t port() const {
    return server_ && (thread_.joinable() || exited_->load()) ? server_->listener_port(0) : 0;
  }
  uint16_t admin_port() const { return server_ && thread_.joinable() ? server_->admin_port() : 0; }
  server::Server& server() { return *server_; }

 private:
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  std::shared_ptr<std::atomic<bool>> exited_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace sluice::testing
