// Fields of JSON documents a registry (or a credentials file) sent, read without throwing:
// nlohmann's value() throws on a field of an unexpected type, and a registry is not trusted to
// send the types the spec says. Absent, or of another type: empty.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sluice::oci {

// obj[key] when obj is an object that has it; else a null value.
inline const nlohmann::json& json_field(const nlohmann::json& obj, std::string_view key) {
  static const nlohmann::json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// obj[key] when it is a string; else "".
inline std::string string_field(const nlohmann::json& obj, std::string_view key) {
  const nlohmann::json& v = json_field(obj, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

// obj[key] when it is a non-negative integer; else nothing.
inline std::optional<uint64_t> uint_field(const nlohmann::json& obj, std::string_view key) {
  const nlohmann::json& v = json_field(obj, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace sluice::oci
