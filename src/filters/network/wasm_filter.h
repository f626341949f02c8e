// envoy.filters.network.wasm: runs a Proxy-Wasm plugin on each TCP connection of a filter chain,
// before its http_connection_manager or tcp_proxy. One stream context per connection on this
// worker's instance of the plugin: proxy_on_new_connection, then proxy_on_downstream_data for
// bytes from the client (buffer 2) and proxy_on_upstream_data for bytes toward it (buffer 3),
// and the close callbacks at the end, as Envoy calls them.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "config/bootstrap.h"
#include "net/connection_filter.h"
#include "wasm/plugin.h"

namespace sluice::filters {

class NetworkWasmFilterConfig {
 public:
  NetworkWasmFilterConfig(std::string name, std::shared_ptr<wasm::Plugin> plugin)
      : name_(std::move(name)), plugin_(std::move(plugin)) {}

  const std::string& name() const { return name_; }
  const std::shared_ptr<wasm::Plugin>& plugin() const { return plugin_; }
  // A filter for a new connection on this thread. Without a running VM: nullptr under
  // FAIL_OPEN (the connection goes on without the plugin), else a filter that closes it.
  std::unique_ptr<net::ConnectionFilter> create_filter();

 private:
  std::string name_;
  std::shared_ptr<wasm::Plugin> plugin_;
};

// Loads the plugin of an envoy.filters.network.wasm entry (compiles it, runs its canary).
Result<std::shared_ptr<NetworkWasmFilterConfig>> make_network_wasm_filter_config(
    const config::NetworkFilter& filter, const config::Bootstrap& bootstrap);

}  // namespace sluice::filters
