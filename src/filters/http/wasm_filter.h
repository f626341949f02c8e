// envoy.filters.http.wasm: runs a Proxy-Wasm plugin on each HTTP stream. One stream context per
// stream on this worker's instance of the plugin; the module's verdicts map to filter statuses as
// in Envoy (pausing headers holds the whole stream and buffers its body).
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "config/bootstrap.h"
#include "http/filter.h"
#include "wasm/plugin.h"

namespace sluice::filters {

class WasmFilterConfig : public http::HttpFilterConfig {
 public:
  WasmFilterConfig(std::string name, std::shared_ptr<wasm::Plugin> plugin)
      : name_(std::move(name)), plugin_(std::move(plugin)) {}

  const std::string& name() const override { return name_; }
  std::unique_ptr<http::StreamFilter> create_filter(
      http::StreamFilterCallbacks& callbacks) override;
  const std::shared_ptr<wasm::Plugin>& plugin() const { return plugin_; }

 private:
  std::string name_;
  std::shared_ptr<wasm::Plugin> plugin_;
};

// Loads a configured plugin: compiles it and runs its canary start. `bootstrap` gives the node
// (for properties) and the plugin's limits (sluice.wasm).
Result<std::shared_ptr<wasm::Plugin>> load_wasm_plugin(const config::WasmPlugin& plugin,
                                                       const config::Bootstrap& bootstrap);

// Loads the plugin of a Wasm http_filters[] entry (compiles it and runs its canary start).
Result<std::shared_ptr<WasmFilterConfig>> make_wasm_filter_config(
    const config::HttpFilter& filter, const config::Bootstrap& bootstrap);

}  // namespace sluice::filters
