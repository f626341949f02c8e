// Plugins deployed into a running proxy through the admin API (POST /wasm/plugins) live in an
// overlay file (sluice.overlay_path) beside the config. Every load of the config merges the overlay
// into it before anything is parsed: each deployed plugin becomes an Envoy Wasm HTTP filter in its
// listener's http_filters, so it is validated, dumped (/config_dump) and reloaded like any filter
// written in the file, and a file change or SIGHUP never drops it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace YAML {
class Node;
}

namespace sluice::config {

struct DeployedPlugin {
  // Where in http_filters: before the terminal router (kLast), first, or beside a named filter.
  enum class Position { kLast, kFirst, kBefore, kAfter };

  std::string name;      // the filter's name and its PluginConfig name
  std::string listener;  // empty: the one listener with an HTTP connection manager
  Position position = Position::kLast;
  std::string anchor;          // the filter named by kBefore / kAfter
  std::string code;            // an absolute .wasm path or an oci:// reference
  std::string sha256;          // optional: the module's (local code) or checked for an image
  std::string root_id;         // empty: the module's default root context
  std::string configuration;   // handed to on_configure
  std::string failure_policy;  // "" (Envoy's default), FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD
  std::string runtime = "envoy.wasm.runtime.v8";
  std::string deployed_at;  // UTC, set by the server

  bool is_oci() const;
  // The envoy.filters.http.wasm entry this plugin becomes in http_filters.
  YAML::Node filter_node() const;
};

struct Overlay {
  std::vector<DeployedPlugin> plugins;

  const DeployedPlugin* find(std::string_view name) const;
  // Replaces the plugin of the same name in place, or appends.
  void put(DeployedPlugin plugin);
  // False when there was none of that name.
  bool erase(std::string_view name);
};

// One plugin from JSON: a POST /wasm/plugins body or an entry of the overlay file. Every field is
// checked here (names, position, code, policy), so a bad request is refused with a message that
// names the field before any reload is tried.
Result<DeployedPlugin> parse_deployed_plugin(std::string_view json);
// The overlay file: {"plugins": [...]}. Empty text is an empty overlay.
Result<Overlay> parse_overlay(std::string_view json);
std::string deployed_plugin_json(const DeployedPlugin& plugin);
std::string overlay_json(const Overlay& overlay);

// Inserts every plugin of `overlay` into the bootstrap YAML `root` (changed in place). Returns one
// message per plugin that cannot be placed (its listener or anchor filter is missing, or the
// listener has no HTTP connection manager); nothing is inserted then.
std::vector<std::string> apply_overlay(const Overlay& overlay, YAML::Node& root);

// The listeners of a bootstrap YAML root that have an HTTP connection manager, by name.
std::vector<std::string> http_listener_names(const YAML::Node& root);

}  // namespace sluice::config
