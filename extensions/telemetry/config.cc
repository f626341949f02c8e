#include "config.h"

#include <algorithm>

#include "../common/json_object.h"

namespace telemetry {
inline namespace SLUICE_SDK_NS {

const std::array<std::string_view, kStandardLabelCount> kStandardLabelNames = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
};

bool MetricConfig::plain() const {
  if (!dimensions.empty() || match) return false;
  const size_t standard = tcp ? kTcpLabelCount : kStandardLabelCount;
  if (labels.size() != standard) return false;
  for (size_t i = 0; i < standard; ++i) {
    if (labels[i] != i) return false;
  }
  return true;
}

namespace {

using ext_common::JsonMember;

struct StandardMetric {
  std::string_view short_name;
  MetricType type;
  MetricValue value;
  bool tcp;
};
constexpr StandardMetric kStandardMetrics[] = {
    {"requests_total", MetricType::Counter, MetricValue::One, false},
    {"request_duration_milliseconds", MetricType::Histogram, MetricValue::DurationMs, false},
    {"request_bytes", MetricType::Histogram, MetricValue::RequestBytes, false},
    {"response_bytes", MetricType::Histogram, MetricValue::ResponseBytes, false},
    {"tcp_sent_bytes_total", MetricType::Counter, MetricValue::TcpSentBytes, true},
    {"tcp_received_bytes_total", MetricType::Counter, MetricValue::TcpReceivedBytes, true},
    {"tcp_connections_opened_total", MetricType::Counter, MetricValue::TcpOpened, true},
    {"tcp_connections_closed_total", MetricType::Counter, MetricValue::TcpClosed, true},
};

bool fail(std::string* error, std::string why) {
  *error = std::move(why);
  return false;
}

bool want(const JsonMember& m, JsonMember::Kind kind, const char* what, std::string* error) {
  if (m.kind == kind) return true;
  return fail(error, "'" + m.name + "' must be " + what);
}

bool parse_count(const JsonMember& m, uint64_t max, uint64_t* out, std::string* error) {
  // Protobuf JSON writes 64-bit integers as strings; both forms are accepted.
  if (m.kind != JsonMember::Kind::Number && m.kind != JsonMember::Kind::String) {
    return fail(error, "'" + m.name + "' must be a number");
  }
  uint64_t n = 0;
  if (m.value.empty() || m.value.size() > 12) {
    return fail(error, "'" + m.name + "' must be an integer from 0 to " + std::to_string(max));
  }
  for (char c : m.value) {
    if (c < '0' || c > '9') {
      return fail(error, "'" + m.name + "' must be an integer from 0 to " + std::to_string(max));
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > max) {
    return fail(error, "'" + m.name + "' must be an integer from 0 to " + std::to_string(max));
  }
  *out = n;
  return true;
}

bool parse_duration_member(const JsonMember& m, uint64_t* out, std::string* error) {
  if (!want(m, JsonMember::Kind::String, "a duration string such as \"15s\"", error)) {
    return false;
  }
  auto ms = parse_duration_ms(m.value);
  if (!ms) {
    return fail(error, "'" + m.name + "': '" + m.value +
                           "' is not a duration (\"15s\", \"500ms\", \"1m\")");
  }
  *out = *ms;
  return true;
}

std::optional<Expression> parse_expression(const std::string& where, const std::string& text,
                                           std::string* error) {
  std::string why;
  auto e = Expression::parse(text, &why);
  if (!e) *error = where + ": " + why;
  return e;
}

size_t label_index(Config& c, const std::string& name) {
  auto it = std::find(c.label_names.begin(), c.label_names.end(), name);
  if (it != c.label_names.end()) return static_cast<size_t>(it - c.label_names.begin());
  c.label_names.push_back(name);
  return c.label_names.size() - 1;
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool parse_definition(Config& c, const std::string& json, std::string* error) {
  std::string why;
  auto members = ext_common::parse_json_object(json, &why);
  if (!members) return fail(error, "definitions[]: " + why);
  MetricConfig m;
  std::optional<std::string> value;
  for (const JsonMember& f : *members) {
    if (f.name == "name") {
      if (!want(f, JsonMember::Kind::String, "a string", error)) return false;
      m.short_name = f.value;
    } else if (f.name == "value") {
      if (!want(f, JsonMember::Kind::String, "an expression string", error)) return false;
      value = f.value;
    } else if (f.name == "type") {
      if (!want(f, JsonMember::Kind::String, "COUNTER, GAUGE or HISTOGRAM", error)) return false;
      if (f.value == "COUNTER") {
        m.type = MetricType::Counter;
      } else if (f.value == "GAUGE") {
        m.type = MetricType::Gauge;
      } else if (f.value == "HISTOGRAM") {
        m.type = MetricType::Histogram;
      } else {
        return fail(
            error, "definitions[].type must be COUNTER, GAUGE or HISTOGRAM, not '" + f.value + "'");
      }
    } else {
      return fail(error, "definitions[]: unknown field '" + f.name + "'");
    }
  }
  if (!valid_label_name(m.short_name)) {
    return fail(error, "definitions[].name must be a metric name ([a-zA-Z_][a-zA-Z0-9_]*), not '" +
                           m.short_name + "'");
  }
  if (!value) return fail(error, "definitions[] '" + m.short_name + "' needs a 'value'");
  for (const MetricConfig& other : c.metrics) {
    if (other.short_name == m.short_name) {
      return fail(error, "definitions[]: '" + m.short_name + "' is already a metric");
    }
  }
  m.value = MetricValue::Expression;
  m.value_expression =
      parse_expression("definitions[] '" + m.short_name + "' value", *value, error);
  if (!m.value_expression) return false;
  m.name = c.stat_prefix + "_" + m.short_name;
  for (size_t i = 0; i < kStandardLabelCount; ++i) m.labels.push_back(i);
  c.metrics.push_back(std::move(m));
  return true;
}

bool apply_override(Config& c, const std::string& json, std::string* error) {
  std::string why;
  auto members = ext_common::parse_json_object(json, &why);
  if (!members) return fail(error, "metrics[]: " + why);
  std::string name;
  bool drop = false;
  std::vector<std::pair<std::string, std::string>> dimensions;
  std::vector<std::string> removed;
  std::optional<std::string> match;
  for (const JsonMember& f : *members) {
    if (f.name == "name") {
      if (!want(f, JsonMember::Kind::String, "a string", error)) return false;
      name = f.value;
    } else if (f.name == "drop") {
      if (!want(f, JsonMember::Kind::Bool, "true or false", error)) return false;
      drop = f.value == "true";
    } else if (f.name == "dimensions") {
      if (!want(f, JsonMember::Kind::Object, "an object of label: expression", error)) {
        return false;
      }
      auto dims = ext_common::parse_json_object(f.value, &why);
      if (!dims) return fail(error, "metrics[].dimensions: " + why);
      for (const JsonMember& d : *dims) {
        if (d.kind != JsonMember::Kind::String) {
          return fail(error, "metrics[].dimensions['" + d.name + "'] must be an expression string");
        }
        if (!valid_label_name(d.name)) {
          return fail(error, "metrics[].dimensions: '" + d.name +
                                 "' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        }
        dimensions.emplace_back(d.name, d.value);
      }
    } else if (f.name == "tags_to_remove") {
      if (!want(f, JsonMember::Kind::Array, "an array of label names", error)) return false;
      auto items = ext_common::parse_json_array(f.value, &why);
      if (!items) return fail(error, "metrics[].tags_to_remove: " + why);
      for (const JsonMember& t : *items) {
        if (t.kind != JsonMember::Kind::String) {
          return fail(error, "metrics[].tags_to_remove must hold strings");
        }
        removed.push_back(t.value);
      }
    } else if (f.name == "match") {
      if (!want(f, JsonMember::Kind::String, "an expression string", error)) return false;
      match = f.value;
    } else if (f.name == "value" || f.name == "type") {
      return fail(error, "metrics[]." + f.name +
                             " is not supported: define a new metric in definitions[] instead");
    } else {
      return fail(error, "metrics[]: unknown field '" + f.name + "'");
    }
  }
  std::string short_name = name;
  if (short_name.rfind(c.stat_prefix + "_", 0) == 0) {
    short_name = short_name.substr(c.stat_prefix.size() + 1);
  }
  bool matched = false;
  for (MetricConfig& m : c.metrics) {
    if (!short_name.empty() && m.short_name != short_name) continue;
    matched = true;
    if (drop) m.drop = true;
    for (const auto& [label, text] : dimensions) {
      auto e = parse_expression("metrics[] '" + m.short_name + "' dimension '" + label + "'", text,
                                error);
      if (!e) return false;
      const size_t index = label_index(c, label);
      if (std::find(m.labels.begin(), m.labels.end(), index) == m.labels.end()) {
        m.labels.push_back(index);
      }
      auto existing = std::find_if(m.dimensions.begin(), m.dimensions.end(),
                                   [&](const auto& d) { return d.first == index; });
      if (existing != m.dimensions.end()) {
        existing->second = std::move(*e);
      } else {
        m.dimensions.emplace_back(index, std::move(*e));
      }
    }
    for (const std::string& label : removed) {
      auto it = std::find(c.label_names.begin(), c.label_names.end(), label);
      if (it == c.label_names.end()) continue;  // a label this metric never had
      const size_t index = static_cast<size_t>(it - c.label_names.begin());
      m.labels.erase(std::remove(m.labels.begin(), m.labels.end(), index), m.labels.end());
      m.dimensions.erase(std::remove_if(m.dimensions.begin(), m.dimensions.end(),
                                        [&](const auto& d) { return d.first == index; }),
                         m.dimensions.end());
    }
    if (match) {
      m.match = parse_expression("metrics[] '" + m.short_name + "' match", *match, error);
      if (!m.match) return false;
    }
  }
  if (!matched) {
    std::string known;
    for (const MetricConfig& m : c.metrics) known += (known.empty() ? "" : ", ") + m.short_name;
    return fail(error, "metrics[].name '" + name + "' is no metric (known: " + known + ")");
  }
  return true;
}

}  // namespace

std::optional<uint64_t> parse_duration_ms(std::string_view text) {
  size_t digits = 0;
  uint64_t whole = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9' && digits < 12) {
    whole = whole * 10 + static_cast<uint64_t>(text[digits] - '0');
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  // Up to three decimals (milliseconds) after a point.
  uint64_t frac_ms = 0;
  size_t pos = digits;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    uint64_t scale = 100;
    const size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (pos - start >= 9) return std::nullopt;
      frac_ms += static_cast<uint64_t>(text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  const std::string_view unit = text.substr(pos);
  if (unit == "ms") return frac_ms == 0 ? std::optional<uint64_t>(whole) : std::nullopt;
  if (unit == "s") return whole * 1000 + frac_ms;
  if (unit == "m") return whole * 60000 + frac_ms * 60;
  if (unit == "h") return whole * 3600000 + frac_ms * 3600;
  return std::nullopt;
}

std::optional<Config> parse_config(std::string_view json, std::string* error) {
  Config c;
  for (std::string_view name : kStandardLabelNames) c.label_names.emplace_back(name);
  std::string text(json);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) text = "{}";
  std::string why;
  auto members = ext_common::parse_json_object(text, &why);
  if (!members) {
    *error = "the configuration is not a JSON object: " + why;
    return std::nullopt;
  }
  // The prefix and separators first: metric names depend on them whatever the field order.
  for (const JsonMember& m : *members) {
    std::string* target = m.name == "stat_prefix"       ? &c.stat_prefix
                          : m.name == "field_separator" ? &c.field_separator
                          : m.name == "value_separator" ? &c.value_separator
                                                        : nullptr;
    if (!target) continue;
    if (!want(m, JsonMember::Kind::String, "a string", error)) return std::nullopt;
    if (m.value.empty()) {
      *error = "'" + m.name + "' must not be empty";
      return std::nullopt;
    }
    *target = m.value;
  }
  if (!valid_label_name(c.stat_prefix)) {
    *error = "'stat_prefix' must be a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)";
    return std::nullopt;
  }
  for (const StandardMetric& s : kStandardMetrics) {
    MetricConfig m;
    m.short_name = std::string(s.short_name);
    m.name = c.stat_prefix + "_" + m.short_name;
    m.type = s.type;
    m.value = s.value;
    m.tcp = s.tcp;
    const size_t count = s.tcp ? kTcpLabelCount : kStandardLabelCount;
    for (size_t i = 0; i < count; ++i) m.labels.push_back(i);
    c.metrics.push_back(std::move(m));
  }

  const JsonMember* metrics = nullptr;
  const JsonMember* definitions = nullptr;
  for (const JsonMember& m : *members) {
    bool ok = true;
    if (m.name == "stat_prefix" || m.name == "field_separator" || m.name == "value_separator") {
      continue;
    } else if (m.name == "metrics") {
      ok = want(m, JsonMember::Kind::Array, "an array", error);
      metrics = &m;
    } else if (m.name == "definitions") {
      ok = want(m, JsonMember::Kind::Array, "an array", error);
      definitions = &m;
    } else if (m.name == "disable_host_header_fallback" || m.name == "debug") {
      ok = want(m, JsonMember::Kind::Bool, "true or false", error);
      (m.name == "debug" ? c.debug : c.disable_host_header_fallback) = m.value == "true";
    } else if (m.name == "reporter") {
      ok = want(m, JsonMember::Kind::String, "UNSPECIFIED or SERVER_GATEWAY", error);
      if (ok && m.value != "UNSPECIFIED" && m.value != "SERVER_GATEWAY") {
        ok = fail(error, "'reporter' must be UNSPECIFIED or SERVER_GATEWAY, not '" + m.value + "'");
      }
      c.server_gateway = m.value == "SERVER_GATEWAY";
    } else if (m.name == "tcp_reporting_duration") {
      ok = parse_duration_member(m, &c.tcp_reporting_ms, error);
      if (ok && c.tcp_reporting_ms < 100) {
        ok = fail(error, "'tcp_reporting_duration' must be at least 100ms");
      }
    } else if (m.name == "rotation_interval") {
      ok = parse_duration_member(m, &c.rotation_ms, error);
    } else if (m.name == "graceful_deletion_interval") {
      uint64_t ignored;
      ok = parse_duration_member(m, &ignored, error);
      c.notes.push_back(
          "graceful_deletion_interval has no effect: a series that leaves the plugin's table "
          "keeps its value in the proxy's stats");
    } else if (m.name == "max_peer_cache_size") {
      uint64_t n;
      ok = parse_count(m, 1000000, &n, error);
      c.max_peer_cache_size = n;
    } else if (m.name == "max_series_per_metric") {
      uint64_t n;
      ok = parse_count(m, 10000000, &n, error);
      if (ok && n == 0) ok = fail(error, "'max_series_per_metric' must be at least 1");
      c.max_series_per_metric = n;
    } else {
      ok = fail(error, "unknown field '" + m.name + "'");
    }
    if (!ok) return std::nullopt;
  }
  // Definitions first (Istio's order): overrides may name the new metrics.
  if (definitions) {
    auto items = ext_common::parse_json_array(definitions->value, &why);
    if (!items) return *error = "definitions: " + why, std::nullopt;
    for (const JsonMember& d : *items) {
      if (d.kind != JsonMember::Kind::Object) {
        return *error = "definitions[] must hold objects", std::nullopt;
      }
      if (!parse_definition(c, d.value, error)) return std::nullopt;
    }
  }
  if (metrics) {
    auto items = ext_common::parse_json_array(metrics->value, &why);
    if (!items) return *error = "metrics: " + why, std::nullopt;
    for (const JsonMember& m : *items) {
      if (m.kind != JsonMember::Kind::Object) {
        return *error = "metrics[] must hold objects", std::nullopt;
      }
      if (!apply_override(c, m.value, error)) return std::nullopt;
    }
  }
  return c;
}

}  // namespace SLUICE_SDK_NS
}  // namespace telemetry
