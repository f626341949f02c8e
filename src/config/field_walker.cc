#include "config/field_walker.h"

#include <charconv>

#include <fmt/format.h>

#include "config/duration.h"

namespace sluice::config {
namespace {

int line_of(const YAML::Node& node, int fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? fallback : mark.line + 1;
}

// How a wrong-typed value reads in a message: a scalar quoted, otherwise its kind.
std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return fmt::format("\"{}\"", node.Scalar());
  return node.IsSequence() ? "a list" : "a mapping";
}

bool is_plain(const YAML::Node& node) { return node.Tag() != "!"; }

}  // namespace

void Diagnostics::error(std::string path, int line, std::string message) {
  errors_.push_back(Diagnostic{std::move(path), line, std::move(message)});
}

void Diagnostics::warn(const Value& at, std::string message) {
  warnings_.push_back(Diagnostic{at.path, at.line, std::move(message)});
}

std::string child_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

std::optional<std::string> read_string(Diagnostics& diags, const Value& v) {
  if (!v.node.IsScalar()) {
    diags.error(v, "expected a string, got " + describe(v.node));
    return std::nullopt;
  }
  return v.node.Scalar();
}

std::optional<uint64_t> read_uint(Diagnostics& diags, const Value& v, uint64_t min, uint64_t max) {
  uint64_t n = 0;
  bool parsed = false;
  if (v.node.IsScalar()) {
    const std::string& s = v.node.Scalar();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    parsed = !s.empty() && ec == std::errc() && end == s.data() + s.size();
  }
  if (!parsed) {
    diags.error(v, "expected an unsigned integer, got " + describe(v.node));
    return std::nullopt;
  }
  if (n < min || n > max) {
    diags.error(v, fmt::format("must be between {} and {}, got {}", min, max, n));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> read_bool(Diagnostics& diags, const Value& v) {
  if (v.node.IsScalar() && is_plain(v.node)) {
    const std::string& s = v.node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  diags.error(v, "expected true or false, got " + describe(v.node));
  return std::nullopt;
}

std::optional<Duration> read_duration(Diagnostics& diags, const Value& v) {
  if (v.node.IsMap()) {
    Fields parts(diags, v);
    uint64_t seconds = 0;
    uint64_t nanos = 0;
    if (std::optional<Value> s = parts.get("seconds")) {
      std::optional<uint64_t> n = read_uint(diags, *s, 0, 315'576'000'000);
      if (!n) return std::nullopt;
      seconds = *n;
    }
    if (std::optional<Value> s = parts.get("nanos")) {
      std::optional<uint64_t> n = read_uint(diags, *s, 0, 999'999'999);
      if (!n) return std::nullopt;
      nanos = *n;
    }
    return duration_from_parts(seconds, nanos);
  }
  if (v.node.IsScalar()) {
    if (std::optional<Duration> d = parse_duration(v.node.Scalar())) return d;
  }
  diags.error(v, "expected a duration like \"5s\", got " + describe(v.node));
  return std::nullopt;
}

Fields::Fields(Diagnostics& diags, Value map) : diags_(diags), map_(std::move(map)) {
  if (!map_.node.IsMap()) {
    diags_.error(map_, "expected a mapping, got " + describe(map_.node));
    return;
  }
  for (const auto& kv : map_.node) {
    const int line = line_of(kv.first, map_.line);
    if (!kv.first.IsScalar()) {
      diags_.error(map_.path, line, "mapping keys must be strings");
      continue;
    }
    const std::string& key = kv.first.Scalar();
    if (find(key) != nullptr) {
      diags_.error(child_path(map_.path, key), line, "duplicate key");
      continue;
    }
    entries_.push_back(Entry{key, line, kv.second});
  }
}

Fields::~Fields() {
  for (const Entry& entry : entries_) {
    if (!entry.used) diags_.error(child_path(map_.path, entry.key), entry.line, "unknown field");
  }
}

Fields::Entry* Fields::find(std::string_view key) {
  for (Entry& entry : entries_) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

const Fields::Entry* Fields::find(std::string_view key) const {
  return const_cast<Fields*>(this)->find(key);
}

bool Fields::has(std::string_view key) const {
  const Entry* entry = find(key);
  return entry != nullptr && !entry->value.IsNull();
}

std::vector<std::string_view> Fields::present(std::initializer_list<std::string_view> keys) const {
  std::vector<std::string_view> found;
  for (std::string_view key : keys) {
    if (has(key)) found.push_back(key);
  }
  return found;
}

std::optional<Value> Fields::get(std::string_view key, Need need) {
  Entry* entry = find(key);
  if (entry != nullptr) entry->used = true;
  if (entry == nullptr || entry->value.IsNull()) {
    // Only a mapping can be missing a field; a wrong-typed value was reported already.
    if (need == Need::kRequired && map_.node.IsMap()) {
      diags_.error(child_path(map_.path, key), entry ? entry->line : map_.line,
                   "missing required field");
    }
    return std::nullopt;
  }
  return Value{entry->value, child_path(map_.path, key), entry->line};
}

bool Fields::read_string(std::string_view key, std::string& out, Need need) {
  std::optional<Value> v = get(key, need);
  if (!v) return false;
  std::optional<std::string> s = config::read_string(diags_, *v);
  if (!s) return false;
  // Envoy's required strings all have min_len 1.
  if (need == Need::kRequired && s->empty()) {
    diags_.error(*v, "must not be empty");
    return false;
  }
  out = std::move(*s);
  return true;
}

bool Fields::read_uint32(std::string_view key, uint32_t& out, uint32_t min, uint32_t max,
                         Need need) {
  std::optional<Value> v = get(key, need);
  if (!v) return false;
  std::optional<uint64_t> n = read_uint(diags_, *v, min, max);
  if (!n) return false;
  out = static_cast<uint32_t>(*n);
  return true;
}

bool Fields::read_bool(std::string_view key, bool& out) {
  std::optional<Value> v = get(key);
  if (!v) return false;
  std::optional<bool> b = config::read_bool(diags_, *v);
  if (!b) return false;
  out = *b;
  return true;
}

bool Fields::read_duration(std::string_view key, Duration& out) {
  std::optional<Value> v = get(key);
  if (!v) return false;
  std::optional<Duration> d = config::read_duration(diags_, *v);
  if (!d) return false;
  out = *d;
  return true;
}

void Fields::reject(std::string_view key, std::string_view message) {
  if (Entry* entry = find(key)) {
    entry->used = true;
    diags_.error(child_path(map_.path, key), entry->line, std::string(message));
  }
}

void Fields::ignore(std::string_view key, std::string_view message) {
  if (Entry* entry = find(key)) {
    entry->used = true;
    diags_.warn(Value{entry->value, child_path(map_.path, key), entry->line}, std::string(message));
  }
}

void Fields::accept_all() {
  for (Entry& entry : entries_) entry.used = true;
}

std::vector<std::pair<std::string, Value>> Fields::entries() {
  std::vector<std::pair<std::string, Value>> out;
  for (Entry& entry : entries_) {
    entry.used = true;
    out.emplace_back(entry.key, Value{entry.value, child_path(map_.path, entry.key), entry.line});
  }
  return out;
}

}  // namespace sluice::config
