#include "config/overlay.h"

#include <algorithm>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "config/type_urls.h"
#include "oci/reference.h"

namespace sluice::config {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameLength = 128;

// Filter names show up in stats, logs and URLs (DELETE /wasm/plugins/NAME): keep them plain.
bool valid_filter_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLength &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

bool printable(std::string_view s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

const char* position_word(DeployedPlugin::Position p) {
  switch (p) {
    case DeployedPlugin::Position::kFirst:
      return "first";
    case DeployedPlugin::Position::kBefore:
      return "before";
    case DeployedPlugin::Position::kAfter:
      return "after";
    case DeployedPlugin::Position::kLast:
      break;
  }
  return "last";
}

Result<DeployedPlugin> plugin_from_json(const json& j) {
  if (!j.is_object()) return Error{"a plugin must be a JSON object"};
  DeployedPlugin p;
  const auto string_field = [&](const char* key, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) return Error{str_cat("'", key, "' must be a string")};
    out = it->get<std::string>();
    if (!printable(out) && std::string_view(key) != "configuration") {
      return Error{str_cat("'", key, "' has control characters")};
    }
    return {};
  };
  static constexpr std::string_view kKnown[] = {
      "name",    "listener",      "position",       "code",    "sha256",
      "root_id", "configuration", "failure_policy", "runtime", "deployed_at",
  };
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return Error{str_cat("unknown field '", key, "' (fields: name, listener, position, code, ",
                           "sha256, root_id, configuration, failure_policy, runtime)")};
    }
  }
  for (auto [key, out] : {std::pair<const char*, std::string*>{"name", &p.name},
                          {"listener", &p.listener},
                          {"code", &p.code},
                          {"sha256", &p.sha256},
                          {"root_id", &p.root_id},
                          {"failure_policy", &p.failure_policy},
                          {"runtime", &p.runtime},
                          {"deployed_at", &p.deployed_at}}) {
    if (Status s = string_field(key, *out); !s) return Error{s.error()};
  }
  // The plugin's configuration: a string as it is, or any other JSON value as its JSON text,
  // which is what most plugins parse anyway.
  if (auto it = j.find("configuration"); it != j.end() && !it->is_null()) {
    p.configuration = it->is_string() ? it->get<std::string>()
                                      : it->dump(-1, ' ', false, json::error_handler_t::replace);
  }

  if (p.name.empty()) return Error{"'name' is required"};
  if (!valid_filter_name(p.name)) {
    return Error{str_cat("name '", p.name, "' must be 1 to ", kMaxNameLength,
                         " letters, digits, '.', '_' or '-'")};
  }
  if (p.name == kRouterName || p.name == kWasmName) {
    return Error{str_cat("name '", p.name, "' is reserved: pick the plugin's own name")};
  }
  if (p.listener.size() > 256) return Error{"'listener' is longer than 256 characters"};

  if (auto it = j.find("position"); it != j.end() && !it->is_null()) {
    const json& pos = *it;
    if (pos.is_string() && (pos == "last" || pos == "first")) {
      p.position =
          pos == "first" ? DeployedPlugin::Position::kFirst : DeployedPlugin::Position::kLast;
    } else if (pos.is_object() && pos.size() == 1 &&
               (pos.contains("before") || pos.contains("after")) && pos.begin()->is_string()) {
      p.position = pos.contains("before") ? DeployedPlugin::Position::kBefore
                                          : DeployedPlugin::Position::kAfter;
      p.anchor = pos.begin()->get<std::string>();
      if (!valid_filter_name(p.anchor)) {
        return Error{str_cat("position: '", p.anchor, "' is not a filter name")};
      }
      if (p.anchor == p.name) return Error{"position: a plugin cannot be placed beside itself"};
      if (p.anchor == kRouterName && p.position == DeployedPlugin::Position::kAfter) {
        return Error{"position: nothing runs after the router filter"};
      }
    } else {
      return Error{
          "'position' must be \"first\", \"last\", {\"before\": FILTER} or {\"after\": FILTER}"};
    }
  }

  if (p.code.empty()) return Error{"'code' is required: an absolute .wasm path or oci:// image"};
  if (p.is_oci()) {
    if (Result<oci::Reference> ref = oci::parse_reference(p.code); !ref) {
      return Error{str_cat("code: ", ref.error())};
    }
  } else if (p.code.front() != '/') {
    return Error{str_cat("code '", p.code,
                         "' must be an absolute path to a .wasm file on the proxy's machine or "
                         "an oci://host/repository[:tag|@sha256:digest] reference")};
  }
  if (!p.sha256.empty()) {
    p.sha256 = absl::AsciiStrToLower(p.sha256);
    if (!is_sha256_hex(p.sha256)) return Error{"'sha256' must be 64 hex digits"};
  }
  if (!p.failure_policy.empty() && p.failure_policy != "FAIL_CLOSED" &&
      p.failure_policy != "FAIL_OPEN" && p.failure_policy != "FAIL_RELOAD") {
    return Error{str_cat("failure_policy '", p.failure_policy,
                         "' is not FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD")};
  }
  if (p.runtime != "envoy.wasm.runtime.v8" && p.runtime != "envoy.wasm.runtime.null") {
    return Error{str_cat("runtime '", p.runtime,
                         "' is not envoy.wasm.runtime.v8 or envoy.wasm.runtime.null")};
  }
  return p;
}

