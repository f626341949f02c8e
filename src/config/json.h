// YAML -> compact JSON, for Bootstrap::source_json (/config_dump) and node.metadata_json.
#pragma once

#include <string>
#include <string_view>

namespace YAML {
class Node;
}

namespace sluice::config {

// Plain scalars that read as JSON numbers, booleans or null keep that type; every other scalar
// (and every quoted one) becomes a JSON string, as Envoy's own YAML-to-JSON step does.
std::string yaml_to_json(const YAML::Node& node);

// Appends `s` as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view s);

}  // namespace sluice::config
