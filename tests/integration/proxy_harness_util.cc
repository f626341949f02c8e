#include "proxy_harness_util.h"

#include <atomic>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/stats.h"
#include "config/loader.h"

namespace sluice::testing {

std::string UniqueName(std::string_view base) {
  static std::atomic<int> next{0};
  return fmt::format("{}_{}", base, next++);
}

std::string ClusterYaml(std::string_view name, uint16_t port, std::string_view extra,
                        std::string_view connect_timeout) {
  return fmt::format(
      "{{name: {0}, connect_timeout: {1}, load_assignment: {{cluster_name: {0}, endpoints: "
      "[{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, "
      "port_value: {2}}}}}}}}}]}}]}}{3}{4}}}",
      name, connect_timeout, port, extra.empty() ? "" : ", ", extra);
}

std::string CatchAllRoutes(std::string_view cluster, std::string_view route_extra) {
  return fmt::format("[{{match: {{prefix: \"/\"}}, route: {{cluster: {}{}{}}}}}]", cluster,
                     route_extra.empty() ? "" : ", ", route_extra);
}

std::string ProxyYaml(std::string_view stat_prefix, std::string_view routes,
                      std::string_view clusters, std::string_view hcm_extra) {
  return fmt::format(R"(
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: {0}_listener
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {4}
          stat_prefix: {0}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: {1}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {5}}}
{3}
  clusters: {2}
)",
                     stat_prefix, routes, clusters,
                     hcm_extra.empty() ? "" : fmt::format("          {}", hcm_extra),
                     "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
                     "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
}

std::string WasmPluginConfigYaml(std::string_view name, std::string_view extension,
                                 std::string_view runtime, std::string_view extensions_dir,
                                 std::string_view configuration, std::string_view vm_id) {
  const std::string code = runtime == "v8"
                               ? fmt::format("filename: {}/{}.wasm", extensions_dir, extension)
                               : fmt::format("inline_string: sluice.{}", extension);
  return fmt::format(
      "{{name: {0}, root_id: {1}, configuration: {{\"@type\": "
      "type.googleapis.com/google.protobuf.StringValue, value: \"{2}\"}}, vm_config: {{vm_id: "
      "\"{3}\", runtime: envoy.wasm.runtime.{4}, code: {{local: {{{5}}}}}}}}}",
      name, extension, configuration, vm_id, runtime, code);
}

std::string WasmFilterYaml(std::string_view name, std::string_view extension,
                           std::string_view runtime, std::string_view extensions_dir,
                           std::string_view configuration, std::string_view vm_id) {
  // Flow mappings only: the entry fits the http_filters list at any indentation.
  return fmt::format(
      "- {{name: {}, typed_config: {{\"@type\": "
      "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, config: {}}}}}\n          ",
      name, WasmPluginConfigYaml(name, extension, runtime, extensions_dir, configuration, vm_id));
}

std::string WithHttpFilter(std::string yaml, std::string_view filter) {
  const std::string router = "- name: envoy.filters.http.router";
  yaml.insert(yaml.find(router), filter);
  return yaml;
}

int64_t StatValue(std::string_view dotted_name) {
  for (const auto& m : stats::Store::instance().snapshot()) {
    if (m.name->dotted != dotted_name) continue;
    return m.type == stats::MetricType::Counter ? static_cast<int64_t>(m.counter) : m.gauge;
  }
  return 0;
}

ProxyHarness::~ProxyHarness() { Stop(); }

std::string ProxyHarness::Start(std::string_view yaml, std::chrono::seconds drain_time,
                                uint32_t concurrency) {
  // Quiet by default: the server logs a few lines per start. SLUICE_TEST_LOG=debug for more.
  const char* level = std::getenv("SLUICE_TEST_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
  config::LoadResult loaded = config::load_from_string(yaml, "integration-test");
  if (!loaded.ok()) {
    std::string out = "config errors:";
    for (const auto& e : loaded.errors) out += "\n  " + e.to_string();
    return out + "\n" + std::string(yaml);
  }
  server::Options options;
  options.concurrency = concurrency;
  options.install_signal_handlers = false;
  options.drain_time = drain_time;
  server_ = std::make_unique<server::Server>(loaded.bootstrap, options);
  if (std::string err = server_->init(); !err.empty()) return "init: " + err;
  thread_ = std::thread([server = server_.get(), exited = exited_] {
    server->run();
    exited->store(true);
  });
  return "";
}

void ProxyHarness::Drain() { server_->shutdown(); }

bool ProxyHarness::WaitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited_->load()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (thread_.joinable()) thread_.join();
  return true;
}

void ProxyHarness::Stop() {
  if (!server_) return;
  if (thread_.joinable()) {
    server_->stop_now();
    thread_.join();
  }
  server_.reset();
}

}  // namespace sluice::testing
