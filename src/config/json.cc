#include "config/json.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_format.h"
#include "re2/re2.h"

namespace sluice::config {
namespace {

bool is_json_number(const std::string& s) {
  static const re2::RE2 kNumber(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
  return re2::RE2::FullMatch(s, kNumber);
}

// YAML 1.2 core schema spellings.
bool is_null(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}
bool is_true(const std::string& s) { return s == "true" || s == "True" || s == "TRUE"; }
bool is_false(const std::string& s) { return s == "false" || s == "False" || s == "FALSE"; }

void append_scalar(std::string& out, const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") {  // quoted or block scalar: always a string
    append_json_string(out, s);
  } else if (is_null(s)) {
    out += "null";
  } else if (is_true(s)) {
    out += "true";
  } else if (is_false(s)) {
    out += "false";
  } else if (is_json_number(s)) {
    out += s;
  } else {
    append_json_string(out, s);
  }
}

void append_node(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      append_scalar(out, node);
      return;
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const YAML::Node& element : node) {
        if (!first) out += ',';
        first = false;
        append_node(out, element);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& entry : node) {
        if (!first) out += ',';
        first = false;
        // JSON keys are strings; a non-scalar YAML key is written as its JSON text.
        append_json_string(
            out, entry.first.IsScalar() ? entry.first.Scalar() : yaml_to_json(entry.first));
        out += ':';
        append_node(out, entry.second);
      }
      out += '}';
      return;
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out += "null";
      return;
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string yaml_to_json(const YAML::Node& node) {
  std::string out;
  append_node(out, node);
  return out;
}

}  // namespace sluice::config
