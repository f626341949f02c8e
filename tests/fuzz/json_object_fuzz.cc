// libFuzzer target: the extensions' strict JSON object reader (extensions/common/json_object.cc),
// which header_decode uses on token payloads a client controls. Differential: nlohmann's parser
// (a well-tested reference) must agree on every input about whether it is one JSON object, and
// on each top-level member's name and (for strings) value. Duplicate names, numbers' spelling and
// numbers past a double's range are where the two may legitimately differ.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "json_object.h"

using ext_common::JsonMember;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto ours = ext_common::parse_json_object(input, &error, 1000);
  if (input.find('\0') != std::string_view::npos) {
    // A raw NUL is never valid JSON; nlohmann stops reading at one, so it is no reference here.
    FUZZ_CHECK(!ours.has_value(), "accepted an input with a NUL byte");
    return 0;
  }
  const nlohmann::json ref = nlohmann::json::parse(input, nullptr, /*allow_exceptions=*/false);
  const bool ref_object = !ref.is_discarded() && ref.is_object();
  if (ours && !ref_object) {
    // JSON has no number range; nlohmann refuses numbers a double cannot hold, the reader keeps
    // their text. That is the one disagreement allowed.
    try {
      (void)nlohmann::json::parse(input);
    } catch (const nlohmann::json::out_of_range& e) {
      if (e.id == 406) return 0;
    } catch (const nlohmann::json::exception&) {
    }
  }
  FUZZ_CHECK(ours.has_value() == ref_object, "reader %s, nlohmann %s (%s)",
             ours ? "accepted" : "refused", ref_object ? "accepted" : "refused", error.c_str());
  if (!ours) {
    FUZZ_CHECK(!error.empty(), "refused without a reason");
    return 0;
  }
  for (const JsonMember& m : *ours) {
    auto it = ref.find(m.name);
    FUZZ_CHECK(it != ref.end(), "member '%s' unknown to nlohmann", m.name.c_str());
    if (ref.count(m.name) != 1) continue;
    switch (m.kind) {
      case JsonMember::Kind::String:
        // nlohmann keeps the last of duplicate names; compare only when this one is it.
        if (it->is_string() && it->get<std::string>() != m.value) {
          bool later_duplicate = false;
          for (const JsonMember& other : *ours)
            later_duplicate |= (&other != &m && other.name == m.name);
          FUZZ_CHECK(later_duplicate, "string '%s' differs", m.name.c_str());
        }
        break;
      case JsonMember::Kind::Object:
      case JsonMember::Kind::Array: {
        const nlohmann::json nested = nlohmann::json::parse(m.value, nullptr, false);
        FUZZ_CHECK(!nested.is_discarded(), "nested text of '%s' does not parse", m.name.c_str());
        if (m.kind == JsonMember::Kind::Array) (void)ext_common::scalar_array(m.value);
        break;
      }
      default:
        break;
    }
  }
  return 0;
}
