// The top-level members of a JSON object, read strictly (RFC 8259: any syntax error fails the
// whole document) without a JSON library, which the wasm32 build of an extension does not have.
// Nested objects and arrays are validated and kept as their JSON text; strings are unescaped
// (\uXXXX and surrogate pairs to UTF-8).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "extension_namespace.h"

namespace ext_common {
inline namespace SLUICE_SDK_NS {

struct JsonMember {
  enum class Kind { String, Number, Bool, Null, Object, Array };
  std::string name;
  Kind kind = Kind::Null;
  std::string value;  // unescaped string, number literal, "true"/"false", or the nested JSON text
};

// nullopt (and *error set) unless `text` is exactly one JSON object, at most `max_depth` deep.
std::optional<std::vector<JsonMember>> parse_json_object(std::string_view text, std::string* error,
                                                         int max_depth = 32);

// The elements of one JSON array (their `name` empty), nested values kept as their JSON text.
std::optional<std::vector<JsonMember>> parse_json_array(std::string_view text, std::string* error,
                                                        int max_depth = 32);

// The string elements and number literals of a JSON array's text, or nullopt when it holds
// anything else (objects, arrays, booleans, null).
std::optional<std::vector<std::string>> scalar_array(std::string_view array_json);

}  // namespace SLUICE_SDK_NS
}  // namespace ext_common