// In a reader's order (name first), not nlohmann's default alphabetical one.
nlohmann::ordered_json plugin_to_json(const DeployedPlugin& p) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["name"] = p.name;
  if (!p.listener.empty()) j["listener"] = p.listener;
  if (p.position == DeployedPlugin::Position::kFirst ||
      p.position == DeployedPlugin::Position::kLast) {
    j["position"] = position_word(p.position);
  } else {
    j["position"] = nlohmann::ordered_json{{position_word(p.position), p.anchor}};
  }
  j["code"] = p.code;
  if (!p.sha256.empty()) j["sha256"] = p.sha256;
  if (!p.root_id.empty()) j["root_id"] = p.root_id;
  j["configuration"] = p.configuration;
  if (!p.failure_policy.empty()) j["failure_policy"] = p.failure_policy;
  j["runtime"] = p.runtime;
  if (!p.deployed_at.empty()) j["deployed_at"] = p.deployed_at;
  return j;
}

std::string dump(const nlohmann::ordered_json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : std::string(); }

// The http_filters lists of a listener's HTTP connection managers (one per filter chain).
std::vector<YAML::Node> http_filter_lists(const YAML::Node& listener) {
  std::vector<YAML::Node> lists;
  const YAML::Node chains = listener["filter_chains"];
  if (!chains || !chains.IsSequence()) return lists;
  for (const YAML::Node& chain : chains) {
    const YAML::Node filters = chain.IsMap() ? chain["filters"] : YAML::Node();
    if (!filters || !filters.IsSequence()) continue;
    for (const YAML::Node& filter : filters) {
      if (!filter.IsMap()) continue;
      const YAML::Node typed = filter["typed_config"];
      if (!typed || !typed.IsMap() || scalar(typed["@type"]) != kHcmType) continue;
      YAML::Node list = typed["http_filters"];
      // Several chains may share one manager through a YAML alias: insert once.
      if (!list || !list.IsSequence() ||
          std::any_of(lists.begin(), lists.end(),
                      [&](const YAML::Node& l) { return l.is(list); })) {
        continue;
      }
      lists.push_back(list);
    }
  }
  return lists;
}

std::vector<YAML::Node> listeners_of(const YAML::Node& root) {
  std::vector<YAML::Node> out;
  if (!root.IsMap()) return out;
  const YAML::Node resources = root["static_resources"];
  if (!resources || !resources.IsMap()) return out;
  const YAML::Node listeners = resources["listeners"];
  if (!listeners || !listeners.IsSequence()) return out;
  for (const YAML::Node& l : listeners) {
    if (l.IsMap()) out.push_back(l);
  }
  return out;
}

// Where `p` goes in `filters` (an index to insert at), or an error. A filter of the same name is
// replaced where it stands: *replace says so.
Result<size_t> placement(const DeployedPlugin& p, const YAML::Node& filters, bool* replace) {
  const size_t n = filters.size();
  for (size_t i = 0; i < n; ++i) {
    if (scalar(filters[i]["name"]) == p.name) {
      *replace = true;
      return i;
    }
  }
  *replace = false;
  switch (p.position) {
    case DeployedPlugin::Position::kFirst:
      return size_t{0};
    case DeployedPlugin::Position::kLast:
      // Before the terminal router, which the loader requires last.
      return n == 0 ? size_t{0} : n - 1;
    case DeployedPlugin::Position::kBefore:
    case DeployedPlugin::Position::kAfter:
      for (size_t i = 0; i < n; ++i) {
        if (scalar(filters[i]["name"]) == p.anchor) {
          return p.position == DeployedPlugin::Position::kBefore ? i : i + 1;
        }
      }
      return Error{str_cat("there is no HTTP filter named '", p.anchor, "' to place it ",
                           position_word(p.position))};
  }
  return size_t{0};
}

}  // namespace

bool DeployedPlugin::is_oci() const { return oci::is_oci_uri(code); }

YAML::Node DeployedPlugin::filter_node() const {
  YAML::Node vm;
  vm["runtime"] = runtime;
  if (is_oci()) {
    vm["code"]["remote"]["http_uri"]["uri"] = code;
    vm["code"]["remote"]["http_uri"]["timeout"] = "60s";
    if (!sha256.empty()) vm["code"]["remote"]["sha256"] = sha256;
  } else {
    vm["code"]["local"]["filename"] = code;
  }
  YAML::Node config;
  config["name"] = name;
  if (!root_id.empty()) config["root_id"] = root_id;
  config["configuration"]["@type"] = "type.googleapis.com/google.protobuf.StringValue";
  config["configuration"]["value"] = configuration;
  if (!failure_policy.empty()) config["failure_policy"] = failure_policy;
  config["vm_config"] = vm;
  YAML::Node filter;
  filter["name"] = name;
  filter["typed_config"]["@type"] = std::string(kWasmType);
  filter["typed_config"]["config"] = config;
  return filter;
}

