// Schema-driven walking of a YAML document for the config loader: each value carries its field path
// ("static_resources.clusters[1].name") and source line, typed readers report type errors there,
// and a mapping reports every key its schema never asked for as an unknown field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/bootstrap.h"
#include "config/loader.h"

namespace sluice::config {

// A YAML node with where it came from.
struct Value {
  YAML::Node node;
  std::string path;
  int line = 0;  // 1-based; 0 when unknown
};

// Every error and warning of one load.
class Diagnostics {
 public:
  void error(const Value& at, std::string message) { error(at.path, at.line, std::move(message)); }
  void error(std::string path, int line, std::string message);
  void warn(const Value& at, std::string message);

  std::vector<Diagnostic>& errors() { return errors_; }
  std::vector<Diagnostic>& warnings() { return warnings_; }

 private:
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string child_path(std::string_view parent, std::string_view key);

// Typed scalar readers: nullopt (with an error at `v`) when `v` has the wrong type or range.
std::optional<std::string> read_string(Diagnostics& diags, const Value& v);
// A number or a numeric string, as proto3 JSON allows for integers.
std::optional<uint64_t> read_uint(Diagnostics& diags, const Value& v, uint64_t min, uint64_t max);
std::optional<bool> read_bool(Diagnostics& diags, const Value& v);
// "5s" / "0.25s", or {seconds: N, nanos: N}.
std::optional<Duration> read_duration(Diagnostics& diags, const Value& v);

// Calls `fn(element)` for each element of the list `v`; reports a non-list. Returns the count.
template <typename Fn>
size_t for_each_element(Diagnostics& diags, const Value& v, Fn&& fn) {
  if (!v.node.IsSequence()) {
    diags.error(v, "expected a list");
    return 0;
  }
  size_t index = 0;
  for (const YAML::Node& element : v.node) {
    const YAML::Mark mark = element.Mark();
    fn(Value{element, v.path + "[" + std::to_string(index) + "]",
             mark.is_null() ? v.line : mark.line + 1});
    ++index;
  }
  return index;
}

enum class Need { kOptional, kRequired };

// The fields of one YAML mapping. Every accessor marks its key as known; on destruction, each key
// no accessor asked for is reported as an unknown field, so a schema cannot forget to reject one.
// A null value counts as absent (proto3 JSON: null means "unset").
class Fields {
 public:
  Fields(Diagnostics& diags, Value map);
  ~Fields();
  Fields(const Fields&) = delete;
  Fields& operator=(const Fields&) = delete;

  const Value& value() const { return map_; }
  Diagnostics& diags() { return diags_; }

  // Present and not null; does not mark the key.
  bool has(std::string_view key) const;
  // The keys of `keys` that are present, for "exactly one of" checks.
  std::vector<std::string_view> present(std::initializer_list<std::string_view> keys) const;

  // The value at `key`; with Need::kRequired, reports "missing required field" when absent.
  std::optional<Value> get(std::string_view key, Need need = Need::kOptional);

  // Typed readers: assign `out` and return true when `key` is present and well typed. A required
  // string must also be non-empty.
  bool read_string(std::string_view key, std::string& out, Need need = Need::kOptional);
  bool read_uint32(std::string_view key, uint32_t& out, uint32_t min = 0,
                   uint32_t max = std::numeric_limits<uint32_t>::max(),
                   Need need = Need::kOptional);
  bool read_bool(std::string_view key, bool& out);
  bool read_duration(std::string_view key, Duration& out);

  // Calls `fn(element)` for each element of the list at `key`; returns the count (0 when absent).
  template <typename Fn>
  size_t for_each(std::string_view key, Fn&& fn, Need need = Need::kOptional) {
    std::optional<Value> list = get(key, need);
    return list ? for_each_element(diags_, *list, fn) : 0;
  }

  // Envoy fields Sluice recognises but does not implement: an error with `message` when present.
  void reject(std::string_view key, std::string_view message);
  // Fields accepted for compatibility and ignored: a warning with `message` when present.
  void ignore(std::string_view key, std::string_view message);
  // Marks every key known: for blocks that are rejected or skipped as a whole.
  void accept_all();

  // Every entry, marked known: for mappings keyed by names (e.g. typed_per_filter_config).
  std::vector<std::pair<std::string, Value>> entries();

 private:
  struct Entry {
    std::string key;
    int line = 0;
    YAML::Node value;
    bool used = false;
  };
  Entry* find(std::string_view key);
  const Entry* find(std::string_view key) const;

  Diagnostics& diags_;
  Value map_;
  std::vector<Entry> entries_;
};

}  // namespace sluice::config