const DeployedPlugin* Overlay::find(std::string_view name) const {
  for (const auto& p : plugins) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

void Overlay::put(DeployedPlugin plugin) {
  for (auto& p : plugins) {
    if (p.name == plugin.name) {
      p = std::move(plugin);
      return;
    }
  }
  plugins.push_back(std::move(plugin));
}

bool Overlay::erase(std::string_view name) {
  return std::erase_if(plugins, [&](const DeployedPlugin& p) { return p.name == name; }) > 0;
}

Result<DeployedPlugin> parse_deployed_plugin(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{"the body is not valid JSON"};
  return plugin_from_json(j);
}

Result<Overlay> parse_overlay(std::string_view text) {
  Overlay overlay;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return overlay;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error{"not valid JSON"};
  if (!j.is_object()) return Error{"expected a JSON object with \"plugins\""};
  auto list = j.find("plugins");
  if (list == j.end()) return overlay;
  if (!list->is_array()) return Error{"\"plugins\" must be an array"};
  for (size_t i = 0; i < list->size(); ++i) {
    Result<DeployedPlugin> p = plugin_from_json((*list)[i]);
    if (!p) return Error{str_cat("plugins[", i, "]: ", p.error())};
    if (overlay.find(p->name)) {
      return Error{str_cat("plugins[", i, "]: a second plugin named '", p->name, "'")};
    }
    overlay.plugins.push_back(std::move(*p));
  }
  return overlay;
}

std::string deployed_plugin_json(const DeployedPlugin& plugin) {
  return dump(plugin_to_json(plugin), -1);
}

std::string overlay_json(const Overlay& overlay) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& p : overlay.plugins) list.push_back(plugin_to_json(p));
  return dump(nlohmann::ordered_json{{"plugins", list}}, 2) + "\n";
}

std::vector<std::string> http_listener_names(const YAML::Node& root) {
  std::vector<std::string> names;
  for (const YAML::Node& l : listeners_of(root)) {
    if (!http_filter_lists(l).empty()) names.push_back(scalar(l["name"]));
  }
  return names;
}

std::vector<std::string> apply_overlay(const Overlay& overlay, YAML::Node& root) {
  std::vector<std::string> errors;
  const std::vector<YAML::Node> listeners = listeners_of(root);
  for (const DeployedPlugin& p : overlay.plugins) {
    const auto fail = [&](std::string why) {
      errors.push_back(str_cat("deployed plugin '", p.name, "': ", why));
    };
    std::string listener_name = p.listener;
    if (listener_name.empty()) {
      const std::vector<std::string> http = http_listener_names(root);
      if (http.size() != 1) {
        fail(http.empty() ? "the config has no listener with an HTTP connection manager"
                          : str_cat("name its listener: ", http.size(),
                                    " listeners have an HTTP connection manager"));
        continue;
      }
      listener_name = http.front();
    }
    auto it = std::find_if(listeners.begin(), listeners.end(),
                           [&](const YAML::Node& l) { return scalar(l["name"]) == listener_name; });
    if (it == listeners.end()) {
      fail(str_cat("the config has no listener '", listener_name,
                   "' (undeploy the plugin, or deploy it to another listener)"));
      continue;
    }
    std::vector<YAML::Node> lists = http_filter_lists(*it);
    if (lists.empty()) {
      fail(str_cat("listener '", listener_name,
                   "' has no HTTP connection manager (Wasm network filters cannot be deployed "
                   "through the admin API)"));
      continue;
    }
    // Check every chain before changing any, so a plugin lands everywhere or nowhere.
    std::vector<std::pair<size_t, bool>> places;
    for (const YAML::Node& list : lists) {
      bool replace = false;
      Result<size_t> at = placement(p, list, &replace);
      if (!at) break;
      places.emplace_back(*at, replace);
    }
    if (places.size() != lists.size()) {
      bool replace = false;
      fail(placement(p, lists[places.size()], &replace).error() + " in listener '" + listener_name +
           "'");
      continue;
    }
    for (size_t c = 0; c < lists.size(); ++c) {
      const auto [at, replace] = places[c];
      YAML::Node rebuilt(YAML::NodeType::Sequence);
      for (size_t i = 0; i < lists[c].size(); ++i) {
        if (i == at) rebuilt.push_back(p.filter_node());
        if (!(replace && i == at)) rebuilt.push_back(lists[c][i]);
      }
      if (at >= lists[c].size()) rebuilt.push_back(p.filter_node());
      lists[c] = rebuilt;
    }
  }
  return errors;
}

}  // namespace sluice::config
